# SPDX-License-Identifier: GPL-3.0-or-later
"""The CLI contract against the real daemon: exit codes, byte-for-byte "changes nothing", offline
status, tokens, idempotent confirm, --json, pending edits (R1, R2, R4, R5, R36, R39, R43)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from netcfg_txn.core.errors import NetcfgTxnError
from netcfg_txn.store.files import StatCache
from tests.daemon.harness import Daemon, Result, config


def snapshot_state(d: Daemon) -> dict[str, str]:
    """The winner's record and snapshot, byte for byte (and mtime: not even rewritten)."""
    return {k: v for k, v in d.state_digest().items() if k == "txn.json" or
            k.startswith("snapshots/")}  # fmt: skip


def test_start_prints_id_token_deadline_and_stores_only_the_token_hash(daemon: Daemon) -> None:
    r = daemon.cli("start", "--timeout", "30s", "--label", "t1")
    assert r.rc == 0, r.err
    doc = r.doc
    token, t = doc["token"], doc["transaction"]
    assert len(token) >= 22  # >= 128 bits, urlsafe base64
    rec = daemon.txn_json()
    assert rec is not None and rec["id"] == t["id"] and rec["label"] == "t1"
    assert rec["token_sha256"] == hashlib.sha256(token.encode()).hexdigest()
    assert token not in (daemon.state / "txn.json").read_text()
    assert t["deadline_wall_s"] == pytest.approx(time.time() + 30, abs=3)


@pytest.mark.parametrize("n", [2, 10])
def test_concurrent_starts_exactly_one_wins(spawn: Callable[..., Daemon], n: int) -> None:
    d = spawn()
    procs = [d.cli_popen("start", "--timeout", "60s") for _ in range(n)]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        results.append(Result(p.returncode, out, err))
    codes = sorted(r.rc for r in results)
    assert codes == [0] + [75] * (n - 1), [(r.rc, r.out, r.err) for r in results]
    winner = next(r for r in results if r.rc == 0).doc
    for r in results:
        if r.rc == 75:
            assert r.doc["ok"] is False and r.doc["error"]["code"] == "busy"
            assert winner["transaction"]["id"] in r.doc["error"]["message"]  # R6: names it
    rec = d.txn_json()
    assert rec is not None
    assert rec["id"] == winner["transaction"]["id"]
    assert rec["token_sha256"] == hashlib.sha256(winner["token"].encode()).hexdigest()
    assert rec["deadline"]["wall_s"] == winner["transaction"]["deadline_wall_s"]
    # R1: more starts while it is open change nothing, byte for byte.
    before = snapshot_state(d)
    procs = [d.cli_popen("start", "--allow-pending") for _ in range(n)]
    for p in procs:
        p.communicate(timeout=60)
        assert p.returncode == 75
    assert snapshot_state(d) == before
    assert sorted(p.name for p in (d.state / "snapshots").iterdir()) == [rec["id"]]


def test_commit_and_rollback_without_a_transaction_exit_66_and_change_nothing(
    daemon: Daemon,
) -> None:
    assert daemon.cli("start").rc == 0
    assert daemon.cli("commit").rc == 0  # history, baseline and blobs now exist
    files, state = daemon.files(), daemon.state_digest()
    cases = [
        ["commit"],
        ["confirm"],
        ["rollback"],
        ["rollback", "--force"],
        ["commit", "--id", "20990101T000000-abcdef"],
        ["extend", "--timeout", "5s"],
    ]
    for args in cases:
        r = daemon.cli(*args)
        assert r.rc == 66, (args, r.rc, r.out, r.err)
        assert r.doc["ok"] is False and r.doc["error"]["code"] == "no-transaction"
    assert daemon.files() == files
    assert daemon.state_digest() == state


def test_bad_token_exits_77_and_changes_nothing(daemon: Daemon) -> None:
    r = daemon.cli("start", "--timeout", "30s")
    tid = r.doc["transaction"]["id"]
    daemon.path("etc/network/interfaces.d/eth0").write_text("edited\n")
    files, state = daemon.files(), daemon.state_digest()
    for args in (["commit"], ["rollback"], ["extend", "--timeout", "5m"]):
        for extra in (["--token", "wrong"], ["--token", "wrong", "--id", tid]):
            res = daemon.cli(*args, *extra)
            assert res.rc == 77, (args, extra, res.out, res.err)
            assert res.doc["error"]["code"] == "bad-token"
    with pytest.raises(NetcfgTxnError) as ei:
        daemon.api("POST", f"/v1/transactions/{tid}/confirm", {}, token="x" * 43)
    assert ei.value.exit_code == 77
    assert daemon.files() == files
    assert daemon.state_digest() == state


def test_confirm_is_idempotent_with_the_token(daemon: Daemon) -> None:
    r = daemon.cli("start", "--timeout", "30s")
    tid, token = r.doc["transaction"]["id"], r.doc["token"]
    first = daemon.cli("commit", "--id", tid, "--token", token)
    assert first.rc == 0 and first.doc["already_committed"] is False
    state = daemon.state_digest()
    again = daemon.cli("commit", "--id", tid, "--token", token, as_json=False)
    assert again.rc == 0, again.err
    assert "already committed" in again.out
    api = daemon.api("POST", f"/v1/transactions/{tid}/confirm", {}, token=token)
    assert api["ok"] and api["already_committed"] is True
    assert api["transaction"]["id"] == tid and api["transaction"]["phase"] == "committed"
    assert daemon.state_digest() == state  # no side effects
    # The token of an ended transaction opens nothing else (R40).
    wrong = daemon.cli("commit", "--id", tid, "--token", "not-" + token)
    assert wrong.rc in (66, 77) and wrong.doc["ok"] is False
    assert daemon.state_digest() == state


def test_pending_edits_refuse_start_unless_allowed(daemon: Daemon) -> None:
    assert daemon.cli("start").rc == 0
    assert daemon.cli("commit").rc == 0  # the baseline
    daemon.path("etc/network/interfaces.d/br0").write_text("edited outside a transaction\n")
    # Once every file is older than the stat cache's racy window, a scan would record them all:
    # a refused start that saved the cache would now always show (not only on a slow machine).
    newest = max(p.stat().st_ctime for p in daemon.root.rglob("*") if p.is_file())
    while time.time() < newest + StatCache.RACY_S + 0.5:
        time.sleep(0.1)
    state = daemon.state_digest()
    r = daemon.cli("start")
    assert r.rc == 78, (r.out, r.err)
    assert r.doc["error"]["code"] == "pending-edits"
    assert "/etc/network/interfaces.d/br0" in r.doc["error"]["message"]
    assert daemon.state_digest() == state
    ok = daemon.cli("start", "--allow-pending")
    assert ok.rc == 0, ok.out


def test_status_works_with_the_daemon_stopped(spawn: Callable[..., Daemon]) -> None:
    d = spawn(config("echo hook broke >&2; exit 3"))
    assert d.cli("start", "--timeout", "30s").rc == 0
    d.path("etc/network/interfaces.d/eth0").write_text("edited\n")
    rb = d.cli("rollback")
    assert rb.rc == 1, rb.out  # the files are back, but the hook failed: phase failed
    assert rb.doc["error"]["code"] == "failed"
    failed_id = d.history()[0]["txn"]["id"]
    r = d.cli("start", "--timeout", "1h")
    assert r.rc == 0, r.out
    t = r.doc["transaction"]
    assert d.stop() == 0
    assert not d.socket.exists()

    st = d.cli("status")
    assert st.rc == 1, st.err  # the last outcome is "failed": status says so in its exit code
    doc = st.doc
    assert doc["offline"] is True
    assert doc["state"] == "open"
    tx = doc["transaction"]
    assert tx["id"] == t["id"]
    assert tx["deadline_wall_s"] == pytest.approx(t["deadline_wall_s"])
    assert 3500 < tx["remaining_s"] <= 3600
    assert tx["file_count"] == 4
    assert doc["last"]["id"] == failed_id and doc["last"]["outcome"] == "failed"
    assert doc["last"]["reason"] == "manual"
    assert "exit 3" in doc["last_error"] or "hook" in doc["last_error"]

    human = d.cli("status", as_json=False)
    assert human.rc == 1 and "rollback --force" in human.err
    for text in (t["id"], "left", "4 managed", f"Last: {failed_id} failed (manual)",
                 "Last error:", "daemon not running"):  # fmt: skip
        assert text in human.out, (text, human.out)


def test_status_idle_offline_reports_last_outcome(daemon: Daemon) -> None:
    assert daemon.cli("start").rc == 0
    assert daemon.cli("commit").rc == 0
    daemon.stop()
    doc = daemon.cli("status").doc
    assert doc["state"] == "idle" and doc["offline"] is True
    assert doc["last"]["outcome"] == "committed" and doc["last_error"] is None


# ------------------------------------------------------------------------------------ --json


def _one_doc(r: Result) -> dict[str, object]:
    """stdout must be exactly one JSON document; ok must match the exit code."""
    try:
        doc = json.loads(r.out)
    except json.JSONDecodeError as e:
        raise AssertionError(f"stdout is not exactly one JSON document ({e}): {r.out!r}") from None
    assert isinstance(doc, dict), doc
    assert doc["ok"] is (r.rc == 0), (r.rc, doc)
    if r.rc != 0:
        err = doc["error"]
        assert isinstance(err, dict) and set(err) >= {"code", "message", "hint"}
    return doc


def test_json_is_exactly_one_document_for_every_command(spawn: Callable[..., Daemon]) -> None:
    d = spawn()
    cases: list[tuple[list[str], int]] = [
        (["commit"], 66),
        (["confirm"], 66),
        (["rollback"], 66),
        (["extend", "--timeout", "5s"], 66),
        (["diff"], 66),
        (["status"], 0),
        (["history"], 0),
        (["config", "show"], 0),
        (["start", "--timeout", "30s"], 0),
        (["start"], 75),
        (["status"], 0),
        (["diff"], 0),
        (["extend", "--timeout", "40s"], 0),
        (["extend", "--timeout", "100d"], 2),
        (["boot-rollback"], 75),
        (["commit"], 0),
        (["start", "--timeout", "30s"], 0),
        (["rollback"], 0),
        (["history", "--limit", "0"], 2),
        (["start", "--no-such-flag"], 2),
        (["no-such-command"], 2),
        (["try", "--timeout", "30s", "--", "true"], 0),  # no TTY: leaves it armed
        (["rollback"], 0),
    ]
    for args, rc in cases:
        r = d.cli(*args)
        assert r.rc == rc, (args, r.rc, r.out, r.err)
        _one_doc(r)
    d.stop()
    # diff with none open: the edits since the last commit/rollback (none here), offline too.
    for args, rc in [(["boot-rollback"], 0), (["status"], 0), (["history"], 0), (["diff"], 0),
                     (["start"], 69), (["commit"], 69)]:  # fmt: skip
        r = d.cli(*args)
        assert r.rc == rc, (args, r.rc, r.out, r.err)
        _one_doc(r)
    d.config.write_text("[files]\nbogus = 1\n")
    for args in (["config", "show"], ["config", "check"]):
        r = d.cli(*args)
        assert r.rc == 78, (args, r.rc, r.out, r.err)
        assert "bogus" in _one_doc(r)["error"]["message"]  # type: ignore[index]
    # Our own config errors never stop what must keep working: the last good config is used.
    for args in (["status"], ["boot-rollback"], ["history"]):
        r = d.cli(*args)
        assert r.rc == 0, (args, r.rc, r.out, r.err)
        _one_doc(r)
    assert "bogus" in d.cli("status").doc["config_error"]


def test_json_try_is_one_document_when_the_command_prints(daemon: Daemon) -> None:
    r = daemon.cli("try", "--timeout", "30s", "--", "echo", "hello from the command")
    assert r.rc == 0
    _one_doc(r)


def test_json_try_reports_a_failed_command_as_an_error(daemon: Daemon) -> None:
    before = daemon.files()
    r = daemon.cli("try", "--timeout", "30s", "--", "false")
    assert r.rc == 3  # not kept: rolled back (1 is kept for a rollback that failed)
    assert daemon.files() == before and daemon.txn_json() is None  # this part works
    assert _one_doc(r)["error"]["code"] == "not-kept"  # type: ignore[index]


def test_json_on_a_daemon_that_is_not_there(tmp_path: Path) -> None:
    from tests.daemon.harness import make

    d = make(tmp_path / "none")
    r = d.cli("start")
    assert r.rc == 69
    assert _one_doc(r)["error"]["code"] == "unavailable"  # type: ignore[index]
    p = subprocess.run(d.cli_argv("commit"), capture_output=True, text=True)
    assert p.returncode == 69 and json.loads(p.stdout)["ok"] is False
