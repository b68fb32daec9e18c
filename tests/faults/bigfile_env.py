# SPDX-License-Identifier: GPL-3.0-or-later
"""Helpers of the big/unreadable-file fault cases: a fake journald (the native protocol on a
datagram socket, reached through a private /run: see testing.md), peak RSS of a process, and
the daemon's mount namespace for faults only the daemon must see."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

import pytest

CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def need(*tools: str) -> None:
    """Skip (or, with CI=true, fail) when not root or a tool is missing."""
    why = None
    if os.geteuid() != 0:
        why = "needs root (the root-only control socket, mount namespaces)"
    elif missing := [t for t in tools if shutil.which(t) is None]:
        why = f"needs {', '.join(missing)}"
    if why is not None:
        if CI:
            pytest.fail(f"fault tier cannot run (CI=true forbids skipping): {why}")
        pytest.skip(why)


def _parse_native(data: bytes) -> dict[str, str]:
    out, i = {}, 0
    while i < len(data):
        nl = data.index(b"\n", i)
        line = data[i:nl]
        if b"=" in line:
            k, v = line.split(b"=", 1)
            out[k.decode()] = v.decode(errors="replace")
            i = nl + 1
        else:
            n = struct.unpack("<Q", data[nl + 1 : nl + 9])[0]
            out[line.decode()] = data[nl + 9 : nl + 9 + n].decode(errors="replace")
            i = nl + 9 + n + 1
    return out


class Journal:
    """Every message sent to this socket, parsed, with the wall time it arrived (``_RECV``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.msgs: list[dict[str, str]] = []
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self._sock.bind(str(path))
        self._sock.settimeout(0.2)
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop:
            try:
                data = self._sock.recv(1 << 20)
            except TimeoutError:
                continue
            except OSError:
                return
            with contextlib.suppress(ValueError, IndexError, struct.error):
                self.msgs.append({**_parse_native(data), "_RECV": repr(time.time())})

    def wrapper(self) -> list[str]:
        """argv prefix: a private mount namespace whose /run/systemd/journal/socket is ours."""
        script = (
            "mount --make-rprivate / && mount -t tmpfs tmpfs /run && "
            "mkdir -p /run/systemd/journal && "
            f'ln -s {shlex.quote(str(self.path))} /run/systemd/journal/socket && exec "$@"'
        )
        return ["unshare", "-m", "sh", "-c", script, "sh"]

    def wait_for(self, timeout_s: float = 15.0, **fields: str) -> dict[str, str]:
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            for m in list(self.msgs):
                if all(m.get(k) == v for k, v in fields.items()):
                    return m
            time.sleep(0.05)
        raise AssertionError(
            f"no journal entry with {fields} in {timeout_s}s; got: "
            + json.dumps([m.get("MESSAGE") for m in self.msgs][-30:], indent=1)
        )

    def close(self) -> None:
        self._stop = True
        self._thread.join(2)
        self._sock.close()


def peak_rss_mb(pid: int) -> float:
    """VmHWM: the most resident memory the process ever had."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmHWM for pid {pid}")


# Runs a command and reports its peak RSS (ru_maxrss of its only child) on stderr's last line.
RSS_WRAPPER = (
    "import resource, subprocess, sys\n"
    "r = subprocess.run(sys.argv[1:])\n"
    "kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
    "print(f'PEAK_RSS_KB={kb}', file=sys.stderr)\n"
    "sys.exit(r.returncode)\n"
)


def in_mount_ns(pid: int, *argv: str) -> None:
    """Run ``argv`` inside the mount namespace of ``pid`` (the daemon's private one)."""
    subprocess.run(["nsenter", "-t", str(pid), "-m", *argv], check=True, timeout=30)
