# SPDX-License-Identifier: GPL-3.0-or-later
"""The CLI side of the security review: nothing reaches the admin's terminal as a control
sequence, tokens given on a command line are not recorded, the token file is private, and a
timeout that is not a sane number is refused without touching the transaction."""

from __future__ import annotations

import json
import math
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from netcfg_txn.core.errors import NetcfgTxnError
from tests.daemon.harness import Daemon

OVERPRINT = "\x1b[2J\x1b[H\rNo transaction is open.\x1b]0;owned\x07"


def _raw_controls(text: str) -> list[str]:
    return [c for c in text if not (c.isprintable() or c in "\n\t")]


def test_a_label_with_terminal_controls_is_refused(daemon: Daemon) -> None:
    r = daemon.cli("start", "--label", OVERPRINT)
    assert r.rc == 2 and r.doc["error"]["code"] == "bad-request", r
    assert "label" in r.doc["error"]["message"]
    assert daemon.cli("status").doc["state"] == "idle"


def test_file_names_and_contents_are_escaped_on_the_terminal(daemon: Daemon) -> None:
    assert daemon.cli("start", "--timeout", "1h").rc == 0
    evil = daemon.path("etc/network/interfaces.d/x" + OVERPRINT.replace("/", ""))
    evil.write_text("iface eth9 inet manual\n# " + OVERPRINT + "\n")
    for args in (("status",), ("diff",), ("history",)):
        r = daemon.cli(*args, as_json=False)
        assert r.rc == 0, r
        assert _raw_controls(r.out) == [] and _raw_controls(r.err) == [], (args, r.out)
    shown = daemon.cli("status", as_json=False).out
    assert "\\x1b[2J" in shown and "\\x0dNo transaction is open." in shown
    assert "\x1b" in daemon.cli("status").doc["edited"][0]  # JSON carries the name as it is
    assert daemon.cli("rollback").rc == 0


def test_token_file_is_private_even_when_it_existed(daemon: Daemon, tmp_path: Path) -> None:
    tf = tmp_path / "token"
    tf.write_text("stale\n")
    tf.chmod(0o644)
    r = daemon.cli("start", "--token-file", str(tf))
    assert r.rc == 0, r
    assert stat.S_IMODE(tf.stat().st_mode) == 0o600  # old code kept 0644
    assert tf.read_text() == r.doc["token"] + "\n"
    assert daemon.cli("rollback").rc == 0


def test_a_token_on_the_command_line_is_not_recorded(daemon: Daemon) -> None:
    token = daemon.cli("start", "--timeout", "1h").doc["token"]
    # a short command line, so the 300-character cap on the recorded one cannot hide the token
    sock = os.path.relpath(daemon.socket, daemon.base)
    argv = [sys.executable, "-m", "netcfg_txn", "--socket", sock, "commit", "--token", token]
    r = subprocess.run(argv, cwd=daemon.base, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r
    (last,) = daemon.cli("history", "--limit", "1").doc["history"]
    assert "--token <redacted>" in last["ended_by"], last
    assert token not in json.dumps(last)
    assert token not in daemon.log_text()


@pytest.mark.parametrize("timeout", [math.nan, math.inf, 1e-3])
def test_arm_with_an_insane_timeout_changes_nothing(daemon: Daemon, timeout: float) -> None:
    token = daemon.cli("start", "--timeout", "1h").doc["token"]
    before = daemon.txn_json()
    with pytest.raises(NetcfgTxnError) as e:  # json.dumps writes NaN/Infinity as given
        daemon.api("POST", "/v1/transactions/current/arm", {"timeout": timeout}, token=token)
    assert e.value.code == "bad-request" or e.value.code == "usage", e.value
    assert daemon.txn_json() == before
    r = daemon.cli("extend", "--timeout", "0.5")
    assert r.rc == 2 and "minimum" in r.doc["error"]["message"], r
    assert daemon.txn_json() == before
    assert "this is a bug" not in daemon.log_text()
    assert os.path.exists(daemon.socket) and daemon.cli("rollback").rc == 0
