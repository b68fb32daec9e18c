# SPDX-License-Identifier: GPL-3.0-or-later
"""A bad-token flood at the TLS port (from its own namespace) must not stop a legitimate confirm
from another source, nor delay an armed deadline. Bounded: 20 s, 50 connections, our namespaces."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests import nslab
from tests.pki import Pki
from tests.remote.conftest import PORT, lab_for

pytestmark = pytest.mark.slow
FLOOD_S = 20


def test_flood_of_bad_tokens(tmp_path: Path, pki: Pki) -> None:
    if shutil.which("hey") is None:
        pytest.skip("needs hey (apt-get install hey)")
    with lab_for(tmp_path, pki) as lab, nslab.namespaces("flood") as fl:
        flood = fl["flood"]
        nslab.veth(lab.host.ns, "h1", flood, "f0")
        nslab.ip("-n", lab.host.ns, "addr", "add", "198.51.100.1/24", "dev", "h1")
        nslab.ip("-n", flood, "addr", "add", "198.51.100.2/24", "dev", "f0")
        time.sleep(0.3)
        hey = nslab.ns_popen(
            flood,
            [
                "hey",
                "-z",
                f"{FLOOD_S}s",
                "-c",
                "50",
                "-H",
                "Authorization: Bearer not-a-token",
                f"https://198.51.100.1:{PORT}/v1/status",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            time.sleep(2)
            # an armed transaction whose deadline passes in the middle of the flood
            armed = lab.peer.call("192.0.2.1", "start", token=lab.token, timeout="6s")
            assert armed["ok"], armed
            deadline = armed["doc"]["transaction"]["deadline_wall_s"]
            time.sleep(7)
            last = lab.host.local("status")["last"]
            assert last["id"] == armed["doc"]["transaction"]["id"], last
            fired_late_ms = (last["ended_wall_s"] - deadline) * 1000
            # and a legitimate start + confirm from the peer's address, during the flood
            t0 = time.monotonic()
            s = lab.peer.call("192.0.2.1", "start", token=lab.token, timeout="60s")
            c = lab.peer.call(
                "192.0.2.1",
                "confirm",
                s["doc"]["transaction"]["id"],
                s["doc"]["token"],
                token=lab.token,
            )
            legit_s = time.monotonic() - t0
            assert s["ok"] and c["ok"], (s, c)
            out, _ = hey.communicate(timeout=FLOOD_S + 30)
        finally:
            if hey.poll() is None:
                hey.kill()
                hey.wait()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    codes = dict(re.findall(r"\[(\d{3})\]\s+(\d+) responses", out))
    print(
        f"\nflood: {rps:.0f} req/s for {FLOOD_S}s, responses {codes}; "
        f"rollback at deadline finished {fired_late_ms:.1f} ms after it; "
        f"legit start+confirm (2 fresh TLS clients) took {legit_s * 1000:.0f} ms"
    )
    assert rps >= 1000, out
    assert set(codes) <= {"401", "429"}, out
    assert fired_late_ms < 100, fired_late_ms
