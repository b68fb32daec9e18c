# SPDX-License-Identifier: GPL-3.0-or-later
"""systemd-networkd parsing, against fixture files.

Parse-level only: this kernel has no bond or 8021q module, so the bond and VLAN netdevs cannot be
created live here; the fixtures cover a bridge with ports, a bond with members, a VLAN on a
parent, two plain interfaces, a glob match, a drop-in, a MAC-matched .link file and comments.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path, PurePosixPath

import pytest

from netcfg_txn.core.errors import ConfigError
from netcfg_txn.core.model import StepResult
from netcfg_txn.host.runner import Completed
from netcfg_txn.net.backends import SELF, ApplyConfig, Stack, get_backend
from netcfg_txn.net.backends import networkd as networkd_mod
from netcfg_txn.net.backends.base import FileConfig
from tests.fakes import FakeRunner, host_files

NETWORKD = get_backend(Stack.NETWORKD, ApplyConfig())
DIR = PurePosixPath("/etc/systemd/network")
FILES = host_files("networkd")


def parse(name: str) -> FileConfig:
    return NETWORKD.parse(DIR / name, FILES[DIR / name])


def test_owns_network_netdev_link_and_dropins() -> None:
    for name in (
        "10-eth0.network",
        "20-br0.netdev",
        "99-default.link",
        "10-eth1.network.d/mtu.conf",
    ):
        assert NETWORKD.owns(DIR / name), name
    assert NETWORKD.owns(PurePosixPath("/run/systemd/network/10-x.network"))
    assert not NETWORKD.owns(DIR / "README")
    assert not NETWORKD.owns(DIR / "10-eth1.network.d/mtu.txt")
    assert not NETWORKD.owns(PurePosixPath("/etc/systemd/system/foo.network"))
    assert all(NETWORKD.owns(p) for p in FILES)


def test_plain_interface_lists_the_vlan_stacked_on_it() -> None:
    fc = parse("10-eth0.network")
    assert set(fc.fragments) == {"eth0"}
    # The Name= list is the key, and VLAN= the stacked link's tie: neither is eth0's setting.
    assert fc.fragments["eth0"] == "[Match]\n[Network]\nAddress=192.0.2.10/24\nGateway=192.0.2.1\n"
    assert fc.deps == {"eth0.10": frozenset({"eth0"})}
    assert fc.controllers == frozenset()
    assert fc.exclusive and not fc.unattributed


def test_bridge_netdev_and_its_ports() -> None:
    netdev = parse("20-br0.netdev")
    assert netdev.virtual == frozenset({"br0"})
    assert set(netdev.fragments) == {"br0"}
    assert not netdev.exclusive  # every .netdev creates its own link
    ports = parse("21-br0-ports.network")
    assert set(ports.fragments) == {"eth4", "eth5"}
    assert ports.deps == {"br0": frozenset({"eth4", "eth5"})}
    assert ports.controllers == frozenset({"br0"})
    assert parse("20-br0.network").virtual == frozenset()  # configures, does not create


def test_bond_and_members() -> None:
    assert parse("30-bond0.netdev").virtual == frozenset({"bond0"})
    members = parse("31-bond0-members.network")
    assert members.deps == {"bond0": frozenset({"eth2", "eth3"})}
    assert members.controllers == frozenset({"bond0"})


def test_vlan_netdev() -> None:
    fc = parse("40-eth0.10.netdev")
    assert fc.virtual == frozenset({"eth0.10"})
    assert "[VLAN]\nId=10\n" in fc.fragments["eth0.10"]


def test_glob_with_exclusion_is_one_key() -> None:
    assert set(parse("50-veth.network").fragments) == {"veth* !veth-lab"}


def test_link_matched_by_mac_is_unattributed() -> None:
    fc = parse("99-default.link")
    assert fc.fragments == {} and fc.unattributed
    assert fc.unattributed_text == "[Match]\nMACAddress=02:00:00:00:00:01\n[Link]\nName=uplink0\n"


def test_link_matched_by_original_name_is_attributed() -> None:
    fc = NETWORKD.parse(DIR / "10-wan.link", "[Match]\nOriginalName=eth0\n[Link]\nMTUBytes=9000\n")
    assert set(fc.fragments) == {"eth0"}


def test_dropin_extends_its_file() -> None:
    fc = parse("10-eth1.network.d/mtu.conf")
    assert fc.extends == DIR / "10-eth1.network"
    assert fc.fragments == {SELF: "[Link]\nMTUBytes=9000\n"}


@pytest.mark.parametrize(
    ("match", "keys"),
    [
        ("Name=!eth0\n", None),  # matches everything but eth0: nothing to blame
        ("Name=eth0\nName=\nName=eth1\n", {"eth1"}),  # an empty assignment resets the list
        ("Name=en* eth0\nName=!enp3s0\n", {"en* !enp3s0", "eth0 !enp3s0"}),
        ("Driver=e1000e\n", None),
    ],
)
def test_match_name_rules(match: str, keys: set[str] | None) -> None:
    fc = NETWORKD.parse(DIR / "x.network", f"[Match]\n{match}\n[Network]\nDHCP=yes\n")
    if keys is None:
        assert fc.unattributed and fc.fragments == {}
    else:
        assert set(fc.fragments) == keys and not fc.unattributed


def test_no_match_section_is_unattributed() -> None:
    assert NETWORKD.parse(DIR / "x.network", "[Network]\nDHCP=yes\n").unattributed


def test_comments_continuations_and_spacing_do_not_change_anything() -> None:
    base = "[Match]\nName=eth1\n\n[Network]\nDHCP=yes\nDNS=192.0.2.53 192.0.2.54\n"
    noisy = (
        "# c\n[Match]\n; c2\nName = eth1  \n[Network]\nDHCP=yes\nDNS=192.0.2.53 \\\n  192.0.2.54\n"
    )
    assert NETWORKD.parse(DIR / "x.network", noisy) == NETWORKD.parse(DIR / "x.network", base)


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("Name=eth0\n", 1),  # outside of a section
        ("[Match]\nName=eth0\nthis is not a key\n", 3),
        ("[Match\nName=eth0\n", 1),
        ("[Match]\n=eth0\n", 2),
    ],
)
def test_garbage_is_a_config_error_naming_path_and_line(text: str, line: int) -> None:
    with pytest.raises(ConfigError, match=f"^/etc/systemd/network/x.network:{line}: "):
        NETWORKD.parse(DIR / "x.network", text)


class AppearsLater:
    """``networkctl reconfigure`` answering "No such device" until the link is created."""

    def __init__(self, misses: int) -> None:
        self.misses = misses
        self.calls: list[tuple[str, ...]] = []

    def __call__(
        self, argv: Sequence[str], *, timeout_s: float = 30.0, check: bool = True
    ) -> Completed:
        self.calls.append(tuple(argv))
        if len(self.calls) <= self.misses:
            err = f'Failed to resolve interface "{argv[-1]}": No such device'
            return Completed(tuple(argv), 1, "", err)
        return Completed(tuple(argv), 0, "", "")


def isolated(tmp_path: Path) -> networkd_mod.Networkd:
    """A backend reading its files from an empty directory, not this host's."""
    b = networkd_mod.Networkd(ApplyConfig())
    b.dirs = (tmp_path,)
    return b


def test_up_waits_for_a_vlan_networkd_is_still_creating(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(networkd_mod, "APPEAR_POLL_S", 0.0)
    run = AppearsLater(misses=3)
    assert isolated(tmp_path).up(["bond0.20"], run) == [StepResult("up", "bond0.20", True)]
    assert len(run.calls) == 4


def test_up_of_a_link_that_never_appears_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(networkd_mod, "APPEAR_POLL_S", 0.0)
    monkeypatch.setattr(networkd_mod, "APPEAR_S", 0.05)
    [step] = isolated(tmp_path).up(["eth9"], AppearsLater(misses=10**9))
    assert not step.ok and "No such device" in (step.error or "")


def test_recreated_bond_touches_the_files_of_its_ports(tmp_path: Path) -> None:
    etc, run_dir = tmp_path / "etc", tmp_path / "run"
    for d in (etc, run_dir, etc / "15-eth2.network.d"):
        d.mkdir()
    (etc / "15-eth1.network").write_text("[Match]\nName=eth1\n[Network]\nBond=bond0\n")
    (etc / "15-eth2.network").write_text("[Match]\nName=eth2\n[Network]\nDHCP=no\n")
    (etc / "15-eth2.network.d" / "bond.conf").write_text("[Network]\nBond=bond0\n")
    (etc / "16-eth3.network").write_text("[Match]\nName=eth3\n[Network]\nBond=bond1\n")
    (etc / "20-bond0.network").write_text("[Match]\nName=bond0\n[Network]\nVLAN=bond0.10\n")
    (run_dir / "10-netplan-eth4.network").write_text("[Match]\nName=eth4\n[Network]\nBridge=br0\n")
    (run_dir / "bad.network").write_text("no section\n")
    run = FakeRunner()
    steps = networkd_mod.Networkd(ApplyConfig()).recreated(
        ["bond0", "br0"], run, dirs=(etc, run_dir)
    )
    touched = [
        etc / "15-eth1.network",
        etc / "15-eth2.network.d" / "bond.conf",
        run_dir / "10-netplan-eth4.network",
    ]
    assert run.calls == [("touch", "-c", "--", str(p)) for p in touched]
    assert all(s.ok for s in steps) and len(steps) == 3


def test_nothing_recreated_touches_nothing(tmp_path: Path) -> None:
    run = FakeRunner()
    assert (
        networkd_mod.Networkd(ApplyConfig()).recreated([], run, dirs=(tmp_path,)) == []
        and run.calls == []
    )
