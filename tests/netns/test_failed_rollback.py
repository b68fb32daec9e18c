# SPDX-License-Identifier: GPL-3.0-or-later
"""A rollback whose stack tool cannot help, and a rollback that fails, with real ifupdown.

1. The edited file does not parse for ifupdown (``inet statik``) and the admin moved nct1's
   address by hand: ``ifdown nct1`` does nothing. netlink takes nct1 down and strips it, the
   restored config brings it back, and ifupdown's state of the untouched nct0 stays intact.
2. A rollback that fails (its ``[apply]`` hook fails) is retryable the documented way
   (``rollback --force``), and ``status`` exits non-zero until the retry succeeded.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.netns.agent import AgentDaemon
from tests.netns.conftest import StackFactory
from tests.netns.stacks import Iface, agent_command, live_mismatches
from tests.netns.test_rollback_e2e import BASE

pytestmark = [pytest.mark.netns, pytest.mark.timeout(120)]


def sh(agent: AgentDaemon, script: str) -> str:
    return agent.box.run(["sh", "-c", script], check=False).stdout


def test_unparsable_edit_rollback_restores_only_that_link(
    make_stack: StackFactory, tmp_path: Path
) -> None:
    stack = make_stack("ifupdown", BASE)
    with AgentDaemon.run(stack, tmp_path / "agent") as agent:
        agent.cli("start", "--timeout", "60s")
        cfg = stack.sandbox.path("/etc/network/interfaces")
        good = cfg.read_text()
        cfg.write_text(
            good.replace("iface nct1 inet static", "iface nct1 inet statik").replace(
                "198.51.100.1/24", "198.51.100.11/24"
            )
        )
        assert (
            "couldn't read interfaces file" in agent.box.run(["ifdown", "nct1"], check=False).stderr
        )  # what the admin hit: the stack's own tool refuses the file
        agent.box.run(["ip", "addr", "add", "198.51.100.11/24", "dev", "nct1"])
        done = agent.cli("rollback")["transaction"]
        assert done["phase"] == "rolled-back" and done["errors"] == [], (done, agent.log())
        assert any("over netlink" in (r.get("error") or "") for r in done["results"]), done
        assert cfg.read_text() == good
        assert live_mismatches(stack.sandbox.netns, BASE) == []  # addresses and route back
        state = sh(agent, "ifquery --state")
        assert "nct0=nct0" in state and "nct1=nct1" in state, state
        # ifupdown still knows nct0 (the issue: "ifdown nu1: not configured")
        assert "not configured" not in agent.box.run(["ifdown", "nct0"], check=False).stderr
        assert "nct0=nct0" not in sh(agent, "ifquery --state")


def test_failed_rollback_is_retried_with_force_and_status_says_so(
    make_stack: StackFactory, tmp_path: Path
) -> None:
    stack = make_stack("ifupdown", BASE)
    marker = tmp_path / "hook-fails"
    marker.touch()
    hook = f'command = "test ! -e {marker}"\n'
    with AgentDaemon.run(stack, tmp_path / "agent", extra_config=hook) as agent:

        def status_rc() -> int:
            argv = agent_command("netcfg-txn", "--socket", str(agent.sock), "status")
            return agent.box.run(argv, env=agent.env, check=False).returncode

        agent.cli("start", "--timeout", "60s")
        stack.apply([*BASE[:1], Iface("nct1", ("198.51.100.11/24",))], ["nct1"])
        failed = agent.cli("rollback", check=False)
        assert failed["ok"] is False and failed["error"]["code"] == "failed", failed
        first = failed["error"]["details"]["transaction"]
        assert first["phase"] == "failed" and any("hook" in e for e in first["errors"]), first
        assert status_rc() == 1
        assert agent.cli("status", check=False)["last"]["outcome"] == "failed"
        marker.unlink()  # the cause is fixed
        retried = agent.cli("rollback", "--force")["transaction"]
        assert retried["phase"] == "rolled-back" and retried["errors"] == [], retried
        assert retried["id"] != first["id"] and first["id"] in retried["label"]
        assert retried["reason"] == "forced"
        assert status_rc() == 0
        assert live_mismatches(stack.sandbox.netns, BASE) == []
        hist = agent.cli("history")["history"]
        assert [h["phase"] for h in hist[:2]] == ["rolled-back", "failed"], hist
        # nothing left to retry: the documented error, not a second retry
        again = agent.cli("rollback", "--force", check=False)
        assert again["ok"] is False and again["error"]["code"] == "no-transaction", again
