# SPDX-License-Identifier: GPL-3.0-or-later
"""netcfg-txnd: one asyncio loop holding the dead-man timer, serving the API, pinging systemd.

Every engine call runs in a worker thread under one asyncio lock, so the timer and the watchdog
ping never starve while a snapshot or a rollback works. The deadline is checked before any request
that takes the lock: a rollback that is due wins a tie with a late confirm.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
import os
import signal
import socket
import stat
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

from aiohttp import web

from netcfg_txn import __version__, assemble, backstop
from netcfg_txn.api import CAPABILITIES, make_app
from netcfg_txn.confirm.probes import ProbeSupervisor, TargetRefused, allowed_address, run_round
from netcfg_txn.core import config as configmod
from netcfg_txn.core.errors import (
    Busy,
    ConfigError,
    ExitCode,
    Failed,
    NetcfgTxnError,
    NotFound,
    NotPermitted,
    Unavailable,
)
from netcfg_txn.core.model import Actor, Phase, Reason, Txn
from netcfg_txn.core.policy import ConfirmPolicy, Policy, parse_confirm, probe_host
from netcfg_txn.engine import MSG_RELOAD_REFUSED, Engine, public_txn
from netcfg_txn.host import sd
from netcfg_txn.net.choose import make_network
from netcfg_txn.remote.auth import limiter_for, make_remote_auth
from netcfg_txn.remote.listen import RemoteListener
from netcfg_txn.remote.peers import PeerCache
from netcfg_txn.store import lastgood
from netcfg_txn.store.fdreserve import FdReserve
from netcfg_txn.store.watch import Watcher

log = logging.getLogger("netcfg_txn.daemon")
T = TypeVar("T")
PROBES = Actor(kind="system", command="probe")  # the ACTOR of what the probes decide
# Backoff of a failed deadline rollback or re-arm (EMFILE, EIO, a bug): retried until it has run.
RETRY_FIRST_S = 0.1
RETRY_MAX_S = 2.0


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
        self._timer: asyncio.TimerHandle | None = None
        self._reload = reload
        self._gen = 0  # bumped by the watcher and by every operation
        self._status_cache: tuple[int, dict[str, Any]] | None = None
        self.stopping = asyncio.Event()
        self.deadline_fired_at: float | None = None  # loop time, for latency measurements
        self.peers: PeerCache | None = None  # set when the remote API is enabled
        self.supervisor: ProbeSupervisor | None = None
        self.config_fallback: str | None = None  # set while running on a fallback config
        self.fd_reserve = FdReserve()
        self._retry: asyncio.TimerHandle | None = None
        self._retry_delay = RETRY_FIRST_S
        self._last_failure: tuple[str, float] | None = None  # (message, monotonic) for log damping
        self.listener: RemoteListener | None = None
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
            return await asyncio.to_thread(fn, *args, **kwargs)
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
        """Point the timer at the recorded deadline. Never raises and never loses the timer: the
        new timer is made before the old one is dropped, and when the record cannot be read the
        old timer stays and a retry is scheduled."""
        try:
            t = self.engine.current()
        except Exception as e:
            self._failed("cannot re-arm the timer", e)
            self._schedule_retry()  # the old timer, if any, stays armed
            return
        loop = asyncio.get_running_loop()
        new: asyncio.TimerHandle | None = None
        if t is not None and t.phase is Phase.OPEN:
            remaining = t.deadline.remaining_s(self.engine.clock.now())
            new = loop.call_later(remaining, lambda: loop.create_task(self._deadline()))
        old, self._timer = self._timer, new
        if old is not None:
            old.cancel()
        if t is not None and t.phase is not Phase.OPEN:
            self._schedule_retry()  # an interrupted rollback or finish: resume it
        elif self._retry is not None:
            self._retry.cancel()
            self._retry = None
            self._retry_delay = RETRY_FIRST_S
        try:
            self._notify_status(t)
            self._sync_probes(t)
        except Exception as e:
            sd.optional_failed(log, "probes", f"cannot start or stop the probes: {e!r}")

    def _schedule_retry(self) -> None:
        if self._retry is not None or self.stopping.is_set():
            return
        loop = asyncio.get_running_loop()
        delay, self._retry_delay = self._retry_delay, min(self._retry_delay * 2, RETRY_MAX_S)

        def fire() -> None:
            self._retry = None
            loop.create_task(self._deadline())

        self._retry = loop.call_later(delay, fire)

    def _failed(self, what: str, e: BaseException) -> None:
        """Log a failure of the deadline path; the same message at most every 10 s."""
        msg = f"{what}: {type(e).__name__}: {e}"
        now = time.monotonic()
        if self._last_failure is not None and self._last_failure[0] == msg:
            if now - self._last_failure[1] < 10.0:
                return
        self._last_failure = (msg, now)
        log.error(
            "%s; retrying until the rollback has run",
            msg,
            exc_info=not isinstance(e, OSError | NetcfgTxnError),
            extra={"journal_fields": {"MESSAGE_ID": sd.MSG_DEADLINE_RETRY}},
        )

    def _deadline_step(self) -> bool:
        """Roll back if the deadline has passed, or resume a rollback or finish that was
        interrupted. True once no transaction is left open or unfinished."""
        t = self.engine.current()
        if t is None:
            return True
        if t.phase is Phase.OPEN:
            return self.engine.expire() is not None
        self.engine.recover(boot=False)
        return self.engine.current() is None

    async def _deadline(self) -> None:
        self.deadline_fired_at = asyncio.get_running_loop().time()
        async with self.lock:
            # Whatever used up the fds, the rollback's first opens must succeed: free the reserve
            # and accept no remote connection that could take it meanwhile.
            if self.listener is not None:
                self.listener.pause()
            self.fd_reserve.release()
            if self.watcher is not None:
                self.watcher.pause()
            try:
                done = await asyncio.to_thread(self._deadline_step)
            except Exception as e:
                self._failed("rollback at the deadline failed", e)
                done = None
            finally:
                self.fd_reserve.take()
                if self.listener is not None:
                    self.listener.resume()
                if self.watcher is not None:
                    self.watcher.resume()
                self._gen += 1
        if done is None:
            self._schedule_retry()
            return
        self._last_failure = None
        self.rearm()  # done: idle (no timer); not done: woke early, e.g. the clock moved

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
        self.engine.cfg = cfg
        self.engine.network = make_network(cfg, root=self.engine.root)
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

    async def arm(
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


def _bind_control(path: Path) -> socket.socket:
    """The root-only control socket; a stale socket file is replaced, anything else is refused."""
    path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        st = os.lstat(path)
        if not stat.S_ISSOCK(st.st_mode):
            raise ConfigError(f"{path} exists and is not a socket; refusing to replace it")
        os.unlink(path)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        s.bind(str(path))
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    s.listen(64)
    return s


async def serve(args: argparse.Namespace) -> int:
    notifier = sd.notifier()
    cfg_path = Path(args.config) if args.config else configmod.DEFAULT_CONFIG
    state_dir = Path(args.state_dir) if args.state_dir else None

    def load() -> configmod.Config:
        return lastgood.load_and_remember(cfg_path, state_dir)

    # Our own config errors never disarm anything: keep the last good config (and, for an open
    # transaction, the one frozen at its start) and say so loudly.
    cfg, fallback = lastgood.load_or_last_good(cfg_path, state_dir, who="netcfg-txnd")
    root = Path(args.root)
    engine = assemble.engine(root, cfg, config=Path(args.config) if args.config else None,
                             state_dir=state_dir)  # fmt: skip
    engine.store.ensure()
    from netcfg_txn.store import fsutil

    try:
        lock_fd = fsutil.take_lock(engine.store.lock_path)
    except BlockingIOError:
        raise Busy(f"another netcfg-txnd holds {engine.store.lock_path}") from None
    daemon = Daemon(engine, notifier, reload=load)
    daemon.config_fallback = fallback
    daemon.fd_reserve.take()
    # Recovery, then the timer, then the control socket. Everything after that is optional and
    # fails only itself: the open transaction's rollback never waits for it.
    try:
        recovery = await asyncio.to_thread(engine.recover, boot=False)
        for action in recovery.actions:
            log.info("recovery: %s", action)
    except Exception as e:  # the timer's retry resumes it; the daemon must come up to run it
        daemon._failed("start-up recovery failed", e)
    daemon.rearm()

    loop = asyncio.get_running_loop()
    app = make_app(daemon, max_body=cfg.remote.max_body_bytes)
    if cfg.remote.enabled:
        try:
            daemon.peers = PeerCache(cfg.remote.peers_dir, root)  # skips bad files, logs them
            if not daemon.peers.get().peers:
                log.warning("remote API enabled but %s has no peers", cfg.remote.peers_dir)
            app["netcfg.remote_auth"] = make_remote_auth(
                daemon.peers.get, limiter_for(cfg.remote), engine.clock
            )

            def protocol() -> asyncio.Protocol:
                assert runner.server is not None  # set up before any connection is accepted
                return runner.server()

            daemon.listener = RemoteListener(protocol, cfg.remote, root)
            app.middlewares.append(daemon.listener.middleware())
        except Exception as e:
            sd.optional_failed(log, "remote listener switched off", repr(e))
            daemon.peers = daemon.listener = None
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    fds = sd.listen_fds(os.environ, os.getpid())
    control_error: Exception | None = None
    try:
        if fds:
            sock = socket.socket(fileno=fds[0])
        else:
            sock = _bind_control(Path(args.socket))
        await web.SockSite(runner, sock).start()
    except Exception as e:
        # Without a control socket nobody can confirm, but the armed timer must still run: keep
        # the open transaction's deadline, then exit with the error (systemd restarts us).
        if not _has_txn(engine):
            raise
        control_error = e
        log.critical(
            "cannot serve the control socket %s: %s; only the timer runs until the open "
            "transaction has ended, then the daemon exits",
            args.socket,
            e,
            extra={"journal_fields": {"MESSAGE_ID": sd.MSG_DEADLINE_RETRY}},
        )
        loop.create_task(_stop_when_idle(daemon))

    watcher = Watcher(root, cfg.fileset, loop, daemon.touched)
    try:
        watcher.start()
    except Exception as e:  # inotify limits: status still works, by rescanning
        sd.optional_failed(
            log, "file watcher", f"cannot watch managed directories: {e}; status will rescan"
        )
    else:
        daemon.watcher = watcher
    daemon.watching = watcher.complete
    if daemon.listener is not None:
        await daemon.listener.start()  # never raises: TLS problems switch it off, binds retry

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, daemon.stopping.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(daemon.reload_config()))

    wd = sd.watchdog_interval_s(os.environ, os.getpid())
    if wd:

        def ping() -> None:
            notifier.notify("WATCHDOG=1")  # from the loop itself: a wedged loop gets restarted
            loop.call_later(wd, ping)

        ping()
    notifier.notify("READY=1")
    log.info("netcfg-txnd %s ready on %s (root %s, state %s)", __version__, args.socket, root,
             cfg.state_dir)  # fmt: skip
    await daemon.stopping.wait()
    notifier.notify("STOPPING=1")
    backstop.handover(engine, engine.backstop)  # who takes over an open deadline, loudly
    watcher.stop()
    daemon._sync_probes(None)
    if daemon.listener is not None:
        await daemon.listener.stop()
    await runner.cleanup()
    if not fds and control_error is None:
        with contextlib.suppress(OSError):
            os.unlink(args.socket)
    os.close(lock_fd)
    if control_error is not None:
        if isinstance(control_error, NetcfgTxnError):
            raise control_error
        raise Unavailable(f"cannot serve the control socket {args.socket}: {control_error}")
    return 0


def _has_txn(engine: Engine) -> bool:
    """True unless the record says idle (a record that cannot be read counts as a transaction)."""
    try:
        return engine.current() is not None
    except Exception:
        return True


async def _stop_when_idle(daemon: Daemon) -> None:
    while _has_txn(daemon.engine):
        await asyncio.sleep(0.5)
    daemon.stopping.set()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="netcfg-txnd",
        description="netcfg-txn daemon: holds the dead-man timer and serves the control API.",
    )
    p.add_argument("--config", help=f"config file (default {configmod.DEFAULT_CONFIG})")
    p.add_argument("--root", default="/", help="root of the managed system (tests, sandboxes)")
    p.add_argument("--state-dir", help="state directory (default: [state] dir)")
    p.add_argument("--socket", default=str(configmod.DEFAULT_SOCKET), help="control socket path")
    p.add_argument(
        "--log-level",
        default=os.environ.get("SYSTEMD_LOG_LEVEL", "info").upper(),
        type=str.upper,
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
    )
    p.add_argument("--version", action="version", version=f"netcfg-txnd {__version__}")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    sd.setup_logging("netcfg-txnd", args.log_level)
    try:
        rc = asyncio.run(serve(args))
    except NetcfgTxnError as e:
        log.error("%s%s", e.message, f" ({e.hint})" if e.hint else "")
        rc = e.exit_code
    except Exception:
        log.exception("internal error (this is a bug)")
        rc = ExitCode.SOFTWARE
    sys.exit(rc)


if __name__ == "__main__":
    main()
