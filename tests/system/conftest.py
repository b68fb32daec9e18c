# SPDX-License-Identifier: GPL-3.0-or-later
"""Fixtures of the system tier: the .deb and .rpm built from this tree, the cached Debian 12
rootfs, and booted systemd containers with the package installed.

Run as root: ``pytest -m system tests/system``. Without root or the needed kernel features the
tests skip with the reason; with ``CI=true`` they fail instead, so CI can never pass by skipping.
The scripts the fixtures call (scripts/mkrootfs, build-deb, build-rpm) install their own tools
with apt-get on a clean machine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.system.nspawn import Machine, machine, run

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "scripts"
CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# Old (snapshotted) and changed /etc/network/interfaces of the container; RFC 5737 addresses.
IFACES_OLD = """auto lo
iface lo inet loopback

auto eth1
iface eth1 inet static
    address 192.0.2.1/24
"""
IFACES_BROKEN = IFACES_OLD.replace("192.0.2.1/24", "192.0.2.99/24")
IFACES_NEW = IFACES_OLD.replace("192.0.2.1/24", "192.0.2.3/24")


def unavailable(reason: str) -> None:
    if CI:
        pytest.fail(f"system tier cannot run (CI=true forbids skipping): {reason}")
    pytest.skip(reason)


HOST_TOOLS = (
    "ip",
    "unshare",
    "nsenter",
    "mount",
    "ping",
    "systemd-nspawn",
    "systemd-analyze",
    "debootstrap",
)


def why_not_host() -> str | None:
    if not sys.platform.startswith("linux"):
        return "needs Linux"
    if os.geteuid() != 0:
        return "needs root (debootstrap, overlayfs, network namespaces, systemd-nspawn)"
    if "overlay" not in Path("/proc/filesystems").read_text():
        return "needs overlayfs in the kernel"
    if any(shutil.which(t) is None for t in HOST_TOOLS) and shutil.which("apt-get") is not None:
        # A clean machine: let the script install debootstrap, systemd-container, iproute2...
        subprocess.run([str(SCRIPTS / "mkrootfs"), "deps"], check=False, timeout=600)
    missing = [t for t in HOST_TOOLS if shutil.which(t) is None]
    if missing:
        return f"needs {', '.join(missing)} (scripts/mkrootfs deps installs them with apt-get)"
    return None


def script(*argv: str, timeout: float = 600) -> str:
    """Run one of our scripts; return its last stdout line (the path it built)."""
    p = subprocess.run(
        [str(SCRIPTS / argv[0]), *argv[1:]], capture_output=True, text=True, timeout=timeout
    )
    if p.returncode != 0:
        raise AssertionError(f"scripts/{' '.join(argv)} failed ({p.returncode}):\n{p.stderr}")
    return p.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def host_ok() -> None:
    if (reason := why_not_host()) is not None:
        unavailable(reason)


@pytest.fixture(scope="session")
def deb(host_ok: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """netcfg-txn_*.deb built from this tree by scripts/build-deb."""
    out = tmp_path_factory.mktemp("deb")
    return Path(script("build-deb", "--outdir", str(out)))


@pytest.fixture(scope="session")
def rootfs(host_ok: None) -> Path:
    """The cached debootstrap tree (built on first use, ~70 s)."""
    return Path(script("mkrootfs", "build"))


@pytest.fixture(scope="session")
def installed(rootfs: Path, deb: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An overlay layer over ``rootfs`` with the .deb installed by dpkg (units enabled by its
    maintainer scripts, nothing started)."""
    d = tmp_path_factory.mktemp("installed")
    layer, work, merged = d / "layer", d / "work", d / "merged"
    for p in (layer, work, merged):
        p.mkdir()
    debs = layer / "tmp" / "nct-debs"
    debs.mkdir(parents=True)
    shutil.copy(deb, debs)
    run(
        "unshare",
        "-m",
        "--propagation",
        "private",
        "sh",
        "-euc",
        'mount -t overlay overlay -o "lowerdir=$1,upperdir=$2,workdir=$3" "$4"\n'
        'mount -t proc proc "$4/proc"\n'
        'chroot "$4" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive'
        ' dpkg -i "/tmp/nct-debs/$5"\n'
        'rm -rf "$4/tmp/nct-debs"\n',
        "sh",
        str(rootfs),
        str(layer),
        str(work),
        str(merged),
        deb.name,
        timeout=120,
    )
    return layer


def _tag() -> str:
    return uuid.uuid4().hex[:6]


@pytest.fixture
def bare_machine(rootfs: Path, tmp_path: Path) -> Iterator[Machine]:
    """A stopped container of the plain rootfs (netcfg-txn not installed)."""
    with machine(tmp_path / "m", [rootfs], _tag()) as m:
        yield m


@pytest.fixture
def txn_machine(installed: Path, rootfs: Path, tmp_path: Path) -> Iterator[Machine]:
    """A stopped container with netcfg-txn installed and eth1 configured by ifupdown."""
    with machine(tmp_path / "m", [installed, rootfs], _tag()) as m:
        m.write("/etc/network/interfaces", IFACES_OLD)
        yield m


def apply_interfaces(m: Machine, text: str) -> None:
    """What an admin does: take eth1 down, edit the file, bring it up with the new config."""
    m.exec("ifdown", "eth1")
    m.write("/etc/network/interfaces", text)
    m.exec("ifup", "eth1")


# MESSAGE_IDs of packaging/catalog/netcfg-txn.catalog (the daemon's MSG_* constants must match).
MSG_STARTED = "dadf92640bc84527a1a4140a871545aa"
MSG_EXTENDED = "dd97c583e3014ddc89467af7df43f658"
MSG_COMMITTED = "914c9ef68f16435491f920a19aa116cc"
MSG_ROLLBACK_BEGUN = "d496f8d097f8442b8692efaf871e340c"
MSG_ROLLED_BACK = "2c0bdd571b3042f98ef9658d2325167b"
MSG_ROLLBACK_FAILED = "d4510d873c7d42dcb01059d8acdbec9f"
MSG_BOOT_ROLLBACK = "bebcf3dda87d4724b3d11a99cada5f72"
MSG_RELOAD_REFUSED = "6ca995f6a42c434a8bfce25496f1835f"
MSG_FROZEN_CONFIG = "7670ecb6accf4c5586bfab07518698b4"
MSG_CONFIG_BROKEN = "3d53fa3a148c4b8ea32f9a9c6ad56b9f"
MSG_BACKSTOP_UNARMED = "05d560a8d98b48609fa5adfea5109366"
MSG_BACKSTOP_TOOK_OVER = "fb60ea2ecb904123a8c8143cdb374152"
MSG_HANDOVER = "d5d758991337407dbcd66f7ba152559a"
MSG_OPTIONAL_FAILED = "64f9f332b1fb4477a73ac9df17a911e2"
MSG_DEADLINE_RETRY = "dd461dad8cb74940935a1905bd1e4c4a"
