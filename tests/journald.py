# SPDX-License-Identifier: GPL-3.0-or-later
"""A fake journald for the tiers that assert on journal fields: a datagram socket speaking
journald's native protocol (``KEY=value`` lines, or a name, a 64-bit length and binary data)."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import socket
import struct
import threading
import time
from pathlib import Path


def parse_native(data: bytes) -> dict[str, str]:
    """One datagram of journald's native protocol, as a dict of its fields."""
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
    """A datagram socket speaking journald's native protocol; every message, parsed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.msgs: list[dict[str, str]] = []
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self._sock.bind(str(path))
        os.chmod(path, 0o666)
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
                self.msgs.append(parse_native(data))

    def wrapper(self) -> list[str]:
        """argv prefix: a private /run whose journal socket is this one."""
        script = (
            "mount --make-rprivate / && mount -t tmpfs tmpfs /run && "
            "mkdir -p /run/systemd/journal && "
            f'ln -s {shlex.quote(str(self.path))} /run/systemd/journal/socket && exec "$@"'
        )
        return ["unshare", "-m", "sh", "-c", script, "sh"]

    def find(self, **fields: str) -> list[dict[str, str]]:
        return [m for m in list(self.msgs) if all(m.get(k) == v for k, v in fields.items())]

    def wait_for(self, timeout_s: float = 10.0, **fields: str) -> dict[str, str]:
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if found := self.find(**fields):
                return found[0]
            time.sleep(0.05)
        raise AssertionError(
            f"no journal entry with {fields} in {timeout_s}s; got: "
            + json.dumps([m.get("MESSAGE") for m in self.msgs][-30:], indent=1)
        )

    def close(self) -> None:
        self._stop = True
        self._thread.join(2)
        self._sock.close()
