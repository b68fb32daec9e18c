# SPDX-License-Identifier: GPL-3.0-or-later
"""The only module that runs subprocesses; the rest takes a ``Runner`` so tests can record calls."""

from __future__ import annotations

import dataclasses
import logging
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Sequence
from typing import Protocol

from netcfg_txn.core.errors import CommandFailed

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


def run_interactive(argv: Sequence[str], *, stdout_to_stderr: bool = False) -> int:
    """The user's own command (``netcfg-txn try``): inherits the terminal, returns its exit code."""
    log.debug("+ %s", shlex.join(argv))
    try:
        out = sys.stderr if stdout_to_stderr else None
        return subprocess.run(list(argv), check=False, stdout=out).returncode
    except FileNotFoundError:
        log.error("%s: command not found", argv[0])
        return 127


# ------------------------------------------------------------------ commands run through PID 1


_pid1_decided: bool | None = None


def pid1_can_run_for_us() -> bool:
    """Whether systemd is PID 1 and its units see our network namespace, so that a transient
    unit acts on our interfaces. Not in a test's own network namespace, not without systemd.

    Decided once; but a transient unit that cannot be started yet (the D-Bus system bus is not
    up early at boot) is asked again next time rather than remembered as "no"."""
    global _pid1_decided
    if _pid1_decided is None:
        _pid1_decided = _ask_pid1()
        if _pid1_decided is not None:
            log.info(
                "network tools run %s",
                "through PID 1 (systemd-run transient units)"
                if _pid1_decided
                else "directly (as children)",
            )
    return bool(_pid1_decided)


def _ask_pid1() -> bool | None:
    if not os.path.isdir("/run/systemd/system") or shutil.which("systemd-run") is None:
        return False
    try:
        mine = os.readlink("/proc/self/ns/net")
    except OSError:
        return False
    try:
        return os.readlink("/proc/1/ns/net") == mine
    except (PermissionError, FileNotFoundError):
        pass  # hidden from a sandboxed service (no CAP_SYS_PTRACE, ProtectProc=invisible)
    except OSError:
        return False
    # Ask a transient unit which network namespace it gets.
    try:
        seen = run(via_pid1(["readlink", "/proc/self/ns/net"], timeout_s=10), timeout_s=20,
                   check=False)  # fmt: skip
    except CommandFailed as e:
        log.warning("cannot start a transient unit of PID 1: %s", e)
        return None
    if seen.returncode != 0:
        why = (seen.stderr or seen.stdout).strip()[-500:]
        log.warning("cannot run network tools through PID 1 (yet): %s", why)
        return None
    return seen.stdout.strip() == mine


def via_pid1(argv: Sequence[str], *, timeout_s: float, description: str = "") -> list[str]:
    """``argv`` as a transient service of PID 1: its own cgroup, none of our sandbox, output and
    exit code passed back (``--wait --pipe``). ``KillMode=process``: what the command leaves
    running on purpose (dhclient started by ifup) outlives it, as from a root shell."""
    return [
        "systemd-run", "--wait", "--pipe", "--collect", "--quiet", "--service-type=exec",
        f"--description={description or 'netcfg-txn: ' + shlex.join(argv)[:200]}",
        "-p", "KillMode=process", "-p", f"RuntimeMaxSec={max(1, int(timeout_s + 0.999))}",
        "--", *argv,
    ]  # fmt: skip


def run_as_admin(argv: Sequence[str], *, timeout_s: float = 60.0, check: bool = True) -> Completed:
    """A network tool (ifup, ifdown, nmcli, networkctl, a hook) run as from a root shell: through
    PID 1 when it can (our sandbox would break the tool: dhclient-script cannot write
    /etc/resolv.conf under ProtectSystem=strict), else directly (containers, test namespaces)."""
    if not pid1_can_run_for_us():
        return run(argv, timeout_s=timeout_s, check=check)
    cmd = tuple(argv)
    try:
        done = run(via_pid1(cmd, timeout_s=timeout_s), timeout_s=timeout_s + 10, check=False)
    except CommandFailed as e:
        if e.returncode == 127:  # no systemd-run: the tool runs directly, as before
            return run(argv, timeout_s=timeout_s, check=check)
        raise CommandFailed(cmd, e.returncode, e.message.rpartition("): ")[2]) from None
    out = Completed(cmd, done.returncode, done.stdout, done.stderr)
    if check and done.returncode != 0:
        err = (done.stderr.strip() or done.stdout.strip())[-2000:]
        log.warning("%s failed (%d): %s", shlex.join(cmd), done.returncode, err or "no output")
        raise CommandFailed(cmd, done.returncode, err)
    return out
