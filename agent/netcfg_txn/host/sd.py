# SPDX-License-Identifier: GPL-3.0-or-later
"""The only systemd-python user: sd_notify, the watchdog interval, and journald logging with
structured fields. Without systemd everything degrades to no-ops and stderr."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from typing import Any, Protocol

try:
    from systemd import daemon as _daemon
    from systemd import journal as _journal
except ImportError:  # pragma: no cover - systemd-python is a hard dependency in packages
    _daemon = None
    _journal = None

JOURNAL_SOCKET = "/run/systemd/journal/socket"

# Daemon-health MESSAGE_IDs (the transaction ones are in engine.py); same ids in
# packaging/catalog/netcfg-txn.catalog. An optional part (remote listener, peers, file watcher,
# probes) failed and the daemon kept running with its timer:
MSG_OPTIONAL_FAILED = "64f9f332b1fb4477a73ac9df17a911e2"
# The rollback at the deadline (or re-arming the timer) failed and is being retried:
MSG_DEADLINE_RETRY = "dd461dad8cb74940935a1905bd1e4c4a"


def optional_failed(log: logging.Logger, what: str, error: object) -> None:
    """Log loudly that an optional part failed; the daemon keeps running and keeps its timer."""
    log.error(
        "%s: %s (the daemon keeps running; the dead-man timer is not affected)",
        what,
        error,
        extra={"journal_fields": {"MESSAGE_ID": MSG_OPTIONAL_FAILED, "NETCFG_PART": what}},
    )


class Notifier(Protocol):
    def notify(self, state: str) -> None: ...


class NullNotifier:
    def notify(self, state: str) -> None:
        pass


class SdNotifier:
    """sd_notify to $NOTIFY_SOCKET (children never see it: runner passes a minimal environment)."""

    def notify(self, state: str) -> None:
        if _daemon is not None:
            _daemon.notify(state)


def notifier() -> Notifier:
    return SdNotifier() if os.environ.get("NOTIFY_SOCKET") else NullNotifier()


def watchdog_interval_s(env: Mapping[str, str], pid: int) -> float | None:
    """Half of WATCHDOG_USEC (systemd-python has no sd_watchdog_enabled wrapper)."""
    usec = env.get("WATCHDOG_USEC")
    if not usec or env.get("WATCHDOG_PID", str(pid)) != str(pid):
        return None
    try:
        return int(usec) / 2_000_000
    except ValueError:
        return None


def listen_fds(env: Mapping[str, str], pid: int) -> list[int]:
    """Sockets passed by socket activation (sd_listen_fds)."""
    if env.get("LISTEN_PID") != str(pid):
        return []
    try:
        n = int(env.get("LISTEN_FDS", "0"))
    except ValueError:
        return []
    return list(range(3, 3 + n))


_PRIORITY = {
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}


def _priority(levelno: int) -> int:
    for level in sorted(_PRIORITY, reverse=True):
        if levelno >= level:
            return _PRIORITY[level]
    return 7


class JournalHandler(logging.Handler):
    """Sends each record with its ``journal_fields`` (TXN_ID, PHASE, ACTOR, REASON, MESSAGE_ID)."""

    def __init__(self, identifier: str) -> None:
        super().__init__()
        self._id = identifier

    def emit(self, record: logging.LogRecord) -> None:
        try:
            fields: dict[str, Any] = dict(getattr(record, "journal_fields", {}) or {})
            fields = {k: str(v) for k, v in fields.items() if v is not None}
            if record.exc_info:
                fields["EXCEPTION"] = logging.Formatter().formatException(record.exc_info)
            assert _journal is not None
            _journal.send(
                self.format(record),
                PRIORITY=str(_priority(record.levelno)),
                SYSLOG_IDENTIFIER=self._id,
                LOGGER=record.name,
                **fields,
            )
        except Exception:
            self.handleError(record)


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """``<N>`` syslog prefixes, which journald parses when stderr is connected to it."""

    def __init__(self, prefix_priority: bool) -> None:
        super().__init__(sys.stderr)
        self._prefix = prefix_priority

    def format(self, record: logging.LogRecord) -> str:
        msg = super().format(record)
        return f"<{_priority(record.levelno)}>{msg}" if self._prefix else msg


def _redact_secrets(record: logging.LogRecord) -> bool:
    """Command output in a log line can quote a config line (``wpa-psk …``): never log its value."""
    from netcfg_txn.core.redact import redact_text

    text = record.getMessage()
    clean = redact_text(text)
    if clean != text:
        record.msg, record.args = clean, None
    return True


def setup_logging(identifier: str, level: str | int, *, force_stderr: bool = False) -> None:
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    handler: logging.Handler
    if not force_stderr and _journal is not None and os.path.exists(JOURNAL_SOCKET):
        handler = JournalHandler(identifier)
    else:
        handler = StderrHandler(prefix_priority=bool(os.environ.get("INVOCATION_ID")))
        handler.setFormatter(logging.Formatter(f"{identifier}: %(levelname)s: %(message)s"))
    handler.addFilter(_redact_secrets)
    root.addHandler(handler)
    root.setLevel(level)


def booted() -> bool:
    """Whether systemd is PID 1 here (sd_booted): the backstop timer needs it."""
    return os.path.isdir("/run/systemd/system")
