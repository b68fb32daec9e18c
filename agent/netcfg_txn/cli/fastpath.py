# SPDX-License-Identifier: GPL-3.0-or-later
"""``status``, ``commit`` (``confirm``) and ``rollback`` without importing click: importing it
and building the tree costs more than the request itself. This accepts only the plain forms
(the global options, the verb, and that verb's own options, each at most once, with a value
that does not look like an option); anything else, ``--help`` and every error of the command
line included, is left to click, so help, usage and their errors stay click's."""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Callable

from netcfg_txn.cli import common_verbs
from netcfg_txn.cli.context import Ctx
from netcfg_txn.cli.output import Output
from netcfg_txn.core.errors import ExitCode
from netcfg_txn.core.paths import DEFAULT_SOCKET

_GLOBAL_VALUES = {"--socket", "--config", "--root", "--state-dir"}
_TXN_VALUES = {"--token", "--id"}
_TXN_FLAGS = {"--force"}
_VERBS = {"status", "commit", "confirm", "rollback"}


def _parse(args: list[str]) -> tuple[str, dict[str, str], set[str]] | None:
    """(verb, options with a value, flags), or None for anything outside the plain forms."""
    values: dict[str, str] = {}
    flags: set[str] = set()
    verb = None
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if verb is None and arg in _VERBS:
            verb = arg
            continue
        name, eq, value = arg.partition("=")
        takes_value = name in (_GLOBAL_VALUES if verb is None else _TXN_VALUES)
        if verb == "status":
            takes_value = False
        if takes_value:
            if not eq:
                if i == len(args):
                    return None
                value = args[i]
                i += 1
            if not value or value.startswith("-") or name in values:
                return None
            values[name] = value
        elif not eq and (arg == "--json" or (verb not in (None, "status") and arg in _TXN_FLAGS)):
            if arg in flags:
                return None
            flags.add(arg)
        else:
            return None
    return (verb, values, flags) if verb is not None else None


def run(args: list[str], out: Output) -> bool:
    """Run the verb if ``args`` is one of the plain forms; False to leave it to click."""
    parsed = _parse(args)
    if parsed is None:
        return False
    verb, values, flags = parsed
    # As click resolves them: the option, else a non-empty environment variable, else the default.
    sock = values.get("--socket") or os.environ.get("NETCFG_TXN_SOCKET") or str(DEFAULT_SOCKET)
    c = Ctx(sock, out.as_json, values.get("--config"), values.get("--root", "/"),
            values.get("--state-dir"))  # fmt: skip
    action: Callable[[], None]
    if verb == "status":
        action = lambda: common_verbs.show_status(c)  # noqa: E731
    else:
        verb_fn = common_verbs.rollback if verb == "rollback" else common_verbs.commit
        token = values.get("--token") or os.environ.get("NETCFG_TXN_TOKEN") or None
        action = lambda: verb_fn(c, token, values.get("--id"), "--force" in flags)  # noqa: E731
    try:
        action()
    except (EOFError, KeyboardInterrupt):  # what click does with them
        print(file=sys.stderr)
        sys.exit(ExitCode.FAILURE)
    except OSError as e:
        if e.errno != errno.EPIPE:
            raise
        sys.stdout = sys.stderr = open(os.devnull, "w")  # noqa: SIM115  (as click: no noise at exit)
        sys.exit(ExitCode.FAILURE)
    return True
