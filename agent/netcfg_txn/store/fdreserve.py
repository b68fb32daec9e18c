# SPDX-License-Identifier: GPL-3.0-or-later
"""A few file descriptors held back for the rollback at the deadline.

The rollback opens files (the record, the snapshot's blobs, the managed files, pipes for the apply
commands). If something has used up RLIMIT_NOFILE by then, the reserve is closed right before the
rollback runs, so its first opens succeed, and taken again afterwards. The remote listener's caps
keep a peer far from the limit; this covers what the caps do not (a leak, a local flood).
"""

from __future__ import annotations

import contextlib
import os

DEFAULT_SIZE = 32


class FdReserve:
    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        self.size = size
        self._fds: list[int] = []

    def __len__(self) -> int:
        return len(self._fds)

    def take(self) -> int:
        """Fill the reserve up to ``size`` as far as fds allow; returns how many it holds."""
        while len(self._fds) < self.size:
            try:
                self._fds.append(os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC))
            except OSError:
                break
        return len(self._fds)

    def release(self) -> None:
        while self._fds:
            with contextlib.suppress(OSError):
                os.close(self._fds.pop())
