# SPDX-License-Identifier: GPL-3.0-or-later
"""One engine wired for a real host, for the daemon and the CLI's offline commands: the network of
the current config, a factory for a transaction's frozen ``[apply]`` settings, and the systemd
backstop timer."""

from __future__ import annotations

from pathlib import Path

from netcfg_txn import backstop
from netcfg_txn.core.config import Config
from netcfg_txn.engine import Engine
from netcfg_txn.host.clock import SystemClock
from netcfg_txn.net.choose import make_network


def engine(root: Path, cfg: Config, *, config: Path | None, state_dir: Path | None) -> Engine:
    """``config``/``state_dir``: the paths given on our command line (None: the defaults), which
    the backstop timer's command line repeats."""
    clock = SystemClock()
    return Engine(
        root,
        cfg,
        clock,
        make_network(cfg, root=root),
        network_for=lambda c: make_network(c, root=root),
        backstop=backstop.SystemdBackstop(backstop.command(config, state_dir, root), clock),
    )
