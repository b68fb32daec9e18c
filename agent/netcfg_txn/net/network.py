# SPDX-License-Identifier: GPL-3.0-or-later
"""How a live rollback touches the network, behind one protocol the engine drives in the
design's order: ``plan`` (before any file changes) -> ``down`` (changed interfaces, while their
current config exists) -> ``delete_created_links`` (links only the new config created) -> files
restored -> ``reload`` -> ``up`` -> ``restore_routes`` -> ``verify`` (live state against the
snapshot) -> ``run_hook`` (the ``[apply] command``). Each stage takes the typed plan ``plan``
returned and reports its steps; a stage never raises over a step that failed.

``HookNetwork`` is the simplest implementation: run the configured ``[apply] command`` once the
files are back. Per-interface stacks (``stack.StackNetwork``) implement the same protocol.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import PurePosixPath
from typing import Any, Protocol

from netcfg_txn.core.errors import CommandFailed
from netcfg_txn.core.model import StepResult
from netcfg_txn.core.rollback import HookPlan, NetworkPlan, NoNetworkPlan
from netcfg_txn.host.runner import Runner, run
from netcfg_txn.net.affected import FileChange

# The managed files that did NOT change (old == new), limited to paths the filter accepts; a
# backend reads them only for context (which ports a bridge has, which file wins a match).
UnchangedFiles = Callable[[Callable[[PurePosixPath], bool]], Iterable[FileChange]]

# The live links/addresses/routes captured at start (``links.LiveState`` as JSON), or None.
LiveJson = Mapping[str, Any] | None

__all__ = ["FileChange", "HookNetwork", "LiveJson", "Network", "UnchangedFiles"]


class Network(Protocol):
    name: str

    def problem(self) -> str | None:
        """Why this network side cannot work on this host (checked at start), or None."""
        ...

    def capture(self) -> Mapping[str, Any] | None:
        """Live state to keep with the snapshot (JSON), or None."""
        ...

    def plan(self, changes: Sequence[FileChange], unchanged: UnchangedFiles) -> NetworkPlan:
        """Decide, before anything is touched, what the rollback will do (it is persisted)."""
        ...

    def accepts(self, plan: NetworkPlan) -> bool:
        """Whether this network can carry out ``plan`` (a plan recorded by another kind of
        network, e.g. before a config change, cannot be)."""
        ...

    def down(self, plan: NetworkPlan) -> list[StepResult]: ...

    def delete_created_links(self, plan: NetworkPlan) -> list[StepResult]: ...

    def reload(self, plan: NetworkPlan) -> list[StepResult]: ...

    def up(self, plan: NetworkPlan) -> list[StepResult]: ...

    def restore_routes(self, plan: NetworkPlan, live: LiveJson) -> list[StepResult]: ...

    def verify(self, plan: NetworkPlan, live: LiveJson) -> list[StepResult]: ...

    def run_hook(self, plan: NetworkPlan) -> list[StepResult]: ...


def run_command_hook(command: str, runner: Runner, timeout_s: float) -> StepResult:
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

    def plan(self, changes: Sequence[FileChange], unchanged: UnchangedFiles) -> NetworkPlan:
        return HookPlan(self.command, tuple(sorted(str(c.path) for c in changes)))

    def accepts(self, plan: NetworkPlan) -> bool:
        return isinstance(plan, HookPlan | NoNetworkPlan)

    def down(self, plan: NetworkPlan) -> list[StepResult]:
        return []

    def delete_created_links(self, plan: NetworkPlan) -> list[StepResult]:
        return []

    def reload(self, plan: NetworkPlan) -> list[StepResult]:
        return []

    def up(self, plan: NetworkPlan) -> list[StepResult]:
        return []

    def restore_routes(self, plan: NetworkPlan, live: LiveJson) -> list[StepResult]:
        return []

    def verify(self, plan: NetworkPlan, live: LiveJson) -> list[StepResult]:
        return []

    def run_hook(self, plan: NetworkPlan) -> list[StepResult]:
        if not self.command or not isinstance(plan, HookPlan) or not plan.changed:
            return []
        return [run_command_hook(self.command, self._run, self._timeout_s)]
