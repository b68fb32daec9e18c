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


def _run_on_pty(argv: list[str], answer: bytes, timeout_s: float = 30.0) -> tuple[int, str]:
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
            if not answered and b"Keep this configuration? [y/N]" in out:
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
    assert rc == 0, screen
    assert "rolls back in" in screen  # the live countdown was shown
    after = target.read_bytes()
    if kept:
        assert b"# tried" in after and "committed" in screen
        assert daemon.api("GET", "/v1/history?limit=1")["history"][0]["phase"] == "committed"
    else:
        assert after == before
        assert daemon.api("GET", "/v1/history?limit=1")["history"][0]["phase"] == "rolled-back"
