# SPDX-License-Identifier: GPL-3.0-or-later
"""Confirm policies with real probes from the host namespace towards the peer namespace."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests import nslab
from tests.remote.conftest import Lab
from tests.waiting import wait_for

HOST = "192.0.2.1"

_FLAPPER = """
import http.server, itertools
n = itertools.count()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if next(n) % 2 == 0 else 503)
        self.end_headers()
    def log_message(self, *a):
        pass
http.server.HTTPServer(("192.0.2.2", 8081), H).serve_forever()
"""


@pytest.fixture
def web(lab: Lab) -> Iterator[None]:
    """Two HTTP servers in the peer namespace: :8080 always 200, :8081 alternating 200/503."""
    procs = [
        nslab.ns_popen(
            lab.peer.ns,
            [sys.executable, "-m", "http.server", "-b", "192.0.2.2", "8080"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
        nslab.ns_popen(lab.peer.ns, [sys.executable, "-c", _FLAPPER]),
    ]
    wait_for(
        lambda: nslab.listening(lab.peer.ns, 8080) and nslab.listening(lab.peer.ns, 8081),
        "the peer's HTTP servers to listen on :8080 and :8081",
    )
    try:
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait()


def _start(lab: Lab, **kw: Any) -> str:
    doc = lab.peer.call(HOST, "start", token=lab.token, **kw)
    assert doc["ok"], doc
    return str(doc["doc"]["transaction"]["id"])


def _outcome(lab: Lab, tid: str, seconds: float) -> dict[str, Any]:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        last = lab.host.local("status").get("last") or {}
        if last.get("id") == tid:
            return dict(last)
        time.sleep(0.2)
    raise AssertionError(f"{tid} still open after {seconds}s\n{lab.host.log()}")


@pytest.mark.parametrize(
    "probes",
    [
        ["tcp:192.0.2.2:22"],  # refused counts as reachable (R45)
        ["icmp:192.0.2.2"],
        ["http://192.0.2.2:8080/"],
        ["tcp:192.0.2.2:22", "icmp:192.0.2.2", "http://192.0.2.2:8080/", "iface:h0"],
    ],
    ids=["tcp", "icmp", "http", "all"],
)
def test_passing_probes_commit(lab: Lab, web: None, probes: list[str]) -> None:
    t0 = time.monotonic()
    tid = _start(lab, timeout="30s", probes=probes, policy="probes")
    last = _outcome(lab, tid, 15)
    assert last["outcome"] == "committed", last
    assert time.monotonic() - t0 < 10


def test_failing_probe_rolls_back_fast(lab: Lab) -> None:
    lab.host.write("etc/nct/addr.conf", "192.0.2.1/24\n")
    tid = _start(
        lab,
        timeout="30s",
        probes=["tcp:198.51.100.7:22 timeout=300ms retries=0"],
        policy="probes",
        probe_settings={"fail_fast": True, "settle_s": 3},
    )
    lab.host.write("etc/nct/addr.conf", "192.0.2.1/24\n# changed\n")
    last = _outcome(lab, tid, 10)
    assert last["outcome"] == "rolled-back" and last["reason"] == "health", last
    assert lab.host.read("etc/nct/addr.conf") == "192.0.2.1/24\n"


def test_flapping_probe_never_commits_and_deadline_decides(lab: Lab, web: None) -> None:
    tid = _start(
        lab,
        timeout="4s",
        probes=["http://192.0.2.2:8081/ retries=0"],
        policy="probes",
        probe_settings={"rounds": 2, "interval_s": 0.2, "on_failure": "ignore"},
    )

    def after_three_rounds() -> dict[str, Any] | None:
        st = lab.host.local("status")
        return st if st.get("probes", {}).get("rounds", 0) >= 3 else None

    st = wait_for(after_three_rounds, "three probe rounds", detail=lab.host.log)
    assert st["probes"]["rounds"] >= 3 and st["probes"]["streak"] <= 1, st["probes"]
    # policy "probes": only the probes may commit, not a remote confirm
    assert st["transaction"]["deadline_wall_s"] - time.time() < 4  # never extended (R37)
    last = _outcome(lab, tid, 10)
    assert last["outcome"] == "rolled-back" and last["reason"] == "timeout", last


def test_policy_probes_refuses_manual_remote_confirm(lab: Lab) -> None:
    doc = lab.peer.call(
        HOST,
        "start",
        token=lab.token,
        timeout="30s",
        probes=["tcp:198.51.100.7:22 timeout=300ms"],
        policy="probes",
        probe_settings={"on_failure": "ignore"},
    )
    tid, tok = doc["doc"]["transaction"]["id"], doc["doc"]["token"]
    refused = lab.peer.call(HOST, "confirm", tid, tok, token=lab.token)
    assert not refused["ok"] and refused["code"] == "not-permitted", refused
    both = lab.peer.call(HOST, "rollback", tid, tok, token=lab.token)
    assert both["ok"]
    doc = lab.peer.call(
        HOST,
        "start",
        token=lab.token,
        timeout="30s",
        probes=["tcp:198.51.100.7:22 timeout=300ms"],
        policy="probes-or-manual",
        probe_settings={"on_failure": "ignore"},
    )
    ok = lab.peer.call(
        HOST, "confirm", doc["doc"]["transaction"]["id"], doc["doc"]["token"], token=lab.token
    )
    assert ok["ok"], ok


def test_bad_probe_spec_refused_before_snapshot(lab: Lab) -> None:
    doc = lab.peer.call(HOST, "start", token=lab.token, probes=["icmp:-f"], policy="probes")
    assert not doc["ok"] and doc["code"] == "bad-request" and doc["exit"] == 2
    assert not lab.host.local("status").get("transaction")


# --------------------------------------------------------------- local CLI: start --probe


def _local_start(lab: Lab, *args: str) -> str:
    doc = lab.host.local("start", "--timeout", "30s", *args)
    assert doc["ok"], doc
    return str(doc["transaction"]["id"])


def test_local_probe_failing_after_settle_rolls_back_under_manual(lab: Lab) -> None:
    """The default policy (manual) and no other option: a given probe still matters."""
    # settle_s: time for the test to make its change before the first (failing) round
    tid = _local_start(lab, "--probe", "tcp:198.51.100.7:22 timeout=300ms retries=0",
                       "--probe-setting", "settle_s=3")  # fmt: skip
    lab.host.write("etc/nct/addr.conf", "192.0.2.1/24\n# changed\n")
    last = _outcome(lab, tid, 15)
    assert last["outcome"] == "rolled-back" and last["reason"] == "health", last
    assert lab.host.read("etc/nct/addr.conf") == "192.0.2.1/24\n"


def test_local_probe_passing_keeps_it_open_for_a_manual_commit(lab: Lab, web: None) -> None:
    tid = _local_start(lab, "--probe", "http://192.0.2.2:8080/", "--probe", "icmp:192.0.2.2")
    end = time.monotonic() + 15
    while (lab.host.local("status").get("probes") or {}).get("rounds", 0) < 2:
        assert time.monotonic() < end, lab.host.log()
        time.sleep(0.1)
    st = lab.host.local("status")
    assert st["transaction"]["id"] == tid and st["probes"]["streak"] >= 2, st
    assert lab.host.local("commit")["ok"]
    assert _outcome(lab, tid, 5)["outcome"] == "committed"


def test_local_probe_failure_ignore_leaves_it_to_the_deadline(lab: Lab) -> None:
    doc = lab.host.local(
        "start", "--timeout", "3s", "--probe", "tcp:198.51.100.7:22 timeout=300ms retries=0",
        "--probe-failure", "ignore",
    )  # fmt: skip
    assert doc["ok"], doc
    last = _outcome(lab, doc["transaction"]["id"], 15)
    assert last["outcome"] == "rolled-back" and last["reason"] == "timeout", last


def test_local_policy_probes_commits_on_passing_probes(lab: Lab) -> None:
    tid = _local_start(lab, "--probe", "iface:h0", "--policy", "probes")
    assert _outcome(lab, tid, 15)["outcome"] == "committed"


def test_local_bad_probe_is_a_usage_error_before_any_snapshot(lab: Lab) -> None:
    doc = lab.host.local("start", "--probe", "icmp:-f")
    assert not doc["ok"] and doc["error"]["code"] == "usage", doc
    doc = lab.host.local("start", "--policy", "probes")
    assert not doc["ok"] and "need at least one --probe" in doc["error"]["message"], doc
    assert not lab.host.local("status").get("transaction")
