# SPDX-License-Identifier: GPL-3.0-or-later
"""Packets lost on an untouched link during a rollback, against bouncing everything.

Method (tests/netns/stacks.py harness). Two namespaces ``nct-<6hex>`` joined by two veth pairs:
host ``nct0`` 192.0.2.1/24 ↔ peer 192.0.2.2, host ``nct1`` 198.51.100.1/24 ↔ peer 198.51.100.2,
both brought up by real ifupdown inside a private mount namespace of the host namespace (its own
/etc/network, /run). netcfg-txnd runs *inside* that sandbox with ``--root /`` and
``[apply] backend = "ifupdown"``. Each repetition: start a transaction, change nct1's address to
198.51.100.11/24 and apply it with ``ifdown nct1; ifup nct1`` (as an admin would), then roll back
through the API while ``ping -i 0.01`` runs across nct0 (the untouched link) and across nct1.
Baseline, same sandbox: the same pings while ``ifdown -a; ifup -a`` runs (what a "restore and
re-apply everything" tool does). Reported: packets lost on nct0 (median), and nct0's
``carrier_changes`` delta (+2 per bounce).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from benchlib.common import REPO, Row, median, progress


def bench(work: Path, quick: bool, reps: int | None) -> list[Row]:
    sys.path.insert(0, str(REPO))
    from tests.netns.stacks import (
        AGENT_ENV,
        DEFAULT_IFACES,
        FloodPing,
        Iface,
        Topology,
        agent_command,
        running_stack,
        wait_until,
        with_iface,
    )

    from netcfg_txn import client

    n = reps or (1 if quick else 5)
    count = 150 if quick else 300  # 10 ms apart: 1.5 s / 3 s of traffic around each action
    changed = with_iface(DEFAULT_IFACES, Iface("nct1", ("198.51.100.11/24",)))
    lost_rb, lost_base, lost_rb_nct1, lost_base_nct1 = [], [], [], []
    cc_rb, cc_base, rb_ms = [], [], []
    base = work / "netloss"
    with Topology.create() as topo, running_stack(topo, base / "box", "ifupdown") as stack:
        box = stack.sandbox
        cfg = box.path("/etc/netcfg-txn/netcfg-txn.toml")
        cfg.write_text(
            '[files]\npresets = ["ifupdown"]\n[timer]\ndefault = "1h"\n'
            '[apply]\nbackend = "ifupdown"\n'
        )
        sock = base / "control"
        env = {**AGENT_ENV, **stack.env()}
        box.popen(
            agent_command(
                "netcfg-txnd",
                "--root",
                "/",
                "--state-dir",
                str(base / "state"),
                "--socket",
                str(sock),
                "--config",
                "/etc/netcfg-txn/netcfg-txn.toml",
            ),
            name="netcfg-txnd",
            env=env,
        )
        wait_until("control socket", sock.exists, 20)
        time.sleep(0.3)

        def call(
            method: str, path: str, body: dict[str, object] | None = None
        ) -> dict[str, object]:
            return client.call(str(sock), method, path, body, timeout_s=120)

        for i in range(n):
            # The transaction under test.
            call("POST", "/v1/transactions", {"timeout": "1h", "allow_pending": True})
            stack.apply(changed, only=["nct1"])
            before = box.carrier_changes("nct0")
            fp0 = FloodPing(box, "192.0.2.2", count)
            fp1 = FloodPing(box, "198.51.100.2", count)
            t0 = time.perf_counter()
            call("POST", "/v1/transactions/current/rollback", {})
            rb_ms.append((time.perf_counter() - t0) * 1e3)
            s0, r0 = fp0.result()
            s1, r1 = fp1.result()
            stack.adopt(DEFAULT_IFACES)
            stack.wait_configured(DEFAULT_IFACES)
            cc_rb.append(box.carrier_changes("nct0") - before)
            lost_rb.append(s0 - r0)
            lost_rb_nct1.append(s1 - r1)
            # Baseline: bounce everything.
            before = box.carrier_changes("nct0")
            fp0 = FloodPing(box, "192.0.2.2", count)
            fp1 = FloodPing(box, "198.51.100.2", count)
            box.run(["sh", "-c", "ifdown -a && ifup -a"], env=stack.env())
            s0b, r0b = fp0.result()
            s1b, r1b = fp1.result()
            stack.wait_configured(DEFAULT_IFACES)
            cc_base.append(box.carrier_changes("nct0") - before)
            lost_base.append(s0b - r0b)
            lost_base_nct1.append(s1b - r1b)
            progress(
                f"netloss #{i + 1}: rollback {rb_ms[-1]:.0f} ms, nct0 lost {s0 - r0}/{s0} "
                f"(nct1 {s1 - r1}/{s1}); ifdown -a; ifup -a: nct0 lost {s0b - r0b}/{s0b} "
                f"(nct1 {s1b - r1b}/{s1b})"
            )
    m_rb, m_base = median(lost_rb), median(lost_base)
    assert m_rb is not None and m_base is not None
    return [
        Row(
            "packets lost on the untouched link during a rollback",
            m_rb,
            "pkts",
            m_base,
            "(ifdown -a; ifup -a)",
            "0",
            m_rb == 0 and max(lost_rb) == 0,
            n,
            variant="ifupdown, netns",
            note=f"per repetition {count} pings 10 ms apart across the untouched nct0 while the "
            f"rollback (or ifdown -a; ifup -a) ran: lost {lost_rb} vs {lost_base}; nct0 "
            f"carrier_changes delta {cc_rb} vs {cc_base}; the changed link nct1 lost "
            f"{lost_rb_nct1} vs {lost_base_nct1}; the rollback took {median(rb_ms):.0f} ms "
            f"(median) through the API",
            samples=[float(x) for x in lost_rb],
            baseline_samples=[float(x) for x in lost_base],
            extra={
                "carrier_changes_rollback": cc_rb,
                "carrier_changes_baseline": cc_base,
                "nct1_lost_rollback": lost_rb_nct1,
                "nct1_lost_baseline": lost_base_nct1,
                "rollback_ms": rb_ms,
            },
        ),
    ]
