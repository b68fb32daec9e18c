# SPDX-License-Identifier: GPL-3.0-or-later
"""Our own logic of the frozen config, the last good config and the backstop's timer arming (the
runner is recorded; the real timers are exercised in tests/system/test_backstop.py)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path

import pytest

from netcfg_txn import backstop
from netcfg_txn.core import config, frozen
from netcfg_txn.core.errors import CommandFailed, ConfigError
from netcfg_txn.core.model import SYSTEM, Deadline, Instant, Phase, Txn, TxnId
from netcfg_txn.host import sd
from netcfg_txn.host.runner import Completed
from netcfg_txn.store import lastgood
from tests.fakeclock import FakeClock
from tests.fakeroot.conftest import Env


def clock() -> FakeClock:
    return FakeClock(t=100.0, boot_id="b")


def txn(deadline_boottime: float = 130.0) -> Txn:
    now = Instant("b", 100.0, 1_700_000_100.0)
    d = Deadline("b", deadline_boottime, 1_700_000_000.0 + deadline_boottime)
    return Txn(TxnId("20260101T000000-abcdef"), Phase.OPEN, now, d, 30.0, SYSTEM, "")


class Recorder:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.fail = fail

    def __call__(
        self, argv: Sequence[str], *, timeout_s: float = 60.0, check: bool = True
    ) -> Completed:
        self.calls.append(tuple(argv))
        if self.fail and argv[0] == "systemd-run":
            raise CommandFailed(tuple(argv), 1, "Failed to connect to bus")
        return Completed(tuple(argv), 0, "", "")


def test_freeze_thaw_round_trip_keeps_only_rollback_settings() -> None:
    start = config.parse(
        [("a.toml", '[files]\npresets = []\ninclude = ["/etc/x/*"]\nmax_file_size = "1MiB"\n'
                    '[apply]\nbackend = "none"\ncommand = "true"\n'
                    '[timer]\nbackstop_grace = "7s"\n[state]\nlock_timeout = "3s"\n')]
    )  # fmt: skip
    later = config.parse([("b.toml", '[timer]\ndefault = "9m"\n')])
    thawed = frozen.thaw(frozen.freeze(start), later)
    assert frozen.same_rules(thawed, start)
    assert (thawed.lock_timeout_s, thawed.backstop_grace_s) == (3.0, 7.0)
    assert thawed.timeout_default_s == 540.0  # not frozen: follows the current config
    with pytest.raises(ValueError):
        frozen.thaw({"version": 1, "files": {}}, later)
    with pytest.raises(ValueError):
        frozen.thaw({**frozen.freeze(start), "version": 99}, later)


def test_last_good_config_is_used_when_the_config_breaks(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg_path, state = tmp_path / "netcfg-txn.toml", tmp_path / "state"
    cfg_path.write_text('[timer]\ndefault = "77s"\n')
    cfg, warn = lastgood.load_or_last_good(cfg_path, state)
    assert warn is None and cfg.timeout_default_s == 77
    cfg_path.write_text("[timer\n")
    with pytest.raises(ConfigError):
        lastgood.load_and_remember(cfg_path, state)
    with caplog.at_level(logging.CRITICAL):
        cfg, warn = lastgood.load_or_last_good(cfg_path, state)
    assert cfg.timeout_default_s == 77 and warn and "last good config" in warn
    rec = [r for r in caplog.records if r.levelno == logging.CRITICAL]
    assert rec[0].journal_fields["MESSAGE_ID"] == lastgood.MSG_CONFIG_BROKEN  # type: ignore[attr-defined]
    cfg, warn = lastgood.load_or_last_good(cfg_path, tmp_path / "empty-state")
    assert cfg == dataclasses.replace(config.parse([], state_dir=tmp_path / "empty-state"))
    assert warn and "built-in defaults" in warn


def test_arm_runs_a_transient_timer_a_grace_period_after_the_deadline() -> None:
    rec = Recorder()
    b = backstop.SystemdBackstop(["/usr/bin/netcfg-txn"], clock(), run=rec, booted=True)
    assert b.arm(txn(), 15.0) is True
    stop, run = rec.calls
    assert stop == ("systemctl", "stop", "netcfg-txn-backstop-20260101T000000-abcdef-*.timer")
    assert run[0] == "systemd-run"
    assert "--on-active=45000ms" in run  # 30 s left + 15 s grace
    assert "--timer-property=AccuracySec=100ms" in run
    assert "--property=KillMode=process" in run
    assert run[-4:] == ("/usr/bin/netcfg-txn", "backstop", "--id", "20260101T000000-abcdef")
    b.disarm("20260101T000000-abcdef")
    assert rec.calls[-1] == stop


def test_arming_failures_never_raise_and_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    b = backstop.SystemdBackstop(["x"], clock(), run=Recorder(fail=True), booted=True)
    assert b.arm(txn(), 15.0) is False
    assert "cannot arm the backstop timer" in caplog.text
    rec = Recorder()
    unbooted = backstop.SystemdBackstop(["x"], clock(), run=rec, booted=False)
    assert unbooted.arm(txn(), 15.0) is False and unbooted.arm(txn(), 15.0) is False
    unbooted.disarm("t")
    assert rec.calls == []
    assert caplog.text.count("systemd is not PID 1") == 1  # said once


def test_overdue_deadline_arms_for_the_grace_period_only() -> None:
    rec = Recorder()
    b = backstop.SystemdBackstop(["x"], clock(), run=rec, booted=True)
    b.arm(txn(deadline_boottime=50.0), 15.0)
    assert "--on-active=15000ms" in rec.calls[-1]


class FakeEngine:
    def __init__(self, t: Txn | None) -> None:
        self.t = t
        self.cfg = dataclasses.replace(config.parse([]), backstop_grace_s=15.0)

    def current(self) -> Txn | None:
        return self.t


def _stopping(stdout: str) -> Recorder:
    class R(Recorder):
        def __call__(
            self, argv: Sequence[str], *, timeout_s: float = 60.0, check: bool = True
        ) -> Completed:
            self.calls.append(tuple(argv))
            return Completed(
                tuple(argv), 0, stdout if tuple(argv)[1:2] == ("is-system-running",) else "", ""
            )

    return R()


def test_stopping_with_a_transaction_open_hands_it_to_the_backstop(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sd, "booted", lambda: True)
    rec = _stopping("running\n")
    b = backstop.SystemdBackstop(["x"], clock(), run=rec, booted=True)
    with caplog.at_level(logging.INFO):
        backstop.handover(FakeEngine(txn()), b, run=rec)  # type: ignore[arg-type]
    msg = [r for r in caplog.records if r.levelno == logging.WARNING][-1]
    assert "backstop timer rolls it back at" in msg.getMessage()
    assert msg.journal_fields["MESSAGE_ID"] == backstop.MSG_HANDOVER  # type: ignore[attr-defined]
    assert any(c[0] == "systemd-run" for c in rec.calls)  # re-armed on the way out


def test_reboot_with_a_transaction_open_warns_it_is_reverted_at_boot(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sd, "booted", lambda: True)
    rec = _stopping("stopping\n")
    b = backstop.SystemdBackstop(["x"], clock(), run=rec, booted=True)
    backstop.handover(FakeEngine(txn()), b, run=rec)  # type: ignore[arg-type]
    assert "reverts the change at the next boot" in caplog.text
    assert not any(c[0] == "systemd-run" for c in rec.calls)


def test_stopping_without_systemd_says_nothing_protects_the_deadline(
    caplog: pytest.LogCaptureFixture,
) -> None:
    b = backstop.SystemdBackstop(["x"], clock(), run=Recorder(), booted=False)
    backstop.handover(FakeEngine(txn()), b, run=Recorder())  # type: ignore[arg-type]
    crit = [r for r in caplog.records if r.levelno == logging.CRITICAL]
    assert crit and "no backstop is armed" in crit[0].getMessage()


def included(env: Env) -> tuple[str, ...]:
    """The engine's file set now (a call, so mypy does not narrow it across config swaps)."""
    return env.engine.fileset.include


def test_engine_uses_the_frozen_file_set_and_falls_back_for_old_records(tmp_path: Path) -> None:
    from tests.fakeroot.conftest import ROOT_ACTOR, build

    env = build(tmp_path)
    env.write("/etc/network/interfaces", "old\n")
    env.write("/etc/extra/site.conf", "site\n")
    wider = config.parse(
        [("b.toml", '[files]\npresets = ["ifupdown"]\ninclude = ["/etc/extra/*"]\n')],
        state_dir=env.state,
    )
    t, _ = env.engine.start(ROOT_ACTOR)
    env.engine.adopt(wider)  # a config change after start (as a daemon restart would load it)
    assert env.engine.current() is not None
    assert env.engine.fileset.include == ("/etc/network/interfaces", "/etc/network/interfaces.d/*")
    env.engine.rollback(ROOT_ACTOR)
    assert env.path("/etc/extra/site.conf").read_text() == "site\n"  # not "added": kept
    assert included(env)[-1] == "/etc/extra/*"  # idle: the current config

    # A record from an older version (no frozen config): the current config is used.
    env.engine.adopt(config.parse([("a.toml", '[files]\npresets = ["ifupdown"]\n')],
                                  state_dir=env.state))  # fmt: skip
    t, _ = env.engine.start(ROOT_ACTOR)
    (env.state / "snapshots" / t.id / "config.json").unlink()
    env.engine.adopt(wider)
    env.engine._use_settings_of(None)  # a fresh process
    assert env.engine.current() is not None
    assert included(env)[-1] == "/etc/extra/*"
    env.engine.rollback(ROOT_ACTOR)
    assert not env.path("/etc/extra/site.conf").exists()  # "added" under the current set


def test_backstop_grace_has_a_floor() -> None:
    assert config.parse([("a.toml", '[timer]\nbackstop_grace = "5s"\n')]).backstop_grace_s == 5
    with pytest.raises(ConfigError, match="backstop_grace: must be at least 5s"):
        config.parse([("a.toml", '[timer]\nbackstop_grace = "1s"\n')])


def test_backstop_retries_an_unreadable_record_before_giving_up() -> None:
    from netcfg_txn import backstop
    from netcfg_txn.core.errors import Unavailable

    calls: list[float] = []

    class Flaky:
        def current(self) -> None:
            calls.append(0)
            if len(calls) < 3:
                raise Unavailable("cannot read the transaction record: EIO")
            return None

    slept: list[float] = []
    assert backstop._read_record(Flaky(), slept.append) is None  # type: ignore[arg-type]
    assert len(calls) == 3 and slept == [0.1, 0.2]
