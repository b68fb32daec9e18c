# SPDX-License-Identifier: GPL-3.0-or-later
"""One engine wired for a real host, for the daemon and the CLI's offline commands: the network of
the current config, a factory for a transaction's frozen ``[apply]`` settings, the systemd
backstop timer and, on NetworkManager, its checkpoint (a fast live rollback and a second
backstop)."""

from __future__ import annotations

from pathlib import Path

from netcfg_txn import backstop
from netcfg_txn.core.config import Config
from netcfg_txn.engine import Engine
from netcfg_txn.host.clock import SystemClock
from netcfg_txn.host.runner import run
from netcfg_txn.net.backends import Stack
from netcfg_txn.net.choose import make_network
from netcfg_txn.net.network import HookNetwork, Network
from netcfg_txn.net.nmcheckpoint import NmCheckpoint

NM_CHECKPOINT_RECORD = "nm-checkpoint.json"


def engine(root: Path, cfg: Config, *, config: Path | None, state_dir: Path | None) -> Engine:
    """``config``/``state_dir``: the paths given on our command line (None: the defaults), which
    the backstop timer's command line repeats."""
    clock = SystemClock()
    # Only on the real root: under a sandbox --root, NM's D-Bus would be the host's own.
    checkpoint = NmCheckpoint(run, cfg.state_dir / NM_CHECKPOINT_RECORD, clock)

    def network_for(c: Config) -> Network:
        network = make_network(c, root=root)
        if root != Path("/") or isinstance(network, HookNetwork):
            return network
        # Here, not at the top: the stack network pulls in netlink (pyroute2, asyncio), which
        # the hook network (and the offline commands with it) should not pay for.
        from netcfg_txn.net.stack import StackNetwork

        if isinstance(network, StackNetwork) and network.backend.stack is Stack.NETWORKMANAGER:
            network.checkpoint = checkpoint
        return network

    return Engine(
        root,
        cfg,
        clock,
        network_for(cfg),
        network_for=network_for,
        backstop=backstop.SystemdBackstop(
            backstop.command(config, state_dir, root), clock, companion=checkpoint
        ),
    )
