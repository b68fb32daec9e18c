# SPDX-License-Identifier: GPL-3.0-or-later
"""What every verb gets from the global options: where the daemon and the state are, how to
print, and the engine over the state directory for the verbs that must work without the daemon.
No click here (the fast path builds one too)."""

from __future__ import annotations

import os
from pathlib import Path

from netcfg_txn import client
from netcfg_txn.cli.output import Output
from netcfg_txn.core.paths import DEFAULT_CONFIG

TYPE_CHECKING = False  # typing costs milliseconds at start-up; mypy treats this name as True
if TYPE_CHECKING:
    from typing import Any

    from netcfg_txn.core.config import Config
    from netcfg_txn.engine import Engine


class Ctx:
    def __init__(self, sock: str, as_json: bool, config: str | None, root: str, state: str | None):
        self.sock = sock
        self.out = Output(as_json)
        self.config = Path(config) if config else DEFAULT_CONFIG
        self.config_arg = Path(config) if config else None
        self.root = Path(root)
        self.state_dir = Path(state) if state else None

    def call(self, method: str, path: str, body: dict[str, Any] | None = None,
             token: str | None = None) -> dict[str, Any]:  # fmt: skip
        return client.call(self.sock, method, path, body, token=token)

    def offline_config(self) -> Config:
        """The config of the commands that must work without the daemon. One that no longer
        parses never stops them: they use the last good one (an open transaction uses the
        settings frozen at its start), with a loud warning."""
        from netcfg_txn.core.errors import NotPermitted
        from netcfg_txn.store import lastgood

        cfg, warning = lastgood.load_or_last_good(self.config, self.state_dir, who="netcfg-txn")
        if warning:
            self.out.info(f"WARNING: {warning}")
        if cfg.state_dir.exists() and not os.access(cfg.state_dir, os.R_OK | os.X_OK):
            raise NotPermitted(
                f"cannot read the state directory {cfg.state_dir}", hint="run as root (sudo)"
            )
        return cfg

    def offline_engine(self, cfg: Config | None = None) -> Engine:
        """The engine over the state dir (of ``cfg``, default ``offline_config()``)."""
        from netcfg_txn import assemble

        cfg = cfg or self.offline_config()
        return assemble.engine(self.root, cfg, config=self.config_arg, state_dir=self.state_dir)
