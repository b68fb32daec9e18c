# SPDX-License-Identifier: GPL-3.0-or-later
"""Rollouts with the ``safe_change`` role in ``serial`` batches over simulated hosts.

Every host starts on ``mgmt0`` = its 198.18.x.y address with MTU 1500; the change sets MTU 1400,
and a host listed in ``nctf_cut`` also moves its address off the management network, which cuts
the controller's path to it. The ground truth is read on the hosts themselves (files, live
addresses and MTU, the daemon's last outcome) and by pinging them from the controller.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import time
from pathlib import Path

import pytest

from tests.fleet import lab
from tests.fleet.conftest import fleet_size

PLAYBOOKS = Path(__file__).resolve().parent / "playbooks"
RECAP = re.compile(
    r"^(h\d+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.MULTILINE
)

pytestmark = [pytest.mark.fleet, pytest.mark.slow, pytest.mark.timeout(3600)]


def serial() -> int:
    """Three batches, whatever the fleet size."""
    return math.ceil(fleet_size() / 3)


def timeout_s() -> int:
    # Every host of a batch must get from its start to its apply, and from its apply to being
    # reached again, within it (the role re-arms it at the apply). Ansible needs about 1 s of
    # controller CPU per host and task, and the 2-core machine is shared with other jobs.
    return 45 + 8 * serial()


def run_limit_s(f: lab.Fleet) -> int:
    """A hang guard, not a goal: per batch, start to apply and apply to reached again may each
    take a deadline, plus the grace after a cut host's deadline (100 hosts at load 40: ~4 min a
    batch)."""
    return len(batches(f)) * (2 * timeout_s() + 90) + 120


def batches(f: lab.Fleet) -> list[list[lab.Host]]:
    s = serial()
    return [f.hosts[i : i + s] for i in range(0, len(f.hosts), s)]


def run(f: lab.Fleet, *extra: str, **vars: object) -> tuple[int, str, dict[str, list[int]]]:
    doc = {"nctf_serial": serial(), "nctf_timeout": f"{timeout_s()}s", "nctf_grace": 60, **vars}
    p = f.playbook(PLAYBOOKS / "rollout.yml", f.inventory(f.workdir / "inventory"),
                   "-e", json.dumps(doc), *extra, timeout_s=run_limit_s(f))  # fmt: skip
    out = p.stdout + p.stderr
    (f.workdir / "ansible.out").write_text(out)
    recap = {m[0]: [int(x) for x in m[1:]] for m in RECAP.findall(out)}
    return p.returncode, out, recap


def committed_new(h: lab.Host) -> None:
    last = h.status().get("last") or {}
    assert (last.get("outcome"), last.get("reason")) == ("committed", "confirmed"), (h.name, last)
    assert "mtu 1400" in h.iface_file.read_text(), h.name
    assert h.mtu() == 1400 and h.addr in h.live_addrs(), h.name


def on_old_config(h: lab.Host, f: lab.Fleet) -> None:
    assert h.iface_file.read_text() == lab.mgmt_stanza(h.addr), h.name
    assert h.mtu() == 1500, h.name
    assert h.live_addrs()[0] == h.addr and lab.cut_addr(h.index) not in h.live_addrs(), h.name
    assert f.ping(h.addr), f"{h.name} does not answer ping from the controller"


def untouched(h: lab.Host, f: lab.Fleet) -> None:
    st = h.status()
    assert st.get("state") == "idle" and not st.get("last"), (h.name, st)
    on_old_config(h, f)


def test_good_change_committed_everywhere(fleet: lab.Fleet) -> None:
    t0 = time.monotonic()
    rc, out, recap = run(fleet)
    took = time.monotonic() - t0
    assert rc == 0, out[-4000:]
    assert sorted(recap) == sorted(h.name for h in fleet.hosts), out[-2000:]
    assert all(r[3] == 0 and r[2] == 0 for r in recap.values()), recap
    for h in fleet.hosts:
        committed_new(h)
    print(f"\n{len(fleet.hosts)} hosts in {len(batches(fleet))} batches: {took:.1f}s")


def test_path_cut_in_batch_k_stops_there_and_goes_back_alone(fleet: lab.Fleet) -> None:
    first, second, *later = batches(fleet)
    cut, failing, good = second[0], second[1:2], second[2:]
    rc, out, recap = run(fleet, nctf_cut=[cut.name], nctf_fail_apply=[h.name for h in failing])
    assert rc != 0, out[-4000:]
    # the recap and the role's message say which host broke and why
    assert recap[cut.name][3] == 1, recap
    assert f"{cut.name} broke its management path" in out, out[-4000:]
    assert "rolled transaction" in out and "(reason: timeout)" in out, out[-4000:]
    # earlier batch keeps the new config; the cut host is back on the old one by its own timer
    for h in first:
        committed_new(h)
    last = cut.status()["last"]
    assert (last["outcome"], last["reason"]) == ("rolled-back", "timeout"), last
    on_old_config(cut, fleet)
    # a host whose apply command failed was rolled back at once by the role
    for h in failing:
        assert recap[h.name][3] == 1, recap
        assert "the apply command failed (rc=3)" in out, out[-4000:]
        last = h.status()["last"]
        assert (last["outcome"], last["reason"]) == ("rolled-back", "manual"), (h.name, last)
        on_old_config(h, fleet)
    # the other hosts of that batch proved their own path and are committed
    for h in good:
        committed_new(h)
    # later batches are never touched
    for batch in later:
        for h in batch:
            assert h.name not in recap or recap[h.name][0] == 0, recap
            untouched(h, fleet)


def test_host_refusing_to_start_stops_the_batch_before_any_change(fleet: lab.Fleet) -> None:
    first, second, *later = batches(fleet)
    busy, edited = second[0], second[1]
    rc, doc = busy.cli("start", "--timeout", "10m", "--label", "someone else")
    assert rc == 0, doc
    foreign = doc["transaction"]["id"]
    # pending edits are edits since the last transaction ended: end one, then edit by hand
    assert edited.cli("start")[0] == 0 and edited.cli("commit")[0] == 0
    before = edited.status()["last"]["id"]
    pending = lab.mgmt_stanza(edited.addr) + "# edited by hand\n"
    edited.iface_file.write_text(pending)
    rc, out, recap = run(fleet)
    assert rc != 0, out[-4000:]
    assert "batch stopped before any change" in out, out[-4000:]
    assert (
        f"{busy.name}: netcfg-txn busy" in out and f"{edited.name}: netcfg-txn pending-edits" in out
    )
    for h in first:
        committed_new(h)
    # the foreign transaction is still open and nothing was changed on the refusing hosts
    st = busy.status()
    assert st["state"] == "open" and st["transaction"]["id"] == foreign, st
    assert busy.iface_file.read_text() == lab.mgmt_stanza(busy.addr) and busy.mtu() == 1500
    assert edited.iface_file.read_text() == pending and edited.mtu() == 1500
    assert edited.status()["last"]["id"] == before
    # the others of the batch had started: rolled back at once, before any change
    for h in second[2:]:
        last = h.status()["last"]
        assert (last["outcome"], last["reason"]) == ("rolled-back", "manual"), (h.name, last)
        assert not last.get("bounced"), last
        on_old_config(h, fleet)
    for batch in later:
        for h in batch:
            untouched(h, fleet)
    busy.cli("rollback")


def test_controller_killed_mid_batch_every_started_host_rolls_back_alone(
    fleet: lab.Fleet,
) -> None:
    first, *later = batches(fleet)
    marks = fleet.workdir / "marks"
    marks.mkdir()
    # The re-armed deadline must outlast the wait for the batch's last host to reach its checks
    # (about 1 s of controller CPU per host): the first one reached must still be open then.
    hold = 20 + 2 * serial()
    doc = {"nctf_serial": serial(), "nctf_timeout": f"{timeout_s()}s", "nctf_hold": f"{hold}s",
           "nctf_checks": str(PLAYBOOKS / "tasks/hold_checks.yml"),
           "nctf_marks": str(marks)}  # fmt: skip
    proc = fleet.playbook_popen(
        PLAYBOOKS / "rollout.yml",
        fleet.inventory(fleet.workdir / "inventory"),
        "-e",
        json.dumps(doc),
    )
    try:
        # every host of the first batch changed, applied, reached again: now in the checks
        lab.wait_until(
            "the first batch to reach its checks",
            lambda: (
                all((marks / f"reached-{h.name}").exists() for h in first)
                or proc.poll() is not None
            ),
            timeout_s=2 * timeout_s() + 60,
        )
        assert proc.poll() is None, proc.communicate()[0][-4000:]
        for h in first:
            assert h.status()["state"] == "open" and h.mtu() == 1400, h.name
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    # nobody is left to commit or roll back: each host does it alone at its (held) deadline

    def all_back() -> bool:
        return all((h.status().get("last") or {}).get("outcome") == "rolled-back" for h in first)

    lab.wait_until("every started host to roll back", all_back, timeout_s=hold + 90, every_s=2)
    for h in first:
        last = h.status()["last"]
        assert (last["outcome"], last["reason"]) == ("rolled-back", "timeout"), (h.name, last)
        on_old_config(h, fleet)
    for batch in later:
        for h in batch:
            untouched(h, fleet)
