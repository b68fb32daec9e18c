# SPDX-License-Identifier: GPL-3.0-or-later
"""How a live rollback touches the network, behind one protocol the engine drives in the
design's order: plan (before any file changes) -> before_restore (take changed interfaces down
while their current config exists, delete links only the new config created) -> files restored ->
after_restore (reload, bring interfaces up, re-add routes, verify).

``HookNetwork`` is the simplest implementation: run the configured ``[apply] command`` once the
files are back. Per-interface stacks implement the same protocol.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import PurePosixPath
from typing import Any, Protocol

from netcfg_txn.core.errors import CommandFailed
from netcfg_txn.core.model import StepResult
from netcfg_txn.host.runner import Runner, run
from netcfg_txn.net.affected import FileChange

# The managed files that did NOT change (old == new), limited to paths the filter accepts; a
# backend reads them only for context (which ports a bridge has, which file wins a match).
UnchangedFiles = Callable[[Callable[[PurePosixPath], bool]], Iterable[FileChange]]

__all__ = ["FileChange", "HookNetwork", "Network", "UnchangedFiles"]


class Network(Protocol):
    name: str

    def problem(self) -> str | None:
        """Why this network side cannot work on this host (checked at start), or None."""
        ...

    def capture(self) -> Mapping[str, Any] | None:
        """Live state to keep with the snapshot (JSON), or None."""
        ...

    def plan(self, changes: Sequence[FileChange], unchanged: UnchangedFiles) -> Mapping[str, Any]:
        """Decide, before anything is touched, what the rollback will do (persisted as JSON)."""
        ...

    def before_restore(self, plan: Mapping[str, Any]) -> list[StepResult]: ...

    def after_restore(
        self, plan: Mapping[str, Any], live: Mapping[str, Any] | None
    ) -> list[StepResult]: ...


def run_hook(command: str, runner: Runner, timeout_s: float) -> StepResult:
    """The ``[apply] command`` once files are back, recorded as one step (never raised)."""
    try:
        runner(["/bin/sh", "-c", command], timeout_s=timeout_s, check=True)
    except CommandFailed as e:
        return StepResult("hook", command, False, str(e))
    return StepResult("hook", command, True)


class HookNetwork:
    """No per-interface knowledge: restore files, then run ``command`` (if any) and record it."""

    name = "command-hook"

    def __init__(self, command: str, runner: Runner = run, timeout_s: float = 120.0):
        self.command = command
        self._timeout_s = timeout_s
        self._run = runner

    def problem(self) -> str | None:
        return None

    def capture(self) -> Mapping[str, Any] | None:
        return None

    def plan(self, changes: Sequence[FileChange], unchanged: UnchangedFiles) -> Mapping[str, Any]:
        return {"hook": self.command, "changed": sorted(str(c.path) for c in changes)}

    def before_restore(self, plan: Mapping[str, Any]) -> list[StepResult]:
        return []

    def after_restore(
        self, plan: Mapping[str, Any], live: Mapping[str, Any] | None
    ) -> list[StepResult]:
        if not self.command or not plan.get("changed"):
            return []
        return [run_hook(self.command, self._run, self._timeout_s)]
