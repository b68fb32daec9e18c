# SPDX-License-Identifier: GPL-3.0-or-later
"""The transaction state machine. Pure: ``step(state, event) -> (state, effects)``.

The engine persists the returned state, then runs the effects; recovery re-derives effects from the
persisted phase. ``None`` is the idle state. Illegal requests raise the error the caller should see
(busy, no transaction), so the exit codes of busy, no-transaction and already-ended come from
one table.

A rollback's progress is stepped here too: ``Planned`` records its plan before anything is
touched, then one ``StageDone`` per stage (``RollbackStage``), only forward, until
``RollbackDone``. A stage out of order is a bug in the caller and raises ValueError.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from netcfg_txn.core.errors import Busy, NoTransaction
from netcfg_txn.core.model import BOOT, TIMER, Actor, Deadline, Phase, Reason, StepResult, Txn
from netcfg_txn.core.rollback import RollbackPlan, RollbackStage

State = Txn | None


# ------------------------------------------------------------------------------------ events


@dataclasses.dataclass(frozen=True)
class Begin:
    txn: Txn


@dataclasses.dataclass(frozen=True)
class Extend:
    deadline: Deadline
    timeout_s: float


@dataclasses.dataclass(frozen=True)
class Confirm:
    actor: Actor
    wall_s: float


@dataclasses.dataclass(frozen=True)
class RollbackRequested:
    actor: Actor
    reason: Reason


@dataclasses.dataclass(frozen=True)
class DeadlinePassed:
    by: Actor = TIMER  # the daemon's timer, or whoever took over from a daemon that could not


@dataclasses.dataclass(frozen=True)
class Booted:
    """The host rebooted with this transaction open or mid-rollback."""


@dataclasses.dataclass(frozen=True)
class Planned:
    """A rollback decided its plan, before touching anything. ``results``: what planning already
    found wrong (files it could not archive), recorded once."""

    plan: RollbackPlan
    results: tuple[StepResult, ...] = ()


@dataclasses.dataclass(frozen=True)
class StageDone:
    """A rollback completed ``stage``; its ``results`` are added to the record."""

    stage: RollbackStage
    results: tuple[StepResult, ...] = ()


@dataclasses.dataclass(frozen=True)
class RollbackDone:
    results: tuple[StepResult, ...]
    errors: tuple[str, ...]
    wall_s: float


@dataclasses.dataclass(frozen=True)
class Finished:
    """Cleanup of a terminal transaction is done: back to idle."""


Event = (
    Begin
    | Extend
    | Confirm
    | RollbackRequested
    | DeadlinePassed
    | Booted
    | Planned
    | StageDone
    | RollbackDone
    | Finished
)

# ----------------------------------------------------------------------------------- effects


# ArmTimer/DisarmTimer say what the timer must do; the daemon realizes them by re-deriving its one
# timer from the persisted record after every operation (so a restart does exactly the same).
@dataclasses.dataclass(frozen=True)
class ArmTimer:
    deadline: Deadline


@dataclasses.dataclass(frozen=True)
class DisarmTimer:
    pass


@dataclasses.dataclass(frozen=True)
class Restore:
    live: bool  # False at boot: files only, networking has not started


@dataclasses.dataclass(frozen=True)
class Finalize:
    """Record history and baseline, drop the snapshot, return to idle."""


Effect = ArmTimer | DisarmTimer | Restore | Finalize
Step = tuple[State, tuple[Effect, ...]]

# ------------------------------------------------------------------------------- transitions


def _begin(s: State, e: Begin) -> Step:
    return e.txn, (ArmTimer(e.txn.deadline),)


def _extend(s: Txn, e: Extend) -> Step:
    return dataclasses.replace(s, deadline=e.deadline, timeout_s=e.timeout_s), (
        ArmTimer(e.deadline),
    )


def _confirm(s: Txn, e: Confirm) -> Step:
    t = dataclasses.replace(
        s, phase=Phase.COMMITTED, reason=Reason.CONFIRMED, ended_by=e.actor, ended_wall_s=e.wall_s
    )
    return t, (DisarmTimer(), Finalize())


def _rollback(s: Txn, e: RollbackRequested) -> Step:
    t = dataclasses.replace(s, phase=Phase.ROLLING_BACK, reason=e.reason, ended_by=e.actor)
    return t, (DisarmTimer(), Restore(live=True))


def _expire(s: Txn, e: DeadlinePassed) -> Step:
    t = dataclasses.replace(s, phase=Phase.ROLLING_BACK, reason=Reason.TIMEOUT, ended_by=e.by)
    return t, (Restore(live=True),)


def _boot(s: Txn, e: Booted) -> Step:
    # A rollback interrupted by the reboot keeps its original reason and plan; from now on it
    # restores files only (networking has not started), so it bounces nothing.
    plan = s.rollback
    if plan is not None and not plan.files_only:
        plan = dataclasses.replace(plan, files_only=True)
    t = dataclasses.replace(
        s,
        phase=Phase.ROLLING_BACK,
        reason=s.reason or Reason.BOOT,
        ended_by=s.ended_by or BOOT,
        rollback=plan,
    )
    return t, (Restore(live=False),)


def _planned(s: Txn, e: Planned) -> Step:
    if s.stage is not RollbackStage.UNPLANNED:
        return s, ()  # planned once: a resumed rollback keeps its plan
    t = dataclasses.replace(
        s, rollback=e.plan, stage=RollbackStage.PLANNED, results=s.results + e.results
    )
    return t, ()


def _stage_done(s: Txn, e: StageDone) -> Step:
    if s.stage is RollbackStage.UNPLANNED or e.stage.order <= s.stage.order:
        raise ValueError(f"rollback stage {e.stage.value!r} cannot follow {s.stage.value!r}")
    return dataclasses.replace(s, stage=e.stage, results=s.results + e.results), ()


def _resume(s: Txn, e: RollbackRequested) -> Step:
    """Recovery in the same boot: run the interrupted rollback again (it is idempotent)."""
    return s, (Restore(live=True),)


def _done(s: Txn, e: RollbackDone) -> Step:
    phase = Phase.FAILED if e.errors else Phase.ROLLED_BACK
    t = dataclasses.replace(
        s, phase=phase, results=e.results, errors=e.errors, ended_wall_s=e.wall_s
    )
    return t, (Finalize(),)


def _already(s: Txn, e: Any) -> Step:
    return s, ()


def _finished(s: Txn, e: Finished) -> Step:
    return None, ()


def _busy(s: Txn, e: Begin) -> Step:
    raise Busy(
        f"transaction {s.id} is {s.phase.value} (started by {s.actor.describe()})",
        hint="commit or roll it back first; see 'netcfg-txn status'",
        details={"id": s.id, "phase": s.phase.value},
    )


def _no_txn(s: Txn, e: Any) -> Step:
    raise NoTransaction(
        f"transaction {s.id} is {s.phase.value}: it can no longer be committed or extended",
        details={"id": s.id, "phase": s.phase.value},
    )


Handler = Callable[[Any, Any], Step]

# One row per (phase, event). "idle" rows are keyed by None.
TRANSITIONS: dict[tuple[Phase | None, type[Any]], Handler] = {
    (None, Begin): _begin,
    (Phase.OPEN, Begin): _busy,
    (Phase.OPEN, Extend): _extend,
    (Phase.OPEN, Confirm): _confirm,
    (Phase.OPEN, RollbackRequested): _rollback,
    (Phase.OPEN, DeadlinePassed): _expire,
    (Phase.OPEN, Booted): _boot,
    (Phase.ROLLING_BACK, Begin): _busy,
    (Phase.ROLLING_BACK, Extend): _no_txn,
    (Phase.ROLLING_BACK, Confirm): _no_txn,
    (Phase.ROLLING_BACK, RollbackRequested): _resume,
    (Phase.ROLLING_BACK, DeadlinePassed): _already,
    (Phase.ROLLING_BACK, Booted): _boot,
    (Phase.ROLLING_BACK, Planned): _planned,
    (Phase.ROLLING_BACK, StageDone): _stage_done,
    (Phase.ROLLING_BACK, RollbackDone): _done,
}
for _p in (Phase.COMMITTED, Phase.ROLLED_BACK, Phase.FAILED):
    TRANSITIONS[(_p, Begin)] = _busy
    TRANSITIONS[(_p, Extend)] = _no_txn
    TRANSITIONS[(_p, Confirm)] = _already if _p is Phase.COMMITTED else _no_txn
    TRANSITIONS[(_p, RollbackRequested)] = _no_txn
    TRANSITIONS[(_p, DeadlinePassed)] = _already
    TRANSITIONS[(_p, Booted)] = _already
    TRANSITIONS[(_p, Finished)] = _finished


def step(state: State, event: Event) -> Step:
    phase = state.phase if state is not None else None
    handler = TRANSITIONS.get((phase, type(event)))
    if handler is None:
        if state is None:
            raise NoTransaction("no transaction is open", hint="start one with 'netcfg-txn start'")
        raise NoTransaction(
            f"transaction {state.id} is {phase.value if phase else 'idle'}: "
            f"{type(event).__name__} does not apply"
        )
    return handler(state, event)
