# SPDX-License-Identifier: GPL-3.0-or-later
"""The aiohttp side of the remote API: peer authentication of a request (the sockets: remotelisten).

``api.py`` mounts the same routes on the Unix socket and on these sites; for a request that came in
over TCP it calls ``RemoteAuth(request, operation)`` before anything else. Failed authentications
(bad peer token here, bad per-transaction token reported back through ``failed``) are counted per
source address; a failure from a source over its budget gets 429 and is not logged again until the
source has tokens again, so a flood cannot fill the journal. Valid credentials are never limited.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable

from aiohttp import web

from netcfg_txn.core.clock import Clock
from netcfg_txn.core.errors import NetcfgTxnError, NotPermitted
from netcfg_txn.core.model import Actor
from netcfg_txn.core.remoteconf import RemoteConfig
from netcfg_txn.core.tokens import TOKEN_HEADER
from netcfg_txn.remote.peers import PeerDb
from netcfg_txn.remote.ratelimit import Limiter, RateLimited, source_key
from netcfg_txn.remote.subject import client_subject

log = logging.getLogger(__name__)

_MAX_HEADER_TOKEN = 1024


def peer_address(request: web.BaseRequest) -> str:
    """The TCP peer's IP (never a forwarded header); IPv4-mapped IPv6 shown as IPv4."""
    peer = request.transport.get_extra_info("peername") if request.transport else None
    addr = peer[0] if isinstance(peer, tuple) and peer else (request.remote or "?")
    return source_key(addr) if addr.startswith("::ffff:") else addr


def is_remote(request: web.BaseRequest) -> bool:
    """True for a request that came in on a TCP site (the Unix socket's sockname is a str)."""
    if request.transport is None:
        return False
    return isinstance(request.transport.get_extra_info("sockname"), tuple)


def bearer_token(request: web.BaseRequest) -> str | None:
    values = request.headers.getall("Authorization", [])
    if len(values) != 1:
        return None
    scheme, _, token = values[0].strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def txn_token(request: web.BaseRequest) -> str | None:
    """The per-transaction token (``X-Netcfg-Txn-Token``), or None if absent or malformed."""
    values = request.headers.getall(TOKEN_HEADER, [])
    if len(values) != 1 or not values[0].strip() or len(values[0]) > _MAX_HEADER_TOKEN:
        return None
    return values[0].strip()


class RemoteAuth:
    """``auth(request, operation) -> Actor``: who the remote caller is, or an error to send back."""

    def __init__(
        self, peers_provider: Callable[[], PeerDb], limiter: Limiter, clock: Clock
    ) -> None:
        self._peers = peers_provider
        self._limiter = limiter
        self._clock = clock

    def __call__(self, request: web.BaseRequest, operation: str) -> Actor:
        # Credentials first: a valid peer token is never refused for its address (a controller
        # behind the same NAT or /64 as an attacker must still get its confirm through). Only a
        # failure looks at the source's budget, and only failures spend it.
        addr = peer_address(request)
        now = self._clock.now()
        try:
            actor = self._peers().authenticate(
                bearer_token(request), client_subject(request), operation, now.wall_s
            )
        except NotPermitted as e:
            if self._limiter.blocked(addr, now.boottime_s):
                wait = self._limiter.retry_after_s(addr, now.boottime_s)
                raise RateLimited(
                    f"too many failed authentications from {addr}; retry in {wait:.0f}s",
                    details={"retry_after_s": round(wait, 1)},
                ) from None
            self._count(addr, now.boottime_s, operation, e)
            raise
        return dataclasses.replace(actor, address=addr)

    def failed(self, request: web.BaseRequest, operation: str, error: NetcfgTxnError) -> None:
        """Count a failure found after peer authentication (a wrong per-transaction token)."""
        self._count(peer_address(request), self._clock.now().boottime_s, operation, error)

    def _count(self, addr: str, now_s: float, operation: str, error: NetcfgTxnError) -> None:
        if not self._limiter.allow(addr, now_s):
            return
        # Messages never carry tokens (peers.py and the engine make sure); the code is enough.
        log.warning("remote %s from %s refused: %s: %s", operation, addr, error.code, error.message)
        if self._limiter.blocked(addr, now_s):
            log.warning(
                "remote source %s is rate-limited for %.0fs after repeated failures",
                addr,
                self._limiter.retry_after_s(addr, now_s),
            )


def make_remote_auth(
    peers_provider: Callable[[], PeerDb], limiter: Limiter, clock: Clock
) -> RemoteAuth:
    return RemoteAuth(peers_provider, limiter, clock)


def limiter_for(cfg: RemoteConfig) -> Limiter:
    return Limiter(cfg.auth_failures_per_minute)
