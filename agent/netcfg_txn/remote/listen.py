# SPDX-License-Identifier: GPL-3.0-or-later
"""The remote listener's sockets, kept from ever costing the daemon its timer.

aiohttp (3.8 and 3.14 alike) has no request-head timeout, keeps an idle connection for its
keep-alive time (75 s, 3630 s in 3.14), and ``TCPSite`` passes no TLS handshake timeout (asyncio's
default is 60 s), so a peer that opens connections and sends nothing holds one fd each for as long
as it likes. This module therefore accepts the TCP connections itself and hands each accepted socket
to asyncio's TLS layer and aiohttp's own request handler:

- a connection over ``max_connections`` in total, or over ``max_connections_per_source`` from one
  source (IPv4 address, IPv6 /64), is closed right after ``accept()``, before any TLS work;
- the TLS handshake and the first request head must complete within ``header_timeout`` (and a
  request body within another ``header_timeout``), and a kept-alive connection must bring its next
  request head within ``idle_timeout``, or it is aborted;
- sockets are bound with ``IP_FREEBIND``/``IPV6_FREEBIND``, so a listen address that is not (or
  no longer) configured, which is what a management-address change does, binds anyway and starts
  answering when the address comes back; any other bind error is retried in the background;
- certificate/key problems switch the listener off with a loud error; the daemon and its timer
  go on.

Nothing here raises into the daemon: every failure is logged with ``sd.MSG_OPTIONAL_FAILED``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import logging
import resource
import socket
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from netcfg_txn.core.errors import NetcfgTxnError
from netcfg_txn.core.remoteconf import RemoteConfig
from netcfg_txn.host import sd
from netcfg_txn.remote.connection import Connection, Slot
from netcfg_txn.remote.connection import Limits as Limits
from netcfg_txn.remote.ratelimit import source_key
from netcfg_txn.remote.tls import server_context

log = logging.getLogger(__name__)

_IP_FREEBIND = getattr(socket, "IP_FREEBIND", 15)
_IPV6_FREEBIND = 78  # linux/in6.h; Python does not export it
_BACKLOG = 128
# fds the daemon needs besides remote connections (state, control socket, rollback, commands).
_OWN_FDS = 256
_RETRY_MAX_S = 30.0
# Errors of accept() that mean "no fd or memory right now": pause accepting instead of spinning.
_ACCEPT_PAUSE = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}


def optional_failed(what: str, error: object) -> None:
    sd.optional_failed(log, what, error)


def _endpoint(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class RemoteListener:
    """Every ``[remote] listen`` address, served by ``factory`` (the aiohttp runner's server)."""

    def __init__(
        self,
        factory: Callable[[], asyncio.Protocol],
        cfg: RemoteConfig,
        root: Path = Path("/"),
        *,
        limits: Limits | None = None,
    ) -> None:
        self._factory = factory
        self._cfg = cfg
        self._root = root
        self.limits = limits or Limits.from_config(cfg)
        self._ssl: ssl.SSLContext | None = None
        self._socks: list[socket.socket] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._conns: dict[asyncio.BaseTransport, Connection] = {}
        self._per_source: dict[str, int] = {}
        self._total = 0
        self.refused = 0  # connections closed at accept() by a cap
        self.timed_out = 0  # connections aborted by a timeout
        self.enabled = False
        self.bound = asyncio.Event()  # every listen address is bound
        self._unbound = len(cfg.listen)
        self._stopped = False
        self._paused = False

    # ----------------------------------------------------------------------------- life

    async def start(self) -> None:
        """Never raises: TLS problems switch the listener off, bind problems are retried."""
        if not self._cfg.insecure_plaintext:
            try:
                self._ssl = await asyncio.to_thread(server_context, self._cfg, self._root)
            except NetcfgTxnError as e:
                optional_failed("remote listener switched off", f"{e.message}")
                return
            except Exception as e:  # noqa: BLE001  (a bad file must not stop the daemon)
                optional_failed("remote listener switched off", f"TLS setup failed: {e!r}")
                return
        else:
            log.warning(
                "remote API listening WITHOUT TLS (insecure_plaintext = true): tokens cross the "
                "network in clear text; use this only on an isolated management network"
            )
        self._fit_fd_limit()
        self.enabled = True
        for host, port in self._cfg.listen:
            self._spawn(self._bind_until_done(host, port))

    def _fit_fd_limit(self) -> None:
        """Keep the connection cap well under RLIMIT_NOFILE: the daemon's own work (a rollback,
        the control socket, the apply commands) always has fds left."""
        soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft == resource.RLIM_INFINITY:
            return
        budget = max(1, (soft - _OWN_FDS) // 2)
        if self.limits.max_connections > budget:
            log.warning(
                "remote.max_connections = %d does not fit RLIMIT_NOFILE %d; using %d",
                self.limits.max_connections,
                soft,
                budget,
            )
            self.limits = dataclasses.replace(
                self.limits,
                max_connections=budget,
                max_per_source=min(self.limits.max_per_source, budget),
            )

    async def stop(self) -> None:
        self._stopped = True
        loop = asyncio.get_running_loop()
        for s in self._socks:
            with contextlib.suppress(Exception):
                loop.remove_reader(s.fileno())
            s.close()
        self._socks.clear()
        for t in list(self._tasks):
            t.cancel()
        for t in list(self._tasks):
            with contextlib.suppress(BaseException):
                await t
        for tr in list(self._conns):
            tr.abort()  # type: ignore[attr-defined]

    def pause(self) -> None:
        """Stop accepting (the deadline's rollback is running and may need every fd)."""
        if self._paused or self._stopped:
            return
        self._paused = True
        loop = asyncio.get_running_loop()
        for s in self._socks:
            loop.remove_reader(s.fileno())

    def resume(self) -> None:
        if not self._paused or self._stopped:
            return
        self._paused = False
        loop = asyncio.get_running_loop()
        for s in self._socks:
            loop.add_reader(s.fileno(), self._on_accept, s)

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def status(self) -> dict[str, Any]:
        return {
            "listening": [s.getsockname()[:2] for s in self._socks],
            "connections": self._total,
            "refused": self.refused,
            "timed_out": self.timed_out,
        }

    # ----------------------------------------------------------------------------- binding

    async def _bind_until_done(self, host: str, port: int) -> None:
        delay = 1.0
        while not self._stopped:
            try:
                socks = await self._bind(host, port)
            except OSError as e:
                optional_failed(
                    f"remote listener on {_endpoint(host, port)}",
                    f"cannot listen: {e.strerror or e}; retrying in {delay:g}s",
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RETRY_MAX_S)
                continue
            loop = asyncio.get_running_loop()
            for s in socks:
                self._socks.append(s)
                if not self._paused:
                    loop.add_reader(s.fileno(), self._on_accept, s)
            log.info(
                "remote API on %s (%s%s; at most %d connections, %d per source)",
                _endpoint(host, port),
                "plain HTTP" if self._ssl is None else "TLS",
                ", client certificates required" if self._cfg.client_ca else "",
                self.limits.max_connections,
                self.limits.max_per_source,
            )
            self._unbound -= 1
            if self._unbound == 0:
                self.bound.set()
            return

    async def _bind(self, host: str, port: int) -> list[socket.socket]:
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        out: list[socket.socket] = []
        try:
            seen = set()
            for family, type_, proto, _name, addr in infos:
                if (family, addr) in seen:
                    continue
                seen.add((family, addr))
                s = socket.socket(family, type_, proto)
                out.append(s)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                # Bind an address that is not configured (yet, or any more): a management-address
                # change must not stop the daemon; the socket answers once the address is back.
                with contextlib.suppress(OSError):
                    if family == socket.AF_INET6:
                        s.setsockopt(socket.IPPROTO_IPV6, _IPV6_FREEBIND, 1)
                        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                    else:
                        s.setsockopt(socket.IPPROTO_IP, _IP_FREEBIND, 1)
                s.bind(addr)
                s.listen(_BACKLOG)
                s.setblocking(False)
        except BaseException:
            for s in out:
                s.close()
            raise
        return out

    # ----------------------------------------------------------------------------- accepting

    def _on_accept(self, lsock: socket.socket) -> None:
        for _ in range(_BACKLOG):
            try:
                conn, addr = lsock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                if e.errno in _ACCEPT_PAUSE:  # pause, or the loop spins on a readable socket
                    self._pause_accept(lsock, e)
                return
            source = source_key(str(addr[0]))
            if (
                self._total >= self.limits.max_connections
                or self._per_source.get(source, 0) >= self.limits.max_per_source
            ):
                conn.close()
                self.refused += 1
                if self.refused in (1, 10, 100, 1000) or self.refused % 10000 == 0:
                    log.warning(
                        "remote listener: connection from %s refused (%d open, %d from it; "
                        "%d refused so far)",
                        source,
                        self._total,
                        self._per_source.get(source, 0),
                        self.refused,
                    )
                continue
            self._total += 1
            self._per_source[source] = self._per_source.get(source, 0) + 1
            conn.setblocking(False)
            self._spawn(self._serve(conn, Slot(self, source)))

    def _pause_accept(self, lsock: socket.socket, e: OSError) -> None:
        loop = asyncio.get_running_loop()
        loop.remove_reader(lsock.fileno())
        log.error("remote listener: accept failed (%s); pausing accepts for 1s", e.strerror)

        def resume() -> None:
            if not self._stopped and not self._paused and lsock.fileno() >= 0:
                loop.add_reader(lsock.fileno(), self._on_accept, lsock)

        loop.call_later(1.0, resume)

    def _release(self, source: str) -> None:
        self._total -= 1
        left = self._per_source.get(source, 1) - 1
        if left > 0:
            self._per_source[source] = left
        else:
            self._per_source.pop(source, None)

    async def _serve(self, conn: socket.socket, slot: Slot) -> None:
        loop = asyncio.get_running_loop()
        kw: dict[str, Any] = {}
        if self._ssl is not None:
            kw = {"ssl": self._ssl, "ssl_handshake_timeout": self.limits.header_timeout_s}
        try:
            await loop.connect_accepted_socket(
                lambda: Connection(self._factory(), self, slot), conn, **kw
            )
        except BaseException as e:
            conn.close()
            slot.release()
            if not isinstance(e, Exception):
                raise
            log.debug("remote connection from %s dropped before its request: %r", slot.source, e)

    # ----------------------------------------------------------------------------- requests

    def middleware(self) -> Callable[..., Awaitable[web.StreamResponse]]:
        """Tells a connection's guard when a request head has arrived and when it is answered."""

        @web.middleware
        async def track(
            request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
        ) -> web.StreamResponse:
            conn = self._conns.get(request.transport) if request.transport else None
            if conn is None:
                return await handler(request)
            conn.request_started()
            try:
                if request.can_read_body:  # the body, too, within header_timeout (cached)
                    try:
                        await asyncio.wait_for(request.read(), self.limits.header_timeout_s)
                    except TimeoutError:
                        self.timed_out += 1
                        conn.abort()
                        raise web.HTTPRequestTimeout() from None
                return await handler(request)
            finally:
                conn.request_done()

        return track
