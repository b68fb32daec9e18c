# SPDX-License-Identifier: GPL-3.0-or-later
"""A stack we have no parser for: the admin's own commands from ``[apply]``.

Nothing in a file can be blamed on an interface, so every change is unattributed and the
configured fallback decides; with ``fallback = "all"`` every live link except ``lo`` is bounced.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, ClassVar

from netcfg_txn.core.model import StepResult
from netcfg_txn.net.backends.base import Backend, FileConfig, Stack, command_step, missing_tools

if TYPE_CHECKING:  # the runner is injected: only its type is needed here
    from netcfg_txn.host.runner import Runner


def positional_template(template: str) -> str:
    """``{ifname}`` in an ``[apply]`` command → a reference to sh's first positional parameter,
    quoted for where it stands: ``"$1"`` outside quotes, ``$1`` inside double quotes, and
    ``'"$1"'`` (close, insert, reopen) inside single quotes. Pure."""
    out: list[str] = []
    i, quote = 0, ""
    while i < len(template):
        if template.startswith("{ifname}", i):
            out.append({"": '"$1"', '"': "$1", "'": "'\"$1\"'"}[quote])
            i += len("{ifname}")
            continue
        c = template[i]
        if c == "\\" and quote != "'" and i + 1 < len(template):
            out.append(template[i : i + 2])
            i += 2
            continue
        if c in "'\"" and quote in ("", c):
            quote = "" if quote == c else c
        out.append(c)
        i += 1
    return "".join(out)


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
        script = positional_template(template)
        # The name is sh's "$1", never text in the script: no quoting context can make it code.
        return [
            refused if (refused := self.refuse_name(action, n)) is not None
            else command_step(action, n, [*self._shell(script), "netcfg-txn", n], run, t)
            for n in ifnames
        ]  # fmt: skip

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

    def why_unusable(self, run: Runner) -> str | None:
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
