# SPDX-License-Identifier: GPL-3.0-or-later
"""Network stack backends: the ``Backend`` ABC and its self-registered plug-ins.

``get_backend`` picks one (loading the plug-ins on first use), ``detect`` guesses which one a
host uses when ``[apply] backend = "auto"``. Importing the package loads only ``base``, so the
pure planner (``affected``) can name the types without the plug-ins' file and tool doors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import PurePosixPath

from netcfg_txn.core.apply import FALLBACKS, ApplyConfig, Stack
from netcfg_txn.core.errors import ConfigError
from netcfg_txn.net.backends.base import SELF, Backend, FileConfig

__all__ = [
    "FALLBACKS",
    "SELF",
    "ApplyConfig",
    "Backend",
    "FileConfig",
    "Stack",
    "detect",
    "get_backend",
]

# Present only where ifupdown2 is installed (its config file, its code directory).
IFUPDOWN2_MARKERS = frozenset(
    {PurePosixPath("/etc/network/ifupdown2/ifupdown2.conf"), PurePosixPath("/usr/share/ifupdown2")}
)


def registry() -> dict[Stack, type[Backend]]:
    """Every backend, by stack. The plug-ins register themselves when first imported here
    (a function-local import, so importing the package does not load them)."""
    from netcfg_txn.net.backends import (  # noqa: F401
        command,
        ifcfg,
        ifupdown,
        ifupdown2,
        netplan,
        networkd,
        networkmanager,
    )

    return Backend.registry


def get_backend(stack: Stack, settings: ApplyConfig) -> Backend:
    return registry()[stack](settings)


def detect(root_files: Iterable[PurePosixPath], running: Callable[[str], bool]) -> Stack:
    """The stack of ``backend = "auto"``, from the files present and the daemons running.

    ``root_files``: paths that exist on the host (at least the managed files, plus the
    IFUPDOWN2_MARKERS that exist); ``running("NetworkManager")`` / ``running("systemd-networkd")``.
    Files decide first, since they are what a transaction changes; daemons break ties.
    """
    files = frozenset(root_files)
    present = {
        s
        for s in Stack
        if s is not Stack.COMMAND and any(get_backend(s, ApplyConfig()).owns(f) for f in files)
    }
    nm_runs, networkd_runs = running("NetworkManager"), running("systemd-networkd")
    if Stack.NETPLAN in present:
        return Stack.NETPLAN  # netplan renders for both daemons; its YAML is the source
    if Stack.NETWORKMANAGER in present and (nm_runs or not networkd_runs):
        return Stack.NETWORKMANAGER
    if Stack.NETWORKD in present and (networkd_runs or not nm_runs):
        return Stack.NETWORKD
    if Stack.IFCFG in present:
        return Stack.IFCFG
    if Stack.IFUPDOWN in present:
        return Stack.IFUPDOWN2 if files & IFUPDOWN2_MARKERS else Stack.IFUPDOWN
    if nm_runs:
        return Stack.NETWORKMANAGER
    if networkd_runs:
        return Stack.NETWORKD
    raise ConfigError(
        "cannot tell which network stack this host uses",
        hint='set [apply] backend = "ifupdown", "networkd", "networkmanager", "netplan", ...',
    )
