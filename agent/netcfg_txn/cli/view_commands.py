# SPDX-License-Identifier: GPL-3.0-or-later
"""The read-only verbs: status, diff, plan and history. Each asks the daemon and, when it is not
running (or its socket is not for this user), reads the state directory instead."""

from __future__ import annotations

import click

from netcfg_txn.cli import common_verbs
from netcfg_txn.cli.context import Ctx
from netcfg_txn.cli.options import pass_ctx
from netcfg_txn.cli.output import when
from netcfg_txn.core.errors import NotPermitted, Unavailable


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
    try:
        doc = c.call("GET", "/v1/diff")
    except (Unavailable, NotPermitted):
        from netcfg_txn.core.redact import redact_files  # as the API serves it: secrets redacted

        engine = c.offline_engine()
        doc = {"files": redact_files(engine.diff()), "against": engine.diff_base()}
    parts = []
    for f in doc["files"]:
        parts.append(f.get("diff") or f"--- {f['path']}: {f['change']}: {f.get('detail', '')}\n")
    nothing = (
        "No changes since the snapshot."
        if doc.get("against") != "baseline"
        else ("No edits since the last commit or rollback.")
    )
    c.out.result(doc, "".join(parts).rstrip("\n") or nothing)


@click.command("plan")
@pass_ctx
def plan_cmd(c: Ctx) -> None:
    """What a rollback would do right now (files and interfaces), without doing it."""
    try:
        doc = c.call("GET", "/v1/plan")
    except (Unavailable, NotPermitted):
        doc = c.offline_engine().preview()
    lines = [f"A rollback of {doc['transaction']} now would ({doc['backend']} backend):"]
    for f in doc["files"]:
        lines.append(f"  {f['action']:<9} {f['path']}")
    if not doc["files"]:
        lines.append("  restore no files (nothing changed)")
    lines.append(f"  leave {doc['untouched']} unchanged file(s) alone")
    ifs = doc["interfaces"]
    for key, verb in (("down", "take down"), ("delete", "delete link"), ("up", "bring up")):
        if ifs.get(key):
            lines.append(f"  {verb:<11} {' '.join(ifs[key])}")
    if not any(ifs.values()):
        lines.append("  bounce no interface")
    for p in doc.get("unattributed", []):
        lines.append(f"  unattributed change (fallback applies): {p}")
    for n in doc.get("notes", []):
        lines.append(f"  note: {n}")
    c.out.result(doc, "\n".join(lines))


@click.command()
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000))
@pass_ctx
def history(c: Ctx, limit: int) -> None:
    """Finished transactions, newest first."""
    try:
        doc = c.call("GET", f"/v1/history?limit={limit}")
    except (Unavailable, NotPermitted):
        doc = {"history": c.offline_engine().history(limit)}
    lines = []
    for h in doc["history"]:
        why = f" ({h['reason']})" if h.get("reason") else ""
        bounced = f"  bounced: {' '.join(h['bounced'])}" if h.get("bounced") else ""
        label = f"  [{h['label']}]" if h.get("label") else ""
        lines.append(
            f"{h['id']}  {h['phase']}{why}{label}  ended {when(h.get('ended_wall_s'))}  "
            f"files changed: {len(h.get('changed', []))}{bounced}"
        )
        for p in h.get("changed", [])[:20]:
            lines.append(f"    {p}")
        if later := h.get("edited_after_apply"):
            lines.append(f"    edited after the last extend: {' '.join(later)}")
        for e in h.get("errors", []):
            lines.append(f"    error: {e}")
    c.out.result(doc, "\n".join(lines) or "No finished transactions yet.")
