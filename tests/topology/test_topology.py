# SPDX-License-Identifier: GPL-3.0-or-later
"""Topology test, CI subset: ``scripts/topology-test --quick`` boots the .deb in a qemu VM (a
Debian kernel with bonding, 8021q and bridge, which this machine's kernel lacks) with ifupdown
managing bond0 + VLANs 10/20 + br0 carrying two VM taps, and runs two scenarios: VLAN 20's
address changed and br0's address changed, each rolled back by the timer. Every untouched path
must lose 0 packets with 0 carrier or ifindex changes, the taps must stay attached, and the
changed links must be restored exactly (see tests/topology/guest/nct-topology.py).

The whole matrix (6 stacks x 9 scenarios) is ``sudo scripts/topology-test``; this subset takes
about 2 min plus the image (~15 s when only the product changed, ~3 min on a clean machine).
Needs root and qemu-system-x86_64, like the power-cut tier (which shares the kernel layer);
skips with the reason otherwise, and with ``CI=true`` fails instead.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.vmtier import require_vm, run_quick

pytestmark = [pytest.mark.system, pytest.mark.slow]


@pytest.mark.timeout(1500)
def test_bond_vlan_bridge_changes_roll_back_without_touching_the_rest(tmp_path: Path) -> None:
    require_vm("topology")
    passed, doc, report = run_quick(
        "topology-test", tmp_path / "topology.json", 1450, "topology scenarios"
    )
    results = [r for stack in doc["stacks"] for r in stack["results"]]
    assert passed == len(results) >= 2, report
    assert all(r["ok"] for r in results), report
