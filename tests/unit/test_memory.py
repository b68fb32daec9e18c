# SPDX-License-Identifier: GPL-3.0-or-later
"""host.memory: freed heap goes back to the kernel after an operation (glibc's malloc_trim)."""

from __future__ import annotations

import pytest

from netcfg_txn.host import memory


def _rss_kib() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def test_then_give_back_returns_the_result_and_trims_even_when_it_raises() -> None:
    assert memory.then_give_back(lambda a, b=0: a + b, 2, b=3) == 5
    with pytest.raises(ZeroDivisionError):
        memory.then_give_back(lambda: 1 // 0)


@pytest.mark.skipif(memory._malloc_trim() is None, reason="needs glibc's malloc_trim")
def test_freed_holes_in_the_heap_are_returned() -> None:
    # 16 KiB chunks (below glibc's mmap threshold, so on the heap), every other one freed: the
    # holes cannot be given back by shrinking the heap's top, only by malloc_trim.
    blocks = [bytearray(16384) for _ in range(4000)]
    del blocks[::2]
    before = _rss_kib()
    memory.give_back_freed_memory()
    assert before - _rss_kib() > 16_000, (before, _rss_kib())
    del blocks
