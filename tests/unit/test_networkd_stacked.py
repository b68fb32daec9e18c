# SPDX-License-Identifier: GPL-3.0-or-later
"""A VLAN the rollback deleted (its ``.netdev`` changed) comes back without networkd
reconfiguring its parent: ``up`` creates it as the ``.netdev`` says, and networkd adopts it.
Only a ``.netdev`` this translation does not know falls back to touching the parent's file.

The VM tier (``scripts/topology-test -s vlan20-mtu``) runs this against a real networkd."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from netcfg_txn.core.model import StepResult
from netcfg_txn.host.runner import Completed
from netcfg_txn.net.backends import ApplyConfig
from netcfg_txn.net.backends import networkd as networkd_mod
from netcfg_txn.net.backends.networkd_stacked import layered, vlan_argv
from tests.fakes import FakeRunner

PARENT = "[Match]\nName=bond0\n[Network]\nAddress=192.0.2.17/28\nVLAN=bond0.10\nVLAN=bond0.20\n"
NETDEV = "[NetDev]\nName=bond0.20\nKind=vlan\n{netdev}[VLAN]\nId=20\n{vlan}"
ADD = ["ip", "link", "add", "link", "bond0", "name", "bond0.20"]


def tree(tmp_path: Path, netdev: str = "", vlan: str = "", parent: str = PARENT) -> list[Path]:
    etc, run = tmp_path / "etc", tmp_path / "run"
    etc.mkdir(parents=True)
    run.mkdir()
    (etc / "20-bond0.network").write_text(parent)
    (etc / "30-bond0.20.netdev").write_text(NETDEV.format(netdev=netdev, vlan=vlan))
    (etc / "30-bond0.20.network").write_text("[Match]\nName=bond0.20\n[Network]\nDHCP=no\n")
    return [etc, run]


def test_translation_of_every_known_setting(tmp_path: Path) -> None:
    dirs = tree(
        tmp_path,
        netdev="MTUBytes=1400\nMACAddress=02:00:00:00:00:20\nDescription=storage\n",
        vlan="Protocol=802.1ad\nGVRP=yes\nMVRP=0\nLooseBinding=true\nReorderHeader=off\n",
    )
    assert vlan_argv("bond0.20", dirs) == [
        *ADD,
        *("mtu", "1400", "address", "02:00:00:00:00:20"),
        *("type", "vlan", "id", "20", "protocol", "802.1ad"),
        *("gvrp", "on", "mvrp", "off", "loose_binding", "on", "reorder_hdr", "off"),
    ]
    assert vlan_argv("bond0.10", dirs) is None  # listed by its parent, but no .netdev


@pytest.mark.parametrize(
    ("netdev", "vlan", "parent"),
    [
        ("", "EgressQOSMaps=1-2\n", PARENT),  # a setting not translated
        ("MTUBytes=1K\n", "", PARENT),  # a size only networkd's parser should read
        ("MACAddress=none\n", "", PARENT),
        ("", "Protocol=foo\n", PARENT),
        ("", "", PARENT.replace("Name=bond0", "Name=bond*")),  # parent is a glob
        ("", "", PARENT.replace("Name=bond0", "Name=bond0 bond1")),
        ("", "", PARENT.replace("VLAN=bond0.20\n", "")),  # no parent lists it
    ],
)
def test_anything_else_is_left_to_networkd(
    tmp_path: Path, netdev: str, vlan: str, parent: str
) -> None:
    assert vlan_argv("bond0.20", tree(tmp_path, netdev, vlan, parent)) is None


def test_not_a_vlan_or_a_netdev_with_match_is_left_to_networkd(tmp_path: Path) -> None:
    dirs = tree(tmp_path)
    nd = dirs[0] / "30-bond0.20.netdev"
    nd.write_text("[NetDev]\nName=bond0.20\nKind=macvlan\n[MACVLAN]\nMode=bridge\n")
    assert vlan_argv("bond0.20", dirs) is None
    nd.write_text("[Match]\nHost=other\n" + NETDEV.format(netdev="", vlan=""))
    assert vlan_argv("bond0.20", dirs) is None


def test_etc_hides_the_same_file_name_in_run(tmp_path: Path) -> None:
    dirs = tree(tmp_path)
    (dirs[1] / "30-bond0.20.netdev").write_text(NETDEV.format(netdev="MTUBytes=9000\n", vlan=""))
    (dirs[1] / "31-other.netdev").write_text("[NetDev]\nName=x\nKind=bridge\n")
    assert [p.name for p in layered(dirs, ".netdev")] == ["30-bond0.20.netdev", "31-other.netdev"]
    assert vlan_argv("bond0.20", dirs) == [*ADD, "type", "vlan", "id", "20"]


class Missing:
    """``networkctl reconfigure`` fails with "No such device" until ``ip link add`` ran."""

    def __init__(self, add_result: Completed | None = None) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.created = False
        self.add_result = add_result

    def __call__(
        self, argv: Sequence[str], *, timeout_s: float = 30.0, check: bool = True
    ) -> Completed:
        cmd = tuple(argv)
        self.calls.append(cmd)
        if cmd[:3] == ("ip", "link", "add"):
            self.created = True
            return self.add_result or Completed(cmd, 0, "", "")
        if self.created:
            return Completed(cmd, 0, "", "")
        return Completed(cmd, 1, "", f'Failed to resolve interface "{cmd[-1]}": No such device')


def backend(dirs: Sequence[Path]) -> networkd_mod.Networkd:
    b = networkd_mod.Networkd(ApplyConfig())
    b.dirs = dirs
    return b


def test_up_creates_a_missing_vlan_then_reconfigures_it(tmp_path: Path) -> None:
    run = Missing()
    steps = backend(tree(tmp_path, netdev="MTUBytes=1400\n")).up(["bond0.20"], run)
    assert steps == [StepResult("create", "bond0.20", True), StepResult("up", "bond0.20", True)]
    reconfigure = ("networkctl", "reconfigure", "--", "bond0.20")
    add = (*ADD, "mtu", "1400", "type", "vlan", "id", "20")
    assert run.calls == [reconfigure, add, reconfigure]


def test_networkd_creating_it_first_is_fine(tmp_path: Path) -> None:
    exists = Completed((), 2, "", "RTNETLINK answers: File exists")
    steps = backend(tree(tmp_path)).up(["bond0.20"], Missing(exists))
    assert [(s.action, s.ok) for s in steps] == [("create", True), ("up", True)]


def test_up_of_a_vlan_it_cannot_translate_waits_for_networkd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(networkd_mod, "APPEAR_POLL_S", 0.0)
    monkeypatch.setattr(networkd_mod, "APPEAR_S", 0.05)
    run = Missing()
    [step] = backend(tree(tmp_path, vlan="EgressQOSMaps=1-2\n")).up(["bond0.20"], run)
    assert not step.ok and "No such device" in (step.error or "")
    assert all(c[:3] != ("ip", "link", "add") for c in run.calls)


def test_recreated_touches_the_parent_only_for_a_vlan_up_cannot_create(tmp_path: Path) -> None:
    dirs = tree(tmp_path)
    run = FakeRunner()
    assert backend(dirs).recreated(["bond0.20"], run) == [] and run.calls == []
    dirs = tree(tmp_path / "b", vlan="EgressQOSMaps=1-2\n")
    steps = backend(dirs).recreated(["bond0.20"], run)
    parent = str(dirs[0] / "20-bond0.network")
    assert run.calls == [("touch", "-c", "--", parent)] and [s.ok for s in steps] == [True]


def test_a_failed_creation_counts_only_if_the_link_never_comes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(networkd_mod, "APPEAR_POLL_S", 0.0)
    monkeypatch.setattr(networkd_mod, "APPEAR_S", 0.05)
    no_parent = Completed((), 1, "", 'Cannot find device "bond0"')

    class NetworkdLater(Missing):
        """The parent is not there yet for ``ip``; networkd creates both a moment later."""

        def __call__(
            self, argv: Sequence[str], *, timeout_s: float = 30.0, check: bool = True
        ) -> Completed:
            done = super().__call__(argv, timeout_s=timeout_s, check=check)
            self.created = len(self.calls) > 3
            return done

    dirs = tree(tmp_path)
    assert backend(dirs).up(["bond0.20"], NetworkdLater(no_parent)) == [
        StepResult("up", "bond0.20", True)
    ]
    steps = backend(dirs).up(["bond0.20"], Never(no_parent))
    assert [(s.action, s.ok) for s in steps] == [("create", False), ("up", False)]


class Never(Missing):
    """Neither ``ip`` nor networkd ever creates the link."""

    def __call__(
        self, argv: Sequence[str], *, timeout_s: float = 30.0, check: bool = True
    ) -> Completed:
        done = super().__call__(argv, timeout_s=timeout_s, check=check)
        self.created = False
        return done
