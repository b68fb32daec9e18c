# SPDX-License-Identifier: GPL-3.0-or-later
"""The ``[apply]`` section: how a rollback makes the network stack apply restored files. Pure.

Declared once here; the config file, the frozen config of a snapshot and the backends all use
``ApplyConfig``, so a value one of them accepts no other can refuse later.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any, ClassVar

from netcfg_txn.core.settings import SettingError, check, choice, setting, string
from netcfg_txn.core.units import parse_duration


class Stack(enum.Enum):
    """The network stacks with a backend. Values are the config contract (``[apply] backend``)."""

    IFUPDOWN = "ifupdown"
    IFUPDOWN2 = "ifupdown2"
    NETWORKD = "networkd"
    NETWORKMANAGER = "networkmanager"
    NETPLAN = "netplan"
    IFCFG = "ifcfg"
    COMMAND = "command"


# "none": restore files and run [apply] command only; "auto": detect the stack.
BACKENDS = ("auto", "none", *(s.value for s in Stack))
# What a change no interface can be blamed for does.
FALLBACKS = ("reload", "none", "all")


def _per_link_command(v: Any) -> str:
    """A backend=command template: the interface is passed as ``{ifname}``, so a command
    without it would take every link down (or up) for each one it is run for."""
    text = string(v)
    if text and "{ifname}" not in text:
        raise ValueError("must contain {ifname}")
    return text


@dataclasses.dataclass(frozen=True)
class ApplyConfig:
    SECTION: ClassVar[str] = "apply"

    backend: str = setting("auto", choice(*BACKENDS), "network stack that applies restored files")
    command: str = setting(
        "", string, "shell command run after files are restored (e.g. 'ifup -a')"
    )
    fallback: str = setting("reload", choice(*FALLBACKS), "unattributable change: what to do")
    down_command: str = setting("", _per_link_command, "backend=command: take {ifname} down")
    up_command: str = setting("", _per_link_command, "backend=command: bring {ifname} up")
    reload_command: str = setting("", string, "backend=command: reload the stack")
    timeout_s: float = setting(
        60.0, parse_duration, "limit for each backend command", key="timeout"
    )

    def __post_init__(self) -> None:
        check(self)
        commands = (self.down_command, self.up_command, self.reload_command)
        if self.backend == Stack.COMMAND.value and not any(commands):
            raise SettingError(
                self.SECTION,
                "backend",
                '"command" needs down_command, up_command or reload_command',
            )
