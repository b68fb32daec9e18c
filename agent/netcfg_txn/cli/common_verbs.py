# SPDX-License-Identifier: GPL-3.0-or-later
"""status, commit and rollback: the commonest verbs. No click here, so the fast path
(``cli.fastpath``) runs them without importing it; the click commands call the same functions."""

from __future__ import annotations

import sys
from typing import Any

from netcfg_txn.cli.context import Ctx
from netcfg_txn.cli.output import changed_human, status_human, txn_human, txn_path
from netcfg_txn.core.errors import ExitCode, Failed, NotPermitted, Unavailable


def show_status(c: Ctx) -> None:
    """The daemon's status, else the state directory's; exit 1 while the last rollback failed."""
    try:
        doc = c.call("GET", "/v1/status")
        _config_warning(c, doc)
    except (Unavailable, NotPermitted):  # the state dir may still be readable
        doc = c.offline_engine().status()
        doc["offline"] = True
        _config_warning(c, doc, quiet=True)
    c.out.result(doc, status_human(doc))
    if (doc.get("last") or {}).get("outcome") == "failed":
        # Monitoring and scripts must notice: non-zero until a retry (or a later
        # transaction) ends well.
        c.out.info("The last rollback FAILED; retry it with: netcfg-txn rollback --force")
        sys.exit(ExitCode.FAILURE)


def _config_warning(c: Ctx, doc: dict[str, Any], *, quiet: bool = False) -> None:
    """A config that no longer parses is shown loudly, with what is used instead."""
    from netcfg_txn.core.errors import ConfigError
    from netcfg_txn.host import configfiles

    try:
        configfiles.load(c.config, state_dir=c.state_dir)
    except ConfigError as e:
        doc["config_error"] = e.message
        if not quiet:
            c.out.info(
                f"WARNING: the configuration is invalid: {e.message}; the daemon keeps the "
                "config it loaded last and an open transaction rolls back with the settings "
                "frozen at its start"
            )


def commit(c: Ctx, token: str | None, txn_id: str | None, force: bool) -> None:
    doc = c.call("POST", txn_path(txn_id, "confirm"), {"force": True} if force else {}, token=token)
    t = doc["transaction"]
    msg = "already committed" if doc.get("already_committed") else "committed"
    c.out.result(doc, "\n".join([f"Transaction {t['id']} {msg}.", *changed_human(doc, "kept")]))


def rollback(c: Ctx, token: str | None, txn_id: str | None, force: bool) -> None:
    try:
        doc = c.call("POST", txn_path(txn_id, "rollback"), {"force": force}, token=token)
    except Failed as e:  # the files it overwrote matter most when it failed
        for line in changed_human(e.details, "restored"):
            c.out.info(line)
        raise
    c.out.result(doc, "\n".join([txn_human(doc["transaction"]), *changed_human(doc, "restored")]))
