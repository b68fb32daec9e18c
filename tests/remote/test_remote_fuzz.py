# SPDX-License-Identifier: GPL-3.0-or-later
"""Hypothesis fuzz of every route over TLS: no 5xx, always a JSON envelope, no state change."""

from __future__ import annotations

import sys
from pathlib import Path

from tests import nslab
from tests.pki import Pki
from tests.remote.conftest import ENV, PORT, REPO, Lab, lab_for, wait_peer


def test_fuzz_routes_no_500_no_state_change(tmp_path: Path, pki: Pki) -> None:
    # no rate limit here, or most generated requests would only ever see 429
    with lab_for(tmp_path, pki, extra="auth_failures_per_minute = 100000") as lab:
        _fuzz(lab)


def _fuzz(lab: Lab) -> None:
    started = lab.peer.call("192.0.2.1", "start", token=lab.token, timeout="5m")
    tid = started["doc"]["transaction"]["id"]
    before = lab.host.state()
    # a peer with only "status" rights, so a lucky generated body can never start/confirm/roll back
    weak = lab.host.add_peer("fuzz", operations=["status"])
    wait_peer(lab, weak)
    out = nslab.ns_exec(
        lab.peer.ns,
        [
            sys.executable,
            str(REPO / "tests/remote/fuzz_routes.py"),
            "192.0.2.1",
            str(PORT),
            str(lab.peer.pki.ca),
            weak,
            tid,
        ],
        capture_output=True,
        env=ENV,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert lab.host.state() == before
    assert "Traceback" not in lab.host.log() and "this is a bug" not in lab.host.log()
