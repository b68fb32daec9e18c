# SPDX-License-Identifier: GPL-3.0-or-later
"""The live-state values: JSON codecs, ``ip route``-like text and ``verify``. Pure, no root."""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest

from netcfg_txn.net import livestate
from netcfg_txn.net.livestate import (
    AddrInfo,
    LinkInfo,
    LiveState,
    NextHop,
    RouteInfo,
    RuleInfo,
    verify,
)


def _state(**overrides: Any) -> LiveState:
    base: dict[str, Any] = {
        "links": (
            LinkInfo(2, "nct0", "veth", True, 1500, "02:00:00:00:00:01", None),
            LinkInfo(3, "nct1", "veth", True, 1500, "02:00:00:00:00:02", "nctbr1"),
            LinkInfo(4, "nctbr1", "bridge", True, 1500, "02:00:00:00:00:03", None),
        ),
        "addrs": (
            AddrInfo("nct0", socket.AF_INET, "192.0.2.1", 24),
            AddrInfo("nctbr1", socket.AF_INET, "198.51.100.1", 24),
            AddrInfo("nct0", socket.AF_INET6, "2001:db8::1", 64),
        ),
        "routes": (
            RouteInfo(2, 254, None, 0, "192.0.2.2", "nct0", 0, 0, 3, 1),
            RouteInfo(10, 254, "2001:db8:1::", 48, None, "nct0", 1024, 0, 3, 1),
            RouteInfo(
                2,
                254,
                "203.0.113.0",
                24,
                None,
                None,
                0,
                0,
                3,
                1,
                (NextHop("192.0.2.2", "nct0"), NextHop("198.51.100.2", "nctbr1")),
            ),
            RouteInfo(2, 254, "198.51.100.128", 25, None, None, 0, 0, 3, 7),
        ),
        "rules": (RuleInfo(2, 100, 1000, None, 0, None, 0, "nctbr1", None, 0x10),),
    }
    base.update(overrides)
    return LiveState(**base)


def test_codecs_round_trip_through_json() -> None:
    state = _state()
    assert LiveState.from_json(json.loads(json.dumps(state.to_json()))) == state


def test_from_json_rejects_wrong_types() -> None:
    doc = _state().to_json()
    doc["links"][0]["mtu"] = "1500"
    with pytest.raises(TypeError):
        LiveState.from_json(doc)


def test_describe_is_ip_route_like() -> None:
    routes = [r.describe() for r in _state().routes]
    assert routes == [
        "default via 192.0.2.2 dev nct0",
        "2001:db8:1::/48 dev nct0 metric 1024",
        "203.0.113.0/24 nexthop via 192.0.2.2 dev nct0 nexthop via 198.51.100.2 dev nctbr1",
        "unreachable 198.51.100.128/25",
    ]
    assert _state().rules[0].describe() == "100: from all iif nctbr1 fwmark 0x10 lookup 1000"


def test_verify_identical_states_and_ignores_mac_and_index() -> None:
    snap = _state()
    recreated = tuple(
        LinkInfo(x.index + 10, x.name, x.kind, x.up, x.mtu, "02:ff:ff:ff:ff:ff", x.master)
        for x in snap.links
    )
    assert verify(snap, _state(links=recreated), ["nct0", "nct1", "nctbr1"]) == []


def test_verify_reports_per_interface_and_only_those_asked() -> None:
    snap = _state()
    now = _state(
        links=(
            LinkInfo(2, "nct0", "veth", False, 9000, None, None),
            LinkInfo(3, "nct1", "veth", True, 1500, None, None),
            LinkInfo(5, "nct7", "veth", True, 1500, None, None),
        ),
        routes=snap.routes[:1],
        rules=(),
    )
    assert verify(snap, now, ["nct0"]) == [
        "nct0: is down, was up",
        "nct0: mtu is 9000, was 1500",
        "nct0: route 2001:db8:1::/48 dev nct0 metric 1024 is missing",
        "nct0: route 203.0.113.0/24 nexthop via 192.0.2.2 dev nct0 nexthop via 198.51.100.2 "
        "dev nctbr1 is missing",
    ]
    assert verify(snap, now, ["nct1", "nctbr1", "nct7", "nct8"]) == [
        "nct1: master is none, was nctbr1",
        "nct7: exists, but did not exist in the snapshot",
        "nctbr1: missing (a bridge in the snapshot)",
        "rules: rule 100: from all iif nctbr1 fwmark 0x10 lookup 1000 is missing",
    ]


def test_the_address_family_named_without_the_socket_door_is_linux_s() -> None:
    assert livestate.AF_INET6 == socket.AF_INET6
