# SPDX-License-Identifier: GPL-3.0-or-later
"""Policy as a test: the functional core is pure all the way down, each side effect has one
door module, and the package has no import cycles.

Imports are read from the source (``ast``), module level only: an import inside a function runs
when that function is called, not when its module is imported, so it is how a door is opened
lazily (``net.backends.registry`` loads the plug-ins; ``net.choose`` the stack). Imports under
``if TYPE_CHECKING:`` are types for mypy and never run. Importing ``a.b.c`` also runs the
packages ``a`` and ``a.b``, so those count as imported too.

PyYAML is not allowed in the pure set: the functional core depends on the standard library
only, and YAML is parsed by the netplan backend, a plug-in outside it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "agent" / "netcfg_txn"
ROOT = "netcfg_txn"

# Pure outside core/ (everything in core/ is pure), and the packages these sit in.
PURE_ELSEWHERE = {
    "net/affected", "net/livestate", "net/backends/base", "net/backends/keyfile",
    "remote/subject", "__init__", "net/__init__", "net/backends/__init__", "remote/__init__",
}  # fmt: skip
# The standard library's pure parts: values, text, parsing. Not os, subprocess, socket, time,
# ssl, asyncio, selectors, signal, shutil, tempfile, threading: those are effects (or clocks).
# logging: a pure module may log; where the records go is configured by the shell. pathlib:
# for PurePosixPath (a value), also used as a type.
PURE_STDLIB = {
    "__future__", "abc", "base64", "binascii", "bisect", "collections", "contextlib", "copy",
    "dataclasses", "difflib", "enum", "errno", "fnmatch", "functools", "hashlib", "hmac", "heapq",
    "ipaddress", "itertools", "json", "logging", "math", "operator", "pathlib", "posixpath",
    "re", "shlex", "stat", "string", "textwrap", "tomllib", "types", "typing", "unicodedata",
    "urllib", "uuid",
}  # fmt: skip
# A side effect -> the one module that may import it.
DOORS = {
    "subprocess": {"host/runner"},
    "pyroute2": {"net/links"},
    "systemd": {"host/sd"},
}


def _name(path: Path) -> str:
    """``net/links`` for agent/netcfg_txn/net/links.py, ``net/__init__`` for a package."""
    return str(path.relative_to(PKG).with_suffix(""))


MODULES = {_name(p): p for p in sorted(PKG.rglob("*.py"))}


def _resolve(dotted: str) -> str | None:
    """``netcfg_txn.net.links`` -> ``net/links`` (a module or a package's ``__init__``)."""
    parts = dotted.split(".")[1:]
    while parts:
        name = "/".join(parts)
        if name in MODULES:
            return name
        if f"{name}/__init__" in MODULES:
            return f"{name}/__init__"
        parts.pop()  # ``from pkg.mod import attr``: the attribute is not a module
    return "__init__"


def _imports(tree: ast.Module, *, lazy: bool) -> Iterator[ast.Import | ast.ImportFrom]:
    """Imports that run when the module is imported (not in functions, not TYPE_CHECKING);
    with ``lazy``, also those inside functions."""
    todo: list[ast.AST] = list(tree.body)
    while todo:
        node = todo.pop(0)
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            todo += node.orelse
        elif lazy or not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            todo += [c for c in ast.iter_child_nodes(node) if isinstance(c, ast.stmt)]


def _parse(name: str, *, lazy: bool = False) -> tuple[set[str], set[str]]:
    """(modules of the package this one imports explicitly, other top-level modules)."""
    ours, others = set(), set()
    for node in _imports(ast.parse(MODULES[name].read_text()), lazy=lazy):
        if isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{name}: relative import (the house style is absolute)")
        dotted = [a.name for a in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.module:
            dotted = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for d in dotted:
            if d.split(".")[0] == ROOT:
                target = _resolve(d)
                if target is not None and target != name:
                    ours.add(target)
            else:
                others.add(d.split(".")[0])
    return ours, others


GRAPH = {name: _parse(name) for name in MODULES}
# With function-local imports too: a cycle through a lazy import is still a cycle in the design
# (it only moved the failure from import time to call time), so none is allowed either.
LAZY_GRAPH = {name: _parse(name, lazy=True) for name in MODULES}


def _with_packages(name: str) -> set[str]:
    """``name`` and the package ``__init__`` modules importing it runs first."""
    parts = name.split("/")[:-1]
    return {name, "__init__"} | {"/".join(parts[: i + 1]) + "/__init__" for i in range(len(parts))}


def _closure(name: str) -> dict[str, str]:
    """Every module of ours that importing ``name`` runs -> the module that imported it."""
    seen = {m: name for m in _with_packages(name)}
    todo = list(seen)
    while todo:
        cur = todo.pop()
        for nxt in GRAPH[cur][0]:
            for m in _with_packages(nxt):
                if m not in seen:
                    seen[m] = cur
                    todo.append(m)
    return seen


PURE = sorted(n for n in MODULES if n.startswith("core/") or n in PURE_ELSEWHERE)


@pytest.mark.parametrize("name", PURE)
def test_pure_modules_import_only_pure_modules_transitively(name: str) -> None:
    for mod, via in _closure(name).items():
        assert mod in PURE, f"{name} imports {mod} (via {via}), which is not pure"
        bad = GRAPH[mod][1] - PURE_STDLIB
        assert not bad, f"{name} imports {mod} (via {via}), which imports {sorted(bad)}"


def test_each_side_effect_has_one_door() -> None:
    for effect, doors in DOORS.items():
        users = {n for n, (_, others) in GRAPH.items() if effect in others}
        assert users <= doors, f"{effect} imported outside {doors}: {users - doors}"


def test_only_the_tls_door_loads_certificates() -> None:
    users = {
        n for n, p in MODULES.items()
        if "load_cert_chain" in (text := p.read_text()) or "load_verify_locations" in text
    }  # fmt: skip
    assert users == {"remote/tls"}


def _cycles(graph: dict[str, tuple[set[str], set[str]]]) -> list[list[str]]:
    """Tarjan's strongly connected components of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v][0]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return cycles


def test_the_package_has_no_import_cycles() -> None:
    assert _cycles(GRAPH) == []


def test_no_cycle_hides_behind_a_function_local_import() -> None:
    assert _cycles(LAZY_GRAPH) == []


def test_the_checker_follows_imports_transitively_and_skips_lazy_ones() -> None:
    # net/affected reaches core/apply only through the backends package.
    assert _closure("net/affected")["core/apply"].startswith("net/backends/")
    # Importing a package's module runs the package first.
    assert "net/backends/__init__" in _closure("net/backends/base")
    # The plug-ins are imported inside registry(): importing the package does not load them.
    assert "net/backends/netplan" not in _closure("net/backends/__init__")
    assert "host/runner" in _closure("net/choose")


def test_no_module_is_over_400_lines() -> None:
    """Small modules with one job each: a module that outgrows this is split by what it owns."""
    long = {
        str(p.relative_to(PKG)): n
        for p in PKG.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 400
    }
    assert not long, f"modules over 400 lines: {long}"
