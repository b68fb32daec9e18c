# SPDX-License-Identifier: GPL-3.0-or-later
"""Test doubles for the effect doors: a ``Runner`` that records instead of running."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath

from netcfg_txn.core.errors import CommandFailed
from netcfg_txn.host.runner import Completed

BACKEND_FIXTURES = Path(__file__).parent / "fixtures" / "backends"


def host_files(stack: str) -> dict[PurePosixPath, str]:
    """A fake host's config: ``fixtures/backends/<stack>/etc/...`` keyed by the path it is."""
    base = BACKEND_FIXTURES / stack
    return {
        PurePosixPath("/", p.relative_to(base).as_posix()): p.read_text()
        for p in sorted(base.rglob("*"))
        if p.is_file()
    }


def failed(argv: Sequence[str], returncode: int = 1, stderr: str = "boom") -> Completed:
    """A scripted non-zero exit for ``FakeRunner(outputs=...)``."""
    return Completed(tuple(argv), returncode, "", stderr)


class FakeRunner:
    """Records every argv; answers success unless ``outputs`` scripts a result or an exception.

    Like the real ``runner.run``, a non-zero exit raises ``CommandFailed`` when ``check`` is set.
    """

    def __init__(
        self, outputs: Mapping[tuple[str, ...], Completed | CommandFailed] | None = None
    ) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.outputs: dict[tuple[str, ...], Completed | CommandFailed] = dict(outputs or {})

    def __call__(
        self, argv: Sequence[str], *, timeout_s: float = 30.0, check: bool = True
    ) -> Completed:
        cmd = tuple(argv)
        self.calls.append(cmd)
        out = self.outputs.get(cmd, Completed(cmd, 0, "", ""))
        if isinstance(out, CommandFailed):
            raise out
        if check and out.returncode != 0:
            raise CommandFailed(cmd, out.returncode, out.stderr)
        return out

    def effects(self) -> list[tuple[str, ...]]:
        """The calls minus the ``command -v`` presence probes of ``usable``."""
        return [c for c in self.calls if c[:3] != ("/bin/sh", "-c", 'command -v "$1"')]
