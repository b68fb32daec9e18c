# SPDX-License-Identifier: GPL-3.0-or-later
"""Topology tier, CI subset: scripts/topology-test --quick boots the .deb in a qemu VM (a Debian
kernel with bonding, 8021q and bridge) and, under ifupdown, builds bond0 (2 members) carrying
VLANs 10 and 20, br0 on VLAN 10 with two VM taps, and a plain link; then lets the timer roll back
a change of VLAN 20's address and one of br0's address while peers in namespaces ping across
every untouched path. Every untouched interface must lose no packet and see no link change, the
taps must stay attached, and the changed interface must be restored exactly.

The full matrix (6 stacks x 8 scenarios, one boot per stack) is ``sudo scripts/topology-test``.
Needs root and qemu (installed by the script with apt-get on a clean Debian machine); skips
with the reason otherwise, and with ``CI=true`` fails instead, like the other system tiers.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "topology-test"
CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

pytestmark = [pytest.mark.system, pytest.mark.slow]


def _why_not() -> str | None:
    if not sys.platform.startswith("linux"):
        return "needs Linux"
    if os.geteuid() != 0:
        return "needs root (debootstrap, chroot, mkfs.ext4 -d)"
    if shutil.which("apt-get") is None and shutil.which("qemu-system-x86_64") is None:
        return "needs qemu-system-x86_64 (apt-get install qemu-system-x86 qemu-utils)"
    return None


@pytest.mark.timeout(2400)
def test_bridge_and_vlan_address_rollbacks_leave_the_rest_untouched(tmp_path: Path) -> None:
    if (why := _why_not()) is not None:
        if CI:
            pytest.fail(f"topology tier cannot run (CI=true forbids skipping): {why}")
        pytest.skip(why)
    out = tmp_path / "topology.json"
    p = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=2350,
    )
    report = p.stdout + "\n" + p.stderr[-4000:]
    m = re.search(r"^(\d+) passed, (\d+) failed$", p.stdout, re.M)
    assert m is not None, f"no summary line:\n{report}"
    assert p.returncode == 0 and m.group(2) == "0", f"topology scenarios failed:\n{report}"
    doc = json.loads(out.read_text())
    results = [r for st in doc["stacks"] for r in st["results"]]
    assert len(results) == 2, report
    for r in results:
        assert r["ok"] and r["lost"] == 0 and not r["link_changes"] and r["restored"], r
        sent = sum(p["sent"] for p in r["pings"].values())
        assert sent > 0, f"no ping measured anything: {r}"
    br0 = next(r for r in results if r["scenario"] == "br0-addr")
    assert "br0" not in br0["bounced"] and {"vm1", "vm2"} <= set(br0["pings"]), br0
