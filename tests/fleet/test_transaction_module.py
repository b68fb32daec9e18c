# SPDX-License-Identifier: GPL-3.0-or-later
"""The transaction module's decisions (idempotency, check mode, error messages) against a fake
daemon; the real daemon and real Ansible are exercised by test_rollout.py."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest

from tests.fleet import lab

pytest.importorskip("ansible", reason="needs ansible-core in the test venv")

_spec = importlib.util.spec_from_file_location(
    "nct_transaction",
    lab.COLLECTIONS / "ansible_collections/netcfg_txn/txn/plugins/modules/transaction.py",
)
assert _spec is not None and _spec.loader is not None
tm: Any = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tm)

OPEN = {"id": "T1", "phase": "open", "deadline_wall_s": 100.0, "remaining_s": 60.0}


class Failed(Exception):
    pass


class FakeModule:
    def __init__(self, check_mode: bool = False, **params: Any) -> None:
        self.check_mode = check_mode
        self.params = {"id": None, "token": None, "timeout": None, "label": None,
                       "allow_pending": False, "probes": [], "policy": None, "apply_job": None,
                       "apply_wait": 5, "async_dir": "/nonexistent", "fresh_connection": False,
                       "fresh_after": None, **params}  # fmt: skip

    def fail_json(self, **kw: Any) -> None:
        raise Failed(kw)


class FakeDaemon:
    def __init__(self, status: dict[str, Any], history: dict[str, Any] | None = None) -> None:
        self._status = status
        self.history = history or {}
        self.calls: list[tuple[str, str, Any]] = []

    def status(self) -> dict[str, Any]:
        return self._status

    def lookup(self, txn_id: str) -> dict[str, Any] | None:
        return self.history.get(txn_id)

    def call(self, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
        self.calls.append((method, path, body))
        if path == "/v1/transactions":
            return {"ok": True, "token": "tok", "transaction": dict(OPEN)}
        done = {"id": "T1", "phase": "committed", "outcome": "committed", "reason": "confirmed"}
        return {"ok": True, "transaction": done}


def test_start_returns_id_token_and_deadline() -> None:
    d = FakeDaemon({"state": "idle"})
    res = tm.run(FakeModule(state="started", timeout="5m", probes=["iface:eth0"]), d)
    assert res["changed"] and res["id"] == "T1" and res["token"] == "tok"
    assert res["deadline"] == 100.0
    assert d.calls == [("POST", "/v1/transactions", {"allow_pending": False, "timeout": "5m",
                                                     "probes": ["iface:eth0"]})]  # fmt: skip


def test_start_is_idempotent_for_the_open_id_and_check_mode_changes_nothing() -> None:
    d = FakeDaemon({"state": "open", "transaction": OPEN})
    assert not tm.run(FakeModule(state="started", id="T1"), d)["changed"]
    with pytest.raises(tm.DaemonError) as e:
        tm.run(FakeModule(check_mode=True, state="started"), d)
    assert e.value.code == "busy" and "another transaction is open" in e.value.msg()
    idle = FakeDaemon({"state": "idle", "pending": ["/etc/network/interfaces"]})
    with pytest.raises(tm.DaemonError) as e:
        tm.run(FakeModule(check_mode=True, state="started"), idle)
    assert e.value.code == "pending-edits" and "allow_pending" in e.value.msg()
    assert d.calls == [] and idle.calls == []


def test_commit_twice_is_unchanged_and_a_timed_out_one_fails_with_the_reason() -> None:
    d = FakeDaemon({"state": "open", "transaction": OPEN})
    assert tm.run(FakeModule(state="committed", id="T1"), d)["changed"]
    gone = FakeDaemon({"state": "idle"}, {"T1": {"id": "T1", "phase": "committed",
                                                 "outcome": "committed"}})  # fmt: skip
    res = tm.run(FakeModule(state="committed", id="T1"), gone)
    assert not res["changed"] and res["outcome"] == "committed" and gone.calls == []
    lost = FakeDaemon({"state": "idle"}, {"T1": {"id": "T1", "outcome": "rolled-back",
                                                 "reason": "timeout"}})  # fmt: skip
    res = tm.run(FakeModule(state="committed", id="T1"), lost)
    assert res["failed"] and "rolled-back (reason: timeout)" in res["msg"]


def test_commit_waits_for_a_failed_apply_job_and_does_not_commit(tmp_path: Any) -> None:
    (tmp_path / "J1").write_text('{"rc": 3, "stderr": "ifup: no such interface", "failed": true}')
    d = FakeDaemon({"state": "open", "transaction": OPEN})
    with pytest.raises(Failed) as e:
        tm.run(FakeModule(state="committed", id="T1", apply_job="J1", async_dir=str(tmp_path)), d)
    assert "apply command failed (rc=3)" in e.value.args[0]["msg"] and d.calls == []


def test_commit_only_on_a_connection_opened_after_the_apply_job_ended(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "J1").write_text('{"rc": 0, "finished": 1}')
    ended = (tmp_path / "J1").stat().st_ctime
    args: dict[str, Any] = {"state": "committed", "id": "T1", "apply_job": "J1",
            "async_dir": str(tmp_path),
            "fresh_connection": True}  # fmt: skip
    for opened in (ended - 5, ended, None):  # before the job ended, at the same time, unknown
        monkeypatch.setattr(tm, "connection_opened_at", lambda opened=opened: opened)
        d = FakeDaemon({"state": "open", "transaction": OPEN})
        res = tm.run(FakeModule(**args), d)
        assert res["stale_connection"] and not res["changed"] and d.calls == [], opened
        assert res["connection_opened_at"] == opened and res["id"] == "T1"
    monkeypatch.setattr(tm, "connection_opened_at", lambda: ended + 1)
    d = FakeDaemon({"state": "open", "transaction": OPEN})
    res = tm.run(FakeModule(**args), d)
    assert res["changed"] and "stale_connection" not in res and d.calls[0][1].endswith("/confirm")
    # the next connection must also be newer than the stale reply (a reset that did not reset)
    d = FakeDaemon({"state": "open", "transaction": OPEN})
    res = tm.run(FakeModule(state="committed", id="T1", fresh_connection=True,
                            fresh_after=ended + 2), d)  # fmt: skip
    assert res["stale_connection"] and d.calls == []
    # without fresh_connection the connection is not looked at
    monkeypatch.setattr(tm, "connection_opened_at", lambda: None)
    d = FakeDaemon({"state": "open", "transaction": OPEN})
    assert tm.run(FakeModule(state="committed", id="T1"), d)["changed"]


def test_connection_time_is_the_start_of_the_nearest_sshd_ancestor(tmp_path: Any) -> None:
    import os
    import shutil
    import signal
    import subprocess
    import time

    fake = tmp_path / "sshd"  # a process whose name starts with sshd, with a child of its own
    shutil.copy("/bin/sh", fake)
    before = time.time()
    sshd = subprocess.Popen([str(fake), "-c", "sleep 30 & echo $!; wait"], stdout=subprocess.PIPE,
                            text=True)  # fmt: skip
    assert sshd.stdout is not None
    child = int(sshd.stdout.readline())
    try:
        opened = tm.connection_opened_at(pid=child)
        assert opened is not None and before - 0.05 <= opened <= time.time(), (before, opened)
    finally:
        os.kill(child, signal.SIGKILL)
        sshd.wait()
    assert tm.connection_opened_at(pid=1) is None  # init has no sshd above it


def test_every_error_code_of_the_agent_is_explained() -> None:
    """A code added to the agent without a message here fails: the module explains each one."""
    import netcfg_txn.core.errors as errors

    codes = {c.code for c in vars(errors).values()
             if isinstance(c, type) and issubclass(c, errors.NetcfgTxnError)}  # fmt: skip
    assert codes <= set(tm.CODE_HELP), codes - set(tm.CODE_HELP)


@pytest.mark.parametrize("code", sorted(tm.CODE_HELP))
def test_every_cli_error_code_has_a_clear_message(code: str) -> None:
    msg = tm.DaemonError({"code": code, "message": "the detail", "hint": "do this"}).msg()
    assert msg.startswith(f"netcfg-txn {code}: ") and "the detail" in msg and "do this" in msg


def test_reconnect_reads_the_rearmed_duration_like_the_cli() -> None:
    spec = importlib.util.spec_from_file_location(
        "nct_reconnect",
        lab.COLLECTIONS / "ansible_collections/netcfg_txn/txn/plugins/action/reconnect.py",
    )
    assert spec is not None and spec.loader is not None
    rc: Any = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(rc)
    good = {"90": 90, "90s": 90, "5m": 300, "1h30m": 5400, " 2M ": 120}
    assert {k: rc.duration_s(k) for k in good} == good
    assert [rc.duration_s(k) for k in ("", "5x", "m", "5m3", "-1")] == [None] * 5
