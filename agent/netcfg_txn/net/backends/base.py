# SPDX-License-Identifier: GPL-3.0-or-later
"""What every network stack backend provides: pure parsing of its files, and its few effects.

A backend never decides *which* interfaces to bounce (that is ``affected.plan_bounce``, pure); it
says what one file configures, and runs its own tools (ifup, networkctl, nmcli ...) on the names
it is given, continuing past failures with one ``StepResult`` per command.
"""

from __future__ import annotations

import abc
import dataclasses
import logging
import shlex
from collections.abc import Callable, Mapping, Sequence
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any, ClassVar

from netcfg_txn.core import ifname as ifname_mod
from netcfg_txn.core.apply import FALLBACKS, ApplyConfig, Stack
from netcfg_txn.core.errors import CommandFailed
from netcfg_txn.core.model import StepResult

if TYPE_CHECKING:  # types only: the runner is injected, so parsing never imports subprocess
    from netcfg_txn.host.runner import Completed, Runner

__all__ = ["FALLBACKS", "SELF", "ApplyConfig", "Backend", "FileConfig", "Stack"]

log = logging.getLogger(__name__)

# In a networkd drop-in, stands for "whatever the file it extends matches".
SELF = ""


def _empty_map() -> Mapping[str, Any]:
    return {}


@dataclasses.dataclass(frozen=True)
class FileConfig:
    """What ONE managed file says about interfaces. Pure parse result.

    Interface keys are names, or for networkd/netplan match patterns: space-separated globs with
    optional ``!``-prefixed exclusions (``"en* !enp3s0"``). ``deps`` always points from the upper
    link to the lower ones it sits on or enslaves, whichever file states the tie.
    """

    fragments: Mapping[str, str] = dataclasses.field(default_factory=_empty_map)
    deps: Mapping[str, frozenset[str]] = dataclasses.field(default_factory=_empty_map)
    virtual: frozenset[str] = frozenset()  # links this file creates (bridge, bond, vlan, netdev)
    unattributed: bool = False  # has content no interface can be blamed for
    # The canonical text of that content, so an edit elsewhere in the file does not count;
    # None: unknown, so any byte change of the file counts as an unattributed change.
    unattributed_text: str | None = None
    connection_ids: Mapping[str, str] = dataclasses.field(default_factory=_empty_map)
    # Uppers among `deps` keys whose lowers are enslaved ports (bridge, bond, vrf), not a parent
    # they are stacked on (vlan, macvlan): changing one of these re-enslaves its ports.
    controllers: frozenset[str] = frozenset()
    aliases: Mapping[str, str] = dataclasses.field(default_factory=_empty_map)  # uuid/id -> name
    extends: PurePosixPath | None = None  # a drop-in: its SELF key means this file's matches
    # networkd: only the first file (by file name) of the same suffix matching a link applies.
    exclusive: bool = False


def command_step(
    action: str,
    target: str,
    argv: Sequence[str],
    run: Runner,
    timeout_s: float,
    *,
    goal_reached: Callable[[], bool] | None = None,
) -> StepResult:
    """Run one backend command; a failure becomes a failed StepResult, never an exception.

    ``goal_reached``: asked after a non-zero exit; True means the command failed only because
    there was nothing left to do (e.g. the device was already down), which is success.
    """
    try:
        done = run(argv, timeout_s=timeout_s, check=False)
    except CommandFailed as e:  # not found or timed out
        log.warning("%s", e.message)
        return StepResult(action, target, False, e.message)
    if done.returncode != 0:
        msg = _failure(done)
        if goal_reached is not None and goal_reached():
            log.info("%s: nothing to do", msg)
            return StepResult(action, target, True)
        log.warning("%s", msg)
        return StepResult(action, target, False, msg)
    return StepResult(action, target, True)


def _failure(done: Completed) -> str:
    why = (done.stderr.strip() or done.stdout.strip())[-500:] or "no output"
    return f"{shlex.join(done.argv)} failed ({done.returncode}): {why}"


def missing_tools(run: Runner, *tools: str) -> str | None:
    """None if every tool is on PATH, else a reason naming the first missing one."""
    for tool in tools:
        try:
            found = run(["/bin/sh", "-c", 'command -v "$1"', "sh", tool], check=False)
        except CommandFailed as e:
            return e.message
        if found.returncode != 0:
            return f"{tool} not found in PATH"
    return None


def probe(run: Runner, argv: Sequence[str]) -> str | None:
    """None if the command runs and succeeds, else why not (for ``why_unusable``)."""
    try:
        done = run(argv, timeout_s=10.0, check=False)
    except CommandFailed as e:
        return e.message
    return _failure(done) if done.returncode != 0 else None


class Backend(abc.ABC):
    """One network stack. Subclasses register themselves: ``class X(Backend, stack=Stack.X)``."""

    registry: ClassVar[dict[Stack, type[Backend]]] = {}
    stack: ClassVar[Stack]
    # False: parse never names interfaces, so fallback "all" means every live link.
    attributes: ClassVar[bool] = True
    # True: the stack applies config after its command returned (a daemon: networkd, NM), so
    # the live state is polled, and dropped routes are left to it for a moment.
    asynchronous: ClassVar[bool] = False
    # The stack's tools take "--" before operands (getopt), so a name can never be an option.
    end_of_options: ClassVar[bool] = False
    # Interface names may be logical aliases with ':' (ifupdown's eth0:1).
    alias_names: ClassVar[bool] = False

    def __init_subclass__(cls, *, stack: Stack, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.stack = stack
        Backend.registry[stack] = cls

    def __init__(self, settings: ApplyConfig | None = None) -> None:
        self.settings = settings or ApplyConfig()

    @abc.abstractmethod
    def owns(self, path: PurePosixPath) -> bool:
        """Is this managed path one of this stack's config files."""

    @abc.abstractmethod
    def parse(self, path: PurePosixPath, text: str) -> FileConfig:
        """Pure. Raises ``ConfigError("path:line: ...")`` on content the stack would reject."""

    @abc.abstractmethod
    def down(
        self,
        ifnames: Sequence[str],
        run: Runner,
        *,
        connection_ids: Mapping[str, str] | None = None,
    ) -> list[StepResult]:
        """Take these links down with the current config. One StepResult per command."""

    @abc.abstractmethod
    def reload(self, run: Runner) -> list[StepResult]:
        """Make the stack re-read its files, bouncing nothing."""

    @abc.abstractmethod
    def up(
        self,
        ifnames: Sequence[str],
        run: Runner,
        *,
        connection_ids: Mapping[str, str] | None = None,
    ) -> list[StepResult]:
        """Bring these links up from the (restored) files, in the order given."""

    def without_addresses(self, fragment: str) -> str | None:
        """One link's configuration (a ``FileConfig.fragments`` value) with its static
        addresses taken out, so that a change of addresses alone is told apart and applied over
        netlink instead of bouncing the link. None: this stack cannot tell (always bounce)."""
        return None

    def readdressed(self, ifnames: Sequence[str], run: Runner) -> list[StepResult]:
        """After the files are back and the addresses of these links were set back over
        netlink: make the stack's own state agree without taking them down."""
        return []

    def recreated(self, ifnames: Sequence[str], run: Runner) -> list[StepResult]:
        """Before the reload: these links were deleted and the restored files create them anew.
        Make the stack tie the ports named in unchanged files to the new links."""
        return []

    def forget(self, ifnames: Sequence[str], run: Runner) -> list[StepResult]:
        """After its tool could not take these links down and netlink did instead: make the
        stack's own state agree (they are not configured), with the restored files in place."""
        return []

    @abc.abstractmethod
    def why_unusable(self, run: Runner) -> str | None:
        """None if the stack's tools exist and run, else a reason for the admin."""

    def _each(
        self, action: str, ifnames: Sequence[str], argv: Sequence[str], run: Runner
    ) -> list[StepResult]:
        """``argv + [--] + [ifname]`` for each name, continuing past failures."""
        t = self.settings.timeout_s
        eoo = ["--"] if self.end_of_options else []
        return [
            refused if (refused := self.refuse_name(action, n)) is not None
            else command_step(action, n, [*argv, *eoo, n], run, t)
            for n in ifnames
        ]  # fmt: skip

    def refuse_name(self, action: str, ifname: str) -> StepResult | None:
        """A failed step for a name no command may see (from a hostile or broken file)."""
        why = ifname_mod.problem(ifname, alias=self.alias_names)
        if why is None:
            return None
        log.error("refusing to %s %r: %s", action, ifname, why)
        return StepResult(action, ifname, False, f"refused: {why}")
