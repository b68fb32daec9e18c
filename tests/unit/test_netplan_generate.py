# SPDX-License-Identifier: GPL-3.0-or-later
"""The netplan backend's reload renders into a staging root and copies only generated files that
differ: an unchanged ``.network`` file keeps its inode and mtime, so networkd does not
reconfigure (and briefly interrupt) a link the rollback must not touch (R23, safety rule 5)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from netcfg_txn.host.runner import Completed
from netcfg_txn.host.runner import run as real_run
from netcfg_txn.net.backends import ApplyConfig
from netcfg_txn.net.backends.netplan import Netplan, sync_generated

NET = "run/systemd/network"


class FakeGenerator:
    """Stands in for ``netplan generate --root-dir STAGE``: writes ``outputs`` under STAGE and
    records which YAML inputs it was given."""

    def __init__(self, outputs: Mapping[str, str | tuple[str, str]], returncode: int = 0):
        self.outputs = outputs
        self.returncode = returncode
        self.inputs: dict[str, str] = {}
        self.calls: list[tuple[str, ...]] = []

    def __call__(
        self, argv: Sequence[str], *, timeout_s: float = 30.0, check: bool = True
    ) -> Completed:
        cmd = tuple(argv)
        self.calls.append(cmd)
        if cmd[:3] == ("netplan", "generate", "--root-dir"):
            stage = Path(cmd[3])
            for p in sorted(stage.rglob("*.yaml")):
                self.inputs[p.relative_to(stage).as_posix()] = p.read_text()
            if self.returncode == 0:
                for rel, content in self.outputs.items():
                    dst = stage / rel
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    if isinstance(content, tuple):  # ("symlink", target)
                        dst.symlink_to(content[1])
                    else:
                        dst.write_text(content)
                        dst.chmod(0o644)
        return Completed(cmd, self.returncode, "", "bad YAML" if self.returncode else "")


def put(root: Path, rel: str, text: str) -> Path:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


def stamp(p: Path) -> tuple[int, int]:
    st = os.lstat(p)
    return st.st_ino, st.st_mtime_ns


def test_only_changed_generated_files_are_rewritten_and_stale_ones_deleted(tmp_path: Path) -> None:
    root = tmp_path
    put(root, "etc/netplan/50-a.yaml", "network: {version: 2}\n")
    put(root, "run/netplan/90-b.yaml", "network: {version: 2}\n")
    same = put(root, f"{NET}/10-netplan-nct0.network", "[Match]\nName=nct0\n")
    changed = put(root, f"{NET}/10-netplan-nct1.network", "[Match]\nName=nct1\nOLD\n")
    stale = put(root, f"{NET}/10-netplan-nctbr1.netdev", "[NetDev]\nName=nctbr1\n")
    foreign = put(root, f"{NET}/20-admin.network", "[Match]\nName=x\n")  # not netplan's
    wpa = put(root, "run/netplan/wpa-wlan0.conf", "old")
    before = stamp(same)
    gen = FakeGenerator(
        {
            f"{NET}/10-netplan-nct0.network": "[Match]\nName=nct0\n",
            f"{NET}/10-netplan-nct1.network": "[Match]\nName=nct1\nNEW\n",
            f"{NET}/10-netplan-nct2.network": "[Match]\nName=nct2\n",
            "run/systemd/system/systemd-networkd.service.wants/netplan-ovs-cleanup.service": (
                "symlink",
                "/run/systemd/system/netplan-ovs-cleanup.service",
            ),
        }
    )
    step = Netplan(ApplyConfig(), root=root).generate(gen)

    assert step.ok, step.error
    assert stamp(same) == before  # untouched: same inode, same mtime
    assert changed.read_text().endswith("NEW\n")
    assert (root / NET / "10-netplan-nct2.network").exists()
    assert not stale.exists() and not wpa.exists()
    assert foreign.exists()
    link = root / "run/systemd/system/systemd-networkd.service.wants/netplan-ovs-cleanup.service"
    assert os.readlink(link) == "/run/systemd/system/netplan-ovs-cleanup.service"
    # The generator read copies of every input directory, never the live /run/netplan.
    assert set(gen.inputs) == {"etc/netplan/50-a.yaml", "run/netplan/90-b.yaml"}
    assert gen.calls[0][3] != str(root)
    assert not list((root / "run").glob(".netcfg-txn-netplan.*"))  # staging removed


def test_a_failing_generate_changes_nothing(tmp_path: Path) -> None:
    old = put(tmp_path, f"{NET}/10-netplan-nct0.network", "old\n")
    gen = FakeGenerator({f"{NET}/10-netplan-nct0.network": "new\n"}, returncode=1)
    step = Netplan(ApplyConfig(), root=tmp_path).generate(gen)
    assert not step.ok and "bad YAML" in (step.error or "")
    assert old.read_text() == "old\n"


def test_mode_only_difference_is_a_chmod_not_a_rewrite(tmp_path: Path) -> None:
    stage, root = tmp_path / "stage", tmp_path / "root"
    src = put(stage, f"{NET}/10-netplan-a.network", "x\n")
    src.chmod(0o644)
    dst = put(root, f"{NET}/10-netplan-a.network", "x\n")
    dst.chmod(0o600)
    before = stamp(dst)
    assert sync_generated(stage, root) == ([], [])
    assert stamp(dst) == before and (dst.stat().st_mode & 0o777) == 0o644


@pytest.mark.skipif(shutil.which("netplan") is None, reason="needs netplan (apt: netplan.io)")
def test_with_the_real_generator_a_second_run_rewrites_nothing(tmp_path: Path) -> None:
    yaml = put(
        tmp_path,
        "etc/netplan/50-nct.yaml",
        "network:\n  version: 2\n  renderer: networkd\n  ethernets:\n"
        "    nct0: {addresses: [192.0.2.1/24]}\n    nct1: {addresses: [198.51.100.1/24]}\n",
    )
    yaml.chmod(0o600)
    backend = Netplan(ApplyConfig(), root=tmp_path)
    assert backend.generate(real_run).ok
    nct0, nct1 = (tmp_path / NET / f"10-netplan-nct{i}.network" for i in (0, 1))
    before = stamp(nct0), stamp(nct1)
    yaml.write_text(yaml.read_text().replace("198.51.100.1/24", "198.51.100.11/24"))
    assert backend.generate(real_run).ok
    assert stamp(nct0) == before[0]
    assert stamp(nct1) != before[1] and "198.51.100.11/24" in nct1.read_text()
