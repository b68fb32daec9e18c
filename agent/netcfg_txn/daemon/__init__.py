# SPDX-License-Identifier: GPL-3.0-or-later
"""netcfg-txnd: one asyncio loop holding the dead-man timer, serving the API, pinging systemd.

``service`` answers the API over the engine, ``deadline`` is the dead-man timer (on the engine's
clock), ``startup`` brings them up in the order that keeps the rollback first, ``main`` is the
command line.
"""

from netcfg_txn.daemon.main import main
from netcfg_txn.daemon.service import Daemon

__all__ = ["Daemon", "main"]
