# SPDX-License-Identifier: GPL-3.0-or-later
"""R52: every transition reaches journald with TXN_ID, PHASE, ACTOR, REASON and a MESSAGE_ID.

journald is not running here, so the test gives the process a private /run with a datagram
socket at /run/systemd/journal/socket and reads the native protocol (testing.md).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CHILD = r"""
import json, os, socket, struct, sys, threading
from pathlib import Path

os.makedirs("/run/systemd/journal", exist_ok=True)
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind("/run/systemd/journal/socket")
sock.settimeout(0.5)

from netcfg_txn.core import config

from netcfg_txn.host import sd
from netcfg_txn.engine import Engine
from netcfg_txn.core.model import Actor, Instant
from netcfg_txn.net.network import HookNetwork

class Clock:
    def now(self):
        return Instant("b", 100.0, 1.0)

sd.setup_logging("netcfg-txnd", "INFO")
base = Path(sys.argv[1])
root = base / "root"
(root / "etc/network").mkdir(parents=True)
(root / "etc/network/interfaces").write_text("auto lo\n")
cfg = config.parse([("t", '[files]\npresets=["ifupdown"]\n')], state_dir=base / "state")
eng = Engine(root, cfg, Clock(), HookNetwork(""))
me = Actor(kind="local", uid=0, pid=4242, command="netcfg-txn start")
eng.start(me)
(root / "etc/network/interfaces").write_text("broken\n")
eng.rollback(me)

def parse(data):
    out, i = {}, 0
    while i < len(data):
        nl = data.index(b"\n", i)
        line = data[i:nl]
        if b"=" in line:
            k, v = line.split(b"=", 1)
            out[k.decode()] = v.decode()
            i = nl + 1
        else:
            n = struct.unpack("<Q", data[nl + 1:nl + 9])[0]
            out[line.decode()] = data[nl + 9:nl + 9 + n].decode()
            i = nl + 9 + n + 1
    return out

msgs = []
while True:
    try:
        msgs.append(parse(sock.recv(65536)))
    except socket.timeout:
        break
print(json.dumps(msgs))
"""


def test_transitions_carry_structured_fields(tmp_path: Path) -> None:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare: a private /run for a fake journald socket")
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    r = subprocess.run(
        [
            "unshare",
            "-m",
            "sh",
            "-c",
            'mount --make-rprivate / && mount -t tmpfs tmpfs /run && exec "$0" "$@"',
            sys.executable,
            str(script),
            str(tmp_path),
        ],  # fmt: skip
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    msgs = json.loads(r.stdout)
    by_id = {m.get("MESSAGE_ID"): m for m in msgs if "MESSAGE_ID" in m}
    from netcfg_txn import engine

    started = by_id[engine.MSG_STARTED]
    assert started["SYSLOG_IDENTIFIER"] == "netcfg-txnd"
    assert started["PHASE"] == "open" and started["TXN_ID"]
    assert "pid=4242" in started["ACTOR"] and started["PRIORITY"] == "6"
    done = by_id[engine.MSG_ROLLED_BACK]
    assert (done["PHASE"], done["REASON"]) == ("rolled-back", "manual")
    assert done["TXN_ID"] == started["TXN_ID"]
    assert "rewrite /etc/network/interfaces" in done["MESSAGE"]  # per-file actions are logged
    assert engine.MSG_ROLLBACK_BEGUN in by_id
