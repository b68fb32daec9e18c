# SPDX-License-Identifier: GPL-3.0-or-later
"""NetworkManager's checkpoint as the live part of a rollback, with real NM in a namespace.

The daemon takes an NM checkpoint at ``start`` and, at the deadline, restores the live state with
``CheckpointRollback`` (no down/up of the links it restored), then restores the files and reloads
as always. A NetworkManager restarted during the transaction has lost the checkpoint: the
rollback must then take the ordinary down/up path and still restore everything. A commit must
destroy the checkpoint, or NM would revert the kept change later by itself.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.netns.agent import AgentDaemon
from tests.netns.conftest import StackFactory
from tests.netns.stacks import (
    HarnessError,
    Iface,
    NetworkManagerStack,
    Stack,
    live_mismatches,
    stop_process,
    wait_until,
    with_iface,
)

pytestmark = [pytest.mark.netns, pytest.mark.timeout(120)]

TIMEOUT_S = 4
BASE = (Iface("nct0", ("192.0.2.1/24",)), Iface("nct1", ("198.51.100.1/24",)))
BROKEN = with_iface(BASE, Iface("nct1", ("198.51.100.11/24",)))
NM = "org.freedesktop.NetworkManager"
KEYFILE = "/etc/NetworkManager/system-connections/nct1.nmconnection"


@pytest.fixture
def nm(make_stack: StackFactory, tmp_path: Path) -> Iterator[tuple[Stack, AgentDaemon]]:
    stack = make_stack("NetworkManager", BASE)
    with AgentDaemon.run(stack, tmp_path / "agent") as agent:
        yield stack, agent


def checkpoints(stack: Stack) -> list[str]:
    p = stack.sandbox.run(
        ["busctl", "--system", "--json=short", "get-property", NM, "/" + NM.replace(".", "/"),
         NM, "Checkpoints"]
    )  # fmt: skip
    found: list[str] = json.loads(p.stdout)["data"]
    return found


def record(agent: AgentDaemon) -> Path:
    return agent.state / "nm-checkpoint.json"


def expire(stack: Stack, agent: AgentDaemon, txn_id: str) -> dict[str, Any]:
    entry = agent.wait_ended(txn_id, TIMEOUT_S + 60)
    assert entry["phase"] == "rolled-back", f"{entry}\n{agent.log()}"
    assert entry["errors"] == [], f"{entry['errors']}\n{agent.log()}"
    stack.wait_configured(BASE, 30)
    assert live_mismatches(stack.sandbox.netns, BASE) == []
    return entry


def steps(entry: dict[str, Any]) -> list[tuple[str, str, bool]]:
    return [(r["action"], r["target"], r["ok"]) for r in entry["results"]]


def test_the_checkpoint_restores_the_live_state_without_a_bounce(
    nm: tuple[Stack, AgentDaemon],
) -> None:
    stack, agent = nm
    box = stack.sandbox
    original = box.path(KEYFILE).read_bytes()
    txn = agent.cli("start", "--timeout", f"{TIMEOUT_S}s")["transaction"]
    assert checkpoints(stack), "no checkpoint taken at start"
    assert json.loads(record(agent).read_text())["txn"] == txn["id"]
    before = {n: box.carrier_changes(n) for n in ("nct0", "nct1")}
    stack.apply(BROKEN, only=["nct1"])
    entry = expire(stack, agent, txn["id"])
    done = steps(entry)
    assert any(a == "checkpoint" and ok for a, _, ok in done), done
    assert not any(a in ("down", "up") for a, _, _ in done), f"bounced anyway: {done}"
    assert box.path(KEYFILE).read_bytes() == original, "the keyfile was not restored"
    after = {n: box.carrier_changes(n) for n in ("nct0", "nct1")}
    assert after == before, "a link was bounced"
    assert checkpoints(stack) == [] and not record(agent).exists()


def restart_networkmanager(stack: Stack) -> None:
    box = stack.sandbox
    nms = [
        p
        for p in box._children
        if isinstance(p.args, list) and "NetworkManager" in p.args and p.poll() is None
    ]
    assert len(nms) == 1, nms
    stop_process(nms[0])
    box.popen(["NetworkManager", "--no-daemon"], name="NetworkManager")
    assert isinstance(stack, NetworkManagerStack)

    def running() -> bool:
        p = box.run(["nmcli", "-t", "-f", "RUNNING", "general"], check=False)
        return p.returncode == 0 and p.stdout.strip() == "running"

    wait_until("NetworkManager back on the bus", running, 20)


def test_a_restarted_networkmanager_without_the_checkpoint_is_still_rolled_back(
    nm: tuple[Stack, AgentDaemon],
) -> None:
    stack, agent = nm
    txn = agent.cli("start", "--timeout", f"{TIMEOUT_S + 6}s")["transaction"]
    stack.apply(BROKEN, only=["nct1"])
    restart_networkmanager(stack)
    with contextlib.suppress(HarnessError):  # the rollback must restore whatever NM did
        stack.wait_configured(BROKEN, 20)  # NM comes back with the changed profile
    assert checkpoints(stack) == [], "the checkpoint survived a restart of NetworkManager"
    entry = expire(stack, agent, txn["id"])
    done = steps(entry)
    assert not any(a == "checkpoint" for a, _, _ in done), done
    assert ("up", "nct1", True) in done, done
    assert not record(agent).exists()


def test_commit_destroys_the_checkpoint(nm: tuple[Stack, AgentDaemon]) -> None:
    stack, agent = nm
    txn = agent.cli("start", "--timeout", "60s")["transaction"]
    assert len(checkpoints(stack)) == 1
    stack.apply(BROKEN, only=["nct1"])
    agent.cli("commit")
    assert checkpoints(stack) == [], "NetworkManager would revert the kept change by itself"
    assert not record(agent).exists()
    assert agent.history_entry(txn["id"]) is not None
    assert live_mismatches(stack.sandbox.netns, BROKEN) == []
