# SPDX-License-Identifier: GPL-3.0-or-later
"""netplan YAML (``/etc/netplan/*.yaml``), rendered to systemd-networkd or NetworkManager.

netplan merges its files key by key, so the fragment of an interface is the canonical JSON of its
own entry in each file. Entries whose file (or entry) says ``renderer: NetworkManager`` get the
profile id ``netplan generate`` gives them and are handled with nmcli. A global renderer set in
another file is not seen per file: such entries go to networkd, or to NetworkManager when that is
the only renderer running (the usual desktop setup).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import PurePosixPath
from typing import Any

import yaml

from netcfg_txn.backends.base import Backend, FileConfig, Stack, command_step, missing_tools
from netcfg_txn.backends.networkd import Networkd
from netcfg_txn.backends.networkmanager import NetworkManager
from netcfg_txn.errors import ConfigError
from netcfg_txn.model import StepResult
from netcfg_txn.runner import Runner

DIRS = (PurePosixPath("/etc/netplan"), PurePosixPath("/run/netplan"), PurePosixPath("/lib/netplan"))
SECTIONS = (
    "ethernets",
    "wifis",
    "modems",
    "bridges",
    "bonds",
    "vlans",
    "tunnels",
    "vrfs",
    "dummy-devices",
    "virtual-ethernets",
    "nm-devices",
)
_VIRTUAL = frozenset(SECTIONS[3:10])  # bridges ... virtual-ethernets create their link
_CONTROLLERS = frozenset({"bridges", "bonds", "vrfs"})  # their `interfaces:` are enslaved ports
NM = "NetworkManager"


def _load(path: PurePosixPath, text: str) -> tuple[Any, yaml.Node | None]:
    """(data, node): the node tree is kept to name the line of a structural error."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        return (loader.construct_document(node) if node is not None else None), node
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        raise ConfigError(f"{path}:{mark.line + 1 if mark else 1}: {e.problem or e}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}:1: {e}") from None
    finally:
        loader.dispose()


def _line(node: yaml.Node | None, *keys: str) -> int:
    """Line of the value at ``keys`` (or of the deepest key found)."""
    if node is None:
        return 1
    for key in keys:
        if not isinstance(node, yaml.MappingNode):
            break
        found = [v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == key]
        if not found:
            break
        node = found[0]
    return int(node.start_mark.line) + 1


def _canon(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _name(dev: Mapping[str, Any], dev_id: str) -> str | None:
    """The kernel name (or name glob) an entry applies to; None if it matches by MAC/driver."""
    match = dev.get("match")
    if not isinstance(match, dict):
        return dev_id
    if isinstance(dev.get("set-name"), str):
        return str(dev["set-name"])
    return str(match["name"]) if isinstance(match.get("name"), str) else None


def _profile_id(section: str, dev_id: str, dev: Mapping[str, Any]) -> str:
    """The NetworkManager profile ``netplan generate`` writes for an entry (one per access point
    for wifis: the first one stands for the device)."""
    aps = dev.get("access-points")
    if section == "wifis" and isinstance(aps, dict) and aps:
        return f"netplan-{dev_id}-{sorted(map(str, aps))[0]}"
    return f"netplan-{dev_id}"


class Netplan(Backend, stack=Stack.NETPLAN):
    def owns(self, path: PurePosixPath) -> bool:
        return path.parent in DIRS and path.suffix == ".yaml"

    def parse(self, path: PurePosixPath, text: str) -> FileConfig:
        data, node = _load(path, text)
        if data is None:
            return FileConfig()
        if not isinstance(data, dict) or not isinstance(data.get("network", {}), dict):
            raise ConfigError(f"{path}:{_line(node, 'network')}: expected a 'network:' mapping")
        net: dict[str, Any] = data.get("network") or {}
        renderer = net.get("renderer")
        frags: dict[str, list[str]] = {}
        deps: dict[str, set[str]] = {}
        virtual: set[str] = set()
        controllers: set[str] = set()
        aliases: dict[str, str] = {}
        ids: dict[str, str] = {}
        residue: dict[str, Any] = {k: v for k, v in net.items() if k not in SECTIONS}
        residue.pop("version", None)  # always 2: not worth reporting
        for section in SECTIONS:
            devices = net.get(section) or {}
            if not isinstance(devices, dict):
                raise ConfigError(f"{path}:{_line(node, 'network', section)}: expected a mapping")
            for dev_id, raw in devices.items():
                dev = raw if raw is not None else {}
                if not isinstance(dev, dict):
                    line = _line(node, "network", section, str(dev_id))
                    raise ConfigError(f"{path}:{line}: {section}.{dev_id}: expected a mapping")
                name = _name(dev, str(dev_id))
                dev_renderer = dev.get("renderer", renderer)
                entry = {"section": section, "id": dev_id, "config": dev, "renderer": dev_renderer}
                if name is None:
                    residue[f"{section}.{dev_id}"] = entry
                    continue
                frags.setdefault(name, []).append(_canon(entry))
                if name != dev_id:
                    aliases[str(dev_id)] = name
                if dev_renderer == NM:
                    ids[name] = _profile_id(section, str(dev_id), dev)
                if section in _VIRTUAL:
                    virtual.add(name)
                ports = dev.get("interfaces")
                if section in _CONTROLLERS and isinstance(ports, list):
                    deps.setdefault(name, set()).update(str(p) for p in ports)
                    controllers.add(name)
                if isinstance(dev.get("link"), str):  # vlans, vxlan tunnels: the parent
                    deps.setdefault(name, set()).add(dev["link"])
        return FileConfig(
            fragments={n: "\n".join(sorted(t)) for n, t in frags.items()},
            deps={k: frozenset(v) for k, v in deps.items()},
            virtual=frozenset(virtual),
            unattributed=bool(residue),
            unattributed_text=_canon(residue) if residue else None,
            connection_ids=ids,
            controllers=frozenset(controllers),
            aliases=aliases,
        )

    def _renderers(self) -> tuple[Networkd, NetworkManager]:
        return Networkd(self.settings), NetworkManager(self.settings)

    def _split(
        self,
        ifnames: Sequence[str],
        run: Runner,
        ids: Mapping[str, str],
        act: Callable[[Backend, Sequence[str]], list[StepResult]],
    ) -> list[StepResult]:
        networkd, nm = self._renderers()
        rest = [n for n in ifnames if n not in ids]
        fallback: Backend = networkd
        if rest and networkd.usable(run) is not None and nm.usable(run) is None:
            fallback = nm
        out: list[StepResult] = []
        for n in ifnames:  # keep the caller's order (upper-first or lower-first)
            out += act(nm if n in ids or fallback is nm else networkd, [n])
        return out

    def down(
        self,
        ifnames: Sequence[str],
        run: Runner,
        *,
        connection_ids: Mapping[str, str] | None = None,
    ) -> list[StepResult]:
        return self._split(ifnames, run, connection_ids or {}, lambda b, ns: b.down(ns, run))

    def reload(self, run: Runner) -> list[StepResult]:
        t = self.settings.timeout_s
        steps = [command_step("reload", "netplan generate", ["netplan", "generate"], run, t)]
        networkd, nm = self._renderers()
        nm_running = nm.usable(run) is None
        if nm_running:
            steps += nm.reload(run)
        reloaded = networkd.reload(run)
        # With NetworkManager as the renderer, networkd is often not running at all.
        steps += [r for r in reloaded if r.ok or not nm_running]
        return steps

    def up(
        self,
        ifnames: Sequence[str],
        run: Runner,
        *,
        connection_ids: Mapping[str, str] | None = None,
    ) -> list[StepResult]:
        ids = connection_ids or {}
        return self._split(ifnames, run, ids, lambda b, ns: b.up(ns, run, connection_ids=ids))

    def usable(self, run: Runner) -> str | None:
        if missing := missing_tools(run, "netplan"):
            return missing
        networkd, nm = self._renderers()
        if (why := networkd.usable(run)) is not None and nm.usable(run) is not None:
            return f"neither systemd-networkd nor NetworkManager answers: {why}"
        return None
