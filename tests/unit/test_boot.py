# SPDX-License-Identifier: GPL-3.0-or-later
"""``boot.nothing_to_roll_back``, the boot rollback's shortcut past the engine: it says "nothing"
only where the engine's own recovery would do nothing, and it is as busy as the engine while the
daemon holds the lock."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from netcfg_txn import assemble, boot
from netcfg_txn.core import config
from netcfg_txn.core.errors import Busy
from netcfg_txn.store.state import Store


def test_the_names_are_the_stores() -> None:
    s = Store(Path("/x"))
    assert s.txn_path.name == boot.TXN_RECORD and s.lock_path.name == boot.LOCK
    assert s.snapshots.name == boot.SNAPSHOTS
    assert (s.blobs.name, s.history_dir.name) == boot.OTHER_DIRS


def _files(d: Path) -> dict[str, int]:
    return {str(p.relative_to(d)): p.stat().st_mode for p in d.rglob("*") if p.name != boot.LOCK}


def _nothing(d: Path) -> None:
    pass


def _record(d: Path) -> None:
    (d / boot.TXN_RECORD).write_text("{}")


def _partial(d: Path) -> None:
    (d / boot.SNAPSHOTS / ".t1.partial").mkdir()


def _snapshot(d: Path) -> None:
    (d / boot.SNAPSHOTS / "t1").mkdir()
    (d / boot.SNAPSHOTS / "t1" / "manifest.json").write_text("{}")


def _temp(d: Path) -> None:
    (d / "blobs" / ".abc.tmp").write_text("x")


def _mode(d: Path) -> None:
    d.chmod(0o755)


def _no_history_dir(d: Path) -> None:
    (d / "history").rmdir()


CASES: list[tuple[Callable[[Path], None], bool]] = [
    (_nothing, True),
    (_record, False),
    (_partial, False),
    (_snapshot, False),
    (_temp, False),
    (_mode, False),
    (_no_history_dir, False),
]


@pytest.mark.parametrize(("make", "nothing"), CASES)
def test_nothing_only_where_the_engine_does_nothing(
    make: Callable[[Path], None], nothing: bool, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    cfg = config.parse(
        [("t.toml", '[files]\npresets = []\ninclude = ["/etc/x/*"]\n[apply]\nbackend = "none"\n')],
        state_dir=state,
    )
    Store(state).ensure()
    make(state)
    assert boot.nothing_to_roll_back(state) is nothing
    if nothing:  # the engine agrees and leaves everything as it was
        before = _files(state)
        engine = assemble.engine(tmp_path, cfg, config=None, state_dir=state)
        assert boot.roll_back_at_boot(engine) == {"actions": []}
        assert _files(state) == before


def test_a_missing_state_directory_is_left_to_the_engine(tmp_path: Path) -> None:
    assert boot.nothing_to_roll_back(tmp_path / "none") is False
    assert not (tmp_path / "none").exists()


def test_busy_while_the_daemon_holds_the_lock(tmp_path: Path) -> None:
    Store(tmp_path).ensure()
    fd = os.open(tmp_path / boot.LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with pytest.raises(Busy, match="netcfg-txnd is running"):
            boot.nothing_to_roll_back(tmp_path)
    finally:
        os.close(fd)
    assert boot.nothing_to_roll_back(tmp_path) is True
