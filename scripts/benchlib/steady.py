# SPDX-License-Identifier: GPL-3.0-or-later
"""Steady state: many start/rollback round trips on one daemon, the history filling up.

Method. One netcfg-txnd over 1,000 files of 2 KB (quick: 200), ``[state] history = 20``
(quick: 10). Each round trip: ``start`` through the API, every file rewritten with new content
(so each rollback archives 1,000 new blobs and, once the history is full, the entry it drops
frees 1,000), ``sync``, the rollback through the API (timed). After 50 round trips (quick: 25) the
daemon's ``VmRSS``. Rows: the median rollback of the first 5 round trips (history still nearly
empty) next to the median of the round trips after the history is full; the RSS after the last.
"""

from __future__ import annotations

import time
from pathlib import Path

from benchlib.common import (
    Daemon,
    Row,
    make_tree,
    median,
    progress,
    rewrite_tree,
    sync,
    write_config,
)
from benchlib.idle import _status_kb


def bench(work: Path, quick: bool, reps: int | None) -> list[Row]:
    nfiles, keep, rounds = (200, 10, 25) if quick else (1000, 20, 50)
    base = work / "steady"
    root = base / "root"
    progress(f"steady: {rounds} start/rollback round trips of {nfiles} files, history {keep}")
    paths = make_tree(root / "etc" / "bench", nfiles, 2048)
    cfg = write_config(base / "netcfg-txn.toml", ["/etc/bench/*/*"], f"[state]\nhistory = {keep}\n")
    starts: list[float] = []
    rbs: list[float] = []
    with Daemon(root, base / "state", cfg, base / "control") as d:
        for i in range(rounds):
            sync()
            t0 = time.perf_counter()
            d.call("POST", "/v1/transactions", {"timeout": "1h", "allow_pending": True})
            starts.append((time.perf_counter() - t0) * 1e3)
            rewrite_tree(paths)
            sync()
            t0 = time.perf_counter()
            d.call("POST", "/v1/transactions/current/rollback", {})
            rbs.append((time.perf_counter() - t0) * 1e3)
            if i % 10 == 9 or i == rounds - 1:
                progress(
                    f"steady #{i + 1}: start {starts[-1]:.0f} ms, rollback {rbs[-1]:.0f} ms, "
                    f"RSS {_status_kb(d.pid, 'VmRSS') / 1024:.1f} MB"
                )
        rss = _status_kb(d.pid, "VmRSS") / 1024
        hwm = _status_kb(d.pid, "VmHWM") / 1024
        blobs = sum(1 for p in (base / "state" / "blobs").iterdir() if not p.name.startswith("."))
    early_rb, late_rb = rbs[:5], rbs[keep + 1 :]
    early_st, late_st = starts[:5], starts[keep + 1 :]
    e, la = median(early_rb), median(late_rb)
    es, ls = median(early_st), median(late_st)
    assert e is not None and la is not None and es is not None and ls is not None
    desc = f"{nfiles:,} files"
    return [
        Row(
            f"full rollback, {desc}, full history ({keep} entries)",
            la,
            "ms",
            e,
            "(history 0–4 entries)",
            "≤ 1.25× (finalize as with no history)",
            la <= 1.25 * e,
            len(late_rb),
            samples=late_rb,
            baseline_samples=early_rb,
            note=f"steady state: {blobs:,} blobs in the store after {rounds} round trips",
        ),
        Row(
            f"start, {desc}, full history ({keep} entries)",
            ls,
            "ms",
            es,
            "(history 0–4 entries)",
            "≤ 1.25×",
            ls <= 1.25 * es,
            len(late_st),
            samples=late_st,
            baseline_samples=early_st,
        ),
        Row(
            f"netcfg-txnd RSS after {rounds} start/rollback round trips of {desc}",
            rss,
            "MB",
            None,
            "",
            "≤ 60 MB",
            rss <= 60,
            1,
            note=f"peak (VmHWM) {hwm:.1f} MB",
        ),
    ]
