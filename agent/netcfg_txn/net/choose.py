# SPDX-License-Identifier: GPL-3.0-or-later
"""Which ``Network`` a live rollback uses, from ``[apply]``: a per-interface stack backend, or
just the ``[apply] command`` hook (backend "none", or "auto" on a host whose stack is unknown)."""

from __future__ import annotations

import logging
import os
from pathlib import Path, PurePosixPath

from netcfg_txn.core.config import Config
from netcfg_txn.core.errors import ConfigError
from netcfg_txn.host.runner import run_as_admin
from netcfg_txn.net.network import HookNetwork, Network

log = logging.getLogger(__name__)

# Files whose presence tells the stacks apart (ifupdown2 ships its own config file).
_MARKERS = (
    "/etc/network/interfaces",
    "/etc/network/ifupdown2/ifupdown2.conf",
    "/etc/netplan",
    "/etc/NetworkManager/system-connections",
    "/etc/systemd/network",
    "/etc/sysconfig/network-scripts",
)


def _running(name: str) -> bool:
    import psutil

    for p in psutil.process_iter(["name"]):
        if p.info.get("name") == name[:15]:  # comm is truncated to 15 characters
            return True
    return False


def _present(root: Path) -> list[PurePosixPath]:
    out = []
    for m in _MARKERS:
        real = root / m.lstrip("/")
        if real.is_file() or (real.is_dir() and any(os.scandir(real))):
            out.append(PurePosixPath(m))
    return out


def make_network(cfg: Config, *, root: Path) -> Network:
    a = cfg.apply
    if a.backend == "none":
        return HookNetwork(a.command, run_as_admin, timeout_s=a.timeout_s)
    from netcfg_txn.net.backends import Stack, detect, get_backend
    from netcfg_txn.net.stack import StackNetwork

    if a.backend == "auto":
        if root != Path("/"):
            # A sandbox root: the stack's tools would act on the host's real config. Only an
            # explicit backend (e.g. inside a test's own mount and network namespaces) may.
            log.info(
                "root is %s: backend 'auto' restores files and runs [apply] command only", root
            )
            return HookNetwork(a.command, run_as_admin, timeout_s=a.timeout_s)
        try:
            stack = detect(_present(root), _running)
        except ConfigError as e:
            log.warning("%s; rollbacks restore files and run [apply] command only", e.message)
            return HookNetwork(a.command, run_as_admin, timeout_s=a.timeout_s)
    else:
        stack = Stack(a.backend)
    return StackNetwork(get_backend(stack, a), a, hook=a.command, runner=run_as_admin)
