# SPDX-License-Identifier: GPL-3.0-or-later
"""The verbs that change a transaction through the daemon: start, commit (confirm), rollback,
extend and try."""

from __future__ import annotations

import select
import sys
import time
from typing import Any, NoReturn

import click

from netcfg_txn.cli import common_verbs
from netcfg_txn.cli.context import Ctx
from netcfg_txn.cli.options import duration_arg, pass_ctx, token_options
from netcfg_txn.cli.output import duration, txn_human, txn_path, when
from netcfg_txn.cli.probes import probe_options
from netcfg_txn.core.display import escape_line
from netcfg_txn.core.errors import Failed, NotKept, NoTransaction


@click.command()
@click.option("--timeout", help="Dead-man timeout: 90, 90s, 5m, 1h (default: [timer] default).")
@click.option(
    "--allow-pending", is_flag=True, help="Snapshot even if files changed outside a transaction."
)
@click.option("--label", default="", help="A note shown in status and history.")
@click.option(
    "--token-file", type=click.Path(dir_okay=False), help="Also write the token here (0600)."
)
@probe_options
@pass_ctx
def start(
    c: Ctx,
    timeout: str | None,
    allow_pending: bool,
    label: str,
    token_file: str | None,
    probe_request: dict[str, Any],
) -> None:
    """Snapshot the managed files and arm the dead-man timer.

    With --probe, the daemon runs the health checks after the settle time; a failing one rolls
    the change back at once (reason health) unless --probe-failure ignore.
    """
    if timeout is not None:
        duration_arg(timeout)
    common_verbs.start(c, timeout, allow_pending, label, token_file, probe_request)


@click.command()
@token_options
@click.option(
    "--force", is_flag=True, help="Keep even a file set that was rolled back before (logged)."
)
@pass_ctx
def commit(c: Ctx, token: str | None, txn_id: str | None, force: bool) -> None:
    """Keep the change: drop the snapshot and disarm the timer (alias: confirm)."""
    common_verbs.commit(c, token, txn_id, force)


@click.command()
@token_options
@click.option(
    "--force",
    is_flag=True,
    help="Local root only: roll back without the token (logged, reason forced); after a failed "
    "rollback, run the restore again.",
)
@pass_ctx
def rollback(c: Ctx, token: str | None, txn_id: str | None, force: bool) -> None:
    """Restore the snapshot now and bounce the interfaces whose configuration changed."""
    common_verbs.rollback(c, token, txn_id, force)


@click.command()
@click.option("--timeout", required=True, help="New deadline = now + this (90s, 5m, 1h).")
@click.option(
    "--force", is_flag=True, help="Arm even a file set that was rolled back before (logged)."
)
@token_options
@pass_ctx
def extend(c: Ctx, timeout: str, force: bool, token: str | None, txn_id: str | None) -> None:
    """Move the deadline (the only way it moves)."""
    duration_arg(timeout)
    common_verbs.extend(c, timeout, force, token, txn_id)


def _ask_keep(deadline_wall: float) -> bool | None:
    """Countdown prompt on a TTY: True keep, False roll back, None out of time."""
    sys.stderr.write("\n")
    while True:
        left = deadline_wall - time.time()
        if left <= 0:
            sys.stderr.write("\n")
            return None
        sys.stderr.write(f"\rKeep this configuration? [y/N] (rolls back in "
                         f"{duration(left):>8}) ")  # fmt: skip
        sys.stderr.flush()
        ready, _, _ = select.select([sys.stdin], [], [], min(1.0, left))
        if ready:
            answer = sys.stdin.readline().strip().lower()
            return answer in ("y", "yes")


def _not_kept(t: dict[str, Any], why: str) -> NoReturn:
    """Exit 3 when the snapshot is back; 1 (with the failures) when the rollback failed."""
    if t.get("phase") == "failed" or t.get("errors"):
        raise Failed(
            f"{why}; transaction {t['id']} rollback FAILED: " + "; ".join(t.get("errors", [])),
            details={"transaction": t},
        )
    raise NotKept(
        f"{why}; transaction {t['id']} was rolled back: the change was not kept",
        details={"transaction": t},
    )


def _wait_ended(c: Ctx, txn_id: str, timeout_s: float = 600.0) -> dict[str, Any]:
    """The transaction once the daemon has finished with it (its rollback may take a while)."""
    end = time.monotonic() + timeout_s
    while True:
        t: dict[str, Any] = c.call("GET", f"/v1/transactions/{txn_id}")["transaction"]
        if t["phase"] in ("committed", "rolled-back", "failed") or time.monotonic() > end:
            return t
        time.sleep(0.2)


@click.command(name="try", context_settings={"ignore_unknown_options": True})
@click.option("--timeout", help="Dead-man timeout (default: [timer] default).")
@click.option(
    "--allow-pending", is_flag=True, help="Snapshot even if files changed outside a transaction."
)
@probe_options
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@pass_ctx
def try_(
    c: Ctx,
    timeout: str | None,
    allow_pending: bool,
    command: tuple[str, ...],
    probe_request: dict[str, Any],
) -> None:
    """Start, run COMMAND, then ask whether to keep the result.

    COMMAND is e.g. 'ifup eth0'. Without a TTY the transaction stays armed and the command says
    how to confirm it. Exits 0 only if the change was kept (or left armed without a TTY), 3 if
    it was rolled back (COMMAND failed, the answer was no, or the time ran out), 1 if that
    rollback failed.
    """
    from netcfg_txn.host.runner import run_interactive

    body: dict[str, Any] = {
        "allow_pending": allow_pending,
        "label": escape_line("try: " + " ".join(command))[:150],
        **probe_request,
    }
    if timeout is not None:
        duration_arg(timeout)
        body["timeout"] = timeout
    doc = c.call("POST", "/v1/transactions", body)
    t, token = doc["transaction"], doc["token"]
    c.out.info(f"Transaction {t['id']} started; running: {' '.join(command)}")
    # Under --json stdout carries our one document: the command's output goes to stderr.
    rc = run_interactive(list(command), stdout_to_stderr=c.out.as_json)
    if rc != 0:
        c.out.info(f"command exited with {rc}: restoring the snapshot now")
        try:
            back = c.call("POST", txn_path(t["id"], "rollback"), {}, token=token)["transaction"]
        except Failed as e:
            back = e.details.get("transaction") or {"id": t["id"], "phase": "failed"}
        c.out.info(txn_human(back))
        _not_kept(back, f"{' '.join(command)} exited with {rc}")
    if not sys.stdin.isatty() or c.out.as_json:
        c.out.result(
            {"transaction": t, "token": token, "command_exit": rc},
            f"Transaction {t['id']} is armed until {when(t['deadline_wall_s'])}.\n"
            f"Confirm with: netcfg-txn commit --id {t['id']}   (token: {token})",
        )
        return
    keep = _ask_keep(t["deadline_wall_s"])
    if keep is None:
        c.out.info("Out of time: the daemon is restoring the snapshot.")
        _not_kept(_wait_ended(c, t["id"]), "no answer before the deadline")
    if keep:
        try:
            done = c.call("POST", txn_path(t["id"], "confirm"), {}, token=token)
        except NoTransaction:  # the deadline won the race with the answer
            _not_kept(_wait_ended(c, t["id"]), "the deadline passed before the answer")
        c.out.result(done, f"Transaction {t['id']} committed.")
        return
    try:
        back = c.call("POST", txn_path(t["id"], "rollback"), {}, token=token)["transaction"]
    except Failed as e:
        back = e.details.get("transaction") or {"id": t["id"], "phase": "failed"}
    except NoTransaction:
        back = _wait_ended(c, t["id"])
    c.out.info(txn_human(back))
    _not_kept(back, "answered no")
