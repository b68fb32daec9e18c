# SPDX-License-Identifier: GPL-3.0-or-later
"""Daemon tier: the real ``netcfg-txnd`` and the real CLI over a temp root. The control socket is
root-only (SO_PEERCRED), so the tier needs root; it skips without, and fails with ``CI=true``."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.daemon.harness import Daemon, make

CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(autouse=True)
def _daemon_tier_requirements() -> None:
    if os.geteuid() != 0:
        why = "needs root (the control socket only serves uid 0)"
        if CI:
            pytest.fail(f"daemon tier cannot run (CI=true forbids skipping): {why}")
        pytest.skip(why)


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    """``spawn(toml=None, start=True)`` → a Daemon over a fresh temp root; killed afterwards."""
    made: list[Daemon] = []

    def _spawn(toml: str | None = None, *, start: bool = True, **kw: Any) -> Daemon:
        d = make(tmp_path / f"d{len(made)}", toml, **kw)
        made.append(d)
        if start:
            d.start()
        return d

    try:
        yield _spawn
    finally:
        for d in made:
            d.kill()


@pytest.fixture
def daemon(spawn: Callable[..., Daemon]) -> Daemon:
    return spawn()
