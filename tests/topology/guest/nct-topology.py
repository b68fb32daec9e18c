#!/usr/bin/python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""Guest side of scripts/topology-test: runs inside the qemu VM (a Debian kernel with bonding,
8021q and bridge), builds a real topology with one network stack, and for each scenario lets a
transaction's timer roll a change back while peers in network namespaces ping across every
interface the change does not touch. Stdlib only (the VM has Debian's python3).

The host passes the plan on the kernel command line: ``nct.stack=STACK nct.scen=A,B,...``.

Topology (host side; every "physical" NIC is a veth whose other end is in a peer namespace)::

    eth0 192.0.2.1/28 -------------------------------- ns pl   p0 192.0.2.2
    bond0 192.0.2.17/28 (eth1, eth2; eth3 spare) ----- ns sw   bridge swbr (s1 s2 s3) .18
      bond0.10 -- br0 198.51.100.1/26                          swbr.10 198.51.100.2
                  +-- tap1 (a VM NIC stand-in) ------- ns vm1  v1 198.51.100.11
                  +-- tap2 ----------------------------- ns vm2  v2 198.51.100.12
      bond0.20 203.0.113.1/28                                  swbr.20 203.0.113.2
      (bond0.30 203.0.113.17/28 when a scenario adds it)       swbr.30 203.0.113.18

The taps are attached to br0 by this runner (as a hypervisor would), not by the stack's config.

Console protocol (one line each, prefix ``NCT:``):

    NCT: READY STACK t=SECONDS                the baseline topology is up
    NCT: RESULT {json}                        one scenario's measurements and verdict
    NCT: ERROR text                           the runner itself failed
    NCT: DONE
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

CONSOLE = "/dev/ttyS0"
CLI = "/usr/bin/netcfg-txn"
IFUPDOWN2_BIN = "/opt/ifupdown2/nct-bin"
BASE_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
PING_INTERVAL = 0.05
TXN_TIMEOUT = "5s"  # the shortest the daemon accepts

# ------------------------------------------------------------------------------ the model

BASE: dict[str, Any] = {
    "plain": "192.0.2.1/28",
    "bond_addr": "192.0.2.17/28",
    "members": ["eth1", "eth2"],
    "mode": "active-backup",
    "mtu": 1500,
    "vlans": {10: None, 20: "203.0.113.1/28"},
    "br_addr": "198.51.100.1/26",
    "vlan_mtu": {},  # VLAN id -> MTU set in the VLAN's own definition (its .netdev in networkd)
}
NICS = ("eth0", "eth1", "eth2", "eth3")
TAPS = ("tap1", "tap2")


def topo_ifaces(m: dict[str, Any]) -> list[str]:
    return ["eth0", *m["members"], "bond0", *(f"bond0.{v}" for v in m["vlans"]), "br0", *TAPS]


@dataclasses.dataclass(frozen=True)
class Scenario:
    what: str
    change: Callable[[dict[str, Any]], None]
    changed: frozenset[str]  # interfaces whose configuration the change touches
    may_bounce: frozenset[str]  # what the rollback may bounce (the rest must stay untouched)


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def f(m: dict[str, Any]) -> None:
        m[key] = value

    return f


def _vlan(vid: int, addr: str | None) -> Callable[[dict[str, Any]], None]:
    def f(m: dict[str, Any]) -> None:
        if addr is None:
            del m["vlans"][vid]
        else:
            m["vlans"][vid] = addr

    return f


BOND_ALL = frozenset({"bond0", "eth1", "eth2", "eth3", "bond0.10", "bond0.20", "br0"})
SCENARIOS: dict[str, Scenario] = {
    "vlan20-addr": Scenario(
        "change VLAN 20's address",
        _vlan(20, "203.0.113.3/28"),
        frozenset({"bond0.20"}),
        frozenset({"bond0.20"}),
    ),
    "br0-addr": Scenario(
        "change br0's address (not its ports)",
        _set("br_addr", "198.51.100.3/26"),
        frozenset({"br0"}),
        frozenset(),  # the ports and taps stay attached: no bounce at all
    ),
    "add-member": Scenario(
        "add a bond member (eth3)",
        _set("members", ["eth1", "eth2", "eth3"]),
        frozenset({"bond0", "eth3"}),
        BOND_ALL,
    ),
    "remove-member": Scenario(
        "remove a bond member (eth2)",
        _set("members", ["eth1"]),
        frozenset({"bond0", "eth2"}),
        BOND_ALL,
    ),
    "add-vlan30": Scenario(
        "add VLAN 30",
        _vlan(30, "203.0.113.17/28"),
        frozenset({"bond0.30"}),
        frozenset({"bond0.30"}),
    ),
    "del-vlan20": Scenario(
        "delete VLAN 20", _vlan(20, None), frozenset({"bond0.20"}), frozenset({"bond0.20"})
    ),
    "bond-mode": Scenario(
        "change the bond mode (active-backup -> balance-xor)",
        _set("mode", "balance-xor"),
        frozenset({"bond0"}),
        BOND_ALL,
    ),
    "vlan20-mtu": Scenario(
        "change VLAN 20's own definition (its MTU, 1500 -> 1400)",
        _set("vlan_mtu", {20: 1400}),
        frozenset({"bond0.20"}),
        frozenset({"bond0.20"}),
    ),
    "bond-mtu": Scenario(
        "change the bond's MTU (1500 -> 1400)",
        _set("mtu", 1400),
        frozenset({"bond0"}),
        BOND_ALL,
    ),
}

# Pings from a peer: (name, namespace, target, the host interfaces the path needs, the one
# owning the target address or None when it is a VM's).
FLOWS = (
    ("eth0", "pl", "192.0.2.1", {"eth0"}, "eth0"),
    ("bond0", "sw", "192.0.2.17", {"bond0"}, "bond0"),
    ("bond0.20", "sw", "203.0.113.1", {"bond0", "bond0.20"}, "bond0.20"),
    ("br0", "sw", "198.51.100.1", {"bond0", "bond0.10", "br0"}, "br0"),
    ("vm1", "sw", "198.51.100.11", {"bond0", "bond0.10", "br0", "tap1"}, None),
    ("vm2", "sw", "198.51.100.12", {"bond0", "bond0.10", "br0", "tap2"}, None),
)

# ------------------------------------------------------------------------------ plumbing

_console: Any = None


def say(tag: str, text: str = "") -> None:
    line = f"NCT: {tag} {text}".rstrip() + "\n"
    sys.stderr.write(line)
    global _console
    try:
        if _console is None:
            _console = open(CONSOLE, "w")  # noqa: SIM115 (kept open for the whole run)
        _console.write(line)
        _console.flush()
    except OSError:
        pass


def run(*argv: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {p.returncode}: {p.stderr.strip()[-800:]}")
    return p


def ns(name: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run("ip", "netns", "exec", name, *argv, check=check)


def write(path: str, text: str, mode: int = 0o644) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.nct-tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.rename(tmp, path)


def wait_for(what: str, cond: Callable[[], Any], timeout: float, step: float = 0.2) -> Any:
    end = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > end:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(step)


def cli(*args: str, check: bool = True) -> dict[str, Any]:
    p = run(CLI, "--json", *args, check=False, timeout=900)
    doc: dict[str, Any] = json.loads(p.stdout or "{}")
    if check and p.returncode != 0:
        raise RuntimeError(f"netcfg-txn {' '.join(args)} exited {p.returncode}: {p.stdout}")
    return doc


# ------------------------------------------------------------------------------ peers


def build_peers() -> None:
    for n in ("pl", "sw", "vm1", "vm2"):
        run("ip", "netns", "add", n)
        ns(n, "ip", "link", "set", "lo", "up")
        ns(n, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
    run("ip", "link", "add", "eth0", "type", "veth", "peer", "name", "p0", "netns", "pl")
    ns("pl", "ip", "addr", "add", "192.0.2.2/28", "dev", "p0")
    ns("pl", "ip", "link", "set", "p0", "up")
    ns("sw", "ip", "link", "add", "swbr", "type", "bridge", "stp_state", "0", "forward_delay", "0")
    for i in (1, 2, 3):
        run("ip", "link", "add", f"eth{i}", "type", "veth", "peer", "name", f"s{i}", "netns", "sw")
        ns("sw", "ip", "link", "set", f"s{i}", "master", "swbr", "up")
    ns("sw", "ip", "addr", "add", "192.0.2.18/28", "dev", "swbr")
    ns("sw", "ip", "link", "set", "swbr", "up")
    for vid, addr in ((10, "198.51.100.2/26"), (20, "203.0.113.2/28"), (30, "203.0.113.18/28")):
        ns("sw", "ip", "link", "add", "link", "swbr", f"swbr.{vid}", "type", "vlan", "id", str(vid))
        ns("sw", "ip", "addr", "add", addr, "dev", f"swbr.{vid}")
        ns("sw", "ip", "link", "set", f"swbr.{vid}", "up")
    for i, vm in ((1, "vm1"), (2, "vm2")):
        run("ip", "link", "add", f"tap{i}", "type", "veth", "peer", "name", f"v{i}", "netns", vm)
        ns(vm, "ip", "addr", "add", f"198.51.100.1{i}/26", "dev", f"v{i}")
        ns(vm, "ip", "link", "set", f"v{i}", "up")
        ns(vm, "ip", "route", "add", "default", "via", "198.51.100.1")


def attach_taps() -> None:
    """What a hypervisor does when a VM starts: its tap joins the bridge."""
    for t in TAPS:
        run("ip", "link", "set", t, "master", "br0", "up", check=False)


def attached() -> bool:
    """``attach_taps`` as a wait condition's first step (always true)."""
    attach_taps()
    return True


# ------------------------------------------------------------------------------ renderers


def r_ifupdown(m: dict[str, Any], v2: bool) -> dict[str, str]:
    manual = "" if v2 else " inet manual"
    out = ["auto lo", "iface lo inet loopback", ""]
    out += ["auto eth0", "iface eth0 inet static", f"    address {m['plain']}", ""]
    # The members need no stanza: ifenslave (and ifupdown2) enslave what bond-slaves lists.
    out += [
        "auto bond0",
        "iface bond0 inet static",
        f"    address {m['bond_addr']}",
        f"    bond-slaves {' '.join(m['members'])}",
        f"    bond-mode {m['mode']}",
        "    bond-miimon 100",
        f"    mtu {m['mtu']}",
        "",
    ]
    for vid, addr in sorted(m["vlans"].items()):
        head = f"iface bond0.{vid} inet static" if addr else f"iface bond0.{vid}{manual}"
        out += [f"auto bond0.{vid}", head]
        out += [f"    address {addr}"] if addr else []
        out += [f"    mtu {m['vlan_mtu'][vid]}"] if vid in m["vlan_mtu"] else []
        out += ["    vlan-raw-device bond0", ""]
    br = ["auto br0", "iface br0 inet static", f"    address {m['br_addr']}"]
    br += ["    bridge-ports bond0.10", "    bridge-stp off", "    bridge-fd 0", ""]
    return {"/etc/network/interfaces": "\n".join(out + br)}


def _unit(sections: list[tuple[str, list[str]]]) -> str:
    return "\n".join(f"[{s}]\n" + "".join(f"{line}\n" for line in body) for s, body in sections)


def r_networkd(m: dict[str, Any]) -> dict[str, str]:
    d = "/etc/systemd/network"
    files = {
        f"{d}/10-eth0.network": _unit(
            [("Match", ["Name=eth0"]), ("Network", [f"Address={m['plain']}"])]
        ),
        f"{d}/20-bond0.netdev": _unit(
            [
                ("NetDev", ["Name=bond0", "Kind=bond", f"MTUBytes={m['mtu']}"]),
                ("Bond", [f"Mode={m['mode']}", "MIIMonitorSec=100ms"]),
            ]
        ),
        f"{d}/20-bond0.network": _unit(
            [
                ("Match", ["Name=bond0"]),
                ("Link", [f"MTUBytes={m['mtu']}"]),
                (
                    "Network",
                    [f"Address={m['bond_addr']}", *(f"VLAN=bond0.{v}" for v in sorted(m["vlans"]))],
                ),
            ]
        ),
        f"{d}/40-br0.netdev": _unit(
            [("NetDev", ["Name=br0", "Kind=bridge"]), ("Bridge", ["STP=no", "ForwardDelaySec=0"])]
        ),
        f"{d}/40-br0.network": _unit(
            [
                ("Match", ["Name=br0"]),
                ("Network", [f"Address={m['br_addr']}", "ConfigureWithoutCarrier=yes"]),
            ]
        ),
    }
    for e in m["members"]:
        files[f"{d}/15-{e}.network"] = _unit(
            [("Match", [f"Name={e}"]), ("Network", ["Bond=bond0"])]
        )
    for vid, addr in m["vlans"].items():
        mtu = [f"MTUBytes={m['vlan_mtu'][vid]}"] if vid in m["vlan_mtu"] else []
        files[f"{d}/30-bond0.{vid}.netdev"] = _unit(
            [("NetDev", [f"Name=bond0.{vid}", "Kind=vlan", *mtu]), ("VLAN", [f"Id={vid}"])]
        )
        net = [f"Address={addr}"] if addr else ["Bridge=br0"]
        files[f"{d}/30-bond0.{vid}.network"] = _unit(
            [("Match", [f"Name=bond0.{vid}"]), ("Network", net)]
        )
    return files


def _keyfile(cid: str, sections: list[tuple[str, list[str]]]) -> str:
    return _unit([("connection", [f"id={cid}", *sections[0][1]]), *sections[1:]])


def _ip4(addr: str | None) -> tuple[str, list[str]]:
    if addr is None:
        return ("ipv4", ["method=disabled"])
    return ("ipv4", ["method=manual", f"address1={addr}"])


def r_nm(m: dict[str, Any]) -> dict[str, str]:
    d = "/etc/NetworkManager/system-connections"
    v6 = ("ipv6", ["method=disabled"])
    files = {
        f"{d}/eth0.nmconnection": _keyfile(
            "eth0", [("", ["type=ethernet", "interface-name=eth0"]), _ip4(m["plain"]), v6]
        ),
        f"{d}/bond0.nmconnection": _keyfile(
            "bond0",
            [
                ("", ["type=bond", "interface-name=bond0"]),
                ("ethernet", [f"mtu={m['mtu']}"]),
                ("bond", [f"mode={m['mode']}", "miimon=100"]),
                _ip4(m["bond_addr"]),
                v6,
            ],
        ),
        f"{d}/br0.nmconnection": _keyfile(
            "br0",
            [
                ("", ["type=bridge", "interface-name=br0"]),
                ("bridge", ["stp=false", "forward-delay=0"]),
                _ip4(m["br_addr"]),
                v6,
            ],
        ),
    }
    for e in m["members"]:
        files[f"{d}/{e}.nmconnection"] = _keyfile(
            e, [("", ["type=ethernet", f"interface-name={e}", "master=bond0", "slave-type=bond"])]
        )
    for vid, addr in m["vlans"].items():
        conn = ["type=vlan", f"interface-name=bond0.{vid}"]
        if addr is None:
            conn += ["master=br0", "slave-type=bridge"]
        sections = [("", conn), ("vlan", ["parent=bond0", f"id={vid}"])]
        if vid in m["vlan_mtu"]:
            sections.append(("ethernet", [f"mtu={m['vlan_mtu'][vid]}"]))
        if addr is not None:
            sections += [_ip4(addr), v6]
        files[f"{d}/bond0.{vid}.nmconnection"] = _keyfile(f"bond0.{vid}", sections)
    return files


def r_netplan(m: dict[str, Any], renderer: str) -> dict[str, str]:
    eths: dict[str, Any] = {"eth0": {"addresses": [m["plain"]]}}
    for e in m["members"]:
        eths[e] = {}
    vlans: dict[str, Any] = {}
    for vid, addr in m["vlans"].items():
        vlans[f"bond0.{vid}"] = {
            "id": vid,
            "link": "bond0",
            **({"addresses": [addr]} if addr else {}),
            **({"mtu": m["vlan_mtu"][vid]} if vid in m["vlan_mtu"] else {}),
        }
    doc = {
        "network": {
            "version": 2,
            "renderer": renderer,
            "ethernets": eths,
            "bonds": {
                "bond0": {
                    "interfaces": list(m["members"]),
                    "mtu": m["mtu"],
                    "addresses": [m["bond_addr"]],
                    "parameters": {"mode": m["mode"], "mii-monitor-interval": 100},
                }
            },
            "vlans": vlans,
            "bridges": {
                "br0": {
                    "interfaces": ["bond0.10"],
                    "addresses": [m["br_addr"]],
                    "parameters": {"stp": False, "forward-delay": 0},
                }
            },
        }
    }
    # JSON is YAML; netplan insists on 0600.
    return {"/etc/netplan/10-nct.yaml": json.dumps(doc, indent=1) + "\n"}


# ------------------------------------------------------------------------------ stacks


class Stack:
    name = ""
    backend = ""
    preset = ""
    # networkd lists a parent's VLANs in the parent's own .network (VLAN=): adding or deleting
    # a VLAN edits the parent's file too, and networkd re-applies a changed .network
    vlans_in_parent = False

    def render(self, m: dict[str, Any]) -> dict[str, str]:
        raise NotImplementedError

    def mode(self, path: str) -> int:
        return 0o644

    def prepare(self) -> None:
        """Start the stack's daemon (nothing runs at boot)."""

    def bring_up(self, m: dict[str, Any]) -> None:
        raise NotImplementedError

    def apply(self, old: dict[str, Any], new: dict[str, Any], sc: Scenario) -> None:
        """Apply the edited files the way an admin would, for what the scenario changed."""
        raise NotImplementedError

    def write(self, m: dict[str, Any]) -> dict[str, str]:
        files = self.render(m)
        for path, text in files.items():
            write(path, text, self.mode(path))
        return files

    def write_diff(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        before, after = self.render(old), self.render(new)
        for path in set(before) - set(after):
            os.unlink(path)
        for path, text in after.items():
            if before.get(path) != text:
                write(path, text, self.mode(path))

    def env(self) -> dict[str, str]:
        return {}


def _uppers_first(names: set[str]) -> list[str]:
    order = ["br0", "bond0.30", "bond0.20", "bond0.10", "bond0", "eth1", "eth2", "eth3", "eth0"]
    return [n for n in order if n in names]


class Ifupdown(Stack):
    name = backend = preset = "ifupdown"
    v2 = False

    def render(self, m: dict[str, Any]) -> dict[str, str]:
        return r_ifupdown(m, self.v2)

    def ifup(self, *names: str) -> None:
        for n in names:
            run("ifup", n, timeout=600)

    def ifdown(self, *names: str) -> None:
        for n in names:
            run("ifdown", *(() if self.v2 else ("--force",)), n, check=False, timeout=600)

    def bring_up(self, m: dict[str, Any]) -> None:
        self.write(m)
        self.ifup("eth0", "bond0", *(f"bond0.{v}" for v in sorted(m["vlans"])), "br0")

    def apply(self, old: dict[str, Any], new: dict[str, Any], sc: Scenario) -> None:
        touched = set(sc.changed) | (set(sc.may_bounce) & set(topo_ifaces(old)))
        down = _uppers_first({n for n in touched if n in topo_ifaces(old) and n not in TAPS})
        self.ifdown(*down)
        self.write_diff(old, new)
        up = [n for n in reversed(_uppers_first(touched)) if n in topo_ifaces(new)]
        self.ifup(*(n for n in up if n not in new["members"]))


class Ifupdown2(Ifupdown):
    name = backend = preset = "ifupdown2"
    v2 = True

    def env(self) -> dict[str, str]:
        return {"PATH": f"{IFUPDOWN2_BIN}:{BASE_PATH}"}

    def prepare(self) -> None:
        os.environ["PATH"] = self.env()["PATH"]
        write(
            "/run/systemd/system/netcfg-txnd.service.d/50-ifupdown2.conf",
            f"[Service]\nEnvironment=PATH={self.env()['PATH']}\n",
        )
        run("systemctl", "daemon-reload")
        # The daemon runs ifup as a transient unit of PID 1, whose PATH finds ifupdown's
        # /usr/sbin/ifup first: on this boot's throwaway disk, ifupdown2's take their place, as
        # if it were the one installed.
        for tool in ("ifup", "ifdown", "ifquery", "ifreload"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"/usr/sbin/{tool}")
            os.symlink(f"{IFUPDOWN2_BIN}/{tool}", f"/usr/sbin/{tool}")
        # ... and ifupdown's hotplug rule, which would now start ifupdown2's ifup for every new
        # link, racing ours for its lock ("Another instance of this program is already running")
        write("/etc/udev/rules.d/80-ifupdown.rules", "")
        run("udevadm", "control", "--reload")

    def apply(self, old: dict[str, Any], new: dict[str, Any], sc: Scenario) -> None:
        removed = set(topo_ifaces(old)) - set(topo_ifaces(new)) - set(TAPS)
        self.ifdown(*_uppers_first(removed))
        self.write_diff(old, new)
        run("ifreload", "-a", timeout=300)


class Networkd(Stack):
    name = "networkd"
    backend = preset = "networkd"
    vlans_in_parent = True

    def render(self, m: dict[str, Any]) -> dict[str, str]:
        return r_networkd(m)

    def prepare(self) -> None:
        run("systemctl", "start", "systemd-networkd.service")

    def bring_up(self, m: dict[str, Any]) -> None:
        self.write(m)
        run("networkctl", "reload")

    def apply(self, old: dict[str, Any], new: dict[str, Any], sc: Scenario) -> None:
        self.write_diff(old, new)
        redo = self.drop_stale(old, new, vlans=True)
        if redo:
            # networkd 252 keeps a VLAN's netdev loaded after its link is gone and ignores its
            # changed .netdev on reload: only a restart reads it again (and reconfigures all)
            run("systemctl", "restart", "systemd-networkd.service")
        run("networkctl", "reload")
        if redo:
            wait_for(
                "the VLANs back",
                lambda: all(os.path.exists(f"/sys/class/net/{n}") for n in redo),
                60,
            )
        live = [n for n in _uppers_first(set(sc.changed)) if os.path.exists(f"/sys/class/net/{n}")]
        if live:
            run("networkctl", "reconfigure", *live)

    @staticmethod
    def drop_stale(
        old: dict[str, Any], new: dict[str, Any], *, vlans: bool, removed_links: bool = True
    ) -> set[str]:
        """What an admin does by hand first, since networkd never changes an existing netdev's
        settings (bond mode, a VLAN's MTU), removes a link whose file is gone, or releases a
        removed bond member: delete or release them. The VLANs to be recreated are returned."""
        removed = set(topo_ifaces(old)) - set(topo_ifaces(new)) - set(TAPS)
        om, nm = old["vlan_mtu"], new["vlan_mtu"]
        redo = {f"bond0.{v}" for v in {*om, *nm} if om.get(v) != nm.get(v)} if vlans else set()
        mode = {"bond0"} if old["mode"] != new["mode"] else set()
        deleted = ((removed - set(NICS)) if removed_links else set()) | mode | redo
        for n in _uppers_first(deleted):
            run("ip", "link", "del", n, check=False)
        for n in removed & set(NICS):
            run("ip", "link", "set", n, "nomaster", check=False)
        # A reload before networkd saw a link go would keep its old netdev (and never create it)
        wait_for("networkd to forget the deleted links", lambda: not deleted & networkd_links(), 60)
        return redo


def networkd_links() -> set[str]:
    """The links networkd itself knows of (its ListLinks; ``networkctl list`` asks the
    kernel): a link leaves it when networkd has processed the deletion, and its netdev with it."""
    argv = [
        "busctl",
        "--json=short",
        "call",
        "org.freedesktop.network1",
        "/org/freedesktop/network1",
    ]
    out = run(*argv, "org.freedesktop.network1.Manager", "ListLinks").stdout
    return {str(entry[1]) for entry in json.loads(out)["data"][0]}


class NetworkManager(Stack):
    name = "networkmanager"
    backend = preset = "networkmanager"

    def render(self, m: dict[str, Any]) -> dict[str, str]:
        return r_nm(m)

    def mode(self, path: str) -> int:
        return 0o600

    def prepare(self) -> None:
        # NM leaves veths alone by default (udev NM_UNMANAGED): these stand for real NICs.
        write(
            "/etc/NetworkManager/conf.d/50-nct-topology.conf",
            "[main]\nplugins=keyfile\nno-auto-default=*\n\n[device-nct-nics]\n"
            "match-device=interface-name:eth*\nmanaged=1\n\n[device-nct-taps]\n"
            "match-device=interface-name:tap*\nmanaged=0\n",
        )
        run("systemctl", "start", "NetworkManager.service")
        wait_for(
            "NetworkManager",
            lambda: run("nmcli", "-t", "general", "status", check=False).returncode == 0,
            600,
        )

    def bring_up(self, m: dict[str, Any]) -> None:
        self.write(m)
        run("nmcli", "connection", "reload")
        for c in [
            "eth0",
            "bond0",
            *m["members"],
            *(f"bond0.{v}" for v in sorted(m["vlans"])),
            "br0",
        ]:
            run("nmcli", "--wait", "300", "connection", "up", c, timeout=600)

    def apply(self, old: dict[str, Any], new: dict[str, Any], sc: Scenario) -> None:
        removed = set(topo_ifaces(old)) - set(topo_ifaces(new)) - set(TAPS)
        for n in _uppers_first(removed):
            run("nmcli", "connection", "down", n, check=False, timeout=600)
        self.write_diff(old, new)
        run("nmcli", "connection", "reload")
        for n in reversed(_uppers_first(set(sc.changed) - removed)):
            run("nmcli", "--wait", "300", "connection", "up", n, timeout=600)


class Netplan(Stack):
    """Both renderers: the YAML, applied with ``netplan apply`` (the admin's tool)."""

    backend = preset = "netplan"
    renderer = ""

    def render(self, m: dict[str, Any]) -> dict[str, str]:
        return r_netplan(m, self.renderer)

    def mode(self, path: str) -> int:
        return 0o600

    def bring_up(self, m: dict[str, Any]) -> None:
        self.write(m)
        run("netplan", "apply", timeout=300)

    def apply(self, old: dict[str, Any], new: dict[str, Any], sc: Scenario) -> None:
        self.write_diff(old, new)
        run("netplan", "apply", timeout=300)


class NetplanNetworkd(Netplan, Networkd):
    name = "netplan-networkd"
    renderer = "networkd"

    def apply(self, old: dict[str, Any], new: dict[str, Any], sc: Scenario) -> None:
        # netplan apply leaves a bond's mode and a removed member as they were. It leaves a
        # removed VLAN too (without its address), and so does this admin: deleting it by hand
        # makes networkd 252, restarted by netplan apply, re-enslave the bond's ports with a
        # down/up at the next VLAN created on the bond (here the rollback's; see README).
        self.write_diff(old, new)
        self.drop_stale(old, new, vlans=False, removed_links=False)
        run("netplan", "apply", timeout=300)


class NetplanNM(Netplan, NetworkManager):
    name = "netplan-nm"
    renderer = "NetworkManager"

    def bring_up(self, m: dict[str, Any]) -> None:
        super().bring_up(m)
        self.settle()

    def apply(self, old: dict[str, Any], new: dict[str, Any], sc: Scenario) -> None:
        super().apply(old, new, sc)
        self.settle()

    @staticmethod
    def settle() -> None:
        """netplan apply restarts NetworkManager, whose start re-activates br0 (dropping the
        taps) after the command returned: wait for its startup to complete."""
        run("nm-online", "-s", "-q", "-t", "300", check=False, timeout=400)


STACKS: dict[str, type[Stack]] = {
    s.name: s for s in (Ifupdown, Ifupdown2, Networkd, NetworkManager, NetplanNetworkd, NetplanNM)
}

# ------------------------------------------------------------------------------ measuring


def link_state() -> dict[str, dict[str, Any]]:
    """Per link: what "restored exactly" compares, plus the counters for "untouched"."""
    out: dict[str, dict[str, Any]] = {}
    links = json.loads(run("ip", "-j", "-d", "addr", "show").stdout)
    for ln in links:
        name = ln["ifname"]
        if name == "lo":
            continue
        info = ln.get("linkinfo", {})
        data = info.get("info_data", {})
        kind = info.get("info_kind")
        st: dict[str, Any] = {
            "addrs": sorted(
                f"{a['local']}/{a['prefixlen']}"
                for a in ln.get("addr_info", [])
                if a.get("family") == "inet"
            ),
            "mtu": ln.get("mtu"),
            "master": ln.get("master"),
            "kind": kind,
            "up": "UP" in ln.get("flags", []),
        }
        if kind == "vlan":
            st["vlan"] = (ln.get("link"), data.get("id"))
        if kind == "bond":
            st["bond_mode"] = data.get("mode")
        out[name] = st
    return out


def counters(names: list[str]) -> dict[str, tuple[int, int]]:
    """(ifindex, carrier_changes) of each link; a missing link is (0, -1)."""
    out = {}
    for n in names:
        try:
            with open(f"/sys/class/net/{n}/ifindex") as f:
                idx = int(f.read())
            with open(f"/sys/class/net/{n}/carrier_changes") as f:
                cc = int(f.read())
        except OSError:
            idx, cc = 0, -1
        out[n] = (idx, cc)
    return out


class Pinger:
    def __init__(self, name: str, netns: str, target: str) -> None:
        self.name, self.target = name, target
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", netns, "ping", "-n", "-i", str(PING_INTERVAL), target],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.t0 = time.monotonic()

    def stop(self) -> dict[str, Any]:
        self.proc.send_signal(signal.SIGINT)
        out, _ = self.proc.communicate(timeout=30)
        m = re.search(r"(\d+) packets transmitted, (\d+) received", out)
        sent = int(m.group(1)) if m else 0
        got = {int(s) for s in re.findall(r"icmp_seq=(\d+) ttl=", out)}
        # The last second's packets may still be in flight when ping is stopped.
        settled = max(0, sent - int(1 / PING_INTERVAL))
        lost = sorted(s for s in range(1, settled + 1) if s not in got)
        return {"target": self.target, "sent": sent, "received": len(got), "lost": len(lost)}


class AddrWatch:
    """Every IPv4 address the kernel removes while the rollback runs (``ip monitor``): a lost
    ping on an untouched path is then traced to the stack that took the address away and put
    it back, not guessed at."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            ["ip", "-o", "-4", "monitor", "address"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.t0 = time.time()

    def stop(self, ref: dict[str, dict[str, Any]], names: list[str]) -> dict[str, list[str]]:
        """The addresses of the snapshot (``ref``) that were taken off links in ``names``: a
        changed address going away is the rollback's job, a kept one going away is not."""
        self.proc.terminate()
        out, _ = self.proc.communicate(timeout=30)
        drops: dict[str, list[str]] = {}
        for text in out.splitlines():
            m = re.match(r"Deleted \d+: (\S+)\s+inet (\S+)", text)
            if (
                m
                and m.group(1) in names
                and m.group(2) in (ref.get(m.group(1)) or {}).get("addrs", [])
            ):
                drops.setdefault(m.group(1), []).append(m.group(2))
        return drops


def journal_since(since: float, *units: str) -> list[str]:
    """The journal lines of ``units`` since ``since`` (epoch seconds), message text only."""
    argv = ["journalctl", "--no-pager", "-o", "cat", f"--since=@{since:.0f}"]
    return run(*argv, *(f"-u{u}" for u in units), check=False).stdout.splitlines()


# ------------------------------------------------------------------------------ scenarios


def wait_settled(want: dict[str, dict[str, Any]], names: list[str], timeout: float) -> bool:
    def same() -> bool:
        now = link_state()
        return all(now.get(n) == want.get(n) for n in names)

    try:
        wait_for("the live state to match", same, timeout, 0.5)
        return True
    except TimeoutError:
        return False


def baseline_ok(model: dict[str, Any]) -> bool:
    st = link_state()
    names = topo_ifaces(model)
    return all(n in st and st[n]["up"] for n in names) and all(
        st[t]["master"] == "br0" for t in TAPS
    )


def flows_ok() -> list[str]:
    bad = []
    for name, netns, target, _, _ in FLOWS:
        if ns(netns, "ping", "-n", "-c", "1", "-W", "2", target, check=False).returncode != 0:
            bad.append(name)
    return bad


def run_scenario(stack: Stack, name: str, ref: dict[str, dict[str, Any]]) -> dict[str, Any]:
    sc = SCENARIOS[name]
    old = copy.deepcopy(BASE)
    new = copy.deepcopy(BASE)
    sc.change(new)
    res: dict[str, Any] = {"stack": stack.name, "scenario": name, "what": sc.what, "problems": []}
    names_old = topo_ifaces(old)
    before = link_state()
    if any(before.get(n) != ref.get(n) for n in names_old):
        res["problems"].append(
            "baseline differs from the reference before the scenario: "
            + ", ".join(n for n in names_old if before.get(n) != ref.get(n))
        )
    # A changed link that may not bounce (br0 when only its address changes) counts too.
    untouched = [n for n in names_old if n not in sc.may_bounce]
    # Links whose own file this stack's form of the change edits, beyond the scenario's: they
    # must not bounce either, but the stack may re-apply their addresses; measured apart.
    edited = (
        {"bond0"} if stack.vlans_in_parent and set(old["vlans"]) != set(new["vlans"]) else set()
    )
    changed = set(sc.changed) | edited
    txn = cli("start", "--timeout", "1h", "--allow-pending", "--label", f"topology {name}")
    tid = txn["transaction"]["id"]
    t0 = time.monotonic()
    stack.apply(old, new, sc)
    attach_taps()
    res["apply_s"] = round(time.monotonic() - t0, 1)
    flows = [f for f in FLOWS if not f[3] & sc.may_bounce and f[4] not in changed]
    edited_flows = [f for f in FLOWS if not f[3] & sc.may_bounce and f[4] in edited]
    say("STEP", f"{name}: applied in {res['apply_s']}s; waiting for {[f[0] for f in flows]}")
    wait_for(
        "the untouched paths to answer",
        lambda: all(
            ns(f[1], "ping", "-n", "-c", "1", "-W", "2", f[2], check=False).returncode == 0
            for f in flows
        ),
        300,
        1,
    )
    pingers = [Pinger(f[0], f[1], f[2]) for f in flows]
    edited_pingers = [Pinger(f[0], f[1], f[2]) for f in edited_flows]
    c0 = counters(untouched)
    mid = link_state()
    watch = AddrWatch()
    t_arm = time.monotonic()
    cli("extend", "--timeout", TXN_TIMEOUT)
    say("STEP", f"{name}: armed for {TXN_TIMEOUT}, {len(pingers)} pingers")

    slow = [time.monotonic() + 90]

    def ended() -> dict[str, Any] | None:
        st = cli("status", check=False)
        last = st.get("last") or {}
        if slow and time.monotonic() > slow[0]:  # a rollback this slow is stuck: say where, once
            slow.clear()
            say("LOG", f"{name}: not ended after 90s: {json.dumps(st)[:1500]}")
            journal_excerpt(name)
        return last if st.get("state") == "idle" and last.get("id") == tid else None

    try:
        last = wait_for("the transaction to end", ended, 900, 0.5)
    except TimeoutError as e:
        last = {"outcome": "timeout", "errors": [str(e)], "bounced": []}
    res["rollback_s"] = round(time.monotonic() - t_arm, 1)
    res["outcome"] = f"{last.get('outcome')}/{last.get('reason')}"
    res["errors"] = last.get("errors", [])
    res["bounced"] = sorted(last.get("bounced", []))
    res["restored"] = wait_settled(ref, names_old, 180)
    res["settle_s"] = round(time.monotonic() - t_arm, 1)
    time.sleep(1.5)
    c1 = counters(untouched)
    res["pings"] = {p.name: p.stop() for p in pingers}
    # what the rollback did, step by step, in the daemon's words (its outcome line)
    outcome = [t for t in journal_since(watch.t0 - 2, "netcfg-txnd") if tid in t and "done:" in t]
    res["steps"] = outcome[-1].split("done: ", 1)[1].split(", ") if outcome else []
    res["edited_pings"] = {p.name: p.stop() for p in edited_pingers}
    drops = watch.stop(ref, untouched)
    res["addr_drops"] = {n: a for n, a in drops.items() if n not in edited}
    res["edited_readded"] = {n: a for n, a in drops.items() if n in edited}
    if drops:  # who took them: the stack's words for reconfiguring a link
        said = journal_since(watch.t0 - 2, "systemd-networkd", "NetworkManager")
        why = [t for t in said if re.search(r"[Rr]econfigur|[Rr]emoving address", t)]
        res["stack_log"] = why[:20]
    after = link_state()
    res["diff"] = {
        n: {"want": ref.get(n), "got": after.get(n)}
        for n in names_old
        if after.get(n) != ref.get(n)
    }
    res["extra_links"] = sorted(set(after) - set(before) - {"lo"})
    res["applied"] = {n: mid.get(n) for n in sorted(sc.changed)}
    if all(mid.get(n) == ref.get(n) for n in sc.changed):  # a rollback of nothing proves nothing
        res["problems"].append(f"the change did not take effect: {res['applied']}")
    res["untouched"] = untouched
    res["edited"] = sorted(edited)
    res["link_changes"] = {
        n: {"ifindex": [c0[n][0], c1[n][0]], "carrier_changes": [c0[n][1], c1[n][1]]}
        for n in untouched
        if c0[n] != c1[n]
    }
    res["lost"] = sum(p["lost"] for p in res["pings"].values())
    res["unexpected_bounce"] = sorted(set(res["bounced"]) - sc.may_bounce)
    if res["outcome"] != "rolled-back/timeout":
        res["problems"].append(f"outcome {res['outcome']}: {res['errors']}")
    if res["lost"]:
        res["problems"].append(f"{res['lost']} packet(s) lost on untouched paths")
    if res["addr_drops"]:
        res["problems"].append(f"addresses taken off untouched links: {res['addr_drops']}")
    if res["link_changes"]:
        res["problems"].append(f"link changes on untouched: {sorted(res['link_changes'])}")
    if res["unexpected_bounce"]:
        res["problems"].append(f"bounced beyond the expected: {res['unexpected_bounce']}")
    if not res["restored"] or res["extra_links"]:
        res["problems"].append(
            f"not restored exactly: {sorted(res['diff'])} extra links {res['extra_links']}"
        )
    res["ok"] = not res["problems"]
    return res


def journal_excerpt(name: str, lines: int = 80) -> None:
    """What the daemon and the stacks logged around a failed scenario, on the console (the
    host keeps it with --keep): the only trace of why a rollback went wrong in a VM gone."""
    units = ("netcfg-txnd", "systemd-networkd", "NetworkManager")
    argv = ["journalctl", "--no-pager", "-o", "short-monotonic", "-n", str(lines)]
    out = run(*argv, *(f"-u{u}" for u in units), check=False).stdout
    for text in out.splitlines():
        say("LOG", f"{name}: {text}")


def restore_baseline(stack: Stack) -> None:
    """After a failed scenario: put the baseline back so the next one starts clean."""
    stack.bring_up(BASE)
    attach_taps()


def main() -> int:
    args = dict(
        w.split("=", 1) for w in open("/proc/cmdline").read().split() if w.startswith("nct.")
    )
    stack = STACKS[args["nct.stack"]]()
    scens = [s for s in args.get("nct.scen", "").split(",") if s]
    os.environ["PATH"] = BASE_PATH
    t0 = time.monotonic()
    say("STEP", f"runner started for {stack.name}")
    for k in ("all", "default"):
        run("sysctl", "-qw", f"net.ipv6.conf.{k}.disable_ipv6=1")
    run("modprobe", "bonding", "max_bonds=0")
    run("modprobe", "8021q")
    run("modprobe", "bridge")
    build_peers()
    say("STEP", f"peers built t={time.monotonic() - t0:.0f}")
    stack.prepare()
    write(
        "/etc/netcfg-txn/conf.d/50-topology.toml",
        f'[files]\npresets = ["{stack.preset}"]\n\n[apply]\nbackend = "{stack.backend}"\n'
        'fallback = "reload"\n',
    )
    run("systemctl", "restart", "netcfg-txnd.service")
    say("STEP", f"{stack.name} prepared t={time.monotonic() - t0:.0f}")
    stack.bring_up(BASE)
    attach_taps()
    say("STEP", f"baseline applied t={time.monotonic() - t0:.0f}")
    names = topo_ifaces(BASE)
    try:
        # netplan apply restarts NetworkManager, which re-activates br0 a while later and drops
        # the taps: until the baseline holds, they are plugged in again (setup, not measured).
        wait_for("the baseline topology", lambda: attached() and baseline_ok(BASE), 300, 0.5)
        wait_for("every peer to answer", lambda: attached() and not flows_ok(), 300, 1)
    except TimeoutError:
        say("LOG", f"baseline: {json.dumps(link_state(), separators=(',', ':'))}")
        say("LOG", f"baseline: peers not answering: {flows_ok()}")
        journal_excerpt("baseline", 150)
        raise
    ref = link_state()
    cli("start", "--timeout", "1h", "--allow-pending", "--label", "topology baseline")
    cli("commit")
    say(
        "READY",
        f"{stack.name} t={time.monotonic() - t0:.0f} "
        + json.dumps({n: ref.get(n) for n in names}, separators=(",", ":")),
    )
    for name in scens:
        try:
            res = run_scenario(stack, name, ref)
        except Exception as e:
            res = {"stack": stack.name, "scenario": name, "ok": False, "problems": [f"runner: {e}"]}
            traceback.print_exc()
            with contextlib.suppress(Exception):
                cli("rollback", "--force", check=False)
        say("RESULT", json.dumps(res, separators=(",", ":")))
        if not res["ok"]:
            journal_excerpt(name)
            with contextlib.suppress(Exception):
                restore_baseline(stack)
                wait_settled(ref, names, 180)
    return 0


if __name__ == "__main__":
    try:
        main()
    except Exception:
        say("ERROR", traceback.format_exc().replace("\n", " | ")[-1500:])
    say("DONE")
    time.sleep(5)
    run("systemctl", "poweroff", "-f", check=False)
