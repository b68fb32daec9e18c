# SPDX-License-Identifier: GPL-3.0-or-later
"""Network namespaces for tests: uniquely named (``nct-<6 hex>``), veth only, RFC 5737 addresses,
always deleted in ``finally``. Nothing here touches the machine's own interfaces."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator, Sequence


def why_not() -> str | None:
    if os.geteuid() != 0:
        return "needs root (creates network namespaces)"
    if shutil.which("ip") is None:
        return "needs iproute2 (ip)"
    return None


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def ns_exec(ns: str, argv: Sequence[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", ns, *argv], text=True, **kw)  # type: ignore[call-overload, no-any-return]


def ns_popen(ns: str, argv: Sequence[str], **kw: object) -> subprocess.Popen[str]:
    return subprocess.Popen(["ip", "netns", "exec", ns, *argv], text=True, **kw)  # type: ignore[call-overload, no-any-return]


def listening(ns: str, port: int) -> bool:
    """True once a TCP socket listens on ``port`` in namespace ``ns``."""
    out = ns_exec(ns, ["ss", "-Htln", f"sport = :{port}"], capture_output=True)
    return bool(out.stdout.strip())


@contextlib.contextmanager
def namespaces(*roles: str) -> Iterator[dict[str, str]]:
    """``namespaces("host", "peer")`` → {"host": "nct-h-abc123", ...}; lo up in each."""
    names = {role: f"nct-{uuid.uuid4().hex[:6]}" for role in roles}
    made: list[str] = []
    try:
        for ns in names.values():
            ip("netns", "add", ns)
            made.append(ns)
            ip("-n", ns, "link", "set", "lo", "up")
        yield names
    finally:
        for ns in made:
            kill_ns_processes(ns)
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


def veth(ns_a: str, dev_a: str, ns_b: str, dev_b: str) -> None:
    ip("-n", ns_a, "link", "add", dev_a, "type", "veth", "peer", "name", dev_b, "netns", ns_b)
    ip("-n", ns_a, "link", "set", dev_a, "up")
    ip("-n", ns_b, "link", "set", dev_b, "up")


def kill_ns_processes(ns: str) -> None:
    """Kill what a test left running in its namespace (only ever our own namespaces)."""
    out = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True, check=False)
    for pid in out.stdout.split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), 9)
