# SPDX-License-Identifier: GPL-3.0-or-later
"""``cli.configstate``: ``status`` skips the config parser only for the exact text of the last
good config, recorded after the parser's code last changed; it reads the layers as
``host.configfiles`` does."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from netcfg_txn.cli import configstate, context
from netcfg_txn.core import paths
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


def test_the_names_are_those_of_the_store_and_core() -> None:
    assert configstate.LAST_GOOD == lastgood.FILE
    assert context.DEFAULT_CONFIG == str(paths.DEFAULT_CONFIG)
    assert context.DEFAULT_STATE_DIR == str(paths.DEFAULT_STATE_DIR)
    assert context.DEFAULT_SOCKET == str(paths.DEFAULT_SOCKET)


def test_the_layers_are_read_as_configfiles_reads_them(tmp_path: Path) -> None:
    d = tmp_path / "conf.d"
    d.mkdir()
    for name, text in [("20-b.toml", "b\r\nc"), ("10-a.toml", "a"), (".toml", "hidden"),
                       (".x.toml", "dot"), ("a.toml.bak", "no"), ("B.toml", "upper")]:  # fmt: skip
        (d / name).write_text(text)
    (d / "dir.toml").mkdir()
    (d / "link.toml").symlink_to(d / "10-a.toml")
    (d / "dangling.toml").symlink_to(d / "nothing")
    main = tmp_path / "netcfg-txn.toml"
    assert configstate.read_layers(str(main)) == configfiles.read_layers(main)
    main.write_text("m")
    assert configstate.read_layers(str(main)) == configfiles.read_layers(main)
    assert len(configfiles.read_layers(main)) == 6  # main, .x, 10-a, 20-b, B, link


def test_the_last_good_text_counts_as_parsed(cfg: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    assert not configstate.parsed_before(str(cfg), str(state))  # no record yet
    lastgood.load_and_remember(cfg, state)
    assert configstate.parsed_before(str(cfg), str(state))
    (cfg.parent / "conf.d" / "10-timer.toml").write_text('[timer]\ndefault = "3m"\n')
    assert not configstate.parsed_before(str(cfg), str(state))
    (cfg.parent / "conf.d" / "10-timer.toml").write_text('[timer]\ndefault = "2m"\n')
    assert configstate.parsed_before(str(cfg), str(state))
    (cfg.parent / "conf.d" / "20-more.toml").write_text("")
    assert not configstate.parsed_before(str(cfg), str(state))
    (cfg.parent / "conf.d" / "20-more.toml").unlink()
    assert not configstate.parsed_before(str(cfg), str(tmp_path / "other"))
    assert not configstate.parsed_before(str(cfg).replace("/netcfg", "//netcfg"), str(state))


def test_a_record_older_than_the_parser_counts_only_once_parsed_again(
    cfg: Path, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    lastgood.load_and_remember(cfg, state)
    os.utime(state / lastgood.FILE, ns=(10**9, 10**9))  # saved before this code was installed
    assert not configstate.parsed_before(str(cfg), str(state))
    configstate.mark_parsed(configfiles.read_layers(cfg), str(state))
    assert configstate.parsed_before(str(cfg), str(state))


def test_other_text_is_not_marked(cfg: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    lastgood.load_and_remember(cfg, state)
    os.utime(state / lastgood.FILE, ns=(10**9, 10**9))
    configstate.mark_parsed([(str(cfg), TEXT + "\n")], str(state))
    assert os.stat(state / lastgood.FILE).st_mtime_ns == 10**9


@pytest.mark.parametrize("record", ["", "{", "[]", '{"layers": 1}'])
def test_a_broken_record_counts_as_none(record: str, cfg: Path, tmp_path: Path) -> None:
    (tmp_path / lastgood.FILE).write_text(record)
    assert not configstate.parsed_before(str(cfg), str(tmp_path))
