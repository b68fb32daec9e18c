# SPDX-License-Identifier: GPL-3.0-or-later
"""The remote listener's own sockets on 127.0.0.x: connection caps per source and in total,
handshake/request-head and idle timeouts, IP_FREEBIND, bind retries, TLS problems that switch
only the listener off; and the ``[remote]`` keys that configure them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from aiohttp import web

from netcfg_txn.core.errors import ConfigError
from netcfg_txn.core.remoteconf import RemoteConfig
from netcfg_txn.core.settings import SettingError
from netcfg_txn.host import sd
from netcfg_txn.remote.listen import Limits, RemoteListener
from tests.pki import Pki, make_pki
from tests.waiting import until


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cfg(
    pki: Pki | None, host: str = "127.0.0.1", port: int | None = None, **kw: Any
) -> RemoteConfig:
    if pki is None:
        return RemoteConfig(listen=((host, port or _free_port()),), insecure_plaintext=True, **kw)
    return RemoteConfig(
        listen=((host, port or _free_port()),),
        tls_cert=PurePosixPath(str(pki.server_cert)),
        tls_key=PurePosixPath(str(pki.server_key)),
        **kw,
    )


@contextlib.asynccontextmanager
async def serving(cfg: RemoteConfig, limits: Limits | None = None) -> AsyncIterator[RemoteListener]:
    async def hello(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/", hello)
    runner: web.AppRunner | None = None

    def factory() -> asyncio.Protocol:
        assert runner is not None and runner.server is not None
        return runner.server()

    listener = RemoteListener(factory, cfg, Path("/"), limits=limits)
    app.middlewares.append(listener.middleware())
    runner = web.AppRunner(app)
    await runner.setup()
    await listener.start()
    try:
        yield listener
    finally:
        await listener.stop()
        await runner.cleanup()


async def _closed_by_peer(s: socket.socket, timeout_s: float) -> bool:
    """True if the server closes ``s`` within ``timeout_s`` (EOF or reset)."""
    s.setblocking(False)
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        try:
            if s.recv(4096) == b"":
                return True
        except BlockingIOError:
            pass
        except ConnectionResetError:
            return True
        await asyncio.sleep(0.02)
    return False


async def _connect(port: int, source: str = "127.0.0.1") -> socket.socket:
    s = socket.socket()
    s.bind((source, 0))
    await asyncio.get_running_loop().run_in_executor(None, s.connect, ("127.0.0.1", port))
    return s


def test_caps_per_source_and_in_total() -> None:
    cfg = _cfg(None)
    port = cfg.listen[0][1]
    limits = Limits(header_timeout_s=30, idle_timeout_s=30, max_connections=3, max_per_source=2)

    async def main() -> None:
        async with serving(cfg, limits) as lst:
            await asyncio.wait_for(lst.bound.wait(), 5)
            a1, a2 = await _connect(port), await _connect(port)
            a3 = await _connect(port)  # third from 127.0.0.1: over the per-source cap
            assert await _closed_by_peer(a3, 2)
            b1 = await _connect(port, "127.0.0.2")
            c1 = await _connect(port, "127.0.0.3")  # fourth in total: over the total cap
            assert await _closed_by_peer(c1, 2)
            for s in (a1, a2, b1):
                assert not await _closed_by_peer(s, 0.1)
            assert lst.refused == 2 and lst.status()["connections"] == 3
            a1.close()  # a slot frees up
            await until(lambda: lst.status()["connections"] == 2, "the listener to see a1 close")
            c2 = await _connect(port, "127.0.0.3")
            assert not await _closed_by_peer(c2, 0.3)
            for s in (a2, b1, c2):
                s.close()

    asyncio.run(main())


def test_handshake_and_request_head_timeouts(pki: Pki) -> None:
    cfg = _cfg(pki)
    port = cfg.listen[0][1]
    limits = Limits(header_timeout_s=0.5, idle_timeout_s=0.5, max_connections=8, max_per_source=8)

    async def main() -> None:
        async with serving(cfg, limits) as lst:
            await asyncio.wait_for(lst.bound.wait(), 5)
            silent = await _connect(port)  # no ClientHello at all
            partial = await _connect(port)
            partial.send(b"\x16\x03\x01\x02\x00")  # a handshake record that never completes
            t0 = time.monotonic()
            assert await _closed_by_peer(silent, 3) and await _closed_by_peer(partial, 3)
            assert time.monotonic() - t0 < 2.0
            # TLS done, request head never finished.
            ctx = ssl.create_default_context(cafile=str(pki.ca))
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=ctx, server_hostname="localhost"
            )
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")
            t0 = time.monotonic()
            assert await asyncio.wait_for(reader.read(), 3) == b""
            assert time.monotonic() - t0 < 2.0
            writer.close()
            # A complete request is answered; the idle keep-alive is then closed.
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=ctx, server_hostname="localhost"
            )
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 3)
            assert head.startswith(b"HTTP/1.1 200")
            t0 = time.monotonic()
            rest = await asyncio.wait_for(reader.read(), 3)
            assert b'"ok": true' in rest and time.monotonic() - t0 < 2.0
            writer.close()
            assert lst.timed_out >= 2
            assert lst.status()["connections"] == 0

    asyncio.run(main())


def test_a_request_body_that_never_finishes_is_cut_off() -> None:
    cfg = _cfg(None)
    port = cfg.listen[0][1]
    limits = Limits(header_timeout_s=0.5, idle_timeout_s=5, max_connections=8, max_per_source=8)

    async def main() -> None:
        async with serving(cfg, limits) as lst:
            await asyncio.wait_for(lst.bound.wait(), 5)
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
            t0 = time.monotonic()
            assert b"200" not in await asyncio.wait_for(reader.read(), 3)
            assert time.monotonic() - t0 < 2.0
            writer.close()
            assert lst.timed_out == 1 and lst.status()["connections"] == 0

    asyncio.run(main())


def test_pause_stops_accepting_until_resumed() -> None:
    cfg = _cfg(None)
    port = cfg.listen[0][1]

    async def main() -> None:
        async with serving(cfg) as lst:
            await asyncio.wait_for(lst.bound.wait(), 5)
            lst.pause()
            s = await _connect(port)  # completes in the kernel's backlog, not accepted
            await asyncio.sleep(0.2)  # the scenario: give a wrong accept the time to happen
            assert lst.status()["connections"] == 0
            lst.resume()
            end = time.monotonic() + 3
            while lst.status()["connections"] == 0:
                assert time.monotonic() < end
                await asyncio.sleep(0.02)
            s.close()

    asyncio.run(main())


def test_a_missing_address_is_bound_with_freebind(pki: Pki) -> None:
    """192.0.2.77 is configured nowhere; binding it sends no packet (plain HTTP is loopback only,
    so this listener has TLS)."""
    cfg = _cfg(pki, host="192.0.2.77")

    async def main() -> None:
        async with serving(cfg) as lst:
            await asyncio.wait_for(lst.bound.wait(), 5)
            assert lst.status()["listening"] == [("192.0.2.77", cfg.listen[0][1])]

    asyncio.run(main())


def test_bind_errors_are_retried_in_the_background(caplog: pytest.LogCaptureFixture) -> None:
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    cfg = _cfg(None, port=blocker.getsockname()[1])

    async def main() -> None:
        async with serving(cfg) as lst:
            await asyncio.sleep(0.3)  # the scenario: give a wrong bind the time to happen
            assert not lst.bound.is_set()  # EADDRINUSE: not bound, and start() did not raise
            blocker.close()
            await asyncio.wait_for(lst.bound.wait(), 5)

    with caplog.at_level(logging.ERROR):
        asyncio.run(main())
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert any("retrying" in r.getMessage() for r in errors)
    assert all(
        getattr(r, "journal_fields", {}).get("MESSAGE_ID") == sd.MSG_OPTIONAL_FAILED for r in errors
    )


def test_tls_problems_switch_only_the_listener_off(
    pki: Pki, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bad = tmp_path / "key.pem"
    bad.write_text("not a key\n")
    cfg = RemoteConfig(
        listen=(("127.0.0.1", _free_port()),),
        tls_cert=PurePosixPath(str(pki.server_cert)),
        tls_key=PurePosixPath(str(bad)),
    )

    async def main() -> None:
        async with serving(cfg) as lst:
            assert not lst.enabled and lst.status()["listening"] == []

    with caplog.at_level(logging.ERROR):
        asyncio.run(main())
    (rec,) = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert "key.pem" in rec.getMessage() and "timer is not affected" in rec.getMessage()
    assert rec.journal_fields["MESSAGE_ID"] == sd.MSG_OPTIONAL_FAILED  # type: ignore[attr-defined]


def test_the_cap_is_fitted_to_the_fd_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    import resource

    monkeypatch.setattr(resource, "getrlimit", lambda _r: (400, 400))
    cfg = _cfg(None, max_connections=512, max_connections_per_source=512)

    async def main() -> Limits:
        async with serving(cfg) as lst:
            return lst.limits

    limits = asyncio.run(main())
    assert limits.max_connections == (400 - 256) // 2 and limits.max_per_source == 72


# ---------------------------------------------------------------------------- config keys


def test_a_plaintext_listener_off_loopback_is_refused_however_it_is_made() -> None:
    with pytest.raises(SettingError, match=r"^\[remote\] insecure_plaintext: .*192.0.2.77"):
        _cfg(None, host="192.0.2.77")


def test_remote_limit_keys() -> None:
    c = RemoteConfig.from_toml(
        {"header_timeout": "2s", "idle_timeout": 30, "max_connections": 100,
         "max_connections_per_source": 4},
        "x",
    )  # fmt: skip
    assert (c.header_timeout_s, c.idle_timeout_s, c.max_connections) == (2.0, 30.0, 100)
    assert c.max_connections_per_source == 4
    d = RemoteConfig.from_toml({}, "x")
    assert (d.header_timeout_s, d.idle_timeout_s, d.max_connections) == (5.0, 15.0, 64)
    assert d.max_connections_per_source == 8


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"header_timeout": "0s"}, "header_timeout"),
        ({"header_timeout": float("nan")}, "header_timeout"),
        ({"header_timeout": "2h"}, "header_timeout"),
        ({"idle_timeout": "soon"}, "idle_timeout"),
        ({"idle_timeout": True}, "idle_timeout"),
        ({"max_connections": 0}, "max_connections"),
        ({"max_connections": 513}, "max_connections"),
        ({"max_connections_per_source": "8"}, "max_connections_per_source"),
    ],
)
def test_remote_limit_keys_refused(table: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError, match=rf"^x: \[remote\] {key}: "):
        RemoteConfig.from_toml(table, "x")
