# SPDX-License-Identifier: GPL-3.0-or-later
"""Tokens on disk: read from a file (or stdin) rather than the command line, where ``ps`` would
show them, and written readable by their owner only."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

from netcfg_txn.core.errors import UsageError


def read_secret(path: str, what: str) -> str:
    """One token from ``path`` (``-``: stdin), surrounding whitespace stripped."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise UsageError(f"cannot read {what} from {path}: {e.strerror}") from None
    token = text.strip()
    if not token or any(c.isspace() for c in token):
        raise UsageError(f"{path}: expected exactly one {what}")
    return token


def write_new_secret(path: str, secret: str) -> None:
    """A new file, 0600 from the start; refuses to overwrite."""
    try:
        fd = os.open(
            path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
        )
    except OSError as e:
        raise UsageError(f"cannot create {path}: {e.strerror}") from None
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(secret + "\n")


def write_token_file(path: str, token: str) -> None:
    """The token, readable by its owner only: an existing file is truncated and made 0600 before
    the token is written (open's mode applies only to a file it creates)."""
    fd = os.open(
        path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o600
    )
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UsageError(f"--token-file {path}: not a regular file")
        os.fchmod(fd, 0o600)
        os.ftruncate(fd, 0)
        os.write(fd, (token + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
