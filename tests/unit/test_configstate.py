# SPDX-License-Identifier: GPL-3.0-or-later
"""``cli.configstate``: ``status`` skips the config parser only for the exact text of the last
good config, recorded after the parser's code last changed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from netcfg_txn.cli import configstate
from netcfg_txn.host import configfiles
from netcfg_txn.store import lastgood

TEXT = '[files]\npresets = []\ninclude = ["/etc/x/*"]\n[apply]\nbackend = "none"\n'


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "10-timer.toml").write_text('[timer]\ndefault = "2m"\n')
    path = tmp_path / "netcfg-txn.toml"
    path.write_text(TEXT)
    return path


def test_the_record_is_the_stores() -> None:
    assert configstate.LAST_GOOD == lastgood.FILE


def test_the_last_good_text_counts_as_parsed(cfg: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    assert not configstate.parsed_before(configfiles.read_layers(cfg), state)  # no record yet
    lastgood.load_and_remember(cfg, state)
    assert configstate.parsed_before(configfiles.read_layers(cfg), state)
    (cfg.parent / "conf.d" / "10-timer.toml").write_text('[timer]\ndefault = "3m"\n')
    assert not configstate.parsed_before(configfiles.read_layers(cfg), state)
    (cfg.parent / "conf.d" / "10-timer.toml").write_text('[timer]\ndefault = "2m"\n')
    assert configstate.parsed_before(configfiles.read_layers(cfg), state)
    assert not configstate.parsed_before(configfiles.read_layers(cfg), tmp_path / "other")


def test_a_record_older_than_the_parser_counts_only_once_parsed_again(
    cfg: Path, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    lastgood.load_and_remember(cfg, state)
    layers = configfiles.read_layers(cfg)
    os.utime(state / lastgood.FILE, ns=(10**9, 10**9))  # saved before this code was installed
    assert not configstate.parsed_before(layers, state)
    configstate.mark_parsed(layers, state)
    assert configstate.parsed_before(layers, state)


def test_other_text_is_not_marked(cfg: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    lastgood.load_and_remember(cfg, state)
    os.utime(state / lastgood.FILE, ns=(10**9, 10**9))
    configstate.mark_parsed([(str(cfg), TEXT + "\n")], state)
    assert os.stat(state / lastgood.FILE).st_mtime_ns == 10**9


@pytest.mark.parametrize("record", ["", "{", "[]", '{"layers": 1}'])
def test_a_broken_record_counts_as_none(record: str, cfg: Path, tmp_path: Path) -> None:
    (tmp_path / lastgood.FILE).write_text(record)
    assert not configstate.parsed_before(configfiles.read_layers(cfg), tmp_path)
