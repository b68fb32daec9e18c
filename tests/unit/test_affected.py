# SPDX-License-Identifier: GPL-3.0-or-later
"""plan_bounce: only interfaces whose configuration changed are bounced (R20-R24).

Parse-level: bonds and VLANs appear only in fixture text (this kernel has neither module).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import PurePosixPath

from hypothesis import given
from hypothesis import strategies as st

from netcfg_txn.core.rollback import BouncePlan
from netcfg_txn.net.affected import FileChange, plan_bounce
from netcfg_txn.net.backends import ApplyConfig, Stack, get_backend
from tests.fakes import host_files

P = PurePosixPath
IFUPDOWN = get_backend(Stack.IFUPDOWN, ApplyConfig())
MAIN = P("/etc/network/interfaces")

TWO = """\
auto eth0
iface eth0 inet static
    address 192.0.2.10/24

auto eth1
iface eth1 inet static
    address 198.51.100.10/24
"""


def changes(old: Mapping[P, str], new: Mapping[P, str]) -> list[FileChange]:
    """Every file of both sides, unchanged ones included (as the engine passes them)."""
    return [
        FileChange(
            p,
            old[p].encode() if p in old else None,
            new[p].encode() if p in new else None,
        )
        for p in sorted({*old, *new})
    ]


def plan(
    stack: Stack,
    old: Mapping[PurePosixPath, str],
    new: Mapping[PurePosixPath, str],
    live: Iterable[str] = (),
    fallback: str = "reload",
) -> BouncePlan:
    backend = get_backend(stack, ApplyConfig())
    return plan_bounce(backend, changes(old, new), frozenset(live), fallback)


def ifplan(
    old: str, new: str, live: Iterable[str] = ("eth0", "eth1"), fallback: str = "reload"
) -> BouncePlan:
    return plan(Stack.IFUPDOWN, {MAIN: old}, {MAIN: new}, live, fallback)


def interfaces(p: BouncePlan) -> tuple[str, ...]:
    """Every interface bounced."""
    return tuple(sorted({*p.down, *p.up}))


def bounced(p: BouncePlan) -> tuple[tuple[str, ...], tuple[str, ...]]:
    return p.down, p.up


# ------------------------------------------------------------------------------- the table


def test_change_one_of_two_interfaces_bounces_only_it() -> None:
    p = ifplan(TWO, TWO.replace("198.51.100.10/24", "198.51.100.99/24"))
    assert bounced(p) == (("eth1",), ("eth1",))
    assert p.delete == () and p.unattributed == () and p.reload


def test_comment_and_whitespace_only_change_affects_nothing() -> None:
    new = "# managed by hand\n" + TWO.replace(
        "    address 192.0.2.10/24", "\taddress  192.0.2.10/24\n"
    )
    p = ifplan(TWO, new)
    assert p == BouncePlan(down=(), delete=(), up=(), unattributed=(), reload=False)


def test_identical_files_affect_nothing() -> None:
    assert ifplan(TWO, TWO) == BouncePlan((), (), (), (), False)


def test_added_bridge_is_taken_down_and_deleted_but_not_brought_up() -> None:
    new = TWO + "\nauto br9\niface br9 inet manual\n    bridge-ports eth1\n"
    p = ifplan(TWO, new, live=("eth0", "eth1", "br9"))
    assert p.down == ("br9", "eth1")  # the bridge before its port
    assert p.delete == ("br9",)
    assert p.up == ("eth1",)  # released from the bridge: its own config is back
    assert "eth0" not in interfaces(p)


def test_added_bridge_that_never_came_up_is_not_deleted() -> None:
    new = TWO + "\niface br9 inet manual\n    bridge-ports none\n"
    p = ifplan(TWO, new, live=("eth0", "eth1"))
    assert (p.down, p.delete, p.up) == (("br9",), (), ())


def test_removed_stanza_is_only_brought_up() -> None:
    p = ifplan(TWO, TWO.split("\n\n")[0] + "\n")
    assert bounced(p) == ((), ("eth1",))  # no config left to ifdown it with (R21/R22)


def test_changed_bridge_port_list_bounces_bridge_and_its_ports_only() -> None:
    old = TWO + (
        "\niface br0 inet manual\n    bridge_ports eth4 eth5\n"
        "iface eth4 inet manual\niface eth5 inet manual\niface eth6 inet manual\n"
    )
    new = old.replace("bridge_ports eth4 eth5", "bridge_ports eth4 eth6")
    p = ifplan(old, new, live=("eth0", "eth1", "br0", "eth4", "eth5", "eth6"))
    assert p.down == ("br0", "eth5", "eth4", "eth6")  # the bridge before its current ports
    # eth6 is released, eth5 re-enslaved: ports first, then the bridge that enslaves them
    assert p.up == ("eth4", "eth5", "eth6", "br0")
    assert p.delete == ("br0",)  # its own definition changed: recreate it from the snapshot
    assert not {"eth0", "eth1"} & set(interfaces(p))


def test_changed_port_bounces_its_bridge_but_not_the_sibling_port() -> None:
    old = TWO + (
        "\niface br0 inet manual\n    bridge-ports eth4 eth5\n"
        "iface eth4 inet manual\niface eth5 inet manual\n"
    )
    new = old.replace("iface eth4 inet manual", "iface eth4 inet manual\n    mtu 9000")
    p = ifplan(old, new, live=("br0", "eth4", "eth5"))
    assert p.down == ("br0", "eth4") and p.up == ("eth4", "br0")
    assert p.delete == ()  # the bridge's own definition did not change


def test_vlan_follows_its_parent_but_not_the_other_way_round() -> None:
    old = TWO + "\niface eth0.10 inet static\n    address 203.0.113.1/24\n"
    parent = ifplan(old, old.replace("192.0.2.10/24", "192.0.2.11/24"))
    assert bounced(parent) == (("eth0.10", "eth0"), ("eth0", "eth0.10"))
    vlan = ifplan(old, old.replace("203.0.113.1/24", "203.0.113.2/24"))
    assert bounced(vlan) == (("eth0.10",), ("eth0.10",))


def test_files_of_other_stacks_are_ignored() -> None:
    netplan = P("/etc/netplan/01.yaml")
    p = plan(Stack.IFUPDOWN, {MAIN: TWO, netplan: "a: 1\n"}, {MAIN: TWO, netplan: "::: garbage"})
    assert p == BouncePlan((), (), (), (), False)


def test_garbage_new_content_is_unattributed_but_planning_continues() -> None:
    vlans = P("/etc/network/interfaces.d/vlans")
    old = {MAIN: TWO, vlans: "iface eth0.10 inet manual\n"}
    new = {MAIN: TWO.replace("198.51.100.10/24", "198.51.100.11/24"), vlans: "garbage here\n"}
    p = plan(Stack.IFUPDOWN, old, new, live=("eth0", "eth1", "eth0.10"))
    assert bounced(p) == (("eth1",), ("eth1",))  # the rollback still happens around it
    assert p.unattributed == (str(vlans),)
    assert p.reload  # the default fallback
    assert any(f"{vlans}:1: option 'garbage' outside of an iface stanza" in n for n in p.notes)


def test_garbage_old_content_is_unattributed_too() -> None:
    p = ifplan("address nowhere\n", TWO)
    assert p.unattributed == (str(MAIN),) and bounced(p) == ((), ())


def test_undecodable_content_is_unattributed() -> None:
    backend = get_backend(Stack.IFUPDOWN, ApplyConfig())
    p = plan_bounce(backend, [FileChange(MAIN, TWO.encode(), b"\xff\xfe")], frozenset(), "reload")
    assert p.unattributed == (str(MAIN),) and "not UTF-8" in p.notes[0]


SOURCED = "source /etc/network/interfaces.d/*\n\n" + TWO


def test_fallback_reload_bounces_nothing() -> None:
    p = ifplan(SOURCED, SOURCED.replace("source ", "source-directory "), fallback="reload")
    assert p.unattributed == (str(MAIN),) and bounced(p) == ((), ()) and p.reload


def test_fallback_none_does_not_even_reload() -> None:
    p = ifplan(SOURCED, SOURCED.replace("source ", "source-directory "), fallback="none")
    assert p.unattributed == (str(MAIN),) and bounced(p) == ((), ()) and not p.reload


def test_fallback_all_bounces_every_interface_the_stack_configures() -> None:
    p = ifplan(SOURCED, SOURCED.replace("source ", "source-directory "), fallback="all")
    assert bounced(p) == (("eth0", "eth1"), ("eth0", "eth1"))
    assert any(n.startswith("fallback all") for n in p.notes)


def test_an_interface_edit_next_to_global_lines_is_still_attributed() -> None:
    p = ifplan(SOURCED, SOURCED.replace("198.51.100.10/24", "198.51.100.11/24"), fallback="all")
    assert p.unattributed == () and bounced(p) == (("eth1",), ("eth1",))


def test_command_stack_fallback_all_means_every_live_link() -> None:
    backend = get_backend(Stack.COMMAND, ApplyConfig(backend="command", up_command="up {ifname}"))
    ch = [FileChange(P("/etc/mynet.conf"), b"a", b"b")]
    p = plan_bounce(backend, ch, frozenset({"lo", "eth0", "eth1"}), "all")
    assert bounced(p) == (("eth0", "eth1"), ("eth0", "eth1"))
    assert interfaces(plan_bounce(backend, ch, frozenset({"lo", "eth0"}), "reload")) == ()


def test_file_deleted_and_file_added() -> None:
    extra = P("/etc/network/interfaces.d/eth2")
    text = "iface eth2 inet dhcp\n"
    deleted = plan(Stack.IFUPDOWN, {MAIN: TWO, extra: text}, {MAIN: TWO}, live=("eth2",))
    assert bounced(deleted) == ((), ("eth2",))
    added = plan(Stack.IFUPDOWN, {MAIN: TWO}, {MAIN: TWO, extra: text}, live=("eth2",))
    assert bounced(added) == (("eth2",), ())


BOND_BRIDGE = """\
auto bond0
iface bond0 inet static
    address 192.0.2.17/28
    bond-slaves eth1 eth2
    bond-mode active-backup

auto bond0.10
iface bond0.10 inet manual
    vlan-raw-device bond0

auto br0
iface br0 inet static
    address 198.51.100.1/26
    bridge-ports bond0.10
    bridge-stp off
"""
BB_LIVE = ("eth1", "eth2", "bond0", "bond0.10", "br0", "tap1")


def test_bridge_address_change_is_applied_over_netlink_not_by_a_bounce() -> None:
    # A bounced bridge is deleted and recreated: its VM taps (not in any config) would be lost.
    p = ifplan(BOND_BRIDGE, BOND_BRIDGE.replace("198.51.100.1/26", "198.51.100.3/26"), BB_LIVE)
    assert bounced(p) == ((), ()) and p.delete == ()
    assert p.readdress == ("br0",) and p.reload


def test_bridge_address_and_option_change_still_bounces_the_bridge() -> None:
    new = BOND_BRIDGE.replace("198.51.100.1/26", "198.51.100.3/26").replace(
        "bridge-stp off", "bridge-stp on"
    )
    p = ifplan(BOND_BRIDGE, new, BB_LIVE)
    assert p.down == ("br0", "bond0.10") and p.readdress == ()  # with its ports, as before


def test_address_change_under_a_bounced_parent_is_part_of_the_bounce() -> None:
    new = BOND_BRIDGE.replace("198.51.100.1/26", "198.51.100.3/26").replace(
        "active-backup", "balance-xor"
    )
    p = ifplan(BOND_BRIDGE, new, BB_LIVE)
    assert "br0" in p.down and "br0" in p.up and p.readdress == ()


def test_a_bridge_that_is_not_live_is_brought_up_not_readdressed() -> None:
    new = BOND_BRIDGE.replace("198.51.100.1/26", "198.51.100.3/26")
    p = ifplan(BOND_BRIDGE, new, ("eth1", "eth2", "bond0", "bond0.10"))
    assert p.readdress == () and "br0" in p.up


def test_plain_link_address_change_still_bounces_it() -> None:
    # Not a link the config creates: nothing hangs off it that a bounce could lose.
    p = ifplan(TWO, TWO.replace("198.51.100.10/24", "198.51.100.99/24"))
    assert bounced(p) == (("eth1",), ("eth1",)) and p.readdress == ()


def test_bounce_plan_json_round_trip() -> None:
    p = BouncePlan(
        down=("br0", "eth1"),
        delete=("br0",),
        up=("eth1",),
        unattributed=("/etc/network/interfaces",),
        reload=True,
        down_ids={"eth1": "Wired connection 1"},
        up_ids={"eth1": "Wired connection 1"},
        notes=("fallback reload: ...",),
        readdress=("br1",),
    )
    assert BouncePlan.from_json(p.to_json()) == p
    assert BouncePlan.from_json(
        {"down": [], "delete": [], "up": [], "unattributed": [], "reload": False}
    )


# ------------------------------------------------------------------------- other stacks

NETWORKD = host_files("networkd")
ND = P("/etc/systemd/network")
LIVE = ("eth0", "eth1", "eth2", "eth3", "eth4", "eth5", "br0", "bond0", "eth0.10")


def nd(edits: Mapping[str, str | None], live: Iterable[str] = LIVE) -> BouncePlan:
    new = dict(NETWORKD)
    for name, text in edits.items():
        if text is None:
            new.pop(ND / name)
        else:
            new[ND / name] = text
    return plan(Stack.NETWORKD, NETWORKD, new, live)


def test_networkd_glob_is_resolved_against_live_names() -> None:
    text = NETWORKD[ND / "50-veth.network"].replace(
        "LinkLocalAddressing=no", "LinkLocalAddressing=yes"
    )
    p = nd({"50-veth.network": text}, live=(*LIVE, "veth0", "veth1", "veth-lab"))
    assert bounced(p) == (("veth0", "veth1"), ("veth0", "veth1"))  # not the excluded veth-lab


def test_networkd_first_matching_file_wins() -> None:
    catchall = "[Match]\nName=eth*\n\n[Network]\nDHCP=yes\n"
    old = {**NETWORKD, ND / "99-catchall.network": catchall}
    new = {**NETWORKD, ND / "99-catchall.network": catchall.replace("yes", "ipv4")}
    p = plan(Stack.NETWORKD, old, new, (*LIVE, "eth9"))
    assert bounced(p) == (("eth9",), ("eth9",))  # eth0..eth5 have earlier files of their own


def test_networkd_dropin_change_bounces_what_its_file_matches() -> None:
    p = nd({"10-eth1.network.d/mtu.conf": "[Link]\nMTUBytes=1400\n"})
    assert bounced(p) == (("eth1",), ("eth1",))


def test_networkd_dropin_for_an_unmanaged_file_is_unattributed() -> None:
    dropin = ND / "10-eth1.network.d/mtu.conf"
    backend = get_backend(Stack.NETWORKD, ApplyConfig())
    ch = [FileChange(dropin, NETWORKD[dropin].encode(), b"[Link]\nMTUBytes=1400\n")]
    p = plan_bounce(backend, ch, frozenset(LIVE), "reload")
    assert p.unattributed == (str(dropin),) and interfaces(p) == ()


def test_networkd_changed_bond_members_file_bounces_members_and_bond() -> None:
    text = NETWORKD[ND / "31-bond0-members.network"].replace("Name=eth2 eth3", "Name=eth2")
    p = nd({"31-bond0-members.network": text})
    assert p.down == ("bond0",)  # eth3 has no config left to take it down with; eth2 is as it was
    assert p.up == ("eth3", "bond0")
    assert p.delete == ()  # 30-bond0.netdev did not change


def test_networkd_changed_netdev_is_recreated() -> None:
    text = NETWORKD[ND / "40-eth0.10.netdev"].replace("Id=10", "Id=11")
    p = nd({"40-eth0.10.netdev": text})
    assert bounced(p) == (("eth0.10",), ("eth0.10",)) and p.delete == ("eth0.10",)


def test_networkd_link_file_by_mac_is_unattributed() -> None:
    p = nd({"99-default.link": NETWORKD[ND / "99-default.link"].replace("uplink0", "wan0")})
    assert p.unattributed == (str(ND / "99-default.link"),) and interfaces(p) == ()


NMF = host_files("networkmanager")
NMD = P("/etc/NetworkManager/system-connections")


def test_networkmanager_connection_ids_are_carried_for_up() -> None:
    new = dict(NMF)
    new[NMD / "Wired connection 1"] = NMF[NMD / "Wired connection 1"].replace("auto", "disabled")
    p = plan(Stack.NETWORKMANAGER, NMF, new, LIVE)
    assert bounced(p) == (("eth1",), ("eth1",))
    assert p.up_ids == {"eth1": "Wired connection 1"} == p.down_ids


def test_networkmanager_controller_by_uuid_is_resolved() -> None:
    new = dict(NMF)
    new[NMD / "br0.nmconnection"] = NMF[NMD / "br0.nmconnection"].replace("stp=false", "stp=true")
    p = plan(Stack.NETWORKMANAGER, NMF, new, LIVE)
    assert p.down == ("br0", "eth4", "eth5")  # eth5 names br0 by UUID
    assert p.up == ("eth4", "eth5", "br0")
    assert p.up_ids == {"eth4": "br0-port-eth4", "eth5": "br0-port-eth5", "br0": "br0"}


NPF = host_files("netplan")
NPD = P("/etc/netplan")


def test_netplan_only_the_changed_entry_bounces() -> None:
    new = dict(NPF)
    new[NPD / "01-netcfg.yaml"] = NPF[NPD / "01-netcfg.yaml"].replace("dhcp4: true", "dhcp4: false")
    p = plan(Stack.NETPLAN, NPF, new, LIVE)
    assert bounced(p) == (("eth1",), ("eth1",)) and p.up_ids == {}


def test_netplan_networkmanager_rendered_entry_gets_its_profile_id() -> None:
    new = dict(NPF)
    new[NPD / "90-wifi.yaml"] = NPF[NPD / "90-wifi.yaml"].replace("dhcp4: true", "dhcp4: false")
    p = plan(Stack.NETPLAN, NPF, new, (*LIVE, "wlan0"))
    assert p.up_ids == {"wlan0": "netplan-wlan0-lab"}


def test_netplan_invalid_yaml_is_unattributed() -> None:
    new = {**NPF, NPD / "90-wifi.yaml": "network: {wifis: [\n"}
    p = plan(Stack.NETPLAN, NPF, new, LIVE)
    assert p.unattributed == (str(NPD / "90-wifi.yaml"),) and interfaces(p) == ()


IFCFG = host_files("ifcfg")
NS = P("/etc/sysconfig/network-scripts")


def test_ifcfg_route_file_bounces_its_device_and_what_is_stacked_on_it() -> None:
    new = {**IFCFG, NS / "route-eth0": "198.51.100.0/24 via 192.0.2.253 dev eth0\n"}
    p = plan(Stack.IFCFG, IFCFG, new, LIVE)
    assert bounced(p) == (("eth0.10", "eth0"), ("eth0", "eth0.10"))


# ---------------------------------------------------------------------------------- property

NAMES = [f"eth{i}" for i in range(6)]
stanza_options = st.lists(
    st.sampled_from(["mtu 1500", "mtu 9000", "address 192.0.2.1/24"]), max_size=2
)


def render(config: Mapping[str, list[str]], noise: bool) -> str:
    """ifupdown text; ``noise`` adds comments and odd spacing that must not matter."""
    comment, gap, indent = ("# note\n", "  ", "\t") if noise else ("", " ", "    ")
    out = []
    for name, options in sorted(config.items()):
        out.append(f"{comment}iface {name} inet{gap}manual")
        out += [f"{indent}{o}" for o in options]
    return "\n".join(out) + "\n"


@given(
    old=st.dictionaries(st.sampled_from(NAMES), stanza_options),
    new=st.dictionaries(st.sampled_from(NAMES), stanza_options),
    live=st.sets(st.sampled_from(NAMES)),
    noise=st.booleans(),
)
def test_untouched_interfaces_are_never_bounced(
    old: dict[str, list[str]], new: dict[str, list[str]], live: set[str], noise: bool
) -> None:
    p = ifplan(render(old, False), render(new, noise), live=tuple(live))
    touched = {n for n in NAMES if old.get(n) != new.get(n)}
    assert set(p.down) | set(p.up) <= touched
    assert set(p.down) == touched & set(new)  # ... and every changed one with config is
    assert set(p.up) == touched & set(old)


# ------------------------------------------------------------ address-only changes, other stacks


def test_networkd_bridge_address_change_is_a_readdress() -> None:
    old = {
        ND / "40-br0.netdev": "[NetDev]\nName=br0\nKind=bridge\n",
        ND / "40-br0.network": "[Match]\nName=br0\n[Network]\nAddress=198.51.100.1/26\n",
    }
    new = {**old, ND / "40-br0.network": old[ND / "40-br0.network"].replace(".1/26", ".3/26")}
    p = plan(Stack.NETWORKD, old, new, ("br0",))
    assert bounced(p) == ((), ()) and p.readdress == ("br0",)
    dns = {**old, ND / "40-br0.network": old[ND / "40-br0.network"] + "DNS=192.0.2.53\n"}
    assert plan(Stack.NETWORKD, old, dns, ("br0",)).readdress == ()


def test_networkmanager_bridge_address_change_is_a_readdress() -> None:
    nmdir = P("/etc/NetworkManager/system-connections")
    text = (
        "[connection]\nid=br0\ntype=bridge\ninterface-name=br0\n"
        "[ipv4]\nmethod=manual\naddress1=198.51.100.1/26\n"
    )
    old = {nmdir / "br0.nmconnection": text}
    new = {nmdir / "br0.nmconnection": text.replace(".1/26", ".3/26")}
    p = plan(Stack.NETWORKMANAGER, old, new, ("br0",))
    assert bounced(p) == ((), ()) and p.readdress == ("br0",)
    gw = {nmdir / "br0.nmconnection": text + "gateway=198.51.100.62\n"}
    assert plan(Stack.NETWORKMANAGER, old, gw, ("br0",)).readdress == ()


def test_netplan_bridge_address_change_is_a_readdress() -> None:
    yaml_path = P("/etc/netplan/10-nct.yaml")
    text = (
        "network:\n  version: 2\n  bridges:\n    br0:\n      interfaces: []\n"
        "      addresses: [198.51.100.1/26]\n"
    )
    p = plan(
        Stack.NETPLAN,
        {yaml_path: text},
        {yaml_path: text.replace(".1/26", ".3/26")},
        ("br0",),
    )
    assert bounced(p) == ((), ()) and p.readdress == ("br0",)


# networkd states a VLAN's tie in its parent's .network (VLAN=): adding or deleting a VLAN edits
# the parent's file, yet only the VLAN is created or removed; the parent (a bond carrying other
# VLANs and a bridge) stays up.
VLAN30 = {
    "41-eth0.30.netdev": "[NetDev]\nName=eth0.30\nKind=vlan\n\n[VLAN]\nId=30\n",
    "41-eth0.30.network": "[Match]\nName=eth0.30\n\n[Network]\nAddress=203.0.113.17/28\n",
}


def with_vlans(*lines: str) -> str:
    text = NETWORKD[ND / "10-eth0.network"]
    return text.replace("VLAN=eth0.10\n", "".join(f"{v}\n" for v in lines))


def test_networkd_added_vlan_is_deleted_without_bouncing_its_parent() -> None:
    p = nd({"10-eth0.network": with_vlans("VLAN=eth0.10", "VLAN=eth0.30"), **VLAN30},
           live=(*LIVE, "eth0.30"))  # fmt: skip
    assert bounced(p) == (("eth0.30",), ()) and p.delete == ("eth0.30",)
    assert p.reload  # the parent's restored file lists one VLAN fewer


def test_networkd_deleted_vlan_is_brought_back_without_bouncing_its_parent() -> None:
    p = nd({"10-eth0.network": with_vlans(), "40-eth0.10.netdev": None,
            "40-eth0.10.network": None}, live=tuple(n for n in LIVE if n != "eth0.10"))  # fmt: skip
    assert bounced(p) == ((), ("eth0.10",)) and p.delete == () and p.reload


def test_networkd_vlan_line_alone_moved_bounces_only_the_vlan() -> None:
    # the VLAN's own files are as they were; only the parent no longer creates it
    p = nd({"10-eth0.network": with_vlans()})
    assert bounced(p) == (("eth0.10",), ("eth0.10",))


def test_networkd_parent_setting_change_still_bounces_the_parent_and_its_vlan() -> None:
    p = nd({"10-eth0.network": with_vlans("VLAN=eth0.10", "MTUBytes=1400")})
    assert interfaces(p) == ("eth0", "eth0.10")
