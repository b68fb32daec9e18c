# SPDX-License-Identifier: GPL-3.0-or-later
"""Live link/address/route/rule state as values: types, JSON codecs and ``verify``.
Pure: the netlink door that captures it is ``net.links``.

``net.links`` converts everything netlink returns into these frozen dataclasses, so no pyroute2
object (and no ``Any``) leaks into the rest of the agent.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Iterable, Mapping
from typing import Any, Protocol, Self, TypeVar

RT_TABLE_MAIN = 254
RT_TABLE_LOCAL = 255
_TABLE_NAMES = {253: "default", RT_TABLE_MAIN: "main", RT_TABLE_LOCAL: "local"}
_TYPE_NAMES = {6: "blackhole", 7: "unreachable", 8: "prohibit", 9: "throw", 10: "nat"}
# Linux's AF_INET6 (socket.AF_INET6), named here without importing the socket door.
AF_INET6 = 10


# --------------------------------------------------------------------------------- conversions


def as_int(value: object, default: int = 0) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, got {value!r}")
    return value


def as_opt_int(value: object) -> int | None:
    return None if value is None else as_int(value)


def as_opt_str(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {value!r}")
    return value


def as_str(value: object) -> str:
    s = as_opt_str(value)
    if s is None:
        raise TypeError("expected a string, got None")
    return s


def as_bool(value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected a boolean, got {value!r}")
    return value


def _table_name(table: int) -> str:
    return _TABLE_NAMES.get(table, str(table))


# ---------------------------------------------------------------------------------- value types


@dataclasses.dataclass(frozen=True)
class LinkInfo:
    index: int
    name: str
    kind: str | None  # IFLA_INFO_KIND ("veth", "bridge", ...); None for lo and physical NICs
    up: bool  # administrative state (IFF_UP), not carrier
    mtu: int
    mac: str | None
    master: str | None  # name of the bridge/bond this link is enslaved to

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Self:
        return cls(
            index=as_int(d["index"]),
            name=as_str(d["name"]),
            kind=as_opt_str(d.get("kind")),
            up=as_bool(d["up"]),
            mtu=as_int(d["mtu"]),
            mac=as_opt_str(d.get("mac")),
            master=as_opt_str(d.get("master")),
        )


@dataclasses.dataclass(frozen=True)
class AddrInfo:
    ifname: str
    family: int  # socket.AF_INET or AF_INET6
    address: str
    prefixlen: int

    def describe(self) -> str:
        return f"{self.address}/{self.prefixlen}"

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Self:
        return cls(
            ifname=as_str(d["ifname"]),
            family=as_int(d["family"]),
            address=as_str(d["address"]),
            prefixlen=as_int(d["prefixlen"]),
        )


@dataclasses.dataclass(frozen=True)
class NextHop:
    """One leg of a multipath route."""

    gateway: str | None
    ifname: str | None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Self:
        return cls(gateway=as_opt_str(d.get("gateway")), ifname=as_opt_str(d.get("ifname")))


@dataclasses.dataclass(frozen=True)
class RouteInfo:
    family: int
    table: int  # 254 = main; the real table id also above 255
    dst: str | None  # None = default route
    dst_len: int
    gateway: str | None
    ifname: str | None  # None for multipath and for blackhole/unreachable/prohibit routes
    priority: int  # metric; 0 when the kernel omits it (IPv4 default)
    scope: int
    proto: int
    type: int
    nexthops: tuple[NextHop, ...] = ()  # multipath legs; empty for ordinary routes

    def via(self) -> frozenset[str]:
        """Names of the links this route sends traffic through."""
        names = {nh.ifname for nh in self.nexthops if nh.ifname is not None}
        if self.ifname is not None:
            names.add(self.ifname)
        return frozenset(names)

    def describe(self) -> str:
        """``ip route``-like text, e.g. ``203.0.113.0/24 via 192.0.2.9 dev nct0 table 100``."""
        parts = [_TYPE_NAMES[self.type]] if self.type in _TYPE_NAMES else []
        if self.dst is not None:
            parts.append(f"{self.dst}/{self.dst_len}")
        else:
            parts.append("::/0" if self.family == AF_INET6 else "default")
        if self.gateway is not None:
            parts.append(f"via {self.gateway}")
        if self.ifname is not None:
            parts.append(f"dev {self.ifname}")
        for nh in self.nexthops:
            parts.append(f"nexthop via {nh.gateway or '-'} dev {nh.ifname or '-'}")
        if self.table != RT_TABLE_MAIN:
            parts.append(f"table {_table_name(self.table)}")
        if self.priority:
            parts.append(f"metric {self.priority}")
        return " ".join(parts)

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["nexthops"] = [nh.to_json() for nh in self.nexthops]
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Self:
        return cls(
            family=as_int(d["family"]),
            table=as_int(d["table"]),
            dst=as_opt_str(d.get("dst")),
            dst_len=as_int(d["dst_len"]),
            gateway=as_opt_str(d.get("gateway")),
            ifname=as_opt_str(d.get("ifname")),
            priority=as_int(d.get("priority")),
            scope=as_int(d["scope"]),
            proto=as_int(d["proto"]),
            type=as_int(d["type"]),
            nexthops=tuple(NextHop.from_json(nh) for nh in d.get("nexthops", ())),
        )


@dataclasses.dataclass(frozen=True)
class RuleInfo:
    family: int
    priority: int
    table: int
    src: str | None
    src_len: int
    dst: str | None
    dst_len: int
    iifname: str | None
    oifname: str | None
    fwmark: int | None

    def describe(self) -> str:
        parts = [f"{self.priority}:"]
        parts.append("from " + (f"{self.src}/{self.src_len}" if self.src else "all"))
        if self.dst:
            parts.append(f"to {self.dst}/{self.dst_len}")
        if self.iifname:
            parts.append(f"iif {self.iifname}")
        if self.oifname:
            parts.append(f"oif {self.oifname}")
        if self.fwmark is not None:
            parts.append(f"fwmark {self.fwmark:#x}")
        parts.append(f"lookup {_table_name(self.table)}")
        return " ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Self:
        return cls(
            family=as_int(d["family"]),
            priority=as_int(d["priority"]),
            table=as_int(d["table"]),
            src=as_opt_str(d.get("src")),
            src_len=as_int(d.get("src_len")),
            dst=as_opt_str(d.get("dst")),
            dst_len=as_int(d.get("dst_len")),
            iifname=as_opt_str(d.get("iifname")),
            oifname=as_opt_str(d.get("oifname")),
            fwmark=as_opt_int(d.get("fwmark")),
        )


@dataclasses.dataclass(frozen=True)
class LiveState:
    links: tuple[LinkInfo, ...]
    addrs: tuple[AddrInfo, ...]
    routes: tuple[RouteInfo, ...]
    rules: tuple[RuleInfo, ...]

    def link(self, name: str) -> LinkInfo | None:
        return next((link for link in self.links if link.name == name), None)

    def addrs_of(self, name: str) -> frozenset[AddrInfo]:
        return frozenset(a for a in self.addrs if a.ifname == name)

    def routes_via(self, name: str) -> frozenset[RouteInfo]:
        return frozenset(r for r in self.routes if name in r.via())

    def to_json(self) -> dict[str, Any]:
        return {
            "links": [x.to_json() for x in self.links],
            "addrs": [x.to_json() for x in self.addrs],
            "routes": [x.to_json() for x in self.routes],
            "rules": [x.to_json() for x in self.rules],
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Self:
        return cls(
            links=tuple(LinkInfo.from_json(x) for x in d["links"]),
            addrs=tuple(AddrInfo.from_json(x) for x in d["addrs"]),
            routes=tuple(RouteInfo.from_json(x) for x in d["routes"]),
            rules=tuple(RuleInfo.from_json(x) for x in d["rules"]),
        )


# ------------------------------------------------------------------------------- pure verify


def verify(snapshot: LiveState, now: LiveState, ifnames: Iterable[str]) -> list[str]:
    """Human-readable differences between ``snapshot`` and ``now``, for ``ifnames`` only.

    Compared per interface: existence, kind, administrative up flag, MTU, master, addresses, routes
    through it, and policy rules naming it (iif/oif). The MAC and ifindex are not compared: a link
    that rollback recreated legitimately gets new ones. An empty list means "matches".
    """
    out: list[str] = []
    names = sorted(set(ifnames))
    for name in names:
        was, cur = snapshot.link(name), now.link(name)
        if was is None:
            if cur is not None:
                out.append(f"{name}: exists, but did not exist in the snapshot")
            continue
        if cur is None:
            out.append(f"{name}: missing (a {was.kind or 'link'} in the snapshot)")
            continue
        if cur.kind != was.kind:
            out.append(f"{name}: kind is {cur.kind or 'none'}, was {was.kind or 'none'}")
        if cur.up != was.up:
            out.append(f"{name}: is {_updown(cur.up)}, was {_updown(was.up)}")
        if cur.mtu != was.mtu:
            out.append(f"{name}: mtu is {cur.mtu}, was {was.mtu}")
        if cur.master != was.master:
            out.append(f"{name}: master is {cur.master or 'none'}, was {was.master or 'none'}")
        out.extend(_set_diff(name, "address", snapshot.addrs_of(name), now.addrs_of(name)))
        out.extend(_set_diff(name, "route", snapshot.routes_via(name), now.routes_via(name)))
    wanted = set(names)
    rules_was = frozenset(r for r in snapshot.rules if {r.iifname, r.oifname} & wanted)
    rules_now = frozenset(r for r in now.rules if {r.iifname, r.oifname} & wanted)
    out.extend(_set_diff("rules", "rule", rules_was, rules_now))
    return out


def _updown(up: bool) -> str:
    return "up" if up else "down"


class _Describable(Protocol, Hashable):
    def describe(self) -> str: ...


_D = TypeVar("_D", bound=_Describable)


def _set_diff(name: str, what: str, was: frozenset[_D], now: frozenset[_D]) -> list[str]:
    missing = sorted(x.describe() for x in was - now)
    extra = sorted(x.describe() for x in now - was)
    return [f"{name}: {what} {d} is missing" for d in missing] + [
        f"{name}: unexpected {what} {d}" for d in extra
    ]
