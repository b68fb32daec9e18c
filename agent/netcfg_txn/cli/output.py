# SPDX-License-Identifier: GPL-3.0-or-later
"""What the CLI prints: stdout is data, stderr diagnostics, and ``--json`` exactly one document.
Also the human renderings of the daemon's replies shared by several verbs. No click here: the
fast path (``cli.fastpath``) prints through it without importing click."""

from __future__ import annotations

import json
import sys
import time

from netcfg_txn.core.display import escape
from netcfg_txn.core.errors import NetcfgTxnError

TYPE_CHECKING = False  # typing costs milliseconds at start-up; mypy treats this name as True
if TYPE_CHECKING:
    from typing import Any, TextIO


def echo(text: str, err: bool = False) -> None:
    """``click.echo`` for text that went through ``escape`` (no terminal controls left to strip):
    one line, flushed at once so stderr and stdout interleave as they were written."""
    stream: TextIO = sys.stderr if err else sys.stdout
    stream.write(text + "\n")
    stream.flush()


class Output:
    """stdout is data, stderr diagnostics. ``--json``: exactly one document on stdout."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json

    def result(self, doc: dict[str, Any], human: str) -> None:
        if self.as_json:
            echo(json.dumps({"ok": True, **doc}, indent=2, sort_keys=True))
        elif human:
            echo(escape(human))  # labels, paths, command output: never terminal controls

    def error(self, e: NetcfgTxnError) -> None:
        if self.as_json:
            echo(json.dumps({"ok": False, "error": e.to_json()}, indent=2, sort_keys=True))
            return
        echo(f"error: {escape(e.message)}", err=True)
        if e.hint:
            echo(f"hint: {escape(e.hint)}", err=True)

    def info(self, text: str) -> None:
        if not self.as_json:
            echo(escape(text), err=True)


def when(wall_s: float | None) -> str:
    if wall_s is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(wall_s))


def duration(seconds: float) -> str:
    from netcfg_txn.core.units import format_duration  # only the verbs that show a duration

    return format_duration(seconds)


def txn_path(txn_id: str | None, op: str) -> str:
    """The control API path of an operation on a transaction (default: the open one)."""
    return f"/v1/transactions/{txn_id or 'current'}/{op}"


def txn_human(t: dict[str, Any]) -> str:
    lines = [
        f"transaction {t['id']}: {t['phase']}" + (f" ({t['label']})" if t.get("label") else "")
    ]
    lines.append(f"  started   {when(t.get('created_wall_s'))} by {t.get('actor')}")
    if t["phase"] == "open":
        left = t.get("remaining_s")
        if left is None:
            left_txt = "? left"
        elif left <= 0:
            left_txt = "overdue: the rollback is due now"
        else:
            left_txt = f"{duration(left)} left"
        lines.append(f"  deadline  {when(t.get('deadline_wall_s'))} ({left_txt})")
    lines.append(f"  files     {t.get('file_count', 0)} managed")
    if t.get("reason"):
        lines.append(f"  reason    {t['reason']}")
    if t.get("interfaces"):
        ifs = t["interfaces"]
        lines.append("  interfaces " + ", ".join(f"{k}: {' '.join(v)}" for k, v in ifs.items()))
    for r in t.get("results", []):
        mark = "ok  " if r["ok"] else "FAIL"
        lines.append(
            f"  {mark} {r['action']:<9} {r['target']}"
            + (f": {r['error']}" if r.get("error") else "")
        )
    return "\n".join(lines)


def changed_human(doc: dict[str, Any], verb: str) -> list[str]:
    """Every managed file that differed from the snapshot, whoever edited it."""
    lines = []
    if changed := doc.get("changed"):
        lines.append(f"  files {verb} ({len(changed)}), changed since the snapshot:")
        lines += [f"    {p}" for p in changed]
    if later := doc.get("edited_after_apply"):
        lines.append(f"  edited after the last extend ({len(later)}):")
        lines += [f"    {p}" for p in later]
    return lines


def status_human(doc: dict[str, Any]) -> str:
    lines = []
    if doc["state"] == "idle":
        lines.append("No transaction is open.")
        if doc.get("pending"):
            lines.append(
                f"Edited outside a transaction since the last one ({len(doc['pending'])}):"
            )
            lines += [f"  {p}" for p in doc["pending"]]
            lines.append("  (see them with 'netcfg-txn diff')")
    else:
        lines.append(txn_human(doc["transaction"]))
        if doc.get("edited"):
            lines.append(f"  edited since the snapshot ({len(doc['edited'])}):")
            lines += [f"    {p}" for p in doc["edited"]]
    if last := doc.get("last"):
        why = f" ({last['reason']})" if last.get("reason") else ""
        lines.append(
            f"Last: {last['id']} {last['outcome']}{why} at {when(last.get('ended_wall_s'))}"
        )
        if last.get("bounced"):
            lines.append(f"  bounced: {' '.join(last['bounced'])}")
    if doc.get("last_error"):
        lines.append(f"Last error: {doc['last_error']}")
    for w in doc.get("warnings") or []:
        lines.append(f"WARNING: {w}")
    if doc.get("offline"):
        lines.append("(daemon not running: read from the state directory)")
    if doc.get("config_error"):
        lines.append(f"CONFIG INVALID: {doc['config_error']}")
    return "\n".join(lines)
