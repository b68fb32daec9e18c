# SPDX-License-Identifier: GPL-3.0-or-later
"""The real-stack harness works: each stack brings nct0/nct1 up with its own tool, re-applies a
change to nct1 alone, and nct0 is not bounced. Also the sandbox's isolation and the loss meter."""

from __future__ import annotations

import os
import threading
import time

import pytest

from tests.netns.conftest import StackFactory
from tests.netns.stacks import (
    DEFAULT_IFACES,
    FloodPing,
    HostSandbox,
    Iface,
    Topology,
    flood_ping,
    ping,
    with_iface,
)

pytestmark = pytest.mark.netns

NCT1_CHANGED = Iface("nct1", ("198.51.100.11/24",))


def test_stack_brings_config_up_and_reapplies_one_interface(
    make_stack: StackFactory, stack_name: str
) -> None:
    stack = make_stack(stack_name)
    box = stack.sandbox
    ping(box, "192.0.2.2")
    ping(box, "198.51.100.2")
    nct0_before = box.carrier_changes("nct0")

    new = with_iface(stack.ifaces, NCT1_CHANGED)
    sent, received = flood_ping(
        box, "192.0.2.2", 100, during=lambda: stack.apply(new, only=["nct1"])
    )

    assert box.carrier_changes("nct0") == nct0_before, "nct0 was bounced"
    ping(box, "198.51.100.2")  # from the new address
    if stack_name == "netplan":
        # `netplan generate` rewrites every generated .network file, and networkd reconfigures
        # each link whose file has a new mtime: nct0 loses a few packets (its carrier does not
        # move). netcfg-txn's rollback must copy only changed generated files to avoid that.
        return
    assert (sent, received) == (100, 100), "traffic on the untouched nct0 was interrupted"


def test_stack_bridge_created_then_removed(make_stack: StackFactory, stack_name: str) -> None:
    """A config that puts nct1 into a new bridge, then back: the shape of a rollback that must
    delete a link only the new config created."""
    bridged = (DEFAULT_IFACES[0], Iface("nctbr1", ("198.51.100.1/24",), bridge_ports=("nct1",)))
    stack = make_stack(stack_name, bridged)
    box = stack.sandbox
    ping(box, "198.51.100.2")
    nct0_before = box.carrier_changes("nct0")

    stack.apply(DEFAULT_IFACES, only=["nctbr1", "nct1"])

    assert "nctbr1" not in box.run(["ip", "-br", "link"]).stdout
    ping(box, "198.51.100.2")
    assert box.carrier_changes("nct0") == nct0_before


def test_stack_writes_only_changed_files(make_stack: StackFactory) -> None:
    stack = make_stack("networkd")
    nct0 = stack.sandbox.path("/etc/systemd/network/50-nct0.network")
    mtime = nct0.stat().st_mtime_ns
    time.sleep(0.01)
    stack.apply(with_iface(stack.ifaces, NCT1_CHANGED), only=["nct1"])
    assert nct0.stat().st_mtime_ns == mtime


def test_sandbox_isolates_etc_and_run(sandbox: HostSandbox) -> None:
    # Config dirs: written from outside, seen inside.
    sandbox.path("/etc/network/interfaces").write_text("# from the test\n")
    assert sandbox.run(["cat", "/etc/network/interfaces"]).stdout == "# from the test\n"
    # Any other write to /etc stays in the overlay.
    probe = f"/etc/nct-probe-{os.getpid()}"
    sandbox.run(["touch", probe])
    assert not os.path.exists(probe)
    assert (sandbox.workdir / "overlay" / "upper" / os.path.basename(probe)).exists()
    # /run is private; the namespace's own links are visible.
    run_dir = sandbox.run(["ls", "/run"]).stdout.split()
    assert "netns" not in run_dir and "network" in run_dir
    assert "nct0" in sandbox.run(["ip", "-br", "link"]).stdout
    # /sys is this namespace's sysfs, mounted read-only.
    sys_mount = [x.split() for x in sandbox.read_text("/proc/self/mountinfo").splitlines()]
    assert [m[5].split(",")[0] for m in sys_mount if m[4] == "/sys"] == ["ro"]
    with pytest.raises(ValueError):
        sandbox.path("/etc/passwd")


def test_flood_ping_measures_loss_only_on_the_bounced_link(
    topology: Topology, sandbox: HostSandbox
) -> None:
    for dev, cidr in (("nct0", "192.0.2.1/24"), ("nct1", "198.51.100.1/24")):
        sandbox.run(["ip", "addr", "add", cidr, "dev", dev])
        sandbox.run(["ip", "link", "set", dev, "up"])
    ping(topology.host, "192.0.2.2")
    ping(sandbox, "198.51.100.2")
    before = topology.carrier_changes("nct0"), topology.carrier_changes("nct1")

    def bounce_nct1() -> None:
        time.sleep(0.3)
        sandbox.run(["ip", "link", "set", "nct1", "down"])
        time.sleep(0.3)
        sandbox.run(["ip", "link", "set", "nct1", "up"])
        time.sleep(0.3)

    with FloodPing(sandbox, "198.51.100.2", 200) as bounced:
        thread = threading.Thread(target=bounce_nct1)
        thread.start()
        untouched = flood_ping(sandbox, "192.0.2.2", 150, during=thread.join)
    assert untouched == (150, 150)
    sent, received = bounced.result()
    assert sent == 200 and received < sent - 10
    assert topology.carrier_changes("nct0") == before[0]
    assert topology.carrier_changes("nct1") == before[1] + 2
