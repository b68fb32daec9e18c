# SPDX-License-Identifier: GPL-3.0-or-later
"""NetworkManager keyfile parsing, against fixture files.

Parse-level only: this kernel has no bond or 8021q module, so the bond and VLAN profiles cannot be
activated here; the fixtures cover a bridge with ports (one naming its controller by UUID), a
bond with ports, a VLAN on a parent, two plain profiles (one legacy, suffix-less), a MAC-matched
profile and comments.
"""

from __future__ import annotations

from pathlib import PurePosixPath

import pytest

from netcfg_txn.core.errors import ConfigError
from netcfg_txn.net.backends import ApplyConfig, Stack, get_backend
from netcfg_txn.net.backends.base import FileConfig
from tests.fakes import host_files

NM = get_backend(Stack.NETWORKMANAGER, ApplyConfig())
DIR = PurePosixPath("/etc/NetworkManager/system-connections")
FILES = host_files("networkmanager")
BR0_UUID = "0b7e3c0a-0000-4000-8000-0000000000b0"


def parse(name: str) -> FileConfig:
    return NM.parse(DIR / name, FILES[DIR / name])


def test_owns_keyfiles_and_legacy_names_but_not_leftovers() -> None:
    assert all(NM.owns(p) for p in FILES)
    assert NM.owns(DIR / "Wired connection 1")
    for name in ("eth0.nmconnection~", "eth0.nmconnection.bak", ".eth0.nmconnection.swp"):
        assert not NM.owns(DIR / name), name
    assert not NM.owns(PurePosixPath("/etc/NetworkManager/NetworkManager.conf"))


def test_plain_profile() -> None:
    fc = parse("eth0.nmconnection")
    assert set(fc.fragments) == {"eth0"}
    assert fc.connection_ids == {"eth0": "uplink"}
    assert fc.aliases == {"uplink": "eth0", "0b7e3c0a-0000-4000-8000-000000000000": "eth0"}
    assert fc.virtual == frozenset() and fc.deps == {}


def test_legacy_profile_type_alias_and_timestamp_is_not_config() -> None:
    fc = parse("Wired connection 1")
    assert fc.connection_ids == {"eth1": "Wired connection 1"}
    touched = FILES[DIR / "Wired connection 1"].replace(
        "timestamp=1700000000", "timestamp=1800000000"
    )
    assert NM.parse(DIR / "Wired connection 1", touched) == fc


def test_bridge_and_ports_by_name_and_by_uuid() -> None:
    br0 = parse("br0.nmconnection")
    assert br0.virtual == frozenset({"br0"})
    assert br0.aliases[BR0_UUID] == "br0"
    eth4 = parse("br0-port-eth4.nmconnection")
    assert eth4.deps == {"br0": frozenset({"eth4"})} and eth4.controllers == frozenset({"br0"})
    eth5 = parse("br0-port-eth5.nmconnection")  # master= by UUID: resolved when planning
    assert eth5.deps == {BR0_UUID: frozenset({"eth5"})}
    assert eth5.controllers == frozenset({BR0_UUID})


def test_bond_and_ports() -> None:
    assert parse("bond0.nmconnection").virtual == frozenset({"bond0"})
    for i in (2, 3):
        fc = parse(f"bond0-port-eth{i}.nmconnection")
        assert fc.deps == {"bond0": frozenset({f"eth{i}"})}


def test_vlan_on_parent() -> None:
    fc = parse("vlan10.nmconnection")
    assert fc.deps == {"eth0.10": frozenset({"eth0"})}
    assert fc.virtual == frozenset({"eth0.10"})
    assert fc.controllers == frozenset()


def test_vlan_without_interface_name_gets_nm_default_name() -> None:
    fc = NM.parse(DIR / "v", "[connection]\nid=v\ntype=vlan\n[vlan]\nparent=eth1\nid=20\n")
    assert set(fc.fragments) == {"eth1.20"}
    assert fc.deps == {"eth1.20": frozenset({"eth1"})}


def test_profile_without_interface_name_is_unattributed() -> None:
    fc = parse("by-mac.nmconnection")
    assert fc.fragments == {} and fc.unattributed and fc.unattributed_text


def test_order_of_groups_and_keys_and_comments_do_not_change_anything() -> None:
    a = "[connection]\nid=x\ntype=ethernet\ninterface-name=eth7\n[ipv4]\nmethod=auto\n"
    b = "# note\n[ipv4]\nmethod = auto\n\n[connection]\ninterface-name=eth7\ntype=ethernet\nid=x\n"
    assert NM.parse(DIR / "x", a) == NM.parse(DIR / "x", b)


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("id=x\n", 1),
        ("[connection]\nid=x\nnonsense\n", 3),
        ("; not a comment for GKeyFile\n[connection]\nid=x\n", 1),
        ("[ipv4]\nmethod=auto\n", 1),  # no [connection] group
    ],
)
def test_garbage_is_a_config_error_naming_path_and_line(text: str, line: int) -> None:
    with pytest.raises(ConfigError, match=f"^{DIR}/x.nmconnection:{line}: "):
        NM.parse(DIR / "x.nmconnection", text)
