# SPDX-License-Identifier: GPL-3.0-or-later
"""What the core asks of a clock. Pure; the real one is ``host.clock.SystemClock``."""

from __future__ import annotations

from typing import Protocol

from netcfg_txn.core.model import Instant


class Clock(Protocol):
    def now(self) -> Instant: ...
