# SPDX-License-Identifier: GPL-3.0-or-later
"""Whether the config files still hold exactly the text that parsed last time, so that ``status``
can skip the parser: importing it is most of what ``status`` would cost.

Whoever loads the config successfully (the daemon, every offline command) keeps its layers as the
last good config in the state directory (``store.lastgood``). The same text parses the same way
(the parser is pure) unless the parser itself changed since: an upgrade that rejects a config the
old version accepted must still be reported, so the record counts only if it is newer than every
module of ``core/`` (their ctime: an upgrade writes new files, and a package cannot carry ctime
over as it does mtime); a full parse of the same text dates the record again. Anything unexpected
answers False: the caller then parses."""

from __future__ import annotations

import json
import os

from netcfg_txn.cli.context import DEFAULT_STATE_DIR

LAST_GOOD = "last-good-config.json"  # store.lastgood.FILE (a test keeps them equal)


def parsed_before(config: str, state_dir: str | None) -> bool:
    """True if the layers of ``config`` hold the text of the last good config, recorded after
    the parser's code last changed."""
    if not os.path.isabs(config) or os.path.normpath(config) != config:
        return False  # the record names the files as pathlib spells them: take no chances
    try:
        layers = read_layers(config)
        parser_ns = _parser_changed_ns()
    except (OSError, UnicodeDecodeError):
        return False
    return 0 < parser_ns < _record_of(layers, state_dir)[1]


def mark_parsed(layers: list[tuple[str, str]], state_dir: str | None) -> None:
    """After ``layers`` parsed: if they are the last good config, date its record now, so the
    next ``status`` trusts it again after an upgrade (whoever saves the record does not rewrite
    it while its text stays the same)."""
    record = _record_of(layers, state_dir)[0]
    if record is not None:
        try:
            os.utime(record)
        except OSError:  # not ours to write (not root): the next status parses again
            pass


def read_layers(config: str) -> list[tuple[str, str]]:
    """``host.configfiles.read_layers`` without pathlib (a test keeps them equal): the main
    file if present, then ``conf.d/*.toml`` beside it in lexical order. Raises OSError."""
    paths = [config] if os.path.isfile(config) else []
    d = os.path.join(os.path.dirname(config), "conf.d")
    if os.path.isdir(d):
        names = sorted(n for n in os.listdir(d) if n.endswith(".toml") and n != ".toml")
        paths += [p for p in (os.path.join(d, n) for n in names) if os.path.isfile(p)]
    layers = []
    for p in paths:
        with open(p, encoding="utf-8") as f:
            layers.append((p, f.read()))
    return layers


def _record_of(layers: list[tuple[str, str]], state_dir: str | None) -> tuple[str | None, int]:
    """(path, mtime in ns) of the last good config's record if it holds ``layers``."""
    record = os.path.join(state_dir or DEFAULT_STATE_DIR, LAST_GOOD)
    try:
        with open(record, encoding="utf-8") as f:
            saved_ns = os.fstat(f.fileno()).st_mtime_ns
            doc = json.load(f)
    except (OSError, ValueError):
        return None, 0
    if not isinstance(doc, dict) or doc.get("layers") != [list(x) for x in layers]:
        return None, 0
    return record, saved_ns


def _parser_changed_ns() -> int:
    """The newest ctime among the modules of ``core/`` (0 when there are none to compare)."""
    core = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "core")
    with os.scandir(core) as entries:
        return max((e.stat().st_ctime_ns for e in entries if e.name.endswith(".py")), default=0)
