# SPDX-License-Identifier: GPL-3.0-or-later
"""netcfg-txn: the command line. A thin client of the daemon (status, diff and boot-rollback also
work without it). ``run()`` is the only place where exceptions become exit codes."""

from __future__ import annotations

import json
import os
import select
import stat
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from netcfg_txn import __version__, client
from netcfg_txn.cli.probes import probe_options
from netcfg_txn.cli.remote import peer, remote
from netcfg_txn.core import config as configmod
from netcfg_txn.core.display import escape, escape_line
from netcfg_txn.core.errors import (
    ExitCode,
    Failed,
    InternalError,
    NetcfgTxnError,
    NotKept,
    NotPermitted,
    NoTransaction,
    Unavailable,
    UsageError,
)
from netcfg_txn.host import configfiles

if TYPE_CHECKING:
    from netcfg_txn.engine import Engine

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class Output:
    """stdout is data, stderr diagnostics. ``--json``: exactly one document on stdout."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json

    def result(self, doc: dict[str, Any], human: str) -> None:
        if self.as_json:
            click.echo(json.dumps({"ok": True, **doc}, indent=2, sort_keys=True))
        elif human:
            click.echo(escape(human))  # labels, paths, command output: never terminal controls

    def error(self, e: NetcfgTxnError) -> None:
        if self.as_json:
            click.echo(json.dumps({"ok": False, "error": e.to_json()}, indent=2, sort_keys=True))
            return
        click.echo(f"error: {escape(e.message)}", err=True)
        if e.hint:
            click.echo(f"hint: {escape(e.hint)}", err=True)

    def info(self, text: str) -> None:
        if not self.as_json:
            click.echo(escape(text), err=True)


def when(wall_s: float | None) -> str:
    if wall_s is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(wall_s))


def duration_arg(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return configmod.parse_duration(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


class Ctx:
    def __init__(self, sock: str, as_json: bool, config: str | None, root: str, state: str | None):
        self.sock = sock
        self.out = Output(as_json)
        self.config = Path(config) if config else configmod.DEFAULT_CONFIG
        self.config_arg = Path(config) if config else None
        self.root = Path(root)
        self.state_dir = Path(state) if state else None

    def call(self, method: str, path: str, body: dict[str, Any] | None = None,
             token: str | None = None) -> dict[str, Any]:  # fmt: skip
        return client.call(self.sock, method, path, body, token=token)

    def offline_engine(self) -> Engine:
        """The engine over the state dir, for commands that must work without the daemon.
        A config that no longer parses never stops them: they use the last good one (an open
        transaction uses the settings frozen at its start), with a loud warning."""
        from netcfg_txn import assemble
        from netcfg_txn.store import lastgood

        cfg, warning = lastgood.load_or_last_good(self.config, self.state_dir, who="netcfg-txn")
        if warning:
            self.out.info(f"WARNING: {warning}")
        if cfg.state_dir.exists() and not os.access(cfg.state_dir, os.R_OK | os.X_OK):
            from netcfg_txn.core.errors import NotPermitted

            raise NotPermitted(
                f"cannot read the state directory {cfg.state_dir}", hint="run as root (sudo)"
            )
        return assemble.engine(self.root, cfg, config=self.config_arg, state_dir=self.state_dir)


pass_ctx = click.make_pass_decorator(Ctx)


@click.group(context_settings=CONTEXT)
@click.option("--socket", "sock", default=str(configmod.DEFAULT_SOCKET), show_default=True,
              envvar="NETCFG_TXN_SOCKET", help="Control socket of the daemon.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print exactly one JSON document.")
@click.option("--config", default=None, help="Config file (offline commands).")
@click.option("--root", default="/", hidden=True, help="Root of the managed system (tests).")
@click.option("--state-dir", default=None, hidden=True, help="State directory (offline commands).")
@click.version_option(__version__, prog_name="netcfg-txn")
@click.pass_context
def cli(ctx: click.Context, sock: str, as_json: bool, config: str | None, root: str,
        state_dir: str | None) -> None:  # fmt: skip
    """Make network configuration changes transactional.

    \b
    Typical session over SSH:
      netcfg-txn start --timeout 5m     # snapshot the config, arm the dead-man timer
      ifdown eth0; vi /etc/network/interfaces.d/eth0; ifup eth0
      netcfg-txn commit                 # still connected? keep it.
    If you lose the connection and cannot commit, the daemon restores the snapshot at the
    deadline and bounces only the interfaces whose configuration changed. A crash or power cut
    while a transaction is open is rolled back at boot, before networking starts.

    \b
    Exit codes: 0 ok, 1 failed, 2 usage, 3 try: change not kept (rolled back), 66 no such open
    transaction, 69 daemon unavailable, 70 internal bug, 75 busy, 77 not permitted / bad token,
    78 invalid config, pending edits or a file set rolled back before.
    """
    ctx.obj = Ctx(sock, as_json, config, root, state_dir)


def _txn_human(t: dict[str, Any]) -> str:
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
            left_txt = f"{configmod.format_duration(left)} left"
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


@cli.command()
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
    body: dict[str, Any] = {"allow_pending": allow_pending, "label": label, **probe_request}
    if timeout is not None:
        body["timeout"] = timeout
        duration_arg(timeout)
    doc = c.call("POST", "/v1/transactions", body)
    t = doc["transaction"]
    _warn(c, doc)
    if token_file:
        _write_token_file(token_file, doc["token"])
    human = (
        f"Transaction {t['id']} started: {t['file_count']} files snapshotted.\n"
        f"Deadline: {when(t['deadline_wall_s'])} (in {configmod.format_duration(t['timeout_s'])}). "
        "Without a commit by then, the snapshot is restored.\n"
        f"Token: {doc['token']}\n"
        "  (remote callers need it; local root may commit without it)\n"
        "Keep the change:  netcfg-txn commit\n"
        "Undo it now:      netcfg-txn rollback"
    )
    c.out.result(doc, human)


def _warn(c: Ctx, doc: dict[str, Any]) -> None:
    for w in doc.get("warnings") or []:
        c.out.info(f"WARNING: {w}")


def _changed_human(doc: dict[str, Any], verb: str) -> list[str]:
    """Every managed file that differed from the snapshot, whoever edited it."""
    lines = []
    if changed := doc.get("changed"):
        lines.append(f"  files {verb} ({len(changed)}), changed since the snapshot:")
        lines += [f"    {p}" for p in changed]
    if later := doc.get("edited_after_apply"):
        lines.append(f"  edited after the last extend ({len(later)}):")
        lines += [f"    {p}" for p in later]
    return lines


def _write_token_file(path: str, token: str) -> None:
    """The token, readable by its owner only: an existing file is truncated and made 0600 before
    the token is written (open's mode applies only to a file it creates)."""
    fd = os.open(
        path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o600
    )
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UsageError(f"--token-file {path}: not a regular file")
        os.fchmod(fd, 0o600)
        os.ftruncate(fd, 0)
        os.write(fd, (token + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def _token_opts(f: Any) -> Any:
    f = click.option("--id", "txn_id", help="Transaction id (default: the open one).")(f)
    f = click.option("--token", envvar="NETCFG_TXN_TOKEN", help="The transaction's token.")(f)
    return f


def _path(txn_id: str | None, op: str) -> str:
    return f"/v1/transactions/{txn_id or 'current'}/{op}"


@cli.command()
@_token_opts
@click.option(
    "--force", is_flag=True, help="Keep even a file set that was rolled back before (logged)."
)
@pass_ctx
def commit(c: Ctx, token: str | None, txn_id: str | None, force: bool) -> None:
    """Keep the change: drop the snapshot and disarm the timer (alias: confirm)."""
    doc = c.call("POST", _path(txn_id, "confirm"), {"force": True} if force else {}, token=token)
    t = doc["transaction"]
    msg = "already committed" if doc.get("already_committed") else "committed"
    c.out.result(doc, "\n".join([f"Transaction {t['id']} {msg}.", *_changed_human(doc, "kept")]))


cli.add_command(commit, "confirm")


@cli.command()
@_token_opts
@click.option(
    "--force",
    is_flag=True,
    help="Local root only: roll back without the token (logged, reason forced); after a failed "
    "rollback, run the restore again.",
)
@pass_ctx
def rollback(c: Ctx, token: str | None, txn_id: str | None, force: bool) -> None:
    """Restore the snapshot now and bounce the interfaces whose configuration changed."""
    try:
        doc = c.call("POST", _path(txn_id, "rollback"), {"force": force}, token=token)
    except Failed as e:  # the files it overwrote matter most when it failed
        _changed_to_stderr(c, e.details)
        raise
    c.out.result(doc, "\n".join([_txn_human(doc["transaction"]), *_changed_human(doc, "restored")]))


def _changed_to_stderr(c: Ctx, doc: dict[str, Any]) -> None:
    for line in _changed_human(doc, "restored"):
        c.out.info(line)


@cli.command()
@click.option("--timeout", required=True, help="New deadline = now + this (90s, 5m, 1h).")
@click.option(
    "--force", is_flag=True, help="Arm even a file set that was rolled back before (logged)."
)
@_token_opts
@pass_ctx
def extend(c: Ctx, timeout: str, force: bool, token: str | None, txn_id: str | None) -> None:
    """Move the deadline (the only way it moves)."""
    duration_arg(timeout)
    doc = c.call("POST", _path(txn_id, "arm"), {"timeout": timeout, "force": force}, token=token)
    t = doc["transaction"]
    c.out.result(doc, f"Transaction {t['id']}: deadline now {when(t['deadline_wall_s'])}.")


def _status_human(doc: dict[str, Any]) -> str:
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
        lines.append(_txn_human(doc["transaction"]))
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


@cli.command()
@pass_ctx
def status(c: Ctx) -> None:
    """Open transaction, time left, edits and the last outcome. Works without the daemon."""
    try:
        doc = c.call("GET", "/v1/status")
        _config_warning(c, doc)
    except (Unavailable, NotPermitted):  # the state dir may still be readable
        doc = c.offline_engine().status()
        doc["offline"] = True
        _config_warning(c, doc, quiet=True)
    c.out.result(doc, _status_human(doc))
    if (doc.get("last") or {}).get("outcome") == "failed":
        # Monitoring and scripts must notice: non-zero until a retry (or a later
        # transaction) ends well.
        c.out.info("The last rollback FAILED; retry it with: netcfg-txn rollback --force")
        sys.exit(ExitCode.FAILURE)


def _config_warning(c: Ctx, doc: dict[str, Any], *, quiet: bool = False) -> None:
    """A config that no longer parses is shown loudly, with what is used instead."""
    from netcfg_txn.core.errors import ConfigError

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


@cli.command()
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


@cli.command("plan")
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


@cli.command()
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


def _ask_keep(deadline_wall: float) -> bool | None:
    """Countdown prompt on a TTY: True keep, False roll back, None out of time."""
    sys.stderr.write("\n")
    while True:
        left = deadline_wall - time.time()
        if left <= 0:
            sys.stderr.write("\n")
            return None
        sys.stderr.write(f"\rKeep this configuration? [y/N] (rolls back in "
                         f"{configmod.format_duration(left):>8}) ")  # fmt: skip
        sys.stderr.flush()
        ready, _, _ = select.select([sys.stdin], [], [], min(1.0, left))
        if ready:
            answer = sys.stdin.readline().strip().lower()
            return answer in ("y", "yes")


def _not_kept(c: Ctx, t: dict[str, Any], why: str) -> NoReturn:
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


@cli.command(name="try", context_settings={"ignore_unknown_options": True})
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
            back = c.call("POST", _path(t["id"], "rollback"), {}, token=token)["transaction"]
        except Failed as e:
            back = e.details.get("transaction") or {"id": t["id"], "phase": "failed"}
        c.out.info(_txn_human(back))
        _not_kept(c, back, f"{' '.join(command)} exited with {rc}")
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
        _not_kept(c, _wait_ended(c, t["id"]), "no answer before the deadline")
    if keep:
        try:
            done = c.call("POST", _path(t["id"], "confirm"), {}, token=token)
        except NoTransaction:  # the deadline won the race with the answer
            _not_kept(c, _wait_ended(c, t["id"]), "the deadline passed before the answer")
        c.out.result(done, f"Transaction {t['id']} committed.")
        return
    try:
        back = c.call("POST", _path(t["id"], "rollback"), {}, token=token)["transaction"]
    except Failed as e:
        back = e.details.get("transaction") or {"id": t["id"], "phase": "failed"}
    except NoTransaction:
        back = _wait_ended(c, t["id"])
    c.out.info(_txn_human(back))
    _not_kept(c, back, "answered no")


@cli.command("boot-rollback")
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
    from netcfg_txn.core.errors import Busy, Failed
    from netcfg_txn.core.model import Phase
    from netcfg_txn.host import sd
    from netcfg_txn.store import fsutil

    if config_path is not None:
        c.config = c.config_arg = Path(config_path)
    if root is not None:
        c.root = Path(root)
    if state_dir is not None:
        c.state_dir = Path(state_dir)

    sd.setup_logging("netcfg-txn", "INFO")  # the journal, with TXN_ID/PHASE/REASON fields
    engine = c.offline_engine()
    engine.store.ensure()
    try:
        fd = fsutil.take_lock(engine.store.lock_path)
    except BlockingIOError:
        raise Busy(f"netcfg-txnd is running (it holds {engine.store.lock_path})") from None
    try:
        before = engine.current()
        rec = engine.recover(boot=True)
    finally:
        os.close(fd)
    doc: dict[str, Any] = {"actions": list(rec.actions)}
    entry = next(iter(engine.store.history(1)), None) if before is not None else None
    if entry is not None and before is not None and entry.txn.id == before.id:
        from netcfg_txn.engine import public_txn

        doc["transaction"] = public_txn(entry.txn, None, None)
        if entry.txn.phase is Phase.FAILED:
            raise Failed(
                f"boot rollback of {entry.txn.id} failed: " + "; ".join(entry.txn.errors),
                details=doc,
            )
    c.out.result(doc, "\n".join(rec.actions) or "Nothing to roll back.")


@cli.command("backstop")
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


@cli.group()
def config() -> None:
    """Inspect the configuration."""


@config.command("check")
@pass_ctx
def config_check(c: Ctx) -> None:
    """Validate the configuration; exit 78 naming the file and key if it is invalid.

    netcfg-txnd.service runs it before every reload, so 'systemctl reload' with a broken
    file fails visibly and the daemon keeps its old config.
    """
    cfg = configfiles.load(c.config, state_dir=c.state_dir)
    where = ", ".join(cfg.sources) or "built-in defaults"
    c.out.result({"config": configmod.to_json(cfg)}, f"configuration OK ({where})")


@config.command("show")
@pass_ctx
def config_show(c: Ctx) -> None:
    """Print the effective configuration (all layers merged)."""
    cfg = configfiles.load(c.config, state_dir=c.state_dir)
    doc = {"config": configmod.to_json(cfg)}
    c.out.result(doc, json.dumps(doc["config"], indent=2))


cli.add_command(peer)
cli.add_command(remote)


def _json_after_verb(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    """``netcfg-txn VERB --json`` means what ``netcfg-txn --json VERB`` means."""
    if not value:
        return
    obj = ctx.find_root().obj
    if isinstance(obj, Ctx):
        obj.out.as_json = True
    elif isinstance(obj, dict):  # cli_remote's tests drive its groups with a plain dict
        obj["json"] = True


def accept_json_everywhere(group: click.Group) -> None:
    """Give every command below ``group`` a ``--json`` of its own. Call it after the last
    command is added: commands added later would miss it (the man-page test walks the tree)."""
    for cmd in group.commands.values():
        if not any(isinstance(p, click.Option) and "--json" in p.opts for p in cmd.params):
            cmd.params.append(
                click.Option(["--json"], is_flag=True, expose_value=False, is_eager=True,
                             callback=_json_after_verb,
                             help="Print exactly one JSON document (also before the verb).")
            )  # fmt: skip
        if isinstance(cmd, click.Group):
            accept_json_everywhere(cmd)


accept_json_everywhere(cli)


_NO_ARGS_IS_HELP: Any = getattr(click.exceptions, "NoArgsIsHelpError", ())


def _fail(out: Output, e: NetcfgTxnError) -> NoReturn:
    out.error(e)
    sys.exit(e.exit_code)


def run(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    out = Output(as_json="--json" in args[: args.index("--") if "--" in args else len(args)])
    try:
        cli.main(args=args, prog_name="netcfg-txn", standalone_mode=False)
    except _NO_ARGS_IS_HELP as e:  # click >= 8.2; 8.1 prints the help itself
        click.echo(e.ctx.get_help())
        sys.exit(ExitCode.USAGE)
    except click.UsageError as e:
        if out.as_json:
            _fail(out, UsageError(e.format_message()))
        e.show()
        sys.exit(ExitCode.USAGE)
    except click.ClickException as e:
        if out.as_json:
            _fail(out, UsageError(e.format_message()))
        e.show()
        sys.exit(e.exit_code)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.Abort:
        sys.exit(ExitCode.FAILURE)
    except NetcfgTxnError as e:
        _fail(out, e)
    except KeyboardInterrupt:
        sys.exit(130)
    except OSError as e:  # offline commands on a full or failing state disk
        where = f"{e.filename}: " if e.filename else ""
        _fail(out, Failed(f"{where}{e.strerror or e}"))
    except Exception as e:
        import traceback

        traceback.print_exc()
        _fail(out, InternalError(f"internal error (this is a bug): {e}"))
