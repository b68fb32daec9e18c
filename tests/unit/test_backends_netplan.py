# SPDX-License-Identifier: GPL-3.0-or-later
"""netplan YAML parsing, against fixture files.

Parse-level only: this kernel has no bond or 8021q module, so bonds and VLANs cannot be built
live here; the fixtures cover a bridge with ports, a bond with members, a VLAN on a parent, plain
interfaces, a glob match, a NetworkManager-rendered file and comments.
"""

from __future__ import annotations

from pathlib import PurePosixPath

import pytest

from netcfg_txn.core.errors import ConfigError
from netcfg_txn.net.backends import ApplyConfig, Stack, get_backend
from netcfg_txn.net.backends.base import FileConfig
from tests.fakes import host_files

NETPLAN = get_backend(Stack.NETPLAN, ApplyConfig())
DIR = PurePosixPath("/etc/netplan")
FILES = host_files("netplan")


def parse(name: str) -> FileConfig:
    return NETPLAN.parse(DIR / name, FILES[DIR / name])


def test_owns_yaml_in_netplan_dirs() -> None:
    assert all(NETPLAN.owns(p) for p in FILES)
    assert NETPLAN.owns(PurePosixPath("/run/netplan/50-cloud-init.yaml"))
    assert not NETPLAN.owns(DIR / "01-netcfg.yaml.dpkg-old")
    assert not NETPLAN.owns(PurePosixPath("/etc/network/interfaces"))


def test_networkd_rendered_file() -> None:
    fc = parse("01-netcfg.yaml")
    eth = {f"eth{i}" for i in range(6)}
    assert set(fc.fragments) == eth | {"enp*", "bond0", "br0", "eth0.10"}
    assert fc.deps == {
        "bond0": frozenset({"eth2", "eth3"}),
        "br0": frozenset({"eth4", "eth5"}),
        "eth0.10": frozenset({"eth0"}),
    }
    assert fc.controllers == frozenset({"bond0", "br0"})
    assert fc.virtual == frozenset({"bond0", "br0", "eth0.10"})
    assert fc.aliases == {"lan": "enp*"}  # a match: entry, referred to by its id
    assert fc.connection_ids == {}  # networkd is the default renderer
    assert not fc.unattributed  # `version: 2` is not worth reporting


def test_networkmanager_rendered_file() -> None:
    fc = parse("90-wifi.yaml")
    assert set(fc.fragments) == {"wlan0"}
    # what `netplan generate` (0.106) names the profile: one per access point for a wifi
    assert fc.connection_ids == {"wlan0": "netplan-wlan0-lab"}
    assert fc.unattributed  # the file-wide renderer affects more than its own entries
    assert fc.unattributed_text == '{"renderer":"NetworkManager"}'


def test_set_name_and_match_without_name() -> None:
    text = """
network:
  ethernets:
    uplink: {match: {macaddress: "02:00:00:00:00:01"}, set-name: wan0, dhcp4: true}
    other: {match: {driver: ixgbe}, dhcp4: true}
"""
    fc = NETPLAN.parse(DIR / "x.yaml", text)
    assert set(fc.fragments) == {"wan0"}
    assert fc.aliases == {"uplink": "wan0"}
    assert fc.unattributed  # `other` cannot be blamed on a name


def test_comments_and_yaml_style_do_not_change_anything() -> None:
    block = "network:\n  ethernets:\n    eth1:\n      dhcp4: true\n      mtu: 9000\n"
    flow = "# hello\nnetwork: {ethernets: {eth1: {mtu: 9000, dhcp4: yes}}}  # bye\n"
    assert NETPLAN.parse(DIR / "x.yaml", block) == NETPLAN.parse(DIR / "x.yaml", flow)


def test_empty_file_configures_nothing() -> None:
    assert NETPLAN.parse(DIR / "x.yaml", "# nothing yet\n").fragments == {}


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("network:\n  ethernets:\n    eth0: {dhcp4: true\n", 4),  # unclosed flow mapping
        ("network:\n  ethernets: [eth0]\n", 2),
        ("network:\n  ethernets:\n    eth0: 7\n", 3),
        ("- just a list\n", 1),
        ("network:\n\tethernets: {}\n", 2),  # tabs are not YAML indentation
    ],
)
def test_invalid_yaml_is_a_config_error_naming_path_and_line(text: str, line: int) -> None:
    with pytest.raises(ConfigError, match=f"^/etc/netplan/x.yaml:{line}: "):
        NETPLAN.parse(DIR / "x.yaml", text)
