# SPDX-License-Identifier: GPL-3.0-or-later
"""Which ``Network`` a live rollback uses, from ``[apply]``."""

from __future__ import annotations

from netcfg_txn.config import Config
from netcfg_txn.network import HookNetwork, Network


def make_network(cfg: Config) -> Network:
    return HookNetwork(cfg.apply.command, timeout_s=cfg.apply.timeout_s)
