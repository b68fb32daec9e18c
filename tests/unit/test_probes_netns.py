# SPDX-License-Identifier: GPL-3.0-or-later
"""Probes against addresses that exist, refuse, or silently drop, inside namespaces we create.

Topology: probe ns (192.0.2.1/24, veth) <-> peer ns (192.0.2.2/24). 198.51.100.0/24 is routed via
the peer, which does not forward: packets there vanish, so probes to it time out.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest

from tests import nslab
from tests.waiting import wait_for

pytestmark = pytest.mark.netns

_SCRIPT = textwrap.dedent(
    """
    import asyncio, dataclasses, json, sys
    from netcfg_txn.confirm.probes import ProbeSettings, parse_probe, run_round
    specs = json.loads(sys.argv[1])
    settings = ProbeSettings(settle_s=0, interval_s=0.1, timeout_s=0.5, retries=1, rounds=1)
    r = asyncio.run(run_round([parse_probe(s) for s in specs], settings))
    print(json.dumps([dataclasses.asdict(x) for x in r.results]))
    """
)


@pytest.fixture(scope="module")
def probe_ns() -> Iterator[dict[str, str]]:
    if (why := nslab.why_not()) is not None:
        pytest.skip(why)
    with nslab.namespaces("probe", "peer") as ns:
        nslab.veth(ns["probe"], "nct0", ns["peer"], "nct1")
        nslab.ip("-n", ns["probe"], "addr", "add", "192.0.2.1/24", "dev", "nct0")
        nslab.ip("-n", ns["peer"], "addr", "add", "192.0.2.2/24", "dev", "nct1")
        nslab.ip("-n", ns["probe"], "route", "add", "198.51.100.0/24", "via", "192.0.2.2")
        listener = nslab.ns_popen(
            ns["peer"],
            [sys.executable, "-c", "import socket,time\n"
             "s=socket.socket(); s.bind(('192.0.2.2', 2222)); s.listen(); time.sleep(60)"],
        )  # fmt: skip
        try:
            wait_for(lambda: nslab.listening(ns["peer"], 2222), "the peer's listener on :2222")
            yield ns
        finally:
            listener.kill()
            listener.wait()


def _probe(ns: dict[str, str], specs: list[str]) -> dict[str, dict[str, object]]:
    out = nslab.ns_exec(
        ns["probe"],
        [sys.executable, "-c", _SCRIPT, json.dumps(specs)],
        capture_output=True,
        timeout=30,
    )
    assert isinstance(out, subprocess.CompletedProcess)
    assert out.returncode == 0, out.stderr
    return {r["spec"]: r for r in json.loads(out.stdout)}


def test_reachable_refused_and_blackholed(probe_ns: dict[str, str]) -> None:
    r = _probe(
        probe_ns,
        [
            "tcp:192.0.2.2:2222",
            "tcp:192.0.2.2:2223",
            "tcp:198.51.100.7:22",
            "icmp:192.0.2.2",
            "icmp:198.51.100.7",
            "iface:nct0",
        ],
    )
    assert r["tcp:192.0.2.2:2222"]["ok"] and r["tcp:192.0.2.2:2222"]["detail"] == "connected"
    assert r["tcp:192.0.2.2:2223"]["ok"] and "refused" in str(r["tcp:192.0.2.2:2223"]["detail"])
    dropped = r["tcp:198.51.100.7:22"]
    assert not dropped["ok"] and "no answer within 0.5s" == dropped["detail"]
    assert dropped["attempts"] == 2 and 1.0 <= float(str(dropped["elapsed_s"])) < 2.5
    assert r["icmp:192.0.2.2"]["ok"]
    assert not r["icmp:198.51.100.7"]["ok"]
    assert r["iface:nct0"]["ok"]


def _wait_operstate(ns: str, dev: str, state: str) -> None:
    import time

    for _ in range(50):
        out = nslab.ns_exec(ns, ["cat", f"/sys/class/net/{dev}/operstate"], capture_output=True)
        if out.stdout.strip() == state:
            return
        time.sleep(0.1)
    raise AssertionError(f"{dev} never became {state}")


def test_link_down_fails_iface_and_tcp(probe_ns: dict[str, str]) -> None:
    nslab.ip("-n", probe_ns["peer"], "link", "set", "nct1", "down")
    try:
        _wait_operstate(probe_ns["probe"], "nct0", "down")  # linkwatch lags up to ~1 s
        r = _probe(probe_ns, ["iface:nct0", "tcp:192.0.2.2:2222"])
        assert not r["iface:nct0"]["ok"]
        assert r["iface:nct0"]["detail"] == "operstate down"
        assert not r["tcp:192.0.2.2:2222"]["ok"]
    finally:
        nslab.ip("-n", probe_ns["peer"], "link", "set", "nct1", "up")
        _wait_operstate(probe_ns["probe"], "nct0", "up")
