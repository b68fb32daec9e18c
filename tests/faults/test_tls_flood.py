# SPDX-License-Identifier: GPL-3.0-or-later
"""2,000 half-open TLS connections against the remote listener, with the daemon's RLIMIT_NOFILE
as the shipped unit sets it: the deadline still fires on time and local ``status`` answers.

On a654695 the connections used up the 1024 fds, ``expire()`` hit EMFILE at the deadline and
``rearm()`` dropped the timer: the transaction stayed open past its deadline.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from netcfg_txn import client
from tests import nslab
from tests.daemon.harness import Daemon
from tests.faults.conftest import (
    ENV,
    PORT,
    Journal,
    add_peer,
    assert_rolled_back_at_deadline,
    edit,
    install_tls,
    need,
    remote_call,
    remote_toml,
    start_txn,
    unit_nofile,
)
from tests.pki import Pki

CONNECTIONS = 2000
SOURCES = 250  # 127.0.1.1-250: per-source and total caps both come into play


def test_tls_flood_cannot_starve_the_deadline(
    spawn: Callable[..., Daemon], journal: Journal, pki: Pki, tmp_path: Path
) -> None:
    need("ip", "prlimit", "unshare")
    nofile = unit_nofile()
    with nslab.namespaces("host") as ns:
        host = ns["host"]
        wrapper = ["ip", "netns", "exec", host, "prlimit", f"--nofile={nofile}:{nofile}"]
        d = spawn(remote_toml(f"127.0.0.1:{PORT}"), wrapper=[*wrapper, *journal.wrapper()])
        install_tls(d, pki)
        token = add_peer(d, "ctl")
        d.start(timeout_s=30)
        limits = open(f"/proc/{d.pid}/limits").read()
        assert f"Max open files            {nofile}" in limits, limits

        before = d.files()
        txn_id, deadline = start_txn(d, "10s")
        edit(d)
        flood = subprocess.Popen(
            ["ip", "netns", "exec", host, "prlimit", "--nofile=8192:8192", sys.executable,
             str(Path(__file__).with_name("flood.py")), "127.0.0.1", str(PORT), str(CONNECTIONS),
             str(SOURCES), "400", "60"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=ENV,
        )  # fmt: skip
        try:
            assert flood.stdout is not None
            stats: dict[str, int] = {}
            for line in flood.stdout:  # until all 2,000 went out
                stats = json.loads(line)
                if stats["made"] >= CONNECTIONS:
                    break
            assert stats.get("made", 0) >= CONNECTIONS, stats
            # Local status answers during the attack, quickly.
            worst = 0.0
            while time.time() < deadline - 1.0:
                t0 = time.monotonic()
                st = client.call(str(d.socket), "GET", "/v1/status", timeout_s=5)
                worst = max(worst, time.monotonic() - t0)
                assert st["transaction"]["id"] == txn_id and st["state"] == "open"
                time.sleep(0.2)
            print(f"tls flood: local status worst {worst * 1000:.0f} ms; attacker {stats}")
            assert worst < 2.0
            fds = len(list(Path(f"/proc/{d.pid}/fd").iterdir()))
            print(f"tls flood: daemon holds {fds} fds (limit {nofile})")
            assert fds < nofile - 64
            assert_rolled_back_at_deadline(d, journal, "tls-flood", txn_id, deadline, before)
            # Still under attack: the peer's own connection may be refused by the caps, but the
            # daemon is alive and local status still answers.
            assert client.call(str(d.socket), "GET", "/v1/status", timeout_s=5)["state"] == "idle"
        finally:
            if flood.stdin is not None:
                flood.stdin.close()
            flood.wait(15)
        # Attack over: the listener serves a legitimate peer again.
        deadline_peer = time.monotonic() + 15
        while True:
            got = remote_call(host, pki, "127.0.0.1", token, "status")
            if got["ok"] or time.monotonic() > deadline_peer:
                break
            time.sleep(0.5)
        assert got["ok"], got
        assert "at most 64 connections, 8 per source" in "".join(
            m.get("MESSAGE", "") for m in journal.msgs
        )
