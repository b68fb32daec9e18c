# SPDX-License-Identifier: GPL-3.0-or-later
"""One accepted TLS connection under the listener's limits: the slot it holds, the timeouts of
its handshake, request head and idle time, and the limits themselves (``[remote]``)."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import TYPE_CHECKING

from netcfg_txn.core.remoteconf import RemoteConfig

if TYPE_CHECKING:
    from netcfg_txn.remote.listen import RemoteListener


@dataclasses.dataclass
class Slot:
    """One accepted connection's place in the caps; released exactly once."""

    owner: RemoteListener
    source: str
    released: bool = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.owner._release(self.source)


class Connection(asyncio.Protocol):
    """aiohttp's RequestHandler behind a guard that aborts a connection which sits without a
    request in progress past its timeout (request heads that never finish, idle keep-alives)."""

    def __init__(self, inner: asyncio.Protocol, listener: RemoteListener, slot: Slot) -> None:
        self._inner = inner
        self._listener = listener
        self._slot = slot
        self._transport: asyncio.BaseTransport | None = None
        self._in_flight = 0
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        self._listener._conns[transport] = self
        self._arm(self._listener.limits.header_timeout_s)
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        if self._transport is not None:
            self._listener._conns.pop(self._transport, None)
        self._slot.release()
        self._inner.connection_lost(exc)

    # A request head arrived (the middleware saw the request) / its response went out.
    def request_started(self) -> None:
        self._in_flight += 1
        self._cancel()

    def request_done(self) -> None:
        self._in_flight = max(0, self._in_flight - 1)
        if self._in_flight == 0:
            self._arm(self._listener.limits.idle_timeout_s)

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()  # type: ignore[attr-defined]

    def _arm(self, seconds: float) -> None:
        self._cancel()
        self._timer = asyncio.get_running_loop().call_later(seconds, self._expired)

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expired(self) -> None:
        self._timer = None
        if self._in_flight == 0 and self._transport is not None:
            self._listener.timed_out += 1
            self._transport.abort()  # type: ignore[attr-defined]


@dataclasses.dataclass(frozen=True)
class Limits:
    header_timeout_s: float
    idle_timeout_s: float
    max_connections: int
    max_per_source: int

    @classmethod
    def from_config(cls, cfg: RemoteConfig) -> Limits:
        return cls(
            cfg.header_timeout_s,
            cfg.idle_timeout_s,
            cfg.max_connections,
            cfg.max_connections_per_source,
        )
