# SPDX-License-Identifier: GPL-3.0-or-later
"""The pure state machine: every (phase, event) pair, plus properties over event sequences."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netcfg_txn.core import txn
from netcfg_txn.core.errors import Busy, NoTransaction
from netcfg_txn.core.model import (
    SYSTEM,
    Actor,
    Deadline,
    Instant,
    Phase,
    Reason,
    StepResult,
    Txn,
    TxnId,
)
from netcfg_txn.core.rollback import NoNetworkPlan, RollbackPlan, RollbackStage

NOW = Instant("boot-a", 100.0, 1_700_000_000.0)
D = Deadline("boot-a", 220.0, 1_700_000_120.0)
ROOT = Actor(kind="local", uid=0, pid=1, command="netcfg-txn")


def make(phase: Phase | None, tid: str = "t1") -> Txn | None:
    if phase is None:
        return None
    return Txn(TxnId(tid), phase, NOW, D, 120.0, ROOT, "h" * 64)


EVENTS: list[txn.Event] = [
    txn.Begin(make(Phase.OPEN, "t2")),  # type: ignore[arg-type]
    txn.Extend(Deadline("boot-a", 400.0, 0.0), 300.0),
    txn.Confirm(ROOT, 5.0),
    txn.RollbackRequested(ROOT, Reason.MANUAL),
    txn.DeadlinePassed(),
    txn.Booted(),
    txn.Planned(RollbackPlan(NoNetworkPlan())),
    txn.StageDone(RollbackStage.DOWN, (StepResult("down", "eth0", True),)),
    txn.RollbackDone((StepResult("rewrite", "/etc/x", True),), (), 6.0),
    txn.Finished(),
]
PHASES: list[Phase | None] = [None, *Phase]

# The expected outcome of every pair: a phase name (None = idle), or the error class.
EXPECTED: dict[tuple[Phase | None, type], object] = {
    (None, txn.Begin): Phase.OPEN,
    (Phase.OPEN, txn.Begin): Busy,
    (Phase.OPEN, txn.Extend): Phase.OPEN,
    (Phase.OPEN, txn.Confirm): Phase.COMMITTED,
    (Phase.OPEN, txn.RollbackRequested): Phase.ROLLING_BACK,
    (Phase.OPEN, txn.DeadlinePassed): Phase.ROLLING_BACK,
    (Phase.OPEN, txn.Booted): Phase.ROLLING_BACK,
    (Phase.OPEN, txn.Planned): NoTransaction,
    (Phase.OPEN, txn.StageDone): NoTransaction,
    (Phase.OPEN, txn.RollbackDone): NoTransaction,
    (Phase.OPEN, txn.Finished): NoTransaction,
    (Phase.ROLLING_BACK, txn.Begin): Busy,
    (Phase.ROLLING_BACK, txn.Extend): NoTransaction,
    (Phase.ROLLING_BACK, txn.Confirm): NoTransaction,
    (Phase.ROLLING_BACK, txn.RollbackRequested): Phase.ROLLING_BACK,
    (Phase.ROLLING_BACK, txn.DeadlinePassed): Phase.ROLLING_BACK,
    (Phase.ROLLING_BACK, txn.Booted): Phase.ROLLING_BACK,
    (Phase.ROLLING_BACK, txn.Planned): Phase.ROLLING_BACK,
    (Phase.ROLLING_BACK, txn.StageDone): ValueError,  # not planned yet: no stage can be done
    (Phase.ROLLING_BACK, txn.RollbackDone): Phase.ROLLED_BACK,
    (Phase.ROLLING_BACK, txn.Finished): NoTransaction,
}
for _p in (Phase.COMMITTED, Phase.ROLLED_BACK, Phase.FAILED):
    EXPECTED |= {
        (_p, txn.Begin): Busy,
        (_p, txn.Extend): NoTransaction,
        (_p, txn.Confirm): _p if _p is Phase.COMMITTED else NoTransaction,
        (_p, txn.RollbackRequested): NoTransaction,
        (_p, txn.DeadlinePassed): _p,
        (_p, txn.Booted): _p,
        (_p, txn.Planned): NoTransaction,
        (_p, txn.StageDone): NoTransaction,
        (_p, txn.RollbackDone): NoTransaction,
        (_p, txn.Finished): None,
    }
for _e in EVENTS:
    if type(_e) is not txn.Begin:
        EXPECTED[(None, type(_e))] = NoTransaction


@pytest.mark.parametrize(("phase", "event"), list(itertools.product(PHASES, EVENTS)))
def test_every_phase_event_pair(phase: Phase | None, event: txn.Event) -> None:
    want = EXPECTED[(phase, type(event))]
    state = make(phase)
    if isinstance(want, type) and issubclass(want, Exception):
        with pytest.raises(want):
            txn.step(state, event)
        return
    new, _effects = txn.step(state, event)
    assert (new.phase if new is not None else None) is want


def test_table_covers_every_pair() -> None:
    assert len(EXPECTED) == len(PHASES) * len(EVENTS)


def test_timeout_restores_live_and_records_reason() -> None:
    new, effects = txn.step(make(Phase.OPEN), txn.DeadlinePassed())
    assert new is not None and new.reason is Reason.TIMEOUT
    assert effects == (txn.Restore(live=True),)


def test_boot_restores_files_only() -> None:
    new, effects = txn.step(make(Phase.OPEN), txn.Booted())
    assert new is not None and new.reason is Reason.BOOT
    assert effects == (txn.Restore(live=False),)


def test_boot_keeps_the_reason_of_an_interrupted_rollback() -> None:
    rb, _ = txn.step(make(Phase.OPEN), txn.RollbackRequested(ROOT, Reason.MANUAL))
    again, _ = txn.step(rb, txn.Booted())
    assert again is not None and again.reason is Reason.MANUAL


def test_confirm_disarms_and_finalizes() -> None:
    new, effects = txn.step(make(Phase.OPEN), txn.Confirm(ROOT, 9.0))
    assert new is not None and new.phase is Phase.COMMITTED and new.ended_wall_s == 9.0
    assert effects == (txn.DisarmTimer(), txn.Finalize())


def test_rollback_with_errors_is_failed() -> None:
    rb, _ = txn.step(make(Phase.OPEN), txn.DeadlinePassed())
    done, effects = txn.step(rb, txn.RollbackDone((), ("rewrite /x: EIO",), 1.0))
    assert done is not None and done.phase is Phase.FAILED
    assert effects == (txn.Finalize(),)


def test_busy_names_the_open_transaction() -> None:
    with pytest.raises(Busy, match="t1"):
        txn.step(make(Phase.OPEN), txn.Begin(make(Phase.OPEN, "t9")))  # type: ignore[arg-type]


@given(st.lists(st.sampled_from(EVENTS), max_size=40))
def test_any_sequence_keeps_at_most_one_transaction(events: list[txn.Event]) -> None:
    """Apply events, skipping refused ones: the state is always None or one Txn, and a
    transaction id never changes except through Finished -> idle -> Begin."""
    state: txn.State = None
    for e in events:
        before = state
        try:
            state, _ = txn.step(state, e)
        except (Busy, NoTransaction, ValueError):  # ValueError: a stage out of order
            assert state is before
            continue
        if before is not None and state is not None:
            assert state.id == before.id
        if before is not None and before.phase.terminal and state is not None:
            assert state.phase is before.phase  # terminal phases absorb everything but Finished


@given(st.sampled_from([Phase.COMMITTED, Phase.ROLLED_BACK, Phase.FAILED]), st.sampled_from(EVENTS))
def test_terminal_phases_absorb(phase: Phase, event: txn.Event) -> None:
    try:
        new, effects = txn.step(make(phase), event)
    except (Busy, NoTransaction, ValueError):
        return
    assert new is None or new.phase is phase
    assert not any(isinstance(x, txn.Restore) for x in effects)


def test_system_actor_describes_itself() -> None:
    assert SYSTEM.describe() == "netcfg-txn"
