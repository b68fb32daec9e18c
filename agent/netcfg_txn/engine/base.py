# SPDX-License-Identifier: GPL-3.0-or-later
"""The engine's state and plumbing: the settings in force (the current config, or those frozen
into the open transaction), persisting the state machine's steps, the structured log line of
each transition, authorization, and scanning the managed files.

The engine is synchronous and single-threaded by contract: the daemon serializes calls (asyncio
lock + a worker thread); ``boot-rollback`` calls it directly with no daemon.
"""

from __future__ import annotations

import dataclasses
import hmac
import logging
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from netcfg_txn.core import diff, frozen, txn
from netcfg_txn.core.clock import Clock
from netcfg_txn.core.config import Config
from netcfg_txn.core.errors import BadToken, NotPermitted, NoTransaction
from netcfg_txn.core.fileset import FileSet
from netcfg_txn.core.model import SYSTEM, Actor, Deadline, Manifest, Phase, Skipped, Txn, TxnId
from netcfg_txn.core.rollback import NetworkPlan
from netcfg_txn.core.tokens import hash_token
from netcfg_txn.engine.messages import MSG_FROZEN_CONFIG
from netcfg_txn.net.network import FileChange, Network
from netcfg_txn.store import files
from netcfg_txn.store.state import Corrupt, Store

log = logging.getLogger("netcfg_txn.engine")

OnEvent = Callable[[str, str, Txn | None, Mapping[str, Any]], None]


class Backstop:
    """Arms the independent timer that rolls back if the daemon cannot (no-op here; see
    backstop.py). Implementations never raise: arming must never block an operation."""

    def arm(self, t: Txn, grace_s: float) -> bool:
        return False

    def disarm(self, txn_id: str) -> None:
        pass

    def before_commit(self, t: Txn) -> None:
        """Just before the commit point: nothing may revert a kept change."""


def new_txn_id(now_wall: float) -> TxnId:
    return TxnId(time.strftime("%Y%m%dT%H%M%S", time.gmtime(now_wall)) + "-" + secrets.token_hex(3))


def is_local_root(actor: Actor) -> bool:
    return actor.kind == "local" and actor.uid == 0


class EngineBase:
    def __init__(
        self,
        root: Path,
        cfg: Config,
        clock: Clock,
        network: Network,
        *,
        on_event: OnEvent | None = None,
        network_for: Callable[[Config], Network] | None = None,
        backstop: Backstop | None = None,
    ) -> None:
        self.root = root
        self._base_cfg = cfg
        self._base_network = network
        self._network_for = network_for
        # The open transaction's frozen settings: (txn id, config, network), or None.
        self._frozen: tuple[str, Config, Network] | None = None
        self._frozen_for: str | None = None  # the transaction id _frozen was looked up for
        self.store = Store(cfg.state_dir)
        self.clock = clock
        self._on_event = on_event
        self.backstop = backstop or Backstop()

    # While a transaction is open, ``cfg``, ``fileset`` and ``network`` are the settings frozen
    # into its snapshot at start: a config edited or broken later cannot change its rollback.
    # ``adopt`` (a config reload) sets the current config used by the next transaction.

    @property
    def cfg(self) -> Config:
        f = self._frozen
        return f[1] if f is not None else self._base_cfg

    @property
    def fileset(self) -> FileSet:  # the one object every file path below consumes
        return self.cfg.fileset

    @property
    def network(self) -> Network:
        f = self._frozen
        return f[2] if f is not None else self._base_network

    def adopt(self, cfg: Config, network: Network | None = None) -> None:
        """Make ``cfg`` the current config (a reload), with its network (made from it unless
        given). An open transaction keeps the settings frozen at its start."""
        self._base_network = network if network is not None else self._make_network(cfg)
        self._base_cfg = cfg

    def _use_settings_of(self, t: Txn | None) -> None:
        """Switch to the frozen settings of ``t`` (or back to the current config when idle)."""
        if t is None:
            self._frozen, self._frozen_for = None, None
            return
        if self._frozen_for == t.id:
            return
        base = self._base_cfg
        try:
            doc = self.store.snapshot_extra(t.id, frozen.NAME)
            if doc is None:  # recorded by an older version, or its snapshot is gone
                self._frozen, self._frozen_for = None, t.id
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
            self._frozen, self._frozen_for = None, t.id
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
        self._frozen, self._frozen_for = (t.id, cfg, network), t.id

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
        self._use_settings_of(t)
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

    def _authorize(self, t: Txn, actor: Actor, token: str | None) -> None:
        """Local root may act without the token (logged); remote callers never can."""
        if token is not None:
            if not hmac.compare_digest(hash_token(token), t.token_sha256):
                raise BadToken(f"wrong token for transaction {t.id}")
            return
        if is_local_root(actor) or actor.kind == "system":
            return
        raise NotPermitted(
            f"transaction {t.id} needs its token",
            hint="pass --token (remote callers: the X-Netcfg-Txn-Token header)",
        )

    def _require_open(self, txn_id: str | None) -> Txn:
        """The open (or unfinished) transaction, ``txn_id`` if given; else NoTransaction."""
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

    def _scan_tolerant(self, sink: files.BlobSink | None) -> tuple[Manifest, list[Skipped]]:
        """The current files for a rollback: a file we cannot read must not stop the restore."""
        bad: list[Skipped] = []
        now = files.scan(self.root, self.fileset, self.cfg.limits, sink=sink, errors=bad)
        for b in bad:
            log.error("cannot archive %s (%s)", b.path, b.why)
        return now, bad

    def _plan_network(
        self, snap: Manifest, now: Manifest, kept: Mapping[str, bytes] | None = None
    ) -> NetworkPlan:
        """What the network side of a rollback from ``now`` back to ``snap`` would do.
        ``kept``: current files' bytes by digest, already read by the archive (``KeepNew``)."""
        changes = [self._file_change(c, kept or {}) for c in diff.changes(snap, now)]
        current = now.by_path()
        same = [f for f in snap.files if f.kind == "file" and current.get(f.path) == f]

        def unchanged(wanted: Callable[[PurePosixPath], bool]) -> Iterator[FileChange]:
            for f in same:
                if wanted(f.path):
                    data = self.store.blob(f.sha256)
                    yield FileChange(f.path, data, data)

        return self.network.plan(changes, unchanged)

    def _file_change(self, c: diff.Change, kept: Mapping[str, bytes]) -> FileChange:
        old = self.store.blob(c.old.sha256) if c.old is not None and c.old.kind == "file" else None
        new = None
        if c.new is not None and c.new.kind == "file" and c.new.unarchived is None:
            new = kept.get(c.new.sha256)
            if new is None:
                new = files.read_current(self.root, c.path, self.cfg.limits.max_file_bytes)
        return FileChange(c.path, old, new)


class KeepNew:
    """The archive's blob sink, keeping the bytes of the small files whose content the snapshot
    does not have: the interface plan needs exactly those, and reading each file again costs
    an open per file. Bigger files are spooled by the sink and read again (memory stays
    bounded by the changed small files, which the plan holds at once anyway)."""

    def __init__(self, sink: files.BlobSink, known: frozenset[str]) -> None:
        self._sink = sink
        self._known = known
        self.kept: dict[str, bytes] = {}

    def __call__(self, digest: str, data: bytes) -> None:
        self._sink(digest, data)
        if digest not in self._known:
            self.kept[digest] = data

    def spool(self) -> files.BlobSpool:
        return self._sink.spool()

    def has(self, digest: str) -> bool:
        return self._sink.has(digest)
