# SPDX-License-Identifier: GPL-3.0-or-later
"""Parsed manifests are reused only while their file is provably the one parsed."""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

import pytest

from netcfg_txn.core.model import FileState, Manifest, manifest_to_json
from netcfg_txn.store import fsutil
from netcfg_txn.store.manifestmemo import ManifestMemo
from netcfg_txn.store.state import Corrupt, Store


def _manifest(*names: str) -> Manifest:
    return Manifest(
        tuple(
            FileState(PurePosixPath(f"/etc/{n}"), "file", "0" * 64, 1, 0o644, 0, 0, 1)
            for n in names
        )
    )


def test_parsed_once_while_unchanged_and_again_once_replaced(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    fsutil.write_json(path, manifest_to_json(_manifest("a")))
    memo = ManifestMemo()
    loads: list[Manifest] = []

    def load(m: Manifest) -> Manifest:
        loads.append(m)
        return m

    first = memo.get(path, lambda: load(_manifest("a")))
    assert memo.get(path, lambda: load(_manifest("wrong"))) is first
    assert len(loads) == 1
    fsutil.write_json(path, manifest_to_json(_manifest("b")))  # a rename: another inode
    assert memo.get(path, lambda: load(_manifest("b"))) == _manifest("b")
    assert len(loads) == 2


def test_store_sees_a_baseline_written_by_someone_else(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.ensure()
    store.write_baseline(_manifest("a"))
    assert store.read_baseline() == _manifest("a")
    # Rewritten in place (not how the store writes it): size and ctime still change.
    store.baseline_path.write_text(json.dumps(manifest_to_json(_manifest("a", "bb"))))
    assert store.read_baseline() == _manifest("a", "bb")
    store.baseline_path.write_text("{not json")
    with pytest.raises(Corrupt):
        store.read_baseline()
    store.baseline_path.unlink()
    assert store.read_baseline() is None


def test_bounded(tmp_path: Path) -> None:
    memo = ManifestMemo()
    paths = [tmp_path / f"{i}.json" for i in range(ManifestMemo.SIZE + 2)]
    for i, p in enumerate(paths):
        fsutil.write_json(p, {})
        memo.get(p, lambda i=i: _manifest(str(i)))  # type: ignore[misc]
    assert len(memo._entries) == ManifestMemo.SIZE
