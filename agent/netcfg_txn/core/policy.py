# SPDX-License-Identifier: GPL-3.0-or-later
"""Confirm policies and probe specs: parsing and validation only. Pure: no I/O, no asyncio, so
``config`` and the CLI import it cheaply. ``probes`` runs what this describes.

Specs (every knob is tunable; nothing is probed unless asked for):

    tcp:HOST:PORT   tcp:[V6ADDR]:PORT    connect; "connection refused" counts as reachable
    icmp:HOST                            one echo (``ping -n -c 1 -W T``)
    http://…  https://…                  expected status (default any 2xx), no redirects followed
    iface:NAME                           operstate up (or unknown with IFF_UP and carrier)

followed by optional ``key=value`` words: ``timeout=3s``, ``retries=3``, ``expect=200,204-299``,
``method=GET|HEAD|POST``, and last ``json={…}`` (the rest of the spec is a JSON body to POST, for a
call-home). ``retries`` is the number of extra attempts in one round after a failed one.
"""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
import json
import math
import re
import urllib.parse
from collections.abc import Mapping
from typing import Any

from netcfg_txn.core.errors import BadRequest, ConfigError
from netcfg_txn.core.units import parse_duration

MAX_PROBES = 16
MAX_SPEC = 2048
_HOSTNAME = re.compile(
    r"(?=.{1,253}\.?$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})(?:\.[A-Za-z0-9-]{1,63})*\.?"
)
_IFNAME = re.compile(r"[^/\s:]{1,15}")
_OPTION_KEYS = ("timeout", "retries", "expect", "method", "json")


# What a failing probe round (after the settle time, with its retries) does.
ON_FAILURE = ("rollback", "ignore")


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
    address: str | None = None  # the checked address to connect to (remote peers' probes)


@dataclasses.dataclass(frozen=True)
class ProbeSettings:
    settle_s: float = 5.0
    interval_s: float = 5.0
    timeout_s: float = 3.0
    retries: int = 3
    rounds: int = 2
    fail_fast: bool = False  # kept for old requests: the same as on_failure = "rollback"
    # A user who passes a probe expects it to matter: a failing round rolls back (reason
    # health) under every policy, unless the transaction says "ignore" (then the deadline
    # decides, and under policy probes a failing round only resets the streak).
    on_failure: str = "rollback"

    @classmethod
    def from_toml(cls, table: Mapping[str, Any], where: str) -> ProbeSettings:
        """The ``[probes]`` section: defaults for every transaction's probes."""
        return _settings(table, cls(), f"{where}: [probes] ", ConfigError)

    def overridden(self, doc: Mapping[str, Any]) -> ProbeSettings:
        """Per-transaction overrides from a start request (``probe_settings``). BadRequest."""
        return _settings(doc, self, "probe_settings: ", BadRequest)

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
    table: Mapping[str, Any], base: ProbeSettings, prefix: str, error: type[Exception]
) -> ProbeSettings:
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key == "fail_fast":
            if not isinstance(value, bool):
                raise error(f"{prefix}fail_fast: expected true or false")
            values[key] = value
            continue
        if key == "on_failure":
            if value not in ON_FAILURE:
                raise error(f"{prefix}on_failure: expected one of {', '.join(ON_FAILURE)}")
            values[key] = value
            continue
        if key not in _LIMITS:
            raise error(f"{prefix}{key}: unknown key")
        lo, hi = _LIMITS[key]
        if key in ("retries", "rounds"):
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise error(f"{prefix}{key}: expected an integer from {lo:g} to {hi:g}")
            values[key] = value
            continue
        try:
            seconds = _seconds(value)
        except ValueError as e:
            raise error(f"{prefix}{key}: {e}") from None
        if not lo <= seconds <= hi:
            raise error(f"{prefix}{key}: must be from {lo:g}s to {hi:g}s")
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


def probe_host(probe: Probe) -> str | None:
    """The host name or address a network probe connects to (None for iface probes)."""
    if probe.kind is ProbeKind.IFACE:
        return None
    if probe.kind is ProbeKind.HTTP:
        return urllib.parse.urlsplit(probe.target).hostname
    return probe.target


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
        """Whether a ProbeSupervisor has anything to do: given probes run under every policy."""
        return bool(self.probes)

    @property
    def rollback_on_failure(self) -> bool:
        return self.settings.fail_fast or self.settings.on_failure == "rollback"

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
