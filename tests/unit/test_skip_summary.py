# SPDX-License-Identifier: GPL-3.0-or-later
"""The test command itself: every skip is listed with its reason, and CI=true fails on one."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _run(tmp_path: Path, ci: bool) -> subprocess.CompletedProcess[str]:
    shutil.copy(REPO / "tests/conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_demo.py").write_text(
        "import pytest\n"
        "def test_skipped():\n    pytest.skip('needs a frobnicator')\n"
        "def test_passes():\n    pass\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci:
        env["CI"] = "true"
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-c",
            os.devnull,
            "--rootdir",
            str(tmp_path),
            str(tmp_path),
        ],  # fmt: skip
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def test_skips_are_listed_with_reasons(tmp_path: Path) -> None:
    r = _run(tmp_path, ci=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 skipped" in r.stdout and "needs a frobnicator" in r.stdout
    assert "test_demo.py::test_skipped" in r.stdout


def test_a_skip_fails_the_run_under_ci(tmp_path: Path) -> None:
    r = _run(tmp_path, ci=True)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "CI=true: 1 skipped test(s) fail the run" in r.stdout
