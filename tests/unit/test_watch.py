# SPDX-License-Identifier: GPL-3.0-or-later
"""The inotify watcher on a temp tree, read by a real asyncio loop: outside edits are delivered,
the daemon's own writes during a pause are never parsed, new directories get watched."""

from __future__ import annotations

import asyncio
from pathlib import Path, PurePosixPath

from netcfg_txn.core.fileset import FileSet
from netcfg_txn.store.watch import Watcher


async def _until(seen: list[PurePosixPath], want: PurePosixPath, timeout_s: float = 10) -> None:
    end = asyncio.get_running_loop().time() + timeout_s
    while want not in seen:
        assert asyncio.get_running_loop().time() < end, f"{want} never reported: {seen}"
        await asyncio.sleep(0.01)


def _watcher(root: Path, include: list[str]) -> tuple[Watcher, list[PurePosixPath]]:
    seen: list[PurePosixPath] = []
    w = Watcher(root, FileSet(tuple(include), ()), asyncio.get_running_loop(), seen.append)
    w.start()
    return w, seen


def test_edits_are_reported_and_paused_writes_are_not(tmp_path: Path) -> None:
    d = tmp_path / "etc" / "network" / "interfaces.d"
    d.mkdir(parents=True)

    async def main() -> None:
        w, seen = _watcher(tmp_path, ["/etc/network/interfaces.d/*"])
        assert w.complete()
        (d / "eth0").write_text("a\n")
        await _until(seen, PurePosixPath("/etc/network/interfaces.d/eth0"))
        w.pause()
        seen.clear()
        for i in range(50):  # what a restore writes: never parsed, never delivered
            (d / f"own{i}").write_text("x\n")
        await asyncio.sleep(0.2)
        w.resume()
        await asyncio.sleep(0.2)
        assert seen == [], seen
        (d / "eth1").write_text("b\n")  # watching again after the pause
        await _until(seen, PurePosixPath("/etc/network/interfaces.d/eth1"))
        assert all(p.name != "own0" for p in seen)
        w.stop()

    asyncio.run(main())


def test_a_managed_directory_created_later_is_watched(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()

    async def main() -> None:
        w, seen = _watcher(tmp_path, ["/etc/netplan/*.yaml"])
        (tmp_path / "etc" / "netplan").mkdir()
        await _until(seen, PurePosixPath("/"))  # a directory came: everything is stale
        (tmp_path / "etc" / "netplan" / "01.yaml").write_text("network: {}\n")
        await _until(seen, PurePosixPath("/etc/netplan/01.yaml"))
        w.stop()

    asyncio.run(main())


def test_recursive_globs_watch_new_subdirectories(tmp_path: Path) -> None:
    (tmp_path / "etc" / "bench").mkdir(parents=True)

    async def main() -> None:
        w, seen = _watcher(tmp_path, ["/etc/bench/*/*"])
        w.pause()  # a restore that creates a directory: watched once resumed
        (tmp_path / "etc" / "bench" / "d1").mkdir()
        w.resume()
        (tmp_path / "etc" / "bench" / "d1" / "f").write_text("x\n")
        await _until(seen, PurePosixPath("/etc/bench/d1/f"))
        w.stop()

    asyncio.run(main())
