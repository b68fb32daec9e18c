# SPDX-License-Identifier: GPL-3.0-or-later
"""``netcfg-txn remote …``: drive another host's transaction over HTTPS through its remote API.
Errors are raised as project errors, which ``cli.main.run`` turns into exit codes and, with
``--json``, one JSON document. Tokens are read from files, never from the command line (they would
show in ``ps``).
"""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import click

from netcfg_txn.cli.options import emit
from netcfg_txn.cli.probes import parse_setting
from netcfg_txn.cli.secret_files import read_secret, write_new_secret
from netcfg_txn.core.errors import ConfigError, UsageError

if TYPE_CHECKING:
    from netcfg_txn.remote.client import RemoteClient

_CLIENT = "netcfg_txn.remote_client"


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
    from netcfg_txn.remote.client import RemoteClient, parse_hostport  # ssl: remote verbs only

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
    emit(
        ctx,
        doc,
        f"{doc.get('version')} (api {doc.get('api')}): {' '.join(doc.get('capabilities', []))}",
    )


@remote.command("status")
@click.pass_context
def remote_status(ctx: click.Context) -> None:
    doc = _client(ctx).status()
    emit(ctx, doc, json.dumps(doc, indent=2, sort_keys=True))


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
        probe_settings=dict(parse_setting(s) for s in probe_settings) or None,
        allow_pending=allow_pending,
    )
    txn = doc.get("transaction") or {}
    token = str(doc.get("token", ""))
    if token_out:
        write_new_secret(token_out, token)
        doc = {**doc, "token": None, "token_file": token_out}
    human = f"transaction {txn.get('id')} open until {_wall(txn)}"
    if not token_out:
        human += f"\ntoken: {token}"
    emit(ctx, doc, human)


@remote.command("arm")
@_txn_option
@_txn_token_option
@click.option("--timeout", required=True, metavar="DURATION", help="New deadline = now + this.")
@click.pass_context
def remote_arm(ctx: click.Context, txn_id: str, txn_token_file: str, timeout: str) -> None:
    """Arm or extend the dead-man timer."""
    doc = _client(ctx).arm(txn_id, read_secret(txn_token_file, "transaction token"), timeout)
    txn = doc.get("transaction") or {}
    emit(ctx, doc, f"transaction {txn_id} open until {_wall(txn)}")


@remote.command("confirm")
@_txn_option
@_txn_token_option
@click.pass_context
def remote_confirm(ctx: click.Context, txn_id: str, txn_token_file: str) -> None:
    """Confirm (commit): proves this peer still reaches the host. Safe to repeat."""
    doc = _client(ctx).confirm(txn_id, read_secret(txn_token_file, "transaction token"))
    emit(ctx, doc, f"transaction {txn_id} committed")


@remote.command("rollback")
@_txn_option
@_txn_token_option
@click.pass_context
def remote_rollback(ctx: click.Context, txn_id: str, txn_token_file: str) -> None:
    """Roll the transaction back now."""
    doc = _client(ctx).rollback(txn_id, read_secret(txn_token_file, "transaction token"))
    txn = doc.get("transaction") or {}
    emit(ctx, doc, f"transaction {txn_id}: {txn.get('phase', 'rolled back')}")


@remote.command("show")
@_txn_option
@click.pass_context
def remote_show(ctx: click.Context, txn_id: str) -> None:
    """Show one transaction."""
    doc = _client(ctx).get(txn_id)
    emit(ctx, doc, json.dumps(doc, indent=2, sort_keys=True))
