# SPDX-License-Identifier: GPL-3.0-or-later
"""How two file sets (manifests) differ, and what a restore must do about it. Pure."""

from __future__ import annotations

import dataclasses
import difflib
from pathlib import PurePosixPath

from netcfg_txn.core.model import FileState, Manifest


@dataclasses.dataclass(frozen=True)
class RestorePlan:
    write: tuple[FileState, ...]  # snapshot versions to put back (modified or removed since)
    delete: tuple[PurePosixPath, ...]  # created after the snapshot
    untouched: tuple[PurePosixPath, ...]  # identical: never rewritten (inode and mtime kept)


def plan_restore(saved: Manifest, now: Manifest) -> RestorePlan:
    before, after = saved.by_path(), now.by_path()
    write, untouched = [], []
    for p in sorted(before):
        cur = after.get(p)
        if cur is not None and cur.same_content(before[p]):
            untouched.append(p)
        else:
            write.append(before[p])
    delete = sorted(p for p in after if p not in before)
    return RestorePlan(tuple(write), tuple(delete), tuple(untouched))


@dataclasses.dataclass(frozen=True)
class Change:
    path: PurePosixPath
    kind: str  # "modified" | "added" | "removed" | "metadata"
    old: FileState | None
    new: FileState | None


def changes(old: Manifest, new: Manifest) -> tuple[Change, ...]:
    """Every path whose state differs between two manifests, sorted by path."""
    a, b = old.by_path(), new.by_path()
    out = []
    # Keyed by parts: PurePosixPath's own order, compared as tuples in C (its __lt__ is ~20
    # Python calls per comparison, 0.15 s per 10,000 files).
    for p in sorted(set(a) | set(b), key=lambda q: q.parts):
        x, y = a.get(p), b.get(p)
        if x is None:
            out.append(Change(p, "added", None, y))
        elif y is None:
            out.append(Change(p, "removed", x, None))
        elif not x.same_content(y):
            same_bytes = x.kind == y.kind and x.sha256 == y.sha256 and x.target == y.target
            out.append(Change(p, "metadata" if same_bytes else "modified", x, y))
    return tuple(out)


def _lines(data: bytes | None) -> list[str]:
    if data is None:
        return []
    return data.decode("utf-8", "replace").splitlines(keepends=True)


def unified(path: PurePosixPath, old: bytes | None, new: bytes | None) -> str:
    """A unified diff (snapshot → now) for one path; binary-safe by replacement decoding."""
    a = f"a{path}" if old is not None else "/dev/null"
    b = f"b{path}" if new is not None else "/dev/null"
    text = "".join(difflib.unified_diff(_lines(old), _lines(new), a, b))
    if text and not text.endswith("\n"):
        text += "\n\\ No newline at end of file\n"
    return text


def describe_metadata(old: FileState, new: FileState) -> str:
    parts = []
    if old.mode != new.mode:
        parts.append(f"mode {old.mode:04o} -> {new.mode:04o}")
    if (old.uid, old.gid) != (new.uid, new.gid):
        parts.append(f"owner {old.uid}:{old.gid} -> {new.uid}:{new.gid}")
    if old.xattrs != new.xattrs:
        parts.append("xattrs changed")
    if old.kind != new.kind:
        parts.append(f"{old.kind} -> {new.kind}")
    return ", ".join(parts) or "metadata changed"
