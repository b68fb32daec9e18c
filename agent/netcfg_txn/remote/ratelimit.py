# SPDX-License-Identifier: GPL-3.0-or-later
"""Per-source token buckets for failed remote authentications. No I/O; the caller passes the clock.

One bucket per source key holds up to ``burst`` tokens and refills at ``per_minute / 60`` tokens a
second. A failed authentication takes a token; a source whose bucket is empty is refused before its
credentials are even looked at. A full bucket is the same as no entry, so it is dropped, and the
table is capped: when it is full the least recently touched source is evicted (an evicted source
starts again with a full bucket, which only ever makes the limiter more lenient, never stuck).

IPv6 sources are keyed by their /64, because one host usually owns a whole /64 and could otherwise
rotate through it to escape the limit.
"""

from __future__ import annotations

import collections
import dataclasses
import ipaddress

from netcfg_txn.core import errors

DEFAULT_MAX_SOURCES = 4096


class RateLimited(errors.NotPermitted):
    """Too many failed authentications from one source (HTTP 429, exit 77)."""

    code = "rate-limited"
    http_status = 429


# errors.from_json finds classes by code; register this one (defined outside errors.py) too, so
# a client rebuilds it with its exit code.
errors._BY_CODE.setdefault(RateLimited.code, RateLimited)


def source_key(addr: str) -> str:
    """The bucket a source address belongs to: IPv4 as is, IPv4-mapped IPv6 as IPv4, IPv6 by /64."""
    try:
        ip = ipaddress.ip_address(addr.split("%", 1)[0])
    except ValueError:
        return addr  # not an IP (a Unix socket peer, a test double): key verbatim
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


@dataclasses.dataclass
class _Bucket:
    tokens: float
    stamp_s: float


class Limiter:
    """Token buckets keyed by source. ``now`` is any monotonic clock in seconds."""

    def __init__(
        self,
        per_minute: float,
        *,
        burst: float | None = None,
        max_sources: int = DEFAULT_MAX_SOURCES,
    ) -> None:
        if per_minute <= 0:
            raise ValueError("per_minute must be positive")
        if max_sources < 1:
            raise ValueError("max_sources must be at least 1")
        self.rate_per_s = per_minute / 60.0
        self.burst = float(burst if burst is not None else per_minute)
        self.max_sources = max_sources
        self._buckets: collections.OrderedDict[str, _Bucket] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def _level(self, key: str, now: float) -> float:
        b = self._buckets.get(key)
        if b is None:
            return self.burst
        return min(self.burst, b.tokens + max(0.0, now - b.stamp_s) * self.rate_per_s)

    def blocked(self, addr: str, now: float) -> bool:
        """True if ``addr`` has no token left. Takes nothing."""
        return self._level(source_key(addr), now) < 1.0

    def retry_after_s(self, addr: str, now: float) -> float:
        """Seconds until ``addr`` has a token again (0 if it has one)."""
        level = self._level(source_key(addr), now)
        return 0.0 if level >= 1.0 else (1.0 - level) / self.rate_per_s

    def allow(self, addr: str, now: float) -> bool:
        """Take one token for ``addr``; False (and nothing taken) if the bucket is empty."""
        key = source_key(addr)
        level = self._level(key, now)
        if level < 1.0:
            self._touch(key, level, now)
            return False
        self._touch(key, level - 1.0, now)
        return True

    def _touch(self, key: str, level: float, now: float) -> None:
        if level >= self.burst:
            self._buckets.pop(key, None)
            return
        self._buckets[key] = _Bucket(level, now)
        self._buckets.move_to_end(key)
        while len(self._buckets) > self.max_sources:
            self._buckets.popitem(last=False)
