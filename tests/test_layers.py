# SPDX-License-Identifier: GPL-3.0-or-later
"""Policy as a test: the functional core imports no side-effect module (style.md §5.2), and
each side effect has exactly one door module."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "agent" / "netcfg_txn"
PURE = ["model", "errors", "txn", "plan", "fileset", "config", "policy", "affected", "frozen"]
BANNED = {"os", "subprocess", "socket", "time", "selectors", "signal", "shutil", "tempfile",
          "pyroute2", "systemd", "click", "aiohttp", "asyncio"}  # fmt: skip
DOORS = {"subprocess": {"runner"}, "pyroute2": {"links"}, "systemd": {"sd"}}


def imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module.split(".")[0])
    return out


@pytest.mark.parametrize("name", PURE)
def test_pure_modules_import_no_side_effects(name: str) -> None:
    assert not imports(PKG / f"{name}.py") & BANNED


def test_each_side_effect_has_one_door() -> None:
    for module, doors in DOORS.items():
        users = {p.stem for p in PKG.rglob("*.py") if module in imports(p)}
        assert users <= doors, f"{module} imported outside {doors}: {users - doors}"
