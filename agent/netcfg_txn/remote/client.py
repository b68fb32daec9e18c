# SPDX-License-Identifier: GPL-3.0-or-later
"""Client for a host's remote API (HTTPS, stdlib only, so the CLI and scripts start fast).

Every failure is a project error: the daemon's own error (rebuilt with ``errors.from_json``, so it
keeps its code and exit code) or ``Unavailable`` for anything on the way (DNS, TCP, TLS), with a
message that says which. Nothing here retries: confirm is idempotent, so a caller that lost
a reply may simply call it again.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import ssl
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from netcfg_txn import __version__
from netcfg_txn.core.errors import NetcfgTxnError, Unavailable, UsageError, from_json
from netcfg_txn.core.remoteconf import DEFAULT_PORT
from netcfg_txn.remote import ratelimit as _ratelimit  # noqa: F401  (registers the rate-limited code)
from netcfg_txn.remote.tls import client_context

TXN_TOKEN_HEADER = "X-Netcfg-Txn-Token"
_MAX_RESPONSE = 4 << 20


def parse_hostport(text: str, default_port: int = DEFAULT_PORT) -> tuple[str, int]:
    """``host``, ``host:port``, ``[v6]``, ``[v6]:port`` or a bare IPv6 address."""
    m = re.fullmatch(r"\[([^\]]+)\](?::(\d{1,5}))?|([^:\[\]\s]+)(?::(\d{1,5}))?", text.strip())
    if m is None:
        if text.count(":") >= 2 and "[" not in text:  # a bare IPv6 address
            return text.strip(), default_port
        raise UsageError(f"not HOST[:PORT]: {text!r}")
    host = m.group(1) or m.group(3)
    port = int(m.group(2) or m.group(4) or default_port)
    if not 1 <= port <= 65535:
        raise UsageError(f"port out of range in {text!r}")
    return host, port


def read_secret(path: str, what: str) -> str:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise UsageError(f"cannot read {what} from {path}: {e.strerror}") from None
    token = text.strip()
    if not token or any(c.isspace() for c in token):
        raise UsageError(f"{path}: expected exactly one {what}")
    return token


class _Connection(http.client.HTTPSConnection):
    """HTTPSConnection that verifies the certificate against ``server_name`` instead of the host
    it connects to: after a management-address change a peer dials the new address but still
    checks the host's stable name."""

    def __init__(self, host: str, port: int, timeout: float, context: ssl.SSLContext, name: str):
        super().__init__(host, port, timeout=timeout, context=context)
        self._ctx = context
        self._server_name = name

    def connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), self.timeout)
        try:
            self.sock = self._ctx.wrap_socket(sock, server_hostname=self._server_name)
        except BaseException:
            sock.close()
            raise


class RemoteClient:
    def __init__(
        self,
        host: str,
        port: int = DEFAULT_PORT,
        ca_file: str | os.PathLike[str] | None = None,
        client_cert: str | os.PathLike[str] | None = None,
        client_key: str | os.PathLike[str] | None = None,
        peer_token: str | None = None,
        timeout_s: float = 10.0,
        *,
        server_name: str | None = None,
        plaintext: bool = False,
    ) -> None:
        self.host = host
        self.port = port
        self.peer_token = peer_token
        self.timeout_s = timeout_s
        self.server_name = server_name or host
        self.plaintext = plaintext
        self._context = None if plaintext else client_context(ca_file, client_cert, client_key)

    @property
    def endpoint(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    # ------------------------------------------------------------------------- the API

    def version(self) -> dict[str, Any]:
        return self._call("GET", "/v1/version")

    def status(self) -> dict[str, Any]:
        return self._call("GET", "/v1/status")

    def history(self, limit: int | None = None) -> dict[str, Any]:
        return self._call("GET", "/v1/history" + (f"?limit={int(limit)}" if limit else ""))

    def start(
        self,
        timeout: str | None = None,
        label: str | None = None,
        probes: Sequence[str] = (),
        policy: str = "manual",
        arm: bool = True,
        probe_settings: dict[str, Any] | None = None,
        allow_pending: bool = False,
    ) -> dict[str, Any]:
        """Start a transaction. Returns ``{"transaction": {...}, "token": "..."}``."""
        body: dict[str, Any] = {"probes": list(probes), "policy": policy, "arm": arm}
        if timeout is not None:
            body["timeout"] = timeout
        if label is not None:
            body["label"] = label
        if probe_settings:
            body["probe_settings"] = probe_settings
        if allow_pending:
            body["allow_pending"] = True
        return self._call("POST", "/v1/transactions", body)

    def arm(self, txn_id: str, txn_token: str, timeout: str) -> dict[str, Any]:
        return self._call("POST", _txn_path(txn_id, "arm"), {"timeout": timeout}, txn_token)

    def confirm(self, txn_id: str, txn_token: str) -> dict[str, Any]:
        return self._call("POST", _txn_path(txn_id, "confirm"), {}, txn_token)

    def rollback(self, txn_id: str, txn_token: str) -> dict[str, Any]:
        return self._call("POST", _txn_path(txn_id, "rollback"), {}, txn_token)

    def get(self, txn_id: str, txn_token: str | None = None) -> dict[str, Any]:
        return self._call("GET", _txn_path(txn_id), None, txn_token)

    # ------------------------------------------------------------------------- plumbing

    def _connection(self) -> http.client.HTTPConnection:
        if self._context is None:
            return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)
        return _Connection(self.host, self.port, self.timeout_s, self._context, self.server_name)

    def _call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        txn_token: str | None = None,
    ) -> dict[str, Any]:
        headers = {"Accept": "application/json", "User-Agent": f"netcfg-txn/{__version__}"}
        if self.peer_token:
            headers["Authorization"] = f"Bearer {self.peer_token}"
        if txn_token:
            headers[TXN_TOKEN_HEADER] = txn_token
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        conn = self._connection()
        try:
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read(_MAX_RESPONSE + 1)
            status = resp.status
        except OSError as e:  # ssl.SSLError, socket.timeout and gaierror are OSErrors too
            raise self._network_error(e) from None
        except http.client.HTTPException as e:
            raise Unavailable(
                f"{self.endpoint}: broken HTTP response ({type(e).__name__}: {e})",
                hint="is this a netcfg-txn remote API port, with TLS on both sides?",
            ) from None
        finally:
            conn.close()
        return self._decode(status, raw)

    def _decode(self, status: int, raw: bytes) -> dict[str, Any]:
        try:
            doc = json.loads(raw) if len(raw) <= _MAX_RESPONSE else None
        except ValueError:
            doc = None
        if not isinstance(doc, dict) or not isinstance(doc.get("ok"), bool):
            raise Unavailable(
                f"{self.endpoint}: HTTP {status} without a netcfg-txn JSON reply",
                hint="is this a netcfg-txn remote API port?",
            )
        if not doc["ok"]:
            err = doc.get("error")
            if not isinstance(err, dict):
                raise NetcfgTxnError(f"{self.endpoint}: HTTP {status}, error without details")
            raise from_json(err)
        return {k: v for k, v in doc.items() if k != "ok"}

    def _network_error(self, e: OSError) -> Unavailable:
        where = self.endpoint
        if isinstance(e, ssl.SSLCertVerificationError):
            return Unavailable(
                f"TLS verification failed for host {self.server_name} ({where}): "
                f"{e.verify_message or e.reason}",
                hint="check --ca (the CA that signed the host's certificate) and --server-name",
            )
        if isinstance(e, ssl.SSLError):
            reason = e.reason or str(e)
            hint = None
            if reason in ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE") or "wrong version" in str(
                e
            ):
                hint = "the server does not speak TLS here (plain HTTP?)"
            elif "CERTIFICATE_REQUIRED" in reason or "HANDSHAKE_FAILURE" in reason:
                hint = "the host requires a client certificate: --client-cert/--client-key"
            return Unavailable(f"TLS handshake with {where} failed: {reason}", hint=hint)
        if isinstance(e, ConnectionRefusedError):
            return Unavailable(
                f"connection refused by {where}",
                hint="is netcfg-txnd running with [remote] listen on this address and port?",
            )
        if isinstance(e, socket.gaierror):
            return Unavailable(f"cannot resolve host {self.host}: {e.strerror}")
        if isinstance(e, TimeoutError):
            return Unavailable(f"{where}: no answer within {self.timeout_s:g}s")
        if isinstance(e, ConnectionResetError | BrokenPipeError):
            return Unavailable(
                f"{where}: connection reset by the host",
                hint="a TLS port refusing plain HTTP, or a client certificate that was rejected",
            )
        return Unavailable(f"{where}: {e.strerror or e}")


def _txn_path(txn_id: str, action: str | None = None) -> str:
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,128}", txn_id):
        raise UsageError(f"not a transaction id: {txn_id!r}")
    return f"/v1/transactions/{txn_id}" + (f"/{action}" if action else "")
