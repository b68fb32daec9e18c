# SPDX-License-Identifier: GPL-3.0-or-later
"""The multi-host pattern (R51) over the remote API, for ``scripts/orchestrate`` and for tests.

For each batch of hosts:

1. **start** a transaction on every host of the batch; if one start fails, roll back the ones
   already started and stop;
2. **apply** the change (a caller-supplied function, e.g. an ssh command) with at most
   ``concurrency`` hosts at a time (default 1); after the first failure no further host is begun;
3. **verify** that every host is still reachable over the remote API (an authenticated read of its
   transaction, retried for a while: the new network may take a moment to settle);
4. **confirm** every host — only when all were verified, so a failure rolls back the whole batch;
5. only then start the next batch.

Any failure or timeout rolls back every host of the batch that was started; a host that cannot be
reached for the rollback is left to its own dead-man timer (R50), and said so. A host that is no
longer in the target set (``still_targeted``) is rolled back and reported ``removed``, which is
not a failure.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from netcfg_txn.errors import NetcfgTxnError, NoTransaction

log = logging.getLogger(__name__)


class HostClient(Protocol):
    def start(
        self,
        timeout: str | None = ...,
        label: str | None = ...,
        probes: Sequence[str] = ...,
        policy: str = ...,
        arm: bool = ...,
    ) -> dict[str, Any]: ...
    def get(self, txn_id: str, txn_token: str | None = ...) -> dict[str, Any]: ...
    def confirm(self, txn_id: str, txn_token: str) -> dict[str, Any]: ...
    def rollback(self, txn_id: str, txn_token: str) -> dict[str, Any]: ...


@dataclasses.dataclass
class Host:
    target: str
    state: str = "pending"  # pending|started|applied|verified|committed|rolled-back|removed|failed
    txn_id: str | None = None
    token: str | None = dataclasses.field(default=None, repr=False)
    error: str | None = None
    note: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "token" and v is not None}


@dataclasses.dataclass(frozen=True)
class Plan:
    timeout: str = "5m"  # each host's dead-man timeout
    label: str = "orchestrate"
    batch_size: int = 0  # 0: all hosts in one batch
    concurrency: int = 1
    apply_timeout_s: float = 120.0
    verify_timeout_s: float = 60.0
    verify_interval_s: float = 1.0


@dataclasses.dataclass
class Result:
    hosts: list[Host]
    ok: bool = True
    error: str | None = None
    batches_confirmed: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "error": self.error,
            "batches_confirmed": self.batches_confirmed,
            "hosts": [h.to_json() for h in self.hosts],
        }


def batches(items: Sequence[str], size: int) -> list[list[str]]:
    size = size if size > 0 else max(1, len(items))
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


class Orchestrator:
    def __init__(
        self,
        client_for: Callable[[str], HostClient],
        apply: Callable[[Host], None],
        plan: Plan | None = None,
        *,
        still_targeted: Callable[[str], bool] = lambda target: True,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client_for = client_for
        self._apply = apply
        self.plan = plan or Plan()
        self._targeted = still_targeted
        self._sleep = sleep
        self._now = monotonic
        self._clients: dict[str, HostClient] = {}

    def client(self, target: str) -> HostClient:
        if target not in self._clients:
            self._clients[target] = self._client_for(target)
        return self._clients[target]

    def run(self, targets: Sequence[str]) -> Result:
        result = Result([Host(t) for t in targets])
        by_target = {h.target: h for h in result.hosts}
        for batch in batches(list(targets), self.plan.batch_size):
            hosts = [by_target[t] for t in batch]
            error = self._batch(hosts)
            if error is not None:
                result.ok, result.error = False, error
                break
            result.batches_confirmed += 1
        return result

    # --------------------------------------------------------------------------- one batch

    def _batch(self, hosts: list[Host]) -> str | None:
        live = self._drop_removed(hosts)
        for h in live:  # 1. start everywhere, or nowhere
            try:
                doc = self.client(h.target).start(timeout=self.plan.timeout, label=self.plan.label)
                h.txn_id, h.token = str(doc["transaction"]["id"]), str(doc["token"])
                h.state = "started"
                log.info("%s: started %s", h.target, h.txn_id)
            except (NetcfgTxnError, KeyError, TypeError) as e:
                h.state, h.error = "failed", f"start: {_why(e)}"
                self._rollback_all(hosts)
                return f"start failed on {h.target}: {_why(e)}"
        if (error := self._apply_all(hosts)) is not None:  # 2.
            self._rollback_all(hosts)
            return error
        live = self._drop_removed(hosts)
        for h in live:  # 3. every host still answers, through whatever its new network is
            if (why := self._verify(h)) is not None:
                h.state, h.error = "failed", f"verify: {why}"
                self._rollback_all(hosts)
                return f"{h.target} not reachable after the change: {why}"
        for h in live:  # 4.
            try:
                assert h.txn_id is not None and h.token is not None
                self.client(h.target).confirm(h.txn_id, h.token)
                h.state = "committed"
                log.info("%s: committed %s", h.target, h.txn_id)
            except NetcfgTxnError as e:
                h.state, h.error = "failed", f"confirm: {_why(e)}"
                self._rollback_all(hosts)
                done = [x.target for x in hosts if x.state == "committed"]
                also = f" (already committed, not undone: {', '.join(done)})" if done else ""
                return f"confirm failed on {h.target}: {_why(e)}{also}"
        return None

    def _drop_removed(self, hosts: list[Host]) -> list[Host]:
        live = []
        for h in hosts:
            if h.state in ("removed", "failed", "rolled-back"):
                continue
            if not self._targeted(h.target):
                log.info("%s: removed from the target set", h.target)
                if h.txn_id is not None:
                    self._rollback(h)
                h.state = "removed"
                continue
            live.append(h)
        return live

    def _apply_all(self, hosts: list[Host]) -> str | None:
        queue = [h for h in hosts if h.state == "started"]
        failures: list[str] = []
        with concurrent.futures.ThreadPoolExecutor(max(1, self.plan.concurrency)) as pool:
            running: dict[concurrent.futures.Future[None], Host] = {}
            while queue or running:
                while queue and not failures and len(running) < self.plan.concurrency:
                    h = queue.pop(0)
                    if not self._targeted(h.target):
                        continue  # rolled back as "removed" by the next _drop_removed
                    running[pool.submit(self._apply_one, h)] = h
                if not running:
                    break
                done, _ = concurrent.futures.wait(
                    running, return_when=concurrent.futures.FIRST_COMPLETED
                )
                for fut in done:
                    h = running.pop(fut)
                    try:
                        fut.result()
                        h.state = "applied"
                    except Exception as e:
                        h.state, h.error = "failed", f"apply: {_why(e)}"
                        failures.append(f"apply failed on {h.target}: {_why(e)}")
                if failures:
                    queue.clear()
        return failures[0] if failures else None

    def _apply_one(self, h: Host) -> None:
        log.info("%s: applying", h.target)
        self._apply(h)

    def _verify(self, h: Host) -> str | None:
        assert h.txn_id is not None
        end = self._now() + self.plan.verify_timeout_s
        why = "not tried"
        while True:
            try:
                doc = self.client(h.target).get(h.txn_id, h.token)
                phase = (doc.get("transaction") or {}).get("phase")
                if phase == "open":
                    h.state = "verified"
                    return None
                return f"transaction {h.txn_id} is {phase}, no longer open"
            except NoTransaction as e:
                return _why(e)
            except NetcfgTxnError as e:
                why = _why(e)
            if self._now() >= end:
                return f"{why} (for {self.plan.verify_timeout_s:g}s)"
            self._sleep(self.plan.verify_interval_s)

    def _rollback_all(self, hosts: list[Host]) -> None:
        for h in hosts:
            if h.txn_id is not None and h.state not in ("committed", "rolled-back", "removed"):
                self._rollback(h)

    def _rollback(self, h: Host) -> None:
        assert h.txn_id is not None and h.token is not None
        try:
            self.client(h.target).rollback(h.txn_id, h.token)
            if h.state != "failed":
                h.state = "rolled-back"
            h.note = "rolled back"
            log.info("%s: rolled back %s", h.target, h.txn_id)
        except NoTransaction as e:
            h.note = f"already ended: {_why(e)}"
        except NetcfgTxnError as e:
            h.note = f"rollback not acknowledged ({_why(e)}); its dead-man timer rolls it back"
            log.warning("%s: %s", h.target, h.note)


def _why(e: BaseException) -> str:
    if isinstance(e, NetcfgTxnError):
        return e.message
    return str(e) or type(e).__name__
