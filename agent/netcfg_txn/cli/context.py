# SPDX-License-Identifier: GPL-3.0-or-later
"""What every verb gets from the global options: where the daemon and the state are, how to
print, and the engine over the state directory for the verbs that must work without the daemon.
No click here (the fast path builds one too)."""

from __future__ import annotations

import os

from netcfg_txn import client
from netcfg_txn.cli.output import Output

TYPE_CHECKING = False  # typing costs milliseconds at start-up; mypy treats this name as True
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

    from netcfg_txn.core.config import Config
    from netcfg_txn.engine import Engine


# The defaults of core.paths as text (tests/unit/test_cli_fastpath.py keeps them equal): the
# fast path's commonest commands run without pathlib, whose import is a tenth of their start-up.
DEFAULT_CONFIG = "/etc/netcfg-txn/netcfg-txn.toml"
DEFAULT_STATE_DIR = "/var/lib/netcfg-txn"
DEFAULT_SOCKET = "/run/netcfg-txn/control"


class Ctx:
    """The global options as given (text); the ``Path`` forms are made when first asked for."""

    def __init__(self, sock: str, as_json: bool, config: str | None, root: str, state: str | None):
        self.sock = sock
        self.out = Output(as_json)
        self.config_given, self.root_given, self.state_given = config or None, root, state or None

    @property
    def config(self) -> Path:
        from pathlib import Path

        return Path(self.config_given or DEFAULT_CONFIG)

    @property
    def config_arg(self) -> Path | None:
        """``--config`` if given (the backstop timer's command line repeats it)."""
        from pathlib import Path

        return Path(self.config_given) if self.config_given else None

    @property
    def root(self) -> Path:
        from pathlib import Path

        return Path(self.root_given)

    @property
    def state_dir(self) -> Path | None:
        from pathlib import Path

        return Path(self.state_given) if self.state_given else None

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
