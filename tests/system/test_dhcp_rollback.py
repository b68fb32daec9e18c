# SPDX-License-Identifier: GPL-3.0-or-later
"""A rollback brings a DHCP interface back on a default Debian 12 server (ifupdown +
isc-dhcp-client, no resolvconf), with the .deb's sandboxed netcfg-txnd under a booted systemd.

dnsmasq in the peer namespace hands out leases with DNS options, so ``dhclient-script`` must
write ``/etc/resolv.conf``; run under the daemon's ``ProtectSystem=strict`` it could not (it
declined every lease and looped). The rollback's ifdown/ifup run through PID 1 instead: the lease
comes back, resolv.conf is written, and no dhclient is left in netcfg-txnd's cgroup."""

from __future__ import annotations

import ipaddress
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.system.conftest import IFACES_NEW, IFACES_OLD, apply_interfaces
from tests.system.nspawn import Machine, wait_for

pytestmark = [pytest.mark.system, pytest.mark.timeout(600)]

DHCP = "allow-hotplug eth1\niface eth1 inet dhcp\n"
STATIC = "allow-hotplug eth1\niface eth1 inet static\n    address 192.0.2.50/24\n"
BASE = "auto lo\niface lo inet loopback\n\n"
POOL = (ipaddress.IPv4Address("192.0.2.100"), ipaddress.IPv4Address("192.0.2.150"))


@pytest.fixture
def dnsmasq(txn_machine: Machine, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    m = txn_machine
    m.write("/etc/network/interfaces", BASE + DHCP)
    m.write("/etc/resolv.conf", "nameserver 198.51.100.53\n")
    m.boot()
    proc = subprocess.Popen(
        ["ip", "netns", "exec", m.pns, "dnsmasq", "--keep-in-foreground", "--no-resolv",
         "--no-hosts", "--port=0", "--interface=vp", "--bind-interfaces",
         "--dhcp-range=192.0.2.100,192.0.2.150,2m", "--dhcp-option=option:dns-server,192.0.2.2",
         "--dhcp-option=option:domain-search,example.test",
         f"--dhcp-leasefile={tmp_path / 'leases'}", "--log-dhcp"],
        stdout=subprocess.DEVNULL, stderr=open(tmp_path / "dnsmasq.log", "wb"),  # noqa: SIM115
    )  # fmt: skip
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def leased(m: Machine) -> str | None:
    for a in m.ipv4():
        if POOL[0] <= ipaddress.IPv4Address(a.split("/")[0]) <= POOL[1]:
            return a
    return None


def dhclients_in(m: Machine, unit: str) -> list[str]:
    cg = m.show(unit, "ControlGroup")["ControlGroup"]
    procs = m.exec("cat", f"/sys/fs/cgroup{cg}/cgroup.procs", check=False).stdout.split()
    names = [m.exec("cat", f"/proc/{p}/comm", check=False).stdout.strip() for p in procs]
    return [n for n in names if n == "dhclient"]


def test_timer_rollback_brings_the_dhcp_lease_and_resolv_conf_back(
    txn_machine: Machine, dnsmasq: subprocess.Popen[bytes]
) -> None:
    m = txn_machine
    m.exec("ifup", "eth1", timeout=90)  # as the admin would, from a root shell
    first = wait_for("a DHCP lease on eth1", lambda: leased(m), 60, 0.5)
    assert "nameserver 192.0.2.2" in m.read("/etc/resolv.conf")

    txn = m.cli_ok("start", "--timeout", "20s")["transaction"]
    m.exec("ifdown", "eth1", timeout=60)
    m.write("/etc/network/interfaces", BASE + STATIC)
    m.exec("ifup", "eth1", timeout=60)
    m.write("/etc/resolv.conf", "# replaced while the static config was on\n")
    assert m.ipv4() == ["192.0.2.50/24"]

    def ended() -> dict[str, object] | None:
        rc, doc = m.cli("history", "--limit", "1")
        h = (doc.get("history") or [None])[0]
        return h if rc == 0 and h and h["id"] == txn["id"] else None

    end = wait_for("the timer's rollback", ended, txn["deadline_wall_s"] - time.time() + 90, 0.5)
    if end["phase"] != "rolled-back":
        print(m.journal_text("netcfg-txnd.service"))
        print(m.exec("journalctl", "-b", "--no-pager", "-n", "150", check=False).stdout)
    assert (end["phase"], end["reason"]) == ("rolled-back", "timeout"), end["errors"]
    assert m.read("/etc/network/interfaces") == BASE + DHCP
    again = wait_for("the lease back on eth1", lambda: leased(m), 30, 0.5)
    assert "192.0.2.50/24" not in m.ipv4()

    def resolv_written() -> str | None:
        text = m.read("/etc/resolv.conf")
        return text if "nameserver 192.0.2.2" in text else None

    resolv = wait_for("dhclient-script to write /etc/resolv.conf", resolv_written, 30, 0.5)
    assert "search example.test" in resolv, resolv
    assert m.peer_reaches(again.split("/")[0])
    # dhclient runs for eth1, in a cgroup of its own, not in the daemon's
    assert m.exec("pgrep", "-f", "dhclient.*eth1", check=False).returncode == 0
    assert dhclients_in(m, "netcfg-txnd.service") == []
    assert "DHCPDECLINE" not in m.exec("journalctl", "-b", "--no-pager", check=False).stdout
    print(f"\nlease before {first}, after rollback {again}")


def test_failed_rollback_shows_in_systemctl_failed_until_retried(txn_machine: Machine) -> None:
    """Monitoring sees a failed rollback (``systemctl --failed``), ``status`` exits 1, and the
    documented retry (``rollback --force``) clears both once the cause is fixed."""
    m = txn_machine
    m.write("/etc/netcfg-txn/conf.d/50-hook.toml", '[apply]\ncommand = "test ! -e /run/nct-fail"\n')
    m.boot()
    m.exec("touch", "/run/nct-fail")
    txn = m.cli_ok("start", "--timeout", "5m")["transaction"]
    apply_interfaces(m, IFACES_NEW)
    rc, doc = m.cli("rollback")
    assert rc == 1 and doc["error"]["code"] == "failed", doc
    failed_units = m.exec("systemctl", "--failed", "--plain", "--no-legend").stdout
    assert "netcfg-txn-rollback-failed.service" in failed_units, failed_units
    desc = m.show("netcfg-txn-rollback-failed.service", "Description")["Description"]
    assert txn["id"] in desc and "rollback --force" in desc, desc
    assert m.cli("status")[0] == 1
    m.exec("rm", "/run/nct-fail")  # the cause is fixed
    retried = m.cli_ok("rollback", "--force")["transaction"]
    assert retried["phase"] == "rolled-back" and txn["id"] in retried["label"], retried
    failed_units = m.exec("systemctl", "--failed", "--plain", "--no-legend").stdout
    assert "netcfg-txn-rollback-failed" not in failed_units, failed_units
    assert m.cli("status")[0] == 0
    assert m.read("/etc/network/interfaces") == IFACES_OLD
    assert m.ipv4() == ["192.0.2.1/24"]
