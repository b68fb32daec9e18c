# SPDX-License-Identifier: GPL-3.0-or-later
"""The time door: boot id plus CLOCK_BOOTTIME (which, unlike monotonic, counts suspend), the wall
time for display, and a wait until an instant of that clock (the daemon's dead-man timer)."""

from __future__ import annotations

import time
from pathlib import Path

from netcfg_txn.core.model import Instant

BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


class SystemClock:
    """``core.clock.Clock`` on the real clocks of this boot."""

    def __init__(self, boot_id_path: Path = BOOT_ID) -> None:
        self._boot_id = boot_id_path.read_text().strip()

    def now(self) -> Instant:
        return Instant(self._boot_id, time.clock_gettime(time.CLOCK_BOOTTIME), time.time())

    async def sleep_until(self, boottime_s: float) -> None:
        import asyncio  # only the daemon waits: the CLI's offline commands never load asyncio

        # The loop sleeps on CLOCK_MONOTONIC, which never runs ahead of CLOCK_BOOTTIME: one
        # sleep is enough, the loop only re-checks a wake-up the loop's rounding made early.
        while (left := boottime_s - self.now().boottime_s) > 0:
            await asyncio.sleep(left)
