# SPDX-License-Identifier: GPL-3.0-or-later
"""Live link/address/route/rule state over rtnetlink: the only pyroute2 importer.

Reads come back as the values of ``net.livestate`` (converted there, at this boundary). Only
calls present in both pyroute2 0.7.2 (Debian 12) and 0.9.x are used: ``IPRoute()`` in the current
network namespace, ``get_links``/``get_addr``/``get_routes``/``get_rules``, ``link_lookup`` and
``link``/``addr``/``route`` with ``"add"``/``"set"``/``"del"``.

Threading: pyroute2 0.9's synchronous ``IPRoute`` drives its own asyncio loop, so it cannot be used
on a thread that is already running one. The daemon creates and uses a ``Links`` inside one worker
call, e.g. ``await asyncio.to_thread(capture_live)`` where ``capture_live`` does
``with Links() as links: return links.capture()``, and never shares an instance between threads.

What ``capture()`` leaves out, because the kernel regenerates it and comparing it would only make
``verify`` noisy: routes of type local/broadcast/anycast/multicast (the ``local`` table), routes
with protocol ``kernel`` (prefix routes derived from addresses, IPv6 ``fe80::/64``) or ``ra``
(router advertisements), and IPv6 link-local addresses (``fe80::/10``, derived from the MAC).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Self

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from netcfg_txn.core.errors import Failed, InternalError
from netcfg_txn.core.model import StepResult
from netcfg_txn.net.livestate import (
    AddrInfo,
    LiveState,
    NextHop,
    RouteInfo,
    as_int,
    as_str,
)
from netcfg_txn.net.nlmessages import addr_info, link_info, route_info, rule_info

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------- Links


class Links:
    """A narrow, typed view of rtnetlink in the current network namespace (one IPRoute socket).

    ``delete``, ``set_state`` and ``restore_*`` never raise: a rollback must continue past one
    failure, so every outcome is a ``StepResult``. ``capture``/``names`` raise ``Failed``.
    """

    def __init__(self, *, sysfs: Path = Path("/sys")) -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise InternalError(
                "netcfg_txn.net.links.Links used on a thread running an asyncio loop",
                hint="run it in a worker thread: asyncio.to_thread(...)",
            )
        self._sysfs = sysfs
        try:
            self._ipr: Any = IPRoute()
        except (NetlinkError, OSError) as e:
            raise Failed(f"cannot open an rtnetlink socket: {e}") from e

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._ipr.close()

    # ----------------------------------------------------------------------------- reading

    def capture(self) -> LiveState:
        """Links, addresses, routes (all tables) and rules, minus what the kernel generates."""
        try:
            raw_links = tuple(self._ipr.get_links())
            names = {as_int(m["index"]): as_str(m.get_attr("IFLA_IFNAME")) for m in raw_links}
            links = tuple(link_info(m, names) for m in raw_links)
            addrs = tuple(a for m in self._ipr.get_addr() if (a := addr_info(m, names)) is not None)
            routes = tuple(
                r for m in self._ipr.get_routes() if (r := route_info(m, names)) is not None
            )
            rules = tuple(
                rule_info(m)
                for family in (socket.AF_INET, socket.AF_INET6)
                for m in self._ipr.get_rules(family=family)
            )
        except (NetlinkError, OSError) as e:
            raise Failed(f"cannot read the live network state: {e}") from e
        return LiveState(links, addrs, routes, rules)

    def names(self) -> frozenset[str]:
        try:
            return frozenset(as_str(m.get_attr("IFLA_IFNAME")) for m in self._ipr.get_links())
        except (NetlinkError, OSError) as e:
            raise Failed(f"cannot list links: {e}") from e

    def carrier_changes(self, name: str) -> int:
        """The kernel's carrier up/down counter: +2 per down/up. Read from sysfs, which must be
        mounted for this network namespace (``ip netns exec`` does that)."""
        path = self._sysfs / "class" / "net" / name / "carrier_changes"
        try:
            return int(path.read_text().strip())
        except FileNotFoundError:
            raise Failed(f"no such interface: {name}") from None
        except (OSError, ValueError) as e:
            raise Failed(f"cannot read {path}: {e}") from e

    # ----------------------------------------------------------------------------- writing

    def delete(self, name: str) -> StepResult:
        """Delete a link (a veth takes its peer with it)."""
        return self._on_link("delete", name, lambda idx: self._ipr.link("del", index=idx))

    def set_state(self, name: str, up: bool) -> StepResult:
        """Raw netlink ``ip link set NAME up|down``: the fallback when no backend tool applies."""
        state = "up" if up else "down"
        return self._on_link(state, name, lambda idx: self._ipr.link("set", index=idx, state=state))

    def take_down(self, name: str) -> StepResult:
        """``ip link set NAME down`` and remove its global addresses: what ``ifdown`` would have
        left, for when the stack's own tool cannot run (its config does not parse)."""

        def op(idx: int) -> None:
            self._ipr.link("set", index=idx, state="down")
            for a in self._ipr.get_addr(index=idx):
                if as_int(a.get("scope", 0)) != 0:  # link/host scope (fe80::) stays
                    continue
                addr = a.get_attr("IFA_LOCAL") or a.get_attr("IFA_ADDRESS")
                try:
                    self._ipr.addr("del", index=idx, address=addr, prefixlen=as_int(a["prefixlen"]))
                except NetlinkError as e:  # a secondary goes with its primary
                    if as_int(e.code) != errno.EADDRNOTAVAIL:
                        raise

        return self._on_link("take-down", name, op)

    def restore_routes(self, snapshot: LiveState, ifnames: Iterable[str]) -> list[StepResult]:
        """Re-add snapshot routes through ``ifnames`` that are missing now.

        Bringing a link down makes the kernel drop every static route through it. Routes without
        a gateway go first (a gateway may only be reachable through one of them), and failures
        are retried for as long as a pass makes progress. EEXIST counts as success. One
        ``StepResult`` per route attempted (action ``restore-route``, target ``describe()``).
        """
        wanted = set(ifnames)
        try:
            now = self.capture()
        except Failed as e:
            return [StepResult("restore-route", ",".join(sorted(wanted)), False, e.message)]
        present = set(now.routes)
        todo = [r for r in snapshot.routes if r.via() & wanted and r not in present]
        todo.sort(key=lambda r: (r.gateway is not None or bool(r.nexthops), r.describe()))
        index = {link.name: link.index for link in now.links}
        results: dict[RouteInfo, StepResult] = {}
        while todo:
            for route in todo:
                results[route] = self._add_route(route, index)
            retry = [r for r in todo if not results[r].ok]
            if len(retry) == len(todo):  # no progress: what is left fails for good
                break
            todo = retry
        return list(results.values())

    def restore_addresses(self, snapshot: LiveState, ifnames: Iterable[str]) -> list[StepResult]:
        """Add snapshot addresses of ``ifnames`` that are missing now (EEXIST counts as success)."""
        wanted = set(ifnames)
        try:
            now = self.capture()
        except Failed as e:
            return [StepResult("restore-address", ",".join(sorted(wanted)), False, e.message)]
        present = set(now.addrs)
        index = {link.name: link.index for link in now.links}
        results = []
        for addr in snapshot.addrs:
            if addr.ifname not in wanted or addr in present:
                continue
            target = f"{addr.describe()} dev {addr.ifname}"
            idx = index.get(addr.ifname)
            if idx is None:
                results.append(
                    StepResult(
                        "restore-address", target, False, f"no such interface: {addr.ifname}"
                    )
                )
                continue
            results.append(self._call("restore-address", target, _addr_add(self._ipr, idx, addr)))
        return results

    def reattach(
        self, snapshot: LiveState, controllers: Iterable[str], skip: Iterable[str]
    ) -> list[StepResult]:
        """Enslave again the links that were ports of ``controllers`` in the snapshot and are
        not now: ports no config lists (a VM's tap on a bridge) are lost when the bridge is
        recreated. ``skip``: links the stack itself brought up (their config says where)."""
        wanted, skipped = set(controllers), set(skip)
        try:
            now = self.capture()
        except Failed as e:
            return [StepResult("reattach", ",".join(sorted(wanted)), False, e.message)]
        index = {link.name: link.index for link in now.links}
        results = []
        for was in snapshot.links:
            cur = now.link(was.name)
            if was.master not in wanted or was.name in skipped or cur is None:
                continue
            if cur.master == was.master or was.master not in index:
                continue
            op = _set_master(self._ipr, cur.index, index[was.master], up=was.up)
            results.append(self._call("reattach", f"{was.name} master {was.master}", op))
        return results

    def restore_mtu(self, snapshot: LiveState, ifnames: Sequence[str]) -> list[StepResult]:
        """Set the snapshot's MTU back on those of ``ifnames`` (lower links first) whose MTU
        differs. A stack that recreated a link from a definition it keeps in memory, not from
        the restored file, gets it wrong (networkd 252 never re-reads a VLAN's changed .netdev
        while it runs): the restored config means the snapshot's MTU."""
        try:
            now = self.capture()
        except Failed as e:
            return [StepResult("restore-mtu", ",".join(ifnames), False, e.message)]
        results = []
        for name in ifnames:
            was, cur = snapshot.link(name), now.link(name)
            if was is None or cur is None or cur.mtu == was.mtu:
                continue
            op = _set_mtu(self._ipr, cur.index, was.mtu)
            results.append(self._call("restore-mtu", f"{name} mtu {was.mtu}", op))
        return results

    def readdress(self, snapshot: LiveState, ifnames: Iterable[str]) -> list[StepResult]:
        """Make the addresses of ``ifnames`` those of the snapshot, the links staying up:
        remove the ones the snapshot did not have, then add the missing ones."""
        wanted = set(ifnames)
        try:
            now = self.capture()
        except Failed as e:
            return [StepResult("readdress", ",".join(sorted(wanted)), False, e.message)]
        index = {link.name: link.index for link in now.links}
        was = set(snapshot.addrs)
        results = []
        for addr in now.addrs:
            if addr.ifname in wanted and addr not in was and addr.ifname in index:
                results.append(
                    self._call(
                        "remove-address",
                        f"{addr.describe()} dev {addr.ifname}",
                        _addr_del(self._ipr, index[addr.ifname], addr),
                    )
                )
        return results + self.restore_addresses(snapshot, wanted)

    # ----------------------------------------------------------------------------- helpers

    def _lookup(self, name: str) -> int | None:
        found = [as_int(i) for i in self._ipr.link_lookup(ifname=name)]
        return found[0] if found else None

    def _on_link(self, action: str, name: str, op: Callable[[int], object]) -> StepResult:
        try:
            idx = self._lookup(name)
        except (NetlinkError, OSError) as e:
            return StepResult(action, name, False, f"cannot look up {name}: {e}")
        if idx is None:
            return StepResult(action, name, False, f"no such interface: {name}")
        return self._call(action, name, lambda: op(idx))

    def _call(self, action: str, target: str, op: Callable[[], object]) -> StepResult:
        try:
            op()
        except NetlinkError as e:
            code = as_int(e.code)
            if code == errno.EEXIST and action.startswith("restore-"):
                return StepResult(action, target, True)
            msg = f"{_errname(code)}: {e}"
            log.warning("%s %s failed: %s", action, target, msg)
            return StepResult(action, target, False, msg)
        except Exception as e:  # a rollback goes on past anything; the failure is reported
            log.exception("%s %s failed unexpectedly", action, target)
            return StepResult(action, target, False, f"{type(e).__name__}: {e}")
        log.debug("%s %s: ok", action, target)
        return StepResult(action, target, True)

    def _add_route(self, route: RouteInfo, index: Mapping[str, int]) -> StepResult:
        target = route.describe()
        missing = sorted(n for n in route.via() if n not in index)
        if missing:
            return StepResult("restore-route", target, False, f"no such interface: {missing[0]}")
        kwargs: dict[str, object] = {
            "family": route.family,
            "dst_len": route.dst_len,
            "table": route.table,
            "scope": route.scope,
            "proto": route.proto,
            "type": route.type,
        }
        if route.dst is not None:
            kwargs["dst"] = route.dst
        if route.priority:
            kwargs["priority"] = route.priority
        if route.gateway is not None:
            kwargs["gateway"] = route.gateway
        if route.ifname is not None:
            kwargs["oif"] = index[route.ifname]
        if route.nexthops:
            kwargs["multipath"] = [_nexthop_arg(nh, index) for nh in route.nexthops]
        return self._call("restore-route", target, lambda: self._ipr.route("add", **kwargs))


def _addr_add(ipr: Any, index: int, addr: AddrInfo) -> Callable[[], object]:
    def add() -> object:
        return ipr.addr("add", index=index, address=addr.address, prefixlen=addr.prefixlen)

    return add


def _set_master(ipr: Any, index: int, master: int, *, up: bool = True) -> Callable[[], object]:
    def enslave() -> object:
        done = ipr.link("set", index=index, master=master)
        if not up:  # a bond opens the ports it enslaves: one that was down goes down again
            done = ipr.link("set", index=index, state="down")
        return done

    return enslave


def _set_mtu(ipr: Any, index: int, mtu: int) -> Callable[[], object]:
    def set_mtu() -> object:
        return ipr.link("set", index=index, mtu=mtu)

    return set_mtu


def _addr_del(ipr: Any, index: int, addr: AddrInfo) -> Callable[[], object]:
    def delete() -> object:
        try:
            return ipr.addr("del", index=index, address=addr.address, prefixlen=addr.prefixlen)
        except NetlinkError as e:  # a secondary goes with its primary
            if as_int(e.code) != errno.EADDRNOTAVAIL:
                raise
            return None

    return delete


def _nexthop_arg(nh: NextHop, index: Mapping[str, int]) -> dict[str, object]:
    arg: dict[str, object] = {}
    if nh.gateway is not None:
        arg["gateway"] = nh.gateway
    if nh.ifname is not None:
        arg["oif"] = index[nh.ifname]
    return arg


def _errname(code: int) -> str:
    return errno.errorcode.get(code, str(code))
