# SPDX-License-Identifier: GPL-3.0-or-later
"""The CLI's side of the control socket: HTTP/1.1 over AF_UNIX with the stdlib, so ``status``
starts fast (no aiohttp import)."""

from __future__ import annotations

import http.client
import json
import socket
from typing import Any

from netcfg_txn.core.errors import InternalError, NotPermitted, Unavailable, from_json

TOKEN_HEADER = "X-Netcfg-Txn-Token"


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self._path)
        self.sock = s


def call(
    sock_path: str,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    *,
    token: str | None = None,
    timeout_s: float = 600.0,
) -> dict[str, Any]:
    """One request; returns the success document or raises the daemon's error class."""
    conn = _UnixConnection(sock_path, timeout_s)
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers[TOKEN_HEADER] = token
    data = json.dumps(body).encode() if body is not None else None
    try:
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
    except FileNotFoundError:
        raise Unavailable(
            f"the daemon is not running (no control socket at {sock_path})",
            hint="start it with 'systemctl start netcfg-txnd'",
        ) from None
    except PermissionError:  # the daemon is there, but the 0600 socket is not for this user
        raise NotPermitted(
            f"permission denied on {sock_path}",
            hint="the control socket is root-only: run it with sudo",
        ) from None
    except ConnectionRefusedError:
        raise Unavailable(f"the daemon is not accepting connections on {sock_path}") from None
    except TimeoutError:
        raise Unavailable(f"no answer from the daemon within {timeout_s:g}s") from None
    except OSError as e:
        raise Unavailable(f"cannot talk to the daemon at {sock_path}: {e}") from None
    finally:
        conn.close()
    try:
        doc = json.loads(raw)
    except ValueError:
        raise InternalError(f"the daemon sent a non-JSON reply (HTTP {resp.status})") from None
    if not isinstance(doc, dict):
        raise InternalError("the daemon sent a malformed reply")
    if not doc.get("ok"):
        raise from_json(doc.get("error") or {})
    return doc
