# SPDX-License-Identifier: GPL-3.0-or-later
"""The backend registry, ``[apply]`` settings validation and ``detect`` for ``backend = "auto"``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import PurePosixPath

import pytest

from netcfg_txn.core.errors import ConfigError
from netcfg_txn.core.settings import SettingError
from netcfg_txn.net.backends import ApplyConfig, Backend, Stack, detect, get_backend

P = PurePosixPath


def test_every_stack_has_a_registered_backend() -> None:
    for stack in Stack:
        backend = get_backend(stack, ApplyConfig())
        assert isinstance(backend, Backend) and backend.stack is stack


def test_stack_values_are_the_config_contract() -> None:
    assert [s.value for s in Stack] == [
        "ifupdown",
        "ifupdown2",
        "networkd",
        "networkmanager",
        "netplan",
        "ifcfg",
        "command",
    ]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"backend": "wicked"}, r"\[apply\] backend: must be one of auto, none, ifupdown"),
        ({"fallback": "some"}, r"\[apply\] fallback: must be one of reload, none, all"),
        ({"timeout_s": 0}, r"\[apply\] timeout: must be positive"),
        ({"down_command": "ip link set eth0 down"}, r"\[apply\] down_command: must contain"),
        ({"backend": "command"}, r'\[apply\] backend: "command" needs'),
    ],
)
def test_invalid_settings_name_the_key(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(SettingError, match=f"^{message}"):
        ApplyConfig(**kwargs)  # type: ignore[arg-type]


def test_settings_defaults() -> None:
    s = ApplyConfig()
    assert (s.backend, s.fallback, s.timeout_s) == ("auto", "reload", 60.0)


def runs(*daemons: str) -> Callable[[str], bool]:
    return lambda name: name in daemons


@pytest.mark.parametrize(
    ("files", "daemons", "stack"),
    [
        (["/etc/network/interfaces"], [], Stack.IFUPDOWN),
        (
            ["/etc/network/interfaces", "/etc/network/ifupdown2/ifupdown2.conf"],
            [],
            Stack.IFUPDOWN2,
        ),
        (["/etc/systemd/network/10-eth0.network"], ["systemd-networkd"], Stack.NETWORKD),
        (["/etc/systemd/network/10-eth0.network"], [], Stack.NETWORKD),
        (["/etc/NetworkManager/system-connections/a.nmconnection"], [], Stack.NETWORKMANAGER),
        # both stacks have files: the daemon that runs decides
        (
            [
                "/etc/NetworkManager/system-connections/a.nmconnection",
                "/etc/systemd/network/a.network",
            ],
            ["systemd-networkd"],
            Stack.NETWORKD,
        ),
        (
            [
                "/etc/NetworkManager/system-connections/a.nmconnection",
                "/etc/systemd/network/a.network",
            ],
            ["NetworkManager"],
            Stack.NETWORKMANAGER,
        ),
        # netplan generates for either daemon: its YAML is what a transaction edits
        (
            ["/etc/netplan/01-netcfg.yaml", "/etc/network/interfaces"],
            ["NetworkManager"],
            Stack.NETPLAN,
        ),
        (["/etc/sysconfig/network-scripts/ifcfg-eth0"], ["NetworkManager"], Stack.IFCFG),
        # Debian desktop: NetworkManager runs, but ifupdown owns the files there are
        (["/etc/network/interfaces"], ["NetworkManager"], Stack.IFUPDOWN),
        ([], ["NetworkManager"], Stack.NETWORKMANAGER),
        ([], ["systemd-networkd"], Stack.NETWORKD),
    ],
)
def test_detect(files: list[str], daemons: list[str], stack: Stack) -> None:
    assert detect([P(f) for f in files], runs(*daemons)) is stack


def test_detect_gives_up_with_a_hint() -> None:
    with pytest.raises(ConfigError, match="cannot tell which network stack") as e:
        detect([P("/etc/hosts")], runs())
    assert e.value.hint and "[apply] backend" in e.value.hint
