# SPDX-License-Identifier: GPL-3.0-or-later
"""Run ONE engine operation in a fresh process, for crash-point injection with strace.

    driver.py start|commit|rollback|boot-rollback|recover --root R --state-dir S --config C

Imports only the engine and its pure/stdlib dependencies (no click, no aiohttp), so a run costs
little more than the interpreter start. The operation is bracketed by two marker syscalls,
``access("/nct-crash-begin")`` and ``access("/nct-crash-end")``: a counting run under strace uses
them to tell the operation's own syscalls from the interpreter's start-up and exit.

Prints one JSON document on stdout: ``{"ok": true, ...}`` or ``{"ok": false, "error": ...,
"type": ..., "errno": ...}``, and exits 0 / 1 accordingly.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

BEGIN = "/nct-crash-begin"
END = "/nct-crash-end"


def _marker(path: str) -> None:
    os.access(path, os.F_OK)  # a cheap syscall strace can see, never in the injected set


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="driver.py")
    p.add_argument("op", choices=["start", "commit", "rollback", "boot-rollback", "recover"])
    p.add_argument("--root", required=True)
    p.add_argument("--state-dir", required=True)
    p.add_argument("--config", required=True)
    p.add_argument("--timeout", type=float, default=3600.0)
    p.add_argument("--allow-pending", action="store_true")
    args = p.parse_args(argv)

    from netcfg_txn.core.errors import NetcfgTxnError
    from netcfg_txn.core.model import Actor
    from netcfg_txn.engine import Engine
    from netcfg_txn.host import configfiles
    from netcfg_txn.host.clock import SystemClock
    from netcfg_txn.net.choose import make_network
    from netcfg_txn.store import fsutil

    # fsutil loads libc lazily through ctypes.util.find_library, which forks ldconfig (~30 ms)
    # inside the operation; load it up front so no child process (with its own strace counters)
    # runs there. Harmless if fsutil ever stops caching it this way.
    if getattr(fsutil, "_libc", "absent") is None:
        import ctypes

        fsutil._libc = ctypes.CDLL("libc.so.6", use_errno=True)
    cfg = configfiles.load(Path(args.config), state_dir=Path(args.state_dir))
    root = Path(args.root)
    engine = Engine(root, cfg, SystemClock(), make_network(cfg, root=root))
    actor = Actor(kind="local", uid=0, pid=os.getpid(), command="crash-driver")
    out: dict[str, Any] = {"ok": True, "op": args.op}
    _marker(BEGIN)
    try:
        if args.op == "start":
            t, token = engine.start(actor, timeout_s=args.timeout, allow_pending=args.allow_pending)
            out.update(id=t.id, token=token)
        elif args.op == "commit":
            t, already = engine.commit(actor)
            out.update(id=t.id, phase=t.phase.value, already=already)
        elif args.op == "rollback":
            t = engine.rollback(actor)
            out.update(id=t.id, phase=t.phase.value)
        elif args.op == "boot-rollback":
            # What 'netcfg-txn boot-rollback' does, minus click: the daemon lock, then recover.
            engine.store.ensure()
            fd = fsutil.take_lock(engine.store.lock_path)
            try:
                rec = engine.recover(boot=True)
            finally:
                os.close(fd)
            out.update(actions=list(rec.actions))
        else:
            rec = engine.recover(boot=False)
            out.update(actions=list(rec.actions), open=rec.open.id if rec.open else None)
    except NetcfgTxnError as e:
        out = {"ok": False, "op": args.op, "type": type(e).__name__, "error": e.message}
    except OSError as e:
        out = {"ok": False, "op": args.op, "type": type(e).__name__, "error": str(e),
               "errno": e.errno}  # fmt: skip
    _marker(END)
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
