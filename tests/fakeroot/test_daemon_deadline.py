# SPDX-License-Identifier: GPL-3.0-or-later
"""The daemon's timer over a real engine and a fake root: a failing read of the transaction
record or a failing rollback at the deadline is retried, never dropped; a read error is not
corruption; re-arming makes the new timer before it drops the old one."""

from __future__ import annotations

import asyncio
import errno
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from netcfg_txn.core import config
from netcfg_txn.core.errors import Unavailable
from netcfg_txn.core.model import Instant, Phase
from netcfg_txn.daemon import Daemon
from netcfg_txn.engine import Engine
from netcfg_txn.host import sd
from netcfg_txn.net.network import HookNetwork
from netcfg_txn.store.state import Store
from tests.fakeroot.conftest import ROOT_ACTOR


class SkewClock:
    """Real time (the daemon's timer runs on the loop's clock) plus an offset a test can move."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> Instant:
        return Instant("boot-1", time.monotonic() + self.offset, time.time() + self.offset)


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


def _setup(tmp_path: Path) -> tuple[Engine, SkewClock, Path]:
    root = tmp_path / "root"
    f = root / "etc/network/interfaces"
    f.parent.mkdir(parents=True)
    f.write_text("auto lo\n")
    cfg = config.parse([("t", '[files]\npresets = ["ifupdown"]\n')], state_dir=tmp_path / "state")
    clock = SkewClock()
    return Engine(root, cfg, clock, HookNetwork("")), clock, f


async def _until(pred: Callable[[], bool], timeout_s: float) -> float:
    t0 = time.monotonic()
    while not pred():
        assert time.monotonic() - t0 < timeout_s, "condition not met in time"
        await asyncio.sleep(0.01)
    return time.monotonic() - t0


def _unavailable() -> Exception:
    return Unavailable("cannot read the transaction record: Too many open files")


def test_deadline_retries_until_the_record_reads_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    engine, clock, f = _setup(tmp_path)
    faults = Faults(monkeypatch, _unavailable)
    t, _token = engine.start(ROOT_ACTOR, timeout_s=60)
    f.write_text("broken\n")

    async def main() -> float:
        d = Daemon(engine, sd.NullNotifier())
        d.rearm()
        clock.offset = 59.7  # the deadline is 0.3 s away
        d.rearm()
        faults.left = 4  # the deadline's reads fail (and its first retries)
        return await _until(lambda: not engine.store.txn_path.exists(), 5)

    with caplog.at_level(logging.ERROR):
        took = asyncio.run(main())
    assert faults.raised == 4
    assert took < 0.3 + 0.1 + 0.2 + 0.4 + 0.8 + 0.5  # the backoff, plus margin
    assert f.read_text() == "auto lo\n"
    last = engine.history(1)[0]
    assert (last["phase"], last["reason"]) == ("rolled-back", "timeout")
    ids = {getattr(r, "journal_fields", {}).get("MESSAGE_ID") for r in caplog.records}
    assert sd.MSG_DEADLINE_RETRY in ids


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
        clock.offset = 59.5
        d.rearm()
        armed = d._timer
        assert armed is not None
        faults.left = 1
        d.rearm()  # fails to read: must keep the armed timer
        assert d._timer is armed and not armed.cancelled()
        await _until(lambda: not engine.store.txn_path.exists(), 5)

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
        clock.offset = 59.8
        d.rearm()
        await _until(lambda: not engine.store.txn_path.exists(), 5)

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
        clock.offset = 59.8
        d.rearm()
        await _until(lambda: calls["n"] >= 1, 5)
        await _until(lambda: not engine.store.txn_path.exists(), 5)

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
        await _until(started.is_set, 5)
        request.cancel()  # the client went away
        await asyncio.sleep(0.1)
        assert d.lock.locked()  # the engine call is still running: nobody else may start
        release.set()
        await _until(lambda: not d.lock.locked(), 5)

    asyncio.run(main())
