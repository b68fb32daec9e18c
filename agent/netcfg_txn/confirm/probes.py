# SPDX-License-Identifier: GPL-3.0-or-later
"""The probes door: run confirm probes (tcp, icmp, http, iface) and supervise a transaction's.

What a probe or a policy *is* (parsing, validation, settings) lives in the pure ``policy``
module; its names are re-exported here. The supervisor only ever calls ``on_pass`` (commit) or
``on_fail`` (rollback): it has no way to move the deadline, so a probe that never passes
leaves the decision to the timer.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from netcfg_txn.core.policy import (
    MAX_PROBES,
    ConfirmPolicy,
    Policy,
    Probe,
    ProbeKind,
    ProbeSettings,
    parse_confirm,
    parse_probe,
    probe_host,
)
from netcfg_txn.core.targets import TargetPolicy

__all__ = [
    "MAX_PROBES",
    "ConfirmPolicy",
    "Policy",
    "Probe",
    "ProbeKind",
    "ProbeResult",
    "ProbeSettings",
    "ProbeSupervisor",
    "RoundResult",
    "parse_confirm",
    "parse_probe",
    "run_probe",
    "run_round",
]

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------- running


@dataclasses.dataclass(frozen=True)
class ProbeResult:
    spec: str
    ok: bool
    detail: str
    attempts: int
    elapsed_s: float


@dataclasses.dataclass(frozen=True)
class RoundResult:
    results: tuple[ProbeResult, ...]

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    def summary(self) -> str:
        bad = [f"{r.spec}: {r.detail}" for r in self.results if not r.ok]
        return "; ".join(bad) if bad else "all probes passed"

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "results": [dataclasses.asdict(r) for r in self.results]}


SYS_CLASS_NET = Path("/sys/class/net")
DEFAULT_SETTINGS = ProbeSettings()


async def _tcp(probe: Probe, timeout_s: float) -> tuple[bool, str]:
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(probe.address or probe.target, probe.port), timeout_s
        )
    except ConnectionRefusedError:
        return True, "connection refused (host reachable)"
    except TimeoutError:
        return False, f"no answer within {timeout_s:g}s"
    except OSError as e:
        return False, e.strerror or str(e)
    writer.close()
    return True, "connected"


async def _icmp(probe: Probe, timeout_s: float) -> tuple[bool, str]:
    wait = max(1, math.ceil(timeout_s))
    argv = ("ping", "-n", "-q", "-c", "1", "-W", str(wait), "--", probe.address or probe.target)
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"},
        )
    except FileNotFoundError:
        return False, "ping: command not found"
    try:
        _, err = await asyncio.wait_for(proc.communicate(), wait + 2)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    if proc.returncode == 0:
        return True, "echo reply"
    text = err.decode(errors="replace").strip().splitlines()
    return False, text[-1] if text else f"no echo reply within {wait}s"


async def _http(probe: Probe, timeout_s: float) -> tuple[bool, str]:
    import aiohttp  # only the daemon runs probes; the CLI never pays for this import

    from netcfg_txn import __version__

    headers = {"User-Agent": f"netcfg-txn/{__version__} probe"}
    if probe.body is not None:
        headers["Content-Type"] = "application/json"
    try:
        async with (
            aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=timeout_s),
                connector=aiohttp.TCPConnector(
                    force_close=True,
                    resolver=_pinned_resolver(probe.address) if probe.address else None,
                ),
                trust_env=False,
            ) as session,
            session.request(
                probe.method,
                probe.target,
                data=probe.body,
                headers=headers,
                allow_redirects=False,
            ) as resp,
        ):
            status = resp.status
    except TimeoutError:
        return False, f"no answer within {timeout_s:g}s"
    except aiohttp.ClientError as e:
        return False, f"{type(e).__name__}: {e}"
    ok = any(lo <= status <= hi for lo, hi in probe.expect)
    return ok, f"HTTP {status}"


def _pinned_resolver(address: str) -> Any:
    """An aiohttp resolver that answers every name with the one address that was checked."""
    import aiohttp.abc

    class Pinned(aiohttp.abc.AbstractResolver):
        async def resolve(  # type: ignore[override,unused-ignore]
            self, host: str, port: int = 0, family: int = socket.AF_INET
        ) -> list[dict[str, Any]]:
            fam = socket.AF_INET6 if ":" in address else socket.AF_INET
            return [
                {"hostname": host, "host": address, "port": port, "family": fam,
                 "proto": 0, "flags": socket.AI_NUMERICHOST}
            ]  # fmt: skip

        async def close(self) -> None:
            pass

    return Pinned()


async def _iface(probe: Probe, sys_class_net: Path) -> tuple[bool, str]:
    base = sys_class_net / probe.target

    def read(name: str) -> str:
        try:
            return (base / name).read_text().strip()
        except OSError:
            return ""

    state = read("operstate")
    if not state:
        return False, "no such interface"
    if state == "up":
        return True, "operstate up"
    if state == "unknown":  # many virtual links never report a state: use flags and carrier
        flags = read("flags")
        up = flags.startswith("0x") and int(flags, 16) & 0x1
        if up and read("carrier") == "1":
            return True, "operstate unknown, up with carrier"
    return False, f"operstate {state}"


async def allowed_address(host: str, targets: TargetPolicy, timeout_s: float = 5.0) -> str:
    """The first address of ``host`` the policy allows; TargetRefused if none (or none resolve).

    Probes of a remote peer's transaction connect to this address, never to the name again, so a
    name that resolves elsewhere later (DNS rebinding) cannot get past the check."""
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, None, type=socket.SOCK_STREAM), timeout_s
        )
    except (OSError, TimeoutError) as e:
        raise TargetRefused(f"cannot resolve {host}: {getattr(e, 'strerror', None) or e}") from None
    why = "no address"
    for info in infos:
        address = str(info[4][0])
        why = targets.refusal(address) or ""
        if not why:
            return address
    raise TargetRefused(f"target {host} not allowed: {why}")


class TargetRefused(Exception):
    """A remote peer's probe target is outside what ``[probes] allow`` permits."""


async def run_probe(
    probe: Probe,
    settings: ProbeSettings,
    sys_class_net: Path = SYS_CLASS_NET,
    targets: TargetPolicy | None = None,
) -> ProbeResult:
    timeout_s = probe.timeout_s if probe.timeout_s is not None else settings.timeout_s
    retries = probe.retries if probe.retries is not None else settings.retries
    started = time.monotonic()
    ok, detail, attempt = False, "not run", 0
    if targets is not None and (host := probe_host(probe)) is not None:
        try:
            address = await allowed_address(host, targets, timeout_s)
        except TargetRefused as e:
            log.warning("probe %s refused: %s", probe.spec, e)
            return ProbeResult(probe.spec, False, str(e), 0, round(time.monotonic() - started, 3))
        probe = dataclasses.replace(probe, address=address)
    for attempt in range(1, retries + 2):
        if probe.kind is ProbeKind.TCP:
            ok, detail = await _tcp(probe, timeout_s)
        elif probe.kind is ProbeKind.ICMP:
            ok, detail = await _icmp(probe, timeout_s)
        elif probe.kind is ProbeKind.HTTP:
            ok, detail = await _http(probe, timeout_s)
        else:
            ok, detail = await _iface(probe, sys_class_net)
        if ok or attempt > retries:
            break
        await asyncio.sleep(min(0.5, timeout_s))  # a quick failure (refusal, 5xx) gets a breath
    return ProbeResult(probe.spec, ok, detail, attempt, round(time.monotonic() - started, 3))


async def run_round(
    probes: Sequence[Probe],
    settings: ProbeSettings = DEFAULT_SETTINGS,
    sys_class_net: Path = SYS_CLASS_NET,
    targets: TargetPolicy | None = None,
) -> RoundResult:
    """Run every probe once (with its retries), concurrently. ``targets``: a remote peer's."""
    results = await asyncio.gather(
        *(run_probe(p, settings, sys_class_net, targets) for p in probes)
    )
    return RoundResult(tuple(results))


# ---------------------------------------------------------------------------------- supervisor

RoundRunner = Callable[[Sequence[Probe], ProbeSettings], Awaitable[RoundResult]]


class ProbeSupervisor:
    """Runs the rounds of one transaction's probes as an asyncio task.

    After ``settle_s``, a round every ``interval_s`` (counted from the end of the previous one):
    - policy ``probes``/``probes-or-manual``: ``rounds`` passing rounds in a row → ``on_pass()``;
      a failing round resets the streak;
    - under every policy (``manual`` too: health checks), the first failing round →
      ``on_fail(reason)``, unless the transaction's ``on_failure`` is ``ignore``: then failures
      only keep it from committing, and the deadline decides.
    The callbacks are shielded, so ``stop()`` (which may be called from inside them) never
    interrupts a commit or rollback the engine has begun.
    """

    HISTORY = 5

    def __init__(
        self,
        confirm: ConfirmPolicy,
        on_pass: Callable[[], Awaitable[object]],
        on_fail: Callable[[str], Awaitable[object]],
        *,
        run: RoundRunner = run_round,
        name: str = "",
    ) -> None:
        self.confirm = confirm
        self._on_pass = on_pass
        self._on_fail = on_fail
        self._run = run
        self.name = name  # the transaction id
        self._task: asyncio.Task[None] | None = None
        self.rounds = 0
        self.streak = 0
        self.outcome: str | None = None  # "passed" | "failed" | "stopped" | "error"
        self.last: list[RoundResult] = []

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._main(), name=f"probes {self.name}"
            )

    def stop(self) -> None:
        """Cancel the rounds (idempotent, safe from a callback). No callback runs after this."""
        if self.outcome is None:
            self.outcome = "stopped"
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()

    async def wait(self) -> None:
        if self._task is not None:
            try:
                await asyncio.shield(self._task)
            except asyncio.CancelledError:
                if not self._task.cancelled():
                    raise

    def _stopped(self) -> bool:
        return self.outcome is not None

    @property
    def done(self) -> bool:
        return self._task is not None and self._task.done()

    def status(self) -> dict[str, Any]:
        return {
            **self.confirm.to_json(),
            "rounds": self.rounds,
            "streak": self.streak,
            "outcome": self.outcome,
            "last": self.last[-1].to_json() if self.last else None,
        }

    async def _main(self) -> None:
        settings = self.confirm.settings
        tag = f"txn={self.name} " if self.name else ""
        try:
            await asyncio.sleep(settings.settle_s)
            while self.outcome is None:
                result = await self._run(self.confirm.probes, settings)
                if self._stopped():
                    return
                self.rounds += 1
                self.last = [*self.last[-(self.HISTORY - 1) :], result]
                if result.ok:
                    self.streak += 1
                    log.info("%sprobe round %d passed (%d in a row)", tag, self.rounds, self.streak)
                    if self.confirm.policy.probes_commit and self.streak >= settings.rounds:
                        self.outcome = "passed"
                        await self._call(self._on_pass())
                        return
                else:
                    self.streak = 0
                    log.warning("%sprobe round %d failed: %s", tag, self.rounds, result.summary())
                    if self.confirm.rollback_on_failure:
                        self.outcome = "failed"
                        await self._call(self._on_fail(f"probes failed: {result.summary()}"))
                        return
                await asyncio.sleep(settings.interval_s)
        except asyncio.CancelledError:
            return
        except Exception:
            self.outcome = "error"
            log.exception("%sprobe supervisor failed (this is a bug)", tag)

    async def _call(self, action: Awaitable[object]) -> None:
        future = asyncio.ensure_future(action)
        future.add_done_callback(self._report)
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.shield(future)

    def _report(self, future: asyncio.Future[object]) -> None:
        if not future.cancelled() and (e := future.exception()) is not None:
            # The engine refused (the transaction already ended, or expired): nothing more to do.
            log.info("txn=%s probe outcome not applied: %s", self.name, e)
