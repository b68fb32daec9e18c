# SPDX-License-Identifier: GPL-3.0-or-later
"""A full or failing state disk during ``start``: ENOSPC on a real (small tmpfs) state directory
under the real daemon, then ENOSPC at every write and EIO at every fsync/syncfs of start (strace
error injection). Start must fail with a clear error, leave no transaction and no partial
snapshot or temp file, never touch the managed files, and a later start must work."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from netcfg_txn.store.files import StatCache
from tests.crash import points, tree
from tests.crash.conftest import unavailable
from tests.daemon.harness import Daemon, config, make
from tests.waiting import wait_for

pytestmark = pytest.mark.crash

# ---------------------------------------------------------------------- a real full disk


def _in_ns(d: Daemon, *argv: str) -> None:
    subprocess.run(["nsenter", "-t", str(d.pid), "-m", *argv], check=True, capture_output=True)


def _view(d: Daemon) -> Path:
    """The state dir as the daemon sees it (its tmpfs lives in its own mount namespace)."""
    return Path(f"/proc/{d.pid}/root") / str(d.state).lstrip("/")


def _listing(p: Path) -> list[str]:
    return sorted(str(Path(dp, n).relative_to(p)) for dp, ds, fs in os.walk(p) for n in ds + fs)


@pytest.fixture
def full_disk_daemon(tmp_path: Path) -> Any:
    for tool in ("unshare", "nsenter", "mount"):
        if shutil.which(tool) is None:
            unavailable(f"needs {tool} (util-linux)")
    d = make(tmp_path / "full", config())
    # 20 managed files of 48 KiB: ~1 MiB of blobs for a 256 KiB state filesystem.
    for i in range(20):
        p = d.root / f"etc/network/interfaces.d/big{i:02d}"
        p.write_bytes(os.urandom(48 * 1024))
    d.state.mkdir()
    script = 'mount -t tmpfs -o size=256k,mode=0700 nct-state "$0" && exec "$@"'
    d.wrapper = ("unshare", "-m", "--propagation", "private", "sh", "-c", script, str(d.state))
    try:
        d.start()
        yield d
    finally:
        d.kill()


def test_start_on_a_full_state_dir_fails_and_leaves_nothing(full_disk_daemon: Daemon) -> None:
    d = full_disk_daemon
    files = d.files()
    view = _view(d)
    before = _listing(view)
    r = d.cli("start", "--timeout", "1h")
    assert r.rc not in (0, 75), (r.rc, r.out)
    doc = r.doc  # still exactly one JSON document
    assert doc["ok"] is False
    assert d.running(), "the daemon must survive a full disk"
    assert not (view / "txn.json").exists()
    assert _listing(view) == before, "no partial snapshot, blob or temp file may stay behind"
    assert d.files() == files
    st = d.cli("status").doc
    assert st["state"] == "idle"
    # More room (the same daemon, the same mount): start works.
    _in_ns(d, "mount", "-o", "remount,size=16m", str(d.state))
    ok = d.cli("start", "--timeout", "1h")
    assert ok.rc == 0, ok.out
    assert ok.doc["transaction"]["file_count"] == 24
    assert d.cli("rollback").rc == 0
    assert d.files() == files


def test_start_on_a_full_state_dir_says_why(full_disk_daemon: Daemon) -> None:
    r = full_disk_daemon.cli("start", "--timeout", "1h")
    err = r.doc["error"]
    assert (r.rc, err["code"]) == (1, "failed"), (r.rc, err)
    assert "No space left on device" in err["message"]
    assert str(full_disk_daemon.state) in err["message"]


# --------------------------------------------------------------- every write, every fsync


@dataclasses.dataclass
class Outcome:
    point: str
    result: dict[str, Any]  # the driver's JSON line
    txn_open: bool  # a transaction is recorded right after the failed start
    leftovers: list[str]  # partial/unreferenced snapshots and temp files right after it
    after_recovery: list[str]  # problems left after recover(boot=False) + a later start
    files_ok: bool


FAULTS = {"enospc": (("write", "ENOSPC"),), "eio": (("fsync", "EIO"), ("syncfs", "EIO"))}


def _run_faults(work: Path, kind: str) -> list[Outcome]:
    tmpl = points.make_case(work / f"tmpl-{kind}", "start")
    cnt = points.count("start", points.clone(tmpl, work / f"count-{kind}"), work / "trace")
    out = []
    for name, err in FAULTS[kind]:
        for k in range(1, cnt.inside[name] + 1):
            case = points.clone(tmpl, work / f"{kind}-{name}-{k}")
            p = points.inject("start", case, f"{name}:error={err}:when={cnt.offsets[name] + k}")
            try:
                res = json.loads(p.stdout)
            except ValueError:
                res = {"ok": None, "stdout": p.stdout, "stderr": p.stderr[-800:]}
            eng = points.engine(case)
            t = eng.current()
            left = [s for s in os.listdir(case.state / "snapshots") if t is None or s != t.id]
            left += points.state_leftovers(case.state)
            files_ok = tree.capture(case.root) == case.pre and not tree.leftovers(case.root)
            problems = []
            eng.recover(boot=False)
            if t is None and os.listdir(case.state / "snapshots"):
                problems.append(f"snapshots after recovery: {os.listdir(case.state / 'snapshots')}")
            if leftover := points.state_leftovers(case.state):
                problems.append(f"temp files after recovery: {leftover}")
            if t is None:
                t2, _ = eng.start(points.ACTOR, timeout_s=60)  # a later start works
                eng.rollback(points.ACTOR)
            out.append(Outcome(f"{name}:error={err}:when=#{k}", res, t is not None,
                               sorted(set(left)), problems, files_ok))  # fmt: skip
    return out


@pytest.fixture(scope="module")
def faults(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], list[Outcome]]:
    work = tmp_path_factory.mktemp("faults")
    cache: dict[str, list[Outcome]] = {}

    def get(kind: str) -> list[Outcome]:
        if kind not in cache:
            if not cache:
                points.warm_bytecode(work / "pyc")
            cache[kind] = _run_faults(work, kind)
        return cache[kind]

    return get


@pytest.mark.parametrize("kind", list(FAULTS))
def test_start_reports_the_fault_and_recovery_cleans_up(
    faults: Callable[[str], list[Outcome]], kind: str
) -> None:
    outs = faults(kind)
    assert len(outs) >= (20 if kind == "enospc" else 5)
    errno_ = {"enospc": 28, "eio": 5}[kind]
    for o in outs:
        assert o.result.get("ok") is False, (o.point, o.result)
        assert o.result.get("errno") == errno_, (o.point, o.result)
        assert o.files_ok, o.point
        assert not o.after_recovery, (o.point, o.after_recovery)


@pytest.mark.parametrize(
    "kind",
    [
        "enospc",
        "eio",
    ],
)  # fmt: skip
def test_a_failed_start_leaves_no_transaction(
    faults: Callable[[str], list[Outcome]], kind: str
) -> None:
    bad = [o.point for o in faults(kind) if o.txn_open]
    assert not bad, f"start failed but left an open transaction at: {bad}"


@pytest.mark.parametrize("kind", list(FAULTS))
def test_a_failed_start_leaves_no_partial_or_orphan_snapshot(
    faults: Callable[[str], list[Outcome]], kind: str
) -> None:
    bad = [(o.point, o.leftovers) for o in faults(kind) if o.leftovers and not o.txn_open]
    assert not bad, "\n".join(map(str, bad))


def test_status_on_a_full_state_dir_leaves_no_temp_file(full_disk_daemon: Daemon) -> None:
    """status rescans the managed files (against the baseline) and saves the stat cache; on a
    full disk that save fails (the cache is only a hint) and must leave no temp file behind."""
    d = full_disk_daemon
    _in_ns(d, "mount", "-o", "remount,size=16m", str(d.state))
    assert d.cli("start", "--timeout", "1h").rc == 0
    assert d.cli("commit").rc == 0  # a baseline: status now compares against it
    d.path("etc/network/interfaces.d/big00").write_bytes(b"edited outside a transaction\n")
    _in_ns(d, "mount", "-o", "remount,size=2m", str(d.state))
    view = _view(d)
    with open(view / "filler", "wb", buffering=0) as f, contextlib.suppress(OSError):
        while True:
            f.write(b"\0" * 4096)
    # The scenario needs a stat cache to save: entries are only recorded for files whose
    # ctime is older than its racy window, so wait until every managed file's is.
    newest = max(p.stat().st_ctime for p in d.root.rglob("*") if p.is_file())
    wait_for(lambda: time.time() > newest + StatCache.RACY_S + 0.2, "the racy window to pass")
    before = _listing(view)
    st = d.cli("status")
    assert st.rc == 0, st.out
    assert st.doc["pending"] == ["/etc/network/interfaces.d/big00"]
    assert _listing(view) == before
