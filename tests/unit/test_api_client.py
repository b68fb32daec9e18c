# SPDX-License-Identifier: GPL-3.0-or-later
"""The API client over the control socket: the hand-written HTTP/1.1 against a real AF_UNIX
server in a thread, and each way of failing mapped to its project error and exit code."""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from netcfg_txn import client
from netcfg_txn.client import BrokenReply, parse_reply
from netcfg_txn.core.errors import (
    BadToken,
    ExitCode,
    InternalError,
    NetcfgTxnError,
    NotPermitted,
    Unavailable,
    UsageError,
)


class OneShotServer:
    """Accepts connections on a Unix socket; answers each with ``reply`` and records the request."""

    def __init__(self, path: Path, reply: bytes) -> None:
        self.path, self.reply = path, reply
        self.requests: list[bytes] = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen(4)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(4096)
                head, _, body = data.partition(b"\r\n\r\n")
                length = next(
                    (int(h.split(b":")[1]) for h in head.split(b"\r\n")
                     if h.lower().startswith(b"content-length:")), 0)  # fmt: skip
                while len(body) < length:
                    body += conn.recv(4096)
                self.requests.append(head + b"\r\n\r\n" + body)
                conn.sendall(self.reply)

    def close(self) -> None:
        self.sock.close()


def _http(status: int, doc: object, *, chunked: bool = False) -> bytes:
    body = json.dumps(doc).encode()
    if chunked:
        mid = len(body) // 2
        parts = [body[:mid], body[mid:]]
        payload = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"
        return (f"HTTP/1.1 {status} X\r\nTransfer-Encoding: chunked\r\n\r\n").encode() + payload
    head = f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(body)}"
    return head.encode() + b"\r\n\r\n" + body


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[object]:
    servers: list[OneShotServer] = []

    def start(reply: bytes) -> OneShotServer:
        s = OneShotServer(tmp_path / f"s{len(servers)}", reply)
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.close()


def test_a_request_carries_method_path_token_and_json_body(serve) -> None:  # type: ignore[no-untyped-def]
    srv = serve(_http(200, {"ok": True, "transaction": {"id": "t1"}}))
    doc = client.call(str(srv.path), "POST", "/v1/transactions/current/confirm", {"force": True},
                      token="tok-1")  # fmt: skip
    assert doc == {"ok": True, "transaction": {"id": "t1"}}
    req = srv.requests[0]
    assert req.startswith(b"POST /v1/transactions/current/confirm HTTP/1.1\r\n")
    assert b"\r\nX-Netcfg-Txn-Token: tok-1\r\n" in req and b"\r\nConnection: close\r\n" in req
    assert req.endswith(b'\r\n\r\n{"force": true}')


def test_a_chunked_reply_is_reassembled(serve) -> None:  # type: ignore[no-untyped-def]
    srv = serve(_http(200, {"ok": True, "state": "idle", "pad": "x" * 5000}, chunked=True))
    assert client.call(str(srv.path), "GET", "/v1/status")["pad"] == "x" * 5000


def test_the_daemons_error_keeps_its_class_and_exit_code(serve) -> None:  # type: ignore[no-untyped-def]
    err = {"code": "bad-token", "message": "wrong token", "hint": "pass --token"}
    srv = serve(_http(403, {"ok": False, "error": err}))
    with pytest.raises(BadToken) as e:
        client.call(str(srv.path), "POST", "/v1/transactions/current/rollback", {})
    assert e.value.exit_code == ExitCode.NOPERM and e.value.hint == "pass --token"


@pytest.mark.parametrize(
    "reply",
    [b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", b"HTTP/1.1 200 OK\r\n\r\n[1, 2]"],
)
def test_a_reply_that_is_not_the_apis_is_an_internal_error(serve, reply: bytes) -> None:  # type: ignore[no-untyped-def]
    srv = serve(reply)
    with pytest.raises(InternalError, match="non-JSON reply"):
        client.call(str(srv.path), "GET", "/v1/status")


def test_bytes_that_are_not_http_say_so(serve) -> None:  # type: ignore[no-untyped-def]
    srv = serve(b"SSH-2.0-OpenSSH\r\n")
    with pytest.raises(Unavailable, match="broken HTTP response"):
        client.call(str(srv.path), "GET", "/v1/status")


def test_no_socket_is_daemon_unavailable(tmp_path: Path) -> None:
    with pytest.raises(Unavailable, match="not running") as e:
        client.call(str(tmp_path / "nothing"), "GET", "/v1/status")
    assert e.value.exit_code == ExitCode.UNAVAILABLE


def test_a_socket_without_a_listener_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "dead"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    s.close()  # the file stays, nobody listens
    with pytest.raises(Unavailable, match="not accepting connections"):
        client.call(str(path), "GET", "/v1/status")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to nobody in a child")
def test_a_socket_not_for_this_user_is_not_permitted(serve, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    srv = serve(_http(200, {"ok": True}))
    os.chmod(tmp_path, 0o755)
    os.chmod(srv.path, 0o600)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        os.close(r)
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            client.call(str(srv.path), "GET", "/v1/status")
            out = "no error"
        except NetcfgTxnError as e:
            out = f"{type(e).__name__} {int(e.exit_code)}"
        os.write(w, out.encode())
        os._exit(0)
    os.close(w)
    os.waitpid(pid, 0)
    with os.fdopen(r) as f:
        assert f.read() == f"{NotPermitted.__name__} {int(ExitCode.NOPERM)}"


@pytest.mark.parametrize(
    ("path", "token"),
    [
        ("/v1/transactions/a b/confirm", None),
        ("/v1/x\r\nEvil: 1", None),
        ("/v1/s", "t\r\nEvil: 1"),
        ("/v1/s", "tök"),
    ],  # fmt: skip
)
def test_nothing_from_the_command_line_can_split_the_request(
    tmp_path: Path, path: str, token: str | None
) -> None:
    with pytest.raises(UsageError):
        client.call(str(tmp_path / "never-contacted"), "POST", path, {}, token=token)


def test_parse_reply_refuses_a_truncated_body() -> None:
    with pytest.raises(BrokenReply, match="shorter"):
        parse_reply(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}")
    with pytest.raises(BrokenReply, match="inside a chunk"):
        parse_reply(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nff\r\nabc")
    assert parse_reply(b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}extra") == (201, b"{}")
