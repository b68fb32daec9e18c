# SPDX-License-Identifier: GPL-3.0-or-later
"""Fake-root fixtures: a temp ``root`` with ifupdown-style files and an engine over it."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from netcfg_txn.core import config
from netcfg_txn.core.model import Actor
from netcfg_txn.engine import Engine
from netcfg_txn.net.network import HookNetwork
from tests.fakeclock import FakeClock

ROOT_ACTOR = Actor(kind="local", uid=0, pid=1, command="pytest")


@dataclasses.dataclass
class Env:
    root: Path
    state: Path
    clock: FakeClock
    engine: Engine

    def path(self, p: str) -> Path:
        return self.root / p.lstrip("/")

    def write(self, p: str, text: str, mode: int = 0o644) -> Path:
        real = self.path(p)
        real.parent.mkdir(parents=True, exist_ok=True)
        real.write_text(text)
        os.chmod(real, mode)
        return real

    def tree(self) -> dict[str, Any]:
        """Everything under root/etc: content or link target, mode, owner."""
        out: dict[str, Any] = {}
        for dirpath, _dirs, names in os.walk(self.root / "etc"):
            for n in names:
                p = Path(dirpath) / n
                st = os.lstat(p)
                rel = "/" + str(p.relative_to(self.root))
                if p.is_symlink():
                    out[rel] = ("link", os.readlink(p), st.st_uid)
                else:
                    out[rel] = (p.read_bytes(), st.st_mode & 0o7777, st.st_uid, st.st_gid)
        return out


def build(tmp_path: Path, toml: str = "", network: Any = None) -> Env:
    root, state = tmp_path / "root", tmp_path / "state"
    root.mkdir(exist_ok=True)
    cfg = config.parse([("test.toml", '[files]\npresets = ["ifupdown"]\n' + toml)], state_dir=state)
    clock = FakeClock()
    engine = Engine(root, cfg, clock, network or HookNetwork(""))
    return Env(root, state, clock, engine)


@pytest.fixture
def env(tmp_path: Path) -> Env:
    e = build(tmp_path)
    e.write("/etc/network/interfaces", "auto lo\niface lo inet loopback\nsource interfaces.d/*\n")
    for i in range(3):
        e.write(f"/etc/network/interfaces.d/eth{i}", f"auto eth{i}\niface eth{i} inet dhcp\n")
    return e


@pytest.fixture
def make_env(tmp_path: Path) -> Callable[..., Env]:
    def make(toml: str = "", network: Any = None) -> Env:
        return build(tmp_path, toml, network)

    return make
