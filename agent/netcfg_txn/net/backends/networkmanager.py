# SPDX-License-Identifier: GPL-3.0-or-later
"""NetworkManager keyfiles: ``*.nmconnection`` and legacy suffix-less files."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

from netcfg_txn.core.errors import CommandFailed, ConfigError
from netcfg_txn.core.model import StepResult
from netcfg_txn.net.backends.base import (
    Backend,
    FileConfig,
    Stack,
    command_step,
    missing_tools,
    probe,
)
from netcfg_txn.net.backends.keyfile import canonical, parse_keyfile

if TYPE_CHECKING:  # the runner is injected: only its type is needed here
    from netcfg_txn.host.runner import Runner

DIRS = (
    PurePosixPath("/etc/NetworkManager/system-connections"),
    PurePosixPath("/run/NetworkManager/system-connections"),
)

# Connection types whose activation creates the link (software devices).
VIRTUAL_TYPES = frozenset(
    {
        "bond",
        "bridge",
        "dummy",
        "ip-tunnel",
        "ipvlan",
        "macsec",
        "macvlan",
        "team",
        "tun",
        "veth",
        "vlan",
        "vrf",
        "vxlan",
        "wireguard",
    }
)

# Per-connection bookkeeping NetworkManager may rewrite; not configuration.
_SKIP = frozenset({"timestamp"})

# NMDeviceState: unmanaged, unavailable, disconnected.
_INACTIVE_STATES = frozenset({"10", "20", "30"})

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def nmcli(*args: str) -> list[str]:
    return ["nmcli", *args]


# address1=..., address2=... and the old addresses= of [ipv4]/[ipv6] in a canonical keyfile
_ADDRESS_KEY = re.compile(r"address(es|\d+)=")


class NetworkManager(Backend, stack=Stack.NETWORKMANAGER):
    asynchronous = True

    def owns(self, path: PurePosixPath) -> bool:
        if path.parent not in DIRS or path.name.startswith("."):
            return False
        # NetworkManager itself ignores editor and package-manager leftovers (~, .bak, .rpmnew...).
        return (
            path.suffix == ".nmconnection" or "." not in path.name and not path.name.endswith("~")
        )

    def parse(self, path: PurePosixPath, text: str) -> FileConfig:
        sections = parse_keyfile(path, text, comments="#", continuation=False)
        groups = {s.name: s for s in sections}  # GKeyFile: a repeated group merges, last wins
        canon = canonical(sections, ordered=False, skip=_SKIP)
        conn = groups.get("connection")
        if conn is None:
            raise ConfigError(f"{path}:1: no [connection] group")
        ctype = conn.get("type") or ""
        ctype = {"802-3-ethernet": "ethernet", "802-11-wireless": "wifi"}.get(ctype, ctype)
        cid = conn.get("id") or path.name.removesuffix(".nmconnection")
        vlan = groups.get("vlan")
        parent = vlan.get("parent") if vlan else None
        name = conn.get("interface-name")
        if not name and ctype == "vlan" and parent and not _UUID.fullmatch(parent) and vlan:
            name = f"{parent}.{vlan.get('id')}" if vlan.get("id") else None  # NM's default name
        if not name:  # e.g. a profile matching by MAC address: cannot be blamed on a name
            return FileConfig(unattributed=True, unattributed_text=canon)
        deps: dict[str, frozenset[str]] = {}
        controllers: frozenset[str] = frozenset()
        controller = conn.get("controller") or conn.get("master")
        if controller:
            deps[controller] = frozenset({name})
            controllers = frozenset({controller})
        if ctype == "vlan" and parent:
            deps[name] = deps.get(name, frozenset()) | {parent}
        aliases = {cid: name}
        if uuid := conn.get("uuid"):
            aliases[uuid] = name
        return FileConfig(
            fragments={name: canon},
            deps=deps,
            virtual=frozenset({name}) if ctype in VIRTUAL_TYPES else frozenset(),
            connection_ids={name: cid},
            controllers=controllers,
            aliases=aliases,
        )

    def down(
        self,
        ifnames: Sequence[str],
        run: Runner,
        *,
        connection_ids: Mapping[str, str] | None = None,
    ) -> list[StepResult]:
        # Disconnecting a bridge, bond or vlan parent first (upper links go first) already
        # deactivated its ports: "This device is not active" means the goal is reached.
        t = self.settings.timeout_s
        return [
            refused
            if (refused := self.refuse_name("down", n)) is not None
            else command_step(
                "down",
                n,
                nmcli("device", "disconnect", n),
                run,
                t,
                goal_reached=functools.partial(self._inactive, n, run),
            )
            for n in ifnames
        ]

    def _inactive(self, ifname: str, run: Runner) -> bool:
        """Is the device there and not activated (unmanaged, unavailable or disconnected)?"""
        argv = nmcli("-g", "GENERAL.STATE", "device", "show", ifname)
        try:
            done = run(argv, timeout_s=self.settings.timeout_s, check=False)
        except CommandFailed:
            return False
        code = done.stdout.strip().split(" ", 1)[0]
        return done.returncode == 0 and code in _INACTIVE_STATES

    def reload(self, run: Runner) -> list[StepResult]:
        argv = nmcli("connection", "reload")
        return [
            command_step("reload", "nmcli connection reload", argv, run, self.settings.timeout_s)
        ]

    def up(
        self,
        ifnames: Sequence[str],
        run: Runner,
        *,
        connection_ids: Mapping[str, str] | None = None,
    ) -> list[StepResult]:
        ids = connection_ids or {}
        t = self.settings.timeout_s
        return [
            refused
            if (refused := self.refuse_name("up", n)) is not None
            else command_step("up", n, nmcli("connection", "up", "id", ids[n]), run, t)
            if n in ids
            # No profile id known (plan made without one): let NetworkManager pick the best.
            else command_step("up", n, nmcli("connection", "up", "ifname", n), run, t)
            for n in ifnames
        ]

    def without_addresses(self, fragment: str) -> str | None:
        return "".join(
            line for line in fragment.splitlines(keepends=True) if not _ADDRESS_KEY.match(line)
        )

    def readdressed(self, ifnames: Sequence[str], run: Runner) -> list[StepResult]:
        # The active profile still holds the discarded addresses: "device reapply" makes it the
        # restored one without deactivating the device (a bridge keeps its ports).
        t = self.settings.timeout_s
        return [
            refused
            if (refused := self.refuse_name("reapply", n)) is not None
            else command_step("reapply", n, nmcli("device", "reapply", n), run, t)
            for n in ifnames
        ]

    def why_unusable(self, run: Runner) -> str | None:
        return missing_tools(run, "nmcli") or probe(run, ["nmcli", "-t", "general", "status"])
