# SPDX-License-Identifier: GPL-3.0-or-later
"""The boot rollback: before networking starts, roll back a transaction that a crash or power
loss left open (files only: the network is not up yet). Run by ``netcfg-txn boot-rollback``
from netcfg-txn-boot-rollback.service; the CLI builds the engine and prints the result.

Nearly every boot has nothing to roll back, and building the engine imports the network stack
(netlink, asyncio, ...): ``nothing_to_roll_back`` tells that case from the state directory alone."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from netcfg_txn.core.errors import Busy, Failed
from netcfg_txn.store import fsutil

if TYPE_CHECKING:
    from netcfg_txn.engine import Engine

# The names ``store.state.Store`` gives them (tests/unit/test_boot.py keeps them equal).
TXN_RECORD = "txn.json"
LOCK = "daemon.lock"
SNAPSHOTS = "snapshots"
OTHER_DIRS = ("blobs", "history")


def _busy(lock: Path) -> Busy:
    return Busy(f"netcfg-txnd is running (it holds {lock})")


def nothing_to_roll_back(state_dir: Path) -> bool:
    """True when ``roll_back_at_boot`` would do nothing: a complete state directory (mode 0700)
    with no transaction record and nothing a crash leaves behind (a snapshot, partial or whole,
    or a temporary file). False leaves the decision to the engine. Raises ``Busy`` as
    ``roll_back_at_boot`` does while netcfg-txnd holds the state lock."""
    snapshots = state_dir / SNAPSHOTS
    try:
        if os.stat(state_dir).st_mode & 0o7777 != 0o700:
            return False  # the engine's ensure() would fix it
        if not all(os.path.isdir(d) for d in (snapshots, *(state_dir / n for n in OTHER_DIRS))):
            return False
        fd = fsutil.take_lock(state_dir / LOCK)
    except BlockingIOError:
        raise _busy(state_dir / LOCK) from None
    except OSError:
        return False
    try:
        if os.path.lexists(state_dir / TXN_RECORD) or os.listdir(snapshots):
            return False
        for d in (state_dir, *(state_dir / n for n in OTHER_DIRS)):
            if any(n.startswith(".") and n.endswith(".tmp") for n in os.listdir(d)):
                return False
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def roll_back_at_boot(engine: Engine) -> dict[str, Any]:
    """Recover under the state lock. Returns ``{"actions": [...]}`` plus the public record of
    the transaction it rolled back, if any. Raises ``Busy`` while netcfg-txnd holds the lock
    and ``Failed`` (with that document as details) when the restore failed."""
    from netcfg_txn.core.model import Phase
    from netcfg_txn.engine import public_txn

    engine.store.ensure()
    try:
        fd = fsutil.take_lock(engine.store.lock_path)
    except BlockingIOError:
        raise _busy(engine.store.lock_path) from None
    try:
        before = engine.current()
        rec = engine.recover(boot=True)
    finally:
        os.close(fd)
    doc: dict[str, Any] = {"actions": list(rec.actions)}
    entry = next(iter(engine.store.history(1)), None) if before is not None else None
    if entry is not None and before is not None and entry.txn.id == before.id:
        doc["transaction"] = public_txn(entry.txn, None, None)
        if entry.txn.phase is Phase.FAILED:
            raise Failed(
                f"boot rollback of {entry.txn.id} failed: " + "; ".join(entry.txn.errors),
                details=doc,
            )
    return doc
