# SPDX-License-Identifier: GPL-3.0-or-later
"""Policy as a test: the functional core imports no side-effect module (style.md §5.2), and
each side effect has exactly one door module."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "agent" / "netcfg_txn"
PURE = ["core/model", "core/errors", "core/txn", "core/plan", "core/fileset", "core/config",
        "core/policy", "net/affected", "core/frozen"]  # fmt: skip
BANNED = {"os", "subprocess", "socket", "time", "selectors", "signal", "shutil", "tempfile",
          "pyroute2", "systemd", "click", "aiohttp", "asyncio"}  # fmt: skip
DOORS = {"subprocess": {"host/runner"}, "pyroute2": {"net/links"}, "systemd": {"host/sd"}}


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
        found = (p for p in PKG.rglob("*.py") if module in imports(p))
        users = {str(p.relative_to(PKG).with_suffix("")) for p in found}
        assert users <= doors, f"{module} imported outside {doors}: {users - doors}"
