# SPDX-License-Identifier: GPL-3.0-or-later
"""End to end: netcfg-txnd inside a real stack's sandbox rolls a broken change back, bouncing only
the interface whose configuration changed (R20-R26, R32, safety rule 5).

For each stack (ifupdown, ifupdown2, networkd, NetworkManager, netplan -> networkd) the daemon
runs in the sandbox with ``--root /`` and ``[apply] backend = "<stack>"``; the change is applied
with the stack's own tool, then the timer expires (or ``rollback`` is called). Throughout the
rollback a 100/s ping across the link that did NOT change must lose nothing and its
``carrier_changes`` must not move; the bounced link's loss is printed next to it (``-s`` shows
the numbers). The host has nct0 192.0.2.1/24 and nct1 198.51.100.1/24 with a static route
203.0.113.0/24 via 198.51.100.2 (the kernel drops it when nct1 goes down: rollback must bring it
back); the peer namespace answers on 192.0.2.2 and 198.51.100.2.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.netns.agent import AgentDaemon, elapsed
from tests.netns.conftest import StackFactory
from tests.netns.stacks import (
    HarnessError,
    Iface,
    PingMeter,
    Route,
    Stack,
    Topology,
    live_mismatches,
    ping,
    run,
    with_iface,
)

pytestmark = [pytest.mark.netns, pytest.mark.timeout(90)]

TIMEOUT_S = 4  # the dead-man timer of the expiry tests
NCT0 = Iface("nct0", ("192.0.2.1/24",))
NCT1 = Iface("nct1", ("198.51.100.1/24",), routes=(Route("203.0.113.0/24", "198.51.100.2"),))
BASE = (NCT0, NCT1)
# Broken: another address, and the route is gone.
NCT1_BROKEN = Iface("nct1", ("198.51.100.11/24",))
# The management address moves: the peer (the admin's side) loses 192.0.2.1.
NCT0_MOVED = Iface("nct0", ("192.0.2.11/24",))
# nct1 becomes the port of a new bridge that takes its address.
BRIDGED = (NCT0, Iface("nctbr1", ("198.51.100.1/24",), bridge_ports=("nct1",)))


@pytest.fixture
def e2e(
    make_stack: StackFactory, stack_name: str, tmp_path: Path
) -> Iterator[tuple[Stack, AgentDaemon]]:
    stack = make_stack(stack_name, BASE)
    with AgentDaemon.run(stack, tmp_path / "agent") as agent:
        yield stack, agent


def ns(stack: Stack) -> str:
    return stack.sandbox.netns


def carrier(stack: Stack) -> dict[str, int]:
    return {n: stack.sandbox.carrier_changes(n) for n in ("nct0", "nct1")}


def peer_reaches(topo_peer: str, addr: str) -> bool:
    p = run(
        ["ip", "netns", "exec", topo_peer, "ping", "-n", "-c", "1", "-W", "1", addr], check=False
    )
    return p.returncode == 0


def generated_nct0(stack: Stack) -> str | None:
    """inode and mtime of netplan's generated file for nct0 (None for the other stacks)."""
    if stack.name != "netplan":
        return None
    path = "/run/systemd/network/10-netplan-nct0.network"
    return stack.sandbox.run(["stat", "-c", "%i %y", path]).stdout.strip()


def start(agent: AgentDaemon, timeout_s: float) -> dict[str, Any]:
    txn: dict[str, Any] = agent.cli("start", "--timeout", f"{timeout_s:g}s")["transaction"]
    return txn


def assert_open(agent: AgentDaemon, txn_id: str) -> None:
    """The meters must start before the deadline, or they would not cover the whole rollback."""
    doc = agent.api("GET", "/v1/status")
    assert doc["state"] == "open" and doc["transaction"]["id"] == txn_id, (
        f"the timer fired before the loss meters ran; raise TIMEOUT_S ({doc['state']})"
    )


@contextlib.contextmanager
def meters(stack: Stack) -> Iterator[tuple[PingMeter, PingMeter]]:
    """100/s pings across both links, each already answering."""
    box = stack.sandbox
    with PingMeter(box, "192.0.2.2") as m0, PingMeter(box, "198.51.100.2") as m1:
        yield m0, m1


def report(
    stack: Stack,
    what: str,
    untouched: str,
    bounced: str,
    m0: PingMeter,
    m1: PingMeter,
    **numbers: float,
) -> tuple[tuple[int, int], tuple[int, int]]:
    """Stop both meters and print the loss of each (``pytest -s`` shows it)."""
    meter_of = {"nct0": m0, "nct1": m1}
    s_u, l_u = meter_of[untouched].stop()
    s_b, l_b = meter_of[bounced].stop()
    extra = "".join(f", {k} {v:.2f}s" for k, v in numbers.items())
    print(
        f"\n[{stack.name}] {what}: untouched {untouched}: {l_u}/{s_u} lost; "
        f"bounced {bounced}: {l_b}/{s_b} lost{extra}"
    )
    return (s_u, l_u), (s_b, l_b)


def rolled_back(entry: dict[str, Any], agent: AgentDaemon) -> None:
    assert entry["phase"] == "rolled-back", f"{entry}\n{agent.log()}"
    assert entry["errors"] == [], f"{entry['errors']}\n{agent.log()}"


# --------------------------------------------------------------------------------------- 1 + 4


def test_timer_expiry_restores_the_broken_link_and_leaves_the_other_alone(
    e2e: tuple[Stack, AgentDaemon],
) -> None:
    stack, agent = e2e
    box = stack.sandbox
    txn = start(agent, TIMEOUT_S)
    t0 = time.monotonic()
    stack.apply(with_iface(BASE, NCT1_BROKEN), only=["nct1"])
    assert live_mismatches(ns(stack), [NCT1_BROKEN]) == []

    # R20/4: before the deadline, `plan` names nct1 only.
    plan = agent.cli("plan")
    assert plan["transaction"] == txn["id"]
    assert "nct1" in plan["interfaces"]["down"] and "nct1" in plan["interfaces"]["up"], plan
    assert not any("nct0" in v for v in plan["interfaces"].values()), plan

    before = carrier(stack)
    generated = generated_nct0(stack)
    with meters(stack) as (m0, m1):
        assert_open(agent, txn["id"])
        entry = agent.wait_ended(txn["id"], TIMEOUT_S + 30)
        took = elapsed(t0)
        stack.wait_configured(BASE)  # rollback verified it; this is the harness's own check
        m1.wait_replies(m1.replies() + 3)  # nct1 answers again
        (sent0, lost0), (sent1, lost1) = report(
            stack,
            "timer expiry",
            "nct0",
            "nct1",
            m0,
            m1,
            rollback=entry["ended_wall_s"] - entry["deadline_wall_s"],
            total=took,
        )
    stack.adopt(BASE)
    rolled_back(entry, agent)
    assert entry["reason"] == "timeout"
    assert lost0 == 0, f"{lost0}/{sent0} pings lost on the untouched nct0"
    assert sent0 > 100  # the meter ran through the rollback (>= 1 s)
    after = carrier(stack)
    assert after["nct0"] == before["nct0"], "nct0 was bounced"
    # NetworkManager's checkpoint re-applies nct1's old address without a carrier change.
    checkpoint = any(r["action"] == "checkpoint" and r["ok"] for r in entry["results"])
    assert after["nct1"] > before["nct1"] or lost1 > 0 or checkpoint, "nct1 was not touched"
    assert live_mismatches(ns(stack), BASE) == []
    ping(box, "198.51.100.2")
    # netplan: nct0's generated .network file was not rewritten (a new mtime alone makes
    # networkd reconfigure the link: the loss above would show it).
    assert generated_nct0(stack) == generated

    # 4: history names the bounced interface, and only it.
    (last,) = agent.cli("history", "--limit", "1")["history"]
    assert last["id"] == txn["id"]
    assert "nct1" in last["bounced"] and "nct0" not in last["bounced"], last


# ------------------------------------------------------------------------------------------- 2


def test_rollback_deletes_a_bridge_the_change_created(e2e: tuple[Stack, AgentDaemon]) -> None:
    stack, agent = e2e
    box = stack.sandbox
    txn = start(agent, 60)
    stack.apply(BRIDGED, only=["nct1", "nctbr1"])
    assert live_mismatches(ns(stack), BRIDGED) == []

    before = carrier(stack)
    with meters(stack) as (m0, m1):
        t0 = time.monotonic()
        agent.cli("rollback")
        took = elapsed(t0)
        entry = agent.wait_ended(txn["id"])
        stack.wait_configured(BASE)
        m1.wait_replies(m1.replies() + 3)
        (sent0, lost0), _ = report(stack, "bridge added", "nct0", "nct1", m0, m1, rollback=took)
    stack.adopt(BASE)
    rolled_back(entry, agent)
    assert "nctbr1" not in box.run(["ip", "-br", "link"]).stdout
    assert live_mismatches(ns(stack), BASE) == []
    assert lost0 == 0, f"{lost0}/{sent0} pings lost on the untouched nct0"
    assert carrier(stack)["nct0"] == before["nct0"]
    assert "nct0" not in entry["bounced"] and "nct1" in entry["bounced"], entry


# ------------------------------------------------------------------------------------------- 3


def test_rollback_recreates_a_removed_config_and_brings_the_link_up(
    e2e: tuple[Stack, AgentDaemon],
) -> None:
    stack, agent = e2e
    box = stack.sandbox
    original = {p: stack.sandbox.path(p).read_bytes() for p in stack.render(BASE)}
    txn = start(agent, 60)
    stack.apply((NCT0,), only=["nct1"])
    # The admin also takes nct1 down (ifdown / nmcli already did, networkd leaves it as it was).
    box.run(["ip", "addr", "flush", "dev", "nct1"])
    box.run(["ip", "link", "set", "nct1", "down"])
    gone = [p for p in original if not stack.sandbox.path(p).exists()]
    assert gone or stack.name in ("ifupdown", "ifupdown2", "netplan")  # stanza, not file

    before = carrier(stack)
    with PingMeter(box, "192.0.2.2") as m0:
        t0 = time.monotonic()
        agent.cli("rollback")
        took = elapsed(t0)
        entry = agent.wait_ended(txn["id"])
        stack.wait_configured(BASE)
        sent0, lost0 = m0.stop()
    print(
        f"\n[{stack.name}] removed config: untouched nct0: {lost0}/{sent0} lost, "
        f"rollback {took:.2f}s"
    )
    stack.adopt(BASE)
    rolled_back(entry, agent)
    for p, data in original.items():
        assert stack.sandbox.path(p).read_bytes() == data, f"{p} not restored"
    assert live_mismatches(ns(stack), BASE) == []
    ping(box, "198.51.100.2")
    assert lost0 == 0 and carrier(stack)["nct0"] == before["nct0"]
    assert entry["bounced"] == ["nct1"], entry


# ------------------------------------------------------------------------------------------- 5


def test_management_address_change_is_undone_by_the_timer(
    e2e: tuple[Stack, AgentDaemon], topology: Topology
) -> None:
    """The peer is the admin's side: the change moves the address it manages the host by."""
    stack, agent = e2e
    assert peer_reaches(topology.peer, "192.0.2.1")
    txn = start(agent, TIMEOUT_S)
    t0 = time.monotonic()
    stack.apply(with_iface(BASE, NCT0_MOVED), only=["nct0"])
    assert not peer_reaches(topology.peer, "192.0.2.1"), "the change did not cut the peer off"

    before = carrier(stack)
    with meters(stack) as (m0, m1):
        assert_open(agent, txn["id"])
        entry = agent.wait_ended(txn["id"], TIMEOUT_S + 30)
        took = elapsed(t0)
        stack.wait_configured(BASE)
        m0.wait_replies(m0.replies() + 3)
        (sent1, lost1), _ = report(
            stack,
            "management address",
            "nct1",
            "nct0",
            m0,
            m1,
            rollback=entry["ended_wall_s"] - entry["deadline_wall_s"],
            total=took,
        )
    stack.adopt(BASE)
    rolled_back(entry, agent)
    try:
        ping(topology.peer, "192.0.2.1", count=3)  # the admin gets the host back
    except HarnessError as e:
        pytest.fail(f"peer cannot reach 192.0.2.1 after the rollback: {e}")
    assert live_mismatches(ns(stack), BASE) == []
    assert lost1 == 0, f"{lost1}/{sent1} pings lost on the untouched nct1"
    assert carrier(stack)["nct1"] == before["nct1"], "nct1 was bounced"
    assert entry["bounced"] == ["nct0"], entry
