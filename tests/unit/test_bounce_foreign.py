# SPDX-License-Identifier: GPL-3.0-or-later
"""A changed file of another network stack than the active one (an ifupdown file on a networkd
host) is not silently skipped: the rollback plan names it, the log says so, and the configured
``[apply] fallback`` applies to it like to any change no interface explains."""

from __future__ import annotations

import logging
from pathlib import PurePosixPath

import pytest

from netcfg_txn.core.rollback import StackPlan
from netcfg_txn.net.affected import FileChange
from netcfg_txn.net.backends import ApplyConfig, Stack, get_backend
from netcfg_txn.net.stack import StackNetwork
from tests.fakes import FakeRunner

P = PurePosixPath
NETWORK = P("/etc/systemd/network/10-eth0.network")
ETH0 = b"[Match]\nName=eth0\n[Network]\nAddress=192.0.2.10/24\n"
FOREIGN = FileChange(
    P("/etc/network/interfaces"), b"auto eth1\niface eth1 inet dhcp\n", b"auto eth1\n"
)
OTHER = FileChange(P("/etc/hosts"), b"127.0.0.1 localhost\n", b"127.0.0.1 localhost x\n")


class Names:
    def __call__(self) -> Names:
        return self

    def __enter__(self) -> Names:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def names(self) -> frozenset[str]:
        return frozenset({"lo", "eth0", "eth1"})


def _network(fallback: str) -> tuple[StackNetwork, FakeRunner]:
    settings = ApplyConfig(backend="networkd", fallback=fallback)
    runner = FakeRunner()
    net = StackNetwork(
        get_backend(Stack.NETWORKD, settings),
        settings,
        runner=runner,
        links=Names(),  # type: ignore[arg-type]
    )
    return net, runner


def _unchanged(wanted):  # type: ignore[no-untyped-def]
    return [FileChange(NETWORK, ETH0, ETH0)] if wanted(NETWORK) else []


@pytest.mark.parametrize("fallback", ["reload", "all", "none"])
def test_another_stacks_file_is_logged_and_gets_the_fallback(
    fallback: str, caplog: pytest.LogCaptureFixture
) -> None:
    net, runner = _network(fallback)
    with caplog.at_level(logging.WARNING, logger="netcfg_txn.net.stack"):
        stack_plan = net.plan([FOREIGN, OTHER], _unchanged)
    assert isinstance(stack_plan, StackPlan)
    plan = stack_plan.bounce
    assert plan.unattributed == ("/etc/network/interfaces",), plan
    logged = caplog.text
    assert (
        "/etc/network/interfaces: configuration of ifupdown, not of the active stack networkd"
        in logged
    )
    assert f"fallback {fallback}" in logged
    assert "/etc/hosts" not in logged  # not any stack's configuration: restored, nothing else
    net.reload(stack_plan)
    net.up(stack_plan)
    reloads = [c for c in runner.effects() if c[:2] == ("networkctl", "reload")]
    if fallback == "reload":
        assert plan.reload and reloads and plan.up == ()
    elif fallback == "all":
        assert plan.up == ("eth0",) and plan.down == ("eth0",) and reloads
    else:
        assert not plan.reload and not reloads and plan.up == ()


def test_only_the_active_stacks_files_when_nothing_foreign_changed() -> None:
    net, _ = _network("reload")
    plan = net.plan([OTHER], _unchanged)
    assert isinstance(plan, StackPlan)
    assert plan.bounce.unattributed == () and not plan.bounce.reload, plan
