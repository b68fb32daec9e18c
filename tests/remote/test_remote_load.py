# SPDX-License-Identifier: GPL-3.0-or-later
"""A bad-token flood at the TLS port (from its own namespace) must not stop a legitimate confirm
from another source, nor delay an armed deadline. Bounded: 20 s of wrk, 50 connections, our
namespaces."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests import nslab
from tests.pki import Pki
from tests.remote.conftest import PORT, lab_for
from tests.waiting import wait_for

pytestmark = pytest.mark.slow
FLOOD_S = 20


def test_flood_of_bad_tokens(tmp_path: Path, pki: Pki) -> None:
    if shutil.which("wrk") is None:  # scripts/lib/bootstrap.sh installs it
        why = "needs wrk (apt-get install wrk)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"{why}; CI=true forbids skipping", pytrace=False)
        pytest.skip(why)
    with lab_for(tmp_path, pki) as lab, nslab.namespaces("flood") as fl:
        flood = fl["flood"]
        nslab.veth(lab.host.ns, "h1", flood, "f0")
        nslab.ip("-n", lab.host.ns, "addr", "add", "198.51.100.1/24", "dev", "h1")
        nslab.ip("-n", flood, "addr", "add", "198.51.100.2/24", "dev", "f0")
        wait_for(
            lambda: nslab.ns_exec(flood, ["ping", "-c1", "-W1", "198.51.100.1"],
                                  capture_output=True).returncode == 0,
            "the flood namespace to reach the host",
        )  # fmt: skip
        flood_proc = nslab.ns_popen(
            flood,
            [
                "wrk",
                "-t2",
                "-c50",
                f"-d{FLOOD_S}s",
                "--timeout",
                "5s",
                "-H",
                "Authorization: Bearer not-a-token",
                f"https://198.51.100.1:{PORT}/v1/status",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            time.sleep(2)  # the scenario: the flood is under way before the transaction starts
            # an armed transaction whose deadline passes in the middle of the flood
            armed = lab.peer.call("192.0.2.1", "start", token=lab.token, timeout="6s")
            assert armed["ok"], armed
            deadline = armed["doc"]["transaction"]["deadline_wall_s"]
            # a change that is never confirmed: the deadline restores the original, and only
            # this changed set is remembered as rejected (the confirm below keeps the original)
            lab.host.write("etc/nct/addr.conf", "192.0.2.1/24\n# never confirmed\n")
            tid = armed["doc"]["transaction"]["id"]

            def ended() -> dict[str, Any] | None:
                last: dict[str, Any] | None = lab.host.local("status").get("last")
                return last if last is not None and last.get("id") == tid else None

            last = wait_for(ended, f"the rollback of {tid} at its deadline", detail=lab.host.log)
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
            out, _ = flood_proc.communicate(timeout=FLOOD_S + 30)
        finally:
            if flood_proc.poll() is None:
                flood_proc.kill()
                flood_proc.wait()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    refused = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    conn = re.search(r"Socket errors: connect (\d+)", out)
    print(
        f"\nflood: {rps:.0f} req/s for {FLOOD_S}s, {total} requests, "
        f"{refused.group(1) if refused else 0} refused (401/429), "
        f"{conn.group(1) if conn else 0} connections refused; "
        f"rollback at deadline finished {fired_late_ms:.1f} ms after it; "
        f"legit start+confirm (2 fresh TLS clients) took {legit_s * 1000:.0f} ms"
    )
    # A real flood, not a benchmark figure (the machine may be shared and loaded): requests
    # answered plus connections the listener's limits refused.
    attempts = total + (int(conn.group(1)) if conn else 0)
    assert attempts >= 1000, out
    # Not one bad-token request got through: every response was an error (401 or 429).
    assert refused is not None and int(refused.group(1)) == total, out
    # The rollback (hook included) ends ~20-120 ms after the deadline on this machine, up to
    # ~520 ms at load average 12-20 with other test runs; a loop starved by the flood would end
    # it only after the flood, 10+ s later. The bound separates the two with a margin.
    assert fired_late_ms < 2000, fired_late_ms
