# SPDX-License-Identifier: GPL-3.0-or-later
"""Expected failures and the exit codes they map to. Pure: no I/O.

Every subclass has a stable kebab-case ``code`` (the contract in ``--json``, the HTTP API and the
journal) and an ``exit_code``. Anything that is not a ``NetcfgTxnError`` is a bug (exit 70).
"""

from __future__ import annotations

import enum

TYPE_CHECKING = False  # typing costs milliseconds at start-up; mypy treats this name as True
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any, ClassVar


class ExitCode(enum.IntEnum):
    OK = 0
    FAILURE = 1
    USAGE = 2
    NOT_KEPT = 3  # try: the change was rolled back (answer n, out of time, COMMAND failed)
    NO_TXN = 66
    UNAVAILABLE = 69
    SOFTWARE = 70
    TEMPFAIL = 75
    NOPERM = 77
    CONFIG = 78


class NetcfgTxnError(Exception):
    """An expected failure, reported without a traceback."""

    code: ClassVar[str] = "failed"
    exit_code: ClassVar[ExitCode] = ExitCode.FAILURE
    http_status: ClassVar[int] = 500

    def __init__(
        self, message: str, *, hint: str | None = None, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = details or {}

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"code": self.code, "message": self.message, "hint": self.hint}
        if self.details:
            doc["details"] = self.details
        return doc


class Failed(NetcfgTxnError):
    """The operation ran and failed (e.g. a rollback that could not restore everything)."""

    code = "failed"
    http_status = 500


class NotKept(NetcfgTxnError):
    """``try``: the change was rolled back cleanly; the system is as it was before."""

    code = "not-kept"
    exit_code = ExitCode.NOT_KEPT
    http_status = 409


class UsageError(NetcfgTxnError):
    code = "usage"
    exit_code = ExitCode.USAGE
    http_status = 400


class BadRequest(UsageError):
    code = "bad-request"


class NoTransaction(NetcfgTxnError):
    """No open transaction, or the named one already ended."""

    code = "no-transaction"
    exit_code = ExitCode.NO_TXN
    http_status = 409


class NotFound(NoTransaction):
    code = "not-found"
    http_status = 404


class Unavailable(NetcfgTxnError):
    code = "unavailable"
    exit_code = ExitCode.UNAVAILABLE
    http_status = 503


class Busy(NetcfgTxnError):
    """Another transaction is open, or the state lock could not be taken in time."""

    code = "busy"
    exit_code = ExitCode.TEMPFAIL
    http_status = 409


class NotPermitted(NetcfgTxnError):
    code = "not-permitted"
    exit_code = ExitCode.NOPERM
    http_status = 403


class BadToken(NotPermitted):
    code = "bad-token"
    http_status = 401


class ConfigError(NetcfgTxnError):
    """Our configuration, or a managed file, is invalid."""

    code = "config-invalid"
    exit_code = ExitCode.CONFIG
    http_status = 422


class PendingEdits(ConfigError):
    """Managed files differ from the baseline of the last commit/rollback."""

    code = "pending-edits"
    http_status = 409


class TooLarge(ConfigError):
    code = "too-large"
    http_status = 413


class Rejected(ConfigError):
    """The file set is byte-identical to one that was rolled back before."""

    code = "rejected-config"
    http_status = 409


class CommandFailed(NetcfgTxnError):
    code = "command-failed"

    def __init__(self, argv: Sequence[str], returncode: int | None, stderr: str) -> None:
        status = str(returncode) if returncode is not None else "did not finish"
        import shlex  # here: the CLI starts without it

        super().__init__(f"{shlex.join(argv)} failed ({status}): {stderr or 'no output'}")
        self.argv = tuple(argv)
        self.returncode = returncode


class InternalError(NetcfgTxnError):
    code = "internal"
    exit_code = ExitCode.SOFTWARE
    http_status = 500


_BY_CODE: dict[str, type[NetcfgTxnError]] = {}


def _register(cls: type[NetcfgTxnError]) -> None:
    _BY_CODE.setdefault(cls.code, cls)
    for sub in cls.__subclasses__():
        _register(sub)


_register(NetcfgTxnError)


def from_json(doc: dict[str, Any]) -> NetcfgTxnError:
    """Rebuild an error received over the API, so the CLI exits with the daemon's exit code."""
    cls = _BY_CODE.get(str(doc.get("code")), NetcfgTxnError)
    err = NetcfgTxnError.__new__(cls)
    NetcfgTxnError.__init__(
        err,
        str(doc.get("message", "unknown error")),
        hint=doc.get("hint"),
        details=doc.get("details") if isinstance(doc.get("details"), dict) else None,
    )
    return err
