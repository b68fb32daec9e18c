# SPDX-License-Identifier: GPL-3.0-or-later
"""Feeds events to the pure state machine, persists the result, then runs its effects.

Synchronous and single-threaded by contract: the daemon serializes calls (asyncio lock + a worker
thread); ``boot-rollback`` calls it directly with no daemon. Recovery = read the persisted phase
and run its effects again; every effect is idempotent.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from netcfg_txn.core import frozen, plan, txn
from netcfg_txn.core.clock import Clock
from netcfg_txn.core.config import Config
from netcfg_txn.core.errors import (
    BadToken,
    Busy,
    ConfigError,
    Failed,
    NotPermitted,
    NoTransaction,
    PendingEdits,
    Rejected,
)
from netcfg_txn.core.fileset import FileSet
from netcfg_txn.core.model import (
    BOOT,
    SYSTEM,
    Actor,
    Deadline,
    Manifest,
    Phase,
    Reason,
    Skipped,
    StepResult,
    Txn,
    TxnId,
    manifest_from_json,
    manifest_to_json,
)
from netcfg_txn.net.network import FileChange, Network, UnchangedFiles
from netcfg_txn.store import files
from netcfg_txn.store.state import Corrupt, HistoryEntry, Store

log = logging.getLogger(__name__)

# MESSAGE_IDs (journal catalog: packaging/catalog/netcfg-txn.catalog)
MSG_STARTED = "dadf92640bc84527a1a4140a871545aa"
MSG_EXTENDED = "dd97c583e3014ddc89467af7df43f658"
MSG_COMMITTED = "914c9ef68f16435491f920a19aa116cc"
MSG_ROLLBACK_BEGUN = "d496f8d097f8442b8692efaf871e340c"
MSG_ROLLED_BACK = "2c0bdd571b3042f98ef9658d2325167b"
MSG_FAILED = "d4510d873c7d42dcb01059d8acdbec9f"
MSG_BOOT_ROLLBACK = "bebcf3dda87d4724b3d11a99cada5f72"
MSG_RELOAD_REFUSED = "6ca995f6a42c434a8bfce25496f1835f"
MSG_FROZEN_CONFIG = "7670ecb6accf4c5586bfab07518698b4"


class Backstop:
    """Arms the independent timer that rolls back if the daemon cannot (no-op here; see
    backstop.py). Implementations never raise: arming must never block an operation."""

    def arm(self, t: Txn, grace_s: float) -> bool:
        return False

    def disarm(self, txn_id: str) -> None:
        pass

    def before_commit(self, t: Txn) -> None:
        """Just before the commit point: nothing may revert a kept change."""


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _rfc3339(wall_s: float) -> str:
    """The DEADLINE journal field (the catalog shows it): local time with its UTC offset."""
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(wall_s))


def _new_id(now_wall: float) -> TxnId:
    return TxnId(time.strftime("%Y%m%dT%H%M%S", time.gmtime(now_wall)) + "-" + secrets.token_hex(3))


@dataclasses.dataclass(frozen=True)
class Recovery:
    """What recovery found and did; ``open`` is a transaction the daemon must keep timing."""

    actions: tuple[str, ...]
    open: Txn | None


class Engine:
    def __init__(
        self,
        root: Path,
        cfg: Config,
        clock: Clock,
        network: Network,
        *,
        on_event: Callable[[str, str, Txn | None, Mapping[str, Any]], None] | None = None,
        network_for: Callable[[Config], Network] | None = None,
        backstop: Backstop | None = None,
    ) -> None:
        self.root = root
        self._base_cfg = cfg
        self._base_network = network
        self._network_for = network_for
        # The open transaction's frozen settings: (txn id, config, network), or None.
        self._frozen: tuple[str, Config, Network] | None = None
        self._adopted: str | None = None  # the transaction id _frozen was looked up for
        self.store = Store(cfg.state_dir)
        self.clock = clock
        self._on_event = on_event
        self.backstop = backstop or Backstop()

    # While a transaction is open, ``cfg``, ``fileset`` and ``network`` are the settings frozen
    # into its snapshot at start: a config edited or broken later cannot change its rollback.
    # Assigning them (a config reload) sets the current config used by the next transaction.

    @property
    def cfg(self) -> Config:
        f = self._frozen
        return f[1] if f is not None else self._base_cfg

    @cfg.setter
    def cfg(self, value: Config) -> None:
        self._base_cfg = value

    @property
    def fileset(self) -> FileSet:  # the one object every file path below consumes
        return self.cfg.fileset

    @fileset.setter
    def fileset(self, value: FileSet) -> None:
        self._base_cfg = dataclasses.replace(self._base_cfg, fileset=value)

    @property
    def network(self) -> Network:
        f = self._frozen
        return f[2] if f is not None else self._base_network

    @network.setter
    def network(self, value: Network) -> None:
        self._base_network = value

    def _adopt(self, t: Txn | None) -> None:
        """Switch to the frozen settings of ``t`` (or back to the current config when idle)."""
        if t is None:
            self._frozen, self._adopted = None, None
            return
        if self._adopted == t.id:
            return
        base = self._base_cfg
        try:
            doc = self.store.snapshot_extra(t.id, frozen.NAME)
            if doc is None:  # recorded by an older version, or its snapshot is gone
                self._frozen, self._adopted = None, t.id
                return
            cfg = frozen.thaw(doc, base)
        except (OSError, ValueError) as e:
            log.error(
                "txn=%s cannot read its frozen config (%s); using the current config",
                t.id,
                e,
                extra={"journal_fields": {"MESSAGE_ID": MSG_FROZEN_CONFIG, "TXN_ID": t.id}},
            )
            if isinstance(e, OSError):
                return  # maybe transient: look again next time
            self._frozen, self._adopted = None, t.id
            return
        if frozen.same_files(cfg, base):  # keep the one FileSet object every path consumes
            cfg = dataclasses.replace(cfg, fileset=base.fileset)
        network = self._base_network
        if not frozen.same_rules(cfg, base):
            log.warning(
                "txn=%s the config changed since start; its rollback uses the settings frozen "
                "at start (%s)",
                t.id,
                ", ".join(cfg.sources) or "defaults",
                extra={"journal_fields": {"MESSAGE_ID": MSG_FROZEN_CONFIG, "TXN_ID": t.id}},
            )
            try:
                network = self._make_network(cfg)
            except Exception as e:  # never let the stack detection stop a rollback
                log.error("txn=%s cannot set up the frozen [apply] settings: %s", t.id, e)
        self._frozen, self._adopted = (t.id, cfg, network), t.id

    def _make_network(self, cfg: Config) -> Network:
        if self._network_for is not None:
            return self._network_for(cfg)
        from netcfg_txn.net.choose import make_network

        return make_network(cfg, root=self.root)

    # ------------------------------------------------------------------------- plumbing

    def _event(
        self, msg_id: str, message: str, t: Txn | None, level: int | None = None, **fields: Any
    ) -> None:
        """One structured log line per state transition; the journal keeps the fields."""
        jf: dict[str, Any] = {"MESSAGE_ID": msg_id}
        if t is not None:
            jf.update(TXN_ID=t.id, PHASE=t.phase.value)
            if t.reason:
                jf["REASON"] = t.reason.value
        actor = fields.pop("actor", None) or (t.ended_by if t is not None else None)
        if actor is not None:  # who caused it: a user, a peer, the timer, the boot, the probes
            jf["ACTOR"] = actor.describe()
        jf.update({k.upper(): v for k, v in fields.items()})
        txt = f"txn={t.id} {message}" if t is not None else message
        log.log(level or logging.INFO, txt, extra={"journal_fields": jf})
        if self._on_event is not None:
            self._on_event(msg_id, message, t, jf)

    def _persist(
        self, state: txn.State, event: txn.Event
    ) -> tuple[txn.State, tuple[txn.Effect, ...]]:
        new, effects = txn.step(state, event)
        if new is not None and new != state:
            self.store.write_txn(new)
        return new, effects

    def current(self) -> Txn | None:
        """The recorded transaction; a corrupt record counts as an expired open one."""
        try:
            t = self.store.read_txn()
        except Corrupt as e:
            t = self._from_corrupt(str(e))
        self._adopt(t)
        return t

    def _from_corrupt(self, why: str) -> Txn | None:
        snaps = self.store.complete_snapshots()
        if not snaps:
            return None
        sid = snaps[-1]
        log.critical("transaction record is corrupt (%s); rolling back snapshot %s", why, sid)
        now = self.clock.now()
        dead = Deadline("corrupt", 1.0, now.wall_s)  # expired in every boot
        return Txn(TxnId(sid), Phase.OPEN, now, dead, 0.0, SYSTEM, "", errors=(f"corrupt: {why}",))

    def _authorize(self, t: Txn, actor: Actor, token: str | None, *, force: bool = False) -> None:
        """Local root may act without the token (logged); remote callers never can."""
        if token is not None:
            if not hmac.compare_digest(hash_token(token), t.token_sha256):
                raise BadToken(f"wrong token for transaction {t.id}")
            return
        if actor.kind == "local" and actor.uid == 0:
            return
        if actor.kind == "system":
            return
        raise NotPermitted(
            f"transaction {t.id} needs its token",
            hint="pass --token (remote callers: the X-Netcfg-Txn-Token header)",
        )

    def _open(self, txn_id: str | None) -> Txn:
        t = self.current()
        if t is None:
            if txn_id is not None and (h := self.store.find_history(txn_id)) is not None:
                raise NoTransaction(
                    f"transaction {txn_id} already ended: {h.txn.phase.value}"
                    + (f" ({h.txn.reason.value})" if h.txn.reason else ""),
                    details={"id": txn_id, "phase": h.txn.phase.value},
                )
            raise NoTransaction("no transaction is open", hint="start one with 'netcfg-txn start'")
        if txn_id is not None and txn_id != t.id:
            raise NoTransaction(f"transaction {txn_id} is not the open one ({t.id})")
        return t

    def scan(
        self, sink: files.BlobSink | None = None, *, errors: list[Skipped] | None = None
    ) -> Manifest:
        """The managed files now; with ``errors``, tolerant (see ``files.scan``)."""
        m, cache = self._scan_cached(sink, errors)
        self._save_cache(cache)
        return m

    def _scan_cached(
        self, sink: files.BlobSink | None, errors: list[Skipped] | None = None
    ) -> tuple[Manifest, files.StatCache]:
        cache = files.StatCache.load(self.store.statcache_path)
        m = files.scan(
            self.root, self.fileset, self.cfg.limits, sink, cache, self.store.has_blob, errors
        )
        return m, cache

    def _save_cache(self, cache: files.StatCache) -> None:
        try:
            cache.save(self.store.statcache_path)
        except OSError as e:  # a hint only: never fail an operation over it
            log.debug("cannot save the stat cache: %s", e)

    def baseline(self) -> tuple[Manifest | None, str | None]:
        """The baseline of the last commit/rollback and, if it was unreadable, why. A corrupt
        baseline only costs the pending-edit check: it counts as missing, said loudly."""
        try:
            return self.store.read_baseline(), None
        except Corrupt as e:
            why = (
                f"the baseline ({self.store.baseline_path}) is corrupt and was ignored ({e}); "
                "edits made outside a transaction cannot be detected until the next commit "
                "or rollback writes a new one"
            )
            log.error("%s", why)
            return None, why

    # ------------------------------------------------------------------------- operations

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
                pending = plan.changes(baseline, manifest)
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
            id=_new_id(now.wall_s),
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
            deadline=_rfc3339(t.deadline.wall_s),
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
        t = self._open(txn_id)
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
            deadline=_rfc3339(new.deadline.wall_s),
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
            t = self._open(txn_id)
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
            t = self._open(txn_id)
        except NoTransaction:
            failed = self._failed_last(txn_id) if force else None
            if failed is None:
                raise
            if not (actor.kind == "local" and actor.uid == 0):
                raise NotPermitted("only local root may retry a failed rollback") from None
            return self._retry(failed, actor)
        if force:
            if not (actor.kind == "local" and actor.uid == 0):
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
            id=_new_id(now.wall_s),
            phase=Phase.OPEN,
            created=now,
            deadline=Deadline.after(now, old.timeout_s),
            timeout_s=old.timeout_s,
            actor=actor,
            token_sha256=hash_token(secrets.token_urlsafe(32)),
            label=f"retry of the failed rollback of {old.id}",
            file_count=old.file_count,
            bounce=old.bounce,
            stage="planned" if old.bounce is not None else "",
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

    # -------------------------------------------------------------------------- rollback

    def _restore(self, t: Txn, *, live: bool) -> Txn:
        """Restore the snapshot; continue past failures; resumable at every stage."""
        assert t.reason is not None
        self._event(MSG_ROLLBACK_BEGUN, f"rolling back ({t.reason.value})", t)
        results: list[StepResult] = list(t.results)
        snap = self.store.snapshot_manifest(t.id)
        writer = self.store.blob_writer()
        now, unreadable = self._scan_tolerant(writer)
        writer.commit()
        discarded_doc = self.store.snapshot_extra(t.id, "discarded")
        if discarded_doc is None:  # archive before any file is touched
            self.store.write_snapshot_extra(t.id, "discarded", manifest_to_json(now))
        restore_plan = plan.plan_restore(snap, now)
        if t.bounce is None:
            changes = [self._file_change(c) for c in plan.changes(snap, now)]
            bounce = dict(self.network.plan(changes, self._unchanged(snap, now)))
            bounce["unreadable"] = [f"{u.path}: {u.why}" for u in unreadable]
            if not live:
                bounce["files_only"] = True
            # A file we could not archive is still restored (rewritten or deleted), but its
            # loss is a per-file error: the discarded config is incomplete. Recorded once,
            # with the plan, so a resumed rollback does not repeat it.
            results += self._archive_errors(snap, now, unreadable)
            t = dataclasses.replace(t, bounce=bounce, stage="planned", results=tuple(results))
            self.store.write_txn(t)
        elif not live and not t.bounce.get("files_only"):  # a live rollback cut by a reboot
            t = dataclasses.replace(t, bounce={**t.bounce, "files_only": True})
            self.store.write_txn(t)
        assert t.bounce is not None
        if live and t.stage == "planned":
            results += self.network.before_restore(t.bounce)
            t = dataclasses.replace(t, stage="down", results=tuple(results))
            self.store.write_txn(t)
        stale = files.sweep_temps(self.root, [*snap.by_path(), *now.by_path()])
        if stale:
            log.info("txn=%s removed temp files of an interrupted restore: %s", t.id, stale)
        results += files.restore(
            self.root, restore_plan.write, restore_plan.delete, self.store.open_blob
        )
        t = dataclasses.replace(t, stage="files", results=tuple(results))
        self.store.write_txn(t)
        if not live:
            results += self._regenerate_at_boot(restore_plan)
        if live:
            assert t.bounce is not None
            links = self.store.snapshot_extra(t.id, "links")
            results += self.network.after_restore(t.bounce, links)
        reason = t.reason.value if t.reason else "?"
        errors = tuple(f"{r.action} {r.target}: {r.error}" for r in results if not r.ok)
        new, effects = self._persist(t, txn.RollbackDone(tuple(results), errors, time.time()))
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
        self._run_effects(new, effects)
        return new

    def _regenerate_at_boot(self, rp: plan.RestorePlan) -> list[StepResult]:
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

    @staticmethod
    def _archive_errors(
        snap: Manifest, now: Manifest, unreadable: list[Skipped]
    ) -> list[StepResult]:
        out = [StepResult("archive", str(u.path), False, u.why) for u in unreadable]
        had = snap.by_path()
        out += [  # a FIFO, socket or device where the snapshot had a file: nothing to archive
            StepResult("archive", str(s.path), False, f"not archived: {s.why.split(':')[0]}")
            for s in now.skipped
            if s.path in had
        ]
        return out

    def _file_change(self, c: plan.Change) -> FileChange:
        old = self.store.blob(c.old.sha256) if c.old is not None and c.old.kind == "file" else None
        new = None
        if c.new is not None and c.new.kind == "file" and c.new.unarchived is None:
            new = files.read_current(self.root, c.path, self.cfg.limits.max_file_bytes)
        return FileChange(c.path, old, new)

    def _unchanged(self, snap: Manifest, now: Manifest) -> UnchangedFiles:
        current = now.by_path()
        same = [f for f in snap.files if f.kind == "file" and current.get(f.path) == f]

        def files_for(wanted: Callable[[PurePosixPath], bool]) -> Iterator[FileChange]:
            for f in same:
                if wanted(f.path):
                    data = self.store.blob(f.sha256)
                    yield FileChange(f.path, data, data)

        return files_for

    def _scan_tolerant(self, sink: files.BlobSink | None) -> tuple[Manifest, list[Skipped]]:
        """The current files for a rollback: a file we cannot read must not stop the restore."""
        bad: list[Skipped] = []
        now = files.scan(self.root, self.fileset, self.cfg.limits, sink=sink, errors=bad)
        for b in bad:
            log.error("cannot archive %s (%s)", b.path, b.why)
        return now, bad

    def _finalize(self, t: Txn) -> None:
        """History, baseline, rejected list; then drop the snapshot and the record. Idempotent."""
        if self.store.find_history(t.id) is None:
            snap = self.store.snapshot_manifest(t.id)
            if t.phase is Phase.ROLLED_BACK:
                now = snap  # restored exactly (every step succeeded): no need to rescan
            elif t.phase is Phase.COMMITTED:
                # The kept set becomes the baseline: keep its bytes, so 'diff' can show later
                # edits outside a transaction against it.
                writer = self.store.blob_writer()
                try:
                    now, _ = self._scan_tolerant(writer)
                    writer.commit()
                except BaseException:
                    writer.abort()
                    raise
            else:
                now, _ = self._scan_tolerant(None)
            doc: dict[str, Any] = {"snapshot": manifest_to_json(snap)}
            discarded_doc = self.store.snapshot_extra(t.id, "discarded")
            discarded = manifest_from_json(discarded_doc) if discarded_doc else now
            if t.phase is Phase.COMMITTED:
                doc["discarded"] = manifest_to_json(snap)  # the old config is what commit discards
                doc["changed"] = [str(c.path) for c in plan.changes(snap, now)]
            else:
                doc["discarded"] = manifest_to_json(discarded)
                doc["changed"] = [str(c.path) for c in plan.changes(snap, discarded)]
                applied = self.store.snapshot_extra(t.id, "applied")
                if applied is not None:
                    later = plan.changes(manifest_from_json(applied), discarded)
                    doc["edited_after_apply"] = [str(c.path) for c in later]
                    if later:  # the snapshot still won; say what was overwritten
                        log.warning(
                            "txn=%s files edited outside the tool after apply (archived): %s",
                            t.id,
                            ", ".join(doc["edited_after_apply"]),
                        )
                # Only a set that differed from the snapshot was rejected: an unchanged set
                # timing out is the snapshot itself, and refusing it later would be nonsense.
                if doc["changed"] and t.reason in (Reason.TIMEOUT, Reason.HEALTH, Reason.BOOT):
                    info = {"txn": t.id, "reason": t.reason.value, "wall_s": time.time()}
                    self.store.add_rejected(discarded.fingerprint(), info)
            if t.phase is Phase.FAILED:  # kept for a retry (rollback --force)
                links = self.store.snapshot_extra(t.id, "links")
                if links is not None:
                    doc["links"] = links
            b = t.bounce or {}
            if not b.get("files_only"):  # at boot nothing is bounced: networking starts after us
                doc["bounced"] = sorted(set(b.get("down", [])) | set(b.get("up", [])))
            else:
                doc["bounced"] = []
            self.store.write_baseline(now)
            self.store.add_history(t, doc, keep=self.cfg.history)
            if self.root == Path("/"):
                from netcfg_txn.host import alarm

                alarm.update(t.id, t.phase is Phase.FAILED, "; ".join(t.errors))
        self.store.drop_snapshot(t.id)
        self._persist(t, txn.Finished())
        self.store.clear_txn()
        self._adopt(None)
        self.backstop.disarm(t.id)
        self.store.gc_blobs()

    # -------------------------------------------------------------------------- recovery

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
        new, effects = self._persist(t, txn.DeadlinePassed())
        assert new is not None
        new = dataclasses.replace(new, ended_by=actor)
        self.store.write_txn(new)
        done = self._run_effects(new, effects)
        return Recovery((f"rolled back {t.id} (timeout): {done.phase.value}",), None)

    # ----------------------------------------------------------------------------- views

    def changed_paths(self, t: Txn) -> list[plan.Change]:
        snap = self.store.snapshot_manifest(t.id)
        return list(plan.changes(snap, self.scan(errors=[])))

    def diff(self) -> list[dict[str, Any]]:
        """Snapshot -> now with a transaction open; else the pending edits: baseline -> now."""
        t = self.current()
        if t is not None:
            changes = self.changed_paths(t)
        else:
            base, problem = self.baseline()
            if base is None:
                raise NoTransaction(
                    "no transaction is open and there is no baseline to compare with"
                    + (f" ({problem})" if problem else ""),
                    hint="the first commit or rollback records one",
                )
            changes = list(plan.changes(base, self.scan(errors=[])))
        out = []
        for c in changes:
            old = None
            if c.old is not None and c.old.kind == "file" and self.store.has_blob(c.old.sha256):
                old = self.store.blob(c.old.sha256)
            new = None
            if c.new is not None and c.new.kind == "file":
                new = files.read_current(self.root, c.path, self.cfg.limits.max_file_bytes)
            entry: dict[str, Any] = {"path": str(c.path), "change": c.kind}
            if c.old is not None and c.old.kind == "file" and old is None:
                entry["detail"] = "its earlier content is not kept"
            elif c.new is not None and c.new.unarchived is not None:
                entry["detail"] = f"not shown: {c.new.unarchived.removeprefix('not archived: ')}"
            elif c.kind == "metadata" and c.old and c.new:
                entry["detail"] = plan.describe_metadata(c.old, c.new)
            elif (c.old and c.old.kind == "symlink") or (c.new and c.new.kind == "symlink"):
                before = c.old.target if c.old else None
                after = c.new.target if c.new else None
                entry["detail"] = f"symlink {before!r} -> {after!r}"
            else:
                entry["diff"] = plan.unified(c.path, old, new)
            out.append(entry)
        return out

    def diff_base(self) -> str:
        """What ``diff`` compares with: the open transaction's snapshot, else the baseline."""
        return "snapshot" if self.current() is not None else "baseline"

    def preview(self) -> dict[str, Any]:
        """What a rollback would do right now (files and interfaces), without doing anything."""
        t = self._open(None)
        snap = self.store.snapshot_manifest(t.id)
        now, unreadable = self._scan_tolerant(None)
        rp = plan.plan_restore(snap, now)
        current = now.by_path()
        changes = [self._file_change(c) for c in plan.changes(snap, now)]
        bounce = dict(self.network.plan(changes, self._unchanged(snap, now)))
        return {
            "transaction": t.id,
            "backend": self.network.name,
            "files": [
                {"path": str(f.path), "action": "rewrite" if f.path in current else "recreate"}
                for f in rp.write
            ]
            + [{"path": str(p), "action": "delete"} for p in rp.delete],
            "untouched": len(rp.untouched),
            "interfaces": {k: bounce.get(k, []) for k in ("down", "delete", "up")},
            "unattributed": bounce.get("unattributed", []),
            "notes": bounce.get("notes", []),
            "unreadable": [f"{u.path}: {u.why}" for u in unreadable],
        }

    def status(self, *, edited: list[str] | None = None) -> dict[str, Any]:
        t = self.current()
        now = self.clock.now()
        doc: dict[str, Any] = {"state": "idle" if t is None else t.phase.value}
        if t is not None:
            doc["transaction"] = public_txn(t, now.boot_id, now.boottime_s)
            if edited is None and self.store.complete_snapshots():
                try:
                    edited = [str(c.path) for c in self.changed_paths(t)]
                except (FileNotFoundError, Corrupt):
                    edited = None
            doc["edited"] = edited
        else:
            base, problem = self.baseline()
            if base is not None:
                cur = self.scan(errors=[])
                doc["pending"] = [str(c.path) for c in plan.changes(base, cur)]
            else:
                doc["pending"] = []
            if problem is not None:
                doc["warnings"] = [problem]
        last = next(iter(self.store.history(1)), None)
        if last is not None:
            lt = last.txn
            doc["last"] = {
                "id": lt.id,
                "outcome": lt.phase.value,
                "reason": lt.reason.value if lt.reason else None,
                "ended_wall_s": lt.ended_wall_s,
                "errors": list(lt.errors),
                "bounced": last.doc.get("bounced", []),
            }
            doc["last_error"] = lt.errors[0] if lt.errors else None
        return doc

    def changed_by(self, txn_id: str) -> dict[str, list[str]]:
        """What a finished transaction kept or overwrote: every managed file that differed from
        the snapshot, whoever edited it, and those edited after the last extend."""
        h = self.store.find_history(txn_id)
        if h is None:
            return {}
        out = {"changed": list(h.doc.get("changed", []))}
        if h.doc.get("edited_after_apply"):
            out["edited_after_apply"] = list(h.doc["edited_after_apply"])
        return out

    def history(self, limit: int) -> list[dict[str, Any]]:
        out = []
        for e in self.store.history(limit):
            d = public_txn(e.txn, None, None)
            d["seq"] = e.seq
            d["changed"] = e.doc.get("changed", [])
            d["bounced"] = e.doc.get("bounced", [])
            discarded = e.doc.get("discarded", {}).get("files", [])
            d["archived"] = sum(1 for f in discarded if not f.get("unarchived"))
            lost = [f"{f['path']}: {f['unarchived']}" for f in discarded if f.get("unarchived")]
            if lost:
                d["not_archived"] = lost
            if e.doc.get("edited_after_apply"):
                d["edited_after_apply"] = e.doc["edited_after_apply"]
            out.append(d)
        return out


def public_txn(t: Txn, boot_id: str | None, boottime_s: float | None) -> dict[str, Any]:
    """The transaction as callers see it: never the token hash."""
    d: dict[str, Any] = {
        "id": t.id,
        "phase": t.phase.value,
        "label": t.label,
        "created_wall_s": t.created.wall_s,
        "deadline_wall_s": t.deadline.wall_s,
        "timeout_s": t.timeout_s,
        "file_count": t.file_count,
        "actor": t.actor.describe(),
        "reason": t.reason.value if t.reason else None,
        "ended_by": t.ended_by.describe() if t.ended_by else None,
        "ended_wall_s": t.ended_wall_s,
        "errors": list(t.errors),
        "results": [dataclasses.asdict(r) for r in t.results],
    }
    if t.policy is not None:
        d["policy"] = dict(t.policy)
    if boot_id is not None and boottime_s is not None and t.phase is Phase.OPEN:
        if t.deadline.boot_id == boot_id:
            d["remaining_s"] = max(0.0, t.deadline.boottime_s - boottime_s)
        else:
            d["remaining_s"] = 0.0
    if t.bounce and not t.bounce.get("files_only"):
        d["interfaces"] = {
            k: list(v) for k, v in t.bounce.items() if k in ("down", "up", "delete") and v
        }
    return d
