# SPDX-License-Identifier: GPL-3.0-or-later
"""The verbs systemd and administrators run on the host itself, without the daemon:
boot-rollback, backstop, and config check/show."""

from __future__ import annotations

import click

from netcfg_txn.cli import common_verbs
from netcfg_txn.cli.context import Ctx
from netcfg_txn.cli.options import pass_ctx


@click.command("boot-rollback")
@click.option(
    "--config", "config_path", default=None, help="Config file (default: the global one)."
)
@click.option("--root", default=None, help="Root of the managed system (default: /).")
@click.option("--state-dir", default=None, help="State directory (default: [state] dir).")
@pass_ctx
def boot_rollback(c: Ctx, config_path: str | None, root: str | None, state_dir: str | None) -> None:
    """Roll back a transaction left open by a crash or power loss (files only; no daemon).

    Run by netcfg-txn-boot-rollback.service before networking starts. Exits 0 with nothing to do,
    1 if a restore failed, 75 while the daemon holds the state lock. --config, --root and
    --state-dir are accepted before or after the verb.
    """
    if config_path is not None:
        c.config_given = config_path
    if root is not None:
        c.root_given = root
    if state_dir is not None:
        c.state_given = state_dir
    common_verbs.boot_rollback(c)


@click.command("backstop")
@click.option("--id", "txn_id", help="The transaction the timer was armed for.")
@pass_ctx
def backstop_cmd(c: Ctx, txn_id: str | None) -> None:
    """Roll back an overdue transaction when netcfg-txnd could not (run by systemd).

    Started by the transient timer netcfg-txn-backstop-ID-*.timer a grace period after the
    deadline, and by netcfg-txn-backstop.service when netcfg-txnd.service fails. Does nothing
    unless the transaction is still open (or mid-rollback without progress) past its deadline;
    then it kills netcfg-txnd if it holds the state lock and rolls back from the frozen config.
    """
    from netcfg_txn import backstop
    from netcfg_txn.core.errors import Failed
    from netcfg_txn.host import sd

    sd.setup_logging("netcfg-txn", "INFO")
    engine = c.offline_engine()
    engine.store.ensure()
    assert isinstance(engine.backstop, backstop.SystemdBackstop)
    doc = backstop.run_backstop(engine, engine.backstop, txn_id)
    if doc.get("action") == "failed" or doc.get("errors") or doc.get("phase") == "failed":
        raise Failed(f"backstop rollback of {doc.get('transaction')} failed", details=doc)
    c.out.result(doc, f"backstop: {doc['action']} {doc.get('transaction', '')}".rstrip())


@click.group()
def config() -> None:
    """Inspect the configuration."""


@config.command("check")
@pass_ctx
def config_check(c: Ctx) -> None:
    """Validate the configuration; exit 78 naming the file and key if it is invalid.

    netcfg-txnd.service runs it before every reload, so 'systemctl reload' with a broken
    file fails visibly and the daemon keeps its old config.
    """
    common_verbs.config_check(c)


@config.command("show")
@pass_ctx
def config_show(c: Ctx) -> None:
    """Print the effective configuration (all layers merged)."""
    common_verbs.config_show(c)
