# SPDX-License-Identifier: GPL-3.0-or-later
"""The daemon's start-up order and shutdown. Recovery, then the timer, then the control socket:
nothing optional (the remote listener, the file watcher, the watchdog ping) stands between an
open transaction and its rollback, and each optional part that fails switches off only itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import stat
from pathlib import Path

from aiohttp import web

from netcfg_txn import __version__, assemble, backstop
from netcfg_txn.api import make_app
from netcfg_txn.core import config as configmod
from netcfg_txn.core.errors import Busy, ConfigError, NetcfgTxnError, Unavailable
from netcfg_txn.daemon.service import Daemon
from netcfg_txn.engine import Engine
from netcfg_txn.host import sd
from netcfg_txn.remote.auth import limiter_for, make_remote_auth
from netcfg_txn.remote.listen import RemoteListener
from netcfg_txn.remote.peers import PeerCache
from netcfg_txn.store import lastgood
from netcfg_txn.store.watch import Watcher

log = logging.getLogger("netcfg_txn.daemon")


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
        daemon.timer.failed("start-up recovery failed", e)
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
