# SPDX-License-Identifier: GPL-3.0-or-later
"""Our own config errors never disarm anything: the last config that loaded is kept in the state
directory, and whatever must keep running (the daemon, ``status``, ``boot-rollback``, the backstop)
falls back to it, loudly, when the current one no longer parses. The filesystem door for
``last-good-config.json``.

The layers' text is kept, not the parsed values, so the fallback is exactly what loaded then.
A state directory moved by ``[state] dir`` can only be found while the config parses: the
fallback looks in ``--state-dir`` or the default one.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from netcfg_txn.core import config as configmod
from netcfg_txn.core.errors import ConfigError
from netcfg_txn.host import configfiles
from netcfg_txn.store import fsutil

log = logging.getLogger(__name__)

FILE = "last-good-config.json"
MSG_CONFIG_BROKEN = "3d53fa3a148c4b8ea32f9a9c6ad56b9f"


def remember(state_dir: Path, layers: list[tuple[str, str]]) -> None:
    """Keep ``layers`` as the last good config (atomic; unchanged content is not rewritten)."""
    path = state_dir / FILE
    doc = {"version": 1, "layers": [list(x) for x in layers]}
    try:
        old = fsutil.read_json(path)
        if isinstance(old, dict) and old.get("layers") == doc["layers"]:
            return
    except (OSError, ValueError):
        pass
    try:
        fsutil.makedirs(state_dir, 0o700)
        fsutil.write_json(path, {**doc, "saved_wall_s": time.time()})
    except OSError as e:  # a read-only or foreign state dir: the fallback just gets older
        log.debug("cannot save the last good config in %s: %s", path, e)


def load_and_remember(config: Path, state_dir: Path | None) -> configmod.Config:
    """The strict load (raises ConfigError); a success becomes the last good config."""
    layers = configfiles.read_layers(config)
    cfg = configmod.parse(layers, state_dir=state_dir)
    remember(cfg.state_dir, layers)
    return cfg


def _fallback(state_dir: Path | None) -> tuple[configmod.Config, str]:
    where = (state_dir or configmod.DEFAULT_STATE_DIR) / FILE
    try:
        doc: Any = fsutil.read_json(where)
        layers = [(str(n), str(t)) for n, t in doc["layers"]]
        saved = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(doc["saved_wall_s"])))
        return configmod.parse(layers, state_dir=state_dir), f"the last good config (of {saved})"
    except FileNotFoundError:
        pass
    except (OSError, ValueError, KeyError, TypeError, ConfigError) as e:
        log.error("the last good config %s is unusable too: %s", where, e)
    return configmod.parse([], state_dir=state_dir), "the built-in defaults"


def load_or_last_good(
    config: Path, state_dir: Path | None, *, who: str = "netcfg-txn"
) -> tuple[configmod.Config, str | None]:
    """(config, warning): the current config, or, when it does not parse, the last good one (or
    the defaults) and a warning that says so. A transaction that is open still rolls back with
    the settings frozen at its start, whichever this returns."""
    try:
        return load_and_remember(config, state_dir), None
    except ConfigError as e:
        cfg, which = _fallback(state_dir)
        warning = (
            f"the configuration is invalid: {e.message}; {who} keeps running with {which}. "
            "An open transaction still rolls back with the settings frozen at its start. "
            "Fix the file, then check it with 'netcfg-txn config check'."
        )
        log.critical(
            "%s",
            warning,
            extra={"journal_fields": {"MESSAGE_ID": MSG_CONFIG_BROKEN, "CONFIG_ERROR": e.message}},
        )
        return cfg, warning
