# SPDX-License-Identifier: GPL-3.0-or-later
"""The crash tier's fake root: 24 managed files in several directories (the same basename in two
of them, symlinks, odd modes and owners, an xattr, a 200 KiB file, a name with a space), an edit
that changes, adds, deletes and retypes files, and an independent oracle that captures the tree.

The oracle deliberately does not use the product's scanner: it walks the whole fake root.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

CONFIG = """\
[files]
presets = ["ifupdown", "networkd", "networkmanager", "netplan"]
include = ["/etc/sysconfig/network-scripts/ifcfg-*"]
[timer]
min = "1s"
default = "1h"
max = "24h"
[apply]
backend = "none"  # files only: never run a stack's tools against the host
"""

# relpath -> (content or ("->", target), mode, uid, gid)
Entry = tuple[Any, int, int, int]

BASE: dict[str, Entry] = {
    "etc/network/interfaces": (b"auto lo\niface lo inet loopback\nsource interfaces.d/*\n",
                               0o644, 0, 0),
    "etc/network/interfaces.d/uplink": (b"auto eth0\niface eth0 inet dhcp\n", 0o644, 0, 0),
    "etc/network/interfaces.d/eth1": (b"iface eth1 inet static\n address 192.0.2.1/24\n",
                                      0o640, 0, 4321),
    "etc/network/interfaces.d/br0": (b"iface br0 inet manual\n bridge_ports eth2\n", 0o600, 0, 0),
    "etc/network/interfaces.d/vlan10": (b"iface eth1.10 inet manual\n", 0o444, 0, 0),
    "etc/network/interfaces.d/empty": (b"", 0o644, 0, 0),
    "etc/network/interfaces.d/current": (("->", "uplink"), 0o777, 0, 0),
    "etc/network/interfaces.d/big": (bytes(range(256)) * 800, 0o644, 0, 0),
    "etc/network/interfaces.d/with space": (b"# a name with a space\n", 0o644, 0, 0),
    "etc/systemd/network/10-eth0.network": (b"[Match]\nName=eth0\n[Network]\nDHCP=yes\n",
                                            0o644, 0, 0),
    "etc/systemd/network/10-eth0.network.d/mtu.conf": (b"[Link]\nMTUBytes=1500\n", 0o644, 0, 0),
    "etc/systemd/network/20-eth1.network": (b"[Match]\nName=eth1\n", 0o755, 0, 0),
    "etc/systemd/network/20-eth1.network.d/mtu.conf": (b"[Link]\nMTUBytes=9000\n",
                                                       0o640, 1234, 1234),
    "etc/systemd/network/30-br0.netdev": (b"[NetDev]\nName=br0\nKind=bridge\n", 0o644, 0, 0),
    "etc/systemd/network/30-br0.network": (b"[Match]\nName=br0\n", 0o644, 0, 0),
    "etc/systemd/network/99-default.link": (("->", "/dev/null"), 0o777, 0, 0),
    "etc/NetworkManager/NetworkManager.conf": (b"[main]\nplugins=keyfile\n", 0o644, 0, 0),
    "etc/NetworkManager/conf.d/dns.conf": (b"[main]\ndns=none\n", 0o644, 0, 0),
    "etc/NetworkManager/system-connections/uplink": (b"[connection]\nid=uplink\n", 0o600, 0, 0),
    "etc/NetworkManager/system-connections/caf\u00e9.nmconnection": (b"[connection]\nid=w\n",
                                                                    0o600, 0, 0),
    "etc/netplan/01-netcfg.yaml": (b"network:\n  version: 2\n", 0o600, 0, 0),
    "etc/netplan/50-cloud-init.yaml": (b"network: {ethernets: {eth0: {dhcp4: true}}}\n",
                                       0o644, 0, 0),
    "etc/sysconfig/network-scripts/ifcfg-eth0": (b"DEVICE=eth0\nBOOTPROTO=dhcp\n", 0o644, 1234, 0),
    "etc/sysconfig/network-scripts/ifcfg-eth1": (b"DEVICE=eth1\n", 0o701, 0, 0),
}  # fmt: skip

# Not managed (a dotfile, and a file outside every glob): must survive everything untouched.
UNMANAGED: dict[str, Entry] = {
    "etc/network/interfaces.d/.keep": (b"not managed\n", 0o644, 0, 0),
    "etc/network/if-up.d/hook": (b"#!/bin/sh\n", 0o755, 0, 0),
}
XATTR_FILE = "etc/network/interfaces.d/br0"

# The new configuration: modified, deleted, added, metadata-only and retyped entries.
NEW: dict[str, Entry | None] = {
    "etc/network/interfaces": (b"auto lo\niface lo inet loopback\nsource interfaces.d/*\n"
                               b"auto new0\n", 0o644, 0, 0),
    "etc/network/interfaces.d/uplink": (b"auto eth0\niface eth0 inet static\n", 0o644, 0, 0),
    "etc/network/interfaces.d/eth1": (BASE["etc/network/interfaces.d/eth1"][0], 0o644, 0, 4321),
    "etc/network/interfaces.d/vlan10": None,
    "etc/network/interfaces.d/current": (("->", "br0"), 0o777, 0, 0),
    "etc/network/interfaces.d/big": (bytes(range(256)) * 799 + bytes(255) + b"!", 0o644, 0, 0),
    "etc/network/interfaces.d/new0": (b"iface new0 inet manual\n", 0o644, 0, 0),
    "etc/systemd/network/10-eth0.network": (b"[Match]\nName=eth0\n[Network]\nDHCP=no\n",
                                            0o644, 0, 0),
    "etc/systemd/network/30-br0.netdev": None,
    "etc/systemd/network/40-new.network": (b"[Match]\nName=new0\n", 0o644, 0, 0),
    "etc/systemd/network/40-new.network.d/x.conf": (b"[Network]\nLLDP=yes\n", 0o644, 0, 0),
    "etc/systemd/network/99-default.link": (b"[Link]\nNamePolicy=kernel\n", 0o644, 0, 0),
    "etc/NetworkManager/system-connections/uplink": (b"[connection]\nid=uplink2\n", 0o600, 0, 0),
    "etc/netplan/01-netcfg.yaml": None,
    "etc/netplan/50-cloud-init.yaml": None,
    "etc/sysconfig/network-scripts/ifcfg-eth0": (BASE["etc/sysconfig/network-scripts/ifcfg-eth0"]
                                                 [0], 0o644, 0, 0),
    "etc/sysconfig/network-scripts/ifcfg-eth1": (("->", "ifcfg-eth0"), 0o777, 0, 0),
}  # fmt: skip


def _put(root: Path, rel: str, entry: Entry) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink() or path.exists():
        path.unlink()
    content, mode, uid, gid = entry
    if isinstance(content, tuple):
        os.symlink(content[1], path)
    else:
        path.write_bytes(content)
        os.chmod(path, mode)
    os.lchown(path, uid, gid)


def xattrs_supported(root: Path) -> bool:
    probe = root / ".nct-xattr-probe"
    probe.write_bytes(b"")
    try:
        os.setxattr(probe, "user.nct", b"1")
        return True
    except OSError:
        return False
    finally:
        probe.unlink()


def build(root: Path) -> None:
    """The snapshot set (plus the unmanaged files)."""
    root.mkdir(parents=True, exist_ok=True)
    for rel, entry in {**BASE, **UNMANAGED}.items():
        _put(root, rel, entry)
    if xattrs_supported(root):
        os.setxattr(root / XATTR_FILE, "user.nct", b"snapshot")


def edit(root: Path) -> None:
    """Turn the snapshot set into the new set."""
    for rel, entry in NEW.items():
        if entry is None:
            (root / rel).unlink()
        else:
            _put(root, rel, entry)
    (root / "etc/netplan").rmdir()  # a whole managed directory vanishes
    if xattrs_supported(root):
        os.setxattr(root / XATTR_FILE, "user.nct", b"new")


_KEEP = frozenset(os.path.normpath(k) for k in UNMANAGED)


def capture(root: Path) -> dict[str, tuple[Any, ...]]:
    """Every non-directory under ``root`` (leftover temp files aside: see ``leftovers``): kind,
    bytes or target, mode, owner, user xattrs."""
    out: dict[str, tuple[Any, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, root)
            if name.startswith(".") and rel not in _KEEP:
                continue
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("symlink", os.readlink(p), None, st.st_uid, st.st_gid, ())
                continue
            with open(p, "rb") as f:
                data = f.read()
            xa = tuple(
                sorted((n, os.getxattr(p, n)) for n in os.listxattr(p) if n.startswith("user."))
            )
            out[rel] = ("file", data, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, xa)
    return out


def leftovers(root: Path) -> list[str]:
    """Temp files our code may have left in managed (or any) directories under ``root``."""
    bad = []
    for dirpath, _dirs, filenames in os.walk(root):
        for name in filenames:
            rel = os.path.relpath(os.path.join(dirpath, name), root)
            if name.startswith(".") and rel not in _KEEP:
                bad.append(rel)
    return sorted(bad)


def describe(a: dict[str, tuple[Any, ...]], b: dict[str, tuple[Any, ...]]) -> str:
    """What differs between two captures, for assertion messages."""
    lines = []
    for k in sorted(set(a) | set(b)):
        if a.get(k) != b.get(k):
            va, vb = a.get(k), b.get(k)
            short_a = None if va is None else (va[0], str(va[1])[:40], *va[2:])
            short_b = None if vb is None else (vb[0], str(vb[1])[:40], *vb[2:])
            lines.append(f"{k}: {short_a} != {short_b}")
    return "\n".join(lines)
