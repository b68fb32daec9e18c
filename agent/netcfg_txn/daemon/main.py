# SPDX-License-Identifier: GPL-3.0-or-later
"""``netcfg-txnd``'s command line: arguments, logging, the exit code."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from netcfg_txn import __version__
from netcfg_txn.core import config as configmod
from netcfg_txn.core.errors import ExitCode, NetcfgTxnError
from netcfg_txn.daemon.startup import serve
from netcfg_txn.host import sd

log = logging.getLogger("netcfg_txn.daemon")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="netcfg-txnd",
        description="netcfg-txn daemon: holds the dead-man timer and serves the control API.",
    )
    p.add_argument("--config", help=f"config file (default {configmod.DEFAULT_CONFIG})")
    p.add_argument("--root", default="/", help="root of the managed system (tests, sandboxes)")
    p.add_argument("--state-dir", help="state directory (default: [state] dir)")
    p.add_argument("--socket", default=str(configmod.DEFAULT_SOCKET), help="control socket path")
    p.add_argument(
        "--log-level",
        default=os.environ.get("SYSTEMD_LOG_LEVEL", "info").upper(),
        type=str.upper,
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
    )
    p.add_argument("--version", action="version", version=f"netcfg-txnd {__version__}")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    sd.setup_logging("netcfg-txnd", args.log_level)
    try:
        rc = asyncio.run(serve(args))
    except NetcfgTxnError as e:
        log.error("%s%s", e.message, f" ({e.hint})" if e.hint else "")
        rc = e.exit_code
    except Exception:
        log.exception("internal error (this is a bug)")
        rc = ExitCode.SOFTWARE
    sys.exit(rc)
