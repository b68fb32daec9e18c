# SPDX-License-Identifier: GPL-3.0-or-later
"""Safety rules 1-2 (R11, R16, R29, R30): kill start, commit, rollback and boot-rollback at every
filesystem-mutating syscall they make, recover, and check that the managed files are exactly the
snapshot set or exactly the new set (content, mode, owner, symlink target, xattrs), that a start
leaves no transaction or a complete one, and that a commit which reached its commit point is
never rolled back — not even by boot recovery.

How points are enumerated and counted: see ``points.py``. The per-operation counts are printed
in the "crash points" section at the end of the run.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.crash import conftest, points, tree

pytestmark = pytest.mark.crash

# operation -> how recovery runs after the kill ("restart": recover(boot=False), what the daemon
# does at start-up; "boot": boot-rollback). A commit is recovered both ways: boot recovery is
# the one that must never undo a commit that reached its commit point (R29).
OPS: dict[str, tuple[str, ...]] = {
    "start": ("restart",),
    "commit": ("restart", "boot"),
    "rollback": ("restart",),
    "boot-rollback": ("boot",),
}
# At least this many mutating calls per operation (24 managed files): guards against a counting
# run that silently saw nothing.
MIN_CALLS = {"start": 60, "commit": 10, "rollback": 100, "boot-rollback": 100}


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], points.Report]:
    """Runs each operation's crash points once (lazily) and shares the report between tests."""
    work = tmp_path_factory.mktemp("crash")
    cache: dict[str, points.Report] = {}
    warmed: list[bool] = []

    def get(op: str) -> points.Report:
        if not warmed:
            points.warm_bytecode(work / "pyc")
            warmed.append(True)
        if op not in cache:
            cache[op] = points.run_points(op, work / op, OPS[op])
            conftest.SUMMARY.append(cache[op].summary())
        return cache[op]

    return get


def _show(problems: list[str], n: int = 8) -> str:
    more = f"\n... and {len(problems) - n} more" if len(problems) > n else ""
    return "\n".join(p[:1500] for p in problems[:n]) + more


@pytest.mark.parametrize("op", list(OPS))
def test_every_crash_point_recovers_to_exactly_one_side(
    report: Callable[[str], points.Report], op: str
) -> None:
    rep = report(op)
    assert sum(rep.counts.values()) >= MIN_CALLS[op], rep.summary()
    assert rep.points == sum(rep.counts.values()) * len(OPS[op])
    assert rep.killed == rep.points, _show(rep.problems)
    assert not rep.problems, _show(rep.problems)


@pytest.mark.parametrize(
    "op",
    [
        "start",
        "commit",
        "rollback",
        "boot-rollback",
    ],
)  # fmt: skip
def test_no_temp_files_left_in_managed_dirs_after_recovery(
    report: Callable[[str], points.Report], op: str
) -> None:
    rep = report(op)
    assert not rep.managed_temps, _show(rep.managed_temps)


@pytest.mark.parametrize("op", list(OPS))
def test_no_temp_files_left_in_the_state_dir_after_recovery(
    report: Callable[[str], points.Report], op: str
) -> None:
    rep = report(op)
    assert not rep.state_temps, _show(rep.state_temps)


def test_driver_runs_one_operation_per_process(tmp_path: Path) -> None:
    """The driver itself: each operation in a fresh process, one JSON line out."""
    case = points.make_case(tmp_path / "c", "start")
    for op in ("start", "recover", "rollback"):
        p = subprocess.run(points.argv(op, case), capture_output=True, text=True, env=points.ENV)
        assert p.returncode == 0, p.stderr
        assert json.loads(p.stdout)["ok"] is True
    assert tree.capture(case.root) == case.pre
