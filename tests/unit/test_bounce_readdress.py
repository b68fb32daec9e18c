# SPDX-License-Identifier: GPL-3.0-or-later
"""StackNetwork's stages after the files are back, for a bridge: an address-only change is set
back over netlink with nothing taken down (NetworkManager then reapplies the restored profile),
and the ports no config lists (VM taps) of a bridge that was bounced are enslaved again. Found by
scripts/topology-test: ifdown/ifup of br0 dropped both VM taps for good."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import cast

from netcfg_txn.core.model import StepResult
from netcfg_txn.core.rollback import BouncePlan, StackPlan
from netcfg_txn.net.backends import ApplyConfig, Stack, get_backend
from netcfg_txn.net.links import Links
from netcfg_txn.net.livestate import LinkInfo, LiveState
from netcfg_txn.net.network import LiveJson
from netcfg_txn.net.stack import StackNetwork
from tests.fakes import FakeRunner

BR0 = LinkInfo(5, "br0", "bridge", True, 1500, None, None)
TAP1 = LinkInfo(6, "tap1", "tun", True, 1500, None, "br0")
SNAPSHOT = LiveState((BR0, TAP1), (), (), ())


class FakeLinks:
    """Netlink where tap1 lost its bridge until ``reattach`` is called."""

    def __init__(self, attached: bool) -> None:
        self.attached = attached
        self.calls: list[tuple[str, tuple[str, ...]]] = []

    def __call__(self) -> FakeLinks:
        return self

    def __enter__(self) -> FakeLinks:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def capture(self) -> LiveState:
        tap = TAP1 if self.attached else LinkInfo(6, "tap1", "tun", True, 1500, None, None)
        return LiveState((BR0, tap), (), (), ())

    def readdress(self, snapshot: LiveState, ifnames: Iterable[str]) -> list[StepResult]:
        self.calls.append(("readdress", tuple(ifnames)))
        return [StepResult("restore-address", "198.51.100.1/26 dev br0", True)]

    def reattach(
        self, snapshot: LiveState, controllers: Iterable[str], skip: Iterable[str]
    ) -> list[StepResult]:
        self.calls.append(("reattach", tuple(sorted(controllers))))
        self.attached = True
        return [StepResult("reattach", "tap1 master br0", True)]

    def restore_mtu(self, snapshot: LiveState, ifnames: Sequence[str]) -> list[StepResult]:
        return []

    def restore_routes(self, snapshot: LiveState, ifnames: Iterable[str]) -> list[StepResult]:
        return []


def network(stack: Stack, links: FakeLinks, runner: FakeRunner) -> StackNetwork:
    settings = ApplyConfig()
    return StackNetwork(
        get_backend(stack, settings),
        settings,
        runner=runner,
        links=cast(Callable[[], Links], links),
        settle_s=2.0,
    )


def before_files(net: StackNetwork, bp: BouncePlan) -> list[StepResult]:
    plan = StackPlan(net.name, bp)
    return [*net.down(plan), *net.delete_created_links(plan)]


def after_files(net: StackNetwork, bp: BouncePlan, live: LiveJson) -> list[StepResult]:
    plan = StackPlan(net.name, bp)
    return [
        *net.reload(plan),
        *net.up(plan),
        *net.restore_routes(plan, live),
        *net.verify(plan, live),
        *net.run_hook(plan),
    ]


def test_address_only_change_of_a_bridge_is_never_taken_down() -> None:
    plan = BouncePlan((), (), (), (), reload=True, readdress=("br0",))
    links, runner = FakeLinks(attached=True), FakeRunner()
    net = network(Stack.IFUPDOWN, links, runner)
    assert before_files(net, plan) == []
    results = after_files(net, plan, SNAPSHOT.to_json())
    assert [(r.action, r.ok) for r in results] == [("restore-address", True), ("verify", True)]
    assert links.calls == [("readdress", ("br0",))]
    assert not any(c[0] in ("ifdown", "ifup") for c in runner.effects())


def test_networkmanager_reapplies_the_restored_profile_after_a_readdress() -> None:
    plan = BouncePlan((), (), (), (), reload=True, readdress=("br0",))
    runner = FakeRunner()
    net = network(Stack.NETWORKMANAGER, FakeLinks(attached=True), runner)
    results = after_files(net, plan, SNAPSHOT.to_json())
    assert ("reapply", "br0", True) in [(r.action, r.target, r.ok) for r in results]
    assert ("nmcli", "device", "reapply", "br0") in runner.effects()
    assert not any("down" in c or "disconnect" in c for c in runner.effects())


def test_readdress_without_a_live_snapshot_fails_loudly() -> None:
    plan = BouncePlan((), (), (), (), reload=True, readdress=("br0",))
    results = after_files(network(Stack.IFUPDOWN, FakeLinks(True), FakeRunner()), plan, None)
    assert [(r.action, r.target, r.ok) for r in results] == [("readdress", "br0", False)]


def test_a_bounced_bridge_gets_its_unlisted_ports_back() -> None:
    plan = BouncePlan(("br0",), ("br0",), ("br0",), (), reload=True)
    links = FakeLinks(attached=False)
    results = after_files(network(Stack.IFUPDOWN, links, FakeRunner()), plan, SNAPSHOT.to_json())
    assert ("reattach", ("br0",)) in links.calls
    assert [(r.action, r.ok) for r in results][-2:] == [("reattach", True), ("verify", True)]
