# SPDX-License-Identifier: GPL-3.0-or-later
"""Recovery through the real daemon and the real CLI: a corrupt transaction record (R47),
boot-rollback against the daemon's lock (R28, R29), and the [apply] command hook."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from tests.daemon.harness import Daemon, config


def edit(d: Daemon) -> None:
    d.path("etc/network/interfaces.d/eth0").write_text("auto eth0\niface eth0 inet static\n")
    d.path("etc/network/interfaces.d/eth1").unlink()
    d.path("etc/network/interfaces.d/eth9").write_text("iface eth9 inet manual\n")


CORRUPT = {
    "garbage": b"\x00\xff not json at all",
    "empty": b"",
    "truncated": None,  # the real record cut in half
    "claims-committed": json.dumps({"version": 1, "phase": "committed"}).encode(),
    "zero-deadline": None,  # a valid record whose deadline is zero (R31)
    "unknown-version": None,
}


@pytest.mark.parametrize("kind", sorted(CORRUPT))
def test_corrupt_record_with_a_complete_snapshot_rolls_back_at_daemon_start(
    daemon: Daemon, kind: str
) -> None:
    before = daemon.files()
    r = daemon.cli("start", "--timeout", "1h")
    assert r.rc == 0, r.out
    edit(daemon)
    daemon.kill()
    rec = daemon.state / "txn.json"
    raw = rec.read_bytes()
    if kind == "truncated":
        data = raw[: len(raw) // 2]
    elif kind == "zero-deadline":
        doc = json.loads(raw)
        doc["deadline"] = {"boot_id": "", "boottime_s": 0, "wall_s": 0}
        data = json.dumps(doc).encode()
    elif kind == "unknown-version":
        doc = json.loads(raw)
        doc["version"] = 99
        data = json.dumps(doc).encode()
    else:
        data = CORRUPT[kind] or b""
    rec.write_bytes(data)
    daemon.start()  # R47: the daemon starts anyway
    assert daemon.txn_json() is None
    assert daemon.files() == before
    hist = daemon.history()
    assert len(hist) == 1
    assert hist[0]["txn"]["phase"] == "rolled-back"  # never "committed"
    st = daemon.cli("status").doc
    assert st["state"] == "idle"
    assert st["last"]["outcome"] == "rolled-back"
    assert "corrupt" in " ".join(st["last"]["errors"] + [daemon.log_text()])
    # and the daemon works normally afterwards
    assert daemon.cli("start", "--timeout", "1h").rc == 0


def test_missing_record_means_no_transaction(daemon: Daemon) -> None:
    assert daemon.cli("start", "--timeout", "1h").rc == 0
    edit(daemon)
    after = daemon.files()
    daemon.kill()
    (daemon.state / "txn.json").unlink()
    daemon.start()
    assert daemon.cli("status").doc["state"] == "idle"
    assert daemon.files() == after  # nothing to roll back: no transaction
    assert not list((daemon.state / "snapshots").iterdir())  # unreferenced snapshot dropped


def test_boot_rollback_refuses_while_the_daemon_holds_the_lock(
    spawn: Callable[..., Daemon],
) -> None:
    d = spawn(start=False)
    hook = d.base / "hook-ran"
    d.config.write_text(config(f"touch {hook}"))
    d.start()
    before = d.files()
    assert d.cli("start", "--timeout", "1h").rc == 0
    edit(d)
    after, state = d.files(), d.state_digest()
    r = d.cli("boot-rollback")
    assert r.rc == 75, (r.out, r.err)
    assert r.doc["error"]["code"] == "busy"
    assert d.files() == after and d.state_digest() == state

    d.kill()  # the host went down with the transaction open
    r = d.cli("boot-rollback")
    assert r.rc == 0, (r.out, r.err)
    assert d.files() == before
    assert not hook.exists()  # files only: nothing of the network side runs at boot
    assert r.doc["transaction"]["phase"] == "rolled-back"
    assert r.doc["transaction"]["reason"] == "boot"
    last = d.history()[0]["txn"]
    assert (last["phase"], last["reason"]) == ("rolled-back", "boot")

    again = d.cli("boot-rollback")
    assert again.rc == 0 and again.doc["actions"] == []
    human = d.cli("boot-rollback", as_json=False)
    assert human.rc == 0 and "Nothing to roll back" in human.out
    assert d.files() == before


def test_boot_rollback_never_rolls_back_a_committed_transaction(daemon: Daemon) -> None:
    assert daemon.cli("start", "--timeout", "1h").rc == 0
    edit(daemon)
    after = daemon.files()
    assert daemon.cli("commit").rc == 0
    daemon.kill()
    r = daemon.cli("boot-rollback")
    assert r.rc == 0 and r.doc["actions"] == []
    assert daemon.files() == after


def test_apply_hook_runs_after_the_restore_and_is_recorded(spawn: Callable[..., Daemon]) -> None:
    d = spawn(start=False)
    seen = d.base / "seen"
    d.config.write_text(config(f"cat {d.root}/etc/network/interfaces.d/eth0 > {seen}"))
    d.start()
    before = d.files()
    assert d.cli("start", "--timeout", "2s").rc == 0
    edit(d)
    d.wait_idle(10)
    assert d.files() == before
    # The hook saw the restored file, not the edited one: it ran after the restore.
    assert seen.read_text() == before["etc/network/interfaces.d/eth0"].decode()
    h = d.cli("history").doc["history"][0]
    assert (h["phase"], h["reason"], h["errors"]) == ("rolled-back", "timeout", []), h
    hooks = [r for r in h["results"] if r["action"] == "hook"]
    assert len(hooks) == 1 and hooks[0]["ok"] is True
    assert hooks[0]["target"].startswith("cat ")


def test_failing_apply_hook_is_a_failed_rollback_in_history(spawn: Callable[..., Daemon]) -> None:
    d = spawn(config("echo no carrier >&2; exit 7"))
    before = d.files()
    assert d.cli("start", "--timeout", "1h").rc == 0
    edit(d)
    r = d.cli("rollback")
    assert r.rc == 1
    assert "exit 7" in r.doc["error"]["message"] or "no carrier" in r.doc["error"]["message"]
    assert d.files() == before  # the files are restored regardless (R17)
    h = d.cli("history").doc["history"][0]
    assert h["phase"] == "failed"
    assert any("no carrier" in e or "exit 7" in e for e in h["errors"]), h["errors"]
    hooks = [x for x in h["results"] if x["action"] == "hook"]
    assert len(hooks) == 1 and hooks[0]["ok"] is False
