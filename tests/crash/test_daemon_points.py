# SPDX-License-Identifier: GPL-3.0-or-later
"""A handful of crash points against the REAL daemon: strace attaches to the running netcfg-txnd
(``-f -p``: every thread) and kills it at a chosen syscall of start, commit, a manual rollback or
the timer's rollback; the daemon is restarted (its start-up recovery runs), stopped, and the same
invariants as the driver tier are checked. Each point is also run through the driver: the state
right after the kill must be the same, which shows the daemon runs the same code path.

Points are picked from the driver's counting run. strace counts per thread from the moment it
attaches, and each engine call runs in one worker thread, so the n-th call there is the driver's
n-th; ``write`` is never used (the daemon logs from that thread), and start's points avoid
``rename`` (its scan may save the stat cache, depending on file age).
"""

from __future__ import annotations

import contextlib
import dataclasses
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.crash import points, tree
from tests.daemon.harness import Daemon

pytestmark = pytest.mark.crash


@dataclasses.dataclass(frozen=True)
class Point:
    label: str
    op: str  # the driver operation (and verify's), "expire" = the timer's rollback
    pick: Callable[[points.Count], tuple[str, int]]


POINTS = [
    Point("start: last fsync (record renamed, not yet synced)", "start",
          lambda c: ("fsync", c.inside["fsync"])),
    Point("start: fsync after the snapshot is published", "start",
          lambda c: ("fsync", c.after("fsync", ("rename", c.find(
              "rename", lambda ln: ".partial" in ln))))),
    Point("start: syncfs barrier of the blobs", "start", lambda c: ("syncfs", 1)),
    Point("commit: the committed record's rename", "commit",
          lambda c: ("rename", c.find("rename", lambda ln: 'txn.json"' in ln))),
    Point("commit: rmdir of the snapshot (history written)", "commit", lambda c: ("rmdir", 1)),
    # Restores act through directory fds: every renameat/symlinkat is on a managed path.
    Point("rollback: first rename onto a managed file", "rollback", lambda c: ("renameat", 1)),
    Point("timer rollback: 5th utimensat of the restore", "expire", lambda c: ("utimensat", 5)),
    Point("timer rollback: 2nd symlink of the restore", "expire", lambda c: ("symlinkat", 2)),
]  # fmt: skip


def _daemon(case: points.Case) -> Daemon:
    return Daemon(case.dir, case.root, case.state, case.config, case.dir / "ctl.sock",
                  case.dir / "daemon.log")  # fmt: skip


@contextlib.contextmanager
def attached(pid: int, name: str, nth: int) -> Iterator[subprocess.Popen[str]]:
    """strace on every thread of ``pid``; counters start now, per thread."""
    s = subprocess.Popen(
        ["strace", "-f", "-p", str(pid), "-o", "/dev/null", "-e", f"trace={name}", "-e",
         f"inject={name}:signal=KILL:when={nth}"],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert s.stderr is not None
        line = s.stderr.readline()
        assert "attached" in line, line
        yield s
    finally:
        if s.poll() is None:
            s.terminate()
        s.wait(10)


@dataclasses.dataclass
class Templates:
    work: Path
    cases: dict[str, tuple[points.Case, points.Count]]  # driver op -> (template, its count)


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> Templates:
    work = tmp_path_factory.mktemp("dpoints")
    points.warm_bytecode(work / "pyc")
    out = Templates(work, {})
    for op in ("start", "commit", "rollback"):
        tmpl = points.make_case(work / f"tmpl-{op}", op)
        cnt = points.count(op, points.clone(tmpl, work / f"count-{op}"), work / f"{op}.trace")
        out.cases[op] = (tmpl, cnt)
    return out


@pytest.mark.parametrize("pt", POINTS, ids=[p.label.split(":")[0] + "-" + str(i)
                                            for i, p in enumerate(POINTS)])  # fmt: skip
def test_daemon_killed_at_a_crash_point_recovers_on_restart(
    templates: Templates, pt: Point
) -> None:
    work = templates.work
    tmpl, cnt = templates.cases["rollback" if pt.op == "expire" else pt.op]
    name, nth = pt.pick(cnt)
    label = f"daemon {pt.label} ({name} #{nth})"
    slug = f"{pt.op}-{name}-{nth}"

    # The driver killed at the same point: the reference for "the same code path".
    ref = points.clone(tmpl, work / f"ref-{slug}")
    drv_op = "rollback" if pt.op == "expire" else pt.op
    assert points.kill_at(drv_op, ref, name, cnt.offsets[name] + nth).returncode == -9

    case = points.clone(tmpl, work / f"d-{slug}")
    d = _daemon(case)
    try:
        d.start()
        if pt.op == "expire":
            r = d.cli("extend", "--timeout", "2s")
            assert r.rc == 0, r.out
        with attached(d.pid, name, nth):
            if pt.op == "expire":
                d.reap(15)  # the timer fires and the daemon dies at the point
            else:
                r = d.cli(pt.op)
                assert r.rc == 69, (r.rc, r.out, r.err)  # the daemon died under the request
                d.reap(15)
        assert d.proc is not None and d.proc.returncode == -9, d.log_text()

        after = tree.capture(case.root)
        assert after == tree.capture(ref.root), tree.describe(tree.capture(ref.root), after)
        assert points.normalized_state(case) == points.normalized_state(ref)

        def restart(c: points.Case) -> None:
            if pt.op == "expire":
                time.sleep(0.1)
            d.start()  # start-up recovery
            assert d.stop() == 0

        chk = points.verify(pt.op, case, "restart", False, label, recover=restart)
        assert not chk.problems, "\n".join(chk.problems)
    finally:
        d.kill()
