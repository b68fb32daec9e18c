# SPDX-License-Identifier: GPL-3.0-or-later
"""The read-only verbs: status, diff, plan and history. Each asks the daemon and, when it is not
running (or its socket is not for this user), reads the state directory instead."""

from __future__ import annotations

import click

from netcfg_txn.cli import common_verbs
from netcfg_txn.cli.context import Ctx
from netcfg_txn.cli.options import pass_ctx


@click.command()
@pass_ctx
def status(c: Ctx) -> None:
    """Open transaction, time left, edits and the last outcome. Works without the daemon."""
    common_verbs.show_status(c)


@click.command()
@pass_ctx
def diff(c: Ctx) -> None:
    """Unified diff of the managed files since the snapshot.

    With no transaction open: the edits made outside one, since the last commit or rollback.
    """
    common_verbs.diff(c)


@click.command("plan")
@pass_ctx
def plan_cmd(c: Ctx) -> None:
    """What a rollback would do right now (files and interfaces), without doing it."""
    common_verbs.plan(c)


@click.command()
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000))
@pass_ctx
def history(c: Ctx, limit: int) -> None:
    """Finished transactions, newest first."""
    common_verbs.history(c, limit)
