# SPDX-License-Identifier: GPL-3.0-or-later
"""``netcfg-txn peer …`` (manage remote peer credentials) and ``netcfg-txn remote …`` (drive another
host's transaction over HTTPS). ``cli.py`` adds both groups; errors are raised as project errors,
which ``cli.run()`` turns into exit codes and, with ``--json``, one JSON document.

The root context's ``obj`` (cli.py's ``Ctx``, or a dict in tests) gives ``--json``, the fake
``--root`` and ``--config`` (a path or a loaded Config), from which ``[remote] peers_dir`` is taken.
Tokens are read from files, never from the command line (they would show in ``ps``).
"""

from __future__ import annotations

import datetime
import json
import os
import time
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import click

from netcfg_txn.core.display import escape
from netcfg_txn.core.errors import ConfigError, UsageError
from netcfg_txn.core.remoteconf import RemoteConfig
from netcfg_txn.remote.client import RemoteClient, parse_hostport, read_secret

DEFAULT_PEER_EXPIRY = "365d"
_PEERS = "netcfg_txn.peers_dir"
_CLIENT = "netcfg_txn.remote_client"


def _parent(ctx: click.Context) -> tuple[bool, Path, Any]:
    """(json, root, config) from the root context's obj: cli.py's Ctx, or a dict in tests."""
    obj = ctx.find_root().obj
    if isinstance(obj, dict):
        return bool(obj.get("json")), Path(obj.get("root") or "/"), obj.get("config")
    out = getattr(obj, "out", None)
    as_json = bool(getattr(out, "as_json", False))
    return as_json, Path(getattr(obj, "root", None) or "/"), getattr(obj, "config", None)


def _emit(ctx: click.Context, doc: dict[str, Any], human: str) -> None:
    """Exactly one JSON document with ``--json``, else the human text."""
    if _parent(ctx)[0]:
        click.echo(json.dumps({"ok": True, **doc}, indent=2, sort_keys=True))
    elif human:
        click.echo(escape(human))  # a remote host's labels and messages: no terminal controls


def _wall(txn: Mapping[str, Any]) -> str:
    """A transaction's deadline for people: local time and seconds left."""
    value = txn.get("deadline_wall_s", txn.get("deadline"))
    if isinstance(value, Mapping):
        value = value.get("wall_s")
    if not isinstance(value, int | float):
        return "?"
    left = value - time.time()
    when = datetime.datetime.fromtimestamp(value).astimezone().isoformat(timespec="seconds")
    return f"{when} (in {max(0, round(left))}s)"


def write_secret(path: str, secret: str) -> None:
    """A new file, 0600 from the start; refuses to overwrite."""
    try:
        fd = os.open(
            path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
        )
    except OSError as e:
        raise UsageError(f"cannot create {path}: {e.strerror}") from None
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(secret + "\n")


# ------------------------------------------------------------------------------------ peer


def _peers_dir(ctx: click.Context, explicit: str | None) -> tuple[PurePosixPath, Path]:
    """``--peers-dir``, else ``[remote] peers_dir`` of the configuration, under the fake root."""
    _, root, cfg = _parent(ctx)
    if explicit:
        return PurePosixPath(os.path.abspath(explicit)), Path("/")
    if isinstance(cfg, str | os.PathLike):
        from netcfg_txn.host import configfiles

        path = Path(cfg)
        cfg = configfiles.load(path) if configfiles.layer_paths(path) else None
    extra = getattr(cfg, "extra", None)
    table = extra.get("remote", {}) if isinstance(extra, Mapping) else {}
    return RemoteConfig.from_toml(table, "config").peers_dir, root


@click.group("peer")
@click.option("--peers-dir", metavar="DIR", help="Override [remote] peers_dir.")
@click.pass_context
def peer(ctx: click.Context, peers_dir: str | None) -> None:
    """Manage the peers allowed to use the remote API (peers.d/NAME.toml)."""
    ctx.meta[_PEERS] = _peers_dir(ctx, peers_dir)


def _expiry(value: str) -> float | None:
    """``never``, an RFC 3339 time, or a duration from now (``90d``, ``12h``)."""
    from netcfg_txn.core.config import parse_duration
    from netcfg_txn.remote.peers import parse_time

    if value == "never":
        return None
    if value[:4].isdigit() and "-" in value:
        return parse_time(value, "--expires")
    try:
        return time.time() + parse_duration(value)
    except ValueError as e:
        raise UsageError(f"--expires: {e} (or an RFC 3339 time, or 'never')") from None


@peer.command("add")
@click.argument("name")
@click.option(
    "--expires",
    default=DEFAULT_PEER_EXPIRY,
    show_default=True,
    help="RFC 3339 time, a duration from now (90d), or 'never'.",
)
@click.option(
    "--operations",
    "operations",
    multiple=True,
    metavar="OPS",
    help="Allowed operations: start arm confirm rollback status diff (default: all but diff); "
    "repeat or comma-separate.",
)
@click.option("--client-subject", help="Bind to this TLS client certificate CN or DN.")
@click.option("--rotate", is_flag=True, help="Replace the token of an existing peer.")
@click.option("--token-out", metavar="FILE", help="Write the token to a new 0600 file instead.")
@click.pass_context
def peer_add(
    ctx: click.Context,
    name: str,
    expires: str,
    operations: tuple[str, ...],
    client_subject: str | None,
    rotate: bool,
    token_out: str | None,
) -> None:
    """Create peer NAME (or rotate its token) and show its token, once."""
    from netcfg_txn.remote.peers import add_peer, list_peers

    directory, root = ctx.meta[_PEERS]
    ops = [o for item in operations for o in item.replace(",", " ").split()] or None
    token = add_peer(
        directory,
        name,
        _expiry(expires),
        ops,
        client_subject=client_subject,
        rotate=rotate,
        root=root,
    )
    added = next((p for p in list_peers(directory, root=root).peers if p.name == name), None)
    doc: dict[str, Any] = {"peer": added.to_json() if added else {"name": name}}
    if token_out:
        write_secret(token_out, token)
        doc["token_file"] = token_out
        _emit(ctx, doc, f"peer {name}: token written to {token_out}")
        return
    doc["token"] = token
    if not _parent(ctx)[0]:
        click.echo(
            f"peer {name}: store this token now (e.g. in a 0600 file on the peer); "
            "it is not kept on this host and cannot be shown again:",
            err=True,
        )
    _emit(ctx, doc, token)


@peer.command("list")
@click.pass_context
def peer_list(ctx: click.Context) -> None:
    """List peers (never their tokens) and any peer file that is being ignored."""
    from netcfg_txn.remote.peers import list_peers

    directory, root = ctx.meta[_PEERS]
    db = list_peers(directory, root=root)
    lines = []
    for p in db.peers:
        j = p.to_json()
        extra = f" subject={j['client_subject']}" if j["client_subject"] else ""
        lines.append(
            f"{p.name}\texpires={j['expires'] or 'never'}\tops={','.join(j['operations'])}{extra}"
        )
    lines += [f"ignored: {why}" for why in db.problems]
    _emit(
        ctx,
        {"peers": [p.to_json() for p in db.peers], "problems": list(db.problems)},
        "\n".join(lines) or "no peers",
    )


@peer.command("revoke")
@click.argument("name")
@click.pass_context
def peer_revoke(ctx: click.Context, name: str) -> None:
    """Remove peer NAME; the daemon stops accepting its token on its next reload."""
    from netcfg_txn.remote.peers import revoke_peer

    directory, root = ctx.meta[_PEERS]
    revoke_peer(directory, name, root=root)
    _emit(ctx, {"revoked": name}, f"peer {name} revoked")


# ---------------------------------------------------------------------------------- remote


@click.group("remote")
@click.option("--host", envvar="NETCFG_TXN_HOST", required=True, help="HOST[:PORT] (7468).")
@click.option("--ca", envvar="NETCFG_TXN_CA", type=click.Path(dir_okay=False), help="Host CA.")
@click.option(
    "--token-file",
    envvar="NETCFG_TXN_TOKEN_FILE",
    type=click.Path(dir_okay=False, allow_dash=True),
    help="File holding this peer's token.",
)
@click.option("--client-cert", type=click.Path(dir_okay=False), help="TLS client certificate.")
@click.option("--client-key", type=click.Path(dir_okay=False), help="Its key (if separate).")
@click.option("--server-name", help="Name to verify the host certificate against.")
@click.option("--connect-timeout", type=float, default=10.0, show_default=True)
@click.option("--insecure-plaintext", is_flag=True, hidden=True)
@click.pass_context
def remote(
    ctx: click.Context,
    host: str,
    ca: str | None,
    token_file: str | None,
    client_cert: str | None,
    client_key: str | None,
    server_name: str | None,
    connect_timeout: float,
    insecure_plaintext: bool,
) -> None:
    """Drive a transaction on another host through its remote API (HTTPS)."""
    hostname, port = parse_hostport(host)
    try:
        ctx.meta[_CLIENT] = RemoteClient(
            hostname,
            port,
            ca_file=ca,
            client_cert=client_cert,
            client_key=client_key,
            peer_token=read_secret(token_file, "peer token") if token_file else None,
            timeout_s=connect_timeout,
            server_name=server_name,
            plaintext=insecure_plaintext,
        )
    except ConfigError as e:
        raise UsageError(e.message, hint=e.hint) from None


def _client(ctx: click.Context) -> RemoteClient:
    client: RemoteClient = ctx.meta[_CLIENT]
    return client


_txn_option = click.option("--txn", "txn_id", required=True, metavar="ID", help="Transaction id.")
_txn_token_option = click.option(
    "--txn-token-file",
    required=True,
    type=click.Path(dir_okay=False, allow_dash=True),
    help="File holding the token that start returned.",
)


@remote.command("version")
@click.pass_context
def remote_version(ctx: click.Context) -> None:
    doc = _client(ctx).version()
    _emit(
        ctx,
        doc,
        f"{doc.get('version')} (api {doc.get('api')}): {' '.join(doc.get('capabilities', []))}",
    )


@remote.command("status")
@click.pass_context
def remote_status(ctx: click.Context) -> None:
    doc = _client(ctx).status()
    _emit(ctx, doc, json.dumps(doc, indent=2, sort_keys=True))


def _settings(items: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq:
            raise UsageError(f"--probe-setting {item!r}: expected KEY=VALUE")
        if value in ("true", "false"):
            out[key] = value == "true"
        elif value.isdigit():
            out[key] = int(value)
        else:
            out[key] = value
    return out


def _no_arm(value: bool) -> None:
    """Removed: it was accepted and silently ignored; a start always arms the timer."""
    if value:
        raise UsageError(
            "--no-arm is not supported: a transaction is always armed at start",
            hint="give start the --timeout you need; move the deadline later with 'remote arm'",
        )


@remote.command("start")
@click.option("--timeout", metavar="DURATION", help="Dead-man timeout (90s, 5m, 1h).")
@click.option("--label", help="Free text shown in status and history.")
@click.option("--probe", "probes", multiple=True, metavar="SPEC", help="tcp:H:P, icmp:H, URL...")
@click.option(
    "--policy",
    type=click.Choice(["manual", "probes", "probes-or-manual"]),
    default="manual",
    show_default=True,
)
@click.option(
    "--probe-setting",
    "probe_settings",
    multiple=True,
    metavar="KEY=VALUE",
    help="settle_s, interval_s, timeout_s, retries, rounds, on_failure.",
)
@click.option("--no-arm", is_flag=True, hidden=True, callback=lambda _c, _p, v: _no_arm(v))
@click.option("--allow-pending", is_flag=True, help="Start despite out-of-band edits.")
@click.option("--token-out", metavar="FILE", help="Write the transaction token to a new 0600 file.")
@click.pass_context
def remote_start(
    ctx: click.Context,
    timeout: str | None,
    label: str | None,
    probes: tuple[str, ...],
    policy: str,
    probe_settings: tuple[str, ...],
    allow_pending: bool,
    token_out: str | None,
) -> None:
    """Start a transaction; prints its id, deadline and token."""
    doc = _client(ctx).start(
        timeout=timeout,
        label=label,
        probes=probes,
        policy=policy,
        probe_settings=_settings(probe_settings) or None,
        allow_pending=allow_pending,
    )
    txn = doc.get("transaction") or {}
    token = str(doc.get("token", ""))
    if token_out:
        write_secret(token_out, token)
        doc = {**doc, "token": None, "token_file": token_out}
    human = f"transaction {txn.get('id')} open until {_wall(txn)}"
    if not token_out:
        human += f"\ntoken: {token}"
    _emit(ctx, doc, human)


@remote.command("arm")
@_txn_option
@_txn_token_option
@click.option("--timeout", required=True, metavar="DURATION", help="New deadline = now + this.")
@click.pass_context
def remote_arm(ctx: click.Context, txn_id: str, txn_token_file: str, timeout: str) -> None:
    """Arm or extend the dead-man timer."""
    doc = _client(ctx).arm(txn_id, read_secret(txn_token_file, "transaction token"), timeout)
    txn = doc.get("transaction") or {}
    _emit(ctx, doc, f"transaction {txn_id} open until {_wall(txn)}")


@remote.command("confirm")
@_txn_option
@_txn_token_option
@click.pass_context
def remote_confirm(ctx: click.Context, txn_id: str, txn_token_file: str) -> None:
    """Confirm (commit): proves this peer still reaches the host. Safe to repeat."""
    doc = _client(ctx).confirm(txn_id, read_secret(txn_token_file, "transaction token"))
    _emit(ctx, doc, f"transaction {txn_id} committed")


@remote.command("rollback")
@_txn_option
@_txn_token_option
@click.pass_context
def remote_rollback(ctx: click.Context, txn_id: str, txn_token_file: str) -> None:
    """Roll the transaction back now."""
    doc = _client(ctx).rollback(txn_id, read_secret(txn_token_file, "transaction token"))
    txn = doc.get("transaction") or {}
    _emit(ctx, doc, f"transaction {txn_id}: {txn.get('phase', 'rolled back')}")


@remote.command("show")
@_txn_option
@click.pass_context
def remote_show(ctx: click.Context, txn_id: str) -> None:
    """Show one transaction."""
    doc = _client(ctx).get(txn_id)
    _emit(ctx, doc, json.dumps(doc, indent=2, sort_keys=True))
