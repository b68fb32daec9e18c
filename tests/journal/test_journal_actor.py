# SPDX-License-Identifier: GPL-3.0-or-later
"""Every transition's journal entry names who caused it: the local user (uid, pid, command line)
for start/commit/rollback, forced ones included; ``timer`` for a deadline; ``probe`` for failing
health probes; ``boot`` for the boot unit. The real daemon and CLI log to a fake journald (a
datagram socket at /run/systemd/journal/socket in a private /run, see testing.md)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]

CHILD = r"""
import json, os, socket, struct, sys, threading, time
from pathlib import Path

os.makedirs("/run/systemd/journal", exist_ok=True)
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind("/run/systemd/journal/socket")
sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)

from tests.journald import parse_native as parse

msgs, stop = [], threading.Event()
def receive():
    sock.settimeout(0.2)
    while not stop.is_set():
        try:
            msgs.append(parse(sock.recv(1 << 20)))
        except socket.timeout:
            pass
threading.Thread(target=receive, daemon=True).start()

from tests.daemon.harness import make

d = make(Path(sys.argv[1]))
d.start()
eth1 = d.path("etc/network/interfaces.d/eth1")
ids = {}

def run(*args):
    r = d.cli(*args)
    assert r.rc == 0, (args, r.out, r.err)
    return r.doc

def edit(n):
    eth1.write_text(f"iface eth1 inet static\n    address 198.51.100.{n}/24\n")

ids["manual"] = run("start", "--timeout", "1h", "--allow-pending")["transaction"]["id"]
edit(1)
run("rollback")
ids["forced"] = run("start", "--timeout", "1h")["transaction"]["id"]
edit(2)
run("rollback", "--force")
ids["commit"] = run("start", "--timeout", "1h")["transaction"]["id"]
run("commit")
ids["timer"] = run("start", "--timeout", "2s")["transaction"]["id"]
edit(3)
d.wait_idle(60)
probe = {"probes": ["http://127.0.0.1:1/health"], "policy": "probes", "timeout": "1h",
         "probe_settings": {"settle_s": 0, "interval_s": 0.1, "timeout_s": 0.5, "retries": 0,
                            "rounds": 1, "fail_fast": True}}
ids["probe"] = d.api("POST", "/v1/transactions", probe)["transaction"]["id"]
d.wait_idle(60)
ids["boot"] = run("start", "--timeout", "1h", "--allow-pending")["transaction"]["id"]
edit(4)
d.kill()
run("boot-rollback")
time.sleep(0.5)  # the last datagrams are already queued on our socket; let the thread read them
stop.set()
print(json.dumps({"ids": ids, "msgs": msgs}))
"""


def _run_child(tmp_path: Path) -> dict[str, Any]:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    r = subprocess.run(
        [
            "unshare",
            "-m",
            "sh",
            "-c",
            'mount --make-rprivate / && mount -t tmpfs tmpfs /run && exec "$0" "$@"',
            sys.executable,
            str(script),
            str(tmp_path / "d"),
        ],  # fmt: skip
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=REPO,
    )
    assert r.returncode == 0, r.stderr[-4000:]
    doc: dict[str, Any] = json.loads(r.stdout.splitlines()[-1])
    return doc


def test_every_transition_names_its_actor(tmp_path: Path) -> None:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("needs root and unshare (a private /run for a fake journald socket)")
        pytest.skip("needs root and unshare: a private /run for a fake journald socket")
    doc = _run_child(tmp_path)
    ids, msgs = doc["ids"], doc["msgs"]
    transitions = [m for m in msgs if m.get("TXN_ID") and m.get("MESSAGE_ID")]
    by_txn: dict[str, list[dict[str, str]]] = {}
    for m in transitions:
        by_txn.setdefault(m["TXN_ID"], []).append(m)
    for m in transitions:
        assert m.get("ACTOR"), f"a transition without ACTOR: {m.get('MESSAGE')}"

    def actors(case: str) -> list[str]:
        entries = by_txn.get(ids[case], [])
        assert entries, f"no journal entries for the {case} transaction"
        return [m["ACTOR"] for m in entries]

    def ended(case: str) -> dict[str, str]:
        return by_txn[ids[case]][-1]  # the rolled-back/committed/failed entry

    for case in ("manual", "forced", "commit"):  # the command line is cut at 300 characters
        a = ended(case)["ACTOR"]
        assert a.startswith("uid=0 pid=") and "cmd=" in a and "netcfg_txn" in a, (case, a)
        assert all(x.startswith("uid=0 pid=") for x in actors(case)), (case, actors(case))
    assert ended("forced")["REASON"] == "forced"
    assert ended("timer")["ACTOR"] == "timer" and ended("timer")["REASON"] == "timeout"
    assert ended("probe")["ACTOR"] == "probe" and ended("probe")["REASON"] == "health"
    boot = ended("boot")
    assert boot["ACTOR"] == "boot" and boot["REASON"] == "boot", boot
    assert boot["SYSLOG_IDENTIFIER"] == "netcfg-txn"
    # Started entries name the local user who started them, also for the later rollbacks, and
    # carry the DEADLINE the catalog text shows (it printed a literal "DEADLINE" without it).
    started = by_txn[ids["timer"]][0]
    assert started["ACTOR"].startswith("uid=0 pid=")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}", started["DEADLINE"])
