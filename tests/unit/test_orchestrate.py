# SPDX-License-Identifier: GPL-3.0-or-later
"""The R51 orchestration pattern against fake hosts that record every call in one shared log."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest

from netcfg_txn.errors import BadToken, NoTransaction, Unavailable
from netcfg_txn.orchestrate import Host, Orchestrator, Plan, batches


class Fleet:
    def __init__(self, **faults: str) -> None:
        self.faults = faults  # "h2": "start" | "apply" | "verify" | "confirm" | "rollback"
        self.log: list[tuple[str, str]] = []
        self.phase: dict[str, str] = {}
        self.lock = threading.Lock()
        self.active_applies = 0
        self.max_parallel = 0

    def record(self, host: str, op: str) -> None:
        with self.lock:
            self.log.append((host, op))

    def client(self, target: str) -> FakeHost:
        return FakeHost(self, target)

    def apply(self, h: Host) -> None:
        with self.lock:
            self.active_applies += 1
            self.max_parallel = max(self.max_parallel, self.active_applies)
        try:
            self.record(h.target, "apply")
            time.sleep(0.02)
            if self.faults.get(h.target) == "apply":
                raise RuntimeError("exit 1: networkctl: failed")
            if self.faults.get(h.target) == "cut":
                self.faults[h.target] = "verify"  # the change cut us off
        finally:
            with self.lock:
                self.active_applies -= 1

    def ops(self, op: str) -> list[str]:
        return [h for h, o in self.log if o == op]


class FakeHost:
    def __init__(self, fleet: Fleet, target: str) -> None:
        self.fleet, self.t = fleet, target

    def start(
        self,
        timeout: str | None = None,
        label: str | None = None,
        probes: Sequence[str] = (),
        policy: str = "manual",
        arm: bool = True,
    ) -> dict[str, Any]:
        self.fleet.record(self.t, "start")
        if self.fleet.faults.get(self.t) == "start":
            raise Unavailable(f"connection refused by {self.t}:7468")
        self.fleet.phase[self.t] = "open"
        return {"transaction": {"id": f"txn-{self.t}", "phase": "open"}, "token": f"tok-{self.t}"}

    def get(self, txn_id: str, txn_token: str | None = None) -> dict[str, Any]:
        self.fleet.record(self.t, "get")
        assert txn_token == f"tok-{self.t}"
        if self.fleet.faults.get(self.t) == "verify":
            raise Unavailable(f"{self.t}:7468: no answer within 10s")
        return {"transaction": {"id": txn_id, "phase": self.fleet.phase[self.t]}}

    def confirm(self, txn_id: str, txn_token: str) -> dict[str, Any]:
        self.fleet.record(self.t, "confirm")
        if self.fleet.faults.get(self.t) == "confirm":
            raise BadToken("wrong token")
        self.fleet.phase[self.t] = "committed"
        return {"transaction": {"id": txn_id, "phase": "committed"}}

    def rollback(self, txn_id: str, txn_token: str) -> dict[str, Any]:
        self.fleet.record(self.t, "rollback")
        if self.fleet.faults.get(self.t) in ("rollback", "verify"):
            raise Unavailable("unreachable")
        if self.fleet.phase.get(self.t) != "open":
            raise NoTransaction(f"transaction {txn_id} already ended")
        self.fleet.phase[self.t] = "rolled-back"
        return {"transaction": {"id": txn_id, "phase": "rolled-back"}}


def _run(fleet: Fleet, targets: list[str], removed: set[str] | None = None, **plan: Any) -> Any:
    gone = removed if removed is not None else set()
    orch = Orchestrator(
        fleet.client,
        fleet.apply,
        Plan(**{"verify_timeout_s": 0.05, "verify_interval_s": 0.01, **plan}),
        still_targeted=lambda t: t not in gone,
        sleep=lambda s: time.sleep(min(s, 0.01)),
    )
    return orch.run(targets)


def _states(result: Any) -> dict[str, str]:
    return {h.target: h.state for h in result.hosts}


def test_batches() -> None:
    assert batches(["a", "b", "c"], 0) == [["a", "b", "c"]]
    assert batches(["a", "b", "c"], 2) == [["a", "b"], ["c"]]
    assert batches([], 0) == []


def test_all_good_one_batch_concurrency_one() -> None:
    fleet = Fleet()
    r = _run(fleet, ["h1", "h2", "h3"])
    assert r.ok and r.batches_confirmed == 1
    assert _states(r) == {"h1": "committed", "h2": "committed", "h3": "committed"}
    assert fleet.max_parallel == 1
    # all started before any apply; all verified before any confirm
    kinds = [op for _, op in fleet.log]
    assert kinds == ["start"] * 3 + ["apply"] * 3 + ["get"] * 3 + ["confirm"] * 3


def test_concurrency_limit_is_respected() -> None:
    fleet = Fleet()
    r = _run(fleet, [f"h{i}" for i in range(6)], concurrency=3)
    assert r.ok and fleet.max_parallel == 3


def test_start_failure_aborts_started_ones() -> None:
    fleet = Fleet(h2="start")
    r = _run(fleet, ["h1", "h2", "h3"])
    assert not r.ok and "start failed on h2" in r.error
    assert _states(r) == {"h1": "rolled-back", "h2": "failed", "h3": "pending"}
    assert fleet.ops("apply") == [] and fleet.ops("start") == ["h1", "h2"]
    assert fleet.ops("rollback") == ["h1"]


def test_apply_failure_rolls_back_whole_batch_and_stops() -> None:
    fleet = Fleet(h1="apply")
    r = _run(fleet, ["h1", "h2", "h3"])
    assert not r.ok and "apply failed on h1: exit 1" in r.error
    assert fleet.ops("apply") == ["h1"]  # nothing more was begun after the failure
    assert sorted(fleet.ops("rollback")) == ["h1", "h2", "h3"]
    assert fleet.ops("confirm") == []
    assert _states(r)["h2"] == "rolled-back" and _states(r)["h1"] == "failed"


def test_unreachable_after_change_rolls_back_everyone_and_leaves_it_to_the_timer() -> None:
    fleet = Fleet(h2="cut")
    r = _run(fleet, ["h1", "h2"])
    assert not r.ok and "h2 not reachable after the change" in r.error
    assert fleet.ops("confirm") == []  # nobody committed: the batch is all-or-nothing
    assert fleet.phase["h1"] == "rolled-back"
    h2 = next(h for h in r.hosts if h.target == "h2")
    assert h2.state == "failed" and "dead-man timer" in (h2.note or "")
    assert len(fleet.ops("get")) >= 3  # retried for verify_timeout_s


def test_batches_wait_for_the_previous_confirm() -> None:
    fleet = Fleet()
    r = _run(fleet, ["h1", "h2", "h3"], batch_size=2)
    assert r.ok and r.batches_confirmed == 2
    confirms = [i for i, (h, op) in enumerate(fleet.log) if op == "confirm" and h in ("h1", "h2")]
    last_confirm_batch1 = max(confirms)
    first_h3 = min(i for i, (h, _) in enumerate(fleet.log) if h == "h3")
    assert first_h3 > last_confirm_batch1


def test_failure_in_second_batch_leaves_first_committed() -> None:
    fleet = Fleet(h3="apply")
    r = _run(fleet, ["h1", "h2", "h3", "h4"], batch_size=2)
    assert not r.ok and r.batches_confirmed == 1
    assert _states(r) == {"h1": "committed", "h2": "committed", "h3": "failed", "h4": "rolled-back"}


def test_confirm_failure_rolls_back_the_rest() -> None:
    fleet = Fleet(h2="confirm")
    r = _run(fleet, ["h1", "h2", "h3"])
    assert not r.ok and "confirm failed on h2" in r.error
    assert "already committed, not undone: h1" in r.error
    assert _states(r) == {"h1": "committed", "h2": "failed", "h3": "rolled-back"}


def test_removed_host_is_not_a_failure() -> None:
    removed: set[str] = set()
    fleet = Fleet()

    def apply_and_remove(h: Host) -> None:
        fleet.apply(h)
        removed.add("h2")  # an operator drops h2 from the target set mid-run

    orch = Orchestrator(
        fleet.client,
        apply_and_remove,
        Plan(verify_timeout_s=0.05),
        still_targeted=lambda t: t not in removed,
    )
    r = orch.run(["h1", "h2", "h3"])
    assert r.ok, r.error
    assert _states(r) == {"h1": "committed", "h2": "removed", "h3": "committed"}
    assert fleet.ops("rollback") == ["h2"] and "h2" not in fleet.ops("apply")
    removed_before = Fleet()
    r2 = _run(removed_before, ["h1", "h2"], removed={"h2"})
    assert r2.ok and _states(r2) == {"h1": "committed", "h2": "removed"}
    assert "h2" not in removed_before.ops("start")


def test_json_never_contains_tokens() -> None:
    fleet = Fleet()
    r = _run(fleet, ["h1"])
    doc = r.to_json()
    assert "tok-h1" not in str(doc) and doc["hosts"][0]["txn_id"] == "txn-h1"


@pytest.mark.parametrize("fault", ["rollback"])
def test_unacknowledged_rollback_is_reported(fault: str) -> None:
    fleet = Fleet(h1=fault, h2="apply")
    r = _run(fleet, ["h1", "h2"])
    h1 = next(h for h in r.hosts if h.target == "h1")
    assert not r.ok and "dead-man timer" in (h1.note or "")
