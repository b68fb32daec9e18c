# SPDX-License-Identifier: GPL-3.0-or-later
"""Fixtures for the netns tier: throwaway namespaces, a sandboxed host, running network stacks.

Everything needs root (network and mount namespaces). A missing tool skips the test with the
reason, except under ``CI=true``: there scripts/test installs every tool, so a missing one is a
failure, not a silent skip. See ``stacks.py`` for the harness itself.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import NoReturn

import pytest

from tests.netns.stacks import (
    DEFAULT_IFACES,
    STACKS,
    HarnessError,
    HostSandbox,
    Iface,
    Ifupdown2Stack,
    Stack,
    Topology,
    ifupdown2_ready,
    ifupdown2_root,
    missing_tools,
    prepare_ifupdown2,
    running_stack,
)

# "stack (test)" -> {phase: seconds}, filled by make_stack, printed at the end of the run.
TIMINGS: dict[str, dict[str, float]] = {}


def in_ci() -> bool:
    return os.environ.get("CI") == "true"


def unavailable(reason: str) -> NoReturn:
    """Skip, or fail under CI=true (where scripts/test is expected to have provided it)."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: scripts/test must provide this)", pytrace=False)
    pytest.skip(reason)


def require_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: creates network and mount namespaces")


def require_tools(*tools: str) -> None:
    if gone := missing_tools(tools):
        unavailable(f"needs {', '.join(gone)} (apt: iproute2 util-linux iputils-ping)")


def require_stack(cls: type[Stack]) -> None:
    if cls is Ifupdown2Stack and not ifupdown2_ready(ifupdown2_root()):
        try:
            prepare_ifupdown2()
        except (HarnessError, OSError, ValueError) as e:
            unavailable(f"cannot unpack ifupdown2 into {ifupdown2_root()}: {e}")
    if (why := cls.missing()) is not None:
        unavailable(why)


@pytest.fixture
def topology() -> Iterator[Topology]:
    """Host and peer namespaces joined by nct0<->p0 (192.0.2.2/24) and nct1<->p1
    (198.51.100.2/24); host side down and unconfigured."""
    require_root()
    require_tools("ip")
    with Topology.create() as topo:
        yield topo


@pytest.fixture
def sandbox(topology: Topology, tmp_path: Path) -> Iterator[HostSandbox]:
    """A private mount namespace in the host namespace, no stack running."""
    require_tools("nsenter", "unshare", "ping")
    with HostSandbox.open(topology.host, tmp_path / "sandbox") as box:
        yield box


StackFactory = Callable[..., Stack]


@pytest.fixture
def make_stack(
    topology: Topology, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[StackFactory]:
    """``make_stack(name, ifaces=DEFAULT_IFACES)``: a sandbox running that stack, config up.

    One stack per test (they share the topology's host namespace)."""
    require_tools("nsenter", "unshare", "ping")
    with contextlib.ExitStack() as cleanup:

        def make(name: str, ifaces: Sequence[Iface] = DEFAULT_IFACES) -> Stack:
            cls = STACKS[name]
            require_stack(cls)
            s = cleanup.enter_context(running_stack(topology, tmp_path / name, cls, ifaces))
            TIMINGS[f"{name} ({request.node.originalname})"] = s.timings  # live: apply() adds
            return s

        yield make


@pytest.fixture(params=sorted(STACKS))
def stack_name(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not TIMINGS:
        return
    terminalreporter.section("netns stack timings (s)")
    for name, phases in sorted(TIMINGS.items()):
        parts = ", ".join(f"{k} {v:.3f}" for k, v in phases.items())
        terminalreporter.write_line(f"{name}: {parts}")
