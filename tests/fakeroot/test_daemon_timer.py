# SPDX-License-Identifier: GPL-3.0-or-later
"""The dead-man timer's logic in fake time: the daemon in-process over a real engine, a fake root
and a ``FakeClock``, so a 60 s deadline passes in milliseconds. What needs the real process and
the real clock (the deadline firing in ``netcfg-txnd``, a commit racing it over the CLI, recovery
at start-up) stays in tests/daemon/test_timer.py."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from netcfg_txn.cli.output import txn_human
from netcfg_txn.core.errors import NoTransaction
from netcfg_txn.daemon import Daemon
from netcfg_txn.engine import Engine
from netcfg_txn.host import sd
from tests.fakeroot.conftest import ROOT_ACTOR, Env
from tests.waiting import until

TIMEOUT_S = 60.0


def _edit(env: Env) -> None:
    env.write("/etc/network/interfaces.d/eth0", "auto eth0\niface eth0 inet static\n")
    env.path("/etc/network/interfaces.d/eth1").unlink()
    env.write("/etc/network/interfaces.d/eth9", "iface eth9 inet manual\n")


def _run(env: Env, body: Callable[[Daemon], Awaitable[None]]) -> None:
    async def main() -> None:
        d = Daemon(env.engine, sd.NullNotifier())
        d.rearm()
        await body(d)

    asyncio.run(main())


def _idle(engine: Engine) -> bool:
    return not engine.store.txn_path.exists()


def _last(env: Env) -> tuple[str, str]:
    h = env.engine.history(1)[0]
    return h["phase"], h["reason"]


async def _armed_at(env: Env) -> list[float]:
    """What the timer waits for, once it waits (re-arming runs as the request ends)."""
    return await until(env.clock.sleepers, "the timer to wait for the deadline")


def test_the_deadline_fires_at_the_deadline_and_not_before(env: Env) -> None:
    before = env.tree()
    t, _token = env.engine.start(ROOT_ACTOR, timeout_s=TIMEOUT_S)
    _edit(env)

    async def body(d: Daemon) -> None:
        assert await _armed_at(env) == [t.deadline.boottime_s]
        env.clock.t = t.deadline.boottime_s - 0.001
        assert env.clock.sleepers() == [t.deadline.boottime_s]  # not woken: nothing can fire
        assert not _idle(env.engine)
        env.clock.t = t.deadline.boottime_s
        await until(lambda: _idle(env.engine), "the rollback at the deadline")
        assert env.clock.sleepers() == []  # idle: no timer left

    _run(env, body)
    assert env.tree() == before
    assert _last(env) == ("rolled-back", "timeout")
    h = env.engine.history(1)[0]
    assert sorted(h["changed"]) == [
        f"/etc/network/interfaces.d/{n}" for n in ("eth0", "eth1", "eth9")
    ]


def test_a_commit_disarms_the_timer_and_keeps_the_new_files(env: Env) -> None:
    t, token = env.engine.start(ROOT_ACTOR, timeout_s=TIMEOUT_S)
    _edit(env)
    after = env.tree()

    async def body(d: Daemon) -> None:
        await _armed_at(env)
        env.clock.advance(30)
        doc = await d.confirm(ROOT_ACTOR, t.id, token)
        assert doc["already_committed"] is False
        assert env.clock.sleepers() == []  # the wait for the old deadline is gone
        env.clock.advance(3600)  # far past the old deadline: nothing may fire
        assert env.clock.sleepers() == [] and d.timer.retry is None

    _run(env, body)
    assert env.tree() == after
    assert len(env.engine.history(10)) == 1
    assert _last(env) == ("committed", "confirmed")


def test_extend_moves_the_deadline(env: Env) -> None:
    t, token = env.engine.start(ROOT_ACTOR, timeout_s=TIMEOUT_S)
    _edit(env)

    async def body(d: Daemon) -> None:
        await _armed_at(env)
        env.clock.advance(10)
        doc = await d.extend(ROOT_ACTOR, t.id, token, {"timeout_s": 120})
        new = t.created.boottime_s + 10 + 120
        assert doc["transaction"]["deadline_wall_s"] == pytest.approx(t.created.wall_s + 130)
        assert await _armed_at(env) == [new]  # re-armed: the old wait was dropped
        env.clock.t = t.deadline.boottime_s + 1  # the old deadline passed: still open
        assert not _idle(env.engine)
        env.clock.t = new
        await until(lambda: _idle(env.engine), "the rollback at the extended deadline")

    _run(env, body)
    assert _last(env) == ("rolled-back", "timeout")


@pytest.mark.parametrize("offset", [-0.001, 0.0, 0.001, 5.0])
def test_a_due_rollback_wins_a_tie_with_a_late_confirm(env: Env, offset: float) -> None:
    """A confirm that reaches the daemon at or after the deadline finds the rollback done, even
    when the timer has not run yet; one a millisecond early commits. Exactly one outcome."""
    before = env.tree()
    t, token = env.engine.start(ROOT_ACTOR, timeout_s=TIMEOUT_S)
    _edit(env)
    after = env.tree()
    got: dict[str, Any] = {}

    async def body(d: Daemon) -> None:
        await _armed_at(env)
        env.clock.t = t.deadline.boottime_s + offset  # the timer's wake-up is only scheduled
        try:
            got["doc"] = await d.confirm(ROOT_ACTOR, t.id, token)
        except NoTransaction as e:
            got["error"] = e
        env.clock.advance(TIMEOUT_S)
        await until(lambda: _idle(env.engine), "the transaction to end")

    _run(env, body)
    assert len(env.engine.history(10)) == 1
    if offset < 0:
        assert got["doc"]["already_committed"] is False
        assert _last(env) == ("committed", "confirmed")
        assert env.tree() == after
    else:
        assert got["error"].exit_code == 66
        assert _last(env) == ("rolled-back", "timeout")
        assert env.tree() == before


def test_a_restart_resumes_the_remaining_time(env: Env) -> None:
    """A daemon started mid-timer (a new engine and daemon over the same state) waits for the
    recorded deadline, not a fresh timeout."""
    before = env.tree()
    t, _token = env.engine.start(ROOT_ACTOR, timeout_s=TIMEOUT_S)
    _edit(env)
    env.clock.advance(3)  # the old daemon died 3 s in
    env.engine = Engine(env.root, env.engine.cfg, env.clock, env.engine.network)

    async def body(d: Daemon) -> None:
        assert await _armed_at(env) == [t.deadline.boottime_s]
        status = await d.status()
        assert status["transaction"]["remaining_s"] == pytest.approx(TIMEOUT_S - 3)
        env.clock.t = t.deadline.boottime_s
        await until(lambda: _idle(env.engine), "the rollback at the original deadline")

    _run(env, body)
    assert env.tree() == before
    h = env.engine.history(1)[0]
    assert (h["phase"], h["reason"]) == ("rolled-back", "timeout")


@pytest.mark.parametrize("boot_id", ["boot-1", "boot-2"])
def test_a_deadline_that_passed_while_down_fires_at_once(env: Env, boot_id: str) -> None:
    """Late in this boot, or the next boot (whose clock says nothing about the old deadline)."""
    before = env.tree()
    env.engine.start(ROOT_ACTOR, timeout_s=TIMEOUT_S)
    _edit(env)
    env.clock.advance(TIMEOUT_S + 10)
    env.clock.boot_id = boot_id
    if boot_id == "boot-2":
        env.clock.t = 5.0  # a fresh boot: CLOCK_BOOTTIME starts again

    async def body(d: Daemon) -> None:
        await until(lambda: _idle(env.engine), "the rollback of the overdue transaction")

    _run(env, body)
    assert env.tree() == before
    assert _last(env) == ("rolled-back", "timeout")


def test_status_says_overdue_while_the_due_rollback_waits_for_the_lock(env: Env) -> None:
    t, _token = env.engine.start(ROOT_ACTOR, timeout_s=TIMEOUT_S)

    async def body(d: Daemon) -> None:
        await _armed_at(env)
        await d.lock.acquire()  # a long operation holds the state lock
        env.clock.advance(TIMEOUT_S + 0.5)
        st = await d.status()
        assert st["busy"] is True and st["state"] == "open"
        assert st["transaction"]["remaining_s"] == 0
        text = txn_human(st["transaction"])
        assert "overdue: the rollback is due now" in text and "(0s left)" not in text, text
        d.lock.release()
        await until(lambda: _idle(env.engine), "the rollback once the lock is free")

    _run(env, body)
    assert _last(env) == ("rolled-back", "timeout")
    assert t.id == env.engine.history(1)[0]["id"]
