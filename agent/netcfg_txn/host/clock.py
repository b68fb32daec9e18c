# SPDX-License-Identifier: GPL-3.0-or-later
"""The time door: boot id plus CLOCK_BOOTTIME (which, unlike monotonic, counts suspend)."""

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
