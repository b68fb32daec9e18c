# SPDX-License-Identifier: GPL-3.0-or-later
"""Cached Debian VM images and qemu (TCG) boots, shared by scripts/powercut-test and
scripts/topology-test.

An image is built in layers, each a directory under $NETCFG_TXN_TEST_CACHE named after a hash of
everything that determines its content: scripts/mkrootfs's rootfs, then ``layer()`` runs a shell
recipe in a chroot of it (the kernel, extra packages), then ``image()`` installs the project's
.deb and a test's guest files and makes the ext4 disk. Builds are serialized with flock and
published with an atomic rename; older trees of the same prefix are removed.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("NETCFG_TXN_TEST_CACHE", "/var/cache/netcfg-txn-test"))
PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
HOST_PACKAGES = {
    "qemu-system-x86_64": "qemu-system-x86",
    "qemu-img": "qemu-utils",
    "mkfs.ext4": "e2fsprogs",
    "debootstrap": "debootstrap",
}

# The kernel layer, run in a chroot of scripts/mkrootfs's rootfs. Part of the cache key.
KERNEL_RECIPE = r"""
set -eu
export DEBIAN_FRONTEND=noninteractive
printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
chmod +x /usr/sbin/policy-rc.d
apt-get update -qq
apt-get install -y -qq --no-install-recommends linux-image-amd64 initramfs-tools zstd >/dev/null
# A small initramfs (only what mounts /dev/vda) boots faster under TCG.
printf 'MODULES=list\n' >/etc/initramfs-tools/conf.d/nct-powercut.conf
printf 'virtio_pci\nvirtio_blk\next4\ncrc32c_generic\n' >>/etc/initramfs-tools/modules
update-initramfs -u -k all >/dev/null
rm -f /usr/sbin/policy-rc.d
apt-get clean
rm -rf /var/lib/apt/lists/* /usr/share/doc/* /usr/share/man/*
printf '/dev/vda / ext4 rw,errors=remount-ro 0 1\n' >/etc/fstab
ln -sf /dev/null /etc/systemd/system/serial-getty@.service
echo 5a3c1f6e0b2d4c8e9f7a6b5c4d3e2f10 >/etc/machine-id
"""
# Periodic jobs and boot-time chores that only cost time under TCG; nothing netcfg-txn touches.
TCG_CHORES = (
    "e2scrub_reap.service",
    "e2scrub_all.timer",
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "dpkg-db-backup.timer",
    "fstrim.timer",
    "systemd-tmpfiles-clean.timer",
)
DISK_SIZE = "2G"
# no_timer_check: on a loaded host the guest kernel's IO-APIC timer check can fail under TCG
# ("IO-APIC + timer doesn't work!" panic); the timer itself works.
CMDLINE = (
    "root=/dev/vda rw console=ttyS0 panic=-1 quiet loglevel=3 systemd.show_status=0 "
    "cryptomgr.notests mitigations=off no_timer_check"
)


def log(msg: str) -> None:
    print(f"{Path(sys.argv[0]).name}: {msg}", file=sys.stderr, flush=True)


def sh(*argv: str, capture: bool = True, timeout: float = 1800, **kw: Any) -> str:
    env = {"PATH": PATH, "LC_ALL": "C.UTF-8", **kw.pop("env", {})}
    p = subprocess.run(argv, capture_output=capture, text=True, timeout=timeout, env=env, **kw)
    if p.returncode != 0:
        out = ((p.stdout or "") + (p.stderr or ""))[-3000:] if capture else ""
        raise RuntimeError(f"{' '.join(argv)} exited {p.returncode}\n{out}")
    return p.stdout if capture else ""


def sha256_bytes(*chunks: bytes) -> str:
    h = hashlib.sha256()
    for c in chunks:
        h.update(len(c).to_bytes(8, "big"))
        h.update(c)
    return h.hexdigest()


def ensure_host_tools() -> None:
    missing = sorted(
        {pkg for tool, pkg in HOST_PACKAGES.items() if shutil.which(tool, path=PATH) is None}
    )
    if missing:
        log(f"installing {' '.join(missing)}")
        sh("apt-get", "update", "-qq", capture=False)
        sh(
            "apt-get",
            "install",
            "-y",
            "-qq",
            "--no-install-recommends",
            *missing,
            capture=False,
            env={"DEBIAN_FRONTEND": "noninteractive"},
        )


@contextlib.contextmanager
def cache_lock() -> Any:
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".powercut.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def chroot(root: Path, script: str, *args: str) -> None:
    """Run ``sh -c script`` in a chroot of ``root`` with proc/sys/dev, in a private mount ns."""
    wrapper = r"""
set -eu
root=$1; shift
mount -t proc proc "$root/proc"
mount -t sysfs sysfs "$root/sys"
mount --rbind /dev "$root/dev"
cp -L /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
exec chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 HOME=/root \
    sh -c "$@"
"""
    sh(
        "unshare",
        "-m",
        "--propagation",
        "private",
        "--",
        "sh",
        "-c",
        wrapper,
        "sh",
        str(root),
        script,
        "sh",
        *args,
        timeout=3600,
    )


def rootfs() -> tuple[Path, str]:
    """scripts/mkrootfs's cached rootfs (built if needed) and its content key."""
    mk = str(REPO / "scripts" / "mkrootfs")
    base = Path(sh(mk, "build", timeout=3600).strip().splitlines()[-1])
    return base, sh(mk, "key").strip()


def _cached(prefix: str, key: str, build: Callable[[Path], None]) -> Path:
    """``CACHE/prefix-key``, made by ``build(tmpdir)`` unless it is there already; published by
    one rename under the cache lock, then older trees of the same prefix are removed."""
    dest = CACHE / f"{prefix}-{key}"
    if (dest / ".nct-complete").exists():
        log(f"using cached {dest.name}")
        return dest
    with cache_lock():
        if (dest / ".nct-complete").exists():
            return dest
        tmp = Path(f"{dest}.tmp.{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        log(f"building {dest.name}")
        t0 = time.monotonic()
        try:
            tmp.mkdir()
            build(tmp)
            (tmp / ".nct-complete").touch()
            os.rename(tmp, dest)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        for old in CACHE.glob(f"{prefix}-*"):
            if old != dest and not old.name.endswith(".lock"):
                shutil.rmtree(old, ignore_errors=True)
        log(f"built {dest} in {time.monotonic() - t0:.0f}s")
    return dest


def layer(base: Path, base_key: str, recipe: str, prefix: str, check: str) -> Path:
    """``base`` plus ``recipe`` run in a chroot of a copy of it, cached as ``prefix-<key>``;
    ``check`` is a glob that must match in the result (what the recipe was for)."""

    def build(tmp: Path) -> None:
        sh("cp", "-a", "--reflink=auto", f"{base}/.", f"{tmp}/", timeout=600)
        (tmp / ".nct-complete").unlink(missing_ok=True)
        chroot(tmp, recipe)
        if not list(tmp.glob(check)):
            raise RuntimeError(f"{prefix}: nothing matches {check} after the recipe")

    return _cached(prefix, sha256_bytes(base_key.encode(), recipe.encode())[:16], build)


def kernel_layer() -> Path:
    """scripts/mkrootfs's rootfs + linux-image-amd64, initramfs-tools, zstd (cached)."""
    base, base_key = rootfs()
    return layer(base, base_key, KERNEL_RECIPE, "powercut-kroot", "boot/vmlinuz-*")


def build_deb(outdir: Path) -> Path:
    out = sh(str(REPO / "scripts" / "build-deb"), "--outdir", str(outdir), timeout=1800)
    deb = Path(out.strip().splitlines()[-1])
    if not deb.is_file():
        raise RuntimeError(f"scripts/build-deb did not produce a .deb ({out!r})")
    return deb


def image(
    base: Path,
    deb: Path,
    files: Mapping[str, tuple[Path, int]],
    *,
    prefix: str,
    version: str,
    enable: Sequence[str] = (),
    mask: Sequence[str] = (),
) -> Path:
    """The cached image dir (disk.img, vmlinuz, initrd.img): ``base`` with the .deb installed,
    ``files`` (destination -> (source, mode)) copied in and units enabled and masked."""
    parts = [version.encode(), base.name.encode(), deb.read_bytes()]
    for dst, (src, mode) in sorted(files.items()):
        parts += [dst.encode(), str(mode).encode(), src.read_bytes()]
    parts += [
        f"{verb}:{u}".encode()
        for verb, units in (("enable", enable), ("mask", mask))
        for u in units
    ]

    def build(tmp: Path) -> None:
        tree = tmp / "tree"
        tree.mkdir()
        sh("cp", "-a", "--reflink=auto", f"{base}/.", f"{tree}/", timeout=600)
        (tree / ".nct-complete").unlink()
        (tree / "tmp" / deb.name).write_bytes(deb.read_bytes())
        chroot(tree, 'dpkg -i "/tmp/$1" >/dev/null && rm -f "/tmp/$1"', deb.name)
        for dst, (src, mode) in files.items():
            target = tree / dst
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, target)
            target.chmod(mode)
        for verb, units in (("enable", enable), ("mask", mask)):
            if units:
                sh("systemctl", f"--root={tree}", verb, *units)
        shutil.copyfile(sorted((tree / "boot").glob("vmlinuz-*"))[-1], tmp / "vmlinuz")
        shutil.copyfile(sorted((tree / "boot").glob("initrd.img-*"))[-1], tmp / "initrd.img")
        disk = str(tmp / "disk.img")
        sh("mkfs.ext4", "-q", "-F", "-L", "nctroot", "-d", str(tree), disk, DISK_SIZE, timeout=1800)
        shutil.rmtree(tree)
        (tmp / "deb.sha256").write_text(hashlib.sha256(deb.read_bytes()).hexdigest() + "\n")

    return _cached(prefix, sha256_bytes(*parts)[:16], build)


def overlay(img: Path, disk: Path) -> Path:
    """A qcow2 overlay over the image's raw disk: the boots write there, the image stays."""
    sh(
        "qemu-img",
        "create",
        "-q",
        "-f",
        "qcow2",
        "-F",
        "raw",
        "-b",
        str(img / "disk.img"),
        str(disk),
    )
    return disk


def _die_with_parent() -> None:
    """In the qemu child: SIGKILL it if this script dies (even by SIGKILL), so no VM outlives us."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


NCT_LINE = re.compile(r"NCT: (\S+)(?: (.*))?")


class Boot:
    """One qemu boot; ``run()`` returns the NCT lines seen (with host times) and how it ended."""

    def __init__(
        self, img: Path, disk: Path, cmdline: str, console_log: Path, memory_mb: int = 1024
    ) -> None:
        self.argv = [
            "qemu-system-x86_64",
            "-nodefaults",
            "-accel",
            "tcg,thread=multi",
            "-cpu",
            "max",
            "-m",
            str(memory_mb),
            "-smp",
            "2",
            "-display",
            "none",
            "-vga",
            "none",
            "-monitor",
            "none",
            "-serial",
            "stdio",
            "-no-reboot",
            "-nic",
            "none",
            "-kernel",
            str(img / "vmlinuz"),
            "-initrd",
            str(img / "initrd.img"),
            "-append",
            f"{CMDLINE} {cmdline}",
            "-drive",
            f"file={disk},format=qcow2,if=virtio,cache=writeback",
        ]
        self.console_log = console_log
        self.proc: subprocess.Popen[bytes] | None = None

    def run(
        self, stop_on: tuple[str, ...], timeout_s: float, on_line: Any = None
    ) -> tuple[list[tuple[float, str, str]], str]:
        """Boot and read the console until an NCT line whose tag is in ``stop_on`` (the VM is
        then killed at once if the tag is CUT), qemu exits, or the timeout. ``on_line(t, tag,
        rest)`` sees each NCT line as it arrives (progress output)."""
        t0 = time.monotonic()
        seen: list[tuple[float, str, str]] = []
        ended = "timeout"
        with open(self.console_log, "ab") as logf:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )
            assert self.proc.stdout is not None
            fd = self.proc.stdout.fileno()
            buf = b""
            try:
                while time.monotonic() - t0 < timeout_s:
                    r, _, _ = select.select([fd], [], [], 0.5)
                    if not r:
                        if self.proc.poll() is not None:
                            ended = f"qemu exited ({self.proc.returncode})"
                            break
                        continue
                    chunk = os.read(fd, 65536)
                    if not chunk:
                        self.proc.wait()
                        ended = f"qemu exited ({self.proc.returncode})"
                        break
                    logf.write(chunk)
                    logf.flush()  # the console is read while a long boot runs
                    buf += chunk
                    *lines, buf = buf.split(b"\n")
                    stop = False
                    for raw in lines:
                        m = NCT_LINE.search(raw.decode(errors="replace").rstrip("\r"))
                        if m is None:
                            continue
                        tag, rest = m.group(1), m.group(2) or ""
                        now = time.monotonic() - t0
                        if tag in ("CUT", "DONE"):  # the power cut: before anything else
                            self.kill()
                        seen.append((now, tag, rest))
                        if on_line is not None:
                            on_line(now, tag, rest)
                        if tag in stop_on or tag in ("CUT", "ERROR", "MISSED"):
                            ended = tag
                            stop = True
                            break
                    if stop:
                        break
            finally:
                self.kill()
                took = time.monotonic() - t0
                logf.write(f"\n==== host: boot ended: {ended} after {took:.1f}s\n".encode())
        return seen, ended

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
