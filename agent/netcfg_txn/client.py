# SPDX-License-Identifier: GPL-3.0-or-later
"""The one client of the daemon's HTTP API, over either transport: the root-only control socket
(``UnixSocket``, what the CLI uses) or TLS to the remote listener (``remote.client.Tls``).

Every failure is a project error: the daemon's own error, rebuilt with ``errors.from_json`` so it
keeps its code and exit code, or the transport's error for anything on the way (no socket, DNS,
TCP, TLS, a reply that is not the API's), with a message that says which. Nothing here retries:
confirm is idempotent, so a caller that lost a reply may simply call it again.

The control socket speaks HTTP/1.1 by hand (one request, ``Connection: close``): ``http.client``
alone would double the start-up time of ``netcfg-txn status`` (it imports ``email`` and ``ssl``).
"""

from __future__ import annotations

import _socket  # not socket: its enums and selectors are a tenth of what status costs to start
import json

from netcfg_txn import __version__
from netcfg_txn.core.errors import (
    InternalError,
    NetcfgTxnError,
    NotPermitted,
    Unavailable,
    UsageError,
    from_json,
)
from netcfg_txn.core.tokens import TOKEN_HEADER

TYPE_CHECKING = False  # typing costs milliseconds at start-up; mypy treats this name as True
if TYPE_CHECKING:
    from typing import Any, Protocol

    class Transport(Protocol):
        """How to reach the API, and what each way of failing means on this path."""

        @property
        def where(self) -> str:
            """The endpoint, as errors name it."""

        def exchange(
            self, method: str, path: str, headers: dict[str, str], body: bytes | None
        ) -> tuple[int, bytes]:
            """(HTTP status, reply body); raises OSError or BrokenReply."""

        def network_error(self, e: OSError) -> NetcfgTxnError: ...

        def broken_reply(self, e: BrokenReply) -> NetcfgTxnError: ...

        def bad_reply(self, status: int) -> NetcfgTxnError: ...


class BrokenReply(Exception):
    """The bytes that came back are not an HTTP/1.x response."""


class ApiClient:
    """One request at a time; ``bearer``: the peer token of a remote caller."""

    def __init__(self, transport: Transport, *, bearer: str | None = None) -> None:
        self.transport = transport
        self.bearer = bearer

    def request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        token: str | None = None,
    ) -> dict[str, Any]:
        """The success document (with its ``"ok": true``), or raises the daemon's error."""
        # Nothing from a command line may split the request line or a header.
        if not _printable_ascii(path) or " " in path:
            raise UsageError(f"not a valid request path: {path!r}")
        if token is not None and not _printable_ascii(token):
            raise UsageError("the transaction token must be printable ASCII")
        headers = {"Accept": "application/json", "User-Agent": f"netcfg-txn/{__version__}"}
        if self.bearer:
            headers["Authorization"] = f"Bearer {self.bearer}"
        if token is not None:
            headers[TOKEN_HEADER] = token
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            status, raw = self.transport.exchange(method, path, headers, data)
        except OSError as e:  # ssl.SSLError, socket.timeout and gaierror are OSErrors too
            raise self.transport.network_error(e) from None
        except BrokenReply as e:
            raise self.transport.broken_reply(e) from None
        try:
            doc = json.loads(raw)
        except ValueError:
            doc = None
        if not isinstance(doc, dict) or not isinstance(doc.get("ok"), bool):
            raise self.transport.bad_reply(status)
        if not doc["ok"]:
            err = doc.get("error")
            if not isinstance(err, dict):
                raise NetcfgTxnError(
                    f"{self.transport.where}: HTTP {status}, error without details"
                )
            raise from_json(err)
        return doc


def _printable_ascii(text: str) -> bool:
    return text.isascii() and text.isprintable()


def _recv_all(s: _socket.socket) -> bytes:
    chunks = []
    while chunk := s.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def parse_reply(raw: bytes) -> tuple[int, bytes]:
    """(status, body) of one whole HTTP/1.x response read to the end of the connection."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    parts = lines[0].split(None, 2)
    if not sep or len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise BrokenReply(f"not an HTTP/1.x response: {lines[0][:80]!r}")
    fields = {}
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon:
            raise BrokenReply(f"bad header line {line[:80]!r}")
        fields[name.strip().lower()] = value.strip()
    if fields.get(b"transfer-encoding", b"").lower() == b"chunked":
        return int(parts[1]), _unchunk(body)
    if (length := fields.get(b"content-length")) is not None:
        if not length.isdigit() or len(body) < int(length):
            raise BrokenReply("the reply is shorter than its Content-Length")
        body = body[: int(length)]
    return int(parts[1]), body


def _unchunk(data: bytes) -> bytes:
    out: list[bytes] = []
    while True:
        size_line, sep, data = data.partition(b"\r\n")
        try:
            size = int(size_line.split(b";")[0], 16)
        except ValueError:
            raise BrokenReply(f"bad chunk size {size_line[:20]!r}") from None
        if not sep or len(data) < size:
            raise BrokenReply("the reply ends inside a chunk")
        if size == 0:
            return b"".join(out)
        out.append(data[:size])
        data = data[size + 2 :]


class UnixSocket:
    """The control socket: HTTP/1.1 over AF_UNIX, root-only (0600)."""

    def __init__(self, path: str, timeout_s: float = 600.0) -> None:
        self.path = path
        self.timeout_s = timeout_s

    @property
    def where(self) -> str:
        return self.path

    def exchange(
        self, method: str, path: str, headers: dict[str, str], body: bytes | None
    ) -> tuple[int, bytes]:
        head = [f"{method} {path} HTTP/1.1", "Host: localhost", "Connection: close"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        head.append(f"Content-Length: {len(body or b'')}")
        request = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + (body or b"")
        s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        try:
            s.settimeout(self.timeout_s)
            s.connect(self.path)
            s.sendall(request)
            return parse_reply(_recv_all(s))
        finally:
            s.close()

    def network_error(self, e: OSError) -> NetcfgTxnError:
        if isinstance(e, FileNotFoundError):
            return Unavailable(
                f"the daemon is not running (no control socket at {self.path})",
                hint="start it with 'systemctl start netcfg-txnd'",
            )
        if isinstance(e, PermissionError):  # the daemon is there, the socket not for this user
            return NotPermitted(
                f"permission denied on {self.path}",
                hint="the control socket is root-only: run it with sudo",
            )
        if isinstance(e, ConnectionRefusedError):
            return Unavailable(f"the daemon is not accepting connections on {self.path}")
        if isinstance(e, TimeoutError):
            return Unavailable(f"no answer from the daemon within {self.timeout_s:g}s")
        return Unavailable(f"cannot talk to the daemon at {self.path}: {e}")

    def broken_reply(self, e: BrokenReply) -> NetcfgTxnError:
        return Unavailable(f"cannot talk to the daemon at {self.path}: broken HTTP response ({e})")

    def bad_reply(self, status: int) -> NetcfgTxnError:
        return InternalError(f"the daemon sent a non-JSON reply (HTTP {status})")


def call(
    sock_path: str,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    *,
    token: str | None = None,
    timeout_s: float = 600.0,
) -> dict[str, Any]:
    """One request over the control socket; returns the success document or raises the
    daemon's error class."""
    return ApiClient(UnixSocket(sock_path, timeout_s)).request(method, path, body, token=token)
