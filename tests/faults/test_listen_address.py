# SPDX-License-Identifier: GPL-3.0-or-later
"""The change removes the address ``[remote] listen`` names (a management-address change), and the
daemon is restarted before the deadline: it must still come up, arm the timer and roll back; the
rollback brings the address back and the listener answers on it.

On a654695 the restarted daemon exited 69 (EADDRNOTAVAIL) before arming the timer.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable

from tests import nslab
from tests.daemon.harness import Daemon
from tests.faults.conftest import (
    LATENCIES,
    Journal,
    add_peer,
    assert_rolled_back_at_deadline,
    install_tls,
    need,
    remote_call,
    remote_toml,
    restart,
    start_txn,
)
from tests.pki import Pki

ADDR = "192.0.2.1/24"
NEW_ADDR = "192.0.2.9/24"


def _addrs(ns: str) -> str:
    return subprocess.run(["ip", "-n", ns, "-4", "-o", "addr", "show", "dev", "h0"],
                          capture_output=True, text=True, check=True).stdout  # fmt: skip


def test_listen_address_removed_by_the_change(
    spawn: Callable[..., Daemon], journal: Journal, pki: Pki
) -> None:
    need("ip", "unshare")
    with nslab.namespaces("host", "peer") as ns:
        nslab.veth(ns["host"], "h0", ns["peer"], "p0")
        nslab.ip("-n", ns["peer"], "addr", "add", "192.0.2.2/24", "dev", "p0")
        wrapper = ["ip", "netns", "exec", ns["host"], *journal.wrapper()]
        # The managed "network config" is the uplink's address; the apply hook makes it live.
        d = spawn(wrapper=wrapper)
        apply = d.base / "apply.sh"
        apply.write_text(
            "ip addr flush dev h0 scope global\n"  # runs in the host namespace
            f"ip addr add $(cat {d.root}/etc/nct/addr.conf) dev h0\n"
        )
        d.config.write_text(
            remote_toml(
                "192.0.2.1:7468",
                extra_files='presets = []\ninclude = ["/etc/nct/*.conf"]',
                apply=f"sh {apply}",
            )
        )
        (d.root / "etc/nct").mkdir(parents=True)
        d.path("etc/nct/addr.conf").write_text(ADDR + "\n")
        nslab.ns_exec(ns["host"], ["sh", str(apply)], check=True)
        install_tls(d, pki)
        token = add_peer(d, "ctl")
        d.start(timeout_s=30)
        assert remote_call(ns["peer"], pki, "192.0.2.1", token, "status")["ok"]

        before = d.files()
        txn_id, deadline = start_txn(d, "8s")
        d.path("etc/nct/addr.conf").write_text(NEW_ADDR + "\n")
        nslab.ns_exec(ns["host"], ["sh", str(apply)], check=True)
        assert "192.0.2.1/" not in _addrs(ns["host"])

        restart(d)  # the listen address is gone now
        st = d.api("GET", "/v1/status")
        assert st["transaction"]["id"] == txn_id and st["state"] == "open"
        assert_rolled_back_at_deadline(d, journal, "listen-address-removed", txn_id, deadline,
                                       before)  # fmt: skip
        assert "192.0.2.1/24" in _addrs(ns["host"])  # the rollback's apply hook put it back
        # The socket bound while the address was missing answers now that it is back.
        end = time.monotonic() + 10
        while not (got := remote_call(ns["peer"], pki, "192.0.2.1", token, "status"))["ok"]:
            assert time.monotonic() < end, got
            time.sleep(0.2)
        assert got["doc"]["state"] == "idle"
        assert LATENCIES["listen-address-removed"] < 1.0
