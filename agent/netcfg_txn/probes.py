# SPDX-License-Identifier: GPL-3.0-or-later
"""Active confirm probes: parse specs (pure), run them (the probes door), supervise a transaction.

Specs (R45, Part B 10: every knob is tunable, nothing is probed unless asked for):

    tcp:HOST:PORT   tcp:[V6ADDR]:PORT    connect; "connection refused" counts as reachable
    icmp:HOST                            one echo (``ping -n -c 1 -W T``)
    http://…  https://…                  expected status (default any 2xx), no redirects followed
    iface:NAME                           operstate up (or unknown with IFF_UP and carrier)

followed by optional ``key=value`` words: ``timeout=3s``, ``retries=3``, ``expect=200,204-299``,
``method=GET|HEAD|POST``, and last ``json={…}`` (the rest of the spec is a JSON body to POST, for a
call-home). ``retries`` is the number of extra attempts in one round after a failed one.

The supervisor only ever calls ``on_pass`` (commit) or ``on_fail`` (rollback): it has no way to
move the deadline (R37), so a probe that never passes leaves the decision to the timer.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import ipaddress
import json
import logging
import math
import re
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from netcfg_txn.config import parse_duration
from netcfg_txn.errors import BadRequest, ConfigError

log = logging.getLogger(__name__)

MAX_PROBES = 16
MAX_SPEC = 2048
_HOSTNAME = re.compile(
    r"(?=.{1,253}\.?$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})(?:\.[A-Za-z0-9-]{1,63})*\.?"
)
_IFNAME = re.compile(r"[^/\s:]{1,15}")
_OPTION_KEYS = ("timeout", "retries", "expect", "method", "json")


class Policy(enum.Enum):
    MANUAL = "manual"  # only a confirm commits; probes, if any, are health checks
    PROBES = "probes"  # passing probes commit; a remote confirm is refused
    PROBES_OR_MANUAL = "probes-or-manual"

    @property
    def probes_commit(self) -> bool:
        return self is not Policy.MANUAL

    @property
    def manual_confirm(self) -> bool:
        return self is not Policy.PROBES


class ProbeKind(enum.Enum):
    TCP = "tcp"
    ICMP = "icmp"
    HTTP = "http"
    IFACE = "iface"


@dataclasses.dataclass(frozen=True)
class Probe:
    spec: str
    kind: ProbeKind
    target: str  # host, URL or interface name
    port: int = 0
    method: str = "GET"
    body: str | None = None  # JSON text, for POST
    expect: tuple[tuple[int, int], ...] = ((200, 299),)
    timeout_s: float | None = None  # None: the transaction's setting
    retries: int | None = None


@dataclasses.dataclass(frozen=True)
class ProbeSettings:
    settle_s: float = 5.0
    interval_s: float = 5.0
    timeout_s: float = 3.0
    retries: int = 3
    rounds: int = 2
    fail_fast: bool = False

    @classmethod
    def from_toml(cls, table: Mapping[str, Any], where: str) -> ProbeSettings:
        """The ``[probes]`` section: defaults for every transaction's probes."""
        return _settings(table, cls(), f"{where}: probes", ConfigError)

    def overridden(self, doc: Mapping[str, Any]) -> ProbeSettings:
        """Per-transaction overrides from a start request (``probe_settings``). BadRequest."""
        return _settings(doc, self, "probe_settings", BadRequest)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_LIMITS: dict[str, tuple[float, float]] = {
    "settle_s": (0.0, 3600.0),
    "interval_s": (0.05, 3600.0),
    "timeout_s": (0.05, 120.0),
    "retries": (0, 20),
    "rounds": (1, 100),
}


def _settings(
    table: Mapping[str, Any], base: ProbeSettings, where: str, error: type[Exception]
) -> ProbeSettings:
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key == "fail_fast":
            if not isinstance(value, bool):
                raise error(f"{where}: fail_fast: expected true or false")
            values[key] = value
            continue
        if key not in _LIMITS:
            raise error(f"{where}: {key}: unknown key")
        lo, hi = _LIMITS[key]
        if key in ("retries", "rounds"):
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise error(f"{where}: {key}: expected an integer from {lo:g} to {hi:g}")
            values[key] = value
            continue
        try:
            seconds = _seconds(value)
        except ValueError as e:
            raise error(f"{where}: {key}: {e}") from None
        if not lo <= seconds <= hi:
            raise error(f"{where}: {key}: must be from {lo:g}s to {hi:g}s")
        values[key] = seconds
    return dataclasses.replace(base, **values)


def _seconds(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError("expected seconds or a duration such as 500ms, 5s, 1m")
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:
            raise ValueError("must be a finite, non-negative number of seconds")
        return float(value)
    if value.strip() in ("0", "0s"):
        return 0.0
    return parse_duration(value)


# ------------------------------------------------------------------------------------- parsing


def _host(text: str, spec: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        pass
    if _HOSTNAME.fullmatch(text) is None:
        raise BadRequest(f"probe {spec!r}: {text!r} is not a host name or IP address")
    return text


def _expect(text: str, spec: str) -> tuple[tuple[int, int], ...]:
    ranges = []
    for part in text.split(","):
        m = re.fullmatch(r"([1-5]\d\d)(?:-([1-5]\d\d))?", part.strip())
        if m is None:
            raise BadRequest(f"probe {spec!r}: expect: {part!r} is not a status or status range")
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if hi < lo:
            raise BadRequest(f"probe {spec!r}: expect: empty range {part!r}")
        ranges.append((lo, hi))
    return tuple(ranges)


def _options(words: str, spec: str) -> dict[str, Any]:
    opts: dict[str, Any] = {}
    rest = words.strip()
    while rest:
        key, eq, tail = rest.partition("=")
        key = key.strip()
        if not eq or key not in _OPTION_KEYS or key in opts:
            raise BadRequest(
                f"probe {spec!r}: bad option {rest.split()[0]!r} "
                f"(known: {', '.join(k + '=' for k in _OPTION_KEYS)})"
            )
        if key == "json":
            try:
                json.loads(tail)
            except ValueError:
                raise BadRequest(f"probe {spec!r}: json: not a JSON document") from None
            opts[key] = tail.strip()
            break
        value, _, rest = tail.partition(" ")
        rest = rest.strip()
        if key == "timeout":
            try:
                opts[key] = _seconds(value)
            except ValueError as e:
                raise BadRequest(f"probe {spec!r}: timeout: {e}") from None
            if not 0.05 <= opts[key] <= 120:
                raise BadRequest(f"probe {spec!r}: timeout: must be from 50ms to 120s")
        elif key == "retries":
            if not value.isdigit() or int(value) > 20:
                raise BadRequest(f"probe {spec!r}: retries: expected 0 to 20")
            opts[key] = int(value)
        elif key == "expect":
            opts[key] = _expect(value, spec)
        else:
            if value.upper() not in ("GET", "HEAD", "POST"):
                raise BadRequest(f"probe {spec!r}: method: one of GET, HEAD, POST")
            opts[key] = value.upper()
    return opts


def parse_probe(spec: str) -> Probe:
    """A probe spec as above. Pure; anything malformed raises BadRequest naming the spec."""
    if not isinstance(spec, str):
        raise BadRequest("a probe must be a string such as 'tcp:198.51.100.1:22'")
    if len(spec) > MAX_SPEC:
        raise BadRequest(f"probe spec longer than {MAX_SPEC} characters")
    if not spec.isprintable() or not spec.strip():
        raise BadRequest(f"probe {spec!r}: empty or contains control characters")
    head, _, words = spec.strip().partition(" ")
    opts = _options(words, spec)
    kind, _, rest = head.partition(":")
    http_only = {"expect", "method", "json"} & opts.keys()
    if kind in ("http", "https"):
        return _parse_http(spec, head, opts)
    if http_only:
        raise BadRequest(f"probe {spec!r}: {', '.join(sorted(http_only))} only apply to http(s)")
    if kind == "tcp":
        m = re.fullmatch(r"\[([^\]]+)\]:(\d{1,5})|([^:\[\]]+):(\d{1,5})", rest)
        if m is None:
            raise BadRequest(f"probe {spec!r}: expected tcp:HOST:PORT (IPv6 as tcp:[ADDR]:PORT)")
        host = m.group(1) or m.group(3)
        port = int(m.group(2) or m.group(4))
        if not 1 <= port <= 65535:
            raise BadRequest(f"probe {spec!r}: port out of range")
        if m.group(1) is not None and ":" not in _host(host, spec):
            raise BadRequest(f"probe {spec!r}: brackets are for IPv6 addresses only")
        return Probe(
            spec,
            ProbeKind.TCP,
            _host(host, spec),
            port,
            timeout_s=opts.get("timeout"),
            retries=opts.get("retries"),
        )
    if kind == "icmp":
        return Probe(
            spec,
            ProbeKind.ICMP,
            _host(rest, spec),
            timeout_s=opts.get("timeout"),
            retries=opts.get("retries"),
        )
    if kind == "iface":
        if _IFNAME.fullmatch(rest) is None or rest in (".", ".."):
            raise BadRequest(f"probe {spec!r}: not an interface name")
        return Probe(
            spec, ProbeKind.IFACE, rest, timeout_s=opts.get("timeout"), retries=opts.get("retries")
        )
    raise BadRequest(
        f"probe {spec!r}: unknown kind (use tcp:HOST:PORT, icmp:HOST, iface:NAME or an http(s) URL)"
    )


def _parse_http(spec: str, url: str, opts: dict[str, Any]) -> Probe:
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
        hostname = parts.hostname
    except ValueError as e:
        raise BadRequest(f"probe {spec!r}: not a valid URL: {e}") from None
    if parts.scheme not in ("http", "https") or not hostname or parts.username or parts.password:
        raise BadRequest(f"probe {spec!r}: expected http(s)://HOST[:PORT]/PATH without userinfo")
    if port == 0:
        raise BadRequest(f"probe {spec!r}: port out of range")
    _host(hostname, spec)
    method = opts.get("method", "POST" if "json" in opts else "GET")
    if "json" in opts and method != "POST":
        raise BadRequest(f"probe {spec!r}: json= needs method=POST")
    return Probe(
        spec,
        ProbeKind.HTTP,
        urllib.parse.urlunsplit(parts),
        port or (443 if parts.scheme == "https" else 80),
        method=method,
        body=opts.get("json"),
        expect=opts.get("expect", ((200, 299),)),
        timeout_s=opts.get("timeout"),
        retries=opts.get("retries"),
    )


@dataclasses.dataclass(frozen=True)
class ConfirmPolicy:
    """How a transaction may be confirmed; persisted as ``Txn.policy``."""

    policy: Policy = Policy.MANUAL
    probes: tuple[Probe, ...] = ()
    settings: ProbeSettings = ProbeSettings()

    @property
    def supervised(self) -> bool:
        """Whether a ProbeSupervisor has anything to do for this transaction."""
        return bool(self.probes) and (self.policy.probes_commit or self.settings.fail_fast)

    def to_json(self) -> dict[str, Any]:
        return {
            "policy": self.policy.value,
            "probes": [p.spec for p in self.probes],
            "probe_settings": self.settings.to_json(),
        }


def parse_confirm(doc: Mapping[str, Any], defaults: ProbeSettings) -> ConfirmPolicy:
    """``policy``, ``probes``, ``probe_settings`` of a start request or of a stored Txn.policy."""
    raw_policy = doc.get("policy", "manual")
    try:
        policy = Policy(raw_policy)
    except (ValueError, TypeError):
        raise BadRequest(
            f"policy: {raw_policy!r} is not one of {', '.join(p.value for p in Policy)}"
        ) from None
    raw_probes = doc.get("probes", [])
    if not isinstance(raw_probes, list):
        raise BadRequest("probes: expected a list of probe specs")
    if len(raw_probes) > MAX_PROBES:
        raise BadRequest(f"probes: at most {MAX_PROBES}")
    probes = tuple(parse_probe(p) for p in raw_probes)
    if policy.probes_commit and not probes:
        raise BadRequest(f"policy {policy.value} needs at least one probe")
    raw_settings = doc.get("probe_settings", {})
    if not isinstance(raw_settings, Mapping):
        raise BadRequest("probe_settings: expected an object")
    # ``fail_fast`` and ``rounds`` may also stand at the top level of the request.
    shortcuts = {k: doc[k] for k in ("fail_fast", "rounds") if k in doc}
    return ConfirmPolicy(policy, probes, defaults.overridden({**shortcuts, **raw_settings}))


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
            asyncio.open_connection(probe.target, probe.port), timeout_s
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
    argv = ("ping", "-n", "-q", "-c", "1", "-W", str(wait), "--", probe.target)
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
                connector=aiohttp.TCPConnector(force_close=True),
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


async def run_probe(
    probe: Probe, settings: ProbeSettings, sys_class_net: Path = SYS_CLASS_NET
) -> ProbeResult:
    timeout_s = probe.timeout_s if probe.timeout_s is not None else settings.timeout_s
    retries = probe.retries if probe.retries is not None else settings.retries
    started = time.monotonic()
    ok, detail, attempt = False, "not run", 0
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
) -> RoundResult:
    """Run every probe once (with its retries), concurrently."""
    results = await asyncio.gather(*(run_probe(p, settings, sys_class_net) for p in probes))
    return RoundResult(tuple(results))


# ---------------------------------------------------------------------------------- supervisor

RoundRunner = Callable[[Sequence[Probe], ProbeSettings], Awaitable[RoundResult]]


class ProbeSupervisor:
    """Runs the rounds of one transaction's probes as an asyncio task.

    After ``settle_s``, a round every ``interval_s`` (counted from the end of the previous one):
    - policy ``probes``/``probes-or-manual``: ``rounds`` passing rounds in a row → ``on_pass()``;
      a failing round resets the streak;
    - with ``fail_fast``, the first failing round → ``on_fail(reason)`` (also as health checks under
      policy ``manual``);
    - otherwise failures only keep it from committing: the deadline decides.
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
        self._name = name
        self._task: asyncio.Task[None] | None = None
        self.rounds = 0
        self.streak = 0
        self.outcome: str | None = None  # "passed" | "failed" | "stopped" | "error"
        self.last: list[RoundResult] = []

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._main(), name=f"probes {self._name}"
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
        tag = f"txn={self._name} " if self._name else ""
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
                    if settings.fail_fast:
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
            log.info("txn=%s probe outcome not applied: %s", self._name, e)
