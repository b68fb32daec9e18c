# SPDX-License-Identifier: GPL-3.0-or-later
"""Crash-point machinery: enumerate every filesystem-mutating syscall one engine operation makes,
kill a fresh driver process at each of them in turn, recover, and check the invariants.

strace counts injections *per syscall and per tracee* (strace(1): "Accounting of syscalls that
are subject to injection is done per syscall and per tracee"), so a crash point is a pair
(syscall name, n): ``-e inject=NAME:signal=KILL:when=n`` kills the driver on entering its n-th
NAME call, before the call runs (the kernel skips a syscall entered with a fatal signal
pending). Enumerating every n of every NAME the operation uses covers every mutating call of the
operation exactly once: a kill at a call leaves the state after all calls before it, from
"nothing done" to "all but the last call"; the uninterrupted counting run is checked as well.
The driver is single-threaded and forks nothing inside the operation, so per-tracee counting is
unambiguous.

strace pitfalls met here (strace 6.1): ``--seccomp-bpf`` makes counting runs cheap but silently
disables ``signal=`` injection (``error=`` still works), so kill runs go without it; a ``-P
PATH`` filter matched nothing (so injected nothing), so points are chosen by (name, n) only.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from netcfg_txn.core.model import Actor, Phase
from netcfg_txn.engine import Engine
from netcfg_txn.host import configfiles
from netcfg_txn.host.clock import SystemClock
from netcfg_txn.net.choose import make_network
from netcfg_txn.store import fsutil
from tests.crash import tree

DRIVER = Path(__file__).with_name("driver.py")
ACTOR = Actor(kind="local", uid=0, pid=os.getpid(), command="pytest-crash")

# Every syscall that can change a file, a directory or its metadata. The counting run shows which
# of them the code really uses; only those get crash points.
MUTATING = (
    "write", "pwrite64", "writev", "pwritev", "pwritev2", "fsync", "fdatasync", "syncfs", "sync",
    "rename", "renameat", "renameat2", "unlink", "unlinkat", "mkdir", "mkdirat", "rmdir",
    "chmod", "fchmod", "fchmodat", "chown", "fchown", "fchownat", "lchown", "symlink",
    "symlinkat", "link", "linkat", "utimensat", "utimes", "futimesat", "setxattr", "lsetxattr",
    "fsetxattr", "removexattr", "lremovexattr", "fremovexattr", "truncate", "ftruncate",
    "fallocate", "copy_file_range", "sendfile",
)  # fmt: skip
MARKERS = ("access", "faccessat", "faccessat2")

ENV = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0"}


def warm_bytecode(cache: Path) -> None:
    """Compile the driver's imports once into a private pycache (``PYTHONPYCACHEPREFIX``): the
    tree is never byte-compiled here (PYTHONDONTWRITEBYTECODE), and compiling the engine in every
    crash-point process would double its cost. Runs after this one read the cache, write nothing."""
    ENV["PYTHONPYCACHEPREFIX"] = str(cache)
    env = {k: v for k, v in ENV.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run([sys.executable, "-c", "import netcfg_txn.engine, netcfg_txn.net.choose, "
                    "netcfg_txn.host.clock, ctypes, json, argparse"],
                   env=env, capture_output=True, check=True, timeout=60)  # fmt: skip


_LINE = re.compile(r"^(\d+)\s+([a-z0-9_]+)\((.*)$")


@dataclasses.dataclass
class Case:
    dir: Path
    root: Path
    state: Path
    config: Path
    pre: dict[str, Any]  # the snapshot set
    new: dict[str, Any] | None  # the new set (None for start: nothing is edited)
    txn_id: str | None


def engine(case: Case) -> Engine:
    cfg = configfiles.load(case.config, state_dir=case.state)
    return Engine(case.root, cfg, SystemClock(), make_network(cfg, root=case.root))


def make_case(d: Path, op: str) -> Case:
    """A fresh fake root (and, except for start, an open transaction plus the edit)."""
    d.mkdir(parents=True)
    root, state, cfg = d / "root", d / "state", d / "netcfg-txn.toml"
    cfg.write_text(tree.CONFIG)
    tree.build(root)
    case = Case(d, root, state, cfg, tree.capture(root), None, None)
    if op != "start":
        t, _token = engine(case).start(ACTOR, timeout_s=3600)
        case.txn_id = t.id
        tree.edit(root)
        case.new = tree.capture(root)
    return case


def clone(template: Case, d: Path) -> Case:
    """A byte-identical copy of a case (owners, modes, xattrs, mtimes, symlinks: ``cp -a``), so
    every crash point starts from exactly the state the counting run started from."""
    subprocess.run(["cp", "-a", str(template.dir), str(d)], check=True)
    return dataclasses.replace(
        template, dir=d, root=d / "root", state=d / "state", config=d / "netcfg-txn.toml"
    )


def argv(op: str, case: Case) -> list[str]:
    return [sys.executable, str(DRIVER), op, "--root", str(case.root), "--state-dir",
            str(case.state), "--config", str(case.config)]  # fmt: skip


# ---------------------------------------------------------------------------------- strace


@dataclasses.dataclass(frozen=True)
class Count:
    offsets: Counter[str]  # calls of each name before the operation began (interpreter start-up)
    inside: Counter[str]  # calls of each name inside the operation
    result: dict[str, Any]
    calls: list[tuple[str, int, str]]  # (name, n-th of that name in the operation, trace line)

    def find(self, name: str, pred: Callable[[str], bool] = lambda line: True) -> int:
        """n (within the operation) of the first ``name`` call whose trace line matches."""
        return next(n for nm, n, line in self.calls if nm == name and pred(line))

    def after(self, name: str, first: tuple[str, int]) -> int:
        """n of the first ``name`` call that comes after call ``first`` (name, n)."""
        i = next(i for i, (nm, n, _) in enumerate(self.calls) if (nm, n) == first)
        return next(n for nm, n, _ in self.calls[i + 1 :] if nm == name)

    def points(self) -> list[tuple[str, int]]:
        return [
            (name, self.offsets[name] + k)
            for name in sorted(self.inside)
            for k in range(1, self.inside[name] + 1)
        ]


def count(op: str, case: Case, trace: Path) -> Count:
    """Run the operation once under strace and count its mutating calls per syscall name."""
    p = subprocess.run(
        ["strace", "-f", "--seccomp-bpf", "-o", str(trace), "-e",
         "trace=" + ",".join(MUTATING + MARKERS), *argv(op, case)],
        capture_output=True, text=True, env=ENV, timeout=60,
    )  # fmt: skip
    assert p.returncode in (0, 1), p.stderr
    lines = trace.read_text(errors="replace").splitlines()
    driver_pid = next(
        m.group(1) for ln in lines if (m := _LINE.match(ln)) and "nct-crash-begin" in ln
    )
    offsets: Counter[str] = Counter()
    inside: Counter[str] = Counter()
    calls: list[tuple[str, int, str]] = []
    where = offsets
    for ln in lines:
        m = _LINE.match(ln)
        if m is None or m.group(1) != driver_pid:
            continue
        name = m.group(2)
        if name in MARKERS:
            if "nct-crash-begin" in ln:
                where = inside
            elif "nct-crash-end" in ln:
                break
            continue
        where[name] += 1
        if where is inside:
            calls.append((name, inside[name], ln))
    return Count(offsets, inside, json.loads(p.stdout), calls)


def inject(op: str, case: Case, spec: str) -> subprocess.CompletedProcess[str]:
    name = spec.split(":", 1)[0]
    fast = [] if "signal=" in spec else ["--seccomp-bpf"]  # see the module docstring
    return subprocess.run(
        ["strace", "-f", *fast, "-o", "/dev/null", "-e", f"trace={name}", "-e",
         f"inject={spec}", *argv(op, case)],
        capture_output=True, text=True, env=ENV, timeout=60,
    )  # fmt: skip


def kill_at(op: str, case: Case, name: str, nth: int) -> subprocess.CompletedProcess[str]:
    return inject(op, case, f"{name}:signal=KILL:when={nth}")


# ------------------------------------------------------------------------------- invariants


def raw_txn(case: Case) -> dict[str, Any] | None:
    try:
        doc = json.loads((case.state / "txn.json").read_bytes())
    except FileNotFoundError:
        return None
    return doc if isinstance(doc, dict) else None


def state_leftovers(state: Path) -> list[str]:
    """Temp files and partial snapshots in the state directory."""
    out = []
    for dirpath, dirnames, filenames in os.walk(state):
        for n in dirnames + filenames:
            if n.startswith("."):
                out.append(os.path.relpath(os.path.join(dirpath, n), state))
    return sorted(out)


_TEMP = re.compile(r"^(\..+?)\.[^.]+(\.[0-9]+)?\.tmp$")


def normalized_state(case: Case) -> list[str]:
    """The state dir's file names with transaction ids and random temp-name parts normalized, so
    two runs killed at the same point can be compared. Locks, stat cache and the last good config
    left out."""
    out = []
    t = raw_txn(case)
    for dirpath, dirnames, filenames in os.walk(case.state):
        for n in dirnames + filenames:
            rel = os.path.relpath(os.path.join(dirpath, n), case.state)
            # The daemon also keeps its last good config (not transaction state).
            if n in (
                "daemon.lock",
                "statcache.json",
                "applied.json",
                "last-good-config.json",
                "backstop.lock",
            ) or n.startswith((".statcache.json.", ".last-good-config.json.")):
                continue
            rel = re.sub(r"\d{8}T\d{6}-[0-9a-f]{6}", "ID", rel)
            head, _, name = rel.rpartition("/")
            if m := _TEMP.match(name):
                name = m.group(1) + ".*.tmp"
            out.append(f"{head}/{name}" if head else name)
    if t is not None:
        out.append(f"txn.json: phase={t.get('phase')} stage={t.get('stage')}")
    return sorted(out)


def boot_rollback(case: Case) -> None:
    """What 'netcfg-txn boot-rollback' does: the daemon lock, then recover(boot=True)."""
    eng = engine(case)
    eng.store.ensure()
    fd = fsutil.take_lock(eng.store.lock_path)
    try:
        eng.recover(boot=True)
    finally:
        os.close(fd)


def history(case: Case) -> list[tuple[str, str, str | None]]:
    """(id, phase, reason) of every finished transaction, oldest first."""
    return [
        (e.txn.id, e.txn.phase.value, e.txn.reason.value if e.txn.reason else None)
        for e in reversed(list(engine(case).store.history()))
    ]


class Checker:
    """Collects every broken invariant of one crash point instead of stopping at the first."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.problems: list[str] = []  # broken invariants of the managed files / transaction
        self.managed_temps: list[str] = []  # temp files left in managed directories
        self.state_temps: list[str] = []  # temp files / partial snapshots left in the state dir
        self.killed = False

    def check(self, ok: bool, what: str) -> bool:
        if not ok:
            self.problems.append(f"{self.label}: {what}")
        return ok

    def files(self, case: Case, want: dict[str, Any], name: str) -> bool:
        got = tree.capture(case.root)
        return self.check(got == want, f"files are not exactly the {name} set:\n"
                          + tree.describe(want, got))  # fmt: skip

    def clean(self, case: Case) -> None:
        if left := tree.leftovers(case.root):
            self.managed_temps.append(f"{self.label}: temp files left in managed dirs: {left}")
        if left := state_leftovers(case.state):
            self.state_temps.append(f"{self.label}: temp files left in the state dir: {left}")


def verify(
    op: str,
    case: Case,
    recovery: str,
    driver_ok: bool,
    label: str = "",
    recover: Callable[[Case], None] | None = None,
) -> Checker:
    """Recover as ``recovery`` says ("restart": recover(boot=False), what the daemon does when it
    starts; "boot": boot-rollback) — or with ``recover`` (e.g. restarting the real daemon) — and
    check the invariants of ``op``. ``driver_ok``: the operation itself returned success."""
    c = Checker(label or f"{op} (uninterrupted, recovery: {recovery})")
    before = raw_txn(case)
    if recover is not None:
        recover(case)
    elif recovery == "boot":
        boot_rollback(case)
    else:
        engine(case).recover(boot=False)
    eng = engine(case)
    t = eng.current()
    hist = history(case)
    c.clean(case)

    if op == "start":
        c.files(case, case.pre, "pre-start")  # start never touches managed files
        if t is None:
            c.check(not eng.store.complete_snapshots(), "no transaction but a snapshot is left")
            c.check(not driver_ok, "start returned success but no transaction survived")
            t2, _ = eng.start(ACTOR, timeout_s=60)  # a later start works
            eng.rollback(ACTOR)
        else:
            c.check(t.phase is Phase.OPEN, f"start left a {t.phase.value} transaction")
            eng.store.snapshot_manifest(t.id)  # complete: raises if not
            tree.edit(case.root)
            eng.rollback(ACTOR)
            c.files(case, case.pre, "pre-start (after rolling back the surviving txn)")
        c.clean(case)
        return c

    assert case.new is not None
    mine = [h for h in hist if h[0] == case.txn_id]
    c.check(len(mine) <= 1, f"transaction recorded {len(mine)} times in history: {mine}")
    committed_before = (before is not None and before.get("phase") == "committed") or (
        before is None and any(h[1] == "committed" for h in mine)
    )
    if op == "commit" and (driver_ok or committed_before):
        # The commit point was reached: nothing may roll it back, not even boot recovery (R29).
        c.check(t is None, f"committed txn still recorded after recovery: {t}")
        c.check([h[1] for h in mine] == ["committed"], f"history: {mine}")
        c.files(case, case.new, "new (committed)")
        return c
    if op == "commit" and before is not None and before.get("phase") not in ("open", None):
        c.check(False, f"unexpected phase before recovery: {before.get('phase')}")
    if op == "commit" and recovery == "restart" or (op in ("rollback", "expire") and before
                                                    and before.get("phase") == "open"):  # fmt: skip
        # Crashed before its commit point: still open, files untouched; the snapshot must work.
        if not c.check(t is not None and t.phase is Phase.OPEN, f"expected open txn, got {t}"):
            return c
        c.files(case, case.new, "new (transaction still open)")
        eng.rollback(ACTOR)
        c.files(case, case.pre, "snapshot (after a later rollback)")
        c.clean(case)
        return c
    # Everything else has rolled back by now: rollback resumed, boot-rollback, or a commit that
    # never reached its commit point followed by boot recovery.
    c.check(t is None, f"transaction still recorded after recovery: {t}")
    c.files(case, case.pre, "snapshot")
    want_reason = {"rollback": "manual", "expire": "timeout", "boot-rollback": "boot",
                   "commit": "boot"}[op]  # fmt: skip
    c.check([h[1:] for h in mine] == [("rolled-back", want_reason)], f"history: {mine}")
    return c


# ------------------------------------------------------------------------------------ runner


@dataclasses.dataclass
class Report:
    op: str
    recoveries: tuple[str, ...]
    counts: dict[str, int]  # mutating calls inside the operation, per syscall
    points: int = 0  # crash runs (points x recoveries)
    killed: int = 0
    seconds: float = 0.0
    problems: list[str] = dataclasses.field(default_factory=list)
    managed_temps: list[str] = dataclasses.field(default_factory=list)
    state_temps: list[str] = dataclasses.field(default_factory=list)

    def add(self, c: Checker) -> None:
        self.problems += c.problems
        self.managed_temps += c.managed_temps
        self.state_temps += c.state_temps

    def summary(self) -> str:
        per = ", ".join(f"{k}={v}" for k, v in sorted(self.counts.items()))
        return (
            f"crash points: {self.op}: {sum(self.counts.values())} mutating calls ({per}); "
            f"{self.points} kill runs x recovery {'/'.join(self.recoveries)}, {self.killed} "
            f"killed, {len(self.problems)} broken invariants, {len(self.managed_temps)} with "
            f"temp files in managed dirs, {len(self.state_temps)} with temp files in the state "
            f"dir; {self.seconds:.1f}s"
        )


def run_points(op: str, work: Path, recoveries: tuple[str, ...], *, workers: int = 3) -> Report:
    """Count the operation's mutating calls, then kill it at each one and verify recovery."""
    t0 = time.monotonic()
    template = make_case(work / "template", op)
    base = clone(template, work / "count")
    cnt = count(op, base, work / "count.trace")
    rep = Report(op, recoveries, dict(cnt.inside))
    # The uninterrupted run must satisfy the same invariants.
    rep.add(verify(op, base, recoveries[0], bool(cnt.result.get("ok"))))
    shutil.rmtree(base.dir)
    jobs = [(p, r) for p in cnt.points() for r in recoveries]

    def one(i: int, point: tuple[str, int], recovery: str) -> Checker:
        name, nth = point
        case = clone(template, work / f"p{i}")
        label = f"{op} killed at {name} #{nth - cnt.offsets[name]} (recovery: {recovery})"
        try:
            proc = kill_at(op, case, name, nth)
            if proc.returncode != -9:
                c = Checker(label)
                c.check(False, f"not killed (rc={proc.returncode}): {proc.stdout}"
                        f"{proc.stderr[-500:]}")  # fmt: skip
                return c
            c = verify(op, case, recovery, driver_ok=False, label=label)
            c.killed = True
            return c
        finally:
            shutil.rmtree(case.dir, ignore_errors=True)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for c in pool.map(lambda a: one(*a), [(i, p, r) for i, (p, r) in enumerate(jobs)]):
            rep.points += 1
            rep.killed += c.killed
            rep.add(c)
    rep.seconds = time.monotonic() - t0
    return rep
