# SPDX-License-Identifier: GPL-3.0-or-later
"""The stat cache: unchanged files are not re-read; any write (same size, same mtime) is seen."""

from __future__ import annotations

import os

import pytest

from netcfg_txn.store import files, fsutil
from tests.fakeroot.conftest import ROOT_ACTOR, Env


def test_unchanged_files_are_not_reread_and_edits_are_seen(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(files.StatCache, "RACY_S", 0.0)
    env.engine.store.ensure()
    first = env.engine.scan()
    reads: list[str] = []
    real_read = fsutil.stream_nofollow

    def counting(path, limit, consume):  # type: ignore[no-untyped-def]
        reads.append(str(path))
        return real_read(path, limit, consume)

    monkeypatch.setattr(fsutil, "stream_nofollow", counting)
    assert env.engine.scan() == first
    assert reads == []
    p = env.path("/etc/network/interfaces.d/eth1")
    st = os.stat(p)
    p.write_bytes(p.read_bytes().replace(b"dhcp", b"dhcX"))  # same size
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))  # same mtime: only ctime moved
    again = {f.path: f.sha256 for f in env.engine.scan().files}
    assert reads == [str(p)]
    assert again != {f.path: f.sha256 for f in first.files}


def test_fresh_entries_are_not_trusted(env: Env) -> None:
    env.engine.store.ensure()
    env.engine.scan()
    cache = files.StatCache.load(env.engine.store.statcache_path)
    assert cache.entries == {}  # every file was written within RACY_S: re-hashed next time


def test_snapshot_with_cache_still_stores_missing_blobs(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(files.StatCache, "RACY_S", 0.0)
    env.engine.store.ensure()
    env.engine.scan()  # cache filled, but no blob stored yet
    t, _ = env.engine.start(ROOT_ACTOR)
    for f in env.engine.store.snapshot_manifest(t.id).files:
        assert env.engine.store.blob(f.sha256)


def test_a_corrupt_cache_is_ignored(env: Env) -> None:
    env.engine.store.ensure()
    env.engine.store.statcache_path.write_text("{not json")
    assert len(env.engine.scan().files) == 4
