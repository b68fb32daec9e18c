# SPDX-License-Identifier: GPL-3.0-or-later
"""The only module that runs subprocesses; the rest takes a ``Runner`` so tests can record calls."""

from __future__ import annotations

import dataclasses
import logging
import os
import shlex
import subprocess
import sys
from collections.abc import Sequence
from typing import Protocol

from netcfg_txn.errors import CommandFailed

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Completed:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


class Runner(Protocol):
    def __call__(
        self, argv: Sequence[str], *, timeout_s: float = ..., check: bool = ...
    ) -> Completed: ...


def _env() -> dict[str, str]:
    # A minimal environment: children never inherit NOTIFY_SOCKET or secrets from ours.
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "LC_ALL": "C.UTF-8"}
    return env


def run(argv: Sequence[str], *, timeout_s: float = 60.0, check: bool = True) -> Completed:
    cmd = tuple(argv)
    log.debug("+ %s", shlex.join(cmd))
    try:
        p = subprocess.run(
            cmd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout_s,
            env=_env(),
        )
    except FileNotFoundError:
        raise CommandFailed(cmd, 127, f"{cmd[0]}: command not found") from None
    except subprocess.TimeoutExpired:
        raise CommandFailed(cmd, None, f"timed out after {timeout_s:g}s") from None
    if check and p.returncode != 0:
        err = (p.stderr.strip() or p.stdout.strip())[-2000:]
        log.warning("%s failed (%d): %s", shlex.join(cmd), p.returncode, err or "no output")
        raise CommandFailed(cmd, p.returncode, err)
    return Completed(cmd, p.returncode, p.stdout, p.stderr)


def run_shell(command: str, *, timeout_s: float = 120.0, check: bool = True) -> Completed:
    """A user-configured hook line, run by /bin/sh (it may contain pipes or ``&&``)."""
    return run(["/bin/sh", "-c", command], timeout_s=timeout_s, check=check)


def run_interactive(argv: Sequence[str], *, stdout_to_stderr: bool = False) -> int:
    """The user's own command (``netcfg-txn try``): inherits the terminal, returns its exit code."""
    log.debug("+ %s", shlex.join(argv))
    try:
        out = sys.stderr if stdout_to_stderr else None
        return subprocess.run(list(argv), check=False, stdout=out).returncode
    except FileNotFoundError:
        log.error("%s: command not found", argv[0])
        return 127
