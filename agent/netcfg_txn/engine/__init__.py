# SPDX-License-Identifier: GPL-3.0-or-later
"""Feeds events to the pure state machine (``core.txn``), persists the result, then runs its
effects. Modules, each a layer of the one ``Engine`` class:

- ``base``: the settings in force (current or frozen at start), persistence, logging, scanning;
- ``finalize``: history, baseline and rejected sets when a transaction ends;
- ``pipeline``: the rollback, one method per stage in the design's order, resumable;
- ``recovery``: finishing what a crash, a reboot or a dead daemon left;
- ``views``: read-only status, diff, preview, history;
- ``commands``: start, extend, commit, rollback, expiry (the ``Engine`` itself);
- ``messages``: the journal MESSAGE_IDs.
"""

from netcfg_txn.engine.base import Backstop
from netcfg_txn.engine.commands import Engine
from netcfg_txn.engine.messages import (
    MSG_BOOT_ROLLBACK,
    MSG_COMMITTED,
    MSG_EXTENDED,
    MSG_FAILED,
    MSG_FROZEN_CONFIG,
    MSG_RELOAD_REFUSED,
    MSG_ROLLBACK_BEGUN,
    MSG_ROLLED_BACK,
    MSG_STARTED,
)
from netcfg_txn.engine.recovery import Recovery
from netcfg_txn.engine.views import public_txn

__all__ = [
    "MSG_BOOT_ROLLBACK",
    "MSG_COMMITTED",
    "MSG_EXTENDED",
    "MSG_FAILED",
    "MSG_FROZEN_CONFIG",
    "MSG_RELOAD_REFUSED",
    "MSG_ROLLBACK_BEGUN",
    "MSG_ROLLED_BACK",
    "MSG_STARTED",
    "Backstop",
    "Engine",
    "Recovery",
    "public_txn",
]
