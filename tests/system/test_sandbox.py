# SPDX-License-Identifier: GPL-3.0-or-later
"""The sandbox of netcfg-txnd.service must not break what the daemon and its children do.

A oneshot unit built from the *real* unit file (same [Service] settings; only Type=, ExecStart=
and the restart/watchdog settings replaced) runs, as the daemon would: ifdown/ifup (children),
a rewrite of a managed file in place, chown, netlink writes with pyroute2, ICMP, and imports of
every C extension the daemon loads (MemoryDenyWriteExecute=, SystemCallFilter=). It also checks
that the sandbox is in force: /etc outside the managed directories is read-only.
"""

from __future__ import annotations

import pytest

from tests.system.conftest import IFACES_NEW, REPO
from tests.system.nspawn import Machine

pytestmark = [pytest.mark.system, pytest.mark.timeout(300)]

_DROP = (
    "Type",
    "NotifyAccess",
    "ExecStart",
    "ExecReload",
    "Restart",
    "RestartSec",
    "WatchdogSec",
    "TimeoutAbortSec",
)

PROBE = r"""
set -u
exec 2>&1
step() { echo "== $1"; }
step ifdown; ifdown eth1 && echo ok
step rewrite; cat /run/nct-new-interfaces >/etc/network/.interfaces.tmp \
    && mv /etc/network/.interfaces.tmp /etc/network/interfaces && echo ok
step ifup; ifup eth1 && echo ok
step chown; chown 65534:65534 /etc/network/interfaces \
    && chown 0:0 /etc/network/interfaces && echo ok
step netlink; python3 -c '
from pyroute2 import IPRoute
with IPRoute() as ipr:
    i = ipr.link_lookup(ifname="eth1")[0]
    ipr.link("set", index=i, state="down")
    ipr.link("set", index=i, state="up")
print("ok")'
step ping; ping -n -q -c 1 -W 2 192.0.2.2 >/dev/null && echo ok
step imports; python3 -c '
import ctypes, os, aiohttp.web, psutil, pyroute2, systemd.daemon, systemd.journal, yaml
# What store/watch.py does through ctypes: inotify on a managed directory.
libc = ctypes.CDLL(None, use_errno=True)
fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
assert fd >= 0 and libc.inotify_add_watch(fd, b"/etc/network", 0x2 | 0x8) >= 0, ctypes.get_errno()
os.close(fd)
print("ok", psutil.Process().name())'
step state; touch /var/lib/netcfg-txn/.nct-probe && rm /var/lib/netcfg-txn/.nct-probe && echo ok
step backstop-timer; systemd-run --quiet --unit=nct-probe-bs --on-active=1h \
    --timer-property=AccuracySec=100ms true && systemctl stop nct-probe-bs.timer && echo ok
step readonly; if touch /etc/nct-forbidden 2>/dev/null; then echo writable; else echo ok; fi
"""


def sandbox_unit() -> str:
    out = []
    section = ""
    for line in (REPO / "units/netcfg-txnd.service").read_text().splitlines():
        s = line.strip()
        if s.startswith("["):
            section = s
            if section == "[Install]":
                break
        elif section == "[Service]" and s.split("=", 1)[0] in _DROP:
            continue
        out.append(line)
    out += [
        "Type=oneshot",
        "ExecStart=/bin/sh /run/nct-probe.sh",
        "StandardOutput=file:/run/nct-probe.out",
    ]
    return "\n".join(out) + "\n"


def test_children_and_restores_work_inside_the_sandbox(txn_machine: Machine) -> None:
    m = txn_machine
    m.boot()
    m.write("/run/nct-probe.sh", PROBE)
    m.write("/run/nct-new-interfaces", IFACES_NEW)
    m.write("/run/systemd/system/nct-probe.service", sandbox_unit())
    m.exec("systemctl", "daemon-reload")
    m.exec("systemctl", "start", "nct-probe.service", check=False, timeout=120)
    out = m.read("/run/nct-probe.out")
    results = {}
    for block in out.split("== ")[1:]:
        name, _, rest = block.partition("\n")
        results[name] = rest.strip()
    failed = {
        k: v
        for k, v in results.items()
        if not v.splitlines() or not v.splitlines()[-1].startswith("ok")
    }
    assert len(results) == 10 and not failed, out
    assert m.ipv4() == ["192.0.2.3/24"]
    assert m.read("/etc/network/interfaces") == IFACES_NEW
    assert m.peer_reaches("192.0.2.3")
