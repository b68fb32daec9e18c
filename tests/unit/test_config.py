# SPDX-License-Identifier: GPL-3.0-or-later
"""Config parsing: layering, defaults, and errors that name the file and key (exit 78)."""

from __future__ import annotations

from pathlib import Path

import pytest

from netcfg_txn.core import config
from netcfg_txn.core.errors import ConfigError, ExitCode, UsageError
from netcfg_txn.host import configfiles


def test_defaults_manage_every_preset_including_ipv6_companions() -> None:
    cfg = config.parse([])
    inc = cfg.fileset.include
    for g in (
        "/etc/network/interfaces",
        "/etc/systemd/network/*.network",
        "/etc/NetworkManager/system-connections/*",
        "/etc/netplan/*.yaml",
        "/etc/sysconfig/network-scripts/route6-*",
        "/etc/sysconfig/network-scripts/rule6-*",
    ):
        assert g in inc
    assert cfg.timeout_default_s == 120 and cfg.timeout_max_s == 86400
    assert cfg.history == 20 and cfg.state_dir == Path("/var/lib/netcfg-txn")


def test_later_layers_win_key_by_key() -> None:
    cfg = config.parse([
        ("a.toml", '[timer]\ndefault = "5m"\nmax = "1h"\n'),
        ("conf.d/10.toml", '[timer]\ndefault = "90s"\n'),
    ])  # fmt: skip
    assert cfg.timeout_default_s == 90 and cfg.timeout_max_s == 3600


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[timer]\ndefualt = '5m'\n", "x.toml: [timer] defualt: unknown key"),
        ("[timers]\n", "x.toml: [timers]: unknown section"),
        ("[timer]\ndefault = 'soon'\n", "x.toml: [timer] default: not a duration"),
        (
            "[timer]\ndefault = '2h'\nmax = '1h'\n",
            "x.toml: [timer] default: longer than [timer] max",
        ),
        ("[files]\ninclude = ['etc/x']\n", "must be an absolute path"),
        ("[files]\ninclude = ['/etc/**/x']\n", "'**' is not supported"),
        ("[files]\npresets = ['wicked']\n", "unknown preset 'wicked'"),
        ("[files]\npresets = []\n", "x.toml: [files] presets: no presets and no include globs"),
        ("[state]\nhistory = 0\n", "[state] history: must be an integer"),
        ("[apply]\nbackend = 'magic'\n", "[apply] backend: must be one of"),
        ("[apply]\nbackend = 'command'\n", 'x.toml: [apply] backend: "command" needs'),
        (
            "[apply]\nbackend = 'command'\ndown_command = 'ip link set eth0 down'\n",
            "x.toml: [apply] down_command: must contain {ifname}",
        ),
        ("[apply]\ntimeout = '0s'\n", "x.toml: [apply] timeout: not a positive duration"),
        ("[apply]\nfallback = 'some'\n", "x.toml: [apply] fallback: must be one of"),
        ("[apply]\ntimeout_s = 5\n", "x.toml: [apply] timeout_s: unknown key"),
        ("[remote]\nport = 1\n", "x.toml: [remote] port: unknown key"),
        ("[remote]\nlisten = ['0.0.0.0:99999']\n", "x.toml: [remote] listen: "),
        ("[files]\nmax_file_size = 'big'\n", "not a size"),
        ("this is = not toml [", "x.toml: invalid TOML"),
    ],
)
def test_errors_name_file_and_key(text: str, needle: str) -> None:
    with pytest.raises(ConfigError) as e:
        config.parse([("x.toml", text)])
    assert needle in str(e.value)
    assert e.value.exit_code == ExitCode.CONFIG


def test_a_probes_error_names_the_layer_that_set_the_key() -> None:
    with pytest.raises(ConfigError) as e:
        config.parse([
            ("main.toml", "[probes]\nsettle_s = 1\n"),
            ("conf.d/30.toml", "[probes]\nrounds = 0\n"),
        ])  # fmt: skip
    assert e.value.message.startswith("conf.d/30.toml: [probes] rounds: ")


def test_an_apply_error_names_the_layer_that_set_the_key() -> None:
    with pytest.raises(ConfigError) as e:
        config.parse([
            ("main.toml", "[apply]\nbackend = 'command'\nup_command = 'ifup {ifname}'\n"),
            ("conf.d/20.toml", "[apply]\ndown_command = 'ifdown eth0'\n"),
        ])  # fmt: skip
    assert e.value.message == "conf.d/20.toml: [apply] down_command: must contain {ifname}"


def test_apply_is_the_one_declaration_config_show_and_the_backends_read() -> None:
    from netcfg_txn.core.apply import ApplyConfig

    cfg = config.parse([("x.toml", "[apply]\nbackend = 'command'\nup_command = 'up {ifname}'\n"
                                    "timeout = '2m'\n")])  # fmt: skip
    assert cfg.apply == ApplyConfig(backend="command", up_command="up {ifname}", timeout_s=120.0)
    shown = config.to_json(cfg)["apply"]
    assert shown["timeout"] == "120s" and shown["up_command"] == "up {ifname}"
    assert set(shown) == set(config.SCHEMA["apply"]) == {
        "backend", "command", "fallback", "down_command", "up_command", "reload_command",
        "timeout",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 90),
        ("90s", 90),
        ("5m", 300),
        ("1h", 3600),
        ("1h30m", 5400),
        ("250ms", 0.25),
        (45, 45),
    ],
)
def test_durations(text: str | int, seconds: float) -> None:
    assert config.parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "0", "-5s", "5 minutes", "1x", "s", True, 0])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(ValueError):
        config.parse_duration(bad)  # type: ignore[arg-type]


def test_timeout_is_bounded_by_max() -> None:
    cfg = config.parse([("x", "[timer]\nmax = '10m'\n")])
    assert cfg.check_timeout(None) == 120
    with pytest.raises(UsageError, match="over the maximum 10m00s"):
        cfg.check_timeout(3600)


def test_load_reads_conf_d_in_lexical_order(tmp_path: Path) -> None:
    main = tmp_path / "netcfg-txn.toml"
    main.write_text("[state]\nhistory = 5\n")
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "20-b.toml").write_text("[state]\nhistory = 7\n")
    (tmp_path / "conf.d" / "10-a.toml").write_text("[state]\nhistory = 6\n")
    (tmp_path / "conf.d" / "ignored.conf").write_text("garbage")
    cfg = configfiles.load(main)
    assert cfg.history == 7
    assert [Path(s).name for s in cfg.sources] == ["netcfg-txn.toml", "10-a.toml", "20-b.toml"]


def test_missing_main_file_means_defaults(tmp_path: Path) -> None:
    assert configfiles.load(tmp_path / "nope.toml").history == 20
