# SPDX-License-Identifier: GPL-3.0-or-later
"""inotify (watchdog) on the managed directories, handed to the asyncio loop.

The watcher never decides anything: it bumps a generation counter and remembers which managed
paths were touched, so ``status`` can reuse its last answer while nothing changed and log edits
made outside a transaction as they happen.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

from netcfg_txn.core.fileset import FileSet

log = logging.getLogger(__name__)

_WRITES = frozenset({"created", "modified", "deleted", "moved", "closed"})


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
        self._observer: Any = None
        self.watched: list[Path] = []
        self.unwatched: list[Path] = []  # managed dirs inotify refused: edits there go unseen

    def _to_managed(self, real: str) -> PurePosixPath | None:
        try:
            rel = Path(real).relative_to(self._root)
        except ValueError:
            return None
        return PurePosixPath("/", *rel.parts)

    def _deliver(self, *reals: str) -> None:
        for real in reals:
            if not real:
                continue
            p = self._to_managed(os.fsdecode(real))
            if p is not None and self._fileset.matches(p):
                self._loop.call_soon_threadsafe(self._on_change, p)

    def start(self) -> None:
        from watchdog.events import FileSystemEventHandler
        from watchdog.observers import Observer

        outer = self

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: Any) -> None:
                if event.event_type in _WRITES:  # not our own reads (opened/closed_no_write)
                    outer._deliver(event.src_path, getattr(event, "dest_path", ""))

        self._observer = Observer()
        dirs = set()
        for d in self._fileset.watch_dirs():
            real = self._root.joinpath(*d.parts[1:])
            # Watch the nearest existing ancestor: a managed dir created later is still seen.
            while not real.is_dir() and real != self._root:
                real = real.parent
            dirs.add(real)
        handler = Handler()
        for real in sorted(dirs):
            recursive = any(
                "*" in part for g in self._fileset.include for part in PurePosixPath(g).parts[:-1]
            )
            try:
                self._observer.schedule(handler, str(real), recursive=recursive)
                self.watched.append(real)
            except OSError as e:
                self.unwatched.append(real)
                log.warning("cannot watch %s: %s; status will rescan instead", real, e)
        self._observer.daemon = True
        self._observer.start()

    def complete(self) -> bool:
        """Whether every managed directory is watched right now: only then may a cached status
        be reused, since an edit nobody sees would leave it stale."""
        obs = self._observer
        if obs is None or not obs.is_alive() or self.unwatched:
            return False
        return all(e.is_alive() for e in obs.emitters)

    def stop(self) -> None:
        if self._observer is not None:
            # watchdog's inotify emitter logs a spurious ERROR when stopped while it reads.
            logging.getLogger("watchdog.observers.inotify").setLevel(logging.CRITICAL)
            self._observer.stop()
            self._observer.join(timeout=5)
            self._observer = None
