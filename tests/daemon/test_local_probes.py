# SPDX-License-Identifier: GPL-3.0-or-later
"""Local health checks on the real daemon and CLI, without sending a packet: ``iface:`` probes
of an interface that does not exist fail, ``iface:lo`` passes. ``try --probe`` and ``start
--probe`` matter under the default policy (manual); ``--probe-failure ignore`` leaves it to the
deadline. (Probes against a namespace peer: tests/remote/test_remote_probes.py.)"""

from __future__ import annotations

import time
from typing import Any

from tests.daemon.harness import Daemon

FAST = ("--probe-setting", "settle_s=0", "--probe-setting", "interval_s=0.2")


def _ended(d: Daemon, tid: str, timeout_s: float = 20) -> dict[str, Any]:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        hist = d.history()
        if hist and hist[0]["txn"]["id"] == tid:
            return dict(hist[0]["txn"])
        time.sleep(0.05)
    raise AssertionError(f"{tid} did not end:\n{d.log_text()}")


def test_try_with_a_failing_probe_rolls_back_for_health(daemon: Daemon) -> None:
    edit = f"echo 'iface eth1 inet manual' > {daemon.path('etc/network/interfaces.d/eth1')}"
    # settle_s=3: COMMAND runs (and edits) before the first, failing, round
    r = daemon.cli("try", "--timeout", "5m", "--probe", "iface:nct-none0 retries=0",
                   "--probe-setting", "settle_s=3", "--", "sh", "-c", edit)  # fmt: skip
    assert r.rc == 0, (r.out, r.err)  # no TTY: armed, and the probes run
    t = _ended(daemon, r.doc["transaction"]["id"])
    assert (t["phase"], t["reason"]) == ("rolled-back", "health"), t
    assert "192.0.2.1/24" in daemon.path("etc/network/interfaces.d/eth1").read_text()


def test_start_with_a_passing_probe_stays_open_under_manual(daemon: Daemon) -> None:
    r = daemon.cli("start", "--timeout", "5m", "--probe", "iface:lo", *FAST)
    assert r.rc == 0, r.err
    end = time.monotonic() + 20
    while (daemon.cli("status").doc.get("probes") or {}).get("rounds", 0) < 3:
        assert time.monotonic() < end, daemon.log_text()
        time.sleep(0.1)
    st = daemon.cli("status").doc
    assert st["state"] == "open" and st["probes"]["outcome"] is None, st  # manual: no auto-commit
    assert daemon.cli("commit").rc == 0


def test_probe_failure_ignore_keeps_it_open(daemon: Daemon) -> None:
    r = daemon.cli("start", "--timeout", "5m", "--probe", "iface:nct-none0 retries=0",
                   "--probe-failure", "ignore", *FAST)  # fmt: skip
    assert r.rc == 0, r.err
    end = time.monotonic() + 20
    while (daemon.cli("status").doc.get("probes") or {}).get("rounds", 0) < 3:
        assert time.monotonic() < end, daemon.log_text()
        time.sleep(0.1)
    st = daemon.cli("status").doc
    assert st["state"] == "open" and st["probes"]["streak"] == 0, st
    assert daemon.cli("rollback").rc == 0
