# SPDX-License-Identifier: GPL-3.0-or-later
"""The dead-man timer in the real daemon: expiry, commit, restart mid-timer, deadline passed
while down, and confirm racing expiry (R31-R34)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from netcfg_txn.core.errors import NetcfgTxnError
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
    rolled_at = daemon.wait_idle(10)
    assert daemon.files() == before
    assert rolled_at < deadline + 1.0
    h = daemon.cli("history", as_json=False)
    assert h.rc == 0
    assert "rolled-back (timeout)" in h.out
    doc = daemon.cli("history").doc
    last = doc["history"][0]
    assert (last["phase"], last["reason"]) == ("rolled-back", "timeout")
    assert sorted(last["changed"]) == [f"/etc/network/interfaces.d/{n}" for n in
                                       ("eth0", "eth1", "eth9")]  # fmt: skip
    assert last["ended_wall_s"] == pytest.approx(deadline, abs=1.0)


def test_commit_keeps_the_new_files(daemon: Daemon) -> None:
    r = daemon.cli("start", "--timeout", "2s")
    assert r.rc == 0, r.err
    edit(daemon)
    after = daemon.files()
    c = daemon.cli("commit")
    assert c.rc == 0, c.err
    assert c.doc["already_committed"] is False
    # Past the old deadline: nothing may fire.
    time.sleep(max(0.0, r.doc["transaction"]["deadline_wall_s"] - time.time()) + 0.5)
    assert daemon.files() == after
    assert daemon.txn_json() is None
    last = daemon.history()[0]["txn"]
    assert (last["phase"], last["reason"]) == ("committed", "confirmed")
    assert len(daemon.history()) == 1


def test_restart_mid_timer_resumes_the_remaining_time(daemon: Daemon) -> None:
    before = daemon.files()
    # Wide margins: a loaded machine may take seconds to restart the daemon and answer status.
    r = daemon.cli("start", "--timeout", "12s")
    assert r.rc == 0, r.err
    deadline = r.doc["transaction"]["deadline_wall_s"]
    edit(daemon)
    time.sleep(max(0.0, deadline - 9.0 - time.time()))
    daemon.kill()  # SIGKILL mid-timer, 3 s in
    daemon.start()
    st = daemon.cli("status").doc
    assert st["state"] == "open"
    assert st["transaction"]["remaining_s"] < 9.1  # the remaining time, not a fresh 12 s
    rolled_at = daemon.wait_idle(20)
    assert daemon.files() == before
    # At the original deadline (a fresh full timeout would land >= 3 s later).
    assert rolled_at == pytest.approx(deadline, abs=1.0)
    last = daemon.history()[0]["txn"]
    assert (last["phase"], last["reason"]) == ("rolled-back", "timeout")
    assert last["ended_wall_s"] == pytest.approx(deadline, abs=1.0)


def test_deadline_passed_while_down_rolls_back_at_startup(daemon: Daemon) -> None:
    before = daemon.files()
    r = daemon.cli("start", "--timeout", "2s")
    assert r.rc == 0, r.err
    edit(daemon)
    daemon.kill()
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
    time.sleep(max(0.0, t["deadline_wall_s"] + offset - latency - time.time()))
    cli = daemon.cli("commit")
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
    if offset <= -0.8:
        assert hist[0]["phase"] == "committed"
    if offset >= 0.8:
        assert hist[0]["phase"] == "rolled-back"


@pytest.mark.parametrize("offset", [-0.01, -0.002, 0.0, 0.002, 0.01])
def test_api_confirm_racing_expiry_has_exactly_one_outcome(daemon: Daemon, offset: float) -> None:
    """The same race aimed to the millisecond with the in-process client (token, --id)."""
    before = daemon.files()
    r = daemon.cli("start", "--timeout", "2s")
    assert r.rc == 0, r.err
    t, token = r.doc["transaction"], r.doc["token"]
    edit(daemon)
    after = daemon.files()
    time.sleep(max(0.0, t["deadline_wall_s"] + offset - time.time()))
    try:
        got: dict[str, object] | NetcfgTxnError = daemon.api(
            "POST", f"/v1/transactions/{t['id']}/confirm", {}, token=token
        )
    except NetcfgTxnError as e:
        got = e
    daemon.wait_idle(10)
    hist = [h["txn"] for h in daemon.history() if h["txn"]["id"] == t["id"]]
    assert len(hist) == 1, hist
    if hist[0]["phase"] == "committed":
        assert isinstance(got, dict) and got["already_committed"] is False
        assert daemon.files() == after
    else:
        assert (hist[0]["phase"], hist[0]["reason"]) == ("rolled-back", "timeout")
        assert isinstance(got, NetcfgTxnError) and got.exit_code == 66, got
        assert daemon.files() == before


def test_extend_moves_the_deadline(spawn: Callable[..., Daemon]) -> None:
    d = spawn()
    r = d.cli("start", "--timeout", "2s")
    assert r.rc == 0
    e = d.cli("extend", "--timeout", "4s")
    assert e.rc == 0, e.out
    new_deadline = e.doc["transaction"]["deadline_wall_s"]
    assert new_deadline > r.doc["transaction"]["deadline_wall_s"] + 1
    time.sleep(max(0.0, r.doc["transaction"]["deadline_wall_s"] - time.time()) + 0.3)
    assert d.txn_json() is not None  # the old deadline passed: still open
    assert d.wait_idle(10) == pytest.approx(new_deadline, abs=1.0)
