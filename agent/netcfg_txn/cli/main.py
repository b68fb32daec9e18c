# SPDX-License-Identifier: GPL-3.0-or-later
"""netcfg-txn: the command line. A thin client of the daemon (status, diff and boot-rollback also
work without it). ``run()`` is the entry point and the only place where our exceptions become
exit codes.

Start-up time is most of what ``status`` costs, so this module imports nearly nothing: the
commonest verbs against a running daemon go through ``cli.fastpath`` without click; everything
else (and any option the fast path does not know, help included) goes through the click tree in
``cli.group``, imported only then.
"""

from __future__ import annotations

import sys

from netcfg_txn.cli.output import Output
from netcfg_txn.core.errors import Failed, InternalError, NetcfgTxnError

TYPE_CHECKING = False  # typing costs milliseconds at start-up; mypy treats this name as True
if TYPE_CHECKING:
    from typing import NoReturn


def _fail(out: Output, e: NetcfgTxnError) -> NoReturn:
    out.error(e)
    sys.exit(e.exit_code)


def run(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    out = Output(as_json="--json" in args[: args.index("--") if "--" in args else len(args)])
    try:
        from netcfg_txn.cli import fastpath

        if fastpath.run(args, out):
            return
        from netcfg_txn.cli.group import run_click

        run_click(args, out)
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
