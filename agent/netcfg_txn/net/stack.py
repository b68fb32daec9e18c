# SPDX-License-Identifier: GPL-3.0-or-later
"""Live rollback that bounces only the interfaces whose configuration changed.

``StackNetwork`` implements ``network.Network`` with one backend (ifupdown, networkd, NM, ...)
and netlink (``links``): the plan is computed before any file is touched and persisted by the
engine; interfaces go down while their current config still exists, links only the new config
created are deleted, files are restored, the stack reloads, the interfaces come up from the
restored config, dropped routes are re-added, and the result is verified against the snapshot.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import PurePosixPath
from typing import Any

from netcfg_txn.core.model import StepResult
from netcfg_txn.host.runner import Runner, run
from netcfg_txn.net.affected import BouncePlan, FileChange, plan_bounce
from netcfg_txn.net.backends import ApplyConfig, Backend, Stack, get_backend
from netcfg_txn.net.links import Links
from netcfg_txn.net.livestate import LiveState, verify
from netcfg_txn.net.network import UnchangedFiles, run_hook

log = logging.getLogger(__name__)

# networkd and NetworkManager apply asynchronously: wait this long for the live state to match.
SETTLE_S = 10.0
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

    def problem(self) -> str | None:
        return self.backend.why_unusable(self._run)

    def capture(self) -> Mapping[str, Any] | None:
        with self._links() as ln:
            return ln.capture().to_json()

    def plan(self, changes: Sequence[FileChange], unchanged: UnchangedFiles) -> Mapping[str, Any]:
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
        return {"backend": self.name, **bp.to_json()}

    def before_restore(self, plan: Mapping[str, Any]) -> list[StepResult]:
        bp = BouncePlan.from_json(plan)
        results = self._fall_back_to_netlink(
            self.backend.down(bp.down, self._run, connection_ids=bp.down_ids)
        )
        if bp.delete:
            with self._links() as ln:
                existing = ln.names()
                for name in bp.delete:
                    if name in existing:  # ifdown/nmcli may already have removed it
                        results.append(ln.delete(name))
                    else:
                        results.append(StepResult("delete-link", name, True))
        return results

    def _fall_back_to_netlink(self, downs: list[StepResult]) -> list[StepResult]:
        """A link the stack's tool could not take down (its new config does not parse, so
        ``ifdown`` does nothing) is taken down and stripped of its addresses over netlink, or
        ``ifup`` from the restored config would find them and fail. The stack's state for it
        is cleared once the files are back (``forget``); nothing else is touched."""
        out: list[StepResult] = []
        for r in downs:
            if r.ok or r.action != "down":
                out.append(r)
                continue
            with self._links() as ln:
                fallback = ln.take_down(r.target)
            if not fallback.ok:
                out += [r, fallback]
                continue
            log.warning("%s: %s; taken down over netlink instead", r.target, r.error)
            self._forget.append(r.target)
            out.append(StepResult("down", r.target, True, f"over netlink ({r.error})"))
        return out

    def after_restore(
        self, plan: Mapping[str, Any], live: Mapping[str, Any] | None
    ) -> list[StepResult]:
        bp = BouncePlan.from_json(plan)
        results: list[StepResult] = []
        if self._forget:
            results += self.backend.forget(self._forget, self._run)
            self._forget = []
        if bp.reload:
            results += self.backend.reload(self._run)
        results += self.backend.up(bp.up, self._run, connection_ids=bp.up_ids)
        if bp.readdress:
            results += self._readdress(bp.readdress, live)
        if live is not None and (bp.up or bp.readdress):
            results += self._settle(LiveState.from_json(live), [*bp.up, *bp.readdress])
        if self._hook and (bp.down or bp.up or bp.unattributed or bp.readdress):
            results.append(run_hook(self._hook, self._run, HOOK_TIMEOUT_S))
        return results

    def _readdress(self, names: Sequence[str], live: Mapping[str, Any] | None) -> list[StepResult]:
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

    def _settle(self, snapshot: LiveState, ifnames: Iterable[str]) -> list[StepResult]:
        """Re-add the routes the bounce dropped, and poll until the restored interfaces match the
        snapshot; report each route that could not be restored and each remaining mismatch.

        A synchronous stack (ifup) is done when its command returns: missing routes are re-added
        at once. An asynchronous one (networkd, NetworkManager) gets ``route_grace_s`` to add
        them itself first; after that, missing routes are retried on every poll, and a failure
        counts only if the route is still missing at the end.
        """
        bounced = set(ifnames)
        # Ports of a bounced bridge or bond that no config lists (a VM's tap): recreating the
        # controller dropped them, and no stack will enslave them again.
        ports = {link.name for link in snapshot.links if link.master in bounced} - bounced
        names = sorted(bounced | ports)
        t0 = time.monotonic()
        deadline, grace = t0 + self._settle_s, t0 + self._route_grace_s
        routes: dict[str, StepResult] = {}  # by route, the latest attempt
        while True:
            with self._links() as ln:
                mismatches = verify(snapshot, ln.capture(), names)
                attempts = ln.reattach(snapshot, bounced, bounced) if mismatches and ports else []
                if mismatches and time.monotonic() >= grace:
                    attempts += ln.restore_routes(snapshot, names)
                routes.update((r.target, r) for r in attempts)
                if attempts:
                    mismatches = verify(snapshot, ln.capture(), names)
            if not mismatches or time.monotonic() >= deadline:
                break
            time.sleep(0.1)
        results = [r for r in routes.values() if r.ok or mismatches]
        if not mismatches:
            return [*results, StepResult("verify", " ".join(names), True)]
        for m in mismatches:
            log.error("after rollback: %s", m)
        return [*results, *(StepResult("verify", m.split(":", 1)[0], False, m) for m in mismatches)]
