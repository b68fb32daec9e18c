# SPDX-License-Identifier: GPL-3.0-or-later
"""The default locations of the config file, the state directory and the control socket, on
their own so a command that only needs a path does not import the config parser. Pure."""

from __future__ import annotations

from pathlib import Path

DEFAULT_CONFIG = Path("/etc/netcfg-txn/netcfg-txn.toml")
DEFAULT_STATE_DIR = Path("/var/lib/netcfg-txn")
DEFAULT_SOCKET = Path("/run/netcfg-txn/control")
