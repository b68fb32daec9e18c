# SPDX-License-Identifier: GPL-3.0-or-later
"""The engine tells its backstop about a commit *before* the commit point (NetworkManager's
checkpoint must be destroyed while the transaction is still open: a crash right after the commit
point must not leave NM to revert a kept change), and a failed commit leaves it open."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from netcfg_txn.core.model import Phase, Txn
from netcfg_txn.engine import Backstop
from tests.fakeroot.conftest import ROOT_ACTOR, Env


class Recording(Backstop):
    def __init__(self, state: Path) -> None:
        self.state = state
        self.events: list[tuple[str, str]] = []

    def arm(self, t: Txn, grace_s: float) -> bool:
        self.events.append(("arm", t.phase.value))
        return True

    def before_commit(self, t: Txn) -> None:
        on_disk = (self.state / "txn.json").read_text()
        self.events.append(("before_commit", "open" if '"open"' in on_disk else on_disk))

    def disarm(self, txn_id: str) -> None:
        self.events.append(("disarm", "gone" if not (self.state / "txn.json").exists() else "?"))


def test_before_commit_runs_while_the_record_is_still_open(
    make_env: Callable[..., Env],
) -> None:
    env = make_env()
    env.write("/etc/network/interfaces", "auto lo\niface lo inet loopback\n")
    rec = Recording(env.state)
    env.engine.backstop = rec
    t, token = env.engine.start(ROOT_ACTOR, timeout_s=60)
    env.write("/etc/network/interfaces", "auto lo\niface lo inet loopback\n# changed\n")
    done, _ = env.engine.commit(ROOT_ACTOR, token=token)
    assert done.phase is Phase.COMMITTED
    assert rec.events == [("arm", "open"), ("before_commit", "open"), ("disarm", "gone")]
