# SPDX-License-Identifier: GPL-3.0-or-later
"""Fault tier: a symlink swapped into a managed path while the real daemon restores is never
followed. strace holds the daemon's rollback at its second unlink — the delete of an added file,
after every check the restore makes — and the test swaps ``interfaces.d`` for a symlink to a
directory of victim files there. The delete must act in the directory the restore opened and
never touch the victims (restoring by path, check-then-act, deleted ``outside/eth9``)."""

from __future__ import annotations

import contextlib
import subprocess
import time
from pathlib import Path

from tests.daemon.harness import make
from tests.faults.conftest import need

IFD = "etc/network/interfaces.d"
# x86_64 / aarch64 numbers of unlink and unlinkat (aarch64 has no unlink)
UNLINKS = {"87", "263", "35"}


def _held_in_unlink(pid: int) -> bool:
    """A thread of ``pid`` sits at the entry of unlink/unlinkat (held there by strace)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            if (task / "syscall").read_text().split(" ", 1)[0] in UNLINKS:
                return True
    return False


def test_symlink_swapped_in_during_restore_is_not_followed(tmp_path: Path) -> None:
    need("strace")
    d = make(tmp_path / "d")
    outside = tmp_path / "outside"
    outside.mkdir()
    victims = {"eth0": "victim eth0\n", "eth9": "victim eth9\n", "br0": "victim br0\n"}
    for n, text in victims.items():
        (outside / n).write_text(text)
    try:
        d.start(timeout_s=30)
        before = d.files()
        r = d.cli("start", "--timeout", "10m")
        assert r.rc == 0, r.err
        # unlink #1: the stale-temp sweep of eth0's rewrite; unlink #2: the delete of eth9
        d.path(f"{IFD}/eth0").write_text("auto eth0\niface eth0 inet static\n")
        d.path(f"{IFD}/eth9").write_text("iface eth9 inet manual\n")
        tracer = subprocess.Popen(
            ["strace", "-f", "-p", str(d.pid), "-o", "/dev/null", "-e", "trace=unlink,unlinkat",
             "-e", "inject=unlink,unlinkat:delay_enter=3000000:when=2"],
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert tracer.stderr is not None
            line = tracer.stderr.readline()
            assert "attached" in line, line
            rollback = d.cli_popen("rollback")
            end = time.monotonic() + 30
            while not _held_in_unlink(d.pid):
                assert time.monotonic() < end, "the restore never reached its delete"
                time.sleep(0.005)
            ifd = d.path(IFD)
            ifd.rename(ifd.with_name("interfaces.d.moved"))
            ifd.symlink_to(outside)
            out, err = rollback.communicate(timeout=60)
        finally:
            tracer.terminate()
            tracer.wait(10)
        assert {p.name: p.read_text() for p in outside.iterdir()} == victims, (out, err)
        moved = d.path("etc/network/interfaces.d.moved")
        assert (moved / "eth0").read_bytes() == before[f"{IFD}/eth0"], (out, err)
        assert not (moved / "eth9").exists(), (out, err)
        assert rollback.returncode == 0, (out, err)
    finally:
        d.kill()


def test_start_refuses_a_managed_directory_others_can_write(tmp_path: Path) -> None:
    need()
    d = make(tmp_path / "d")
    try:
        d.start(timeout_s=30)
        d.path(IFD).chmod(0o777)
        r = d.cli("start")
        assert r.rc == 78, r.out + r.err
        msg = r.doc["error"]["message"]
        assert f"/{IFD}: writable by group or others (mode 0777)" in msg, msg
        assert d.cli("status").doc["state"] == "idle"
        d.path(IFD).chmod(0o755)
        assert d.cli("start").rc == 0
    finally:
        d.kill()
