# SPDX-License-Identifier: GPL-3.0-or-later
"""scripts/bench entry point: run the benchmark families, print one table, optionally JSON."""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import importlib.util
import json
import os
import signal
import sys
import time
import traceback
from pathlib import Path

from benchlib import common

# deadline (deadline -> the changed interface answers a peer's ping) runs when its module is
# there; status likewise. Every family returns rows with a PASS/MISS verdict per target.
FAMILIES = tuple(
    f
    for f in ("files", "steady", "latency", "status", "deadline", "idle", "netloss")
    if importlib.util.find_spec(f"benchlib.{f}") is not None
)


def _load(name: str):  # type: ignore[no-untyped-def]
    return importlib.import_module(f"benchlib.{name}")


def _revision() -> str:
    import subprocess

    p = subprocess.run(
        ["git", "-C", str(common.REPO), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
    )
    return p.stdout.strip() or "unknown"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="scripts/bench",
        description="netcfg-txn benchmarks: every figure a median over repeated runs, next to a "
        "baseline measured in the same run. Needs root (chown, namespaces).",
    )
    p.add_argument(
        "--quick", action="store_true", help="small sizes, fewer repeats (CI smoke test, < 60 s)"
    )
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    p.add_argument("--only", action="append", choices=FAMILIES, help="run only these families")
    p.add_argument("--reps", type=int, help="override the number of repetitions")
    p.add_argument("--workdir", type=Path, help="parent of the work dir (default /var/tmp)")
    p.add_argument("--keep", action="store_true", help="keep the work dir")
    args = p.parse_args(argv)
    # SIGTERM runs the finally blocks too: daemons, namespaces and work dirs are cleaned up.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if os.geteuid() != 0:
        print("bench: needs root (daemon state, network namespaces)", file=sys.stderr)
        return 2
    families = args.only or list(FAMILIES)
    load_before = os.getloadavg()
    t0 = time.monotonic()
    rows: list[common.Row] = []
    errors: dict[str, str] = {}
    timings: dict[str, float] = {}
    with common.workdir(args.workdir, args.keep) as work:
        for fam in families:
            t = time.monotonic()
            common.progress(f"--- {fam}")
            try:
                rows += _load(fam).bench(work, args.quick, args.reps)
            except Exception as e:
                errors[fam] = f"{type(e).__name__}: {e}"
                traceback.print_exc()
            timings[fam] = round(time.monotonic() - t, 1)
    total = time.monotonic() - t0
    info = common.machine()
    info["revision"] = _revision()
    info["loadavg_1m_before_after"] = [round(load_before[0], 2), round(os.getloadavg()[0], 2)]
    cmd = "scripts/bench" + (" --quick" if args.quick else "")
    print()
    print(f"netcfg-txn benchmarks ({cmd}; {total:.0f} s; tree {info['revision']})")
    print(
        f"machine: {info['nproc']} CPUs ({info['cpu']}), {info['memory_gib']} GiB RAM, "
        f"disk {info['disk']}, Linux {info['kernel']}, Python {info['python']}; "
        f"load average (1 min) {info['loadavg_1m_before_after'][0]} before, "
        f"{info['loadavg_1m_before_after'][1]} after"
    )
    print()
    print(common.render(rows))
    for fam, err in errors.items():
        print(f"\nERROR in {fam}: {err}")
    met = [r for r in rows if r.met is not None]
    print(
        f"\ntargets: {sum(1 for r in met if r.met)} PASS, {sum(1 for r in met if not r.met)} "
        f"MISS; seconds per family: {timings}"
    )
    if args.json:
        doc = {
            "command": cmd,
            "machine": info,
            "total_s": round(total, 1),
            "family_s": timings,
            "errors": errors,
            "rows": [{**dataclasses.asdict(r), "ratio": r.ratio} for r in rows],
        }
        Path(args.json).write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    return 1 if errors else 0
