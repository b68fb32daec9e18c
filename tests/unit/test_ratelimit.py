# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import pytest

from netcfg_txn.remote.ratelimit import Limiter, source_key


def test_burst_then_refused_then_refilled() -> None:
    lim = Limiter(per_minute=30)  # burst 30, one token every 2 s
    assert all(lim.allow("192.0.2.9", 100.0) for _ in range(30))
    assert lim.blocked("192.0.2.9", 100.0)
    assert not lim.allow("192.0.2.9", 100.0)
    assert lim.retry_after_s("192.0.2.9", 100.0) == pytest.approx(2.0)
    assert not lim.blocked("192.0.2.9", 102.0)
    assert lim.allow("192.0.2.9", 102.0)
    assert not lim.allow("192.0.2.9", 102.0)


def test_sources_are_independent() -> None:
    lim = Limiter(per_minute=2)
    assert lim.allow("192.0.2.1", 0) and lim.allow("192.0.2.1", 0)
    assert lim.blocked("192.0.2.1", 0)
    assert not lim.blocked("192.0.2.2", 0)


def test_refused_attempts_do_not_extend_the_block() -> None:
    lim = Limiter(per_minute=60, burst=1)
    assert lim.allow("a", 0.0)
    for t in (0.1, 0.5, 0.9):
        assert not lim.allow("a", t)
    assert lim.allow("a", 1.0)  # refill counted from the last token taken, not from the refusals


def test_full_buckets_are_forgotten_and_table_is_capped() -> None:
    lim = Limiter(per_minute=60, burst=2, max_sources=100)
    for i in range(1000):
        lim.allow(f"198.51.100.{i % 250}-{i}", float(i) / 1000)
    assert len(lim) == 100
    lim2 = Limiter(per_minute=60, burst=2)
    lim2.allow("x", 0.0)
    assert len(lim2) == 1
    assert lim2.allow("y", 0.0) and len(lim2) == 2
    lim2.allow("x", 100.0)  # refilled → taking one leaves it below burst: still tracked
    assert not lim2.blocked("x", 100.0)


def test_eviction_drops_oldest_first() -> None:
    lim = Limiter(per_minute=1, burst=1, max_sources=2)
    lim.allow("a", 0)
    lim.allow("b", 1)
    lim.allow("c", 2)
    assert not lim.blocked("a", 2)  # evicted: starts afresh
    assert lim.blocked("b", 2) and lim.blocked("c", 2)


def test_ipv6_keyed_by_64_and_mapped_v4() -> None:
    assert source_key("2001:db8:1:2:aaaa::1") == source_key("2001:db8:1:2:bbbb::2")
    assert source_key("2001:db8:1:3::1") != source_key("2001:db8:1:2::1")
    assert source_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert source_key("fe80::1%eth0") == "fe80::/64"
    lim = Limiter(per_minute=1, burst=1)
    lim.allow("2001:db8::1", 0)
    assert lim.blocked("2001:db8::ffff", 0)


def test_bad_parameters() -> None:
    with pytest.raises(ValueError):
        Limiter(per_minute=0)
    with pytest.raises(ValueError):
        Limiter(per_minute=1, max_sources=0)
