# SPDX-License-Identifier: GPL-3.0-or-later
"""netcfg_txn.net.links against real veth and bridge links in throwaway namespaces.

The links code runs *inside* the host namespace (``ip netns exec NS python``, same interpreter as
pytest, so the pyroute2 under test is whichever this venv has) and hands its results back as
JSON through the codecs of ``net.livestate`` (whose pure parts are tests/unit/test_livestate.py).
"""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest

from netcfg_txn.net.livestate import AddrInfo, LinkInfo, LiveState, NextHop, RouteInfo, verify
from tests.netns.stacks import Topology, ip, netns_python

netns = pytest.mark.netns


@pytest.fixture
def host(topology: Topology) -> str:
    """The host namespace with nct0 192.0.2.1/24 and nct1 198.51.100.1/24 up, plus a bridge
    nctbr0 (no address) whose port is nct2 (peer end p2)."""
    ns = topology.host
    for dev, cidr in (("nct0", "192.0.2.1/24"), ("nct1", "198.51.100.1/24")):
        ip("addr", "add", cidr, "dev", dev, ns=ns)
        ip("link", "set", dev, "up", ns=ns)
    topology.add_veth("nct2", "p2")
    topology.add_bridge("nctbr0", ["nct2"])
    return ns


def link(state: LiveState, name: str) -> LinkInfo:
    found = state.link(name)
    assert found is not None, f"{name} not captured"
    return found


def capture(ns: str) -> LiveState:
    return LiveState.from_json(netns_python(ns, "result = links.capture().to_json()"))


def call(ns: str, code: str, arg: object = None) -> Any:
    return netns_python(ns, code, arg)


def steps(ns: str, expr: str, snapshot: LiveState) -> Any:
    """The sorted (action, target, ok) of the StepResults ``expr`` returns (``arg``: snapshot)."""
    code = f"rs = {expr}\nresult = sorted((r.action, r.target, r.ok) for r in rs)"
    return call(ns, code, snapshot.to_json())


def add_static_routes(ns: str) -> None:
    """Routes the kernel drops when nct0 goes down, in an order that needs care to restore:
    203.0.113.65 is only reachable through the scope-link route 203.0.113.64/26."""
    for route in (
        "203.0.113.0/26 via 192.0.2.2 dev nct0",
        "203.0.113.64/26 dev nct0 scope link",
        "198.51.100.128/25 via 203.0.113.65 dev nct0",
        "203.0.113.128/26 via 192.0.2.2 dev nct0 table 1000 metric 7 proto static",
        "203.0.113.192/26 nexthop via 192.0.2.2 dev nct0 nexthop via 198.51.100.2 dev nct1",
    ):
        ip("route", "add", *route.split(), ns=ns)


# --------------------------------------------------------------------------------- live tests


@netns
def test_capture_converts_links_addresses_routes_and_rules(host: str) -> None:
    add_static_routes(host)
    ip("rule", "add", "iif", "nct1", "lookup", "1000", "priority", "100", ns=host)
    state = capture(host)

    nct0 = link(state, "nct0")
    assert (nct0.kind, nct0.up, nct0.mtu, nct0.master) == ("veth", True, 1500, None)
    assert link(state, "nct2").master == "nctbr0"
    assert link(state, "nctbr0").kind == "bridge"
    assert link(state, "lo").kind is None

    assert AddrInfo("nct0", socket.AF_INET, "192.0.2.1", 24) in state.addrs
    assert not [a for a in state.addrs if a.address.startswith("fe80:")], "link-local captured"

    described = {r.describe() for r in state.routes}
    assert "203.0.113.0/26 via 192.0.2.2 dev nct0" in described
    assert "203.0.113.128/26 via 192.0.2.2 dev nct0 table 1000 metric 7" in described
    multipath = next(r for r in state.routes if r.dst == "203.0.113.192")
    assert multipath.nexthops == (NextHop("192.0.2.2", "nct0"), NextHop("198.51.100.2", "nct1"))
    assert multipath.via() == {"nct0", "nct1"}
    # Kernel-generated routes are left out: no prefix routes, nothing from the local table.
    assert not [r for r in state.routes if r.proto == 2 or r.table == 255]

    rule = next(r for r in state.rules if r.priority == 100)
    assert (rule.iifname, rule.table, rule.family) == ("nct1", 1000, socket.AF_INET)

    doc = json.loads(json.dumps(state.to_json()))
    assert LiveState.from_json(doc) == state


@netns
def test_route_dropped_by_link_down_is_restored(topology: Topology, host: str) -> None:
    add_static_routes(host)
    snapshot = capture(host)
    before = topology.carrier_changes("nct0"), topology.carrier_changes("nct1")

    results = call(
        host,
        "result = [links.set_state('nct0', False).ok, links.set_state('nct0', True).ok]",
    )
    assert results == [True, True]
    assert topology.carrier_changes("nct0") == before[0] + 2
    assert topology.carrier_changes("nct1") == before[1]

    now = capture(host)
    problems = verify(snapshot, now, ["nct0"])
    assert "nct0: route 203.0.113.0/26 via 192.0.2.2 dev nct0 is missing" in problems
    assert not [p for p in problems if "address" in p], "IPv4 addresses survive a bounce"

    restored = call(
        host,
        "import dataclasses\n"
        "snap = L.LiveState.from_json(arg)\n"
        "result = [dataclasses.asdict(r) for r in links.restore_routes(snap, ['nct0'])]",
        snapshot.to_json(),
    )
    assert restored and all(r["ok"] for r in restored), restored
    assert {r["target"] for r in restored} >= {
        "198.51.100.128/25 via 203.0.113.65 dev nct0",
        "203.0.113.64/26 dev nct0",
    }
    assert verify(snapshot, capture(host), ["nct0", "nct1"]) == []
    # Nothing left to restore: a second pass is a no-op.
    again = call(
        host,
        "result = len(links.restore_routes(L.LiveState.from_json(arg), ['nct0']))",
        snapshot.to_json(),
    )
    assert again == 0


@netns
def test_verify_reports_a_changed_address_and_nothing_on_untouched_links(host: str) -> None:
    snapshot = capture(host)
    ip("addr", "del", "198.51.100.1/24", "dev", "nct1", ns=host)
    ip("addr", "add", "198.51.100.11/24", "dev", "nct1", ns=host)
    ip("link", "set", "nct1", "mtu", "1400", ns=host)
    now = capture(host)

    assert verify(snapshot, now, ["nct0", "nct1"]) == [
        "nct1: mtu is 1400, was 1500",
        "nct1: address 198.51.100.1/24 is missing",
        "nct1: unexpected address 198.51.100.11/24",
    ]
    assert verify(snapshot, now, ["nct0"]) == []


@netns
def test_restore_addresses_after_a_flush(host: str) -> None:
    snapshot = capture(host)
    ip("addr", "flush", "dev", "nct1", ns=host)
    results = call(
        host,
        "rs = links.restore_addresses(L.LiveState.from_json(arg), ['nct1'])\n"
        "result = [(r.action, r.target, r.ok) for r in rs]",
        snapshot.to_json(),
    )
    assert results == [["restore-address", "198.51.100.1/24 dev nct1", True]]
    assert verify(snapshot, capture(host), ["nct1"]) == []


@netns
def test_readdress_swaps_the_addresses_and_keeps_the_bridge_and_its_ports(host: str) -> None:
    ip("addr", "add", "203.0.113.1/26", "dev", "nctbr0", ns=host)
    ip("link", "set", "nctbr0", "up", ns=host)
    snapshot = capture(host)
    ip("addr", "flush", "dev", "nctbr0", ns=host)
    ip("addr", "add", "203.0.113.3/26", "dev", "nctbr0", ns=host)
    ip("addr", "add", "203.0.113.70/26", "dev", "nctbr0", ns=host)
    results = steps(host, "links.readdress(L.LiveState.from_json(arg), ['nctbr0'])", snapshot)
    assert results == [
        ["remove-address", "203.0.113.3/26 dev nctbr0", True],
        ["remove-address", "203.0.113.70/26 dev nctbr0", True],
        ["restore-address", "203.0.113.1/26 dev nctbr0", True],
    ]
    now = capture(host)
    assert verify(snapshot, now, ["nctbr0", "nct2", "nct0", "nct1"]) == []
    assert link(now, "nctbr0").index == link(snapshot, "nctbr0").index  # never recreated


@netns
def test_reattach_enslaves_again_the_ports_a_recreated_bridge_lost(
    topology: Topology, host: str
) -> None:
    topology.add_veth("nct3", "p3")
    ip("link", "set", "nct3", "master", "nctbr0", ns=host)
    snapshot = capture(host)
    ip("link", "del", "nctbr0", ns=host)  # a bounce: the stack recreates it with its own port
    ip("link", "add", "nctbr0", "type", "bridge", ns=host)
    ip("link", "set", "nct2", "master", "nctbr0", ns=host)
    results = steps(
        host, "links.reattach(L.LiveState.from_json(arg), ['nctbr0'], ['nct2'])", snapshot
    )
    assert results == [["reattach", "nct3 master nctbr0", True]]
    now = capture(host)
    assert link(now, "nct3").master == "nctbr0" and link(now, "nct2").master == "nctbr0"
    # idempotent: nothing left to do
    assert steps(host, "links.reattach(L.LiveState.from_json(arg), ['nctbr0'], [])", snapshot) == []


@netns
def test_reattach_leaves_a_port_that_was_down_down(topology: Topology, host: str) -> None:
    topology.add_veth("nct3", "p3")
    ip("link", "set", "nct3", "master", "nctbr0", "down", ns=host)
    snapshot = capture(host)
    ip("link", "del", "nctbr0", ns=host)
    ip("link", "add", "nctbr0", "type", "bridge", ns=host)
    ip("link", "set", "nct3", "up", ns=host)  # as enslaving to a bond opens it
    results = steps(host, "links.reattach(L.LiveState.from_json(arg), ['nctbr0'], [])", snapshot)
    assert ["reattach", "nct3 master nctbr0", True] in results
    now = capture(host)
    assert link(now, "nct3").master == "nctbr0" and not link(now, "nct3").up


@netns
def test_delete_bridge(host: str) -> None:
    snapshot = capture(host)
    result = call(
        host, "r = links.delete('nctbr0'); result = [r.ok, r.error, sorted(links.names())]"
    )
    assert result[0] is True and result[1] is None
    assert "nctbr0" not in result[2] and "nct2" in result[2]

    now = capture(host)
    assert link(now, "nct2").master is None
    assert verify(snapshot, now, ["nctbr0", "nct2"]) == [
        "nct2: master is none, was nctbr0",
        "nctbr0: missing (a bridge in the snapshot)",
    ]


@netns
def test_missing_interface_gives_failed_step_results(host: str) -> None:
    snapshot = LiveState(
        links=(LinkInfo(99, "nct9", "veth", True, 1500, None, None),),
        addrs=(AddrInfo("nct9", socket.AF_INET, "203.0.113.9", 24),),
        routes=(RouteInfo(2, 254, "203.0.113.0", 26, "192.0.2.2", "nct9", 0, 0, 3, 1),),
        rules=(),
    )
    out = call(
        host,
        "import dataclasses\n"
        "snap = L.LiveState.from_json(arg)\n"
        "rs = [links.delete('nct9'), links.set_state('nct9', True)]\n"
        "rs.append(links.set_state('nct9', False))\n"
        "rs += links.restore_routes(snap, ['nct9']) + links.restore_addresses(snap, ['nct9'])\n"
        "try:\n"
        "    links.carrier_changes('nct9')\n"
        "    err = None\n"
        "except Exception as e:\n"
        "    err = [type(e).__name__, str(e)]\n"
        "result = {'steps': [dataclasses.asdict(r) for r in rs], 'carrier': err}",
        snapshot.to_json(),
    )
    assert [(s["action"], s["ok"], s["error"]) for s in out["steps"]] == [
        ("delete", False, "no such interface: nct9"),
        ("up", False, "no such interface: nct9"),
        ("down", False, "no such interface: nct9"),
        ("restore-route", False, "no such interface: nct9"),
        ("restore-address", False, "no such interface: nct9"),
    ]
    assert out["carrier"] == ["Failed", "no such interface: nct9"]


@netns
def test_links_needs_a_worker_thread_under_asyncio(host: str) -> None:
    out = call(
        host,
        "import asyncio\n"
        "def capture():\n"
        "    with L.Links() as l:\n"
        "        return len(l.capture().links)\n"
        "async def main():\n"
        "    n = await asyncio.to_thread(capture)\n"
        "    try:\n"
        "        L.Links()\n"
        "        refused = None\n"
        "    except Exception as e:\n"
        "        refused = type(e).__name__\n"
        "    return [n, refused]\n"
        "result = asyncio.run(main())",
    )
    assert out[0] >= 5 and out[1] == "InternalError"


@netns
def test_restore_mtu_sets_back_only_what_differs(topology: Topology, host: str) -> None:
    snapshot = capture(host)
    ip("link", "set", "nct1", "mtu", "1400", ns=host)  # as a stale definition recreated it
    code = "links.restore_mtu(L.LiveState.from_json(arg), ['nct0', 'nct1', 'nct9'])"
    assert steps(host, code, snapshot) == [["restore-mtu", "nct1 mtu 1500", True]]
    assert verify(snapshot, capture(host), ["nct0", "nct1"]) == []
    assert steps(host, code, snapshot) == []  # nothing left to do
