# SPDX-License-Identifier: GPL-3.0-or-later
"""Crash/reboot with a transaction open (R27-R29), in a booted Debian 12 with ifupdown.

"Pulling the plug" kills the container's PID 1: every process dies at once and nothing is shut
down, but the disk (the overlay's upper dir) keeps what was written, as after a kernel crash. Each
boot gets a fresh network namespace, as after a real reboot.
"""

from __future__ import annotations

import pytest

from tests.system.conftest import (
    IFACES_BROKEN,
    IFACES_NEW,
    IFACES_OLD,
    MSG_BOOT_ROLLBACK,
    MSG_ROLLBACK_FAILED,
    MSG_ROLLED_BACK,
    apply_interfaces,
)
from tests.system.nspawn import Machine

pytestmark = [pytest.mark.system, pytest.mark.timeout(600)]


def boot_unit_state(m: Machine) -> dict[str, str]:
    return m.show(
        "netcfg-txn-boot-rollback.service",
        "ActiveState",
        "Result",
        "ExecMainStatus",
        "ActiveEnterTimestampMonotonic",
    )


def test_first_boot_nothing_to_do(txn_machine: Machine) -> None:
    """R28: no transaction -> the boot unit succeeds and changes nothing; the daemon is up."""
    m = txn_machine
    m.boot()
    st = boot_unit_state(m)
    assert (st["ActiveState"], st["Result"], st["ExecMainStatus"]) == ("active", "success", "0")
    assert m.exec("systemctl", "--failed", "--plain", "--no-legend").stdout.strip() == ""
    assert m.show("netcfg-txnd.service", "ActiveState")["ActiveState"] == "active"
    assert m.read("/etc/network/interfaces") == IFACES_OLD
    assert m.peer_reaches("192.0.2.1")
    assert m.cli_ok("status")["state"] == "idle"


def test_crash_before_confirm_is_rolled_back_before_networking(txn_machine: Machine) -> None:
    m = txn_machine
    m.boot()
    assert m.peer_reaches("192.0.2.1")
    txn = m.cli_ok("start", "--timeout", "10m", "--label", "crash test")["transaction"]
    apply_interfaces(m, IFACES_BROKEN)
    assert "192.0.2.99/24" in m.ipv4()
    assert not m.peer_ping("192.0.2.1")

    m.kill()  # crash with the transaction open and the broken config applied
    m.boot()

    # The boot unit ran, succeeded, and finished before network-pre.target and networking.
    st = boot_unit_state(m)
    assert (st["ActiveState"], st["Result"], st["ExecMainStatus"]) == ("active", "success", "0")
    rolled = int(st["ActiveEnterTimestampMonotonic"])
    pre = int(
        m.show("network-pre.target", "ActiveEnterTimestampMonotonic")[
            "ActiveEnterTimestampMonotonic"
        ]
    )
    net = int(
        m.show("networking.service", "InactiveExitTimestampMonotonic")[
            "InactiveExitTimestampMonotonic"
        ]
    )
    assert 0 < rolled <= pre <= net, (rolled, pre, net)

    # Networking came up with the old configuration: the peer reaches the old address.
    assert m.read("/etc/network/interfaces") == IFACES_OLD
    assert m.ipv4() == ["192.0.2.1/24"]
    assert m.peer_reaches("192.0.2.1")

    # Recorded: history, and the journal message of the boot unit.
    last = m.cli_ok("history", "--limit", "1")["history"][0]
    assert (last["id"], last["phase"], last["reason"]) == (txn["id"], "rolled-back", "boot")
    assert m.cli_ok("status")["state"] == "idle"
    done = m.journal(f"MESSAGE_ID={MSG_BOOT_ROLLBACK}")
    assert [e.get("TXN_ID") for e in done] == [txn["id"]], done


def test_committed_change_survives_a_crash(txn_machine: Machine) -> None:
    """R29: once commit returned, a crash right after it never rolls the change back."""
    m = txn_machine
    m.boot()
    txn = m.cli_ok("start", "--timeout", "10m")["transaction"]
    apply_interfaces(m, IFACES_NEW)
    assert m.peer_reaches("192.0.2.3")
    m.cli_ok("commit")

    m.kill()
    m.boot()

    st = boot_unit_state(m)
    assert (st["ActiveState"], st["Result"], st["ExecMainStatus"]) == ("active", "success", "0")
    assert m.read("/etc/network/interfaces") == IFACES_NEW
    assert m.ipv4() == ["192.0.2.3/24"]
    assert m.peer_reaches("192.0.2.3")
    history = m.cli_ok("history")["history"]
    assert [(h["id"], h["phase"]) for h in history] == [(txn["id"], "committed")]
    assert m.journal(f"MESSAGE_ID={MSG_BOOT_ROLLBACK}") == []
    assert m.journal(f"MESSAGE_ID={MSG_ROLLED_BACK}") == []


def test_failed_boot_rollback_fails_the_unit(txn_machine: Machine) -> None:
    """R28: a restore that fails exits non-zero, so `systemctl --failed` shows the unit; the boot
    goes on (the daemon still starts) and the failure is recorded."""
    m = txn_machine
    m.boot()
    txn = m.cli_ok("start", "--timeout", "10m")["transaction"]
    # The managed file's path is now a non-empty directory: the restore cannot put the file back.
    m.sh(
        "rm /etc/network/interfaces; mkdir /etc/network/interfaces; touch /etc/network/interfaces/x"
    )
    m.kill()
    m.boot()

    st = boot_unit_state(m)
    assert (st["ActiveState"], st["Result"]) == ("failed", "exit-code"), st
    assert st["ExecMainStatus"] == "1"
    failed = m.exec("systemctl", "--failed", "--plain", "--no-legend").stdout
    assert "netcfg-txn-boot-rollback.service" in failed
    assert m.show("netcfg-txnd.service", "ActiveState")["ActiveState"] == "active"
    last = m.cli_ok("history", "--limit", "1")["history"][0]
    assert (last["id"], last["phase"], last["reason"]) == (txn["id"], "failed", "boot")
    assert any("/etc/network/interfaces" in e for e in last["errors"]), last
    msgs = m.journal(f"MESSAGE_ID={MSG_ROLLBACK_FAILED}", f"TXN_ID={txn['id']}")
    assert len(msgs) == 1, msgs
    assert "Traceback" not in m.journal_text("netcfg-txn-boot-rollback.service")
