# SPDX-License-Identifier: GPL-3.0-or-later
"""The verbs that talk to the daemon, config check/show, boot-rollback and ``--version``, without
importing click: importing it and building the tree costs more than the request itself.

This accepts only the plain forms: the global options, then the verb and its own options from
``VERBS``, each at most once, with a value that does not look like an option, and values that
click would accept as they are. Anything else (``--help``, a probe option, every error of the
command line) is left to click, so help, usage and their errors stay click's."""

from __future__ import annotations

import errno
import os
import sys

from netcfg_txn.core.errors import ExitCode

TYPE_CHECKING = False  # typing costs milliseconds at start-up; mypy treats this name as True
if TYPE_CHECKING:
    from collections.abc import Callable

    from netcfg_txn.cli.context import Ctx
    from netcfg_txn.cli.output import Output

GLOBAL_VALUES = frozenset({"--socket", "--config", "--root", "--state-dir"})
_TXN = (frozenset({"--token", "--id"}), frozenset({"--force"}))
_NONE: tuple[frozenset[str], frozenset[str]] = (frozenset(), frozenset())

# verb -> (its options that take a value, its flags), each the name of one of the click command's
# own options (a unit test compares them with the click tree). An option missing here (--probe
# and its friends) sends the command line to click. ``--json`` is accepted anywhere.
VERBS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "status": _NONE,
    "start": (frozenset({"--timeout", "--label", "--token-file"}), frozenset({"--allow-pending"})),
    "commit": _TXN,
    "confirm": _TXN,
    "rollback": _TXN,
    "extend": (_TXN[0] | {"--timeout"}, _TXN[1]),
    "diff": _NONE,
    "plan": _NONE,
    "history": (frozenset({"--limit"}), frozenset()),
    "config check": _NONE,
    "config show": _NONE,
    # Its own --config/--root/--state-dir stand for the global ones (given once, either place).
    "boot-rollback": (GLOBAL_VALUES - {"--socket"}, frozenset()),
}
VERSION = "--version"  # alone (after global options): what click's version option prints


def _parse(args: list[str]) -> tuple[str, dict[str, str], set[str]] | None:
    """(verb or ``--version``, options with a value, flags), or None outside the plain forms."""
    values: dict[str, str] = {}
    flags: set[str] = set()
    verb = None
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if verb is None and arg in VERBS and " " not in arg:
            verb = arg
            continue
        if verb is None and arg == "config" and i < len(args) and f"config {args[i]}" in VERBS:
            verb = f"config {args[i]}"  # a command of the config group
            i += 1
            continue
        name, eq, value = arg.partition("=")
        takes_value, is_flag = (GLOBAL_VALUES, {VERSION}) if verb is None else VERBS[verb]
        if name in takes_value:
            if not eq:
                if i == len(args):
                    return None
                value = args[i]
                i += 1
            if not value or value.startswith("-") or name in values:
                return None
            values[name] = value
        elif not eq and (arg == "--json" or arg in is_flag) and arg not in flags:
            flags.add(arg)
        else:
            return None
    if verb is None or VERSION in flags:  # click prints the version before it looks at a verb
        return (VERSION, values, flags) if verb is None and VERSION in flags else None
    return (verb, values, flags) if _click_accepts(verb, values) else None


def _click_accepts(verb: str, values: dict[str, str]) -> bool:
    """The checks click makes beyond the syntax; False leaves the error to click."""
    timeout = values.get("--timeout")
    if timeout is None:
        if verb == "extend":  # required
            return False
    else:
        from netcfg_txn.core.units import parse_duration

        try:
            parse_duration(timeout)
        except ValueError:
            return False
    # click.Path(dir_okay=False) checks a path that exists: a new file is the plain form.
    if "--token-file" in values and os.path.lexists(values["--token-file"]):
        return False
    limit = values.get("--limit", "20")  # click.IntRange(1, 1000)
    return limit.isascii() and limit.isdigit() and 1 <= int(limit) <= 1000


def _action(verb: str, values: dict[str, str], flags: set[str], c: Ctx) -> Callable[[], None]:
    from netcfg_txn.cli import common_verbs  # here: --version needs none of it

    # As click resolves it: the option, else a non-empty environment variable, else none.
    token = values.get("--token") or os.environ.get("NETCFG_TXN_TOKEN") or None
    txn_id, force, timeout = values.get("--id"), "--force" in flags, values.get("--timeout")
    if verb == "status":
        return lambda: common_verbs.show_status(c)
    if verb == "start":
        label, token_file = values.get("--label", ""), values.get("--token-file")
        allow = "--allow-pending" in flags
        return lambda: common_verbs.start(c, timeout, allow, label, token_file, {})
    if verb in ("commit", "confirm"):
        return lambda: common_verbs.commit(c, token, txn_id, force)
    if verb == "rollback":
        return lambda: common_verbs.rollback(c, token, txn_id, force)
    if verb == "extend":
        assert timeout is not None  # checked by _click_accepts
        return lambda: common_verbs.extend(c, timeout, force, token, txn_id)
    if verb == "diff":
        return lambda: common_verbs.diff(c)
    if verb == "plan":
        return lambda: common_verbs.plan(c)
    if verb == "config check":
        return lambda: common_verbs.config_check(c)
    if verb == "config show":
        return lambda: common_verbs.config_show(c)
    if verb == "boot-rollback":
        return lambda: common_verbs.boot_rollback(c)
    assert verb == "history"
    return lambda: common_verbs.history(c, int(values.get("--limit", "20")))


def run(args: list[str], out: Output) -> bool:
    """Run the command if ``args`` is one of the plain forms; False to leave it to click."""
    parsed = _parse(args)
    if parsed is None:
        return False
    verb, values, flags = parsed
    if verb == VERSION:
        from netcfg_txn import __version__

        print(f"netcfg-txn, version {__version__}", flush=True)
        return True
    from netcfg_txn.cli.context import DEFAULT_SOCKET, Ctx

    # As click resolves it: the option, else a non-empty environment variable, else the default.
    sock = values.get("--socket") or os.environ.get("NETCFG_TXN_SOCKET") or DEFAULT_SOCKET
    c = Ctx(sock, out.as_json, values.get("--config"), values.get("--root", "/"),
            values.get("--state-dir"))  # fmt: skip
    try:
        _action(verb, values, flags, c)()
    except (EOFError, KeyboardInterrupt):  # what click does with them
        print(file=sys.stderr)
        sys.exit(ExitCode.FAILURE)
    except OSError as e:
        if e.errno != errno.EPIPE:
            raise
        sys.stdout = sys.stderr = open(os.devnull, "w")  # noqa: SIM115  (as click: no noise at exit)
        sys.exit(ExitCode.FAILURE)
    return True
