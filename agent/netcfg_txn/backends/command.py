# SPDX-License-Identifier: GPL-3.0-or-later
"""A stack we have no parser for: the admin's own commands from ``[apply]``.

Nothing in a file can be blamed on an interface, so every change is unattributed and the
configured fallback decides; with ``fallback = "all"`` every live link except ``lo`` is bounced.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from pathlib import PurePosixPath
from typing import ClassVar

from netcfg_txn.backends.base import Backend, FileConfig, Stack, command_step, missing_tools
from netcfg_txn.model import StepResult
from netcfg_txn.runner import Runner


class Command(Backend, stack=Stack.COMMAND):
    attributes: ClassVar[bool] = False

    def owns(self, path: PurePosixPath) -> bool:
        return True  # every managed file is configuration of this stack

    def parse(self, path: PurePosixPath, text: str) -> FileConfig:
        return FileConfig(unattributed=True)

    def _per_link(
        self, action: str, template: str, ifnames: Sequence[str], run: Runner
    ) -> list[StepResult]:
        if not template:
            return []
        t = self.settings.timeout_s
        return [
            command_step(
                action, n, self._shell(template.replace("{ifname}", shlex.quote(n))), run, t
            )
            for n in ifnames
        ]

    @staticmethod
    def _shell(command: str) -> list[str]:
        return ["/bin/sh", "-c", command]

    def down(
        self,
        ifnames: Sequence[str],
        run: Runner,
        *,
        connection_ids: Mapping[str, str] | None = None,
    ) -> list[StepResult]:
        return self._per_link("down", self.settings.down_command, ifnames, run)

    def reload(self, run: Runner) -> list[StepResult]:
        cmd = self.settings.reload_command
        if not cmd:
            return []
        return [command_step("reload", cmd, self._shell(cmd), run, self.settings.timeout_s)]

    def up(
        self,
        ifnames: Sequence[str],
        run: Runner,
        *,
        connection_ids: Mapping[str, str] | None = None,
    ) -> list[StepResult]:
        return self._per_link("up", self.settings.up_command, ifnames, run)

    def usable(self, run: Runner) -> str | None:
        s = self.settings
        tools: list[str] = []
        for key, cmd in (
            ("down", s.down_command),
            ("up", s.up_command),
            ("reload", s.reload_command),
        ):
            if not cmd:
                continue
            try:
                words = shlex.split(cmd)
            except ValueError as e:
                return f"apply.{key}_command: {e}"
            tools += words[:1]
        return missing_tools(run, "/bin/sh", *tools)
