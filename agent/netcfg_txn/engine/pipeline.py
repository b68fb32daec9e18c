# SPDX-License-Identifier: GPL-3.0-or-later
"""The rollback pipeline: one method per stage, run in the design's order.

Live: plan -> interfaces down (while their current config exists) -> delete the links only the
new config created -> files -> reload the stack -> interfaces up -> routes -> verify -> the
``[apply] command`` hook. At boot: plan -> files (networking has not started yet).

The plan is persisted before anything is touched; each stage that did something is persisted
when it completes (a ``StageDone`` event of the state machine; the last one by the outcome's
record, written right after), so a rollback interrupted by a crash resumes after the last
recorded stage with the same plan. A stage that did nothing is not
recorded: running it again does nothing again. Every stage continues past failed steps; the
outcome is ``failed`` if any step failed.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from pathlib import Path

from netcfg_txn.core import diff, txn
from netcfg_txn.core.diff import RestorePlan
from netcfg_txn.core.model import (
    Actor,
    Manifest,
    Reason,
    Skipped,
    StepResult,
    Txn,
    manifest_to_json,
)
from netcfg_txn.core.rollback import RollbackPlan, RollbackStage
from netcfg_txn.engine.base import KeepNew, log
from netcfg_txn.engine.finalize import Finalizer
from netcfg_txn.engine.messages import (
    MSG_BOOT_ROLLBACK,
    MSG_FAILED,
    MSG_ROLLBACK_BEGUN,
    MSG_ROLLED_BACK,
)
from netcfg_txn.net.network import LiveJson, Network
from netcfg_txn.store import files

Stage = RollbackStage


@dataclasses.dataclass(frozen=True)
class Work:
    """What every stage of one run of the pipeline reads."""

    plan: RollbackPlan
    restore: RestorePlan  # derived from the snapshot and the files found at this run's start
    snapshot: Manifest
    found: Manifest  # the managed files at this run's start
    live: LiveJson  # links/addresses/routes captured at start
    network: Network | None  # None: the plan was made by another kind of network


class RollbackPipeline(Finalizer):
    def _rollback(self, t: Txn, actor: Actor, reason: Reason) -> Txn:
        if reason is Reason.TIMEOUT:
            new, effects = self._persist(t, txn.DeadlinePassed())
        else:
            new, effects = self._persist(t, txn.RollbackRequested(actor, reason))
        assert new is not None
        return self._run_effects(new, effects)

    def _run_effects(self, t: Txn, effects: tuple[txn.Effect, ...]) -> Txn:
        for e in effects:
            if isinstance(e, txn.Restore):
                t = self._restore(t, live=e.live)
            elif isinstance(e, txn.Finalize):
                self._finalize(t)
        return t

    def _stages(self, live: bool) -> tuple[tuple[Stage, Callable[[Work], list[StepResult]]], ...]:
        if not live:
            return ((Stage.FILES, self._restore_files_at_boot),)
        return (
            (Stage.DOWN, self._take_down),
            (Stage.LINKS_DELETED, self._delete_created_links),
            (Stage.FILES, self._restore_files),
            (Stage.RELOADED, self._reload),
            (Stage.UP, self._bring_up),
            (Stage.ROUTES, self._restore_routes),
            (Stage.VERIFIED, self._verify),
            (Stage.HOOK, self._run_hook),
        )

    def _restore(self, t: Txn, *, live: bool) -> Txn:
        """Restore the snapshot; continue past failures; resumable after every stage."""
        assert t.reason is not None
        self._event(MSG_ROLLBACK_BEGUN, f"rolling back ({t.reason.value})", t)
        snap = self.store.snapshot_manifest(t.id)
        writer = self.store.blob_writer()
        sink = KeepNew(writer, frozenset(f.sha256 for f in snap.files))
        found, unreadable = self._scan_tolerant(sink if t.rollback is None else writer)
        writer.commit()
        if self.store.snapshot_extra(t.id, "discarded") is None:  # archived before any change
            self.store.write_snapshot_extra(t.id, "discarded", manifest_to_json(found))
        if t.rollback is None:
            t = self._plan(t, snap, found, unreadable, live, sink.kept)
            sink.kept.clear()
        assert t.rollback is not None
        work = Work(
            t.rollback,
            diff.plan_restore(snap, found),
            snap,
            found,
            self.store.snapshot_extra(t.id, "links") if live else None,
            self.network if self.network.accepts(t.rollback.network) else None,
        )
        todo = [(s, run) for s, run in self._stages(live) if s.order > t.stage.order]
        for i, (stage, run) in enumerate(todo):
            # The last stage is recorded by the outcome's write that follows at once: a crash
            # before it leaves a state that already exists (the stage done, not yet recorded).
            t = self._stage_done(t, stage, run(work), record=i < len(todo) - 1)
        return self._conclude(t, live)

    def _plan(
        self,
        t: Txn,
        snap: Manifest,
        found: Manifest,
        unreadable: list[Skipped],
        live: bool,
        kept: dict[str, bytes],
    ) -> Txn:
        """Decide the plan before anything is touched, and persist it. A file that could not be
        archived is still restored (rewritten or deleted), but its loss is a per-file error:
        the discarded config is incomplete. Recorded once, with the plan."""
        rollback = RollbackPlan(
            network=self._plan_network(snap, found, kept),
            unreadable=tuple(f"{u.path}: {u.why}" for u in unreadable),
            files_only=not live,
        )
        new, _ = self._persist(t, txn.Planned(rollback, _archive_errors(snap, found, unreadable)))
        assert new is not None
        return new

    def _stage_done(
        self, t: Txn, stage: Stage, results: list[StepResult], *, record: bool = True
    ) -> Txn:
        """Step the state machine; persist only a stage that did something (one that did
        nothing does nothing again when a resumed rollback repeats it)."""
        new, _ = txn.step(t, txn.StageDone(stage, tuple(results)))
        assert new is not None
        if results and record:
            self.store.write_txn(new)
        return new

    # ------------------------------------------------------------------------------ stages

    def _take_down(self, w: Work) -> list[StepResult]:
        if w.network is None:  # said once, here: the interfaces stay as they are
            kind = w.plan.network.kind
            why = f"the rollback was planned by a {kind} network, not by {self.network.name}"
            return [StepResult("bounce", self.network.name, False, why)]
        return w.network.down(w.plan.network)

    def _delete_created_links(self, w: Work) -> list[StepResult]:
        return w.network.delete_created_links(w.plan.network) if w.network else []

    def _restore_files(self, w: Work) -> list[StepResult]:
        stale = files.sweep_temps(self.root, [*w.snapshot.by_path(), *w.found.by_path()])
        if stale:
            log.info("removed temp files of an interrupted restore: %s", stale)
        return files.restore(self.root, w.restore.write, w.restore.delete, self.store.open_blob)

    def _restore_files_at_boot(self, w: Work) -> list[StepResult]:
        return self._restore_files(w) + self._regenerate_at_boot(w.restore)

    def _reload(self, w: Work) -> list[StepResult]:
        return w.network.reload(w.plan.network) if w.network else []

    def _bring_up(self, w: Work) -> list[StepResult]:
        return w.network.up(w.plan.network) if w.network else []

    def _restore_routes(self, w: Work) -> list[StepResult]:
        return w.network.restore_routes(w.plan.network, w.live) if w.network else []

    def _verify(self, w: Work) -> list[StepResult]:
        return w.network.verify(w.plan.network, w.live) if w.network else []

    def _run_hook(self, w: Work) -> list[StepResult]:
        return w.network.run_hook(w.plan.network) if w.network else []

    def _regenerate_at_boot(self, rp: RestorePlan) -> list[StepResult]:
        """netplan's generator ran at boot from the rejected YAML, before us: run it again."""
        touched = [str(f.path) for f in rp.write] + [str(p) for p in rp.delete]
        if self.root != Path("/") or not any(p.startswith("/etc/netplan/") for p in touched):
            return []
        from netcfg_txn.core.errors import CommandFailed
        from netcfg_txn.host.runner import run

        try:
            run(["netplan", "generate"], timeout_s=60)
        except CommandFailed as e:
            return [StepResult("generate", "netplan", False, str(e))]
        return [StepResult("generate", "netplan", True)]

    # ------------------------------------------------------------------------------ outcome

    def _conclude(self, t: Txn, live: bool) -> Txn:
        """Record the outcome (rolled back, or failed naming every failed step), log it loudly
        if anything failed, and finalize."""
        reason = t.reason.value if t.reason else "?"
        results = t.results
        errors = tuple(f"{r.action} {r.target}: {r.error}" for r in results if not r.ok)
        new, effects = self._persist(t, txn.RollbackDone(results, errors, time.time()))
        assert new is not None
        summary = ", ".join(f"{r.action} {r.target}" for r in results if r.ok) or "nothing to do"
        if errors:  # loud: CRITICAL, one entry naming every failure
            msg_id = MSG_FAILED
            text = f"rollback FAILED ({reason}) for {len(errors)} step(s): {'; '.join(errors)}"
        else:
            msg_id = MSG_BOOT_ROLLBACK if not live else MSG_ROLLED_BACK
            text = f"{new.phase.value} ({reason}){' at boot, files only' if not live else ''}"
        self._event(
            msg_id, f"{text}; done: {summary}", new, level=logging.CRITICAL if errors else None
        )
        return self._run_effects(new, effects)


def _archive_errors(
    snap: Manifest, found: Manifest, unreadable: list[Skipped]
) -> tuple[StepResult, ...]:
    out = [StepResult("archive", str(u.path), False, u.why) for u in unreadable]
    had = snap.by_path()
    out += [  # a FIFO, socket or device where the snapshot had a file: nothing to archive
        StepResult("archive", str(s.path), False, f"not archived: {s.why.split(':')[0]}")
        for s in found.skipped
        if s.path in had
    ]
    return tuple(out)
