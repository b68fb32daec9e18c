# SPDX-License-Identifier: GPL-3.0-or-later
"""Session-wide rules of the test command: no skip goes unnoticed.

At the end of every run, each skipped test is listed with its reason. Under ``CI=true`` a skip is
a failure of the session: CI installs everything the tiers need, so a skip there means evidence
silently went missing (a tool not installed, a condition that no longer holds).
"""

from __future__ import annotations

import os

import pytest

CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

_SKIPS: list[tuple[str, str]] = []  # (test id, reason)


def skip_reason(report: pytest.TestReport) -> str:
    """The reason pytest records for a skip: ``(file, line, "Skipped: why")`` or plain text."""
    lr = report.longrepr
    if isinstance(lr, tuple) and len(lr) == 3:
        text = str(lr[2])
    else:
        text = str(lr)
    return text.removeprefix("Skipped: ")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        _SKIPS.append((report.nodeid, skip_reason(report)))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    tr = terminalreporter
    if not _SKIPS:
        tr.write_line("skipped: 0")
        return
    tr.section(f"{len(_SKIPS)} skipped", sep="=", yellow=True)
    by_reason: dict[str, list[str]] = {}
    for nodeid, why in _SKIPS:
        by_reason.setdefault(why, []).append(nodeid)
    for why, ids in sorted(by_reason.items(), key=lambda kv: -len(kv[1])):
        tr.write_line(f"{len(ids):4d}  {why}")
        for nodeid in ids[:5]:
            tr.write_line(f"        {nodeid}")
        if len(ids) > 5:
            tr.write_line(f"        ... and {len(ids) - 5} more")
    if CI:
        tr.write_line(f"CI=true: {len(_SKIPS)} skipped test(s) fail the run", red=True, bold=True)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if CI and _SKIPS and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
