# SPDX-License-Identifier: GPL-3.0-or-later
"""A changed file of another stack than the active one (an ifupdown file on a networkd host) is
named in the log and the rollback plan, and ``[apply] fallback`` applies to it (here "reload":
``networkctl reload``); the file itself is restored like any managed file."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.netns.agent import AgentDaemon
from tests.netns.conftest import StackFactory
from tests.netns.stacks import live_mismatches
from tests.netns.test_rollback_e2e import BASE

pytestmark = [pytest.mark.netns, pytest.mark.timeout(120)]


def test_other_stacks_file_is_logged_and_gets_the_fallback(
    make_stack: StackFactory, tmp_path: Path
) -> None:
    stack = make_stack("networkd", BASE)
    foreign = stack.sandbox.path("/etc/network/interfaces")
    foreign.parent.mkdir(parents=True, exist_ok=True)
    foreign.write_text("auto lo\niface lo inet loopback\n")
    with AgentDaemon.run(stack, tmp_path / "agent") as agent:
        agent.cli("start", "--timeout", "60s")
        foreign.write_text("auto lo\niface lo inet loopback\n\nauto nct1\niface nct1 inet dhcp\n")
        plan = agent.cli("plan")
        assert plan["unattributed"] == ["/etc/network/interfaces"], plan
        assert any("configuration of ifupdown, not of the active stack networkd" in n
                   for n in plan["notes"]), plan  # fmt: skip
        done = agent.cli("rollback")["transaction"]
        assert done["phase"] == "rolled-back", (done, agent.log())
        assert [r["action"] for r in done["results"]].count("reload") == 1, done["results"]
        log = agent.log(200)
        assert "/etc/network/interfaces: configuration of ifupdown" in log, log
        assert "fallback reload" in log
        assert foreign.read_text() == "auto lo\niface lo inet loopback\n"
        assert live_mismatches(stack.sandbox.netns, BASE) == []
