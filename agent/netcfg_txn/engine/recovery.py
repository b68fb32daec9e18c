# SPDX-License-Identifier: GPL-3.0-or-later
"""Finishing what a crash, a reboot or a dead daemon left behind. Recovery = read the persisted
phase (and rollback stage) and run its effects again; every effect is idempotent."""

from __future__ import annotations

import dataclasses

from netcfg_txn.core import txn
from netcfg_txn.core.model import BOOT, SYSTEM, Actor, Phase, Reason, Txn
from netcfg_txn.engine.pipeline import RollbackPipeline


@dataclasses.dataclass(frozen=True)
class Recovery:
    """What recovery found and did; ``open`` is a transaction the daemon must keep timing."""

    actions: tuple[str, ...]
    open: Txn | None


class Recovering(RollbackPipeline):
    def recover(self, *, boot: bool) -> Recovery:
        """Finish whatever a crash interrupted. ``boot``: files only, the network is not up."""
        self.store.ensure()
        actions = [f"discarded partial snapshot {p}" for p in self.store.discard_partials()]
        t = self.current()
        for sid in self.store.complete_snapshots():
            if t is None or sid != t.id:  # published by a start that never reached its record
                self.store.drop_snapshot(sid)
                actions.append(f"discarded unreferenced snapshot {sid}")
        if t is None:
            return Recovery(tuple(actions), None)
        now = self.clock.now()
        if t.phase.terminal:
            self._finalize(t)
            actions.append(f"finished {t.phase.value} transaction {t.id}")
            return Recovery(tuple(actions), None)
        if boot:
            new, effects = self._persist(t, txn.Booted())
            assert new is not None
            done = self._run_effects(new, effects)
            actions.append(f"boot rollback of {t.id}: {done.phase.value}")
            return Recovery(tuple(actions), done if done.phase is Phase.OPEN else None)
        if t.phase is Phase.ROLLING_BACK:
            new, effects = self._persist(
                t, txn.RollbackRequested(SYSTEM, t.reason or Reason.MANUAL)
            )
            assert new is not None
            done = self._run_effects(new, effects)
            actions.append(f"resumed interrupted rollback of {t.id}: {done.phase.value}")
            return Recovery(tuple(actions), None)
        if t.deadline.boot_id != now.boot_id:
            done = self._rollback(t, BOOT, Reason.BOOT)
            actions.append(f"rolled back {t.id} left open by a previous boot: {done.phase.value}")
            return Recovery(tuple(actions), None)
        if t.deadline.remaining_s(now) <= 0:
            done = self._rollback(t, SYSTEM, Reason.TIMEOUT)
            actions.append(f"deadline of {t.id} passed while down: {done.phase.value}")
            return Recovery(tuple(actions), None)
        actions.append(f"resumed {t.id}: {t.deadline.remaining_s(now):.1f}s left")
        self.backstop.arm(t, self.cfg.backstop_grace_s)
        return Recovery(tuple(actions), t)

    def take_over(self, actor: Actor) -> Recovery:
        """The backstop: the daemon did not roll back in time. Roll back an open transaction
        whose deadline passed (reason timeout, ended by ``actor``), or finish one it left
        mid-rollback. The caller holds the state lock."""
        self.store.ensure()
        t = self.current()
        if t is None:
            return Recovery((), None)
        if t.phase.terminal:
            self._finalize(t)
            return Recovery((f"finished {t.phase.value} transaction {t.id}",), None)
        if t.phase is Phase.ROLLING_BACK:
            new, effects = self._persist(
                t, txn.RollbackRequested(SYSTEM, t.reason or Reason.TIMEOUT)
            )
            assert new is not None
            done = self._run_effects(new, effects)
            return Recovery((f"finished the interrupted rollback of {t.id}: {done.phase.value}",),
                            None)  # fmt: skip
        new, effects = self._persist(t, txn.DeadlinePassed(by=actor))
        assert new is not None
        done = self._run_effects(new, effects)
        return Recovery((f"rolled back {t.id} (timeout): {done.phase.value}",), None)
