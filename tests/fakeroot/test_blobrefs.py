# SPDX-License-Identifier: GPL-3.0-or-later
"""Blob garbage collection with the history's per-entry reference sidecars: exactly the blobs
that nothing refers to go, whatever state a sidecar is in (missing, torn, stale)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from netcfg_txn.core.model import manifest_from_json
from netcfg_txn.store import blobrefs
from tests.fakeroot.conftest import ROOT_ACTOR, Env


def _referenced(env: Env) -> set[str]:
    """Every digest the state directory needs, the slow way (typed manifests)."""
    st = env.engine.store
    live: set[str] = set()
    if st.baseline_path.exists():
        live |= manifest_from_json(json.loads(st.baseline_path.read_bytes())).digests()
    for p in st.history_dir.glob("*.json"):
        doc = json.loads(p.read_bytes())
        for key in ("snapshot", "discarded"):
            live |= manifest_from_json(doc[key]).digests()
    return live


def _round(env: Env, n: int) -> None:
    env.engine.start(ROOT_ACTOR, allow_pending=True)
    for i in range(3):
        env.write(f"/etc/network/interfaces.d/eth{i}", f"iface eth{i} inet manual # {n}\n")
    env.engine.rollback(ROOT_ACTOR)


def _blobs(env: Env) -> set[str]:
    return {p.name for p in env.engine.store.blobs.iterdir() if not p.name.startswith(".")}


def test_gc_keeps_exactly_the_referenced_blobs(make_env: Callable[..., Env]) -> None:
    env = make_env("[state]\nhistory = 3\n")
    env.write("/etc/network/interfaces", "auto lo\n")
    for i in range(3):
        env.write(f"/etc/network/interfaces.d/eth{i}", f"iface eth{i} inet dhcp\n")
    for n in range(6):
        _round(env, n)
        assert _blobs(env) == _referenced(env)
    entries = sorted(env.engine.store.history_dir.glob("*.json"))
    assert len(entries) == 3
    assert all(blobrefs.sidecar(p).exists() for p in entries)
    # no sidecar for an entry rotated out
    assert len(list(env.engine.store.history_dir.glob("*.refs"))) == 3


def test_a_missing_or_torn_sidecar_falls_back_to_its_entry(
    make_env: Callable[..., Env], tmp_path: Path
) -> None:
    env = make_env("[state]\nhistory = 5\n")
    env.write("/etc/network/interfaces", "auto lo\n")
    for n in range(3):
        _round(env, n)
    before = _blobs(env)
    entries = sorted(env.engine.store.history_dir.glob("*.json"))
    blobrefs.sidecar(entries[0]).unlink()
    torn = blobrefs.sidecar(entries[1])
    torn.write_text(torn.read_text()[:80])  # a power cut mid-write (sidecars are not fsynced)
    stale = blobrefs.sidecar(entries[2])
    lines = stale.read_text().split("\n")
    stale.write_text("\n".join([lines[0], *lines[2:]]))  # a digest missing: count differs
    from netcfg_txn.store.state import Store

    fresh = Store(env.engine.store.dir)  # a restarted daemon: nothing cached in memory
    assert fresh.gc_blobs() == 0
    assert _blobs(env) == before == _referenced(env)


def test_an_unreadable_entry_stops_gc(make_env: Callable[..., Env]) -> None:
    env = make_env("[state]\nhistory = 5\n")
    env.write("/etc/network/interfaces", "auto lo\n")
    _round(env, 0)
    entry = next(env.engine.store.history_dir.glob("*.json"))
    blobrefs.sidecar(entry).unlink()
    entry.write_text("{not json")
    env.engine.store.blobs.joinpath("0" * 64).write_bytes(b"orphan")
    from netcfg_txn.store.state import Store

    assert Store(env.engine.store.dir).gc_blobs() == 0
    assert "0" * 64 in _blobs(env)
