# SPDX-License-Identifier: GPL-3.0-or-later
"""The dead-man timer in the real daemon process on the real clock, where real time is the point:
the deadline firing, a deadline that passed while the daemon was down, and a CLI commit racing the
expiry. The timer's logic (re-arm, extend, commit, retry with backoff, ties, restart, overdue) is
tested in fake time in tests/fakeroot/test_daemon_timer.py and test_daemon_deadline.py."""

from __future__ import annotations

import time

import pytest

from tests.daemon.harness import Daemon


def edit(d: Daemon) -> None:
    """Change one file, delete one, add one."""
    d.path("etc/network/interfaces.d/eth0").write_text("auto eth0\niface eth0 inet static\n")
    d.path("etc/network/interfaces.d/eth1").unlink()
    d.path("etc/network/interfaces.d/eth9").write_text("iface eth9 inet manual\n")


def test_expiry_rolls_back_and_history_says_timeout(daemon: Daemon) -> None:
    before = daemon.files()
    r = daemon.cli("start", "--timeout", "2s")
    assert r.rc == 0, r.err
    deadline = r.doc["transaction"]["deadline_wall_s"]
    edit(daemon)
    daemon.wait_idle(30)
    assert daemon.files() == before
    h = daemon.cli("history", as_json=False)
    assert h.rc == 0
    assert "rolled-back (timeout)" in h.out
    doc = daemon.cli("history").doc
    last = doc["history"][0]
    assert (last["phase"], last["reason"]) == ("rolled-back", "timeout")
    assert sorted(last["changed"]) == [f"/etc/network/interfaces.d/{n}" for n in
                                       ("eth0", "eth1", "eth9")]  # fmt: skip
    assert last["ended_wall_s"] == pytest.approx(deadline, abs=1.0)


def test_deadline_passed_while_down_rolls_back_at_startup(daemon: Daemon) -> None:
    before = daemon.files()
    r = daemon.cli("start", "--timeout", "2s")
    assert r.rc == 0, r.err
    edit(daemon)
    daemon.kill()
    # The scenario: the deadline passes on the real clock while no daemon runs.
    time.sleep(max(0.0, r.doc["transaction"]["deadline_wall_s"] - time.time()) + 0.3)
    daemon.start()
    # Recovery runs before the socket accepts: by READY the rollback is done.
    assert daemon.txn_json() is None
    assert daemon.files() == before
    last = daemon.history()[0]["txn"]
    assert (last["phase"], last["reason"]) == ("rolled-back", "timeout")
    assert daemon.cli("status").doc["state"] == "idle"


def _cli_latency(d: Daemon) -> float:
    """How long the CLI takes from exec to an answer (interpreter start-up dominates)."""
    t0 = time.time()
    d.cli("history", "--limit", "1")
    return time.time() - t0


@pytest.mark.parametrize("offset", [-0.8, -0.05, 0.0, 0.05, 0.8])
def test_cli_confirm_racing_expiry_has_exactly_one_outcome(daemon: Daemon, offset: float) -> None:
    """``commit`` reaching the daemon ``offset`` s around the deadline: either it wins (exit 0,
    committed, files kept) or the expiry does (commit exits 66, files restored) — never both."""
    before = daemon.files()
    latency = min(_cli_latency(daemon) for _ in range(2))
    r = daemon.cli("start", "--timeout", "2s")
    assert r.rc == 0, r.err
    t = r.doc["transaction"]
    edit(daemon)
    after = daemon.files()
    # The scenario: aim the commit at ``offset`` around the deadline on the real clock.
    time.sleep(max(0.0, t["deadline_wall_s"] + offset - latency - time.time()))
    sent = time.time()
    cli = daemon.cli("commit")
    done = time.time()
    daemon.wait_idle(10)
    hist = [h["txn"] for h in daemon.history() if h["txn"]["id"] == t["id"]]
    assert len(hist) == 1, hist
    if hist[0]["phase"] == "committed":
        assert cli.rc == 0, cli.out
        assert daemon.files() == after
    else:
        assert (hist[0]["phase"], hist[0]["reason"]) == ("rolled-back", "timeout")
        assert cli.rc == 66, (cli.rc, cli.out)
        assert cli.doc["error"]["code"] == "no-transaction"
        assert daemon.files() == before
    # Whatever the load did to the aim: a commit whose whole call ended before the deadline
    # committed, and one sent after it found the rollback done.
    if done < t["deadline_wall_s"]:
        assert hist[0]["phase"] == "committed"
    if sent > t["deadline_wall_s"]:
        assert hist[0]["phase"] == "rolled-back"
