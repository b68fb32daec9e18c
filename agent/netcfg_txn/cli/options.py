# SPDX-License-Identifier: GPL-3.0-or-later
"""The click glue the verbs share: the context decorator, the options several verbs take, and
the root options and output of the peer and remote groups (which tests mount under their own
parent)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from netcfg_txn.cli.context import Ctx
from netcfg_txn.core.display import escape

F = TypeVar("F", bound=Callable[..., Any])

pass_ctx = click.make_pass_decorator(Ctx)


def duration_arg(value: str | None) -> float | None:
    """A duration option checked before anything is sent: a typo is a usage error (exit 2)."""
    if value is None:
        return None
    from netcfg_txn.core.units import parse_duration

    try:
        return parse_duration(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


def token_options(f: F) -> F:
    """``--id`` and ``--token`` of the verbs that act on one transaction."""
    f = click.option("--id", "txn_id", help="Transaction id (default: the open one).")(f)
    f = click.option("--token", envvar="NETCFG_TXN_TOKEN", help="The transaction's token.")(f)
    return f


def root_settings(ctx: click.Context) -> tuple[bool, Path, Any]:
    """(json, root, config) from the root context's obj: a ``Ctx``, or a dict in the peer and
    remote tests."""
    obj = ctx.find_root().obj
    if isinstance(obj, dict):
        return bool(obj.get("json")), Path(obj.get("root") or "/"), obj.get("config")
    out = getattr(obj, "out", None)
    as_json = bool(getattr(out, "as_json", False))
    return as_json, Path(getattr(obj, "root", None) or "/"), getattr(obj, "config", None)


def emit(ctx: click.Context, doc: dict[str, Any], human: str) -> None:
    """Exactly one JSON document with ``--json``, else the human text."""
    if root_settings(ctx)[0]:
        click.echo(json.dumps({"ok": True, **doc}, indent=2, sort_keys=True))
    elif human:
        click.echo(escape(human))  # a remote host's labels and messages: no terminal controls
