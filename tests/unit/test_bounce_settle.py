# SPDX-License-Identifier: GPL-3.0-or-later
"""StackNetwork's stages after the files are back (reload, up, routes, verify, hook) against a
scripted netlink: dropped routes are re-added at once for
a synchronous stack (ifup), but an asynchronous one (networkd, NetworkManager) first gets time to
re-add them itself; a transient failure (gateway not reachable yet) is not a rollback failure.
Also NetworkManager's down: a port already deactivated by its bridge is not a failure."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any, cast

from netcfg_txn.core.model import StepResult
from netcfg_txn.core.rollback import BouncePlan, StackPlan
from netcfg_txn.host.runner import Completed
from netcfg_txn.net.backends import ApplyConfig, Stack, get_backend
from netcfg_txn.net.links import Links
from netcfg_txn.net.livestate import AddrInfo, LinkInfo, LiveState, RouteInfo
from netcfg_txn.net.stack import StackNetwork
from tests.fakes import FakeRunner, failed

NCT1 = LinkInfo(3, "nct1", "veth", True, 1500, None, None)
ADDR = AddrInfo("nct1", socket.AF_INET, "198.51.100.1", 24)
ROUTE = RouteInfo(socket.AF_INET, 254, "203.0.113.0", 24, "198.51.100.2", "nct1", 0, 0, 4, 1)
SNAPSHOT = LiveState((NCT1,), (ADDR,), (ROUTE,), ())
PLAN = StackPlan(
    "test", BouncePlan(down=("nct1",), delete=(), up=("nct1",), unattributed=(), reload=False)
)


class ScriptedLinks:
    """Netlink as a stack brings nct1 back: after ``addr_after`` captures the address is there,
    after ``route_after`` the stack has added the route too (None: never, it is not in its
    config). Our own route add fails with ENETUNREACH until the address is there."""

    def __init__(self, addr_after: int, route_after: int | None) -> None:
        self.addr_after, self.route_after = addr_after, route_after
        self.captures = 0
        self.added = False
        self.attempts = 0

    def __call__(self) -> ScriptedLinks:
        return self

    def __enter__(self) -> ScriptedLinks:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def capture(self) -> LiveState:
        self.captures += 1
        has_addr = self.captures > self.addr_after
        stack_route = self.route_after is not None and self.captures > self.route_after
        return LiveState(
            (NCT1,),
            (ADDR,) if has_addr else (),
            (ROUTE,) if self.added or stack_route else (),
            (),
        )

    def restore_mtu(self, snapshot: LiveState, ifnames: Sequence[str]) -> list[StepResult]:
        return []

    def restore_routes(self, snapshot: LiveState, ifnames: Iterable[str]) -> list[StepResult]:
        now = self.capture()
        if ROUTE in now.routes:
            return []
        self.attempts += 1
        if not now.addrs:
            return [StepResult("restore-route", ROUTE.describe(), False, "ENETUNREACH")]
        self.added = True
        return [StepResult("restore-route", ROUTE.describe(), True)]


def network(stack: Stack, links: ScriptedLinks, **kw: Any) -> StackNetwork:
    settings = ApplyConfig()
    return StackNetwork(
        get_backend(stack, settings),
        settings,
        runner=FakeRunner(),
        links=cast(Callable[[], Links], links),  # the scripted stand-in for the netlink door
        **kw,
    )


def after_files(net: StackNetwork) -> list[StepResult]:
    """The stages after the files are back, in the pipeline's order."""
    live = SNAPSHOT.to_json()
    return [
        *net.reload(PLAN),
        *net.up(PLAN),
        *net.restore_routes(PLAN, live),
        *net.verify(PLAN, live),
        *net.run_hook(PLAN),
    ]


def test_synchronous_stack_gets_its_routes_back_at_once() -> None:
    links = ScriptedLinks(addr_after=0, route_after=None)
    results = after_files(network(Stack.IFUPDOWN, links))
    assert [(r.action, r.ok) for r in results] == [
        ("up", True),
        ("restore-route", True),
        ("verify", True),
    ]
    assert links.attempts == 1


def test_asynchronous_stack_adds_its_own_routes_without_us() -> None:
    links = ScriptedLinks(addr_after=3, route_after=5)
    net = network(Stack.NETWORKD, links, route_grace_s=5.0, settle_s=5.0)
    results = after_files(net)
    assert [(r.action, r.ok) for r in results] == [("up", True), ("verify", True)]
    assert links.attempts == 0  # never raced the stack


def test_asynchronous_stack_a_route_not_in_its_config_is_restored_after_the_grace() -> None:
    # The address comes late: the first attempts fail (ENETUNREACH), a later one succeeds, and
    # only the success is reported.
    links = ScriptedLinks(addr_after=4, route_after=None)
    net = network(Stack.NETWORKMANAGER, links, route_grace_s=0.0, settle_s=5.0)
    results = after_files(net)
    assert [(r.action, r.ok) for r in results] == [
        ("up", True),
        ("restore-route", True),
        ("verify", True),
    ]
    assert links.attempts > 1


def test_a_route_that_never_comes_back_is_reported_with_the_mismatch() -> None:
    links = ScriptedLinks(addr_after=10**6, route_after=None)
    net = network(Stack.NETWORKD, links, route_grace_s=0.0, settle_s=0.3)
    results = after_files(net)
    failed_steps = [(r.action, r.target) for r in results if not r.ok]
    assert ("restore-route", ROUTE.describe()) in failed_steps
    assert any(a == "verify" for a, _ in failed_steps)


def test_networkmanager_down_of_a_port_its_bridge_already_deactivated_is_ok() -> None:
    nm = get_backend(Stack.NETWORKMANAGER, ApplyConfig())
    disconnect = ("nmcli", "device", "disconnect", "nct1")
    state = ("nmcli", "-g", "GENERAL.STATE", "device", "show", "nct1")
    run = FakeRunner(
        {
            disconnect: failed(disconnect, 6, "Error: ... This device is not active"),
            state: Completed(state, 0, "30 (disconnected)\n", ""),
        }
    )
    assert nm.down(["nctbr1", "nct1"], run) == [
        StepResult("down", "nctbr1", True),
        StepResult("down", "nct1", True),
    ]
    # Still active (or gone) after a failed disconnect: a real failure.
    run = FakeRunner(
        {
            disconnect: failed(disconnect, 1, "Error: timeout"),
            state: Completed(state, 0, "100 (connected)\n", ""),
        }
    )
    (step,) = nm.down(["nct1"], run)
    assert not step.ok and "timeout" in (step.error or "")


class StaleMtu(ScriptedLinks):
    """The stack recreated nct1 from a stale definition: MTU 1400 until we set it back."""

    def __init__(self) -> None:
        super().__init__(addr_after=0, route_after=0)
        self.mtu = 1400
        self.asked: list[list[str]] = []

    def capture(self) -> LiveState:
        now = super().capture()
        return LiveState((replace(NCT1, mtu=self.mtu),), now.addrs, now.routes, now.rules)

    def restore_mtu(self, snapshot: LiveState, ifnames: Sequence[str]) -> list[StepResult]:
        self.asked.append(list(ifnames))
        self.mtu = 1500
        return [StepResult("restore-mtu", "nct1 mtu 1500", True)]


def test_an_mtu_the_stack_got_wrong_is_set_back_after_the_grace() -> None:
    links = StaleMtu()
    net = network(Stack.NETWORKD, links, route_grace_s=0.0, settle_s=5.0)
    results = after_files(net)
    assert [(r.action, r.ok) for r in results] == [
        ("up", True),
        ("restore-mtu", True),
        ("verify", True),
    ]
    assert links.asked == [["nct1"]]
