# SPDX-License-Identifier: GPL-3.0-or-later
"""``netcfg-txn peer …``: manage the credentials of the peers allowed to use the remote API
(``peers.d/NAME.toml`` under ``[remote] peers_dir``). Errors are raised as project errors, which
``cli.main.run`` turns into exit codes and, with ``--json``, one JSON document.

The root context's ``obj`` (a ``Ctx``, or a dict in tests) gives ``--json``, the fake ``--root``
and ``--config`` (a path or a loaded Config), from which ``[remote] peers_dir`` is taken. Tokens
are shown once or written to a new 0600 file, never kept on this host.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import click

from netcfg_txn.cli.options import emit, root_settings
from netcfg_txn.cli.secret_files import write_new_secret
from netcfg_txn.core.errors import UsageError

DEFAULT_PEER_EXPIRY = "365d"
_PEERS = "netcfg_txn.peers_dir"


def _peers_dir(ctx: click.Context, explicit: str | None) -> tuple[PurePosixPath, Path]:
    """``--peers-dir``, else ``[remote] peers_dir`` of the configuration, under the fake root."""
    _, root, cfg = root_settings(ctx)
    if explicit:
        return PurePosixPath(os.path.abspath(explicit)), Path("/")
    if isinstance(cfg, str | os.PathLike):
        from netcfg_txn.host import configfiles

        path = Path(cfg)
        cfg = configfiles.load(path) if configfiles.layer_paths(path) else None
    extra = getattr(cfg, "extra", None)
    table = extra.get("remote", {}) if isinstance(extra, Mapping) else {}
    from netcfg_txn.core.remoteconf import RemoteConfig

    return RemoteConfig.from_toml(table, "config").peers_dir, root


@click.group("peer")
@click.option("--peers-dir", metavar="DIR", help="Override [remote] peers_dir.")
@click.pass_context
def peer(ctx: click.Context, peers_dir: str | None) -> None:
    """Manage the peers allowed to use the remote API (peers.d/NAME.toml)."""
    ctx.meta[_PEERS] = _peers_dir(ctx, peers_dir)


def _expiry(value: str) -> float | None:
    """``never``, an RFC 3339 time, or a duration from now (``90d``, ``12h``)."""
    from netcfg_txn.core.units import parse_duration
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
        write_new_secret(token_out, token)
        doc["token_file"] = token_out
        emit(ctx, doc, f"peer {name}: token written to {token_out}")
        return
    doc["token"] = token
    if not root_settings(ctx)[0]:
        click.echo(
            f"peer {name}: store this token now (e.g. in a 0600 file on the peer); "
            "it is not kept on this host and cannot be shown again:",
            err=True,
        )
    emit(ctx, doc, token)


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
    emit(
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
    emit(ctx, {"revoked": name}, f"peer {name} revoked")
