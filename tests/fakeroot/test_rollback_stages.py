# SPDX-License-Identifier: GPL-3.0-or-later
"""The rollback pipeline against a recording ``Network`` (no root, no namespaces): the stages run
in the design's order (down -> delete created links -> files -> reload -> up -> routes -> verify,
then the hook), each seeing the files it must see; and a rollback interrupted in any stage (the
process dies there) resumes in a new process from the right place, live or at boot. The engine,
the store and the file restore are real; only the network side is recorded."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from netcfg_txn.core.model import Phase, Reason, StepResult, txn_to_json
from netcfg_txn.core.rollback import BouncePlan, NetworkPlan, RollbackStage, StackPlan
from netcfg_txn.net.network import FileChange, LiveJson, UnchangedFiles
from tests.fakeroot.conftest import ROOT_ACTOR, Env, build

ETH1 = "/etc/network/interfaces.d/eth1"
OLD = "auto eth1\niface eth1 inet static\n    address 192.0.2.1/24\n"
NEW = "auto eth1\niface eth1 inet static\n    address 192.0.2.99/24\n"
LIVE = {"captured": "at start"}
PLAN = StackPlan("recording", BouncePlan(("eth1",), ("vlan9",), ("eth1",), (), True))
# Every call a live rollback makes, in order; the files are restored between these two.
CALLS = ["plan", "down", "delete_created_links", "reload", "up", "restore_routes", "verify",
         "run_hook"]  # fmt: skip
BEFORE_FILES = CALLS[:3]
# The stage recorded when the process died in each call (the last one completed before it).
STAGE_AT = {
    "plan": RollbackStage.UNPLANNED,
    "down": RollbackStage.PLANNED,
    "delete_created_links": RollbackStage.DOWN,
    "reload": RollbackStage.FILES,
    "up": RollbackStage.RELOADED,
    "restore_routes": RollbackStage.UP,
    "verify": RollbackStage.ROUTES,
    "run_hook": RollbackStage.VERIFIED,
}


class Crash(BaseException):
    """The process dies here (not an error the rollback could catch and report)."""


class RecordingNetwork:
    """Records each call with the content of eth1's file at that moment; dies in ``crash_at``."""

    name = "recording"

    def __init__(self, root: Path, crash_at: str | None = None) -> None:
        self.file = root / ETH1.lstrip("/")
        self.crash_at = crash_at
        self.calls: list[tuple[str, str]] = []
        self.live: list[LiveJson] = []

    def _call(self, name: str, action: str) -> list[StepResult]:
        self.calls.append((name, self.file.read_text()))
        if name == self.crash_at:
            raise Crash(name)
        return [StepResult(action, "eth1", True)]

    @property
    def names(self) -> list[str]:
        return [n for n, _ in self.calls]

    def problem(self) -> str | None:
        return None

    def capture(self) -> Mapping[str, Any] | None:
        return LIVE

    def plan(self, changes: Sequence[FileChange], unchanged: UnchangedFiles) -> NetworkPlan:
        self._call("plan", "plan")
        assert [str(c.path) for c in changes] == [ETH1]
        return PLAN

    def accepts(self, plan: NetworkPlan) -> bool:
        return plan == PLAN

    def down(self, plan: NetworkPlan) -> list[StepResult]:
        return self._call("down", "down")

    def delete_created_links(self, plan: NetworkPlan) -> list[StepResult]:
        return self._call("delete_created_links", "delete-link")

    def reload(self, plan: NetworkPlan) -> list[StepResult]:
        return self._call("reload", "reload")

    def up(self, plan: NetworkPlan) -> list[StepResult]:
        return self._call("up", "up")

    def restore_routes(self, plan: NetworkPlan, live: LiveJson) -> list[StepResult]:
        self.live.append(live)
        return self._call("restore_routes", "restore-route")

    def verify(self, plan: NetworkPlan, live: LiveJson) -> list[StepResult]:
        self.live.append(live)
        return self._call("verify", "verify")

    def run_hook(self, plan: NetworkPlan) -> list[StepResult]:
        return self._call("run_hook", "hook")


def started(tmp_path: Path, net: RecordingNetwork | None = None) -> tuple[Env, RecordingNetwork]:
    net = net or RecordingNetwork(tmp_path / "root")
    env = build(tmp_path, network=net)
    env.write("/etc/network/interfaces", "auto lo\niface lo inet loopback\n")
    env.write(ETH1, OLD)
    env.engine.start(ROOT_ACTOR, timeout_s=60)
    env.write(ETH1, NEW)
    return env, net


def test_stages_run_in_the_designs_order_each_seeing_the_right_files(tmp_path: Path) -> None:
    env, net = started(tmp_path)
    done = env.engine.rollback(ROOT_ACTOR, reason=Reason.MANUAL)
    assert done.phase is Phase.ROLLED_BACK, done.errors
    assert net.names == CALLS
    for name, content in net.calls:  # down and delete while the new config is on disk
        assert content == (NEW if name in BEFORE_FILES else OLD), name
    assert net.live == [LIVE, LIVE]  # routes and verify compare with the state at start
    assert [r.action for r in done.results] == [
        "down", "delete-link", "rewrite", "reload", "up", "restore-route", "verify", "hook"
    ]  # fmt: skip
    (entry,) = env.engine.store.history(1)
    assert entry.doc["bounced"] == ["eth1"]


@pytest.mark.parametrize("crash_at", CALLS)
def test_a_rollback_resumes_after_its_last_recorded_stage(tmp_path: Path, crash_at: str) -> None:
    env, net = started(tmp_path, RecordingNetwork(tmp_path / "root", crash_at))
    with pytest.raises(Crash):
        env.engine.rollback(ROOT_ACTOR, reason=Reason.MANUAL)
    t = env.engine.store.read_txn()
    assert t is not None and t.phase is Phase.ROLLING_BACK
    assert t.stage is STAGE_AT[crash_at]
    files_done = t.stage.order >= RollbackStage.FILES.order
    assert env.path(ETH1).read_text() == (OLD if files_done else NEW)

    # A new process (the restarted daemon) finishes it.
    env2, net2 = started_again(tmp_path)
    rec = env2.engine.recover(boot=False)
    assert "resumed interrupted rollback" in rec.actions[-1], rec.actions
    assert net2.names == CALLS[CALLS.index(crash_at) :]
    assert env2.path(ETH1).read_text() == OLD
    (entry,) = env2.engine.store.history(1)
    assert entry.txn.phase is Phase.ROLLED_BACK and entry.txn.reason is Reason.MANUAL
    actions = [r.action for r in entry.txn.results]
    for once in ("down", "delete-link", "up", "verify", "hook"):
        assert actions.count(once) == 1, actions  # no stage ran twice
    assert actions.count("rewrite") == 1, actions  # nor were the files restored twice


def started_again(tmp_path: Path) -> tuple[Env, RecordingNetwork]:
    net = RecordingNetwork(tmp_path / "root")
    return build(tmp_path, network=net), net


@pytest.mark.parametrize("crash_at", ["down", "up"])
def test_a_reboot_mid_rollback_finishes_it_files_only(tmp_path: Path, crash_at: str) -> None:
    env, _ = started(tmp_path, RecordingNetwork(tmp_path / "root", crash_at))
    with pytest.raises(Crash):
        env.engine.rollback(ROOT_ACTOR, reason=Reason.MANUAL)
    env2, net2 = started_again(tmp_path)
    env2.engine.recover(boot=True)
    assert net2.names == []  # networking has not started: nothing is bounced at boot
    assert env2.path(ETH1).read_text() == OLD
    (entry,) = env2.engine.store.history(1)
    assert entry.txn.phase is Phase.ROLLED_BACK and entry.txn.reason is Reason.MANUAL
    assert entry.doc["bounced"] == []


def test_a_record_of_the_previous_version_resumes(tmp_path: Path) -> None:
    """A live rollback the previous version left after its stage "down" (interfaces down and
    created links deleted, files not yet restored): an upgrade must not stop it."""
    env, _ = started(tmp_path)
    t = env.engine.store.read_txn()
    assert t is not None
    doc = txn_to_json(t)
    doc |= {
        "phase": "rolling-back",
        "reason": "timeout",
        "ended_by": {"kind": "system", "command": "timer"},
        "bounce": {
            "backend": "recording",
            "down": ["eth1"],
            "delete": ["vlan9"],
            "up": ["eth1"],
            "unattributed": [],
            "reload": True,
            "down_ids": {},
            "up_ids": {},
            "notes": [],
            "unreadable": [],
        },
        "stage": "down",
        "results": [
            {"action": "down", "target": "eth1", "ok": True, "error": None},
            {"action": "delete-link", "target": "vlan9", "ok": True, "error": None},
        ],
    }
    env.engine.store.txn_path.write_text(json.dumps(doc))
    env2, net2 = started_again(tmp_path)
    env2.engine.recover(boot=False)
    assert net2.names == CALLS[3:]  # files, then reload, up, routes, verify, hook
    assert all(content == OLD for _, content in net2.calls)
    (entry,) = env2.engine.store.history(1)
    assert entry.txn.phase is Phase.ROLLED_BACK and entry.txn.reason is Reason.TIMEOUT
    assert [r.action for r in entry.txn.results][:3] == ["down", "delete-link", "rewrite"]


def test_a_plan_another_network_made_is_a_failure_not_silence(tmp_path: Path) -> None:
    """A resumed rollback whose plan this network cannot carry out (the config changed and the
    settings frozen at start are gone) restores the files and says the interfaces were not."""
    env, net = started(tmp_path, RecordingNetwork(tmp_path / "root", "down"))
    with pytest.raises(Crash):
        env.engine.rollback(ROOT_ACTOR, reason=Reason.MANUAL)
    net2 = RecordingNetwork(tmp_path / "root")
    net2.accepts = lambda plan: False  # type: ignore[method-assign]
    env2 = build(tmp_path, network=net2)
    env2.engine.recover(boot=False)
    assert net2.names == []
    assert env2.path(ETH1).read_text() == OLD
    (entry,) = env2.engine.store.history(1)
    assert entry.txn.phase is Phase.FAILED
    assert any("planned by a stack network, not by recording" in e for e in entry.txn.errors)
