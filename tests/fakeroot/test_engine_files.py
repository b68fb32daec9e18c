# SPDX-License-Identifier: GPL-3.0-or-later
"""Snapshot and restore of every file case under a fake root (R8, R9, R13-R15, R19, R43, R44)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path, PurePosixPath

import pytest

from netcfg_txn.core.errors import (
    BadToken,
    Busy,
    ConfigError,
    NotPermitted,
    NoTransaction,
    PendingEdits,
    Rejected,
    TooLarge,
)
from netcfg_txn.core.fileset import FileSet
from netcfg_txn.core.model import Actor, Phase, Reason
from tests.fakeroot.conftest import ROOT_ACTOR, Env

REMOTE = Actor(kind="remote", peer="ctl", address="192.0.2.9")


def test_rollback_restores_modified_recreates_removed_deletes_added(env: Env) -> None:
    before = env.tree()
    untouched = env.path("/etc/network/interfaces.d/eth0")
    st0 = os.stat(untouched)
    t, _ = env.engine.start(ROOT_ACTOR)
    env.write("/etc/network/interfaces.d/eth1", "iface eth1 inet static\n")
    env.path("/etc/network/interfaces.d/eth2").unlink()
    env.write("/etc/network/interfaces.d/br0", "auto br0\n")
    done = env.engine.rollback(ROOT_ACTOR)
    assert done.phase is Phase.ROLLED_BACK and done.reason is Reason.MANUAL
    assert env.tree() == before
    st1 = os.stat(untouched)  # R13: untouched files are not rewritten
    assert (st1.st_ino, st1.st_mtime_ns) == (st0.st_ino, st0.st_mtime_ns)
    actions = {(r.action, r.target) for r in done.results}
    assert actions == {
        ("rewrite", "/etc/network/interfaces.d/eth1"),
        ("recreate", "/etc/network/interfaces.d/eth2"),
        ("delete", "/etc/network/interfaces.d/br0"),
    }
    assert env.engine.current() is None


def test_mode_owner_and_mtime_are_restored(env: Env) -> None:
    p = env.write("/etc/network/interfaces.d/eth1", "secret\n", mode=0o640)
    os.chown(p, 0, 4)
    os.utime(p, ns=(1_000_000_000, 1_000_000_000))
    env.engine.start(ROOT_ACTOR, allow_pending=True)
    os.chmod(p, 0o777)
    os.chown(p, 1, 1)
    env.engine.rollback(ROOT_ACTOR)
    st = os.stat(p)
    assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (0o640, 0, 4)
    assert st.st_mtime_ns == 1_000_000_000


def test_symlinks_are_kept_as_symlinks_never_followed(env: Env, tmp_path: Path) -> None:
    outside = tmp_path / "outside-secret"
    outside.write_text("do not copy me\n")
    link = env.path("/etc/network/interfaces.d/eth9")
    link.symlink_to(outside)
    env.engine.start(ROOT_ACTOR, allow_pending=True)
    blobs = {p.read_bytes() for p in (env.state / "blobs").iterdir()}
    assert b"do not copy me\n" not in blobs  # the target was never read
    link.unlink()
    link.write_text("replaced by a file\n")
    outside.write_text("changed outside\n")
    env.engine.rollback(ROOT_ACTOR)
    assert link.is_symlink() and os.readlink(link) == str(outside)
    assert outside.read_text() == "changed outside\n"  # restore never wrote through the link


def test_symlinked_managed_directory_is_not_followed(
    make_env: Callable[..., Env], tmp_path: Path
) -> None:
    env = make_env()
    real = tmp_path / "elsewhere"
    real.mkdir()
    (real / "eth0").write_text("x\n")
    env.path("/etc/network").mkdir(parents=True)
    env.path("/etc/network/interfaces.d").symlink_to(real)
    env.write("/etc/network/interfaces", "auto lo\n")
    t, _ = env.engine.start(ROOT_ACTOR)
    m = env.engine.store.snapshot_manifest(t.id)
    assert [str(f.path) for f in m.files] == ["/etc/network/interfaces"]
    assert any("symlinked directory" in s.why for s in m.skipped)


def test_same_basename_in_two_directories(make_env: Callable[..., Env]) -> None:
    env = make_env('include = ["/etc/a/*", "/etc/b/*"]\n')
    env.write("/etc/a/eth0", "A\n")
    env.write("/etc/b/eth0", "B\n")
    env.engine.start(ROOT_ACTOR)
    env.write("/etc/a/eth0", "A2\n")
    env.write("/etc/b/eth0", "B2\n")
    env.engine.rollback(ROOT_ACTOR)
    assert env.path("/etc/a/eth0").read_text() == "A\n"
    assert env.path("/etc/b/eth0").read_text() == "B\n"


def test_special_files_are_skipped_and_reported(env: Env) -> None:
    os.mkfifo(env.path("/etc/network/interfaces.d/fifo"))
    t, _ = env.engine.start(ROOT_ACTOR, allow_pending=True)
    m = env.engine.store.snapshot_manifest(t.id)
    assert [(str(s.path), s.why.split(":")[0]) for s in m.skipped] == [
        ("/etc/network/interfaces.d/fifo", "special file")
    ]
    env.engine.rollback(ROOT_ACTOR)
    assert env.path("/etc/network/interfaces.d/fifo").exists()  # never deleted as "added"


def test_oversize_file_refuses_start_and_changes_nothing(make_env: Callable[..., Env]) -> None:
    env = make_env("max_file_size = 100\n")
    env.write("/etc/network/interfaces", "x" * 101)
    with pytest.raises(TooLarge, match="/etc/network/interfaces: 101 bytes"):
        env.engine.start(ROOT_ACTOR)
    assert env.engine.current() is None
    assert not list((env.state / "blobs").iterdir())


@pytest.mark.skipif(
    os.geteuid() != 0, reason="needs root: drops to another uid to make a file unreadable"
)
def test_unreadable_file_refuses_start(tmp_path: Path) -> None:
    import tempfile

    from tests.fakeroot.conftest import build

    base = Path(tempfile.mkdtemp(prefix="nct-unreadable-", dir="/tmp"))
    os.chmod(base, 0o755)
    env = build(base)
    os.chmod(env.root, 0o755)
    env.write("/etc/network/interfaces", "secret\n", mode=0o000)
    env.engine.store.ensure()
    for d in (env.state, env.state / "blobs", env.state / "snapshots", env.state / "history"):
        os.chown(d, 65534, 65534)
    pid = os.fork()
    if pid == 0:  # child: no pytest machinery past this point
        code = 3
        try:
            os.setgid(65534)
            os.setuid(65534)
            env.engine.start(ROOT_ACTOR)
            code = 1
        except ConfigError as e:
            code = 0 if "cannot read managed file" in str(e) else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    import shutil

    try:
        assert os.waitstatus_to_exitcode(status) == 0
        assert env.engine.current() is None
    finally:
        shutil.rmtree(base)


def test_pending_edits_refuse_start_unless_allowed(env: Env) -> None:
    env.engine.start(ROOT_ACTOR)  # no baseline yet: allowed
    env.engine.commit(ROOT_ACTOR)
    env.write("/etc/network/interfaces.d/eth1", "edited by hand\n")
    with pytest.raises(PendingEdits, match="eth1") as e:
        env.engine.start(ROOT_ACTOR)
    assert e.value.exit_code == 78
    assert env.engine.current() is None
    t, _ = env.engine.start(ROOT_ACTOR, allow_pending=True)
    assert t.phase is Phase.OPEN


def test_one_fileset_object_feeds_snapshot_pending_diff_restore(env: Env) -> None:
    """R7: the four code paths consult the same FileSet object."""
    seen: list[str] = []
    orig = env.engine.fileset

    class Recording(FileSet):
        def matches(self, path: PurePosixPath) -> bool:
            import inspect

            seen.extend(f.function for f in inspect.stack()[1:8])
            return orig.matches(path)

    shared = Recording(orig.include, orig.exclude)
    env.engine.adopt(dataclasses.replace(env.engine.cfg, fileset=shared), env.engine.network)
    env.engine.start(ROOT_ACTOR)
    env.engine.commit(ROOT_ACTOR)
    env.engine.start(ROOT_ACTOR)  # pending check + snapshot
    env.write("/etc/network/interfaces.d/eth1", "x\n")
    env.engine.diff()
    env.engine.rollback(ROOT_ACTOR)
    # snapshot + pending check (start), diff, and the restore's rescan all went through it
    assert {"start", "diff", "_restore"} <= set(seen)
    assert env.engine.fileset is shared


def test_archive_keeps_the_discarded_config_and_history_depth(make_env: Callable[..., Env]) -> None:
    env = make_env("[state]\nhistory = 3\n")
    env.write("/etc/network/interfaces", "v0\n")
    for i in range(5):
        env.engine.start(ROOT_ACTOR, allow_pending=True)
        env.write("/etc/network/interfaces", f"bad {i}\n")
        env.engine.rollback(ROOT_ACTOR)
    hist = env.engine.history(10)
    assert len(hist) == 3
    entry = next(env.engine.store.history(1))
    digest = entry.doc["discarded"]["files"][0]["sha256"]
    assert env.engine.store.blob(digest) == b"bad 4\n"  # R15: the rejected config is archived
    assert len(list((env.state / "blobs").iterdir())) <= 4  # gc keeps only what history needs


def test_edits_after_apply_are_named(env: Env) -> None:
    """R19: the snapshot wins; history names files changed after the last arm."""
    env.engine.start(ROOT_ACTOR)
    env.write("/etc/network/interfaces.d/eth1", "applied\n")
    env.engine.extend(ROOT_ACTOR, timeout_s=60)
    env.write("/etc/network/interfaces.d/eth2", "edited later by someone else\n")
    env.engine.rollback(ROOT_ACTOR)
    h = env.engine.history(1)[0]
    assert h["edited_after_apply"] == ["/etc/network/interfaces.d/eth2"]
    assert env.path("/etc/network/interfaces.d/eth2").read_text().startswith("auto eth2")


def test_rejected_config_cannot_be_armed_again(env: Env) -> None:
    """R44: a set rolled back by timeout is remembered; arming it again needs force."""
    env.engine.start(ROOT_ACTOR, timeout_s=10)
    env.write("/etc/network/interfaces.d/eth1", "broken\n")
    env.clock.t += 11
    assert env.engine.expire() is not None
    env.engine.start(ROOT_ACTOR)
    env.write("/etc/network/interfaces.d/eth1", "broken\n")
    with pytest.raises(Rejected):
        env.engine.extend(ROOT_ACTOR, timeout_s=60)
    env.engine.extend(ROOT_ACTOR, timeout_s=60, force=True)


def test_busy_start_leaves_everything_byte_for_byte(env: Env) -> None:
    t, _ = env.engine.start(ROOT_ACTOR)
    record = env.engine.store.txn_path.read_bytes()
    with pytest.raises(Busy, match=t.id) as e:
        env.engine.start(ROOT_ACTOR)
    assert e.value.exit_code == 75
    assert env.engine.store.txn_path.read_bytes() == record
    assert env.engine.store.complete_snapshots() == [t.id]


def test_no_transaction_exit_code(env: Env) -> None:
    for op in (env.engine.commit, env.engine.rollback):
        with pytest.raises(NoTransaction) as e:
            op(ROOT_ACTOR)
        assert e.value.exit_code == 66
    assert not env.state.joinpath("txn.json").exists()


def test_tokens_are_required_remotely_and_checked(env: Env) -> None:
    t, token = env.engine.start(ROOT_ACTOR)
    assert len(token) >= 32 and token not in env.engine.store.txn_path.read_text()
    with pytest.raises(NotPermitted):
        env.engine.commit(REMOTE, txn_id=t.id)
    with pytest.raises(BadToken):
        env.engine.commit(REMOTE, txn_id=t.id, token=token[:-1] + "x")
    assert env.engine.current() == t
    done, already = env.engine.commit(REMOTE, txn_id=t.id, token=token)
    assert done.phase is Phase.COMMITTED and not already
    again, already = env.engine.commit(REMOTE, txn_id=t.id, token=token)  # R36
    assert already and again.id == t.id
    with pytest.raises(NoTransaction):  # R40: an ended transaction's token moves nothing
        env.engine.rollback(REMOTE, txn_id=t.id, token=token)


def test_force_rollback_is_local_root_only(env: Env) -> None:
    env.engine.start(ROOT_ACTOR)
    with pytest.raises(NotPermitted):
        env.engine.rollback(REMOTE, force=True)
    done = env.engine.rollback(ROOT_ACTOR, force=True)
    assert done.reason is Reason.FORCED


def test_failed_restore_continues_and_reports_everything(env: Env) -> None:
    """R17: one file that cannot be restored does not stop the others."""
    env.engine.start(ROOT_ACTOR)
    env.write("/etc/network/interfaces.d/eth1", "changed\n")
    env.write("/etc/network/interfaces.d/eth2", "changed\n")
    # Make eth1's parent path unusable: a snapshot blob that has gone bad.
    t = env.engine.current()
    assert t is not None
    m = env.engine.store.snapshot_manifest(t.id)
    eth1 = next(f for f in m.files if f.path.name == "eth1")
    (env.state / "blobs" / eth1.sha256).write_bytes(b"bit rot")
    done = env.engine.rollback(ROOT_ACTOR)
    assert done.phase is Phase.FAILED
    assert any("eth1" in e and "corrupt" in e for e in done.errors)
    assert env.path("/etc/network/interfaces.d/eth2").read_text().startswith("auto eth2")


def test_hook_command_runs_after_restore_and_is_recorded(
    make_env: Callable[..., Env], tmp_path: Path
) -> None:
    from netcfg_txn.net.network import HookNetwork

    marker = tmp_path / "hook-ran"
    env = make_env(network=HookNetwork(f"cat /dev/null > {marker}"))
    env.write("/etc/network/interfaces", "a\n")
    env.engine.start(ROOT_ACTOR)
    env.write("/etc/network/interfaces", "b\n")
    done = env.engine.rollback(ROOT_ACTOR)
    assert marker.exists()
    assert ("hook", f"cat /dev/null > {marker}", True) in {
        (r.action, r.target, r.ok) for r in done.results
    }


def test_restart_resumes_remaining_time_and_expires_past_deadline(env: Env) -> None:
    t, _ = env.engine.start(ROOT_ACTOR, timeout_s=100)
    env.clock.t += 40
    rec = env.engine.recover(boot=False)
    assert rec.open is not None and rec.open.deadline.remaining_s(env.clock.now()) == 60
    env.write("/etc/network/interfaces.d/eth1", "x\n")
    env.clock.t += 61
    rec = env.engine.recover(boot=False)
    assert rec.open is None and env.engine.history(1)[0]["reason"] == "timeout"
    assert env.path("/etc/network/interfaces.d/eth1").read_text().startswith("auto eth1")


def test_other_boot_rolls_back(env: Env) -> None:
    env.engine.start(ROOT_ACTOR, timeout_s=1000)
    env.write("/etc/network/interfaces.d/eth1", "x\n")
    env.clock.boot_id = "boot-2"
    rec = env.engine.recover(boot=True)
    assert rec.open is None
    h = env.engine.history(1)[0]
    assert (h["phase"], h["reason"]) == ("rolled-back", "boot")


def test_corrupt_record_with_snapshot_rolls_back(env: Env) -> None:
    """R47: never read as committed."""
    env.engine.start(ROOT_ACTOR, timeout_s=1000)
    env.write("/etc/network/interfaces.d/eth1", "x\n")
    env.engine.store.txn_path.write_text('{"version": 1, "phase": "comm')
    env.engine.recover(boot=False)
    assert env.path("/etc/network/interfaces.d/eth1").read_text().startswith("auto eth1")
    assert env.engine.history(1)[0]["phase"] == "rolled-back"


def test_zero_deadline_is_corrupt_not_infinite(env: Env) -> None:
    import json

    env.engine.start(ROOT_ACTOR, timeout_s=1000)
    doc = json.loads(env.engine.store.txn_path.read_text())
    doc["deadline"]["boottime_s"] = 0
    env.engine.store.txn_path.write_text(json.dumps(doc))
    env.write("/etc/network/interfaces.d/eth1", "x\n")
    env.engine.recover(boot=False)
    assert env.path("/etc/network/interfaces.d/eth1").read_text().startswith("auto eth1")


def test_unreferenced_snapshot_and_partials_are_discarded(env: Env) -> None:
    t, _ = env.engine.start(ROOT_ACTOR)
    env.engine.store.clear_txn()  # as if start died just before its commit point
    (env.state / "snapshots" / ".x.partial").mkdir()
    rec = env.engine.recover(boot=False)
    assert rec.open is None and not list((env.state / "snapshots").iterdir())
    assert any(t.id in a for a in rec.actions)
