# SPDX-License-Identifier: GPL-3.0-or-later
"""Half-open TLS connections against HOST:PORT (run inside the test's own namespace).

Keeps COUNT TCP connections open from SOURCES loopback source addresses (127.0.1.1, ...): half of
them send nothing, half send the 5-byte header of a TLS handshake record and then nothing, so the
server sits in its TLS handshake. A connection the server closes is reopened (at most RATE per
second), so the pressure stays on. Prints one JSON line per 0.5 s; stops when stdin closes or after
MAX_S seconds. Bounded in count and time.

    flood.py HOST PORT COUNT SOURCES RATE MAX_S
"""

from __future__ import annotations

import errno
import json
import os
import selectors
import socket
import sys
import time

PARTIAL_CLIENT_HELLO = b"\x16\x03\x01\x02\x00"  # handshake record, 512 bytes announced


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    count, sources, rate, max_s = (int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]),
                                   float(sys.argv[6]))  # fmt: skip
    sel = selectors.DefaultSelector()
    sel.register(sys.stdin, selectors.EVENT_READ, "stdin")
    stats = {"open": 0, "made": 0, "closed_by_server": 0, "errors": 0}
    pending = 0  # connections to (re)open
    tokens = float(count)  # the first COUNT go at once, reopens at RATE/s
    last, t0, last_print = time.monotonic(), time.monotonic(), 0.0
    n = 0

    def open_one() -> None:
        nonlocal n
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.bind((f"127.0.1.{1 + n % sources}", 0))
            err = s.connect_ex((host, port))
        except OSError:
            s.close()
            stats["errors"] += 1
            return
        n += 1
        if err not in (0, errno.EINPROGRESS):
            s.close()
            stats["errors"] += 1
            return
        stats["made"] += 1
        sel.register(s, selectors.EVENT_WRITE, ["connecting", n % 2 == 0])

    pending = count
    while time.monotonic() - t0 < max_s:
        now = time.monotonic()
        tokens = min(float(count), tokens + (now - last) * rate)
        last = now
        while pending and tokens >= 1:
            open_one()
            pending -= 1
            tokens -= 1
        for key, _ev in sel.select(timeout=0.05):
            if key.data == "stdin":
                if not os.read(sys.stdin.fileno(), 1024):
                    return
                continue
            s = key.fileobj
            assert isinstance(s, socket.socket)
            state = key.data
            if state[0] == "connecting":
                if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0:
                    sel.unregister(s)
                    s.close()
                    stats["errors"] += 1
                    pending += 1
                    continue
                if state[1]:
                    try:
                        s.send(PARTIAL_CLIENT_HELLO)
                    except OSError:
                        pass
                stats["open"] += 1
                sel.modify(s, selectors.EVENT_READ, ["open", state[1]])
            else:
                try:
                    data = s.recv(4096)
                except OSError:
                    data = b""
                if not data:
                    sel.unregister(s)
                    s.close()
                    stats["open"] -= 1
                    stats["closed_by_server"] += 1
                    pending += 1
        if now - last_print >= 0.5:
            last_print = now
            print(json.dumps(stats), flush=True)


if __name__ == "__main__":
    main()
