# SPDX-License-Identifier: GPL-3.0-or-later
"""The HTTP/JSON API: one aiohttp app served on the root-only Unix control socket and, when
enabled, on a TLS TCP site for remote callers. Routes, authentication, and JSON envelopes only;
all decisions live in the service (daemon) and engine.

Envelopes: ``{"ok": true, ...}`` or ``{"ok": false, "error": {"code", "message", "hint"}}`` with
the HTTP status of the error class. The ``code`` strings are the CLI's.
"""

from __future__ import annotations

import json
import logging
import math
import socket
import struct
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from aiohttp import web

from netcfg_txn import __version__
from netcfg_txn.core import redact
from netcfg_txn.core.config import parse_duration
from netcfg_txn.core.errors import (
    BadRequest,
    Failed,
    InternalError,
    NetcfgTxnError,
    NotFound,
    NotPermitted,
)
from netcfg_txn.core.model import Actor
from netcfg_txn.core.tokens import TOKEN_HEADER

log = logging.getLogger(__name__)

API_VERSION = 1
CAPABILITIES = [
    "start",
    "arm",
    "confirm",
    "rollback",
    "status",
    "history",
    "diff",
    "plan",
    "bounce-changed-only",
    "idempotent-confirm",
    "boot-rollback",
    "crash-safe-snapshot",
]

RemoteAuth = Callable[[web.Request, str], Actor]


class Service(Protocol):
    """What the daemon offers the API. Every call is serialized and all-or-nothing."""

    async def start(self, actor: Actor, body: Mapping[str, Any]) -> dict[str, Any]: ...
    async def extend(self, actor: Actor, txn_id: str | None, token: str | None,
                     body: Mapping[str, Any]) -> dict[str, Any]: ...  # fmt: skip
    async def confirm(
        self, actor: Actor, txn_id: str | None, token: str | None, force: bool = False
    ) -> dict[str, Any]: ...
    async def rollback(self, actor: Actor, txn_id: str | None, token: str | None,
                       body: Mapping[str, Any]) -> dict[str, Any]: ...  # fmt: skip
    async def status(self) -> dict[str, Any]: ...
    async def get(self, txn_id: str) -> dict[str, Any]: ...
    async def history(self, limit: int) -> dict[str, Any]: ...
    async def diff(self) -> dict[str, Any]: ...
    async def preview(self) -> dict[str, Any]: ...
    def capabilities(self) -> list[str]: ...


# ------------------------------------------------------------------------------ request bodies

_FIELDS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "start": {
        "timeout": (str, int, float),
        "label": str,
        "allow_pending": bool,
        "probes": list,
        "policy": str,
        "arm": bool,
        "fail_fast": bool,
        "rounds": int,
        "probe_settings": dict,
    },
    "arm": {"timeout": (str, int, float), "force": bool},
    "confirm": {"force": bool},
    "rollback": {"force": bool},
}


async def read_body(request: web.Request, op: str) -> dict[str, Any]:
    """A JSON object with known fields of the right types, or BadRequest naming what is wrong."""
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        doc = json.loads(raw, parse_constant=_no_constant, parse_float=_finite_float)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadRequest(f"request body is not valid JSON: {e}") from None
    except ValueError as e:  # NaN, Infinity, 1e999, an integer of thousands of digits
        raise BadRequest(f"request body: {e}") from None
    if not isinstance(doc, dict):
        raise BadRequest("request body must be a JSON object")
    allowed = _FIELDS[op]
    for key, value in doc.items():
        if key not in allowed:
            known = ", ".join(allowed) or "none"
            raise BadRequest(f"unknown field {key!r} for {op} (known: {known})")
        want = allowed[key]
        if isinstance(value, bool) and want in (int, (str, int, float)):
            raise BadRequest(f"field {key!r} has the wrong type")
        if not isinstance(value, want):
            raise BadRequest(f"field {key!r} has the wrong type")
    if "timeout" in doc:
        try:
            doc["timeout_s"] = parse_duration(doc.pop("timeout"))
        except (ValueError, OverflowError) as e:
            raise BadRequest(f"field 'timeout': {e}") from None
    if doc.get("arm") is False:  # accepted once and silently ignored: say so instead
        raise BadRequest(
            "field 'arm': false is not supported: a transaction is always armed at start",
            hint="start it with the timeout you need, then move the deadline with arm",
        )
    if "label" in doc:
        if len(doc["label"]) > 200:
            raise BadRequest("field 'label' is longer than 200 characters")
        if not doc["label"].isprintable():
            # Labels are printed on admins' terminals: no escapes, CR or other controls.
            raise BadRequest("field 'label' contains control or non-printable characters")
    return doc


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]!r} is out of range")
    return value


# ---------------------------------------------------------------------------------- identity


def peer_credentials(request: web.Request) -> tuple[int, int, int] | None:
    """(pid, uid, gid) of a Unix-socket client, or None for a TCP client."""
    sock: socket.socket | None = (
        request.transport.get_extra_info("socket") if request.transport else None
    )
    if sock is None or sock.family != socket.AF_UNIX:
        return None
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return pid, uid, gid


def _command_of(pid: int) -> str | None:
    try:
        import psutil

        # The journal's ACTOR and remote status show this: never a token given on the command line.
        argv = redact.redact_argv(psutil.Process(pid).cmdline())
        return " ".join(argv)[:300] or None
    except Exception:
        return None


def actor_for(request: web.Request, op: str) -> Actor:
    creds = peer_credentials(request)
    if creds is not None:
        pid, uid, _gid = creds
        if uid != 0 and op not in ("version",):
            raise NotPermitted(f"only root may use the control socket (you are uid {uid})")
        return Actor(kind="local", uid=uid, pid=pid, command=_command_of(pid))
    auth: RemoteAuth | None = request.app.get("netcfg.remote_auth")
    if auth is None:
        raise NotPermitted("remote access is not enabled")
    actor = auth(request, op)
    request["netcfg.remote_op"] = op  # a later BadToken (wrong txn token) counts as a failure
    return actor


def _token(request: web.Request) -> str | None:
    value = request.headers.get(TOKEN_HEADER)
    if value is None:
        return None
    value = value.strip()
    if not value or len(value) > 512:
        raise BadRequest(f"{TOKEN_HEADER} is empty or too long")
    if not (value.isascii() and value.isprintable()):
        # aiohttp hands undecodable header bytes over as surrogates; tokens are URL-safe ASCII.
        raise BadRequest(f"{TOKEN_HEADER} must be printable ASCII")
    return value


def _txn_id(request: web.Request) -> str | None:
    value = request.match_info["id"]
    if value == "current":
        return None
    if len(value) > 64 or not all(c.isalnum() or c in "-_T" for c in value):
        raise BadRequest("malformed transaction id")
    return value


# ------------------------------------------------------------------------------------ app


def _ok(doc: Mapping[str, Any], status: int = 200) -> web.Response:
    return web.json_response({"ok": True, **doc}, status=status)


def _error(err: NetcfgTxnError) -> web.Response:
    return web.json_response({"ok": False, "error": err.to_json()}, status=err.http_status)


@web.middleware
async def _errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except NetcfgTxnError as e:
        if isinstance(e, NotPermitted) and "netcfg.remote_op" in request:
            request.app["netcfg.remote_auth"].failed(request, request["netcfg.remote_op"], e)
        if "netcfg.remote_op" in request:  # a failed rollback's message quotes command output
            return web.json_response(
                {"ok": False, "error": redact.redact_doc(e.to_json())}, status=e.http_status
            )
        return _error(e)
    except OSError as e:  # the state disk is full or failing: say so, not "internal error"
        log.error("%s %s: %s", request.method, request.path, e)
        where = f"{e.filename}: " if e.filename else ""
        return _error(Failed(f"{where}{e.strerror or e}", hint="check the state directory's disk"))
    except web.HTTPRequestEntityTooLarge:
        return _error(BadRequest("request body too large"))
    except web.HTTPNotFound:
        return _error(NotFound(f"no such route: {request.method} {request.path}"))
    except web.HTTPMethodNotAllowed:
        return _error(BadRequest(f"method {request.method} not allowed on {request.path}"))
    except web.HTTPException as e:
        return _error(BadRequest(f"{e.status}: {e.reason}"))
    except Exception:
        log.exception("internal error serving %s %s (this is a bug)", request.method, request.path)
        return _error(InternalError("internal error; see the daemon log"))


def _for(actor: Actor, doc: Mapping[str, Any]) -> dict[str, Any]:
    """What a caller sees: remote peers get secrets redacted from every text (command output in
    step results and errors can quote a config line)."""
    if actor.kind == "remote":
        return dict(redact.redact_doc(doc))
    return dict(doc)


def make_app(service: Service, *, max_body: int = 64 * 1024) -> web.Application:
    app = web.Application(middlewares=[_errors], client_max_size=max_body)
    routes = web.RouteTableDef()

    @routes.get("/v1/version")
    async def version(request: web.Request) -> web.Response:
        actor_for(request, "version")  # any user locally; a peer token on the TLS listener
        return _ok(
            {"version": __version__, "api": API_VERSION, "capabilities": service.capabilities()}
        )

    @routes.get("/v1/status")
    async def status(request: web.Request) -> web.Response:
        actor = actor_for(request, "status")
        doc = await service.status()
        if actor.kind == "remote":
            if isinstance(doc.get("probes"), Mapping):
                doc = {**doc, "probes": redact.probes_pass_fail(doc["probes"])}
            doc = redact.redact_doc(doc)
        return _ok(doc)

    @routes.post("/v1/transactions")
    async def start(request: web.Request) -> web.Response:
        actor = actor_for(request, "start")
        body = await read_body(request, "start")
        return _ok(await service.start(actor, body), status=201)

    @routes.get("/v1/transactions/{id}")
    async def get(request: web.Request) -> web.Response:
        actor = actor_for(request, "status")
        tid = _txn_id(request)
        return _ok(_for(actor, await service.get(tid or "current")))

    @routes.post("/v1/transactions/{id}/arm")
    async def arm(request: web.Request) -> web.Response:
        actor = actor_for(request, "arm")
        body = await read_body(request, "arm")
        if "timeout_s" not in body:
            raise BadRequest("field 'timeout' is required for arm")
        if body.get("force") and actor.kind == "remote":
            # force re-arms a file set that was already rolled back: the local admin's call only
            raise NotPermitted("only local root may force an arm")
        return _ok(await service.extend(actor, _txn_id(request), _token(request), body))

    @routes.post("/v1/transactions/{id}/confirm")
    async def confirm(request: web.Request) -> web.Response:
        actor = actor_for(request, "confirm")
        body = await read_body(request, "confirm")
        force = bool(body.get("force", False))
        if force and actor.kind == "remote":
            # keeping a file set that was rolled back before: the local admin's call only
            raise NotPermitted("only local root may force a confirm")
        return _ok(await service.confirm(actor, _txn_id(request), _token(request), force))

    @routes.post("/v1/transactions/{id}/rollback")
    async def rollback(request: web.Request) -> web.Response:
        actor = actor_for(request, "rollback")
        body = await read_body(request, "rollback")
        return _ok(await service.rollback(actor, _txn_id(request), _token(request), body))

    @routes.get("/v1/history")
    async def history(request: web.Request) -> web.Response:
        actor = actor_for(request, "status")
        try:
            limit = int(request.query.get("limit", "20"))
        except ValueError:
            raise BadRequest("limit must be an integer") from None
        if not 1 <= limit <= 1000:
            raise BadRequest("limit must be between 1 and 1000")
        return _ok(_for(actor, await service.history(limit)))

    # File contents and the rollback plan: their own peer operation, not granted by default.
    @routes.get("/v1/plan")
    async def preview(request: web.Request) -> web.Response:
        actor = actor_for(request, "diff")
        return _ok(_for(actor, await service.preview()))

    @routes.get("/v1/diff")
    async def diff(request: web.Request) -> web.Response:
        actor = actor_for(request, "diff")
        doc = await service.diff()
        return _ok(_for(actor, {**doc, "files": redact.redact_files(doc.get("files", []))}))

    app.add_routes(routes)
    return app
