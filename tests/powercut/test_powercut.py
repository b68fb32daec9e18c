# SPDX-License-Identifier: GPL-3.0-or-later
"""Power-cut test, CI subset: scripts/powercut-test --quick boots the .deb in a qemu VM and cuts
its power inside start's snapshot, inside a rollback's restore and right after a commit, then
checks after each reboot that the managed files are exactly the snapshot or exactly the committed
set (see tests/powercut/guest/nct-powercut.py for the scenarios).

The full set (18 scenarios, 20 boots, ~16 min under TCG on 2 CPUs) is
``sudo scripts/powercut-test``; this subset takes ~4 min plus the image (~20 s when only the
product changed, ~3 min on a clean machine). Needs root, qemu-system-x86_64 (the script installs
qemu-system-x86, qemu-utils, debootstrap with apt-get on a clean Debian machine) and ~3 GB under
/var/cache/netcfg-txn-test. Skips with the reason otherwise; with ``CI=true`` it fails instead,
like the other system tiers.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.vmtier import require_vm, run_quick

pytestmark = [pytest.mark.system, pytest.mark.slow]


@pytest.mark.timeout(1800)
def test_power_cuts_leave_snapshot_or_committed_set(tmp_path: Path) -> None:
    require_vm("power-cut")
    passed, doc, report = run_quick(
        "powercut-test", tmp_path / "powercut.json", 1750, "power-cut scenarios"
    )
    assert all(r["ok"] for r in doc["results"]), report
    assert passed == len(doc["results"]) >= 3
