# SPDX-License-Identifier: GPL-3.0-or-later
"""Links networkd creates only while it configures their parent (``VLAN=`` and the like), and
how a rollback brings one back without reconfiguring that parent.

networkd (v252) creates a stacked link only when it configures the parent, and ``networkctl
reload`` reconfigures a parent only when the parent's own ``.network`` changed. A VLAN the
rollback deleted because its ``.netdev`` changed would never come back by itself. Worse, v252
keeps a stacked netdev loaded after its link is gone (``netdev_drop``) and ignores a changed
``.netdev`` of a loaded netdev on reload: reconfiguring the parent would recreate the VLAN as the
change defined it, not as the restored file does; only a restart of networkd reads the file
again. And reconfiguring a parent has a cost: v252 takes its IPv4 addresses off and puts them
back (it compares the configured address, whose broadcast is unset, with the kernel's, and drops
the kernel's as foreign), so pings to the parent are lost.

So a VLAN is created here, with ``ip link add``, from its restored ``.netdev``. networkd adopts a
link of the right name and kind as its netdev (``netdev_set_ifindex``) and configures it from its
``.network``. A ``.netdev`` with a setting this translation does not know is left to networkd:
the parent's ``.network`` is touched, so the reload reconfigures the parent, which recreates the
VLAN from the definition networkd has loaded (the verify reports it if that is not the one
restored).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from netcfg_txn.core.errors import ConfigError
from netcfg_txn.net.backends.keyfile import Section, parse_keyfile

# [Network] keys of a parent naming a link stacked on it
STACKED_KEYS = ("VLAN", "MACVLAN", "MACVTAP", "IPVLAN", "IPVTAP", "VXLAN", "Tunnel", "Xfrm")

_TRUE = frozenset({"1", "yes", "y", "true", "t", "on"})
_FALSE = frozenset({"0", "no", "n", "false", "f", "off"})
# [VLAN] booleans and their ``ip link`` words
_VLAN_FLAGS = {
    "GVRP": "gvrp",
    "MVRP": "mvrp",
    "LooseBinding": "loose_binding",
    "ReorderHeader": "reorder_hdr",
}
_PROTOCOLS = {"802.1q": "802.1Q", "802.1ad": "802.1ad"}
_NETDEV_KEYS = frozenset({"Name", "Kind", "MTUBytes", "MACAddress", "Description"})
_GLOB = frozenset("*?[!")
_MAC = re.compile(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}")


def layered(dirs: Sequence[Path], suffix: str) -> list[Path]:
    """The files networkd reads, in its order: by file name, a name in an earlier directory
    (``/etc``) hiding the same name in a later one (``/run``)."""
    found: dict[str, Path] = {}
    for d in dirs:
        try:
            entries = sorted(d.iterdir())
        except OSError:
            continue
        for p in entries:
            if p.name.endswith(suffix) and p.name not in found and p.is_file():
                found[p.name] = p
    return [found[n] for n in sorted(found)]


def _sections(path: Path) -> tuple[Section, ...] | None:
    try:
        return parse_keyfile(PurePosixPath(path), path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, ConfigError):
        return None  # not ours to judge here: planning already reported it


def naming_stacked(name: str, dirs: Sequence[Path]) -> list[tuple[Path, tuple[Section, ...]]]:
    """The parents' ``.network`` files listing ``name`` as a link stacked on them."""
    out = []
    for path in layered(dirs, ".network"):
        sections = _sections(path)
        if sections is not None and any(
            name in v.split()
            for s in sections
            if s.name == "Network"
            for k in STACKED_KEYS
            for v in s.values(k)
        ):
            out.append((path, sections))
    return out


def _netdev(name: str, dirs: Sequence[Path]) -> tuple[Section, ...] | None:
    """The first ``.netdev`` defining ``name``: networkd ignores later ones."""
    for path in layered(dirs, ".netdev"):
        sections = _sections(path)
        if sections and any(s.name == "NetDev" and s.get("Name") == name for s in sections):
            return sections
    return None


def _flag(value: str) -> str | None:
    v = value.lower()
    return "on" if v in _TRUE else "off" if v in _FALSE else None


def vlan_argv(name: str, dirs: Sequence[Path]) -> list[str] | None:
    """``ip link add`` for the VLAN ``name`` as networkd would create it, or None when it is
    not a VLAN, its parent is not one plain name, or its ``.netdev`` holds anything else."""
    netdev = _netdev(name, dirs)
    parents = naming_stacked(name, dirs)
    if netdev is None or len(parents) != 1:
        return None
    names = [
        w for s in parents[0][1] if s.name == "Match" for v in s.values("Name") for w in v.split()
    ]
    if len(names) != 1 or _GLOB & set(names[0]):
        return None
    link: list[str] = []  # ip's words for any link, before "type"
    extra: list[str] = []  # ... and for a VLAN, after it
    vid: str | None = None
    for s in netdev:
        for e in s.entries:
            if s.name == "NetDev" and e.key in _NETDEV_KEYS:
                if e.key == "Kind" and e.value != "vlan":
                    return None
                if e.key == "MTUBytes":
                    if not e.value.isdigit():
                        return None  # a size with a suffix: networkd's own parser is the judge
                    link += ["mtu", e.value]
                elif e.key == "MACAddress":
                    if not _MAC.fullmatch(e.value):
                        return None
                    link += ["address", e.value]
            elif s.name == "VLAN" and e.key == "Id" and e.value.isdigit():
                vid = e.value
            elif s.name == "VLAN" and e.key == "Protocol" and e.value.lower() in _PROTOCOLS:
                extra += ["protocol", _PROTOCOLS[e.value.lower()]]
            elif s.name == "VLAN" and e.key in _VLAN_FLAGS and (f := _flag(e.value)) is not None:
                extra += [_VLAN_FLAGS[e.key], f]
            else:
                return None
    if vid is None:
        return None
    head = ["ip", "link", "add", "link", names[0], "name", name, *link]
    return [*head, "type", "vlan", "id", vid, *extra]
