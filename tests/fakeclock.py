# SPDX-License-Identifier: GPL-3.0-or-later
"""A ``Clock`` that moves only when a test moves it. ``now()`` serves the engine; ``sleep_until``
serves the daemon's timer and returns as soon as a test sets ``t`` to (or past) the instant, so a
60 s deadline passes in microseconds of real time."""

from __future__ import annotations

import asyncio

from netcfg_txn.core.model import Instant

WALL_BASE = 1_700_000_000.0


class FakeClock:
    def __init__(self, t: float = 1000.0, boot_id: str = "boot-1") -> None:
        self.boot_id = boot_id
        self._t = t
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def now(self) -> Instant:
        return Instant(self.boot_id, self._t, WALL_BASE + self._t)

    @property
    def t(self) -> float:
        """CLOCK_BOOTTIME in seconds; setting it wakes every sleeper it reaches."""
        return self._t

    @t.setter
    def t(self, value: float) -> None:
        self._t = value
        due = [s for s in self._sleepers if s[0] <= value]
        self._sleepers = [s for s in self._sleepers if s[0] > value]
        for _at, fut in due:
            # The timer may sleep on another thread's loop than the one moving the clock.
            fut.get_loop().call_soon_threadsafe(_wake, fut)

    def advance(self, seconds: float) -> None:
        self.t = self._t + seconds

    async def sleep_until(self, boottime_s: float) -> None:
        if boottime_s <= self._t:
            await asyncio.sleep(0)  # a real sleep yields too
            return
        fut = asyncio.get_running_loop().create_future()
        entry = (boottime_s, fut)
        self._sleepers.append(entry)
        try:
            await fut
        finally:
            if entry in self._sleepers:  # cancelled before it was due
                self._sleepers.remove(entry)

    def sleepers(self) -> list[float]:
        """The instants something waits for, earliest first (cancelled waits drop out)."""
        return sorted(at for at, fut in self._sleepers if not fut.done())


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
