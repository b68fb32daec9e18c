# SPDX-License-Identifier: GPL-3.0-or-later
"""Waiting on a condition instead of sleeping a fixed time: a loaded machine may take seconds for
what takes milliseconds on an idle one, so the timeout is generous and, when it runs out, the
failure says what was awaited (and, given ``detail``, the state that explains it)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
TIMEOUT_S = 30.0


def _timed_out(what: str, timeout_s: float, detail: Callable[[], object] | None) -> AssertionError:
    extra = f"\n{detail()}" if detail is not None else ""
    return AssertionError(f"timed out after {timeout_s:g}s waiting for {what}{extra}")


def wait_for(
    cond: Callable[[], T | None],
    what: str,
    timeout_s: float = TIMEOUT_S,
    *,
    interval_s: float = 0.02,
    detail: Callable[[], object] | None = None,
) -> T:
    """Poll ``cond`` until it returns something truthy, and return that."""
    end = time.monotonic() + timeout_s
    while not (got := cond()):
        if time.monotonic() > end:
            raise _timed_out(what, timeout_s, detail)
        time.sleep(interval_s)
    return got


async def until(
    cond: Callable[[], T | None],
    what: str,
    timeout_s: float = TIMEOUT_S,
    *,
    interval_s: float = 0.005,
    detail: Callable[[], object] | None = None,
) -> T:
    """``wait_for`` inside an event loop: the loop keeps running while we wait."""
    end = time.monotonic() + timeout_s
    while not (got := cond()):
        if time.monotonic() > end:
            raise _timed_out(what, timeout_s, detail)
        await asyncio.sleep(interval_s)
    return got
