# SPDX-License-Identifier: GPL-3.0-or-later
"""Read-only views (diff, plan) must not queue up ahead of a commit: concurrent requests share one
computation under the state lock."""

from __future__ import annotations

import asyncio
import threading
import types
from typing import Any

from netcfg_txn.daemon import Daemon
from tests.waiting import until


class _Notifier:
    def notify(self, text: str) -> None:
        pass


class _Engine:
    """Just what Daemon._locked and rearm touch; diff blocks until the test releases it."""

    def __init__(self) -> None:
        self.cfg = types.SimpleNamespace(lock_timeout_s=30.0)
        self.diffs = 0
        self.commits = 0
        self.release = threading.Event()

    def expire(self) -> None:
        return None

    def current(self) -> None:
        return None

    def diff(self) -> list[dict[str, Any]]:
        self.diffs += 1
        assert self.release.wait(10)
        return [{"path": "/etc/x", "change": "modified", "diff": ""}]

    def diff_base(self) -> str:
        return "snapshot"

    def commit(self) -> str:
        self.commits += 1
        return "committed"


def test_concurrent_diffs_share_one_computation_and_a_commit_waits_for_one_only() -> None:
    async def main() -> None:
        engine = _Engine()
        d = Daemon(engine, _Notifier())  # type: ignore[arg-type]
        diffs = [asyncio.create_task(d.diff()) for _ in range(20)]
        for _ in range(200):  # until the first diff runs in its worker thread
            if engine.diffs:
                break
            await asyncio.sleep(0.01)
        commit = asyncio.create_task(d._locked(engine.commit))
        await until(lambda: d.lock._waiters, "the commit to queue for the lock")  # (a deque)
        engine.release.set()
        assert await asyncio.wait_for(commit, 10) == "committed"
        results = await asyncio.wait_for(asyncio.gather(*diffs), 10)
        assert engine.diffs == 1  # old code: 20, each under the lock, the commit behind them
        assert all(r == results[0] for r in results)
        # a later request computes afresh (it may see later edits)
        assert (await d.diff())["files"] and engine.diffs == 2

    asyncio.run(main())
