# SPDX-License-Identifier: GPL-3.0-or-later
"""One file can never block a restore, and a restore cannot be raced.

Oversized, unreadable or special files met by a rollback become per-file ``archive`` errors
while every path is still converged; contents move in bounded chunks; restores act through
directory fds, so a symlink swapped into a managed path is never followed, and directories other
users can write in are refused.
"""

from __future__ import annotations

import errno
import hashlib
import os
import tracemalloc
from collections.abc import Callable
from pathlib import Path, PurePosixPath

import pytest

from netcfg_txn.core.errors import ConfigError, NotPermitted, TooLarge
from netcfg_txn.core.model import Phase, Reason
from netcfg_txn.store import files, fsutil
from tests.fakeroot.conftest import ROOT_ACTOR, Env

IFD = "/etc/network/interfaces.d"
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: chown to another uid")


def _original(env: Env) -> dict[str, bytes]:
    return {p: env.path(p).read_bytes() for p in (f"{IFD}/eth0", f"{IFD}/eth1", f"{IFD}/eth2")}


def _errors_for(done_errors: tuple[str, ...], path: str) -> list[str]:
    return [e for e in done_errors if path in e]


# ------------------------------------------------------------------ oversized / unreadable


def test_oversized_added_file_is_deleted_unread_and_reported(
    make_env: Callable[..., Env], monkeypatch: pytest.MonkeyPatch
) -> None:
    env = make_env("max_file_size = 1000\n")
    env.write("/etc/network/interfaces", "auto lo\n")
    for i in range(3):
        env.write(f"{IFD}/eth{i}", f"auto eth{i}\n")
    before = env.tree()
    env.engine.start(ROOT_ACTOR)
    big = env.path(f"{IFD}/huge")
    with open(big, "wb") as f:
        f.truncate(1 << 30)  # 1 GiB, sparse: over the cap by far
    env.write(f"{IFD}/eth1", "iface eth1 inet static\n")
    reads: list[str] = []
    real = fsutil.stream_nofollow

    def spy(path, limit, consume):  # type: ignore[no-untyped-def]
        reads.append(str(path))
        return real(path, limit, consume)

    monkeypatch.setattr(fsutil, "stream_nofollow", spy)
    done = env.engine.rollback(ROOT_ACTOR)
    assert str(big) not in reads  # never read, not even in part
    assert done.phase is Phase.FAILED and done.reason is Reason.MANUAL
    errs = _errors_for(done.errors, f"{IFD}/huge")
    assert errs and "archive" in errs[0] and "over the per-file limit of 1000" in errs[0]
    assert len(done.errors) == 1  # the only error: every file was restored
    assert not big.exists() and env.tree() == before
    assert ("delete", f"{IFD}/huge", True) in {(r.action, r.target, r.ok) for r in done.results}
    blobs = env.state / "blobs"
    assert max(p.stat().st_size for p in blobs.iterdir()) < 1000
    h = env.engine.history(1)[0]
    assert h["phase"] == "failed" and f"{IFD}/huge" in h["changed"]
    assert any(f"{IFD}/huge" in x and "not archived" in x for x in h["not_archived"])
    assert env.engine.current() is None


def test_snapshotted_file_grown_oversized_is_restored_from_the_snapshot(
    make_env: Callable[..., Env],
) -> None:
    env = make_env("max_file_size = 1000\n")
    env.write("/etc/network/interfaces", "auto lo\n")
    env.write(f"{IFD}/eth0", "auto eth0\n")
    before = env.tree()
    env.engine.start(ROOT_ACTOR)
    env.write(f"{IFD}/eth0", "x" * 5000)
    done = env.engine.rollback(ROOT_ACTOR)
    assert done.phase is Phase.FAILED
    assert [e for e in done.errors if "eth0" in e and "not archived" in e]
    assert env.tree() == before


def test_unreadable_file_is_a_per_file_error_and_still_restored(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    orig = _original(env)
    env.engine.start(ROOT_ACTOR)
    for p in orig:
        env.write(p, "changed\n")
    env.write(f"{IFD}/new", "added\n")
    bad = {str(env.path(f"{IFD}/eth1")), str(env.path(f"{IFD}/new"))}
    real = fsutil.stream_nofollow

    def eio(path, limit, consume):  # type: ignore[no-untyped-def]
        if str(path) in bad:
            raise OSError(errno.EIO, os.strerror(errno.EIO), str(path))
        return real(path, limit, consume)

    monkeypatch.setattr(fsutil, "stream_nofollow", eio)
    done = env.engine.rollback(ROOT_ACTOR)
    assert done.phase is Phase.FAILED
    assert len(done.errors) == 2, done.errors
    for p in (f"{IFD}/eth1", f"{IFD}/new"):
        (e,) = _errors_for(done.errors, p)
        assert e.startswith(f"archive {p}:") and "Input/output error" in e
    assert {p: env.path(p).read_bytes() for p in orig} == orig
    assert not env.path(f"{IFD}/new").exists()  # an added file is deleted even unread


def test_fifo_in_place_of_a_managed_file_is_reported_and_replaced(env: Env) -> None:
    orig = _original(env)
    env.engine.start(ROOT_ACTOR)
    env.path(f"{IFD}/eth1").unlink()
    os.mkfifo(env.path(f"{IFD}/eth1"))
    env.write(f"{IFD}/eth2", "changed\n")
    done = env.engine.rollback(ROOT_ACTOR)
    assert done.phase is Phase.FAILED
    (e,) = done.errors
    assert e.startswith(f"archive {IFD}/eth1:") and "special file" in e
    assert {p: env.path(p).read_bytes() for p in orig} == orig  # the FIFO is gone, eth1 back


def test_unlistable_managed_directory_does_not_stop_the_rollback(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    orig = _original(env)
    env.engine.start(ROOT_ACTOR)
    for p in orig:
        env.write(p, "changed\n")
    env.write("/etc/network/interfaces", "changed\n")
    real_listdir = os.listdir
    ifd = str(env.path(IFD))

    def eio(path=".", *a, **kw):  # type: ignore[no-untyped-def]
        if str(path) == ifd:
            raise OSError(errno.EIO, os.strerror(errno.EIO), ifd)
        return real_listdir(path, *a, **kw)

    monkeypatch.setattr(os, "listdir", eio)
    done = env.engine.rollback(ROOT_ACTOR)
    monkeypatch.undo()
    assert done.phase is Phase.FAILED
    assert done.errors == (f"archive {IFD}: cannot list managed directory: Input/output error",)
    assert {p: env.path(p).read_bytes() for p in orig} == orig  # the snapshot's files: back
    assert env.path("/etc/network/interfaces").read_text().startswith("auto lo")


def test_oversized_or_unreadable_file_refuses_start_naming_it(
    make_env: Callable[..., Env], monkeypatch: pytest.MonkeyPatch
) -> None:
    env = make_env("max_file_size = 100\n")
    env.write("/etc/network/interfaces", "auto lo\n")
    env.write(f"{IFD}/big", "x" * 101)
    with pytest.raises(TooLarge, match=f"{IFD}/big: 101 bytes is over the per-file limit"):
        env.engine.start(ROOT_ACTOR)
    env.path(f"{IFD}/big").unlink()

    def eio(path, limit, consume):  # type: ignore[no-untyped-def]
        raise OSError(errno.EIO, os.strerror(errno.EIO), str(path))

    monkeypatch.setattr(fsutil, "stream_nofollow", eio)
    with pytest.raises(ConfigError, match="/etc/network/interfaces: cannot read managed file: In"):
        env.engine.start(ROOT_ACTOR)
    assert env.engine.current() is None
    assert not list((env.state / "blobs").iterdir())


def test_views_do_not_fail_on_an_oversized_file(make_env: Callable[..., Env]) -> None:
    env = make_env("max_file_size = 100\n")
    env.write("/etc/network/interfaces", "auto lo\n")
    env.engine.start(ROOT_ACTOR)
    env.write(f"{IFD}/big", "x" * 101)
    st = env.engine.status()
    assert f"{IFD}/big" in st["edited"]
    (entry,) = env.engine.diff()
    assert entry["change"] == "added" and "over the per-file limit" in entry["detail"]
    assert any(f"{IFD}/big" in u for u in env.engine.preview()["unreadable"])


def test_big_files_stream_in_bounded_memory(make_env: Callable[..., Env]) -> None:
    """A 24 MiB file (under the cap) is snapshotted and restored without being held whole."""
    env = make_env()
    env.write("/etc/network/interfaces", "auto lo\n")
    big = env.path(f"{IFD}/blob")
    big.parent.mkdir(parents=True, exist_ok=True)
    data = os.urandom(1 << 20) * 24
    big.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    del data
    tracemalloc.start()
    try:
        t, _ = env.engine.start(ROOT_ACTOR)
        _, start_peak = tracemalloc.get_traced_memory()
        assert (env.state / "blobs" / digest).stat().st_size == 24 << 20
        big.write_bytes(b"replaced\n")
        (state,) = [f for f in env.engine.store.snapshot_manifest(t.id).files if f.size > 1000]
        tracemalloc.reset_peak()
        results = files.restore(env.root, [state], [], env.engine.store.open_blob)
        _, restore_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [(r.action, r.ok) for r in results] == [("rewrite", True)]
    h = hashlib.sha256()
    with open(big, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    assert h.hexdigest() == digest
    assert start_peak < 6 << 20, start_peak
    assert restore_peak < 6 << 20, restore_peak


# ----------------------------------------------------------------- directory-fd restores


def test_group_or_other_writable_managed_dir_refuses_start(env: Env) -> None:
    os.chmod(env.path(IFD), 0o775)
    with pytest.raises(ConfigError, match=f"{IFD}: writable by group or others \\(mode 0775\\)"):
        env.engine.start(ROOT_ACTOR)
    assert env.engine.current() is None
    os.chmod(env.path(IFD), 0o1777)  # sticky: others cannot rename or delete our files
    t, _ = env.engine.start(ROOT_ACTOR)
    env.write(f"{IFD}/eth1", "changed\n")
    assert env.engine.rollback(ROOT_ACTOR).phase is Phase.ROLLED_BACK


@needs_root
def test_managed_dir_owned_by_another_user_refuses_start(env: Env) -> None:
    os.chown(env.path("/etc/network"), 65534, 0)
    with pytest.raises(ConfigError, match="/etc/network: owned by uid 65534, not root"):
        env.engine.start(ROOT_ACTOR)
    assert env.engine.current() is None


def test_dir_made_writable_after_start_is_a_per_file_error(env: Env) -> None:
    env.engine.start(ROOT_ACTOR)
    env.write("/etc/network/interfaces", "changed\n")
    env.write(f"{IFD}/eth1", "changed\n")
    env.write(f"{IFD}/new", "added\n")
    os.chmod(env.path(IFD), 0o777)
    done = env.engine.rollback(ROOT_ACTOR)
    assert done.phase is Phase.FAILED
    assert {e.split(":")[0] for e in done.errors} == {f"rewrite {IFD}/eth1", f"delete {IFD}/new"}
    assert all("refusing to write in" in e and "mode 0777" in e for e in done.errors)
    assert env.path("/etc/network/interfaces").read_text().startswith("auto lo")
    assert env.path(f"{IFD}/eth1").read_text() == "changed\n"  # refused, not written


def test_symlink_swapped_into_the_path_during_restore_is_not_followed(
    env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An attacker swaps interfaces.d for a symlink between the restore's checks and its
    unlink of an added file: the unlink must still act on the real directory, never through
    the link (path-based check-then-act deleted ``outside/br0`` here)."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "br0").write_text("victim\n")
    env.engine.start(ROOT_ACTOR)
    env.write(f"{IFD}/br0", "added\n")
    env.write(f"{IFD}/eth1", "changed\n")
    ifd = env.path(IFD)
    moved = ifd.with_name("interfaces.d.moved")
    real_unlink, real_rename, real_symlink = os.unlink, os.rename, os.symlink
    swapped: list[bool] = []

    def racing_unlink(p, *a, **kw):  # type: ignore[no-untyped-def]
        if str(p).endswith("br0") and not swapped:
            swapped.append(True)
            real_rename(ifd, moved)
            real_symlink(outside, ifd)
        return real_unlink(p, *a, **kw)

    monkeypatch.setattr(os, "unlink", racing_unlink)
    env.engine.rollback(ROOT_ACTOR)
    monkeypatch.undo()
    assert swapped
    assert (outside / "br0").read_text() == "victim\n"  # never followed
    assert sorted(p.name for p in outside.iterdir()) == ["br0"]
    assert not (moved / "br0").exists()  # the real directory got the delete
    assert (moved / "eth1").read_text().startswith("auto eth1")


def test_open_dir_refuses_symlinks_and_files_and_creates_when_asked(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc" / "real").mkdir(parents=True)
    (root / "etc" / "link").symlink_to(root / "etc" / "real")
    (root / "etc" / "file").write_text("x")
    with pytest.raises(NotPermitted, match="symlinked directory: /etc/link"):
        fsutil.open_dir(root, PurePosixPath("/etc/link"))
    with pytest.raises(NotPermitted, match="/etc/file: not a directory"):
        fsutil.open_dir(root, PurePosixPath("/etc/file/x"))
    with pytest.raises(FileNotFoundError):
        fsutil.open_dir(root, PurePosixPath("/etc/new/deeper"))
    fd = fsutil.open_dir(root, PurePosixPath("/etc/new/deeper"), create=True)
    try:
        assert os.path.samestat(os.fstat(fd), os.stat(root / "etc" / "new" / "deeper"))
    finally:
        os.close(fd)
    with pytest.raises(NotPermitted):
        fsutil.open_dir(root, PurePosixPath("/etc/../etc"))
