# SPDX-License-Identifier: GPL-3.0-or-later
"""RHEL/Fedora network-scripts: ``ifcfg-*``, ``route-*``, ``route6-*``, ``rule-*``, ``rule6-*``.

``reload`` does nothing: initscripts' ``ifup`` reads the files each time, and on RHEL 8+ where
``ifup`` is NetworkManager's wrapper it loads the named file itself (``nmcli con load``) first.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, ClassVar

from netcfg_txn.core.errors import ConfigError
from netcfg_txn.core.model import StepResult
from netcfg_txn.net.backends.base import Backend, FileConfig, Stack, missing_tools

if TYPE_CHECKING:  # the runner is injected: only its type is needed here
    from netcfg_txn.host.runner import Runner

DIR = PurePosixPath("/etc/sysconfig/network-scripts")
_PREFIXES = ("ifcfg-", "route-", "route6-", "rule-", "rule6-")
# initscripts skip these: editor and package-manager leftovers.
_IGNORED = re.compile(r".*(~|\.bak|\.orig|\.rpmnew|\.rpmorig|\.rpmsave|\.swp)$")
_ASSIGN = re.compile(r"(?:export\s+)?(?P<key>[A-Za-z_][A-Za-z0-9_]*)=(?P<value>.*)")
_VLAN_NAME = re.compile(r"(?P<parent>.+)\.\d+")


def _vars(path: PurePosixPath, text: str) -> dict[str, str]:
    """Shell variable assignments, as ``source`` would see them (last one wins)."""
    out: dict[str, str] = {}
    for no, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _ASSIGN.fullmatch(line)
        if m is None:
            raise ConfigError(f"{path}:{no}: expected KEY=value, got {line!r}")
        try:
            words = shlex.split(m["value"], comments=True)
        except ValueError as e:
            raise ConfigError(f"{path}:{no}: {m['key']}: {e}") from None
        out[m["key"]] = " ".join(words)
    return out


def _yes(value: str | None) -> bool:
    return (value or "").lower() in ("yes", "true", "1")


class Ifcfg(Backend, stack=Stack.IFCFG):
    alias_names: ClassVar[bool] = True  # ifcfg-eth0:1 alias files

    def owns(self, path: PurePosixPath) -> bool:
        return (
            path.parent == DIR
            and path.name.startswith(_PREFIXES)
            and not _IGNORED.fullmatch(path.name)
        )

    def parse(self, path: PurePosixPath, text: str) -> FileConfig:
        kind, _, suffix = path.name.partition("-")
        if kind != "ifcfg":
            # Routes and rules belong to the device named by the file; two formats, both lines.
            lines = (" ".join(ln.split()) for ln in text.splitlines())
            body = "".join(f"{ln}\n" for ln in lines if ln and not ln.startswith("#"))
            return FileConfig(fragments={suffix: f"{kind}\n{body}"})
        env = _vars(path, text)
        name = env.get("DEVICE") or suffix
        canon = "".join(f"{k}={v}\n" for k, v in sorted(env.items()))
        deps: dict[str, set[str]] = {}
        controllers: set[str] = set()
        for key in ("MASTER", "BRIDGE", "TEAM_MASTER"):
            if upper := env.get(key):
                deps.setdefault(upper, set()).add(name)
                controllers.add(upper)
        dev_type = env.get("TYPE", "").lower()
        vlan = _yes(env.get("VLAN")) or dev_type == "vlan"
        virtual = dev_type in ("bridge", "bond", "team") or "BONDING_OPTS" in env or vlan
        if vlan and (parent := env.get("PHYSDEV") or _parent(name)):
            deps.setdefault(name, set()).add(parent)
        return FileConfig(
            fragments={name: canon},
            deps={k: frozenset(v) for k, v in deps.items()},
            virtual=frozenset({name}) if virtual else frozenset(),
            controllers=frozenset(controllers),
        )

    def down(
        self,
        ifnames: Sequence[str],
        run: Runner,
        *,
        connection_ids: Mapping[str, str] | None = None,
    ) -> list[StepResult]:
        return self._each("down", ifnames, ["ifdown"], run)

    def reload(self, run: Runner) -> list[StepResult]:
        return []

    def up(
        self,
        ifnames: Sequence[str],
        run: Runner,
        *,
        connection_ids: Mapping[str, str] | None = None,
    ) -> list[StepResult]:
        return self._each("up", ifnames, ["ifup"], run)

    def why_unusable(self, run: Runner) -> str | None:
        return missing_tools(run, "ifup", "ifdown")


def _parent(name: str) -> str | None:
    m = _VLAN_NAME.fullmatch(name)
    return m["parent"] if m else None
