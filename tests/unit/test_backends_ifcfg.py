# SPDX-License-Identifier: GPL-3.0-or-later
"""RHEL network-scripts parsing, against fixture files.

Parse-level only: this kernel has no bond or 8021q module; the fixtures cover a bridge with ports,
a bond with members, VLANs on a parent (by dotted name and by PHYSDEV), two plain interfaces, a
route file and comments.
"""

from __future__ import annotations

from pathlib import PurePosixPath

import pytest

from netcfg_txn.core.errors import ConfigError
from netcfg_txn.net.backends import ApplyConfig, Stack, get_backend
from netcfg_txn.net.backends.base import FileConfig
from tests.fakes import host_files

IFCFG = get_backend(Stack.IFCFG, ApplyConfig())
DIR = PurePosixPath("/etc/sysconfig/network-scripts")
FILES = host_files("ifcfg")


def parse(name: str) -> FileConfig:
    return IFCFG.parse(DIR / name, FILES[DIR / name])


def test_owns_config_files_but_not_scripts_or_leftovers() -> None:
    assert all(IFCFG.owns(p) for p in FILES)
    for name in (
        "ifup-eth",
        "network-functions",
        "ifcfg-eth0.bak",
        "ifcfg-eth0~",
        "ifcfg-eth0.rpmnew",
    ):
        assert not IFCFG.owns(DIR / name), name


def test_plain_interfaces() -> None:
    eth0 = parse("ifcfg-eth0")
    assert eth0.fragments == {
        "eth0": "BOOTPROTO=none\nDEVICE=eth0\nGATEWAY=192.0.2.1\nIPADDR=192.0.2.10\n"
        "ONBOOT=yes\nPREFIX=24\n"
    }
    eth1 = parse("ifcfg-eth1")
    assert "NAME=System eth1\n" in eth1.fragments["eth1"]  # quotes and trailing comment gone
    assert eth0.deps == {} and eth0.virtual == frozenset()


def test_route_file_belongs_to_its_device() -> None:
    fc = parse("route-eth0")
    assert fc.fragments == {"eth0": "route\n198.51.100.0/24 via 192.0.2.254 dev eth0\n"}


def test_bond_and_members() -> None:
    assert parse("ifcfg-bond0").virtual == frozenset({"bond0"})
    eth2 = parse("ifcfg-eth2")
    assert eth2.deps == {"bond0": frozenset({"eth2"})}
    assert eth2.controllers == frozenset({"bond0"})


def test_bridge_and_ports() -> None:
    assert parse("ifcfg-br0").virtual == frozenset({"br0"})
    eth4 = parse("ifcfg-eth4")
    assert eth4.deps == {"br0": frozenset({"eth4"})} and eth4.controllers == frozenset({"br0"})


def test_vlans() -> None:
    dotted = parse("ifcfg-eth0.10")
    assert dotted.deps == {"eth0.10": frozenset({"eth0"})}
    assert dotted.virtual == frozenset({"eth0.10"}) and dotted.controllers == frozenset()
    named = parse("ifcfg-vlan20")  # no DEVICE=: the name comes from the file
    assert named.deps == {"vlan20": frozenset({"eth1"})}


def test_comments_order_and_quoting_do_not_change_anything() -> None:
    a = "DEVICE=eth9\nONBOOT=yes\nIPADDR=192.0.2.9\n"
    b = "# eth9\nIPADDR='192.0.2.9'\n\nONBOOT=\"yes\"   # boot\nDEVICE=eth9\n"
    assert IFCFG.parse(DIR / "ifcfg-eth9", a) == IFCFG.parse(DIR / "ifcfg-eth9", b)


@pytest.mark.parametrize(
    ("text", "line"),
    [("DEVICE=eth9\nthis is not an assignment\n", 2), ('NAME="unterminated\n', 1)],
)
def test_garbage_is_a_config_error_naming_path_and_line(text: str, line: int) -> None:
    with pytest.raises(ConfigError, match=f"^{DIR}/ifcfg-eth9:{line}: "):
        IFCFG.parse(DIR / "ifcfg-eth9", text)
