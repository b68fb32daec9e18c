# SPDX-License-Identifier: GPL-3.0-or-later
"""What the core asks of a clock. Pure; the real one is ``host.clock.SystemClock``.

Everything that reads or waits on time takes a ``Clock``, so a test can drive the daemon's
dead-man timer with a fake clock that jumps to an instant at once instead of waiting for it."""

from __future__ import annotations

from typing import Protocol

from netcfg_txn.core.model import Instant


class Clock(Protocol):
    def now(self) -> Instant: ...

    async def sleep_until(self, boottime_s: float) -> None:
        """Return once ``now().boottime_s >= boottime_s`` (at once if it already is)."""
