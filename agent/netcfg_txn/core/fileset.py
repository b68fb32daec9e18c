# SPDX-License-Identifier: GPL-3.0-or-later
"""The one definition of "managed files". Pure.

Snapshot, pending check, diff and restore all receive the same ``FileSet`` object. Globs are
absolute; ``*``, ``?`` and ``[..]`` match within one path segment and, as in the shell, never match
a leading dot (so editor swap files and our own ``.name.tmp`` files are never managed).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import functools
from collections.abc import Iterable
from pathlib import PurePosixPath

PRESETS: dict[str, tuple[str, ...]] = {
    "ifupdown": ("/etc/network/interfaces", "/etc/network/interfaces.d/*"),
    # ifupdown2 reads the same files as ifupdown.
    "ifupdown2": ("/etc/network/interfaces", "/etc/network/interfaces.d/*"),
    "networkd": (
        "/etc/systemd/network/*.network",
        "/etc/systemd/network/*.netdev",
        "/etc/systemd/network/*.link",
        "/etc/systemd/network/*.network.d/*.conf",
        "/etc/systemd/network/*.netdev.d/*.conf",
        "/etc/systemd/network/*.link.d/*.conf",
    ),
    "networkmanager": (
        "/etc/NetworkManager/system-connections/*",
        "/etc/NetworkManager/NetworkManager.conf",
        "/etc/NetworkManager/conf.d/*.conf",
    ),
    "netplan": ("/etc/netplan/*.yaml", "/etc/netplan/*.yml"),
    # RHEL: the IPv6 companions route6-*/rule6-* are managed too (netcf missed them).
    "ifcfg": (
        "/etc/sysconfig/network-scripts/ifcfg-*",
        "/etc/sysconfig/network-scripts/route-*",
        "/etc/sysconfig/network-scripts/route6-*",
        "/etc/sysconfig/network-scripts/rule-*",
        "/etc/sysconfig/network-scripts/rule6-*",
        "/etc/sysconfig/network",
    ),
}

_WILD = frozenset("*?[")


@dataclasses.dataclass(frozen=True)
class Limits:
    max_file_bytes: int = 64 << 20
    max_total_bytes: int = 1 << 30


def is_wild(segment: str) -> bool:
    return any(c in _WILD for c in segment)


def check_glob(pattern: str) -> str | None:
    """Why ``pattern`` is not a usable glob, or None."""
    p = PurePosixPath(pattern)
    if not pattern.startswith("/"):
        return "must be an absolute path"
    if any(part in ("..", ".") for part in p.parts[1:]):
        return "must not contain '.' or '..'"
    if "**" in pattern:
        return "'**' is not supported: name each directory level"
    if len(p.parts) < 2:
        return "must name something below /"
    return None


def segment_matches(name: str, pattern: str) -> bool:
    if name.startswith(".") and not pattern.startswith("."):
        return False
    return fnmatch.fnmatchcase(name, pattern)


@dataclasses.dataclass(frozen=True)
class FileSet:
    include: tuple[str, ...]
    exclude: tuple[str, ...] = ()

    def matches(self, path: PurePosixPath) -> bool:
        return any(_match(path, g) for g in self.include) and not any(
            _match(path, g) for g in self.exclude
        )

    def watch_dirs(self) -> frozenset[PurePosixPath]:
        """The deepest literal directory of each include: what to watch for edits."""
        out = set()
        for g in self.include:
            parts = PurePosixPath(g).parts
            lit = [p for p in _takewhile_literal(parts[1:-1])]
            out.add(PurePosixPath("/", *lit))
        return frozenset(out)


def _takewhile_literal(parts: Iterable[str]) -> Iterable[str]:
    for p in parts:
        if is_wild(p):
            return
        yield p


@functools.lru_cache(maxsize=256)
def _pattern_parts(pattern: str) -> tuple[str, ...]:
    return PurePosixPath(pattern).parts


def _match(path: PurePosixPath, pattern: str) -> bool:
    pp = _pattern_parts(pattern)
    parts = path.parts
    return len(pp) == len(parts) and all(
        segment_matches(n, p) for n, p in zip(parts[1:], pp[1:], strict=True)
    )


def from_presets(names: Iterable[str], include: Iterable[str], exclude: Iterable[str]) -> FileSet:
    globs: list[str] = []
    for n in names:
        for g in PRESETS[n]:
            if g not in globs:
                globs.append(g)
    for g in include:
        if g not in globs:
            globs.append(g)
    return FileSet(tuple(globs), tuple(exclude))
