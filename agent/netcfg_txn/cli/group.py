# SPDX-License-Identifier: GPL-3.0-or-later
"""The ``netcfg-txn`` click tree: the global options, every verb mounted under them, ``--json``
accepted after any verb, and click's own errors turned into our exit codes and JSON errors."""

from __future__ import annotations

import sys
from typing import Any, NoReturn

import click

from netcfg_txn import __version__
from netcfg_txn.cli import admin_commands, txn_commands, view_commands
from netcfg_txn.cli.context import Ctx
from netcfg_txn.cli.output import Output
from netcfg_txn.cli.peer import peer
from netcfg_txn.cli.remote import remote
from netcfg_txn.core.errors import ExitCode, UsageError
from netcfg_txn.core.paths import DEFAULT_SOCKET

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(context_settings=CONTEXT)
@click.option("--socket", "sock", default=str(DEFAULT_SOCKET), show_default=True,
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


for _command in (
    txn_commands.start,
    txn_commands.commit,
    txn_commands.rollback,
    txn_commands.extend,
    txn_commands.try_,
    view_commands.status,
    view_commands.diff,
    view_commands.plan_cmd,
    view_commands.history,
    admin_commands.boot_rollback,
    admin_commands.backstop_cmd,
    admin_commands.config,
    peer,
    remote,
):
    cli.add_command(_command)
cli.add_command(txn_commands.commit, "confirm")


def _json_after_verb(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    """``netcfg-txn VERB --json`` means what ``netcfg-txn --json VERB`` means."""
    if not value:
        return
    obj = ctx.find_root().obj
    if isinstance(obj, Ctx):
        obj.out.as_json = True
    elif isinstance(obj, dict):  # the peer/remote tests drive their groups with a plain dict
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


def _usage_error(out: Output, message: str) -> NoReturn:
    """Under ``--json`` a usage error is one JSON document too (exit 2)."""
    e = UsageError(message)
    out.error(e)
    sys.exit(e.exit_code)


def run_click(args: list[str], out: Output) -> None:
    """The verbs through click; click's own exceptions become exit codes here, ours in
    ``cli.main.run``."""
    try:
        cli.main(args=args, prog_name="netcfg-txn", standalone_mode=False)
    except _NO_ARGS_IS_HELP as e:  # click >= 8.2; 8.1 prints the help itself
        click.echo(e.ctx.get_help())
        sys.exit(ExitCode.USAGE)
    except click.UsageError as e:
        if out.as_json:
            _usage_error(out, e.format_message())
        e.show()
        sys.exit(ExitCode.USAGE)
    except click.ClickException as e:
        if out.as_json:
            _usage_error(out, e.format_message())
        e.show()
        sys.exit(e.exit_code)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.Abort:
        sys.exit(ExitCode.FAILURE)
