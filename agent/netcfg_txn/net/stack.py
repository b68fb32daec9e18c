# SPDX-License-Identifier: GPL-3.0-or-later
"""Live rollback that bounces only the interfaces whose configuration changed.

``StackNetwork`` implements ``network.Network`` with one backend (ifupdown, networkd, NM, ...)
and netlink (``links``): the plan (a ``StackPlan``) is computed before any file is touched and
persisted by the engine; interfaces go down while their current config still exists, links only
the new config created are deleted, files are restored, the stack reloads, the interfaces come up
from the restored config, dropped routes are re-added, and the result is verified against the
snapshot. The ``[apply] command``, if any, runs last.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import PurePosixPath
from typing import Any

from netcfg_txn.core.model import StepResult
from netcfg_txn.core.rollback import BouncePlan, NetworkPlan, StackPlan
from netcfg_txn.host.runner import Runner, run
from netcfg_txn.net.affected import FileChange, plan_bounce
from netcfg_txn.net.announce import announce
from netcfg_txn.net.backends import ApplyConfig, Backend, Stack, get_backend
from netcfg_txn.net.links import Links
from netcfg_txn.net.livestate import LiveState, verify
from netcfg_txn.net.network import LiveJson, UnchangedFiles, run_command_hook
from netcfg_txn.net.nmcheckpoint import NmCheckpoint

log = logging.getLogger(__name__)

# networkd and NetworkManager apply asynchronously: wait this long for the live state to match.
SETTLE_S = 10.0
# ... polled this often: the restored addresses are announced to peers as soon as they match.
SETTLE_POLL_S = 0.02
HOOK_TIMEOUT_S = 120.0
# ... and give such a stack this long to re-add the routes of its restored config itself before
# we add the ones still missing: until its addresses are back a gateway is unreachable
# (ENETUNREACH), and a route we add is foreign to the stack.
ROUTE_GRACE_S = 2.0


def foreign_stacks(active: Backend, paths: Iterable[PurePosixPath]) -> dict[PurePosixPath, str]:
    """Changed files that are another stack's configuration (an ifupdown file on a networkd
    host): the active stack's tools cannot say which interfaces they touch."""
    out: dict[PurePosixPath, str] = {}
    for path in paths:
        for stack in Stack:
            if stack in (Stack.COMMAND, active.stack):
                continue
            if get_backend(stack, ApplyConfig()).owns(path):
                out[path] = stack.value
                break
    return out


class StackNetwork:
    def __init__(
        self,
        backend: Backend,
        settings: ApplyConfig,
        *,
        hook: str = "",
        runner: Runner = run,
        links: Callable[[], Links] = Links,
        settle_s: float = SETTLE_S,
        route_grace_s: float = ROUTE_GRACE_S,
    ) -> None:
        self.backend = backend
        self.name = backend.stack.value
        self._settings = settings
        self._hook = hook
        self._run = runner
        self._links = links
        self._settle_s = settle_s
        self._route_grace_s = route_grace_s if backend.asynchronous else 0.0
        self._forget: list[str] = []  # links taken down over netlink by this rollback
        self._gone: list[str] = []  # links to take down that were not there
        self._settle_until: float | None = None  # when verify stops waiting (set by the routes)
        # NetworkManager only: its checkpoint restores the live state first (set by assemble).
        self.checkpoint: NmCheckpoint | None = None
        # Links the checkpoint restored: no down/up for them. In memory only: a rollback resumed
        # by another process bounces them as usual, which is correct, only slower.
        self._restored: set[str] = set()

    def problem(self) -> str | None:
        return self.backend.why_unusable(self._run)

    def capture(self) -> Mapping[str, Any] | None:
        if self.checkpoint is not None:
            self.checkpoint.prepare()
        with self._links() as ln:
            return ln.capture().to_json()

    def plan(self, changes: Sequence[FileChange], unchanged: UnchangedFiles) -> NetworkPlan:
        owned = [c for c in changes if self.backend.owns(c.path)]
        context = list(unchanged(self.backend.owns))  # ties (bridge ports, precedence) of the rest
        with self._links() as ln:
            live = ln.names()
        mine = {c.path for c in owned}
        foreign = foreign_stacks(self.backend, [c.path for c in changes if c.path not in mine])
        bp = plan_bounce(
            self.backend, [*owned, *context], live, self._settings.fallback, foreign=foreign
        )
        for note in bp.notes:
            log.warning("rollback plan: %s", note)
        return StackPlan(self.name, bp)

    def accepts(self, plan: NetworkPlan) -> bool:
        return isinstance(plan, StackPlan)

    def down(self, plan: NetworkPlan) -> list[StepResult]:
        bp = _bounce(plan)
        results = self._checkpoint_rollback(bp)
        down = [n for n in bp.down if n not in self._restored]
        return results + self._fall_back_to_netlink(
            self.backend.down(down, self._run, connection_ids=bp.down_ids)
        )

    def _checkpoint_rollback(self, bp: BouncePlan) -> list[StepResult]:
        """NetworkManager's checkpoint restores every device's live state in one call; the
        devices it restored need no down/up (the files are restored and reloaded as always).

        Not when a link is to get its addresses back over netlink: NM restores a bridge whose
        address differs by re-activating it, which detaches its ports (and recreates a VLAN
        port), the very bounce the readdress avoids."""
        self._restored = set()
        if bp.readdress and self.checkpoint is not None:
            self.checkpoint.discard()
            return []
        done = self.checkpoint.rollback() if self.checkpoint is not None else None
        if done is None:
            return []
        steps, self._restored = done
        return steps

    def delete_created_links(self, plan: NetworkPlan) -> list[StepResult]:
        bp = _bounce(plan)
        results: list[StepResult] = []
        if bp.delete:
            with self._links() as ln:
                existing = ln.names()
                for name in bp.delete:
                    done = ln.delete(name) if name in existing else None
                    # ifdown/nmcli may already have removed it, NetworkManager a moment later
                    if done is None or not done.ok and name not in ln.names():
                        done = StepResult("delete-link", name, True)
                    results.append(done)
        return results

    def _fall_back_to_netlink(self, downs: list[StepResult]) -> list[StepResult]:
        """A link the stack's tool could not take down (its new config does not parse, so
        ``ifdown`` does nothing) is taken down and stripped of its addresses over netlink, or
        ``ifup`` from the restored config would find them and fail. The stack's state for it
        is cleared once the files are back (``forget``, before the reload); nothing else is
        touched."""
        out: list[StepResult] = []
        for r in downs:
            if r.ok or r.action != "down":
                out.append(r)
                continue
            with self._links() as ln:
                gone = r.target not in ln.names()
                fallback = ln.take_down(r.target) if not gone else r
            if gone:  # nothing to take down (the change deleted it): the goal is reached
                self._gone.append(r.target)
                out.append(StepResult("down", r.target, True, f"not present ({r.error})"))
                continue
            if not fallback.ok:
                out += [r, fallback]
                continue
            log.warning("%s: %s; taken down over netlink instead", r.target, r.error)
            self._forget.append(r.target)
            out.append(StepResult("down", r.target, True, f"over netlink ({r.error})"))
        return out

    def reload(self, plan: NetworkPlan) -> list[StepResult]:
        bp = _bounce(plan)
        results: list[StepResult] = []
        if self._forget:
            results += self.backend.forget(self._forget, self._run)
            self._forget = []
        # deleted by this rollback, or by the change itself: the reload creates them anew
        gone = {*bp.delete, *self._gone}
        self._gone = []
        if recreated := [n for n in bp.up if n in gone]:
            results += self.backend.recreated(recreated, self._run)
        if bp.reload:
            results += self.backend.reload(self._run)
        return results

    def up(self, plan: NetworkPlan) -> list[StepResult]:
        bp = _bounce(plan)
        up = [n for n in bp.up if n not in self._restored]
        self._restored = set()
        return self.backend.up(up, self._run, connection_ids=bp.up_ids)

    def restore_routes(self, plan: NetworkPlan, live: LiveJson) -> list[StepResult]:
        """Re-add the routes the bounce dropped, once the restored interfaces settled.

        A synchronous stack (ifup) is done when its command returns: missing routes are re-added
        at once. An asynchronous one (networkd, NetworkManager) gets ``route_grace_s`` to add
        them itself first; after that, missing routes are retried on every poll until the
        interfaces match the snapshot, and a failure counts only if they never do.
        """
        bp = _bounce(plan)
        results = self._readdress(bp.readdress, live) if bp.readdress else []
        if live is None or not (bp.up or bp.readdress):
            return results
        snapshot = LiveState.from_json(live)
        bounced, names = _settled(bp, snapshot)
        ports = set(names) - bounced
        t0 = time.monotonic()
        self._settle_until = t0 + self._settle_s
        grace = t0 + self._route_grace_s
        routes: dict[str, StepResult] = {}  # by route, the latest attempt
        while True:
            with self._links() as ln:
                mismatches = verify(snapshot, ln.capture(), names)
                attempts = ln.reattach(snapshot, bounced, bounced) if mismatches and ports else []
                if mismatches and time.monotonic() >= grace:
                    attempts += ln.restore_mtu(snapshot, [n for n in bp.up if n in bounced])
                    attempts += ln.restore_routes(snapshot, names)
                routes.update((r.target, r) for r in attempts)
                if attempts:
                    mismatches = verify(snapshot, ln.capture(), names)
            if not mismatches or time.monotonic() >= self._settle_until:
                break
            time.sleep(SETTLE_POLL_S)
        return results + [r for r in routes.values() if r.ok or mismatches]

    def _readdress(self, names: Sequence[str], live: LiveJson) -> list[StepResult]:
        """Links whose addresses alone changed: set the snapshot's addresses back over netlink
        (nothing is taken down, so a bridge keeps its ports), then let the stack catch up."""
        if live is None:
            return [
                StepResult("readdress", n, False, "no live snapshot: addresses not restored")
                for n in names
            ]
        with self._links() as ln:
            results = ln.readdress(LiveState.from_json(live), names)
        return results + self.backend.readdressed(names, self._run)

    def verify(self, plan: NetworkPlan, live: LiveJson) -> list[StepResult]:
        """Poll until the restored interfaces match the snapshot (within the time left since the
        routes stage began), then report each remaining mismatch."""
        bp = _bounce(plan)
        if live is None or not (bp.up or bp.readdress):
            return []
        snapshot = LiveState.from_json(live)
        _, names = _settled(bp, snapshot)  # unlisted ports were re-attached with the routes
        until = self._settle_until or time.monotonic() + self._settle_s
        self._settle_until = None
        while True:
            with self._links() as ln:
                mismatches = verify(snapshot, ln.capture(), names)
            if not mismatches or time.monotonic() >= until:
                break
            time.sleep(SETTLE_POLL_S)
        if not mismatches:
            for name in names:  # peers that gave up on the addresses reach them at once
                link = snapshot.link(name)
                v4 = [a.address for a in snapshot.addrs_of(name) if a.family == socket.AF_INET]
                announce(name, link.mac if link is not None else None, sorted(v4))
            return [StepResult("verify", " ".join(names), True)]
        for m in mismatches:
            log.error("after rollback: %s", m)
        return [StepResult("verify", m.split(":", 1)[0], False, m) for m in mismatches]

    def run_hook(self, plan: NetworkPlan) -> list[StepResult]:
        bp = _bounce(plan)
        if self._hook and (bp.down or bp.up or bp.unattributed or bp.readdress):
            return [run_command_hook(self._hook, self._run, HOOK_TIMEOUT_S)]
        return []


def _settled(bp: BouncePlan, snapshot: LiveState) -> tuple[set[str], list[str]]:
    """The links the rollback set back (bounced or readdressed), and those plus the ports of a
    bounced bridge or bond that no config lists (a VM's tap): recreating the controller dropped
    them, and no stack will enslave them again."""
    bounced = {*bp.up, *bp.readdress}
    ports = {link.name for link in snapshot.links if link.master in bounced}
    return bounced, sorted(bounced | ports)


def _bounce(plan: NetworkPlan) -> BouncePlan:
    """The stages run only a plan ``accepts`` took; anything else is a bug, said loudly."""
    if not isinstance(plan, StackPlan):
        raise TypeError(f"a stack backend cannot carry out a {plan.kind} plan")
    return plan.bounce
