# SPDX-License-Identifier: GPL-3.0-or-later
"""Deadline → rollback latency, idle and under a flood of bad requests.

Method. A transaction over 20 small files is started through the API with a short timeout; the
answer carries ``deadline_wall_s`` (the daemon's wall-clock deadline). One file is then edited and
synced. The benchmark watches the file's directory with inotify and records the wall time at which
the snapshot version is renamed back into place (IN_MOVED_TO: the first file restored). The
latency is that time minus ``deadline_wall_s``. Both clocks are this machine's CLOCK_REALTIME, read
in two processes; the daemon keeps its deadline in CLOCK_BOOTTIME, which runs at the same rate.
Secondary figure: the arrival time of the daemon's ``rolling back (timeout)`` log line (stderr,
timestamped by the benchmark as the line arrives), i.e. when the rollback began.

"Flood": ``benchlib.flood`` sends 1,000 bad requests per second from another process for the
whole measurement, open loop: (1) on the control socket (keep-alive; a third of them take the
state lock: wrong-token confirms; the rest are malformed JSON and unknown routes); (2) on the
remote TLS API (127.0.0.1, throwaway PKI from tests/pki.py) with a new TCP connection and TLS
handshake for every request, what an attacker on the network can do (wrong tokens, which the
daemon's per-address limiter turns into cheap 429s). The achieved rate and the answer times are
reported with each row.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchlib.common import (
    REPO,
    Daemon,
    MoveWatch,
    Row,
    make_tree,
    median,
    progress,
    sync,
    write_config,
)

TIMEOUT_S = 1.5


def _measure(d: Daemon, edited: Path, watch: MoveWatch) -> tuple[float, float]:
    start = d.call("POST", "/v1/transactions", {"timeout": f"{TIMEOUT_S}s", "allow_pending": True})
    deadline = float(start["transaction"]["deadline_wall_s"])
    mark = len(d.lines)
    watch.clear()
    edited.write_bytes(b"edited\n")
    sync()
    if time.time() > deadline - 0.3:
        raise RuntimeError("the edit took longer than the timeout; raise TIMEOUT_S")
    restored = watch.wait(edited.name, TIMEOUT_S + 30)
    began, _ = d.wait_line("rolling back (timeout)", mark, 30)
    d.wait_line("rolled-back (timeout)", mark, 30)
    return (restored - deadline) * 1e3, (began - deadline) * 1e3


def _series(
    d: Daemon, edited: Path, watch: MoveWatch, reps: int, label: str
) -> tuple[list[float], list[float]]:
    first, began = [], []
    for i in range(reps):
        a, b = _measure(d, edited, watch)
        first.append(a)
        began.append(b)
        progress(
            f"latency {label} #{i + 1}: first file restored {a:.1f} ms after the deadline "
            f"(rollback began {b:.1f} ms)"
        )
    return first, began


def _tls(base: Path, root: Path) -> tuple[str, str, str] | None:
    """Enable the remote TLS API on 127.0.0.1 with a throwaway PKI (tests/pki.py): returns the
    ``[remote]`` config, the base URL and the CA file, or None if that cannot be set up here."""
    sys.path.insert(0, str(REPO))
    try:
        from tests.pki import make_pki

        pki = make_pki(base / "pki")
    except Exception as e:
        progress(f"latency: no TLS variant (cannot make a PKI: {e})")
        return None
    tls = root / "etc" / "netcfg-txn" / "tls"
    tls.mkdir(parents=True)
    (root / "etc" / "netcfg-txn" / "peers.d").mkdir()
    shutil.copyfile(pki.server_cert, tls / "cert.pem")
    shutil.copyfile(pki.server_key, tls / "key.pem")
    (tls / "key.pem").chmod(0o600)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    toml = (
        f'[remote]\nlisten = ["127.0.0.1:{port}"]\n'
        'tls_cert = "/etc/netcfg-txn/tls/cert.pem"\ntls_key = "/etc/netcfg-txn/tls/key.pem"\n'
        'peers_dir = "/etc/netcfg-txn/peers.d"\n'
    )
    return toml, f"https://127.0.0.1:{port}", str(pki.ca)


def bench(work: Path, quick: bool, reps: int | None) -> list[Row]:
    n = reps or (3 if quick else 7)
    base = work / "latency"
    root = base / "root"
    paths = make_tree(root / "etc" / "bench", 20, 2048)
    tls = None if quick else _tls(base, root)
    cfg = write_config(base / "netcfg-txn.toml", ["/etc/bench/*/*"], tls[0] if tls else "")
    edited = paths[0]
    watch = MoveWatch(edited.parent)
    floods: list[tuple[str, list[str]]] = []
    results: list[tuple[str, list[float], list[float], dict[str, Any]]] = []
    try:
        with Daemon(root, base / "state", cfg, base / "control") as d:
            idle, idle_began = _series(d, edited, watch, n, "idle")
            floods.append(("control socket", ["--socket", str(d.socket)]))
            if tls and not quick:
                floods.append(
                    ("TLS API, a new TLS connection each", ["--url", tls[1], "--cafile", tls[2],
                                                            "--new-connections"])
                )  # fmt: skip
            for label, target in floods:
                flood = subprocess.Popen(
                    [sys.executable, "-m", "benchlib.flood", *target, "--rate", "1000",
                     "--concurrency", "256"],
                    cwd=Path(__file__).resolve().parents[1], stdout=subprocess.PIPE, text=True,
                )  # fmt: skip
                try:
                    time.sleep(1.0)
                    loaded, began = _series(d, edited, watch, n, f"flood ({label})")
                finally:
                    flood.send_signal(signal.SIGTERM)
                    out, _ = flood.communicate(timeout=60)
                stats: dict[str, Any] = json.loads(out)
                progress(f"flood ({label}): {json.dumps(stats)}")
                results.append((label, loaded, began, stats))
    finally:
        watch.close()
    mi, mib = median(idle), median(idle_began)
    assert mi is not None and mib is not None
    rows = [
        Row("deadline → first file restored, idle", mi, "ms", None, "", "≤ 100 ms", mi <= 100, n,
            samples=idle, extra={"rollback_began_ms": idle_began, "began_median_ms": mib}),
        Row("deadline → rollback began (log line), idle", mib, "ms", None, "", "", None, n,
            variant="informational", samples=idle_began),
    ]  # fmt: skip
    for label, loaded, began, stats in results:
        ml, mlb = median(loaded), median(began)
        assert ml is not None and mlb is not None
        lat = stats["latency_ms"]
        note = (f"flood on the {label}: achieved {stats['rate_per_s']:.0f} req/s "
                f"(answers {stats['status']}), answer time p50 {lat['p50']} ms, p99 {lat['p99']} "
                f"ms, {stats['dropped']} ticks dropped (>256 in flight); the rollback began "
                f"{mlb:.0f} ms after the deadline (median)")  # fmt: skip
        rows.append(
            Row("deadline → first file restored, 1,000 bad req/s", ml, "ms", mi, "(idle)",
                "≤ 100 ms", ml <= 100, n, variant=label.split(",")[0], note=note,
                samples=loaded, baseline_samples=idle,
                extra={"rollback_began_ms": began, "began_median_ms": mlb, "flood": stats})
        )  # fmt: skip
    return rows
