# SPDX-License-Identifier: GPL-3.0-or-later
"""What the qemu VM tiers (tests/powercut, tests/topology) share: when they can run, and running
their script's CI subset, which prints one ``N passed, N failed`` line and writes ``--json``."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _why_not() -> str | None:
    if not sys.platform.startswith("linux"):
        return "needs Linux"
    if os.geteuid() != 0:
        return "needs root (debootstrap, chroot, mkfs.ext4 -d)"
    if shutil.which("apt-get") is None and shutil.which("qemu-system-x86_64") is None:
        return "needs qemu-system-x86_64 (apt-get install qemu-system-x86 qemu-utils)"
    return None


def require_vm(tier: str) -> None:
    """Skip with the reason, or fail under ``CI=true`` (the scripts install what they need)."""
    if (why := _why_not()) is not None:
        if CI:
            pytest.fail(f"{tier} tier cannot run (CI=true forbids skipping): {why}")
        pytest.skip(why)


def run_quick(
    script: str, out: Path, timeout_s: float, what: str
) -> tuple[int, dict[str, Any], str]:
    """``scripts/<script> --quick --json OUT``; asserts it ran every scenario and all passed.
    Returns (how many passed, the JSON document, the report to show on a later failure)."""
    p = subprocess.run(
        [sys.executable, str(REPO / "scripts" / script), "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    report = p.stdout + "\n" + p.stderr[-6000:]
    m = re.search(r"^(\d+) passed, (\d+) failed$", p.stdout, re.M)
    assert m is not None, f"no summary line:\n{report}"
    assert p.returncode == 0 and m.group(2) == "0", f"{what} failed:\n{report}"
    return int(m.group(1)), json.loads(out.read_text()), report
