# SPDX-License-Identifier: GPL-3.0-or-later
"""netplan YAML (``/etc/netplan/*.yaml``), rendered to systemd-networkd or NetworkManager.

netplan merges its files key by key, so the fragment of an interface is the canonical JSON of its
own entry in each file. Entries whose file (or entry) says ``renderer: NetworkManager`` get the
profile id ``netplan generate`` gives them and are handled with nmcli. A global renderer set in
another file is not seen per file: such entries go to networkd, or to NetworkManager when that is
the only renderer running (the usual desktop setup).

Reloading never runs a bare ``netplan generate``: it rewrites every generated file, and networkd
reconfigures each link whose ``.network`` file got a new mtime even with identical content (a few
lost packets on links the rollback must not touch). Instead ``generate`` renders into a
staging root and only the generated files that differ are copied over; stale ones are deleted.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import yaml

from netcfg_txn.core.errors import ConfigError
from netcfg_txn.core.model import StepResult
from netcfg_txn.net.backends.base import (
    ApplyConfig,
    Backend,
    FileConfig,
    Stack,
    command_step,
    missing_tools,
)
from netcfg_txn.net.backends.networkd import Networkd
from netcfg_txn.net.backends.networkmanager import NetworkManager
from netcfg_txn.store import fsutil

if TYPE_CHECKING:  # the runner is injected: only its type is needed here
    from netcfg_txn.host.runner import Runner

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

log = logging.getLogger(__name__)

# What ``netplan generate`` reads, relative to the root (later directories shadow by file name).
INPUT_DIRS = ("lib/netplan", "etc/netplan", "run/netplan")
# What it writes (netplan 0.106 .. 1.x; it deletes these before rendering), relative to the root:
# a live file matching one of these that the staged run did not produce is stale.
GENERATED = (
    "run/systemd/network/10-netplan-*",
    "run/NetworkManager/system-connections/netplan-*",
    "run/NetworkManager/conf.d/netplan.conf",
    "run/NetworkManager/conf.d/10-globally-managed-devices.conf",
    "run/netplan/wpa-*.conf",
    "run/udev/rules.d/90-netplan.rules",
    "run/udev/rules.d/99-netplan-*",
    "run/udev/rules.d/*-sriov-netplan-*.rules",
    "run/systemd/system/netplan-*.service",
    "run/systemd/system/*.wants/netplan-*.service",
    "run/systemd/system/*.service.d/10-netplan*.conf",
)


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
    asynchronous = True

    def __init__(self, settings: ApplyConfig | None = None, *, root: Path = Path("/")) -> None:
        super().__init__(settings)
        self.root = root  # where netplan's input and output live; "/" but in tests

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

    def without_addresses(self, fragment: str) -> str | None:
        out = []
        for line in fragment.splitlines():
            entry = json.loads(line)
            if isinstance(entry.get("config"), dict):
                entry["config"].pop("addresses", None)
            out.append(_canon(entry))
        return "\n".join(out)

    def readdressed(self, ifnames: Sequence[str], run: Runner) -> list[StepResult]:
        networkd, nm = self._renderers()
        if nm.why_unusable(run) is not None:
            return []  # networkd re-applied the changed .network on reload
        return nm.readdressed(ifnames, run)

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
        if rest and networkd.why_unusable(run) is not None and nm.why_unusable(run) is None:
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

    def recreated(self, ifnames: Sequence[str], run: Runner) -> list[StepResult]:
        # Before the generate: it keeps the mtime of a rendered file whose content is the same.
        return self._renderers()[0].recreated(ifnames, run)

    def reload(self, run: Runner) -> list[StepResult]:
        steps = [self.generate(run)]
        networkd, nm = self._renderers()
        nm_running = nm.why_unusable(run) is None
        if nm_running:
            steps += nm.reload(run)
        reloaded = networkd.reload(run)
        # With NetworkManager as the renderer, networkd is often not running at all.
        steps += [r for r in reloaded if r.ok or not nm_running]
        return steps

    def generate(self, run: Runner) -> StepResult:
        """``netplan generate`` into a staging root, then copy only the generated files whose
        content (or symlink target, or mode) differs into place and delete stale ones: an
        unchanged file keeps its inode and mtime, so its link is not reconfigured."""
        target = "netplan generate"
        try:
            with _staging(self.root) as stage:
                _stage_inputs(self.root, stage)
                argv = ["netplan", "generate", "--root-dir", str(stage)]
                done = command_step("reload", target, argv, run, self.settings.timeout_s)
                if not done.ok:
                    return done  # nothing copied: the rendered files stay as they were
                written, removed = sync_generated(stage, self.root)
        except OSError as e:
            log.warning("netplan generate: %s", e)
            return StepResult("reload", target, False, f"copying generated files: {e}")
        for what, paths in (("rewrote", written), ("removed", removed)):
            if paths:
                log.info("netplan generate: %s %s", what, ", ".join(f"/{p}" for p in paths))
        return StepResult("reload", target, True)

    def up(
        self,
        ifnames: Sequence[str],
        run: Runner,
        *,
        connection_ids: Mapping[str, str] | None = None,
    ) -> list[StepResult]:
        ids = connection_ids or {}
        return self._split(ifnames, run, ids, lambda b, ns: b.up(ns, run, connection_ids=ids))

    def why_unusable(self, run: Runner) -> str | None:
        if missing := missing_tools(run, "netplan"):
            return missing
        networkd, nm = self._renderers()
        if (why := networkd.why_unusable(run)) is not None and nm.why_unusable(run) is not None:
            return f"neither systemd-networkd nor NetworkManager answers: {why}"
        return None


@contextlib.contextmanager
def _staging(root: Path) -> Iterator[Path]:
    """A private, root-only scratch root on the same kind of filesystem as the output (/run)."""
    run_dir = root / "run"
    stage = Path(
        tempfile.mkdtemp(prefix=".netcfg-txn-netplan.", dir=run_dir if run_dir.is_dir() else None)
    )
    try:
        yield stage
    finally:
        fsutil.remove_tree(stage)


def _stage_inputs(root: Path, stage: Path) -> None:
    """Copy the YAML ``netplan generate`` would read (by content: the generator must not write
    through a symlink into the live ``/run/netplan``, where it also puts wpa configs)."""
    for d in INPUT_DIRS:
        src = root / d
        if not src.is_dir():
            continue
        dst = stage / d
        dst.mkdir(mode=0o700, parents=True, exist_ok=True)
        for entry in sorted(os.scandir(src), key=lambda e: e.name):
            if entry.name.endswith(".yaml") and entry.is_file():
                shutil.copyfile(entry.path, dst / entry.name)
                os.chmod(dst / entry.name, 0o600)


def _walk(top: Path) -> Iterator[Path]:
    """Regular files and symlinks (dangling ones too) under ``top``, never following links."""
    if not top.is_dir() or top.is_symlink():
        return
    for entry in sorted(os.scandir(top), key=lambda e: e.name):
        if entry.is_dir(follow_symlinks=False):
            yield from _walk(Path(entry.path))
        else:
            yield Path(entry.path)


def _same(src: Path, dst: Path) -> bool:
    """Does ``dst`` already hold exactly what ``src`` is (type, content or target)? Mode aside."""
    try:
        s, d = os.lstat(src), os.lstat(dst)
    except FileNotFoundError:
        return False
    if stat.S_ISLNK(s.st_mode):
        return stat.S_ISLNK(d.st_mode) and os.readlink(src) == os.readlink(dst)
    if not stat.S_ISREG(d.st_mode) or s.st_size != d.st_size:
        return False
    return src.read_bytes() == dst.read_bytes()


def _install(src: Path, dst: Path) -> None:
    fsutil.makedirs(dst.parent, 0o755)
    st = os.lstat(src)
    if stat.S_ISLNK(st.st_mode):
        tmp = dst.with_name(f".{dst.name}.netcfg-txn.tmp")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        os.symlink(os.readlink(src), tmp)
        os.replace(tmp, dst)
        fsutil.fsync_dir(dst.parent)
    else:
        fsutil.atomic_write(dst, src.read_bytes(), mode=stat.S_IMODE(st.st_mode))


def sync_generated(stage: Path, root: Path) -> tuple[list[str], list[str]]:
    """Make ``root``'s netplan-generated files match the staged ones: write what differs, chmod
    what only differs in mode, delete what netplan made earlier and no longer makes, and leave
    every identical file alone. Returns (written, removed) paths relative to the root."""
    produced: set[str] = set()
    written: list[str] = []
    inputs = {f"{d}/" for d in INPUT_DIRS}
    for src in _walk(stage / "run"):
        rel = src.relative_to(stage).as_posix()
        if src.suffix == ".yaml" and any(rel.startswith(i) for i in inputs):
            continue  # an input we staged, not an output
        produced.add(rel)
        dst = root / rel
        if _same(src, dst):
            mode = stat.S_IMODE(os.lstat(src).st_mode)
            if not dst.is_symlink() and stat.S_IMODE(os.lstat(dst).st_mode) != mode:
                os.chmod(dst, mode)
            continue
        _install(src, dst)
        written.append(rel)
    removed: list[str] = []
    for pattern in GENERATED:
        for live in sorted(root.glob(pattern)):
            rel = live.relative_to(root).as_posix()
            if rel not in produced and not live.is_dir() and fsutil.remove(live):
                removed.append(rel)
    return written, removed
