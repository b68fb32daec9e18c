# SPDX-License-Identifier: GPL-3.0-or-later
"""Client for a host's remote API: the API client (``netcfg_txn.client``) over HTTPS, with the
peer's bearer token, the certificate checked against the host's stable name, and what each TLS,
DNS and TCP failure means said in the error."""

from __future__ import annotations

import http.client
import os
import re
import socket
import ssl
from collections.abc import Sequence
from typing import Any

from netcfg_txn.client import ApiClient, BrokenReply
from netcfg_txn.core.errors import NetcfgTxnError, Unavailable, UsageError
from netcfg_txn.core.remoteconf import DEFAULT_PORT
from netcfg_txn.remote import ratelimit as _ratelimit  # noqa: F401  (registers the rate-limited code)
from netcfg_txn.remote.tls import client_context

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


class Tls:
    """The remote listener: HTTPS (plain HTTP only for tests, ``plaintext``)."""

    def __init__(
        self,
        host: str,
        port: int,
        context: ssl.SSLContext | None,
        server_name: str,
        timeout_s: float,
    ) -> None:
        self.host = host
        self.port = port
        self.context = context
        self.server_name = server_name
        self.timeout_s = timeout_s

    @property
    def where(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def exchange(
        self, method: str, path: str, headers: dict[str, str], body: bytes | None
    ) -> tuple[int, bytes]:
        conn: http.client.HTTPConnection
        if self.context is None:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)
        else:
            conn = _Connection(self.host, self.port, self.timeout_s, self.context, self.server_name)
        try:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            raw = resp.read(_MAX_RESPONSE + 1)
            if len(raw) > _MAX_RESPONSE:  # not a reply of ours: refuse to parse it
                raw = b""
            return resp.status, raw
        except OSError:  # RemoteDisconnected is both: the reset is what the caller must hear
            raise
        except http.client.HTTPException as e:
            raise BrokenReply(f"{type(e).__name__}: {e}") from None
        finally:
            conn.close()

    def bad_reply(self, status: int) -> NetcfgTxnError:
        return Unavailable(
            f"{self.where}: HTTP {status} without a netcfg-txn JSON reply",
            hint="is this a netcfg-txn remote API port?",
        )

    def broken_reply(self, e: BrokenReply) -> NetcfgTxnError:
        return Unavailable(
            f"{self.where}: broken HTTP response ({e})",
            hint="is this a netcfg-txn remote API port, with TLS on both sides?",
        )

    def network_error(self, e: OSError) -> NetcfgTxnError:
        where = self.where
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


class RemoteClient:
    """The remote API's operations; each returns the reply without its ``"ok"``."""

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
        context = None if plaintext else client_context(ca_file, client_cert, client_key)
        self.transport = Tls(host, port, context, server_name or host, timeout_s)
        self._api = ApiClient(self.transport, bearer=peer_token)

    def version(self) -> dict[str, Any]:
        return self._call("GET", "/v1/version")

    def status(self) -> dict[str, Any]:
        return self._call("GET", "/v1/status")

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

    def _call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        txn_token: str | None = None,
    ) -> dict[str, Any]:
        doc = self._api.request(method, path, body, token=txn_token or None)
        return {k: v for k, v in doc.items() if k != "ok"}


def _txn_path(txn_id: str, action: str | None = None) -> str:
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,128}", txn_id):
        raise UsageError(f"not a transaction id: {txn_id!r}")
    return f"/v1/transactions/{txn_id}" + (f"/{action}" if action else "")
