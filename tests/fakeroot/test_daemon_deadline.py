# SPDX-License-Identifier: GPL-3.0-or-later
"""The daemon's timer over a real engine, a fake root and a fake clock: a failing read of the
transaction record or a failing rollback at the deadline is retried with backoff, never dropped;
a read error is not corruption; re-arming makes the new timer before it drops the old one."""

from __future__ import annotations

import asyncio
import errno
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from netcfg_txn.core import config
from netcfg_txn.core.errors import Unavailable
from netcfg_txn.core.model import Phase
from netcfg_txn.daemon import Daemon
from netcfg_txn.engine import Engine
from netcfg_txn.host import sd
from netcfg_txn.net.network import HookNetwork
from netcfg_txn.store.state import Store
from tests.fakeclock import FakeClock
from tests.fakeroot.conftest import ROOT_ACTOR
from tests.waiting import until


class Faults:
    """Makes ``Store.read_txn`` fail with OSError-derived errors while ``left`` > 0."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, error: Callable[[], Exception]) -> None:
        self.left = 0
        self.raised = 0
        real = Store.read_txn

        def read_txn(store: Store) -> Any:
            if self.left > 0:
                self.left -= 1
                self.raised += 1
                raise error()
            return real(store)

        monkeypatch.setattr(Store, "read_txn", read_txn)


def _setup(tmp_path: Path) -> tuple[Engine, FakeClock, Path]:
    root = tmp_path / "root"
    f = root / "etc/network/interfaces"
    f.parent.mkdir(parents=True)
    f.write_text("auto lo\n")
    cfg = config.parse([("t", '[files]\npresets = ["ifupdown"]\n')], state_dir=tmp_path / "state")
    clock = FakeClock()
    return Engine(root, cfg, clock, HookNetwork("")), clock, f


async def _next_wait(clock: FakeClock) -> float:
    """The one instant the timer waits for next (its deadline or its retry)."""
    waits = await until(clock.sleepers, "the timer to wait for its next instant")
    assert len(waits) == 1, waits
    return waits[0]


def _rolled_back(engine: Engine) -> bool:
    return not engine.store.txn_path.exists()


def _unavailable() -> Exception:
    return Unavailable("cannot read the transaction record: Too many open files")


@pytest.mark.parametrize("failures", [4, 8])
def test_deadline_retries_with_backoff_until_the_record_reads_again(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    failures: int,
) -> None:
    engine, clock, f = _setup(tmp_path)
    faults = Faults(monkeypatch, _unavailable)
    t, _token = engine.start(ROOT_ACTOR, timeout_s=60)
    f.write_text("broken\n")
    waited: list[float] = []

    async def main() -> None:
        d = Daemon(engine, sd.NullNotifier())
        d.rearm()
        assert await _next_wait(clock) == t.deadline.boottime_s
        faults.left = failures  # the deadline's reads fail, and its first retries
        clock.t = t.deadline.boottime_s
        while faults.left or not _rolled_back(engine):
            at = await _next_wait(clock)
            waited.append(round(at - clock.t, 6))
            clock.t = at
            await until(lambda: _rolled_back(engine) or clock.sleepers(), "a rollback or a retry")

    with caplog.at_level(logging.ERROR):
        asyncio.run(main())
    assert faults.raised == failures
    assert waited == [0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0, 2.0][:failures]  # doubling, capped at 2 s
    assert f.read_text() == "auto lo\n"
    last = engine.history(1)[0]
    assert (last["phase"], last["reason"]) == ("rolled-back", "timeout")
    ids = [getattr(r, "journal_fields", {}).get("MESSAGE_ID") for r in caplog.records]
    assert ids.count(sd.MSG_DEADLINE_RETRY) == 1  # the same failure is logged once per 10 s


def test_rearm_keeps_the_old_timer_when_the_record_cannot_be_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The a654695 bug: rearm() cancelled the timer, then engine.current() raised."""
    engine, clock, f = _setup(tmp_path)
    faults = Faults(monkeypatch, lambda: OSError(errno.EMFILE, "Too many open files"))
    engine.start(ROOT_ACTOR, timeout_s=60)
    f.write_text("broken\n")

    async def main() -> None:
        d = Daemon(engine, sd.NullNotifier())
        d.rearm()
        armed = d.timer.armed
        assert armed is not None
        faults.left = 1
        d.rearm()  # fails to read: must keep the armed timer
        assert d.timer.armed is armed and not armed.cancelled()
        clock.advance(60)
        await until(lambda: _rolled_back(engine), "the rollback at the deadline")

    asyncio.run(main())
    assert f.read_text() == "auto lo\n"


def test_expire_failures_are_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    engine, clock, f = _setup(tmp_path)
    engine.start(ROOT_ACTOR, timeout_s=60)
    f.write_text("broken\n")
    calls = {"n": 0}
    real = Engine.expire

    def expire(self: Engine) -> Any:
        calls["n"] += 1
        if calls["n"] <= 2:
            raise OSError(errno.EMFILE, "Too many open files")
        return real(self)

    monkeypatch.setattr(Engine, "expire", expire)

    async def main() -> None:
        d = Daemon(engine, sd.NullNotifier())
        d.rearm()
        clock.advance(60)
        for _ in range(2):  # each failure waits for its retry
            clock.t = await _next_wait(clock)
        await until(lambda: _rolled_back(engine), "the rollback after two failures")

    asyncio.run(main())
    assert calls["n"] == 3
    assert f.read_text() == "auto lo\n"


def test_interrupted_rollback_is_resumed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A rollback that failed half-way (phase rolling-back) is resumed by the retry."""
    engine, clock, f = _setup(tmp_path)
    engine.start(ROOT_ACTOR, timeout_s=60)
    f.write_text("broken\n")
    real = Engine._restore
    calls = {"n": 0}

    def restore(self: Engine, t: Any, *, live: bool) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError(errno.EIO, "Input/output error")
        return real(self, t, live=live)

    monkeypatch.setattr(Engine, "_restore", restore)

    async def main() -> None:
        d = Daemon(engine, sd.NullNotifier())
        d.rearm()
        clock.advance(60)
        await until(lambda: calls["n"] >= 1, "the first (failing) restore")
        clock.t = await _next_wait(clock)  # the retry resumes the interrupted rollback
        await until(lambda: _rolled_back(engine), "the resumed rollback")

    asyncio.run(main())
    assert calls["n"] == 2
    assert f.read_text() == "auto lo\n"
    assert engine.history(1)[0]["phase"] == Phase.ROLLED_BACK.value


def test_read_errors_are_not_corruption(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    engine, _clock, f = _setup(tmp_path)
    engine.start(ROOT_ACTOR, timeout_s=60)
    f.write_text("edited\n")
    import netcfg_txn.store.fsutil as fsutil

    real = fsutil.read_json

    def failing(path: Path) -> Any:
        if path.name == "txn.json":
            raise OSError(errno.EIO, "Input/output error")
        return real(path)

    monkeypatch.setattr(fsutil, "read_json", failing)
    with pytest.raises(Unavailable, match="not treated as corruption"):
        engine.current()
    with pytest.raises(Unavailable):
        engine.expire()
    monkeypatch.setattr(fsutil, "read_json", real)
    t = engine.current()
    assert t is not None and t.phase is Phase.OPEN  # nothing was rolled back
    assert f.read_text() == "edited\n"
    (engine.store.txn_path).write_text("{not json")
    t = engine.current()  # undecodable: corruption, an expired open transaction (R47)
    assert t is not None and t.errors and "corrupt" in t.errors[0]


def test_a_cancelled_request_keeps_the_lock_until_its_work_is_done(tmp_path: Path) -> None:
    """aiohttp 3.8 cancels the handler of a client that disconnects: the engine call goes on in
    its thread, so the state lock must stay held until it returns."""
    import threading

    engine, _clock, _f = _setup(tmp_path)
    release = threading.Event()
    started = threading.Event()

    def slow() -> str:
        started.set()
        release.wait(5)
        return "done"

    async def main() -> None:
        d = Daemon(engine, sd.NullNotifier())
        request = asyncio.ensure_future(d._locked(slow))
        await until(started.is_set, "the engine call to start")
        request.cancel()  # the client went away
        await until(request.done, "the request to be cancelled")
        assert d.lock.locked()  # the engine call is still running: nobody else may start
        release.set()
        await until(lambda: not d.lock.locked(), "the lock to be released")

    asyncio.run(main())
