# SPDX-License-Identifier: GPL-3.0-or-later
"""inotify on the managed directories, read by the asyncio loop itself (no thread).

The watcher never decides anything: it bumps a generation counter (through ``on_change``) so
``status`` can reuse its last answer while nothing changed, and logs edits made outside a
transaction as they happen.

The daemon ``pause``s it around its own work on the files (snapshot, restore): the kernel keeps
queueing events, nobody parses them, and ``resume`` drops the queue unread and re-adds watches
for directories created meanwhile. The caller bumps the generation after ``resume``, which covers
an outside edit made during the pause. Before, a thread parsed every event of a restore's own
writes and held the GIL against the restore.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import logging
import os
import struct
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from netcfg_txn.core.fileset import FileSet

log = logging.getLogger(__name__)

IN_MODIFY = 0x2
IN_ATTRIB = 0x4
IN_CLOSE_WRITE = 0x8
IN_MOVED_FROM = 0x40
IN_MOVED_TO = 0x80
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_MOVE_SELF = 0x800
IN_Q_OVERFLOW = 0x4000
IN_IGNORED = 0x8000
IN_ONLYDIR = 0x01000000
IN_DONT_FOLLOW = 0x02000000
IN_ISDIR = 0x40000000
# Writes only: the daemon's own reads (open/close-nowrite) are never reported.
MASK = (
    IN_MODIFY
    | IN_ATTRIB
    | IN_CLOSE_WRITE
    | IN_MOVED_FROM
    | IN_MOVED_TO
    | IN_CREATE
    | IN_DELETE
    | IN_DELETE_SELF
    | IN_MOVE_SELF
    | IN_ONLYDIR
    | IN_DONT_FOLLOW
)
_SELF = IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED | IN_Q_OVERFLOW
_EVENT = struct.Struct("iIII")
_libc: ctypes.CDLL | None = None


def _c() -> ctypes.CDLL:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


class Watcher:
    def __init__(
        self,
        root: Path,
        fileset: FileSet,
        loop: asyncio.AbstractEventLoop,
        on_change: Callable[[PurePosixPath], None],
    ) -> None:
        self._root = root
        self._fileset = fileset
        self._loop = loop
        self._on_change = on_change
        self._fd: int | None = None
        self._dirs: dict[int, Path] = {}  # watch descriptor -> directory
        self._paused = 0
        self._recursive = any(
            "*" in part for g in fileset.include for part in PurePosixPath(g).parts[:-1]
        )
        self.watched: list[Path] = []
        self.unwatched: list[Path] = []  # managed dirs inotify refused: edits there go unseen

    def _to_managed(self, real: Path) -> PurePosixPath | None:
        try:
            rel = real.relative_to(self._root)
        except ValueError:
            return None
        return PurePosixPath("/", *rel.parts)

    def _tops(self) -> list[Path]:
        """Each managed directory, or its nearest existing ancestor (a managed dir created later
        is then seen being created, and watched from then on)."""
        dirs = set()
        for d in self._fileset.watch_dirs():
            real = self._root.joinpath(*d.parts[1:])
            while not real.is_dir() and real != self._root:
                real = real.parent
            dirs.add(real)
        return sorted(dirs)

    def _add(self, real: Path) -> bool:
        assert self._fd is not None
        wd = _c().inotify_add_watch(self._fd, os.fsencode(real), MASK)
        if wd < 0:
            err = ctypes.get_errno()
            if err in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                return True  # gone or a symlink now: nothing to watch there
            if real not in self.unwatched:
                self.unwatched.append(real)
                log.warning(
                    "cannot watch %s: %s; status will rescan instead", real, os.strerror(err)
                )
            return False
        self._dirs[wd] = real
        return True

    def _watch_all(self) -> None:
        """Add a watch for every directory to watch (adding an existing one is a no-op)."""
        self.unwatched.clear()
        tops = self._tops()
        for top in tops:
            self._add(top)
            if self._recursive:
                for dirpath, subdirs, _files in os.walk(top):
                    for s in subdirs:
                        self._add(Path(dirpath, s))
        self.watched = tops

    def start(self) -> None:
        fd = _c().inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"inotify_init1: {os.strerror(err)}")
        self._fd = fd
        self._watch_all()
        self._loop.add_reader(fd, self._read)

    def _events(self, data: bytes) -> None:
        rewatch = False
        off = 0
        while off + _EVENT.size <= len(data):
            wd, mask, _cookie, size = _EVENT.unpack_from(data, off)
            name = data[off + _EVENT.size : off + _EVENT.size + size].rstrip(b"\0")
            off += _EVENT.size + size
            where = self._dirs.get(wd)
            if mask & _SELF or mask & IN_ISDIR or where is None:
                # A directory came, went or moved (its files with it), or events were lost:
                # every cached answer is stale, and new directories need watches.
                if mask & IN_IGNORED:
                    self._dirs.pop(wd, None)
                rewatch = True
                if where is not None:
                    self._on_change(self._to_managed(where) or PurePosixPath("/"))
                continue
            p = self._to_managed(where / os.fsdecode(name))
            if p is not None and self._fileset.matches(p):
                self._on_change(p)
        if rewatch:
            self._on_change(PurePosixPath("/"))
            self._watch_all()

    def _read(self) -> None:
        assert self._fd is not None
        while True:
            try:
                data = os.read(self._fd, 65536)
            except BlockingIOError:
                return
            self._events(data)

    def pause(self) -> None:
        """Stop reading events until ``resume`` (nested pauses count)."""
        self._paused += 1
        if self._paused == 1 and self._fd is not None:
            self._loop.remove_reader(self._fd)

    def resume(self) -> None:
        """Drop what the pause queued, unread, and watch any directory created meanwhile. The
        caller treats everything as changed (bumps the generation) afterwards."""
        self._paused -= 1
        if self._paused or self._fd is None:
            return
        while True:
            try:
                os.read(self._fd, 1 << 20)
            except BlockingIOError:
                break
        self._watch_all()
        self._loop.add_reader(self._fd, self._read)

    def complete(self) -> bool:
        """Whether every managed directory is watched right now: only then may a cached status
        be reused, since an edit nobody sees would leave it stale."""
        return self._fd is not None and not self.unwatched

    def stop(self) -> None:
        if self._fd is not None:
            if not self._paused:
                self._loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = None
            self._dirs.clear()
