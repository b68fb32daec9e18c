# SPDX-License-Identifier: GPL-3.0-or-later
"""CLI start-up: the wall time of each local ``netcfg-txn`` command against the interpreter
floor ``python3 -c pass``.

Method. Every command runs as a subprocess of the interpreter the installed ``netcfg-txn`` script
uses, against a running daemon over 20 files (``status`` also with the daemon stopped, read from
the state directory). One round runs each command once, each right after one ``python3 -c pass``,
in an order that keeps the state valid (start, then the verbs on the open transaction, commit;
start again, rollback). The figure is the median over the rounds (30 by default), next to the
median of all floor runs of the same rounds; the targets are ≤ 3× the floor for ``status`` with
the daemon running and ≤ 4× for every other command. Each note adds the CPU time (user + system
of the reaped child) of both, which other load on the machine disturbs far less than wall time,
and the load average before and after (this is shared hardware). The import profile
(``-X importtime``) of ``status`` is kept in the JSON to show where its start-up goes.

The package is measured as installed: byte-compiled first (the .deb's postinst does it with
py3compile). An editable install run under ``PYTHONDONTWRITEBYTECODE=1`` would otherwise compile
every module it imports from source on every run (about 10 ms of ``status`` alone).

Run alone: ``sudo .venv/bin/python scripts/benchlib/status.py [--reps N]``.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``benchlib`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchlib.common import BIN, Daemon, Row, make_tree, median, progress, write_config

# Per command: (wall ms, CPU ms) samples; the floor's samples first.
Samples = tuple[tuple[list[float], list[float]], dict[str, tuple[list[float], list[float]]]]

# (name, argv after the global options, target ratio). In round order; start/extend/diff/... need
# the transaction the preceding start opened.
LIVE = [
    ("status", ["status"], 3.0),
    ("start", ["start", "--timeout", "1h", "--label", "bench"], 4.0),
    ("status (open transaction)", ["status"], 3.0),
    ("extend", ["extend", "--timeout", "1h"], 4.0),
    ("diff", ["diff"], 4.0),
    ("plan", ["plan"], 4.0),
    ("commit", ["commit"], 4.0),
    ("start (again)", ["start", "--timeout", "1h"], 4.0),
    ("rollback", ["rollback"], 4.0),
    ("history", ["history"], 4.0),
    ("config check", ["config", "check"], 4.0),
    ("config show", ["config", "show"], 4.0),
    ("peer list", ["peer", "list"], 4.0),
    ("--version", ["--version"], 4.0),
    ("--help", ["--help"], 4.0),
]
OFFLINE = [
    ("status (daemon stopped)", ["status"], 4.0),
    ("boot-rollback (nothing to do)", ["boot-rollback"], 4.0),
]


def _importtime(argv: list[str]) -> list[tuple[str, float]]:
    """The heaviest imports of one run of ``argv`` (cumulative ms), outermost first."""
    code = "import sys; from netcfg_txn.cli.main import run; run(sys.argv[1:])"
    p = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code, *argv], capture_output=True, text=True
    )
    found: list[tuple[str, float]] = []
    for line in p.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            found.append((parts[2].strip(), int(parts[1]) / 1e3))
    found.sort(key=lambda x: -x[1])
    return found[:12]


def _child_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _one(argv: list[str], wall: list[float], cpu: list[float]) -> None:
    """One run: its wall time and its CPU time (user + system, from the reaped child's rusage;
    far less sensitive than wall time to other load on the machine)."""
    c0, t0 = _child_cpu(), time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True)
    wall.append((time.perf_counter() - t0) * 1e3)
    cpu.append((_child_cpu() - c0) * 1e3)


def _rounds(cmds: list[tuple[str, list[str], float]], base: list[str], n: int) -> Samples:
    floor: tuple[list[float], list[float]] = ([], [])
    samples: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name, _, _ in cmds}
    for _ in range(n):
        for name, args, _ in cmds:
            _one([sys.executable, "-c", "pass"], *floor)
            _one([*base, *args], *samples[name])
    return floor, samples


def _rows(cmds: list[tuple[str, list[str], float]], got: Samples, load: str, n: int) -> list[Row]:
    (floor, floor_cpu), samples = got
    mf, mf_cpu = median(floor), median(floor_cpu)
    assert mf is not None and mf_cpu is not None
    rows = []
    for name, _, target in cmds:
        wall, cpu = samples[name]
        ms, ms_cpu = median(wall), median(cpu)
        assert ms is not None and ms_cpu is not None
        rows.append(
            Row(
                f"netcfg-txn {name} (wall)",
                ms,
                "ms",
                mf,
                "(python3 -c pass)",
                f"≤ {target:g}× baseline",
                ms <= target * mf,
                n,
                note=f"{ms - mf:.0f} ms above the interpreter floor; CPU time {ms_cpu:.0f} ms vs "
                f"{mf_cpu:.0f} ms ({ms_cpu / mf_cpu:.2f}×); load average {load}",
                samples=wall,
                baseline_samples=floor,
                extra={"cpu_ms": cpu, "baseline_cpu_ms": floor_cpu},
            )
        )
    return rows


def bench(work: Path, quick: bool, reps: int | None) -> list[Row]:
    import compileall

    import netcfg_txn

    n = reps or (5 if quick else 30)
    compileall.compile_dir(str(Path(netcfg_txn.__file__).parent), quiet=1)  # as installed
    top = work / "status"
    root = top / "root"
    make_tree(root / "etc" / "bench", 20, 2048)
    cfg = write_config(top / "netcfg-txn.toml", ["/etc/bench/*/*"])
    state = top / "state"
    base = [str(BIN / "netcfg-txn"), "--socket", str(top / "control"), "--config", str(cfg),
            "--root", str(root), "--state-dir", str(state)]  # fmt: skip
    load0 = os.getloadavg()[0]
    with Daemon(root, state, cfg, top / "control"):
        subprocess.run([*base, "status"], check=True, capture_output=True)  # warm the caches
        imports = _importtime(base[1:] + ["status"])
        live = _rounds(LIVE, base, n)
    offline = _rounds(OFFLINE, base, n)
    load = f"{load0:.1f} → {os.getloadavg()[0]:.1f}"
    rows = _rows(LIVE, live, load, n) + _rows(OFFLINE, offline, load, n)
    rows[0].extra["imports_ms"] = imports
    for r in rows:
        progress(f"{r.name}: {r.value:.1f} ms vs {r.baseline:.1f} ms ({r.ratio:.2f}×); {r.note}")
    progress(f"status: heaviest imports (ms, cumulative): {imports}")
    return rows


if __name__ == "__main__":
    import argparse
    import tempfile

    from benchlib.common import render

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int)
    p.add_argument("--quick", action="store_true")
    a = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="nct-bench-status-", dir="/var/tmp") as d:
        print(render(bench(Path(d), a.quick, a.reps)))
