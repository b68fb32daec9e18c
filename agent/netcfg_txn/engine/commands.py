# SPDX-License-Identifier: GPL-3.0-or-later
"""The engine's commands: start, extend (the HTTP API's ``arm``), commit, rollback, and the
dead-man's expiry. Each feeds an event to the pure state machine (``core.txn``), persists the
result, then runs its effects (the rollback pipeline, finalization)."""

from __future__ import annotations

import contextlib
import dataclasses
import hmac
import secrets
import time
from collections.abc import Mapping
from typing import Any

from netcfg_txn.core import diff, frozen, txn
from netcfg_txn.core.errors import (
    Busy,
    ConfigError,
    Failed,
    NotPermitted,
    NoTransaction,
    PendingEdits,
    Rejected,
)
from netcfg_txn.core.model import (
    SYSTEM,
    Actor,
    Deadline,
    Manifest,
    Phase,
    Reason,
    Txn,
    manifest_from_json,
    manifest_to_json,
)
from netcfg_txn.core.rollback import RollbackStage
from netcfg_txn.core.tokens import hash_token
from netcfg_txn.engine.base import is_local_root, log, new_txn_id
from netcfg_txn.engine.messages import MSG_COMMITTED, MSG_EXTENDED, MSG_STARTED, rfc3339
from netcfg_txn.engine.recovery import Recovering
from netcfg_txn.engine.views import ReadViews
from netcfg_txn.store import files
from netcfg_txn.store.state import HistoryEntry


class Engine(Recovering, ReadViews):
    def start(
        self,
        actor: Actor,
        *,
        timeout_s: float | None = None,
        allow_pending: bool = False,
        label: str = "",
        policy: Mapping[str, Any] | None = None,
        warnings: list[str] | None = None,
    ) -> tuple[Txn, str]:
        """``warnings`` collects what the caller must be told although the start succeeded."""
        timeout = self.cfg.check_timeout(timeout_s)
        self.store.ensure()
        existing = self.current()
        if existing is not None:
            try:
                txn.step(existing, txn.Begin(existing))  # raises Busy naming it
            except Busy as e:  # the cause, down to where its snapshot lives
                snap = self.store.snapshots / existing.id
                raise Busy(
                    f"{e.message}; its snapshot is {snap}", hint=e.hint, details=e.details
                ) from None
        if (why := self.network.problem()) is not None:
            raise Failed(f"the {self.network.name} backend cannot work here: {why}")
        if ro := files.read_only_dirs(self.root, self.fileset):
            raise ConfigError(
                f"managed directories are read-only for this process: {', '.join(ro)}; "
                "a rollback could not restore them",
                hint="under systemd, add them with 'systemctl edit netcfg-txnd': "
                "[Service] ReadWritePaths=DIR",
            )
        writer = self.store.blob_writer()
        try:
            # A refused start changes nothing in the state dir, not even the stat cache.
            manifest, cache = self._scan_cached(writer)
            if unsafe := files.unsafe_dirs(self.root, self.fileset, manifest):
                raise ConfigError(
                    "managed directories can be written by users other than root: "
                    + "; ".join(unsafe)
                    + " (a rollback refuses to write where another user could race it)",
                    hint="make each one root-owned and not group/other-writable "
                    "(chown root DIR; chmod go-w DIR)",
                    details={"directories": unsafe},
                )
            baseline, baseline_problem = self.baseline()
            if baseline is not None and not allow_pending:
                pending = diff.changes(baseline, manifest)
                if pending:
                    raise PendingEdits(
                        f"{len(pending)} managed file(s) changed outside a transaction: "
                        + ", ".join(str(c.path) for c in pending[:10]),
                        hint="see them with 'netcfg-txn diff'; "
                        "'start --allow-pending' snapshots them as they are",
                        details={"paths": [str(c.path) for c in pending]},
                    )
            writer.commit()
        except BaseException:
            writer.abort()
            raise
        self._save_cache(cache)
        if baseline_problem is not None and warnings is not None:
            warnings.append(baseline_problem)
        now = self.clock.now()
        token = secrets.token_urlsafe(32)
        t = Txn(
            id=new_txn_id(now.wall_s),
            phase=Phase.OPEN,
            created=now,
            deadline=Deadline.after(now, timeout),
            timeout_s=timeout,
            actor=actor,
            token_sha256=hash_token(token),
            label=label,
            file_count=len(manifest.files),
            policy=policy,
        )
        extra: dict[str, Any] = {frozen.NAME: frozen.freeze(self.cfg)}
        if (live := self.network.capture()) is not None:
            extra["links"] = dict(live)
        try:
            self.store.publish_snapshot(t.id, manifest, extra)
            self._persist(None, txn.Begin(t))  # the commit point of start
        except BaseException:
            # The caller gets an error and never sees the token: no transaction may remain.
            with contextlib.suppress(OSError):
                self.store.clear_txn()
            with contextlib.suppress(OSError):
                self.store.drop_snapshot(t.id)
            with contextlib.suppress(OSError):
                self.store.discard_partials()
            raise
        skipped = [f"{s.path} ({s.why})" for s in manifest.skipped]
        self._event(
            MSG_STARTED,
            f"started: {t.file_count} files, deadline in {timeout:g}s"
            + (f", skipped: {'; '.join(skipped)}" if skipped else ""),
            t,
            actor=actor,
            deadline=rfc3339(t.deadline.wall_s),
        )
        self.backstop.arm(t, self.cfg.backstop_grace_s)
        return t, token

    def extend(
        self,
        actor: Actor,
        *,
        timeout_s: float,
        txn_id: str | None = None,
        token: str | None = None,
        force: bool = False,
    ) -> Txn:
        t = self._require_open(txn_id)
        self._authorize(t, actor, token)
        timeout = self.cfg.check_timeout(timeout_s)
        if t.phase is Phase.OPEN:
            applied = self._check_rejected(t, actor, force=force, verb="extend")
            self.store.write_snapshot_extra(t.id, "applied", manifest_to_json(applied))
        now = self.clock.now()
        new, _ = self._persist(t, txn.Extend(Deadline.after(now, timeout), timeout))
        assert new is not None
        self._event(
            MSG_EXTENDED,
            f"deadline moved to {timeout:g}s from now",
            new,
            actor=actor,
            deadline=rfc3339(new.deadline.wall_s),
        )
        self.backstop.arm(new, self.cfg.backstop_grace_s)
        return new

    def _ended_with_token(self, txn_id: str | None, token: str) -> Txn | None:
        """The finished transaction this token belongs to (the named one, or any in history)."""
        want = hash_token(token)
        entries = [self.store.find_history(txn_id)] if txn_id is not None else self.store.history()
        for h in entries:
            if h is not None and hmac.compare_digest(want, h.txn.token_sha256):
                return h.txn
        return None

    def commit(
        self,
        actor: Actor,
        *,
        txn_id: str | None = None,
        token: str | None = None,
        force: bool = False,
    ) -> tuple[Txn, bool]:
        """Returns (transaction, already_committed)."""
        try:
            t = self._require_open(txn_id)
        except NoTransaction:
            if token is not None and (ended := self._ended_with_token(txn_id, token)) is not None:
                if ended.phase is Phase.COMMITTED:
                    return ended, True  # a lost reply can be retried safely
                raise NoTransaction(
                    f"transaction {ended.id} already ended: {ended.phase.value}"
                    + (f" ({ended.reason.value})" if ended.reason else ""),
                    details={"id": ended.id, "phase": ended.phase.value},
                ) from None
            raise
        self._authorize(t, actor, token)
        if t.phase is Phase.COMMITTED:
            self._finalize(t)
            return t, True
        if t.phase is Phase.OPEN:
            self._check_rejected(t, actor, force=force, verb="commit")
        # Editors and tools rarely fsync: make the new set durable before it is declared kept,
        # or a power cut right after commit could leave empty files that nothing rolls back.
        files.make_durable(self.root, self.fileset)
        self.backstop.before_commit(t)
        new, effects = self._persist(t, txn.Confirm(actor, time.time()))  # the commit point
        assert new is not None
        self._event(MSG_COMMITTED, "committed", new, actor=actor)
        self._run_effects(new, effects)
        return new, False

    def _check_rejected(self, t: Txn, actor: Actor, *, force: bool, verb: str) -> Manifest:
        """A file set rolled back before by timeout, probes or boot is kept or armed again only
        with ``force``, and the override is logged. Returns the current set."""
        applied = self.scan()
        info = self.store.rejected().get(applied.fingerprint())
        if info is None:
            return applied
        before = f"{info.get('reason', '?')}, transaction {info.get('txn', '?')}"
        if not force:
            raise Rejected(
                f"this exact file set was rolled back before ({before})",
                hint=f"change something, or pass '{verb} --force' to {verb} it anyway (logged)",
                details={"rejected": info},
            )
        log.warning(
            "txn=%s %s forced by %s: this exact file set was rolled back before (%s)",
            t.id,
            verb,
            actor.describe(),
            before,
        )
        return applied

    def rollback(
        self,
        actor: Actor,
        *,
        txn_id: str | None = None,
        token: str | None = None,
        force: bool = False,
        reason: Reason = Reason.MANUAL,
    ) -> Txn:
        try:
            t = self._require_open(txn_id)
        except NoTransaction:
            failed = self._failed_last(txn_id) if force else None
            if failed is None:
                raise
            if not is_local_root(actor):
                raise NotPermitted("only local root may retry a failed rollback") from None
            return self._retry(failed, actor)
        if force:
            if not is_local_root(actor):
                raise NotPermitted("only local root may force a rollback")
            reason = Reason.FORCED
        else:
            self._authorize(t, actor, token)
        return self._rollback(t, actor, reason)

    def _failed_last(self, txn_id: str | None) -> HistoryEntry | None:
        """The newest finished transaction, if its rollback failed (and it is ``txn_id``)."""
        last = next(iter(self.store.history(1)), None)
        if last is None or last.txn.phase is not Phase.FAILED or "snapshot" not in last.doc:
            return None
        return last if txn_id in (None, last.txn.id) else None

    def _retry(self, failed: HistoryEntry, actor: Actor) -> Txn:
        """``rollback --force`` after a failed rollback: restore the same snapshot again, with
        the same interface plan, as a new transaction (history keeps both outcomes)."""
        old = failed.txn
        now = self.clock.now()
        t = Txn(
            id=new_txn_id(now.wall_s),
            phase=Phase.OPEN,
            created=now,
            deadline=Deadline.after(now, old.timeout_s),
            timeout_s=old.timeout_s,
            actor=actor,
            token_sha256=hash_token(secrets.token_urlsafe(32)),
            label=f"retry of the failed rollback of {old.id}",
            file_count=old.file_count,
            # The same plan, live this time (a failed boot rollback bounced nothing).
            rollback=dataclasses.replace(old.rollback, files_only=False) if old.rollback else None,
            stage=RollbackStage.PLANNED if old.rollback is not None else RollbackStage.UNPLANNED,
        )
        links = failed.doc.get("links")
        extra: dict[str, Any] = {"links": links} if links is not None else {}
        self.store.publish_snapshot(t.id, manifest_from_json(failed.doc["snapshot"]), extra)
        self._persist(None, txn.Begin(t))
        self._event(MSG_STARTED, f"retrying the failed rollback of {old.id}", t, actor=actor)
        return self._rollback(t, actor, Reason.FORCED)

    def expire(self) -> Txn | None:
        """The dead-man fired. Exactly one rollback: a no-op unless the txn is still open."""
        t = self.current()
        if t is None or t.phase is not Phase.OPEN:
            return None
        if t.deadline.remaining_s(self.clock.now()) > 0:
            return None
        return self._rollback(t, SYSTEM, Reason.TIMEOUT)
