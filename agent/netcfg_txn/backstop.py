# SPDX-License-Identifier: GPL-3.0-or-later
"""The backstop: a rollback that does not depend on netcfg-txnd being alive.

Every deadline change (start, extend, recovery) arms a transient systemd timer owned by PID 1,
``netcfg-txn-backstop-<txn>-<n>.timer``, firing ``[timer] backstop_grace`` (frozen at start) after
the deadline and running ``netcfg-txn backstop --id <txn>``. Commit and a finished rollback stop it.
If the transaction is still open (or mid-rollback without progress) when it fires, the daemon is
dead, stopped, crash-looping, wedged or starved: the backstop kills it if it still holds the state
lock, takes the lock, and rolls back (files and the interface bounce) from the frozen config.

Without systemd as PID 1 (containers) nothing is armed and the daemon alone protects the deadline
(plus the boot unit after a crash); that is logged once.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from netcfg_txn.core.clock import Clock
from netcfg_txn.core.errors import CommandFailed, Unavailable
from netcfg_txn.core.model import Actor, Phase, Txn
from netcfg_txn.engine import Backstop, Engine
from netcfg_txn.host import sd
from netcfg_txn.host.runner import Runner
from netcfg_txn.host.runner import run as default_run
from netcfg_txn.store import fsutil

log = logging.getLogger(__name__)

UNIT_PREFIX = "netcfg-txn-backstop-"
DAEMON_UNIT = "netcfg-txnd.service"
ACTOR = Actor(kind="system", command="backstop")
MSG_BACKSTOP_UNARMED = "05d560a8d98b48609fa5adfea5109366"
MSG_BACKSTOP_TOOK_OVER = "fb60ea2ecb904123a8c8143cdb374152"
MSG_HANDOVER = "d5d758991337407dbcd66f7ba152559a"
LOCK_WAIT_S = 60.0
READ_WAIT_S = 20.0  # how long an unreadable record (EIO, EMFILE) is retried


def command(config: Path | None, state_dir: Path | None, root: Path) -> list[str]:
    """The CLI invocation the timer runs, with the paths this process uses."""
    exe = shutil.which("netcfg-txn")
    argv = [exe] if exe else [sys.executable, "-m", "netcfg_txn"]
    if config is not None:
        argv += ["--config", str(config)]
    if state_dir is not None:
        argv += ["--state-dir", str(state_dir)]
    if root != Path("/"):
        argv += ["--root", str(root)]
    return argv


class Companion(Protocol):
    """A second backstop armed and stopped along with the timer (see ``SystemdBackstop``)."""

    def arm(self, t: Txn, grace_s: float) -> bool: ...

    def before_commit(self, t: Txn) -> None: ...

    def disarm(self, txn_id: str) -> None: ...


class SystemdBackstop(Backstop):
    """Arms and stops the transient timers through systemd-run/systemctl (never raises)."""

    def __init__(
        self,
        argv: list[str],
        clock: Clock,
        *,
        run: Runner = default_run,
        booted: bool | None = None,
        companion: Companion | None = None,
    ) -> None:
        self.argv = argv
        # Another, independent backstop armed and stopped with this one (NetworkManager's
        # checkpoint rollback), whether or not systemd is PID 1.
        self.companion = companion
        self.clock = clock
        self.run = run
        self.booted = sd.booted() if booted is None else booted
        self._said_unbooted = False

    def _unavailable(self) -> bool:
        if self.booted:
            return False
        if not self._said_unbooted:
            log.warning(
                "systemd is not PID 1 here: no backstop timer is armed; only netcfg-txnd "
                "(and the boot unit after a crash) protect the deadline",
                extra={"journal_fields": {"MESSAGE_ID": MSG_BACKSTOP_UNARMED}},
            )
            self._said_unbooted = True
        return True

    def arm(self, t: Txn, grace_s: float) -> bool:
        if self.companion is not None:
            self.companion.arm(t, grace_s)
        left = t.deadline.remaining_s(self.clock.now())
        return self.arm_in(t, max(0.0, left) + grace_s)

    def arm_in(self, t: Txn, delay_s: float) -> bool:
        if self._unavailable():
            return False
        unit = f"{UNIT_PREFIX}{t.id}-{secrets.token_hex(3)}"
        try:
            self._stop(f"{UNIT_PREFIX}{t.id}-*.timer")
            self.run(
                [
                    "systemd-run",
                    "--quiet",
                    f"--unit={unit}",
                    f"--description=netcfg-txn backstop for transaction {t.id}",
                    f"--on-active={max(1, int(delay_s * 1000))}ms",
                    "--timer-property=AccuracySec=100ms",
                    "--timer-property=RemainAfterElapse=no",
                    # ifup's children (dhclient) must outlive the backstop's own process.
                    "--property=KillMode=process",
                    *self.argv,
                    "backstop",
                    "--id",
                    t.id,
                ],
                timeout_s=20,
            )
        except (CommandFailed, OSError) as e:
            log.error(
                "txn=%s cannot arm the backstop timer (%s): only netcfg-txnd protects the deadline",
                t.id,
                e,
                extra={"journal_fields": {"MESSAGE_ID": MSG_BACKSTOP_UNARMED, "TXN_ID": t.id}},
            )
            return False
        fires = time.strftime("%H:%M:%S", time.localtime(time.time() + delay_s))
        log.info("txn=%s backstop %s.timer armed: fires at %s", t.id, unit, fires)
        return True

    def before_commit(self, t: Txn) -> None:
        if self.companion is not None:
            self.companion.before_commit(t)

    def disarm(self, txn_id: str) -> None:
        if self.companion is not None:
            self.companion.disarm(txn_id)
        if not self.booted:
            return
        try:
            self._stop(f"{UNIT_PREFIX}{txn_id}-*.timer")
        except (CommandFailed, OSError) as e:
            log.warning(
                "txn=%s cannot stop its backstop timer (%s); it will find nothing", txn_id, e
            )

    def _stop(self, pattern: str) -> None:
        self.run(["systemctl", "stop", pattern], timeout_s=20, check=False)


# --------------------------------------------------------------------------- daemon stopping


def shutting_down(run: Runner = default_run) -> bool:
    if not sd.booted():
        return False
    try:
        p = run(["systemctl", "is-system-running"], timeout_s=5, check=False)
    except (CommandFailed, OSError):
        return False
    return p.stdout.strip() == "stopping"


def handover(engine: Engine, backstop: Backstop, *, run: Runner = default_run) -> None:
    """The daemon is stopping: say loudly who takes over an open transaction's deadline."""
    try:
        t = engine.current()
    except Exception as e:  # a stop must never fail over this
        log.error("stopping; cannot read the transaction record: %s", e)
        return
    if t is None or t.phase.terminal:
        log.info("stopping; no transaction is open")
        return
    fields = {"MESSAGE_ID": MSG_HANDOVER, "TXN_ID": t.id, "PHASE": t.phase.value}
    if shutting_down(run):
        log.warning(
            "txn=%s the system is shutting down with this transaction %s: "
            "netcfg-txn-boot-rollback.service reverts the change at the next boot",
            t.id,
            t.phase.value,
            extra={"journal_fields": fields},
        )
        return
    grace = engine.cfg.backstop_grace_s
    armed = backstop.arm(t, grace) if t.phase is Phase.OPEN else False
    if t.phase is Phase.ROLLING_BACK and isinstance(backstop, SystemdBackstop):
        armed = backstop.arm_in(t, grace)
    deadline = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t.deadline.wall_s))
    if armed:
        fires = time.strftime(
            "%Y-%m-%d %H:%M:%S", time.localtime(max(time.time(), t.deadline.wall_s) + grace)
        )
        log.warning(
            "txn=%s netcfg-txnd is stopping with this transaction %s (deadline %s): the "
            "backstop timer rolls it back at %s unless netcfg-txnd is started again first",
            t.id,
            t.phase.value,
            deadline,
            fires,
            extra={"journal_fields": fields},
        )
    else:
        log.critical(
            "txn=%s netcfg-txnd is stopping with this transaction %s (deadline %s) and no "
            "backstop is armed: nothing rolls it back until netcfg-txnd starts again "
            "(or the next boot)",
            t.id,
            t.phase.value,
            deadline,
            extra={"journal_fields": fields},
        )


# ------------------------------------------------------------------------------ the backstop


def _lock_holder(path: Path) -> int | None:
    """The pid holding an flock on ``path`` (from /proc/locks), or None."""
    try:
        st = os.stat(path)
        text = Path("/proc/locks").read_text()
    except OSError:
        return None
    # By inode only: on overlayfs the device /proc/locks names may differ from stat()'s.
    want = f":{st.st_ino}"
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 6 and parts[1] == "FLOCK" and parts[5].endswith(want):
            try:
                return int(parts[4])
            except ValueError:
                return None
    return None


def _try_lock(path: Path) -> int | None:
    try:
        return fsutil.take_lock(path)
    except BlockingIOError:
        return None


def _stop_daemon(lock: Path, run: Runner) -> str:
    """Kill the daemon that holds the lock without rolling back (SIGKILL works on a stopped
    process too) and keep systemd from restarting it under us. Returns what was done."""
    holder = _lock_holder(lock)
    done = []
    if sd.booted():
        run(["systemctl", "kill", "--kill-who=main", "--signal=SIGKILL", DAEMON_UNIT],
            timeout_s=20, check=False)  # fmt: skip
        run(["systemctl", "stop", DAEMON_UNIT], timeout_s=90, check=False)
        done.append(f"killed and stopped {DAEMON_UNIT}")
    if holder is not None and holder != os.getpid() and _lock_holder(lock) == holder:
        try:
            os.kill(holder, signal.SIGKILL)
            done.append(f"killed pid {holder}")
        except ProcessLookupError:
            pass
    return ", ".join(done) or "nothing to stop"


def run_backstop(
    engine: Engine,
    backstop: SystemdBackstop,
    txn_id: str | None,
    *,
    run: Runner = default_run,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """The timer fired (or the daemon unit failed). Returns a summary for the CLI."""
    # One backstop at a time: the timer's and OnFailure='s may overlap, and the second must
    # never take the first (which holds the state lock) for a wedged daemon.
    with fsutil.flock(engine.store.dir / "backstop.lock"):
        return _run_backstop(engine, backstop, txn_id, run, sleep)


def _read_record(engine: Engine, sleep: Callable[[float], None]) -> Txn | None:
    """The record, retrying I/O errors: the backstop is the last resort and must not give up on
    a passing EIO or fd shortage (a decode error is handled by the engine as corruption)."""
    end, delay = time.monotonic() + READ_WAIT_S, 0.1
    while True:
        try:
            return engine.current()
        except Unavailable as e:
            if time.monotonic() > end:
                raise
            log.error("backstop: %s; retrying in %gs", e.message, delay)
            sleep(delay)
            delay = min(delay * 2, 2.0)


def _run_backstop(
    engine: Engine,
    backstop: SystemdBackstop,
    txn_id: str | None,
    run: Runner,
    sleep: Callable[[float], None],
) -> dict[str, Any]:
    t = _read_record(engine, sleep)
    if t is None or (txn_id is not None and t.id != txn_id):
        log.info("backstop: transaction %s already ended; nothing to do", txn_id or "-")
        return {"action": "none", "why": "no such open transaction"}
    now = engine.clock.now()
    grace = engine.cfg.backstop_grace_s
    if t.phase is Phase.OPEN and t.deadline.boot_id == now.boot_id:
        left = t.deadline.remaining_s(now)
        if left > 0:  # the deadline moved and the new timer was not armed: arm it
            backstop.arm(t, grace)
            return {"action": "rearmed", "transaction": t.id, "remaining_s": left}
    lock = engine.store.lock_path
    fd = _try_lock(lock)
    cause = "netcfg-txnd was not running"
    if fd is None:
        if t.phase is Phase.ROLLING_BACK:
            try:
                age = time.time() - os.stat(engine.store.txn_path).st_mtime
            except OSError:
                age = grace
            if age < grace:  # the daemon is still making progress: look again later
                backstop.arm_in(t, grace)
                return {"action": "waiting", "transaction": t.id, "progress_age_s": age}
        stopped = _stop_daemon(lock, run)
        cause = f"netcfg-txnd held the state lock but made no progress ({stopped})"
        end = time.monotonic() + LOCK_WAIT_S
        while (fd := _try_lock(lock)) is None:
            if time.monotonic() > end:
                log.critical("backstop: the state lock is still held after %gs", LOCK_WAIT_S)
                return {"action": "failed", "transaction": t.id, "why": "state lock held"}
            sleep(0.1)
    restart = cause.startswith("netcfg-txnd held")
    try:
        log.critical(
            "txn=%s backstop: rolling back (reason timeout): %s",
            t.id,
            cause,
            extra={
                "journal_fields": {
                    "MESSAGE_ID": MSG_BACKSTOP_TOOK_OVER,
                    "TXN_ID": t.id,
                    "ACTOR": ACTOR.describe(),
                    "REASON": "timeout",
                    "CAUSE": cause,
                }
            },
        )
        rec = engine.take_over(ACTOR)
    finally:
        os.close(fd)
    for a in rec.actions:
        log.info("backstop: %s", a)
    if restart and sd.booted():  # it was meant to be running: bring it back
        run(["systemctl", "start", "--no-block", DAEMON_UNIT], timeout_s=20, check=False)
    entry = next(iter(engine.store.history(1)), None)
    doc: dict[str, Any] = {"action": "rolled-back", "transaction": t.id, "cause": cause}
    doc["actions"] = list(rec.actions)
    if entry is not None and entry.txn.id == t.id:
        doc["phase"] = entry.txn.phase.value
        doc["errors"] = list(entry.txn.errors)
    return doc
