# SPDX-License-Identifier: GPL-3.0-or-later
"""Which blobs the state directory still needs, without re-reading every history entry.

Each history entry gets a sidecar ``history/<entry>.refs`` listing the blobs it refers to, made
when the entry is written. The sidecar is a hint, never the record: it names the inode, size and
mtime of its entry and how many digests follow, so a stale, truncated or missing one (a crash
right after the entry was written: sidecars are not fsynced) is noticed and the entry itself is
read instead (gc writes nothing but unlinks: the crash tier counts every rename). The
daemon keeps what it read in memory, keyed the same way, so a steady-state finalize lists the
history directory and reads nothing else.

Digests are pulled from the raw JSON (``files[].sha256``): building the typed manifests would
cost a PurePosixPath per file for nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

Sig = tuple[int, int, int]  # (inode, size, mtime_ns) of a history entry

# Both the snapshot and what it discarded are kept per entry (history shows and retries them).
ENTRY_MANIFESTS = ("snapshot", "discarded")


def manifest_digests(doc: Any) -> set[str]:
    """The blob digests a manifest document refers to (raises on a malformed one)."""
    if not isinstance(doc, Mapping):
        raise TypeError("manifest is not an object")
    return {str(f["sha256"]) for f in doc["files"] if f.get("sha256")}


def entry_digests(doc: Mapping[str, Any]) -> set[str]:
    out: set[str] = set()
    for key in ENTRY_MANIFESTS:
        if isinstance(doc.get(key), Mapping):
            out |= manifest_digests(doc[key])
    return out


def _sig(st: os.stat_result) -> Sig:
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def sidecar(entry: Path) -> Path:
    return entry.with_suffix(".refs")


def is_sidecar(name: str) -> bool:
    return name.endswith(".refs") and not name.startswith(".")


def write_sidecar(entry: Path, digests: Iterable[str]) -> None:
    """Best effort, no fsync: losing or tearing it only costs one re-read of the entry."""
    ds = sorted(digests)
    st = os.stat(entry)
    head = f"v1 {st.st_ino} {st.st_size} {st.st_mtime_ns} {len(ds)}\n"
    path = sidecar(entry)
    tmp = path.with_name(f".{path.name}.tmp")  # swept by discard_partials (.*.tmp) if left
    try:
        with open(tmp, "w") as f:
            f.write(head + "".join(d + "\n" for d in ds))
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def _read_sidecar(entry: Path, sig: Sig) -> frozenset[str] | None:
    try:
        with open(sidecar(entry)) as f:
            lines = f.read().split("\n")
    except OSError:
        return None
    head = lines[0].split()
    if len(head) != 5 or head[0] != "v1" or tuple(int(x) for x in head[1:4]) != sig:
        return None
    body = lines[1:-1]
    if lines[-1] != "" or len(body) != int(head[4]):
        return None  # torn by a crash
    return frozenset(body)


class HistoryRefs:
    """The union of the blobs every history entry refers to, cached per entry."""

    def __init__(self) -> None:
        self._mem: dict[str, tuple[Sig, frozenset[str]]] = {}

    def live(self, entries: list[Path]) -> set[str] | None:
        """None if an entry cannot be read: then nothing may be deleted."""
        out: set[str] = set()
        seen = set()
        for p in entries:
            seen.add(p.name)
            try:
                sig = _sig(os.stat(p))
            except OSError:
                return None
            got = self._mem.get(p.name)
            if got is None or got[0] != sig:
                digests = _read_sidecar(p, sig)
                if digests is None:
                    try:
                        with open(p, "rb") as f:
                            digests = frozenset(entry_digests(json.loads(f.read())))
                    except (OSError, ValueError, KeyError, TypeError):
                        return None
                got = self._mem[p.name] = (sig, digests)
            out |= got[1]
        for gone in set(self._mem) - seen:
            del self._mem[gone]
        return out
