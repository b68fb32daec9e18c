# SPDX-License-Identifier: GPL-3.0-or-later
"""netcfg-txnd under a real systemd: restarts keep the original deadline (R33), the watchdog
restarts a wedged loop, a bad reload is refused, and the control socket is socket-activated."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.system.conftest import (
    IFACES_BROKEN,
    IFACES_OLD,
    MSG_RELOAD_REFUSED,
    MSG_ROLLBACK_BEGUN,
    MSG_ROLLED_BACK,
    apply_interfaces,
)
from tests.system.nspawn import Machine, wait_for

pytestmark = [pytest.mark.system, pytest.mark.timeout(600)]

# A rollback must begin at the deadline: never before it, at most this much after.
LATE_S = 1.0


def daemon(m: Machine) -> dict[str, str]:
    return m.show(
        "netcfg-txnd.service", "ActiveState", "SubState", "MainPID", "NRestarts", "Result"
    )


def wait_restarted(m: Machine, old_pid: str, restarts: int, timeout: float = 30) -> dict[str, str]:
    def restarted() -> dict[str, str] | None:
        d = daemon(m)
        ok = d["ActiveState"] == "active" and d["MainPID"] not in ("0", old_pid)
        return d if ok and int(d["NRestarts"]) == restarts else None

    return wait_for("netcfg-txnd to be restarted", restarted, timeout, 0.2)


def wait_ended(m: Machine, txn_id: str, timeout: float) -> dict[str, Any]:
    def ended() -> dict[str, Any] | None:
        rc, doc = m.cli("history", "--limit", "1")
        hist = doc.get("history") or []
        return hist[0] if rc == 0 and hist and hist[0]["id"] == txn_id else None

    return wait_for(f"transaction {txn_id} to end", ended, timeout, 0.2)


def journal_time(entry: dict[str, Any]) -> float:
    return int(entry.get("_SOURCE_REALTIME_TIMESTAMP") or entry["__REALTIME_TIMESTAMP"]) / 1e6


def assert_rolled_back_at_deadline(m: Machine, txn: dict[str, Any]) -> None:
    deadline = txn["deadline_wall_s"]
    end = wait_ended(m, txn["id"], deadline - time.time() + 20)
    assert (end["phase"], end["reason"]) == ("rolled-back", "timeout"), end
    # The rollback began at the deadline (never before it), and then finished.
    begun = m.journal(f"MESSAGE_ID={MSG_ROLLBACK_BEGUN}", f"TXN_ID={txn['id']}")
    assert len(begun) == 1, begun
    late = journal_time(begun[0]) - deadline
    assert 0 <= late <= LATE_S, f"rollback began {late:+.2f}s from the deadline"
    assert 0 <= end["ended_wall_s"] - deadline <= LATE_S + 10
    assert m.read("/etc/network/interfaces") == IFACES_OLD
    assert m.ipv4() == ["192.0.2.1/24"]
    assert m.peer_reaches("192.0.2.1")
    done = m.journal(f"MESSAGE_ID={MSG_ROLLED_BACK}", f"TXN_ID={txn['id']}")
    assert len(done) == 1, done


def test_sigkill_mid_timer_restart_keeps_the_deadline(txn_machine: Machine) -> None:
    m = txn_machine
    m.boot()
    txn = m.cli_ok("start", "--timeout", "12s")["transaction"]
    apply_interfaces(m, IFACES_BROKEN)
    before = daemon(m)
    time.sleep(2)  # the scenario: 2 s of the timer run out before the crash
    m.exec("kill", "-KILL", before["MainPID"])
    wait_restarted(m, before["MainPID"], 1)
    # R33: re-armed for the remaining time, not a fresh timeout.
    st = m.cli_ok("status")
    assert st["transaction"]["id"] == txn["id"]
    assert st["transaction"]["remaining_s"] <= txn["deadline_wall_s"] - time.time() + 0.5
    assert_rolled_back_at_deadline(m, txn)
    assert int(daemon(m)["NRestarts"]) == 1


def test_wedged_loop_is_restarted_by_the_watchdog(txn_machine: Machine) -> None:
    m = txn_machine
    m.write(
        "/etc/systemd/system/netcfg-txnd.service.d/50-test-watchdog.conf",
        "[Service]\nWatchdogSec=3s\n",
    )
    m.boot()
    txn = m.cli_ok("start", "--timeout", "15s")["transaction"]
    apply_interfaces(m, IFACES_BROKEN)
    before = daemon(m)
    m.exec("kill", "-STOP", before["MainPID"])  # the loop stops pinging WATCHDOG=1
    wait_restarted(m, before["MainPID"], 1, timeout=15)
    assert "Watchdog timeout" in m.journal_text("netcfg-txnd.service")
    assert_rolled_back_at_deadline(m, txn)
    # The restarted daemon pings in time: no further watchdog restart while it waited ~10 s.
    assert int(daemon(m)["NRestarts"]) == 1


def test_reload_with_bad_config_keeps_the_old_one(txn_machine: Machine) -> None:
    m = txn_machine
    m.write("/etc/netcfg-txn/conf.d/10-site.toml", '[timer]\ndefault = "77s"\n')
    m.boot()
    before = daemon(m)

    m.write("/etc/netcfg-txn/conf.d/20-bad.toml", '[timer]\ndefault = "55s"\nbogus_key = 1\n')
    # ExecReload= validates first: the reload itself fails, visibly, naming file and key.
    assert m.exec("systemctl", "reload", "netcfg-txnd.service", check=False).returncode != 0
    text = m.journal_text("netcfg-txnd.service")
    assert "20-bad.toml" in text and "bogus_key" in text, text
    # A SIGHUP sent by hand is refused by the daemon itself, loudly.
    m.exec("systemctl", "kill", "--signal=SIGHUP", "--kill-who=main", "netcfg-txnd.service")
    refused = wait_for(
        "the reload refusal in the journal",
        lambda: m.journal(f"MESSAGE_ID={MSG_RELOAD_REFUSED}"),
        10,
        0.2,
    )
    text = refused[0]["MESSAGE"]
    assert "20-bad.toml" in text and "bogus_key" in text, text
    assert int(refused[0]["PRIORITY"]) <= 3  # an error, visible in journalctl -p err
    after = daemon(m)
    assert (after["ActiveState"], after["MainPID"], after["NRestarts"]) == (
        "active",
        before["MainPID"],
        "0",
    )
    t = m.cli_ok("start")["transaction"]  # the old [timer] default is still in force
    assert t["timeout_s"] == 77
    m.cli_ok("rollback")

    # Refused while a transaction is open, even when valid; accepted once it ended.
    m.exec("rm", "/etc/netcfg-txn/conf.d/20-bad.toml")
    m.cli_ok("start")
    m.write("/etc/netcfg-txn/conf.d/30-site.toml", '[timer]\ndefault = "66s"\n')
    m.exec("systemctl", "reload", "netcfg-txnd.service")
    wait_for(
        "the second refusal",
        lambda: len(m.journal(f"MESSAGE_ID={MSG_RELOAD_REFUSED}")) == 2,
        10,
        0.2,
    )
    m.cli_ok("rollback")
    m.exec("systemctl", "reload", "netcfg-txnd.service")
    time.sleep(1)
    assert len(m.journal(f"MESSAGE_ID={MSG_RELOAD_REFUSED}")) == 2
    assert m.cli_ok("start")["transaction"]["timeout_s"] == 66
    assert daemon(m)["MainPID"] == before["MainPID"]


def test_control_socket_is_socket_activated(txn_machine: Machine) -> None:
    m = txn_machine
    m.boot()
    inode = m.exec("stat", "-c", "%i", "/run/netcfg-txn/control").stdout
    m.exec("systemctl", "stop", "netcfg-txnd.service")
    assert daemon(m)["ActiveState"] == "inactive"
    assert m.show("netcfg-txnd.socket", "ActiveState")["ActiveState"] == "active"
    assert m.cli_ok("status")["state"] == "idle"  # the connection starts the daemon
    assert daemon(m)["ActiveState"] == "active"
    # The daemon serves the socket systemd passed it; it did not bind a new one.
    assert m.exec("stat", "-c", "%i", "/run/netcfg-txn/control").stdout == inode
    assert m.exec("stat", "-c", "%a %U", "/run/netcfg-txn/control").stdout.split() == [
        "600",
        "root",
    ]
