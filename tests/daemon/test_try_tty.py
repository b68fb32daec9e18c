# SPDX-License-Identifier: GPL-3.0-or-later
"""`netcfg-txn try` on a real terminal (a pty): the countdown prompt, 'y' keeps, 'n' restores."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time

import pytest

from tests.daemon.harness import Daemon


def _run_on_pty(argv: list[str], answer: bytes | None, timeout_s: float = 60.0) -> tuple[int, str]:
    """Run ``argv`` on a pty and answer the prompt with ``answer`` (None: never answer)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    out = b""
    answered = False
    end = time.monotonic() + timeout_s
    try:
        while time.monotonic() < end:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: the child closed the terminal
                    break
                out += chunk
            if answer is not None and not answered and b"Keep this configuration? [y/N]" in out:
                os.write(master, answer + b"\n")
                answered = True
            if proc.poll() is not None and not ready:
                break
        rc = proc.wait(timeout=5)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    return rc, out.decode(errors="replace")


@pytest.mark.parametrize(("answer", "kept"), [(b"y", True), (b"n", False)])
def test_try_asks_with_a_countdown_and_obeys(daemon: Daemon, answer: bytes, kept: bool) -> None:
    target = daemon.path("etc/network/interfaces")
    before = target.read_bytes()
    edit = f"printf 'auto lo\\niface lo inet loopback\\n# tried\\n' > {target}"
    argv = daemon.cli_argv("try", "--timeout", "60s", "--", "sh", "-c", edit, as_json=False)
    rc, screen = _run_on_pty(argv, answer)
    assert rc == (0 if kept else 3), screen  # a script sees whether the change was kept
    assert "rolls back in" in screen  # the live countdown was shown
    after = target.read_bytes()
    if kept:
        assert b"# tried" in after and "committed" in screen
        assert daemon.api("GET", "/v1/history?limit=1")["history"][0]["phase"] == "committed"
    else:
        assert after == before
        assert daemon.api("GET", "/v1/history?limit=1")["history"][0]["phase"] == "rolled-back"


def test_try_out_of_time_waits_for_the_rollback_and_exits_3(daemon: Daemon) -> None:
    """Nobody answers: the daemon rolls back at the deadline and try says the change was not
    kept (exit 3), after the rollback finished, not before."""
    target = daemon.path("etc/network/interfaces")
    before = target.read_bytes()
    edit = f"echo '# tried' >> {target}"
    argv = daemon.cli_argv("try", "--timeout", "3s", "--", "sh", "-c", edit, as_json=False)
    rc, screen = _run_on_pty(argv, None)
    assert rc == 3, screen
    assert "not kept" in screen and "rolled back" in screen
    assert target.read_bytes() == before and daemon.txn_json() is None
    assert daemon.history()[0]["txn"]["reason"] == "timeout"
