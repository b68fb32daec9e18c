# SPDX-License-Identifier: GPL-3.0-or-later
"""Durations and sizes as a config file or a command line writes them. Pure."""

from __future__ import annotations

import math
import re

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)?")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_SIZE = re.compile(r"(\d+)\s*(|k|K|KiB|M|MiB|G|GiB)")
_SIZE_UNITS = {"": 1, "k": 1 << 10, "K": 1 << 10, "KiB": 1 << 10, "M": 1 << 20, "MiB": 1 << 20}
_SIZE_UNITS |= {"G": 1 << 30, "GiB": 1 << 30}


# Longer than any sane deadline, short enough that deadline arithmetic never overflows.
MAX_DURATION_S = 10 * 366 * 86400.0
_MAX_DURATION_TEXT = 64


def parse_duration(text: str | int | float) -> float:
    """``90``, ``90s``, ``5m``, ``1h``, ``1h30m`` -> seconds. Raises ValueError.

    NaN, infinities and anything over ten years are refused: a NaN deadline compares false with
    everything (the timer fires at once) and infinities do not survive JSON.
    """
    if isinstance(text, bool):
        raise ValueError("not a duration")
    if isinstance(text, int | float):
        if isinstance(text, float) and not math.isfinite(text):
            raise ValueError("must be a finite number of seconds")
        if text <= 0:
            raise ValueError("must be positive")
        if text > MAX_DURATION_S:
            raise ValueError("longer than ten years")
        return float(text)
    if len(text) > _MAX_DURATION_TEXT:
        raise ValueError(f"not a duration: longer than {_MAX_DURATION_TEXT} characters")
    s = text.strip()
    pos, total = 0, 0.0
    while pos < len(s):
        m = _DURATION.match(s, pos)
        if m is None or m.end() == pos:
            raise ValueError(f"not a duration: {text!r} (use e.g. 90, 90s, 5m, 1h)")
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if not s or total <= 0:
        raise ValueError(f"not a positive duration: {text!r}")
    if not math.isfinite(total) or total > MAX_DURATION_S:
        raise ValueError(f"{text!r} is longer than ten years")
    return total


def format_duration(seconds: float) -> str:
    s = int(round(seconds))
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    if h:
        return f"{h}h{m:02d}m{sec:02d}s"
    if m:
        return f"{m}m{sec:02d}s"
    return f"{sec}s"


def parse_size(text: str | int) -> int:
    if isinstance(text, bool):
        raise ValueError("not a size")
    if isinstance(text, int):
        if text <= 0:
            raise ValueError("must be positive")
        return text
    m = _SIZE.fullmatch(text.strip())
    if m is None:
        raise ValueError(f"not a size: {text!r} (use e.g. 65536, 64MiB, 1GiB)")
    return int(m.group(1)) * _SIZE_UNITS[m.group(2)]
