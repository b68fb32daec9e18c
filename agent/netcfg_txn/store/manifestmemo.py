# SPDX-License-Identifier: GPL-3.0-or-later
"""Parsed manifests of the state directory, kept while their file provably did not change.

Parsing a manifest builds a path object per file (~20 ms per 1,000 files), and the same ones are
read again and again: the baseline by every ``start`` after the commit that wrote it, a
snapshot's manifest by every stage of its rollback. Every state file is written to a temp file
and renamed into place (a new inode), so a file whose (device, inode, size, mtime, ctime) is
unchanged still holds what was parsed. Manifests are immutable: sharing one is safe.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from netcfg_txn.core.model import Manifest

_Key = tuple[int, int, int, int, int]


def _key(path: Path) -> _Key:
    st = os.stat(path)
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class ManifestMemo:
    # The baseline and the open transaction's snapshot: bounded, a daemon keeps it for life.
    SIZE = 2

    def __init__(self) -> None:
        self._entries: dict[Path, tuple[_Key, Manifest]] = {}

    def get(self, path: Path, load: Callable[[], Manifest]) -> Manifest:
        """The manifest at ``path``, parsed by ``load`` unless the file is the one seen last.
        Stat before the read: a file replaced in between is read again next time."""
        key = _key(path)
        hit = self._entries.get(path)
        if hit is not None and hit[0] == key:
            return hit[1]
        m = load()
        self._keep(path, key, m)
        return m

    def put(self, path: Path, m: Manifest) -> None:
        """``m`` was just written to ``path`` (by us, under the state lock)."""
        self._keep(path, _key(path), m)

    def _keep(self, path: Path, key: _Key, m: Manifest) -> None:
        self._entries.pop(path, None)
        self._entries[path] = (key, m)
        while len(self._entries) > self.SIZE:
            del self._entries[next(iter(self._entries))]
