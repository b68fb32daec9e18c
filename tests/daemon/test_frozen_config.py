# SPDX-License-Identifier: GPL-3.0-or-later
"""Everything a rollback needs is frozen at start, and our own config errors never disarm
anything: after ``start`` the config is edited, broken or deleted and the daemon restarted; the
rollback at the deadline still restores exactly the snapshot's file set and runs the start-time
``[apply]`` settings. ``status``, ``boot-rollback`` and the backstop work with a broken config;
``config check`` refuses it."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.daemon.harness import BASE_CONFIG, Daemon

pytestmark = pytest.mark.timeout(120)

EXTRA = "etc/extra/site.conf"  # exists before start, outside the start-time file set


def cfg_with(hook: Path, include: str = "") -> str:
    inc = f"include = [{json.dumps(include)}]\n" if include else ""
    return (
        BASE_CONFIG.replace('presets = ["ifupdown"]\n', 'presets = ["ifupdown"]\n' + inc)
        + f'[apply]\nbackend = "none"\ncommand = "echo ran >> {hook}"\n'
    )


def edit(d: Daemon) -> None:
    d.path("etc/network/interfaces.d/eth0").write_text("auto eth0\niface eth0 inet static\n")
    d.path("etc/network/interfaces.d/eth1").unlink()
    d.path("etc/network/interfaces.d/eth9").write_text("iface eth9 inet manual\n")


def change_include(d: Daemon, new_hook: Path) -> None:
    # Old code: the rollback would delete etc/extra/site.conf, "added" since the snapshot.
    (d.config).write_text(cfg_with(new_hook, include="/etc/extra/*"))


def change_backend(d: Daemon, new_hook: Path) -> None:
    d.config.write_text(cfg_with(new_hook))


def broken_toml(d: Daemon, new_hook: Path) -> None:
    confd = d.config.parent / "conf.d"
    confd.mkdir(exist_ok=True)
    (confd / "50-typo.toml").write_text('[apply]\ncommand = "unterminated\n')


def unknown_key(d: Daemon, new_hook: Path) -> None:
    confd = d.config.parent / "conf.d"
    confd.mkdir(exist_ok=True)
    (confd / "50-typo.toml").write_text("[timer]\nbogus = 1\n")


def deleted(d: Daemon, new_hook: Path) -> None:
    d.config.unlink()


CHANGES: dict[str, Callable[[Daemon, Path], None]] = {
    "include-glob": change_include,
    "apply-command": change_backend,
    "broken-toml": broken_toml,
    "unknown-key": unknown_key,
    "config-deleted": deleted,
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_rollback_after_config_change_uses_start_time_settings(
    spawn: Callable[..., Daemon], tmp_path: Path, change: str
) -> None:
    old_hook, new_hook = tmp_path / "hook-old", tmp_path / "hook-new"
    d = spawn(cfg_with(old_hook), start=False)
    extra = d.path(EXTRA)
    extra.parent.mkdir(parents=True)
    extra.write_text("site\n")
    d.start()
    before = d.files()
    r = d.cli("start", "--timeout", "4s")
    assert r.rc == 0, r.err
    t = r.doc["transaction"]
    edit(d)
    d.kill()
    CHANGES[change](d, new_hook)
    d.start()  # the daemon starts, whatever the config now says
    d.wait_idle(t["deadline_wall_s"] - time.time() + 15)
    late = time.time() - t["deadline_wall_s"]
    assert late >= 0
    assert d.files() == before, d.log_text()  # exactly the snapshot's set; site.conf kept
    hist = d.history()
    assert (hist[0]["txn"]["id"], hist[0]["txn"]["phase"]) == (t["id"], "rolled-back")
    assert old_hook.read_text() == "ran\n"  # the start-time [apply] command ran, once
    assert not new_hook.exists()
    log = d.log.read_text()
    if change in ("broken-toml", "unknown-key"):
        assert "configuration is invalid" in log
    else:  # valid but different: the rollback says it used the start-time settings
        assert "frozen at start" in log


def test_daemon_with_broken_config_keeps_the_last_good_one(
    spawn: Callable[..., Daemon], tmp_path: Path
) -> None:
    d = spawn(BASE_CONFIG.replace('default = "10m"', 'default = "77s"')
              + '[apply]\nbackend = "none"\n')  # fmt: skip
    d.kill()
    assert (d.state / "last-good-config.json").exists()
    good = d.config.read_text()
    d.config.write_text(good + "[nonsense\n")
    d.start()
    assert "the last good config" in d.log.read_text()
    st = d.cli("status")
    assert st.rc == 0
    assert "invalid TOML" in st.doc["config_error"]
    human = d.cli("status", as_json=False)
    assert human.rc == 0 and "WARNING" in human.err and "CONFIG INVALID" in human.out
    # A new transaction would snapshot a guessed file set: refused, naming the problem.
    state = d.state_digest()
    r = d.cli("start")
    assert r.rc == 78, r.out
    assert "invalid TOML" in r.doc["error"]["message"] and "config check" in r.doc["error"]["hint"]
    assert d.state_digest() == state
    # Fixed (no reload needed): the next start uses the fixed config.
    d.config.write_text(good.replace('default = "77s"', 'default = "66s"'))
    r = d.cli("start")
    assert r.rc == 0, r.err
    assert r.doc["transaction"]["timeout_s"] == 66
    assert d.cli("status").doc.get("config_error") is None
    assert d.cli("rollback").rc == 0


def test_status_and_boot_rollback_work_offline_with_a_broken_config(
    spawn: Callable[..., Daemon], tmp_path: Path
) -> None:
    hook = tmp_path / "hook"
    d = spawn(cfg_with(hook))
    before = d.files()
    assert d.cli("start", "--timeout", "1h").rc == 0
    edit(d)
    d.kill()  # a crash
    d.config.write_text("[files\n")
    st = d.cli("status")
    assert st.rc == 0, st.err
    assert st.doc["state"] == "open" and "invalid TOML" in st.doc["config_error"]
    human = d.cli("status", as_json=False)
    assert human.rc == 0 and "WARNING" in human.err and "CONFIG INVALID" in human.out
    r = d.cli("boot-rollback")
    assert r.rc == 0, r.err + r.out
    assert d.files() == before
    assert d.history()[0]["txn"]["phase"] == "rolled-back"
    assert not hook.exists()  # files only at boot


def test_config_check(spawn: Callable[..., Daemon]) -> None:
    d = spawn(start=False)
    ok = d.cli("config", "check")
    assert ok.rc == 0 and ok.doc["ok"] is True
    confd = d.config.parent / "conf.d"
    confd.mkdir()
    (confd / "20-bad.toml").write_text("[timer]\nbogus_key = 1\n")
    bad = d.cli("config", "check")
    assert bad.rc == 78
    assert "20-bad.toml" in bad.doc["error"]["message"]
    assert "bogus_key" in bad.doc["error"]["message"]


def test_backstop_rolls_back_for_a_wedged_daemon(
    spawn: Callable[..., Daemon], tmp_path: Path
) -> None:
    """No systemd here: the entry point alone. The daemon holds the lock but is stopped."""
    hook = tmp_path / "hook"
    d = spawn(cfg_with(hook))
    before = d.files()
    # Long enough that "early" below is early even on a loaded machine.
    r = d.cli("start", "--timeout", "8s")
    t = r.doc["transaction"]
    edit(d)
    os.kill(d.pid, signal.SIGSTOP)
    try:
        early = d.cli("backstop", "--id", t["id"])
        assert early.rc == 0 and early.doc["action"] == "rearmed", early.out
        # The scenario: the deadline passes on the real clock while the daemon is stopped.
        time.sleep(max(0.0, t["deadline_wall_s"] - time.time()) + 0.2)
        d.config.write_text("[broken\n")  # and the config broke meanwhile
        r = d.cli("backstop", "--id", t["id"])
        assert r.rc == 0, r.err + r.out
    finally:
        d.reap()
    assert r.doc["action"] == "rolled-back" and "no progress" in r.doc["cause"], r.doc
    assert d.files() == before
    h = d.history()[0]["txn"]
    assert (h["id"], h["phase"], h["reason"]) == (t["id"], "rolled-back", "timeout")
    assert h["ended_by"]["command"] == "backstop"
    assert hook.read_text() == "ran\n"
    again = d.cli("backstop", "--id", t["id"])
    assert again.rc == 0 and again.doc["action"] == "none"
