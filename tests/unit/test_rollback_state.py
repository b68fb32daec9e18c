# SPDX-License-Identifier: GPL-3.0-or-later
"""The rollback's persisted state: its plan (typed per kind of network) and its stages, stepped
by the pure state machine; and the records the previous version wrote (an untyped ``bounce``
dict and stage strings), which must still load."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from netcfg_txn.core import txn
from netcfg_txn.core.model import (
    Actor,
    Deadline,
    Instant,
    Phase,
    Reason,
    StepResult,
    Txn,
    TxnId,
    txn_from_json,
    txn_to_json,
)
from netcfg_txn.core.rollback import (
    BouncePlan,
    HookPlan,
    NoNetworkPlan,
    RollbackPlan,
    RollbackStage,
    StackPlan,
)

S = RollbackStage
NOW = Instant("boot-a", 100.0, 1_700_000_000.0)
D = Deadline("boot-a", 220.0, 1_700_000_120.0)
ROOT = Actor(kind="local", uid=0, pid=1, command="netcfg-txn")
BOUNCE = BouncePlan(
    down=("vlan10", "eth1"),
    delete=("vlan10",),
    up=("eth1",),
    unattributed=(),
    reload=True,
    down_ids={"eth1": "Wired connection 1"},
    up_ids={"eth1": "Wired connection 1"},
    notes=("a note",),
)
STACK = RollbackPlan(StackPlan("ifupdown", BOUNCE), unreadable=("/etc/x: EACCES",))
DOWN = StepResult("down", "eth1", True)


def rolling_back(stage: S = S.UNPLANNED, plan: RollbackPlan | None = None) -> Txn:
    t = Txn(TxnId("t1"), Phase.OPEN, NOW, D, 120.0, ROOT, "h" * 64)
    new, _ = txn.step(t, txn.RollbackRequested(ROOT, Reason.MANUAL))
    assert new is not None
    return dataclasses.replace(new, rollback=plan, stage=stage)


# ------------------------------------------------------------------------------- stages


def test_stages_are_in_the_designs_order() -> None:
    assert [s for s in S if s.order > S.PLANNED.order] == [
        S.DOWN,
        S.LINKS_DELETED,
        S.FILES,
        S.RELOADED,
        S.UP,
        S.ROUTES,
        S.VERIFIED,
        S.HOOK,
    ]


def test_planned_records_the_plan_and_what_planning_found_once() -> None:
    archive = StepResult("archive", "/etc/x", False, "EACCES")
    t, effects = txn.step(rolling_back(), txn.Planned(STACK, (archive,)))
    assert t is not None and effects == ()
    assert t.rollback == STACK and t.stage is S.PLANNED and t.results == (archive,)
    again, _ = txn.step(t, txn.Planned(RollbackPlan(NoNetworkPlan()), (archive,)))
    assert again == t  # a resumed rollback keeps its plan and does not repeat the finding


def test_each_stage_done_advances_and_adds_its_results() -> None:
    t: Txn | None = rolling_back(S.PLANNED, STACK)
    for stage in (S.DOWN, S.LINKS_DELETED, S.FILES, S.RELOADED, S.UP, S.ROUTES, S.VERIFIED):
        assert t is not None
        t, effects = txn.step(t, txn.StageDone(stage, (StepResult(stage.value, "x", True),)))
        assert t is not None and t.stage is stage and effects == ()
    assert t is not None and [r.action for r in t.results] == [
        "interfaces-down",
        "links-deleted",
        "files",
        "reloaded",
        "up",
        "routes",
        "verified",
    ]
    assert t.phase is Phase.ROLLING_BACK  # only RollbackDone ends it


def test_files_only_skips_the_live_stages() -> None:
    t, _ = txn.step(rolling_back(S.PLANNED, STACK), txn.StageDone(S.FILES))
    assert t is not None and t.stage is S.FILES


@pytest.mark.parametrize(
    ("current", "done"),
    [(S.UNPLANNED, S.DOWN), (S.FILES, S.FILES), (S.FILES, S.DOWN), (S.PLANNED, S.PLANNED)],
)
def test_a_stage_never_repeats_or_goes_back(current: S, done: S) -> None:
    t = rolling_back(current, STACK if current is not S.UNPLANNED else None)
    with pytest.raises(ValueError, match="cannot follow"):
        txn.step(t, txn.StageDone(done, (DOWN,)))


def test_a_reboot_mid_rollback_keeps_plan_and_stage_but_bounces_nothing() -> None:
    t, effects = txn.step(rolling_back(S.LINKS_DELETED, STACK), txn.Booted())
    assert t is not None and effects == (txn.Restore(live=False),)
    assert t.stage is S.LINKS_DELETED and t.reason is Reason.MANUAL
    assert t.rollback is not None and t.rollback.files_only
    assert t.rollback.network == STACK.network and t.rollback.bounced == ()


def test_the_deadline_names_who_took_over() -> None:
    open_txn = Txn(TxnId("t1"), Phase.OPEN, NOW, D, 120.0, ROOT, "h" * 64)
    backstop = Actor(kind="system", command="backstop")
    t, _ = txn.step(open_txn, txn.DeadlinePassed(by=backstop))
    assert t is not None and t.ended_by == backstop and t.reason is Reason.TIMEOUT


# ------------------------------------------------------------------------------ codecs


@pytest.mark.parametrize(
    "plan",
    [
        STACK,
        RollbackPlan(HookPlan("systemctl restart foo", ("/etc/a", "/etc/b")), files_only=True),
        RollbackPlan(NoNetworkPlan()),
    ],
    ids=["stack", "hook", "none"],
)
@pytest.mark.parametrize("stage", list(S))
def test_round_trip_through_txn_json(plan: RollbackPlan, stage: S) -> None:
    t = dataclasses.replace(rolling_back(stage, plan), results=(DOWN,))
    assert txn_from_json(json.loads(json.dumps(txn_to_json(t)))) == t


def test_the_json_shape_is_the_previous_versions() -> None:
    doc = txn_to_json(rolling_back(S.LINKS_DELETED, STACK))
    assert doc["bounce"] == {
        "backend": "ifupdown",
        "down": ["vlan10", "eth1"],
        "delete": ["vlan10"],
        "up": ["eth1"],
        "unattributed": [],
        "reload": True,
        "down_ids": {"eth1": "Wired connection 1"},
        "up_ids": {"eth1": "Wired connection 1"},
        "notes": ["a note"],
        "unreadable": ["/etc/x: EACCES"],
    }
    hook = txn_to_json(rolling_back(S.PLANNED, RollbackPlan(HookPlan("cmd", ("/etc/a",)))))
    assert hook["bounce"] == {"hook": "cmd", "changed": ["/etc/a"], "unreadable": []}
    assert hook["stage"] == "planned"


# A record exactly as the previous version wrote it: a live rollback interrupted after the
# interfaces went down (its stage "down" also covered deleting the created links).
OLD_RECORD: dict[str, Any] = {
    "version": 1,
    "id": "20261201T101500-a1b2c3",
    "phase": "rolling-back",
    "created": {"boot_id": "b0", "boottime_s": 50.5, "wall_s": 1764584100.0},
    "deadline": {"boot_id": "b0", "boottime_s": 170.5, "wall_s": 1764584220.0},
    "timeout_s": 120.0,
    "actor": {"kind": "local", "uid": 0, "pid": 4242, "command": "netcfg-txn start"},
    "token_sha256": "0" * 64,
    "label": "",
    "file_count": 3,
    "reason": "timeout",
    "ended_by": {"kind": "system", "command": "timer"},
    "ended_wall_s": None,
    "bounce": {
        "backend": "ifupdown",
        "down": ["eth1"],
        "delete": [],
        "up": ["eth1"],
        "unattributed": [],
        "reload": False,
        "down_ids": {},
        "up_ids": {},
        "notes": [],
        "unreadable": [],
    },
    "stage": "down",
    "results": [{"action": "down", "target": "eth1", "ok": True, "error": None}],
    "errors": [],
    "policy": None,
}


def test_a_previous_versions_record_loads_typed() -> None:
    t = txn_from_json(OLD_RECORD)
    assert t.stage is S.LINKS_DELETED  # its next stage is the files
    assert t.rollback == RollbackPlan(
        StackPlan("ifupdown", BouncePlan(("eth1",), (), ("eth1",), (), False))
    )
    assert t.results == (StepResult("down", "eth1", True),)


@pytest.mark.parametrize(
    ("stage", "bounce", "want_stage", "want_network"),
    [
        ("", None, S.UNPLANNED, None),
        ("planned", {"hook": "", "changed": ["/etc/a"], "unreadable": []}, S.PLANNED,
         HookPlan("", ("/etc/a",))),
        ("files", {"hook": "x", "changed": [], "unreadable": [], "files_only": True}, S.FILES,
         HookPlan("x", ())),
    ],
)  # fmt: skip
def test_previous_versions_stages_and_hook_plans(
    stage: str, bounce: dict[str, Any] | None, want_stage: S, want_network: object
) -> None:
    t = txn_from_json({**OLD_RECORD, "stage": stage, "bounce": bounce})
    assert t.stage is want_stage
    if want_network is None:
        assert t.rollback is None
    else:
        assert t.rollback is not None and t.rollback.network == want_network
        assert t.rollback.files_only is bool(bounce and bounce.get("files_only"))


@pytest.mark.parametrize(
    "bounce",
    [
        {"backend": "ifupdown", "down": "eth1", "delete": [], "up": [], "unattributed": [],
         "reload": False},
        {"backend": "ifupdown", "down": [], "delete": [], "up": [], "unattributed": []},
        {"hook": "x", "changed": [1]},
        ["not", "a", "mapping"],
    ],
)  # fmt: skip
def test_a_malformed_plan_is_a_malformed_record(bounce: object) -> None:
    with pytest.raises((KeyError, TypeError, ValueError)):
        txn_from_json({**OLD_RECORD, "bounce": bounce})


def test_an_unknown_stage_is_a_malformed_record() -> None:
    with pytest.raises(ValueError):
        txn_from_json({**OLD_RECORD, "stage": "sideways"})
