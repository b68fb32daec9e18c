# SPDX-License-Identifier: GPL-3.0-or-later
"""Crash tier: needs root (chown, mount namespaces) and strace. Skips with the reason otherwise;
with ``CI=true`` it fails instead, so CI can never pass by skipping."""

from __future__ import annotations

import os
import shutil

import pytest

CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def why_not() -> str | None:
    if os.geteuid() != 0:
        return "needs root (chown of fixture files, mount namespaces, strace)"
    if shutil.which("strace") is None:
        return "needs strace (apt-get install strace)"
    return None


def unavailable(why: str) -> None:
    """Skip with the reason; with CI=true, fail instead."""
    if CI:
        pytest.fail(f"crash tier cannot run (CI=true forbids skipping): {why}")
    pytest.skip(why)


@pytest.fixture(autouse=True)
def _crash_tier_requirements() -> None:
    if (why := why_not()) is not None:
        unavailable(why)


# Summary lines of the crash tier ("crash points: OP: ..."), printed at the end of the run.
SUMMARY: list[str] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if SUMMARY:
        terminalreporter.section("crash points")
        for line in SUMMARY:
            terminalreporter.write_line(line)
