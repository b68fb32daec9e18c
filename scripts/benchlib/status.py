# SPDX-License-Identifier: GPL-3.0-or-later
"""``netcfg-txn status`` wall time against the interpreter floor ``python3 -c pass``.

Method. Both are run as subprocesses, alternately, with the same interpreter (the one the
installed ``netcfg-txn`` script uses), against a running daemon with an idle state over 20 files;
the median of the wall times is reported. The import profile (``-X importtime``) of the CLI is
kept in the JSON output to show where the start-up goes.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from benchlib.common import BIN, Daemon, Row, make_tree, median, progress, timed, write_config


def _importtime() -> list[tuple[str, float]]:
    """The heaviest imports under ``netcfg_txn.cli.main`` (cumulative ms), outermost first."""
    p = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import netcfg_txn.cli.main"],
        capture_output=True,
        text=True,
    )
    found: list[tuple[str, float, int]] = []
    for line in p.stderr.splitlines():
        parts = line.split("|")
        if len(parts) != 3 or not parts[1].strip().isdigit():
            continue
        name = parts[2].rstrip()
        depth = (len(name) - len(name.lstrip()) - 1) // 2
        found.append((name.strip(), int(parts[1]) / 1e3, depth))
    total = next((ms for n, ms, _ in found if n == "netcfg_txn.cli.main"), 0.0)
    # Children of netcfg_txn.cli.main and of its netcfg_txn imports: where the start-up goes.
    top = [(n, ms) for n, ms, d in found if 1 <= d <= 3 and n != "netcfg_txn.cli.main" and ms >= 2]
    top.sort(key=lambda x: -x[1])
    return [("netcfg_txn.cli.main (total)", total), *top[:10]]


def bench(work: Path, quick: bool, reps: int | None) -> list[Row]:
    n = reps or (5 if quick else 15)
    base = work / "status"
    root = base / "root"
    make_tree(root / "etc" / "bench", 20, 2048)
    cfg = write_config(base / "netcfg-txn.toml", ["/etc/bench/*/*"])
    floor, status = [], []
    with Daemon(root, base / "state", cfg, base / "control") as d:
        argv = [str(BIN / "netcfg-txn"), "--socket", str(d.socket), "status"]
        subprocess.run(argv, check=True, capture_output=True)  # warm the page cache and pycache
        for _ in range(n):
            floor.append(timed(lambda: subprocess.run([sys.executable, "-c", "pass"], check=True)))
            status.append(timed(lambda: subprocess.run(argv, check=True, capture_output=True)))
    f = [x * 1e3 for x in floor]
    s = [x * 1e3 for x in status]
    mf, ms = median(f), median(s)
    assert mf is not None and ms is not None
    imports = _importtime()
    progress(f"status: {ms:.0f} ms, python -c pass {mf:.0f} ms; heaviest imports (ms): {imports}")
    return [
        Row(
            "netcfg-txn status (wall)",
            ms,
            "ms",
            mf,
            "(python3 -c pass)",
            "",
            None,
            n,
            note=f"{ms - mf:.0f} ms above the interpreter floor; "
            f"importing netcfg_txn.cli.main takes "
            f"{imports[0][1]:.0f} ms, of which (cumulative, nested) "
            + ", ".join(f"{mod} {t:.0f}" for mod, t in imports[1:7]),
            samples=s,
            baseline_samples=f,
            extra={"imports_ms": imports},
        )
    ]
