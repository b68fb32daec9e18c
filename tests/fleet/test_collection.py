# SPDX-License-Identifier: GPL-3.0-or-later
"""The collection as a package: it builds, its documentation renders, it is lint clean."""

from __future__ import annotations

import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.fleet import lab

COLLECTION = lab.COLLECTIONS / "ansible_collections/netcfg_txn/txn"
CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def tool(name: str) -> str:
    path = lab.VENV_BIN / name
    if not path.exists():
        why = f"needs {name} in the test venv (pip install '.[test,dev]')"
        if CI:
            pytest.fail(f"{why} (CI=true forbids skipping)")
        pytest.skip(why)
    return str(path)


def env() -> dict[str, str]:
    return dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(lab.COLLECTIONS), ANSIBLE_NOCOLOR="1",
                PATH=f"{lab.VENV_BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}")  # fmt: skip


def test_galaxy_build_makes_a_tarball_with_the_plugins_and_the_role(tmp_path: Path) -> None:
    p = subprocess.run([tool("ansible-galaxy"), "collection", "build", str(COLLECTION),
                        "--output-path", str(tmp_path)], capture_output=True, text=True,
                       env=env(), timeout=300)  # fmt: skip
    assert p.returncode == 0, p.stdout + p.stderr
    (tarball,) = tmp_path.glob("netcfg_txn-txn-*.tar.gz")
    names = set(tarfile.open(tarball).getnames())
    for member in ("MANIFEST.json", "plugins/modules/transaction.py", "plugins/action/reconnect.py",
                   "plugins/modules/reconnect.py", "roles/safe_change/tasks/main.yml"):  # fmt: skip
        assert member in names, sorted(names)


@pytest.mark.parametrize(
    ("kind", "name", "expect"),
    [
        ("module", "netcfg_txn.txn.transaction", "rolled_back"),
        ("module", "netcfg_txn.txn.reconnect", "new"),
        ("role", "netcfg_txn.txn.safe_change", "safe_change_apply"),
    ],
)
def test_ansible_doc_renders(kind: str, name: str, expect: str) -> None:
    p = subprocess.run([tool("ansible-doc"), "-t", kind, name], capture_output=True, text=True,
                       env=env(), timeout=300)  # fmt: skip
    assert p.returncode == 0 and "ERROR" not in p.stderr, p.stdout + p.stderr
    assert name in p.stdout and expect in p.stdout, p.stdout


@pytest.mark.slow
@pytest.mark.timeout(900)  # two ansible-lint runs: over 120 s on the shared machine under load
def test_ansible_lint_clean() -> None:
    lint = tool("ansible-lint")
    for where in (COLLECTION, Path(__file__).parent / "playbooks"):
        p = subprocess.run([lint, "--offline", "--nocolor", "."], cwd=where, capture_output=True,
                           text=True, env=env(), timeout=600)  # fmt: skip
        assert p.returncode == 0, f"{where}:\n{p.stdout}\n{p.stderr}"
