# SPDX-License-Identifier: GPL-3.0-or-later
"""Reads the configuration files: the main file, then ``conf.d/*.toml`` beside it.

The file door of ``core.config`` (which parses, purely): every read error is a ConfigError
naming the file.
"""

from __future__ import annotations

from pathlib import Path

from netcfg_txn.core.errors import ConfigError
from netcfg_txn.core.paths import DEFAULT_CONFIG

TYPE_CHECKING = False  # mypy treats this name as True
if TYPE_CHECKING:
    from netcfg_txn.core.config import Config


def layer_paths(config: Path) -> list[Path]:
    """The main file (if present) then ``conf.d/*.toml`` beside it, in lexical order."""
    out = [config] if config.is_file() else []
    d = config.parent / "conf.d"
    if d.is_dir():
        out.extend(sorted(p for p in d.iterdir() if p.suffix == ".toml" and p.is_file()))
    return out


def read_layers(config: Path = DEFAULT_CONFIG) -> list[tuple[str, str]]:
    """(file name, text) of every layer, in precedence order. Raises ConfigError."""
    layers = []
    for p in layer_paths(config):
        try:
            layers.append((str(p), p.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"{p}: cannot read: {e}") from None
    return layers


def load(config: Path = DEFAULT_CONFIG, *, state_dir: Path | None = None) -> Config:
    """The configuration in force: every layer of ``config``, parsed. Raises ConfigError."""
    from netcfg_txn.core.config import parse  # here: reading the layers needs no parser

    return parse(read_layers(config), state_dir=state_dir)
