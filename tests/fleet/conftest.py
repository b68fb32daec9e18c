# SPDX-License-Identifier: GPL-3.0-or-later
"""Fleet tier: real ``ansible-playbook`` (ansible-core from PyPI in the test venv) rolling a
network change out with the ``netcfg_txn.txn`` collection over simulated hosts (see ``lab.py``).

``NCTF_HOSTS`` sets the fleet size (default 10, what CI runs; ``scripts/fleet-test --hosts 100``).
Needs root, openssh-server, ifupdown and ansible-core; skips with the reason otherwise, and fails
under ``CI=true``, where scripts/test installs all of them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fleet import lab

CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def fleet_size() -> int:
    return int(os.environ.get("NCTF_HOSTS", "10"))


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[lab.Fleet]:
    if (why := lab.why_not()) is not None:
        if CI:
            pytest.fail(f"fleet tier cannot run (CI=true forbids skipping): {why}")
        pytest.skip(why)
    with lab.fleet(tmp_path / "fleet", fleet_size()) as f:
        yield f
