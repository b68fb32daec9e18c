# SPDX-License-Identifier: GPL-3.0-or-later
"""Snapshot (``start``), full rollback and second snapshot against ``cp -a`` + ``sync``.

Method. Each repetition uses a fresh state directory and a fresh daemon, so every ``start`` is a
true first snapshot (no blob exists yet). Timed: the API call over the control socket
(``POST /v1/transactions`` / ``.../rollback``), i.e. the daemon's work plus one local HTTP round
trip; the CLI adds its interpreter start-up on top (see the ``status`` row). Every file is then
rewritten (new content, same size) and a rollback restores all of them. Before every timed
operation, product and baseline alike, ``sync`` flushes what the benchmark itself wrote, so
nobody pays for the other's dirty pages. The baseline copies the same tree with ``cp -a`` to the
same file system and runs ``sync``; it runs in the same repetition loop, interleaved.

Second snapshot: start (first) → commit → start again on the unchanged files. The files are
older than the stat cache's 2 s racy window, as configuration files are. Also measured with the
stat cache file deleted (what the second snapshot costs without it) and the commit itself.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from benchlib.common import (
    Daemon,
    Row,
    make_tree,
    median,
    progress,
    rewrite_tree,
    run,
    sync,
    timed,
    write_config,
)


def _cp_sync(src: Path, dst: Path) -> float:
    sync()
    t = timed(lambda: (run(["cp", "-a", str(src), str(dst)]), run(["sync"])))
    shutil.rmtree(dst)
    return t


def bench_set(
    work: Path, label: str, nfiles: int, size: int, reps: int, second: bool, budget_s: float
) -> list[Row]:
    """``reps`` repetitions, fewer if they take longer than ``budget_s`` (then n says so)."""
    base = work / f"files-{label}"
    root = base / "root"
    top = root / "etc" / "bench"
    progress(f"files {label}: creating {nfiles} files of {size} bytes")
    paths = make_tree(top, nfiles, size)
    cfg = write_config(base / "netcfg-txn.toml", ["/etc/bench/*/*"])
    total_mb = nfiles * size / 1e6
    snap, rb, cp = [], [], []
    t_set = time.monotonic()
    for i in range(reps):
        if i and time.monotonic() - t_set > budget_s:
            progress(f"files {label}: time budget of {budget_s:g}s spent after {i} repetitions")
            break
        cp.append(_cp_sync(top, base / "copy"))
        state = base / f"state-{i}"
        with Daemon(root, state, cfg, base / "control") as d:
            sync()
            snap.append(
                timed(
                    lambda: d.call(
                        "POST", "/v1/transactions", {"timeout": "1h", "allow_pending": True}
                    )
                )
            )
            rewrite_tree(paths)
            sync()
            t0 = time.perf_counter()
            doc = d.call("POST", "/v1/transactions/current/rollback", {})
            rb.append(time.perf_counter() - t0)
            results = doc["transaction"]["results"]
            restored = sum(1 for r in results if r["ok"] and r["action"] in ("rewrite", "recreate"))
            if restored != nfiles:
                raise RuntimeError(f"rollback restored {restored} of {nfiles} files")
        shutil.rmtree(state)
        progress(
            f"files {label} #{i + 1}: start {snap[-1] * 1e3:.0f} ms, rollback "
            f"{rb[-1] * 1e3:.0f} ms, cp -a+sync {cp[-1] * 1e3:.0f} ms"
        )
    desc = f"{nfiles:,} files, {total_mb:.1f} MB" if total_mb >= 1 else f"{nfiles} files"
    ms = [x * 1e3 for x in snap]
    rbs = [x * 1e3 for x in rb]
    cps = [x * 1e3 for x in cp]
    rows = []
    b = median(cps)
    assert b is not None
    for name, xs, factor, absolute in (
        (f"start (first snapshot), {desc}", ms, 2, 30.0),
        (f"full rollback, {desc}", rbs, 3, 40.0),
    ):
        m = median(xs)
        assert m is not None
        if nfiles <= 20:  # a fixed cost (fsyncs) against one sync: an absolute target
            target, met = f"≤ {absolute:g} ms", m <= absolute
        else:
            target, met = f"≤ {factor}× baseline", m <= factor * b
        rows.append(
            Row(
                name,
                m,
                "ms",
                b,
                "(cp -a + sync)",
                target,
                met,
                len(xs),
                samples=xs,
                baseline_samples=cps,
            )
        )
    if second:
        rows += _second_snapshot(base, root, cfg, paths, reps, desc, budget_s)
    shutil.rmtree(base)
    return rows


def _second_snapshot(
    base: Path, root: Path, cfg: Path, paths: list[Path], reps: int, desc: str, budget_s: float
) -> list[Row]:
    # The rollbacks above rewrote every file: wait until the newest is past the stat cache's
    # racy window (2 s), as any configuration file is that was not written this very moment.
    newest = max(p.stat().st_ctime for p in paths)
    time.sleep(max(0.0, newest + 2.2 - time.time()))
    first, second, nocache, commit = [], [], [], []
    body = {"timeout": "1h", "allow_pending": True}
    t_set = time.monotonic()
    for i in range(reps):
        if i and time.monotonic() - t_set > budget_s:
            progress(f"second snapshot: time budget of {budget_s:g}s spent after {i} repetitions")
            break
        state = base / f"state2-{i}"
        with Daemon(root, state, cfg, base / "control") as d:
            sync()
            first.append(timed(lambda: d.call("POST", "/v1/transactions", body)))
            sync()
            commit.append(timed(lambda: d.call("POST", "/v1/transactions/current/confirm", {})))
            sync()
            second.append(timed(lambda: d.call("POST", "/v1/transactions", body)))
            d.call("POST", "/v1/transactions/current/confirm", {})
            (state / "statcache.json").unlink(missing_ok=True)
            sync()
            nocache.append(timed(lambda: d.call("POST", "/v1/transactions", body)))
            d.call("POST", "/v1/transactions/current/confirm", {})
        shutil.rmtree(state)
        progress(
            f"second snapshot #{i + 1}: first {first[-1] * 1e3:.0f} ms, second "
            f"{second[-1] * 1e3:.0f} ms, second w/o stat cache {nocache[-1] * 1e3:.0f} ms, "
            f"commit {commit[-1] * 1e3:.0f} ms"
        )
    f = [x * 1e3 for x in first]
    s = [x * 1e3 for x in second]
    n = [x * 1e3 for x in nocache]
    c = [x * 1e3 for x in commit]
    mf, ms_, mn, mc = median(f), median(s), median(n), median(c)
    assert mf is not None and ms_ is not None and mn is not None and mc is not None
    return [
        Row(
            f"second start, unchanged {desc}",
            ms_,
            "ms",
            mf,
            "(first start)",
            "≤ 5% of first",
            ms_ <= 0.05 * mf,
            len(s),
            samples=s,
            baseline_samples=f,
        ),
        Row(
            f"second start, unchanged {desc}",
            mn,
            "ms",
            mf,
            "(first start)",
            "",
            None,
            len(n),
            variant="stat cache deleted",
            samples=n,
            baseline_samples=f,
        ),
        Row(
            f"commit, {desc}",
            mc,
            "ms",
            mf,
            "(first start)",
            "",
            None,
            len(c),
            variant="informational",
            samples=c,
            baseline_samples=f,
        ),
    ]


def bench(work: Path, quick: bool, reps: int | None) -> list[Row]:
    """Full: 20 files, 1,000 files, 10,000 files / 100 MB (5 repetitions, at most ~5 min a set).
    Quick: 20 files, 200 files, 1,000 files / 10 MB (3 repetitions, at most ~8 s a set)."""
    if quick:
        sets = [("20", 20, 2048, False), ("200", 200, 2048, False), ("1k-10MB", 1000, 10_000, True)]
        n, budget = reps or 3, 8.0
    else:
        sets = [
            ("20", 20, 2048, False),
            ("1k", 1000, 2048, False),
            ("10k-100MB", 10_000, 10_000, True),
        ]
        n, budget = reps or 5, 150.0
    rows: list[Row] = []
    for label, nfiles, size, second in sets:
        rows += bench_set(work, label, nfiles, size, n, second, budget)
    return rows
