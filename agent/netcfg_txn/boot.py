# SPDX-License-Identifier: GPL-3.0-or-later
"""The boot rollback: before networking starts, roll back a transaction that a crash or power
loss left open (files only: the network is not up yet). Run by ``netcfg-txn boot-rollback``
from netcfg-txn-boot-rollback.service; the CLI builds the engine and prints the result."""

from __future__ import annotations

import os
from typing import Any

from netcfg_txn.core.errors import Busy, Failed
from netcfg_txn.core.model import Phase
from netcfg_txn.engine import Engine, public_txn
from netcfg_txn.store import fsutil


def roll_back_at_boot(engine: Engine) -> dict[str, Any]:
    """Recover under the state lock. Returns ``{"actions": [...]}`` plus the public record of
    the transaction it rolled back, if any. Raises ``Busy`` while netcfg-txnd holds the lock
    and ``Failed`` (with that document as details) when the restore failed."""
    engine.store.ensure()
    try:
        fd = fsutil.take_lock(engine.store.lock_path)
    except BlockingIOError:
        raise Busy(f"netcfg-txnd is running (it holds {engine.store.lock_path})") from None
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
