# SPDX-License-Identifier: GPL-3.0-or-later
"""The daemon's service: the API operations (``api.Service``) over the engine, the probes of the
open transaction, and a configuration reload.

Every engine call runs in a worker thread under one asyncio lock, so the timer and the watchdog
ping never starve while a snapshot or a rollback works. The deadline is checked before any request
that takes the lock: a rollback that is due wins a tie with a late confirm.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import PurePosixPath
from typing import Any, TypeVar

from netcfg_txn import __version__
from netcfg_txn.api import CAPABILITIES
from netcfg_txn.confirm.probes import ProbeSupervisor, TargetRefused, allowed_address, run_round
from netcfg_txn.core import config as configmod
from netcfg_txn.core.errors import (
    Busy,
    ConfigError,
    Failed,
    NetcfgTxnError,
    NotFound,
    NotPermitted,
)
from netcfg_txn.core.model import Actor, Phase, Reason, Txn
from netcfg_txn.core.policy import ConfirmPolicy, Policy, parse_confirm, probe_host
from netcfg_txn.daemon.deadline import DeadlineTimer
from netcfg_txn.engine import MSG_RELOAD_REFUSED, Engine, public_txn
from netcfg_txn.host import memory, sd
from netcfg_txn.remote.listen import RemoteListener
from netcfg_txn.remote.peers import PeerCache
from netcfg_txn.store.fdreserve import FdReserve
from netcfg_txn.store.watch import Watcher

log = logging.getLogger("netcfg_txn.daemon")
T = TypeVar("T")
PROBES = Actor(kind="system", command="probe")  # the ACTOR of what the probes decide


class Daemon:
    """The asyncio shell around the engine; implements ``api.Service``."""

    def __init__(
        self,
        engine: Engine,
        notifier: sd.Notifier,
        *,
        reload: Callable[[], configmod.Config] | None = None,
    ) -> None:
        self.engine = engine
        self.notifier = notifier
        self.lock = asyncio.Lock()
        self._reload = reload
        self._gen = 0  # bumped by the watcher and by every operation
        self._status_cache: tuple[int, dict[str, Any]] | None = None
        self.stopping = asyncio.Event()
        self.peers: PeerCache | None = None  # set when the remote API is enabled
        self.supervisor: ProbeSupervisor | None = None
        self.config_fallback: str | None = None  # set while running on a fallback config
        self.fd_reserve = FdReserve()
        self.listener: RemoteListener | None = None
        self.timer = DeadlineTimer(
            engine, self.lock, self.stopping, room=self._rollback_room, after=self._rearmed
        )
        # True while file watching covers every managed directory; else status always rescans.
        self.watching: Callable[[], bool] = lambda: False
        # Paused around the engine's own writes to the managed files (set when watching).
        self.watcher: Watcher | None = None
        self._views: dict[str, asyncio.Future[Any]] = {}

    # ---------------------------------------------------------------------- serialization

    async def _locked(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            await asyncio.wait_for(self.lock.acquire(), self.engine.cfg.lock_timeout_s)
        except TimeoutError:
            raise Busy(
                f"the state lock was busy for {self.engine.cfg.lock_timeout_s:g}s "
                "(a snapshot or rollback is running)",
                hint="retry in a moment",
            ) from None
        # aiohttp 3.8 cancels the handler of a client that went away, and the engine call would
        # go on in its thread without the lock; shielded, the lock is held until it is done.
        return await asyncio.shield(self._holding_lock(fn, *args, **kwargs))

    async def _holding_lock(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if self.watcher is not None:
            self.watcher.pause()
        try:
            await asyncio.to_thread(self.engine.expire)  # rollback wins ties
            return await asyncio.to_thread(memory.then_give_back, fn, *args, **kwargs)
        except OSError as e:  # a full or failing state disk: name it, not "internal error"
            log.error("operation failed on the state directory: %s", e)
            where = f" ({e.filename})" if e.filename else ""
            raise Failed(
                f"state directory {self.engine.store.dir}: {e.strerror or e}{where}",
                hint="free space on it or fix the disk, then retry",
            ) from None
        finally:
            if self.watcher is not None:
                self.watcher.resume()
            self._gen += 1
            self.lock.release()
            self.rearm()

    # ------------------------------------------------------------------------------ timer

    def rearm(self) -> None:
        """Point the dead-man timer at the recorded deadline (never raises)."""
        self.timer.rearm()

    @contextlib.contextmanager
    def _rollback_room(self) -> Iterator[None]:
        """While the deadline's rollback runs: the fd reserve is free for its first opens, no
        remote connection is accepted that could take it meanwhile, the watcher skips our writes."""
        if self.listener is not None:
            self.listener.pause()
        self.fd_reserve.release()
        if self.watcher is not None:
            self.watcher.pause()
        try:
            yield
        finally:
            self.fd_reserve.take()
            if self.listener is not None:
                self.listener.resume()
            if self.watcher is not None:
                self.watcher.resume()
            self._gen += 1

    def _rearmed(self, t: Txn | None) -> None:
        self._notify_status(t)
        self._sync_probes(t)

    def _notify_status(self, t: Txn | None) -> None:
        if t is None:
            self.notifier.notify("STATUS=idle")
            return
        left = t.deadline.remaining_s(self.engine.clock.now())
        self.notifier.notify(f"STATUS={t.phase.value} {t.id}, {left:.0f}s left")

    # ----------------------------------------------------------------------------- probes

    def _confirm_policy(self, t: Txn) -> ConfirmPolicy | None:
        if not t.policy:
            return None
        try:
            return parse_confirm(t.policy, self.engine.cfg.probes)
        except NetcfgTxnError as e:
            log.error("txn=%s stored confirm policy is invalid, probes not run: %s", t.id, e)
            return None

    def _sync_probes(self, t: Txn | None) -> None:
        """One supervisor for the open transaction's probes; none once it has ended."""
        open_id = t.id if t is not None and t.phase is Phase.OPEN else None
        if self.supervisor is not None and self.supervisor.name != open_id:
            self.supervisor.stop()
            self.supervisor = None
        if self.supervisor is None and t is not None and open_id is not None:
            confirm = self._confirm_policy(t)
            if confirm is not None and confirm.supervised:
                tid = t.id
                # A remote peer's probes connect only to addresses [probes] allow permits,
                # checked again at every round (a name may resolve elsewhere by then).
                targets = self.engine.cfg.probe_targets if t.actor.kind == "remote" else None
                self.supervisor = ProbeSupervisor(
                    confirm,
                    lambda: self._probes_passed(tid),
                    lambda why: self._probes_failed(tid, why),
                    run=functools.partial(run_round, targets=targets),
                    name=tid,
                )
                self.supervisor.start()

    async def _check_targets(self, confirm: ConfirmPolicy) -> None:
        """A remote peer's probes may only reach what ``[probes] allow`` permits."""
        for probe in confirm.probes:
            if (host := probe_host(probe)) is None:
                continue
            try:
                await allowed_address(host, self.engine.cfg.probe_targets)
            except TargetRefused as e:
                raise NotPermitted(
                    f"probe {probe.spec!r}: {e}",
                    hint="the host's [probes] allow lists the networks remote probes may reach",
                ) from None

    async def _probes_passed(self, tid: str) -> None:
        log.info("txn=%s probes passed: committing", tid)
        # Passing probes are the evidence a rejected set lacked: they may keep it (logged).
        await self._locked(self.engine.commit, PROBES, txn_id=tid, token=None, force=True)

    async def _probes_failed(self, tid: str, why: str) -> None:
        log.warning("txn=%s %s: rolling back (reason health)", tid, why)
        await self._locked(
            self.engine.rollback, PROBES, txn_id=tid, token=None, force=False, reason=Reason.HEALTH
        )

    def touched(self, path: PurePosixPath) -> None:
        self._gen += 1
        log.debug("managed path changed: %s", path)

    # ---------------------------------------------------------------------------- service

    def capabilities(self) -> list[str]:
        extra = ["probes", "confirm-policies"] + (["remote-tls"] if self.peers else [])
        return list(CAPABILITIES) + extra

    async def _require_valid_config(self) -> None:
        """While the daemon runs on a fallback (it started with a config that does not parse), a
        new transaction is refused: its file set and rollback settings would be a guess. Timer,
        rollback, status and commit keep working. A failed reload is different: the old config
        stays in force, as a reload promises."""
        if self._reload is None or self.config_fallback is None:
            return
        try:
            cfg = await asyncio.to_thread(self._reload)
        except ConfigError as e:
            raise ConfigError(
                f"the configuration is invalid: {e.message}; no new transaction until it is fixed",
                hint="fix it, check it with 'netcfg-txn config check', then "
                "'systemctl reload netcfg-txnd'",
            ) from None
        async with self.lock:  # fixed since start-up: adopt it, as a reload would
            self._adopt(cfg)

    def _adopt(self, cfg: configmod.Config) -> None:
        self.engine.adopt(cfg)
        self.config_fallback = None
        log.info("configuration loaded from %s", ", ".join(cfg.sources) or "defaults")

    async def start(self, actor: Actor, body: Mapping[str, Any]) -> dict[str, Any]:
        await self._require_valid_config()
        confirm = parse_confirm(body, self.engine.cfg.probes)  # BadRequest before any snapshot
        if actor.kind == "remote":
            await self._check_targets(confirm)
        policy = None
        if confirm.probes or confirm.policy is not Policy.MANUAL:
            policy = confirm.to_json()
        warnings: list[str] = []
        t, token = await self._locked(
            self.engine.start,
            actor,
            timeout_s=body.get("timeout_s"),
            allow_pending=bool(body.get("allow_pending", False)),
            label=str(body.get("label", "")),
            policy=policy,
            warnings=warnings,
        )
        return {"transaction": self._public(t), "token": token, "warnings": warnings}

    async def extend(
        self, actor: Actor, txn_id: str | None, token: str | None, body: Mapping[str, Any]
    ) -> dict[str, Any]:
        t = await self._locked(
            self.engine.extend,
            actor,
            timeout_s=float(body["timeout_s"]),
            txn_id=txn_id,
            token=token,
            force=bool(body.get("force", False)),
        )
        return {"transaction": self._public(t)}

    async def confirm(
        self, actor: Actor, txn_id: str | None, token: str | None, force: bool = False
    ) -> dict[str, Any]:
        cur = self.engine.current()
        confirm = self._confirm_policy(cur) if cur is not None else None
        if actor.kind == "remote" and confirm is not None and not confirm.policy.manual_confirm:
            raise NotPermitted(
                f"transaction {cur.id if cur else '?'} is confirmed by its probes only",
                hint="start with --policy probes-or-manual to allow both",
            )
        t, already = await self._locked(
            self.engine.commit, actor, txn_id=txn_id, token=token, force=force
        )
        return {
            "transaction": self._public(t),
            "already_committed": already,
            **self.engine.changed_by(t.id),
        }

    async def rollback(
        self, actor: Actor, txn_id: str | None, token: str | None, body: Mapping[str, Any]
    ) -> dict[str, Any]:
        t = await self._locked(
            self.engine.rollback,
            actor,
            txn_id=txn_id,
            token=token,
            force=bool(body.get("force", False)),
            reason=Reason.MANUAL,
        )
        changed = self.engine.changed_by(t.id)
        if t.errors:
            raise Failed(
                f"rollback of {t.id} finished with {len(t.errors)} failure(s): "
                + "; ".join(t.errors),
                details={"transaction": self._public(t), **changed},
            )
        return {"transaction": self._public(t), **changed}

    async def status(self) -> dict[str, Any]:
        cached = self._status_cache
        t = self.engine.current()
        if (
            cached is not None
            and cached[0] == self._gen
            and not self.lock.locked()
            and self.watching()
        ):
            doc = dict(cached[1])
        elif self.lock.locked():
            # A snapshot or rollback is running: answer from the record, without rescanning.
            doc = {"state": t.phase.value if t else "idle", "busy": True}
        else:
            gen = self._gen
            doc = await asyncio.to_thread(self.engine.status)
            self._status_cache = (gen, doc)
            doc = dict(doc)
        if t is not None:
            doc["transaction"] = self._public(t)
        if self.supervisor is not None:
            doc["probes"] = self.supervisor.status()
        doc["daemon"] = {"pid": os.getpid(), "version": __version__}
        return doc

    async def get(self, txn_id: str) -> dict[str, Any]:
        t = self.engine.current()
        if t is not None and txn_id in ("current", t.id):
            return {"transaction": self._public(t)}
        for h in await asyncio.to_thread(self.engine.history, 1000):
            if h["id"] == txn_id:
                return {"transaction": h}
        raise NotFound(f"no transaction {txn_id} (neither open nor in history)")

    async def history(self, limit: int) -> dict[str, Any]:
        return {"history": await asyncio.to_thread(self.engine.history, limit)}

    async def preview(self) -> dict[str, Any]:
        return dict(await self._coalesced("preview", self.engine.preview))

    async def diff(self) -> dict[str, Any]:
        files = await self._coalesced("diff", self.engine.diff)
        return {"files": files, "against": self.engine.diff_base()}

    async def _coalesced(self, name: str, fn: Callable[[], T]) -> T:
        """Read-only views: requests that arrive while one is computed share its result, so a
        burst of N diffs holds the state lock once, not N times in a row ahead of a commit."""
        fut = self._views.get(name)
        if fut is None or fut.done():
            fut = asyncio.ensure_future(self._locked(fn))
            self._views[name] = fut
        result: T = await asyncio.shield(fut)
        return result

    def _public(self, t: Txn) -> dict[str, Any]:
        now = self.engine.clock.now()
        return public_txn(t, now.boot_id, now.boottime_s)

    # ----------------------------------------------------------------------------- signals

    async def reload_config(self) -> None:
        self.notifier.notify("RELOADING=1")
        try:
            if self.peers is not None:  # always, even with a transaction open (revocation)
                self.peers.reload()
            if (open_txn := self.engine.current()) is not None:
                log.error(
                    "configuration reload refused: transaction %s is open; old config kept",
                    open_txn.id,
                    extra={"journal_fields": {"MESSAGE_ID": MSG_RELOAD_REFUSED}},
                )
                return
            if self._reload is None:
                return
            try:
                cfg = await asyncio.to_thread(self._reload)
            except NetcfgTxnError as e:
                log.error(
                    "configuration reload refused, old config kept: %s",
                    e,
                    extra={"journal_fields": {"MESSAGE_ID": MSG_RELOAD_REFUSED, "CONFIG_ERROR": e}},
                )
                return
            async with self.lock:
                self._adopt(cfg)
        finally:
            self.notifier.notify("READY=1")
