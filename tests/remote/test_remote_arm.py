# SPDX-License-Identifier: GPL-3.0-or-later
"""Remote ``arm`` (extend) over TLS from the peer namespace: it moves the deadline, the old
deadline then passes without a rollback; refused arms (wrong transaction token, no peer token,
a peer without the ``arm`` operation) change nothing; an armed file set that was rolled back by
timeout needs ``force``, which remote callers do not get."""

from __future__ import annotations

import time

from tests.remote.conftest import Lab, wait_peer

HOST = "192.0.2.1"


def test_remote_arm_moves_the_deadline_and_refusals_change_nothing(lab: Lab) -> None:
    p, h = lab.peer, lab.host
    no_arm = h.add_peer("no-arm", operations=["status", "start", "confirm", "rollback"])
    wait_peer(lab, no_arm)
    s = p.call(HOST, "start", token=lab.token, timeout="60s")
    assert s["ok"], s
    tid, ttok = s["doc"]["transaction"]["id"], s["doc"]["token"]
    first = s["doc"]["transaction"]["deadline_wall_s"]
    before = h.state()
    refused = {
        "wrong txn token": (p.call(HOST, "arm", tid, "x" * 43, "5s", token=lab.token), "bad-token"),
        "no peer token": (p.call(HOST, "arm", tid, ttok, "5s"), "bad-token"),
        "arm not allowed": (p.call(HOST, "arm", tid, ttok, "5s", token=no_arm), "not-permitted"),
        "bad duration": (p.call(HOST, "arm", tid, ttok, "soon", token=lab.token), "bad-request"),
    }
    for what, (doc, code) in refused.items():
        assert not doc["ok"] and doc["code"] == code, (what, doc)
    assert h.state() == before
    # Arm moves the deadline both ways: first to 10 s from now (earlier than the start's)...
    t0 = time.time()
    short = p.call(HOST, "arm", tid, ttok, "10s", token=lab.token)
    assert short["ok"], short
    near = short["doc"]["transaction"]["deadline_wall_s"]
    assert t0 + 9 <= near <= time.time() + 10.5 and near < first - 30, (t0, near, first)
    # ... then far out again; the 10 s deadline it replaced passes without a rollback.
    far = p.call(HOST, "arm", tid, ttok, "120s", token=lab.token)
    assert far["ok"], far
    moved = far["doc"]["transaction"]["deadline_wall_s"]
    assert moved > first + 30, (first, moved)
    # The scenario: the replaced 10 s deadline passes on the real clock.
    time.sleep(max(0.0, near - time.time()) + 1.5)
    st = h.local("status")
    assert st["state"] == "open" and st["transaction"]["id"] == tid, st
    assert st["transaction"]["deadline_wall_s"] == moved
    assert p.call(HOST, "confirm", tid, ttok, token=lab.token)["ok"]
    assert h.local("status")["last"]["outcome"] == "committed"


def test_remote_arm_of_a_set_rolled_back_by_timeout_is_refused(lab: Lab) -> None:
    p, h = lab.peer, lab.host
    s = p.call(HOST, "start", token=lab.token, timeout="2s")
    tid = s["doc"]["transaction"]["id"]
    h.write("etc/nct/addr.conf", "192.0.2.1/24\n# bad\n")
    end = time.monotonic() + 20
    while (h.local("status").get("last") or {}).get("id") != tid:
        assert time.monotonic() < end, h.log()
        time.sleep(0.1)
    assert h.local("status")["last"]["reason"] == "timeout"
    s = p.call(HOST, "start", token=lab.token, timeout="30s")
    tid, ttok = s["doc"]["transaction"]["id"], s["doc"]["token"]
    h.write("etc/nct/addr.conf", "192.0.2.1/24\n# bad\n")  # the very set that timed out
    doc = p.call(HOST, "arm", tid, ttok, "60s", token=lab.token)
    assert not doc["ok"] and doc["code"] == "rejected-config" and doc["exit"] == 78, doc
    assert "rolled back before" in doc["message"]
    assert p.call(HOST, "rollback", tid, ttok, token=lab.token)["ok"]
