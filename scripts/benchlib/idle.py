# SPDX-License-Identifier: GPL-3.0-or-later
"""The daemon at rest with an armed transaction: memory and wake-ups.

Method. netcfg-txnd runs with ``NOTIFY_SOCKET`` pointing at a datagram socket of the benchmark
and ``WATCHDOG_USEC=20000000`` (as under its unit's ``WatchdogSec=20s``: a ping every 10 s). A
transaction over 20 files is started with a 1 h timeout; after 1 s of settling, the benchmark
reads ``voluntary_ctxt_switches`` + ``nonvoluntary_ctxt_switches`` of every thread
(``/proc/PID/task/*/status``), waits the window (10 s; 5 s with --quick), reads them again and
counts the WATCHDOG=1 datagrams that arrived. A daemon with no periodic wake-up of its own
switches about once per ping. RSS is ``VmRSS`` at the end of the window (``VmHWM``: the peak),
USS from psutil (memory only this process has).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

from benchlib.common import BIN, REPO, Daemon, Row, make_tree, progress, write_config


def _threads(pid: int) -> dict[int, int]:
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                cs = 0
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        cs += int(line.split()[1])
            out[int(tid)] = cs
        except FileNotFoundError:
            pass
    return out


def _status_kb(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def bench(work: Path, quick: bool, reps: int | None) -> list[Row]:
    """With this venv's dependencies, and again with Debian 12's (``.venv-floor``: pyroute2
    0.7.2, aiohttp 3.8.4 ...: what the .deb runs with) if scripts/test has built it."""
    window = 3.0 if quick else 10.0
    rows = _one(work / "idle", window, BIN, "")
    floor = REPO / ".venv-floor" / "bin"
    if not quick and (floor / "netcfg-txnd").exists():
        rows += _one(work / "idle-floor", window, floor, "Debian 12 deps")
    return rows


def _one(base: Path, window: float, bindir: Path, label: str) -> list[Row]:
    from benchlib import common

    saved, common.BIN = common.BIN, bindir
    try:
        return _measure(base, window, label)
    finally:
        common.BIN = saved


def _measure(base: Path, window: float, label: str) -> list[Row]:
    root = base / "root"
    make_tree(root / "etc" / "bench", 20, 2048)
    cfg = write_config(base / "netcfg-txn.toml", ["/etc/bench/*/*"])
    notify_path = base / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify_path))
    sock.settimeout(0.2)
    pings: list[float] = []
    stop = threading.Event()

    def receive() -> None:
        while not stop.is_set():
            try:
                msg = sock.recv(4096)
            except TimeoutError:
                continue
            if b"WATCHDOG=1" in msg:
                pings.append(time.monotonic())

    rx = threading.Thread(target=receive, daemon=True)
    rx.start()
    env = {"NOTIFY_SOCKET": str(notify_path), "WATCHDOG_USEC": "20000000"}
    try:
        with Daemon(root, base / "state", cfg, base / "control", env=env) as d:
            d.call("POST", "/v1/transactions", {"timeout": "1h", "allow_pending": True})
            time.sleep(1.0)
            before = _threads(d.pid)
            t0 = time.monotonic()
            time.sleep(window)
            after = _threads(d.pid)
            t1 = time.monotonic()
            rss = _status_kb(d.pid, "VmRSS") / 1024
            hwm = _status_kb(d.pid, "VmHWM") / 1024
            try:
                import psutil

                uss = psutil.Process(d.pid).memory_full_info().uss / 2**20
            except Exception:
                uss = float("nan")
            nthreads = len(after)
    finally:
        stop.set()
        rx.join(2)
        sock.close()
    per_thread = {tid: after.get(tid, 0) - before.get(tid, 0) for tid in after}
    total = sum(per_thread.values())
    n_pings = sum(1 for t in pings if t0 <= t <= t1)
    rate = total / (t1 - t0)
    ping_rate = n_pings / (t1 - t0)
    busy = {tid: cs for tid, cs in sorted(per_thread.items()) if cs}
    tag = f" ({label})" if label else ""  # progress lines
    progress(
        f"idle{tag}: {total} context switches in {t1 - t0:.1f}s over {nthreads} threads "
        f"(per thread: {busy}), {n_pings} watchdog pings; RSS {rss:.1f} MB"
    )
    deps = label or "this venv's deps"
    # Met if nothing wakes beyond the pings (one switch each, plus one of slack for the window).
    return [
        Row(
            "netcfg-txnd RSS, idle, transaction armed",
            rss,
            "MB",
            None,
            "",
            "≤ 60 MB",
            rss <= 60,
            1,
            variant=deps,
            note=f"{deps}: peak (VmHWM) {hwm:.1f} MB, USS {uss:.1f} MB, {nthreads} threads",
        ),
        Row(
            "netcfg-txnd context switches, idle",
            rate,
            "/s",
            ping_rate,
            "(watchdog pings/s)",
            "no wake-ups beyond the ping",
            total <= n_pings + 1,
            1,
            variant=deps,
            note=f"{deps}: {total} context switches in {t1 - t0:.0f} s over {nthreads} threads "
            f"(per thread with any: {list(busy.values())}), {n_pings} watchdog ping(s)",
            extra={"per_thread": busy, "pings": n_pings, "window_s": t1 - t0},
        ),
    ]
