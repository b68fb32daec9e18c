# SPDX-License-Identifier: GPL-3.0-or-later
"""The dead-man timer: waits on the engine's clock for the open transaction's deadline, then rolls
back; a failed rollback or re-arm (EMFILE, EIO, a bug) is retried with backoff until it has run.

Waiting goes through ``Clock.sleep_until``, so a test drives the timer in fake time. A wait only
wakes the timer: the rollback runs in its own task, which re-arming never cancels."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from contextlib import AbstractContextManager
from typing import Any

from netcfg_txn.core.clock import Clock
from netcfg_txn.core.errors import NetcfgTxnError
from netcfg_txn.core.model import Phase, Txn
from netcfg_txn.engine import Engine
from netcfg_txn.host import memory, sd

log = logging.getLogger("netcfg_txn.daemon")
RETRY_FIRST_S = 0.1
RETRY_MAX_S = 2.0
FAILURE_LOG_EVERY_S = 10.0  # the same failure message is logged at most this often


class Wait:
    """Calls ``fire`` once ``clock`` reaches ``at`` unless cancelled first."""

    def __init__(self, clock: Clock, at: float, fire: Callable[[], None]) -> None:
        self.at = at
        self._cancelled = False
        self._task = asyncio.get_running_loop().create_task(self._run(clock, fire))

    async def _run(self, clock: Clock, fire: Callable[[], None]) -> None:
        await clock.sleep_until(self.at)
        fire()

    def cancel(self) -> None:
        self._cancelled = True
        self._task.cancel()

    def cancelled(self) -> bool:
        return self._cancelled

    def done(self) -> bool:
        return self._task.done()


class DeadlineTimer:
    """Owns the deadline wait and the retry wait. ``room`` frees what the rollback needs (the fd
    reserve, remote connections) while it runs; ``after`` hears of every re-arm (status, probes)."""

    def __init__(
        self,
        engine: Engine,
        lock: asyncio.Lock,
        stopping: asyncio.Event,
        *,
        room: Callable[[], AbstractContextManager[None]],
        after: Callable[[Txn | None], None],
    ) -> None:
        self.engine = engine
        self.lock = lock
        self.stopping = stopping
        self._room = room
        self._after = after
        self.armed: Wait | None = None  # the wait for the open transaction's deadline
        self.retry: Wait | None = None
        self._retry_delay = RETRY_FIRST_S
        self._last_failure: tuple[str, float] | None = None  # (message, boottime) for damping
        self._running: set[asyncio.Task[None]] = set()

    @property
    def clock(self) -> Clock:
        return self.engine.clock

    def rearm(self) -> None:
        """Point the timer at the recorded deadline. Never raises and never loses the timer: the
        new wait is made before the old one is dropped, and when the record cannot be read the
        old wait stays and a retry is scheduled."""
        try:
            t = self.engine.current()
        except Exception as e:
            self.failed("cannot re-arm the timer", e)
            self._schedule_retry()  # the old wait, if any, stays armed
            return
        new: Wait | None = None
        if t is not None and t.phase is Phase.OPEN:
            now = self.clock.now()
            new = Wait(self.clock, now.boottime_s + t.deadline.remaining_s(now), self._fire)
        old, self.armed = self.armed, new
        if old is not None:
            old.cancel()
        if t is not None and t.phase is not Phase.OPEN:
            self._schedule_retry()  # an interrupted rollback or finish: resume it
        elif self.retry is not None:
            self.retry.cancel()
            self.retry = None
            self._retry_delay = RETRY_FIRST_S
        try:
            self._after(t)
        except Exception as e:
            sd.optional_failed(log, "probes", f"cannot start or stop the probes: {e!r}")

    def _fire(self) -> None:
        self._spawn(self.deadline())

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._running.add(task)  # the loop keeps only a weak reference
        task.add_done_callback(self._running.discard)

    def _schedule_retry(self) -> None:
        if self.retry is not None or self.stopping.is_set():
            return
        delay, self._retry_delay = self._retry_delay, min(self._retry_delay * 2, RETRY_MAX_S)

        def fire() -> None:
            self.retry = None
            self._fire()

        self.retry = Wait(self.clock, self.clock.now().boottime_s + delay, fire)

    def failed(self, what: str, e: BaseException) -> None:
        """Log a failure of the deadline path; the same message at most every 10 s."""
        msg = f"{what}: {type(e).__name__}: {e}"
        now = self.clock.now().boottime_s
        if self._last_failure is not None and self._last_failure[0] == msg:
            if now - self._last_failure[1] < FAILURE_LOG_EVERY_S:
                return
        self._last_failure = (msg, now)
        log.error(
            "%s; retrying until the rollback has run",
            msg,
            exc_info=not isinstance(e, OSError | NetcfgTxnError),
            extra={"journal_fields": {"MESSAGE_ID": sd.MSG_DEADLINE_RETRY}},
        )

    def _step(self) -> bool:
        """Roll back if the deadline has passed, or resume a rollback or finish that was
        interrupted. True once no transaction is left open or unfinished."""
        t = self.engine.current()
        if t is None:
            return True
        if t.phase is Phase.OPEN:
            return self.engine.expire() is not None
        self.engine.recover(boot=False)
        return self.engine.current() is None

    async def deadline(self) -> None:
        async with self.lock:
            # Whatever used up the fds, the rollback's first opens must succeed.
            with self._room():
                try:
                    done: bool | None = await asyncio.to_thread(memory.then_give_back, self._step)
                except Exception as e:
                    self.failed("rollback at the deadline failed", e)
                    done = None
        if done is None:
            self._schedule_retry()
            return
        self._last_failure = None
        self.rearm()  # done: idle (no wait); not done: woke early, e.g. the clock moved
