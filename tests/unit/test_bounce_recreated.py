# SPDX-License-Identifier: GPL-3.0-or-later
"""A bond the change deleted (or the rollback recreates) comes back with its ports: a link that
is already gone counts as taken down, and the backend hears which links the reload recreates,
so networkd can re-read the unchanged files of their ports."""

from __future__ import annotations

from collections.abc import Sequence

from netcfg_txn.core.model import StepResult
from netcfg_txn.core.rollback import BouncePlan, StackPlan
from netcfg_txn.host.runner import Runner
from netcfg_txn.net.backends import ApplyConfig
from netcfg_txn.net.backends.networkd import Networkd
from netcfg_txn.net.stack import StackNetwork
from tests.fakes import FakeRunner, failed

GONE = ["networkctl", "down", "--", "bond0"]


class Spy:
    """Stands in for ``Backend.recreated``: records what the reload recreates."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def __call__(self, ifnames: Sequence[str], run: Runner) -> list[StepResult]:
        self.seen = list(ifnames)
        return [StepResult("touch", n, True) for n in ifnames]


class Live:
    """Netlink with eth1 and eth2 only: the change deleted bond0."""

    def __call__(self) -> Live:
        return self

    def __enter__(self) -> Live:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def names(self) -> frozenset[str]:
        return frozenset({"lo", "eth1", "eth2"})

    def take_down(self, name: str) -> StepResult:
        return StepResult("take-down", name, name in self.names(), "no such interface")


def rollback(plan: BouncePlan) -> tuple[list[StepResult], Spy]:
    settings = ApplyConfig(backend="networkd")
    err = 'Failed to resolve interface "bond0": No such device'
    backend, spy = Networkd(settings), Spy()
    setattr(backend, "recreated", spy)  # noqa: B010 (an instance attribute, for this test)
    run = FakeRunner({tuple(GONE): failed(GONE, 1, err)})
    net = StackNetwork(backend, settings, runner=run, links=Live())  # type: ignore[arg-type]
    sp = StackPlan("networkd", plan)
    return [*net.down(sp), *net.reload(sp)], spy


def test_a_link_already_gone_is_down_and_recreated_by_the_reload() -> None:
    plan = BouncePlan(("bond0", "eth1", "eth2"), (), ("eth1", "eth2", "bond0"), (), reload=True)
    steps, backend = rollback(plan)
    assert [(s.action, s.target, s.ok) for s in steps[:3]] == [
        ("down", "bond0", True),
        ("down", "eth1", True),
        ("down", "eth2", True),
    ]
    assert "not present" in (steps[0].error or "")
    assert backend.seen == ["bond0"]


def test_a_deleted_link_brought_back_is_recreated_too() -> None:
    plan = BouncePlan(("eth1",), ("bond9",), ("eth1", "bond9"), (), reload=True)
    _, backend = rollback(plan)
    assert backend.seen == ["bond9"]


def test_nothing_recreated_is_not_announced() -> None:
    _, backend = rollback(BouncePlan(("eth1",), (), ("eth1",), (), reload=True))
    assert backend.seen == []
