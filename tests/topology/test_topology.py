# SPDX-License-Identifier: GPL-3.0-or-later
"""Topology test, CI subset: ``scripts/topology-test --quick`` boots the .deb in a qemu VM (a
Debian kernel with bonding, 8021q and bridge, which this machine's kernel lacks) with ifupdown
managing bond0 + VLANs 10/20 + br0 carrying two VM taps, and runs two scenarios: VLAN 20's
address changed and br0's address changed, each rolled back by the timer. Every untouched path
must lose 0 packets with 0 carrier or ifindex changes, the taps must stay attached, and the
changed links must be restored exactly (see tests/topology/guest/nct-topology.py).

The whole matrix (6 stacks x 8 scenarios) is ``sudo scripts/topology-test``; this subset takes
about 2 min plus the image (~15 s when only the product changed, ~3 min on a clean machine).
Needs root and qemu-system-x86_64, like the power-cut tier (which shares the kernel layer);
skips with the reason otherwise, and with ``CI=true`` fails instead.
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


@pytest.mark.timeout(1500)
def test_bond_vlan_bridge_changes_roll_back_without_touching_the_rest(tmp_path: Path) -> None:
    if (why := _why_not()) is not None:
        if CI:
            pytest.fail(f"topology tier cannot run (CI=true forbids skipping): {why}")
        pytest.skip(why)
    out = tmp_path / "topology.json"
    p = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=1450,
    )
    report = p.stdout + "\n" + p.stderr[-6000:]
    m = re.search(r"^(\d+) passed, (\d+) failed$", p.stdout, re.M)
    assert m is not None, f"no summary line:\n{report}"
    assert p.returncode == 0 and m.group(2) == "0", f"topology scenarios failed:\n{report}"
    doc = json.loads(out.read_text())
    results = [r for stack in doc["stacks"] for r in stack["results"]]
    assert len(results) == int(m.group(1)) >= 2, report
    assert all(r["ok"] for r in results), report
