# SPDX-License-Identifier: GPL-3.0-or-later
"""ifupdown and ifupdown2 parsing, against fixture files.

Parse-level only: this kernel has no bond or 8021q module, so bonds and VLANs cannot be built
live here; the fixtures cover a bridge with ports, a bond with members, VLANs on a parent, two
plain interfaces and comments.
"""

from __future__ import annotations

from pathlib import PurePosixPath

import pytest

from netcfg_txn.core.errors import ConfigError
from netcfg_txn.net.backends import ApplyConfig, Stack, get_backend
from tests.fakes import host_files

IFUPDOWN = get_backend(Stack.IFUPDOWN, ApplyConfig())
IFUPDOWN2 = get_backend(Stack.IFUPDOWN2, ApplyConfig())
MAIN = PurePosixPath("/etc/network/interfaces")
FILES = host_files("ifupdown")


def test_owns_interfaces_and_the_d_directory_only() -> None:
    assert IFUPDOWN.owns(MAIN)
    assert IFUPDOWN.owns(PurePosixPath("/etc/network/interfaces.d/br0"))
    assert not IFUPDOWN.owns(PurePosixPath("/etc/network/if-up.d/ntp"))
    assert not IFUPDOWN.owns(PurePosixPath("/etc/systemd/network/10-eth0.network"))


def test_plain_interfaces_bond_and_global_lines() -> None:
    fc = IFUPDOWN.parse(MAIN, FILES[MAIN])
    assert set(fc.fragments) == {"lo", "eth0", "eth1", "bond0", "eth2", "eth3"}
    # inet and inet6 stanzas of one name make one fragment, with its auto line
    assert fc.fragments["eth0"] == (
        "auto\n"
        "iface eth0 inet static\n  address 192.0.2.10/24\n  gateway 192.0.2.1\n"
        "iface eth0 inet6 auto\n"
    )
    # hook lines are configuration too; a backslash continuation is one line
    assert "  pre-up echo preparing eth1\n" in fc.fragments["eth1"]
    assert "  up ip route add 198.51.100.0/24 dev eth1\n" in fc.fragments["eth1"]
    assert fc.fragments["eth1"].startswith("allow-hotplug\n")
    assert fc.deps == {"bond0": frozenset({"eth2", "eth3"})}
    assert fc.controllers == frozenset({"bond0"})
    assert fc.virtual == frozenset({"bond0"})
    assert fc.unattributed and fc.unattributed_text == "source /etc/network/interfaces.d/*"


def test_bridge_with_ports() -> None:
    path = PurePosixPath("/etc/network/interfaces.d/br0")
    fc = IFUPDOWN.parse(path, FILES[path])
    assert set(fc.fragments) == {"br0", "eth4", "eth5"}
    assert "  bridge-ports eth4 eth5\n" in fc.fragments["br0"]  # bridge_ports is the same option
    assert fc.deps == {"br0": frozenset({"eth4", "eth5"})}
    assert fc.controllers == frozenset({"br0"})
    assert fc.virtual == frozenset({"br0"})
    assert not fc.unattributed


def test_vlans_by_dotted_name_and_by_raw_device() -> None:
    path = PurePosixPath("/etc/network/interfaces.d/vlans")
    fc = IFUPDOWN.parse(path, FILES[path])
    assert fc.deps == {"eth0.10": frozenset({"eth0"}), "vlan20": frozenset({"eth1"})}
    assert fc.virtual == frozenset({"eth0.10", "vlan20"})
    assert fc.controllers == frozenset()  # stacked on a parent, not enslaving it


def test_bond_master_on_the_member_side() -> None:
    fc = IFUPDOWN.parse(MAIN, "iface eth9 inet manual\n    bond-master bond1\n")
    assert fc.deps == {"bond1": frozenset({"eth9"})}
    assert fc.controllers == frozenset({"bond1"})
    assert fc.virtual == frozenset()  # the bond is created by its own stanza


def test_comments_blank_lines_and_spacing_do_not_change_anything() -> None:
    noisy = (
        FILES[MAIN]
        .replace("iface eth1 inet dhcp", "# a new comment\n\niface   eth1  inet\tdhcp")
        .replace("    address 192.0.2.10/24", "\taddress    192.0.2.10/24   ")
    )
    assert noisy != FILES[MAIN]
    assert IFUPDOWN.parse(MAIN, noisy) == IFUPDOWN.parse(MAIN, FILES[MAIN])


@pytest.mark.parametrize(
    ("text", "line", "what"),
    [
        ("address 192.0.2.1/24\n", 1, "outside of an iface stanza"),
        ("auto eth0\n\n    address 192.0.2.1/24\n", 3, "outside of an iface stanza"),
        ("# c\niface eth0\n", 2, "expected 'iface NAME FAMILY METHOD'"),
        ("iface eth0 inet manual\n    mtu\n", 2, "option 'mtu' has no value"),
    ],
)
def test_garbage_is_a_config_error_naming_path_and_line(text: str, line: int, what: str) -> None:
    """The cases ``ifquery -i FILE`` (ifupdown 0.8) rejects too."""
    with pytest.raises(ConfigError, match=f"^/etc/network/interfaces:{line}: .*{what}"):
        IFUPDOWN.parse(MAIN, text)


def test_mapping_blocks_are_unattributed() -> None:
    fc = IFUPDOWN.parse(
        MAIN, "mapping eth0\n  script /usr/local/sbin/map-scheme\n  map HOME eth0-home\n"
    )
    assert fc.fragments == {}
    assert fc.unattributed
    assert (
        fc.unattributed_text
        == "mapping eth0\nscript /usr/local/sbin/map-scheme\nmap HOME eth0-home"
    )


def test_ifupdown2_fixture() -> None:
    fc = IFUPDOWN2.parse(MAIN, host_files("ifupdown2")[MAIN])
    assert set(fc.fragments) == {
        "lo",
        "eth0",
        "eth1",
        "bond0",
        "br0",
        "vxlan100",
        "eth0.10",
        "dum0",
    }
    assert fc.fragments["eth0"] == "auto\niface eth0\n  address 192.0.2.10/24\n"
    assert "  bridge-vids 10 20\n" in fc.fragments["br0"]
    assert fc.deps == {
        "bond0": frozenset({"eth2", "eth3"}),
        "br0": frozenset({"eth4", "eth5", "vxlan100"}),
        "eth0.10": frozenset({"eth0"}),
    }
    assert fc.controllers == frozenset({"bond0", "br0"})
    assert fc.virtual == frozenset({"bond0", "br0", "vxlan100", "eth0.10", "dum0"})


def test_ifupdown2_template_lines_make_the_file_unattributed() -> None:
    fc = IFUPDOWN2.parse(MAIN, "%for v in range(10, 12):\niface vlan${v}\n%endfor\n")
    assert fc.unattributed and fc.unattributed_text is None and fc.fragments == {}
