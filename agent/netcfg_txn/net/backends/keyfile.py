# SPDX-License-Identifier: GPL-3.0-or-later
"""INI-style key files as systemd (.network, .netdev, .link) and NetworkManager read them. Pure.

``configparser`` does not fit: systemd repeats sections (``[Address]`` twice) and keys, and both
formats differ from it on comments and continuation lines.
"""

from __future__ import annotations

import dataclasses
from pathlib import PurePosixPath

from netcfg_txn.core.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Entry:
    key: str
    value: str
    line: int


@dataclasses.dataclass(frozen=True)
class Section:
    name: str
    entries: tuple[Entry, ...]
    line: int

    def values(self, key: str) -> list[str]:
        """Every value of a repeatable key, honouring systemd's "empty assignment resets"."""
        out: list[str] = []
        for e in self.entries:
            if e.key == key:
                out = [] if not e.value else [*out, e.value]
        return out

    def get(self, key: str) -> str | None:
        found = [e.value for e in self.entries if e.key == key]
        return found[-1] if found else None


def parse_keyfile(
    path: PurePosixPath, text: str, *, comments: str = "#;", continuation: bool = True
) -> tuple[Section, ...]:
    """Sections in file order. ``ConfigError("path:line: ...")`` on lines neither format accepts."""
    sections: list[Section] = []
    name: str | None = None
    start = 0
    entries: list[Entry] = []
    pending: tuple[int, str] | None = None  # a value continued with a trailing backslash

    def close() -> None:
        if name is not None:
            sections.append(Section(name, tuple(entries), start))

    for no, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if pending is not None:
            if line[:1] in tuple(comments):
                continue  # systemd drops comment lines inside a continued value
            at, head = pending
            key, _, value = head.partition("=")
            if continuation and line.endswith("\\"):
                pending = (at, f"{head} {line[:-1].strip()}")
                continue
            pending = None
            entries.append(Entry(key.strip(), f"{value} {line}".strip(), at))
            continue
        if not line or line[0] in comments:
            continue
        if line.startswith("["):
            if not line.endswith("]") or len(line) < 3:
                raise ConfigError(f"{path}:{no}: malformed section header {line!r}")
            close()
            name, start, entries = line[1:-1].strip(), no, []
            continue
        if "=" not in line:
            raise ConfigError(f"{path}:{no}: expected 'Key=value' or '[Section]', got {line!r}")
        if name is None:
            raise ConfigError(f"{path}:{no}: assignment outside of any [Section]")
        if continuation and line.endswith("\\"):
            pending = (no, line[:-1].strip())
            continue
        key, _, value = line.partition("=")
        if not key.strip():
            raise ConfigError(f"{path}:{no}: empty key")
        entries.append(Entry(key.strip(), value.strip(), no))
    if pending is not None:
        at, head = pending
        key, _, value = head.partition("=")
        entries.append(Entry(key.strip(), value.strip(), at))
    close()
    return tuple(sections)


def canonical(
    sections: tuple[Section, ...], *, ordered: bool = True, skip: frozenset[str] = frozenset()
) -> str:
    """Text that differs only when the settings do (comments, blanks and spacing are gone).

    ``ordered=False`` for NetworkManager: GKeyFile groups and keys carry no order, and a repeated
    key or group means its last value.
    """
    if ordered:
        return "".join(
            f"[{s.name}]\n"
            + "".join(f"{e.key}={e.value}\n" for e in s.entries if e.key not in skip)
            for s in sections
        )
    merged: dict[str, dict[str, str]] = {}
    for s in sections:
        group = merged.setdefault(s.name, {})
        group.update((e.key, e.value) for e in s.entries if e.key not in skip)
    return "".join(
        f"[{g}]\n" + "".join(f"{k}={v}\n" for k, v in sorted(merged[g].items()))
        for g in sorted(merged)
    )
