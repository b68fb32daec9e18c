# SPDX-License-Identifier: GPL-3.0-or-later
"""The stat cache: which managed files provably did not change since they were last read."""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from pathlib import Path, PurePosixPath
from typing import Any


class StatCache:
    """Digest and xattrs of files whose (dev, inode, size, mtime, ctime) did not change since they
    were read: git's index trick, so a second snapshot of an unchanged set reads no file contents.

    ctime cannot be set from user space, so any write, chmod or xattr change invalidates an entry
    (and a file replaced by another, even with the same times, has another inode). Entries
    younger than ``RACY_S`` are not trusted (a write in the same clock tick as the hash).
    The cache is a hint: losing it only costs a rehash, so it is written without fsync.
    """

    RACY_S = 2.0
    VERSION = 2

    def __init__(self, entries: dict[str, list[Any]] | None = None) -> None:
        self.entries: dict[str, list[Any]] = entries or {}
        self.dirty = False

    @staticmethod
    def _key(st: os.stat_result) -> list[Any]:
        return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]

    def lookup(
        self, path: PurePosixPath, st: os.stat_result
    ) -> tuple[str, tuple[tuple[str, str], ...]] | None:
        """(digest, xattrs) if the file is provably the one that was read."""
        e = self.entries.get(str(path))
        if e is None or len(e) != 7 or e[:5] != self._key(st) or not isinstance(e[6], dict):
            return None
        return str(e[5]), tuple(sorted((str(k), str(v)) for k, v in e[6].items()))

    def record(
        self,
        path: PurePosixPath,
        st: os.stat_result,
        digest: str,
        xattrs: tuple[tuple[str, str], ...],
    ) -> None:
        if time.time() - st.st_ctime_ns / 1e9 < self.RACY_S:
            self.entries.pop(str(path), None)
            return
        self.entries[str(path)] = [*self._key(st), digest, dict(xattrs)]
        self.dirty = True

    @classmethod
    def load(cls, path: Path) -> StatCache:
        try:
            doc = json.loads(path.read_bytes())
            if isinstance(doc, dict) and doc.get("version") == cls.VERSION:
                entries = doc.get("entries")
                if isinstance(entries, dict):
                    return cls(entries)
        except (OSError, ValueError):
            pass
        return cls()

    def save(self, path: Path) -> None:
        if not self.dirty:
            return
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            tmp.write_text(json.dumps({"version": self.VERSION, "entries": self.entries}))
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        self.dirty = False
