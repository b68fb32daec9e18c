# SPDX-License-Identifier: GPL-3.0-or-later
"""The commands' bodies without click: the verbs that talk to the daemon (status, start, commit,
rollback, extend, diff, plan and history), config check/show and boot-rollback. The fast path
(``cli.fastpath``) runs them without importing click; the click commands call the same functions.
Their options arrive checked (by click, or by the fast path, which leaves anything doubtful to
click)."""

from __future__ import annotations

import sys

from netcfg_txn.cli.context import Ctx
from netcfg_txn.cli.output import changed_human, duration, status_human, txn_human, txn_path, when
from netcfg_txn.core.errors import ExitCode, Failed, NotPermitted, Unavailable

TYPE_CHECKING = False  # typing costs milliseconds at start-up; mypy treats this name as True
if TYPE_CHECKING:
    from typing import Any


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
    from netcfg_txn.cli import configstate
    from netcfg_txn.cli.context import DEFAULT_CONFIG
    from netcfg_txn.core.errors import ConfigError

    try:
        # The parser (and pathlib) would be most of what status costs.
        if not configstate.parsed_before(c.config_given or DEFAULT_CONFIG, c.state_given):
            from netcfg_txn.core.config import parse
            from netcfg_txn.host import configfiles

            layers = configfiles.read_layers(c.config)
            parse(layers, state_dir=c.state_dir)
            configstate.mark_parsed(layers, c.state_given)
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


def start(c: Ctx, timeout: str | None, allow_pending: bool, label: str, token_file: str | None,
          probe_request: dict[str, Any]) -> None:  # fmt: skip
    body: dict[str, Any] = {"allow_pending": allow_pending, "label": label, **probe_request}
    if timeout is not None:
        body["timeout"] = timeout
    doc = c.call("POST", "/v1/transactions", body)
    t = doc["transaction"]
    for w in doc.get("warnings") or []:
        c.out.info(f"WARNING: {w}")
    if token_file:
        from netcfg_txn.cli.secret_files import write_token_file

        write_token_file(token_file, doc["token"])
    human = (
        f"Transaction {t['id']} started: {t['file_count']} files snapshotted.\n"
        f"Deadline: {when(t['deadline_wall_s'])} (in {duration(t['timeout_s'])}). "
        "Without a commit by then, the snapshot is restored.\n"
        f"Token: {doc['token']}\n"
        "  (remote callers need it; local root may commit without it)\n"
        "Keep the change:  netcfg-txn commit\n"
        "Undo it now:      netcfg-txn rollback"
    )
    c.out.result(doc, human)


def extend(c: Ctx, timeout: str, force: bool, token: str | None, txn_id: str | None) -> None:
    doc = c.call("POST", txn_path(txn_id, "arm"), {"timeout": timeout, "force": force}, token=token)
    t = doc["transaction"]
    c.out.result(doc, f"Transaction {t['id']}: deadline now {when(t['deadline_wall_s'])}.")


def diff(c: Ctx) -> None:
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


def plan(c: Ctx) -> None:
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


def history(c: Ctx, limit: int) -> None:
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


def config_check(c: Ctx) -> None:
    from netcfg_txn.core import config as configmod
    from netcfg_txn.host import configfiles

    cfg = configfiles.load(c.config, state_dir=c.state_dir)
    where = ", ".join(cfg.sources) or "built-in defaults"
    c.out.result({"config": configmod.to_json(cfg)}, f"configuration OK ({where})")


def config_show(c: Ctx) -> None:
    import json

    from netcfg_txn.core import config as configmod
    from netcfg_txn.host import configfiles

    cfg = configfiles.load(c.config, state_dir=c.state_dir)
    doc = {"config": configmod.to_json(cfg)}
    c.out.result(doc, json.dumps(doc["config"], indent=2))


def boot_rollback(c: Ctx) -> None:
    from netcfg_txn import boot
    from netcfg_txn.host import sd

    sd.setup_logging("netcfg-txn", "INFO")  # the journal, with TXN_ID/PHASE/REASON fields
    cfg = c.offline_config()
    if boot.nothing_to_roll_back(cfg.state_dir):  # the usual boot: no engine, no network stack
        doc: dict[str, Any] = {"actions": []}
    else:
        doc = boot.roll_back_at_boot(c.offline_engine(cfg))
    c.out.result(doc, "\n".join(doc["actions"]) or "Nothing to roll back.")
