# SPDX-License-Identifier: GPL-3.0-or-later
"""RemoteClient ⇄ a local aiohttp TLS server guarded by RemoteAuth, on 127.0.0.1 only.

The server mimics the daemon's envelopes (``{"ok": …}``) and errors; what is under test is the
TLS setup on both sides, client-certificate binding, peer authentication, rate limiting and the
client's error messages.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from aiohttp import web

from netcfg_txn.core.errors import (
    BadToken,
    ConfigError,
    ExitCode,
    NetcfgTxnError,
    NotPermitted,
    NoTransaction,
    Unavailable,
)
from netcfg_txn.core.remoteconf import RemoteConfig
from netcfg_txn.remote.auth import is_remote, make_remote_auth, txn_token
from netcfg_txn.remote.client import RemoteClient, parse_hostport
from netcfg_txn.remote.listen import RemoteListener
from netcfg_txn.remote.peers import Peer, PeerDb, hash_token
from netcfg_txn.remote.ratelimit import Limiter, RateLimited
from netcfg_txn.remote.tls import client_context, server_context
from tests.fakeclock import FakeClock
from tests.pki import Pki, make_pki

PEER_TOKEN = "peer-token-0123456789"
BOUND_TOKEN = "bound-token-0123456789"
TXN_TOKEN = "txn-token-abc"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@dataclasses.dataclass
class Server:
    port: int
    seen: list[dict[str, Any]]
    clock: FakeClock


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _app(auth: Callable[[web.Request, str], Any], seen: list[dict[str, Any]]) -> web.Application:
    @web.middleware
    async def envelope(request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            return await handler(request)  # type: ignore[no-any-return]
        except NetcfgTxnError as e:
            return web.json_response({"ok": False, "error": e.to_json()}, status=e.http_status)

    async def version(request: web.Request) -> web.Response:
        actor = auth(request, "version")
        seen.append({"op": "version", "actor": actor, "remote": is_remote(request)})
        return web.json_response({"ok": True, "version": "0.1.0", "api": 1, "capabilities": []})

    async def confirm(request: web.Request) -> web.Response:
        actor = auth(request, "confirm")
        seen.append({"op": "confirm", "actor": actor, "token": txn_token(request)})
        if txn_token(request) != TXN_TOKEN:
            raise BadToken("wrong token for transaction t1")
        if request.match_info["id"] != "t1":
            raise NoTransaction(f"transaction {request.match_info['id']} already ended")
        return web.json_response({"ok": True, "transaction": {"id": "t1", "phase": "committed"}})

    async def not_json(request: web.Request) -> web.Response:
        return web.Response(text="<html>proxy error</html>", status=502)

    app = web.Application(middlewares=[envelope])
    app.router.add_get("/v1/version", version)
    app.router.add_post("/v1/transactions/{id}/confirm", confirm)
    app.router.add_get("/v1/status", not_json)
    return app


@pytest.fixture
def serve(pki: Pki) -> Iterator[Callable[..., Server]]:
    stops: list[Callable[[], None]] = []

    def start(*, client_ca: bool = False, plaintext: bool = False, per_minute: int = 30) -> Server:
        cfg = RemoteConfig(
            listen=(("127.0.0.1", _free_port()),),
            tls_cert=PurePosixPath(str(pki.server_cert)),
            tls_key=PurePosixPath(str(pki.server_key)),
            client_ca=PurePosixPath(str(pki.ca)) if client_ca else None,
            insecure_plaintext=plaintext,
            auth_failures_per_minute=per_minute,
        )
        db = PeerDb(
            (
                Peer("ctl", hash_token(PEER_TOKEN)),
                Peer("bound", hash_token(BOUND_TOKEN), client_subject="orchestrator1"),
                Peer("old", hash_token("old-token"), expires_wall_s=1_000_000_000.0),
            )
        )
        clock = FakeClock(boot_id="boot")
        seen: list[dict[str, Any]] = []
        auth = make_remote_auth(lambda: db, Limiter(per_minute), clock)
        ready = threading.Event()
        loop = asyncio.new_event_loop()
        holder: dict[str, Any] = {}

        async def main() -> None:
            app = _app(auth, seen)
            listener = RemoteListener(lambda: runner.server(), cfg, Path("/"))  # type: ignore[misc]
            app.middlewares.append(listener.middleware())
            runner = web.AppRunner(app)
            await runner.setup()
            await listener.start()  # the daemon's own listener: caps, timeouts, FREEBIND
            await asyncio.wait_for(listener.bound.wait(), 10)
            holder["runner"] = runner
            holder["stop"] = asyncio.Event()
            ready.set()
            await holder["stop"].wait()
            await listener.stop()
            await runner.cleanup()

        thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
        thread.start()
        assert ready.wait(10)

        def stop() -> None:
            loop.call_soon_threadsafe(holder["stop"].set)
            thread.join(10)
            loop.close()

        stops.append(stop)
        return Server(cfg.listen[0][1], seen, clock)

    yield start
    for stop in stops:
        stop()


def _client(pki: Pki, port: int, **kw: Any) -> RemoteClient:
    args: dict[str, Any] = {"ca_file": pki.ca, "peer_token": PEER_TOKEN, "timeout_s": 5}
    args.update(kw)
    return RemoteClient("127.0.0.1", port, **args)


# ------------------------------------------------------------------------------------ happy


def test_version_and_confirm_over_tls(pki: Pki, serve: Callable[..., Server]) -> None:
    srv = serve()
    c = _client(pki, srv.port)
    assert c.version()["api"] == 1
    assert c.confirm("t1", TXN_TOKEN) == {"transaction": {"id": "t1", "phase": "committed"}}
    actor = srv.seen[-1]["actor"]
    assert (actor.kind, actor.peer, actor.address) == ("remote", "ctl", "127.0.0.1")
    assert srv.seen[0]["remote"] is True


def test_server_name_override(pki: Pki, serve: Callable[..., Server]) -> None:
    srv = serve()
    assert _client(pki, srv.port, server_name="host1.test").version()["api"] == 1
    with pytest.raises(Unavailable, match="TLS verification failed for host other.test") as e:
        _client(pki, srv.port, server_name="other.test").version()
    assert "Hostname mismatch" in e.value.message or "hostname" in e.value.message.lower()


# ----------------------------------------------------------------------------- tls errors


def test_untrusted_server_certificate(pki: Pki, serve: Callable[..., Server]) -> None:
    srv = serve()
    with pytest.raises(Unavailable) as e:
        _client(pki, srv.port, ca_file=pki.other_ca).version()
    assert e.value.message.startswith("TLS verification failed for host 127.0.0.1")
    assert "certificate verify failed" in e.value.message or "unable to get" in e.value.message
    assert e.value.exit_code == ExitCode.UNAVAILABLE and "--ca" in str(e.value.hint)


def test_connection_refused(pki: Pki) -> None:
    port = _free_port()
    with pytest.raises(Unavailable, match=f"connection refused by 127.0.0.1:{port}"):
        _client(pki, port).version()


def test_plain_http_client_against_tls_port(pki: Pki, serve: Callable[..., Server]) -> None:
    srv = serve()
    with pytest.raises(Unavailable) as e:
        _client(pki, srv.port, plaintext=True).version()
    assert "127.0.0.1" in e.value.message
    assert srv.seen == []  # nothing reached a handler


def test_tls_client_against_plaintext_server(pki: Pki, serve: Callable[..., Server]) -> None:
    srv = serve(plaintext=True)
    with pytest.raises(Unavailable, match="TLS handshake with 127.0.0.1") as e:
        _client(pki, srv.port).version()
    assert "plain HTTP" in str(e.value.hint)
    assert _client(pki, srv.port, plaintext=True).version()["api"] == 1


def test_non_api_reply(pki: Pki, serve: Callable[..., Server]) -> None:
    srv = serve()
    with pytest.raises(Unavailable, match="HTTP 502 without a netcfg-txn JSON reply"):
        _client(pki, srv.port).status()


# ------------------------------------------------------------------------- client certs


def test_client_certificate_required(pki: Pki, serve: Callable[..., Server]) -> None:
    srv = serve(client_ca=True)
    with pytest.raises(Unavailable) as e:
        _client(pki, srv.port).version()
    assert "127.0.0.1" in e.value.message
    with pytest.raises(Unavailable):
        _client(
            pki, srv.port, client_cert=pki.other_client_cert, client_key=pki.other_client_key
        ).version()
    ok = _client(pki, srv.port, client_cert=pki.client_cert, client_key=pki.client_key)
    assert ok.version()["api"] == 1
    assert all(s["op"] == "version" for s in srv.seen) and len(srv.seen) == 1


def test_subject_bound_peer(pki: Pki, serve: Callable[..., Server]) -> None:
    srv = serve(client_ca=True)
    kw = {"client_cert": pki.client_cert, "client_key": pki.client_key}
    bound = _client(pki, srv.port, peer_token=BOUND_TOKEN, **kw)
    assert bound.version()["api"] == 1
    assert srv.seen[-1]["actor"].peer == "bound"
    # the same token over a connection without that certificate subject is refused
    srv2 = serve()
    with pytest.raises(NotPermitted, match="no client certificate") as e:
        _client(pki, srv2.port, peer_token=BOUND_TOKEN).version()
    assert e.value.code == "not-permitted" and e.value.exit_code == ExitCode.NOPERM


def test_subject_binding_compares_structured_rdns(
    pki: Pki, serve: Callable[..., Server], tmp_path: Path
) -> None:
    """A CA-signed certificate whose one CN is "mallory,CN=orchestrator1" is not orchestrator1."""
    from tests.pki import _leaf

    for name in ("ca.pem", "ca.key"):
        (tmp_path / name).write_bytes((pki.dir / name).read_bytes())
    ext = "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n"
    _leaf("mallory", "ca", "/O=netcfg-txn tests/CN=mallory,CN=orchestrator1", ext, tmp_path)
    srv = serve(client_ca=True)
    spoof = _client(
        pki,
        srv.port,
        peer_token=BOUND_TOKEN,
        client_cert=tmp_path / "mallory.pem",
        client_key=tmp_path / "mallory.key",
    )
    with pytest.raises(NotPermitted, match="bound to client certificate orchestrator1") as e:
        spoof.version()
    assert "CN=mallory\\,CN=orchestrator1" in e.value.message  # the comma shown escaped
    assert not any(s.get("actor") and s["actor"].peer == "bound" for s in srv.seen)


def test_server_offers_only_aead_suites_over_tls12(pki: Pki, serve: Callable[..., Server]) -> None:
    import ssl

    srv = serve()
    for suite, accepted in (
        ("ECDHE-ECDSA-AES128-SHA256", False),  # CBC + HMAC: refused
        ("ECDHE-ECDSA-AES128-SHA", False),
        ("ECDHE-ECDSA-AES128-GCM-SHA256", True),
    ):
        ctx = ssl.create_default_context(cafile=str(pki.ca))
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers(suite + ":@SECLEVEL=0")
        try:
            with (
                socket.create_connection(("127.0.0.1", srv.port), timeout=5) as raw,
                ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
            ):
                assert accepted, f"{suite} was accepted"
                assert tls.version() == "TLSv1.2"
        except ssl.SSLError:
            assert not accepted, f"{suite} was refused"


def test_plaintext_only_on_loopback() -> None:
    for host in ("0.0.0.0", "192.0.2.1", "[::]", "mgmt.example"):
        with pytest.raises(ConfigError, match="plain HTTP is only allowed on loopback"):
            RemoteConfig.from_toml(
                {"listen": [f"{host}:7468"], "insecure_plaintext": True}, "x.toml"
            )
    for host in ("127.0.0.1", "[::1]", "localhost", "127.0.0.53"):
        cfg = RemoteConfig.from_toml({"listen": [f"{host}:7468"], "insecure_plaintext": True}, "x")
        assert cfg.insecure_plaintext


# ---------------------------------------------------------------------------------- auth


def test_auth_errors_come_back_as_project_errors(pki: Pki, serve: Callable[..., Server]) -> None:
    srv = serve()
    with pytest.raises(BadToken, match="unknown or revoked") as e:
        _client(pki, srv.port, peer_token="guess").version()
    assert e.value.exit_code == ExitCode.NOPERM and "guess" not in e.value.message
    with pytest.raises(BadToken, match="missing peer credentials"):
        _client(pki, srv.port, peer_token=None).version()
    with pytest.raises(BadToken, match="expired"):
        _client(pki, srv.port, peer_token="old-token").version()
    with pytest.raises(BadToken, match="wrong token for transaction"):
        _client(pki, srv.port).confirm("t1", "not-the-token")
    with pytest.raises(NoTransaction, match="already ended") as e2:
        _client(pki, srv.port).confirm("t0", TXN_TOKEN)
    assert e2.value.exit_code == ExitCode.NO_TXN
    assert [s["op"] for s in srv.seen] == ["confirm", "confirm"]


def test_rate_limit_per_source(pki: Pki, serve: Callable[..., Server]) -> None:
    srv = serve(per_minute=5)
    bad = _client(pki, srv.port, peer_token="guess")
    for _ in range(5):
        with pytest.raises(BadToken):
            bad.version()
    with pytest.raises(RateLimited, match="too many failed authentications") as e:
        bad.version()
    assert e.value.code == "rate-limited" and e.value.exit_code == ExitCode.NOPERM
    assert e.value.details["retry_after_s"] == pytest.approx(12.0)
    # the right token is never refused for its source (a controller behind the attacker's NAT)
    assert _client(pki, srv.port).version()["api"] == 1
    # a wrong one is refused until a token has refilled (12 s at 5/min)
    srv.clock.t += 12.5
    with pytest.raises(BadToken):
        bad.version()
    with pytest.raises(RateLimited):
        bad.version()
    # successes never consume the budget
    for _ in range(20):
        _client(pki, srv.port).version()


# -------------------------------------------------------------------------------- tls


def test_server_context_errors(pki: Pki, tmp_path: Path) -> None:
    def cfg(**kw: Any) -> RemoteConfig:
        base = {
            "tls_cert": PurePosixPath(str(pki.server_cert)),
            "tls_key": PurePosixPath(str(pki.server_key)),
        }
        return RemoteConfig(**{**base, **kw})

    assert server_context(cfg()).minimum_version.name == "TLSv1_2"
    with pytest.raises(ConfigError, match="tls_cert: .*missing.pem: no such file"):
        server_context(cfg(tls_cert=PurePosixPath(str(tmp_path / "missing.pem"))))
    with pytest.raises(ConfigError, match="does not match certificate"):
        server_context(cfg(tls_key=PurePosixPath(str(pki.client_key))))
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(ConfigError, match="cannot load"):
        server_context(cfg(tls_cert=PurePosixPath(str(junk))))
    with pytest.raises(ConfigError, match="client_ca: .* not a PEM CA bundle"):
        server_context(cfg(client_ca=PurePosixPath(str(junk))))
    with pytest.raises(ConfigError, match="not a regular file"):
        server_context(cfg(tls_cert=PurePosixPath(str(tmp_path))))
    # the fake root: paths are as on the managed system
    fake = tmp_path / "root"
    (fake / "etc/tls").mkdir(parents=True)
    (fake / "etc/tls/c.pem").write_bytes(pki.server_cert.read_bytes())
    (fake / "etc/tls/k.pem").write_bytes(pki.server_key.read_bytes())
    faked = RemoteConfig(
        tls_cert=PurePosixPath("/etc/tls/c.pem"), tls_key=PurePosixPath("/etc/tls/k.pem")
    )
    (fake / "etc/tls/k.pem").chmod(0o644)  # a key others can read is refused, not warned about
    with pytest.raises(ConfigError, match="must be owned by root with mode 0600.*mode 0644"):
        server_context(faked, fake)
    (fake / "etc/tls/k.pem").chmod(0o600)
    os.chown(fake / "etc/tls/k.pem", 65534, 0)
    with pytest.raises(ConfigError, match="must be owned by root.*uid 65534"):
        server_context(faked, fake)
    os.chown(fake / "etc/tls/k.pem", 0, 0)
    assert server_context(faked, fake) is not None


def test_client_context_errors(pki: Pki, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        client_context(tmp_path / "nope.pem")
    with pytest.raises(ConfigError, match="does not match"):
        client_context(pki.ca, pki.client_cert, pki.server_key)
    with pytest.raises(ConfigError, match="without client_cert"):
        client_context(pki.ca, None, pki.client_key)
    assert client_context(None).check_hostname


@pytest.mark.parametrize(
    ("table", "match"),
    [
        ({"listen": ["0.0.0.0"]}, "listen"),
        ({"listen": ["::1:7468"]}, "listen"),
        ({"listen": ["[nothex]:7468"]}, "IPv6"),
        ({"listen": ["0.0.0.0:70000"]}, "port out of range"),
        ({"listen": [7468]}, "listen"),
        ({"listen": ["0.0.0.0:7468"], "tls_cert": ""}, "tls_cert"),
        ({"tls_key": "relative/key.pem"}, "absolute"),
        ({"insecure_plaintext": "yes"}, "insecure_plaintext"),
        ({"insecure_plaintext": True, "client_ca": "/ca.pem"}, "client_ca"),
        ({"auth_failures_per_minute": 0}, "auth_failures_per_minute"),
        ({"max_body_bytes": True}, "max_body_bytes"),
        ({"peers_dir": ""}, "peers_dir"),
        ({"port": 7468}, r"\[remote\] port: unknown key"),
    ],
)
def test_remote_config_errors(table: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match) as e:
        RemoteConfig.from_toml(table, "/etc/netcfg-txn/conf.d/10-remote.toml")
    assert e.value.message.startswith("/etc/netcfg-txn/conf.d/10-remote.toml: [remote] ")


def test_remote_config_good() -> None:
    c = RemoteConfig.from_toml(
        {"listen": ["0.0.0.0:7468", "[::]:7468", "mgmt.example:8443"], "client_ca": "/etc/ca.pem"},
        "x",
    )
    assert c.listen == (("0.0.0.0", 7468), ("::", 7468), ("mgmt.example", 8443))
    assert c.enabled and c.client_ca == PurePosixPath("/etc/ca.pem")
    assert not RemoteConfig.from_toml({}, "x").enabled
    plain = RemoteConfig.from_toml({"listen": ["127.0.0.1:7468"], "insecure_plaintext": True}, "x")
    assert plain.insecure_plaintext


def test_parse_hostport() -> None:
    assert parse_hostport("h1") == ("h1", 7468)
    assert parse_hostport("h1:8443") == ("h1", 8443)
    assert parse_hostport("[2001:db8::1]:9") == ("2001:db8::1", 9)
    assert parse_hostport("2001:db8::1") == ("2001:db8::1", 7468)
    with pytest.raises(NetcfgTxnError):
        parse_hostport("h1:99999")
