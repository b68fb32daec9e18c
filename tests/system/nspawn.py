# SPDX-License-Identifier: GPL-3.0-or-later
"""A booted systemd (PID 1) in systemd-nspawn, for the system tier.

The root file system is an overlay: the cached debootstrap tree (scripts/mkrootfs) and optional
extra read-only layers (e.g. one with our .deb installed) below a per-machine upper directory,
which survives "power cuts" (killing the container's PID 1) exactly like a disk would survive a
crash of every process. Each boot gets a fresh network namespace (a reboot resets the kernel's
network state) with ``eth1`` inside, whose veth peer ``vp`` (192.0.2.2/24) lives in a peer
namespace owned by the test. Everything is named ``nct-*-<tag>`` and removed by ``close()``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
T = TypeVar("T")
PEER_ADDR = "192.0.2.2"

# Mount the overlay, hand the container its network namespace (the bind mount keeps it reachable
# once /run is replaced by a tmpfs) and boot. tmpfs on /run: nspawn keeps its runtime state there,
# and this host has no systemd of its own.
_BOOT = r"""
set -eu
lower=$1 upper=$2 work=$3 merged=$4 nsfile=$5 netns=$6
mount -t overlay overlay -o "lowerdir=$lower,upperdir=$upper,workdir=$work" "$merged"
mount --bind "$netns" "$nsfile"
mount -t tmpfs tmpfs /run
exec systemd-nspawn -q -D "$merged" --network-namespace-path="$nsfile" \
    --capability=CAP_NET_ADMIN --register=no --keep-unit --console=pipe -b
"""


def run(
    *argv: str, check: bool = True, timeout: float = 60, **kw: Any
) -> subprocess.CompletedProcess[str]:
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)
    if check and p.returncode != 0:
        raise AssertionError(
            f"{' '.join(argv)} exited {p.returncode}\nstdout: {p.stdout}\nstderr: {p.stderr}"
        )
    return p


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run("ip", *args, check=check)


def wait_for(what: str, pred: Callable[[], T | None], timeout: float, interval: float = 0.1) -> T:
    """Poll ``pred`` until it returns something truthy; return that."""
    end = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


class Machine:
    def __init__(self, workdir: Path, lowers: Sequence[Path], tag: str) -> None:
        self.dir = workdir
        self.lowers = list(lowers)  # top first, as overlayfs wants them
        self.tag = tag
        self.upper = workdir / "upper"
        self.work = workdir / "work"
        self.merged = workdir / "merged"
        self.nsfile = workdir / "netns"
        self.cns = f"nct-c-{tag}"
        self.pns = f"nct-p-{tag}"
        for d in (self.upper, self.work, self.merged):
            d.mkdir(parents=True, exist_ok=True)
        self.nsfile.touch()
        self.proc: subprocess.Popen[bytes] | None = None
        self.pid1: int | None = None
        self.boots = 0
        ip("netns", "add", self.pns)
        ip("-n", self.pns, "link", "set", "lo", "up")

    # ------------------------------------------------------------------------- lifecycle

    @property
    def running(self) -> bool:
        return self.pid1 is not None

    def boot(self, timeout: float = 90) -> str:
        """Boot and wait until systemd reports running/degraded; returns that state."""
        assert not self.running, "already running"
        self.boots += 1
        ip("netns", "add", self.cns)
        ip(
            "-n",
            self.pns,
            "link",
            "add",
            "vp",
            "type",
            "veth",
            "peer",
            "name",
            "eth1",
            "netns",
            self.cns,
        )
        ip("-n", self.pns, "addr", "add", f"{PEER_ADDR}/24", "dev", "vp")
        ip("-n", self.pns, "link", "set", "vp", "up")
        console = open(self.dir / f"console-{self.boots}.log", "wb")  # noqa: SIM115
        lower = ":".join(str(p) for p in self.lowers)
        self.proc = subprocess.Popen(
            [
                "unshare",
                "-m",
                "--propagation",
                "private",
                "sh",
                "-c",
                _BOOT,
                "sh",
                lower,
                str(self.upper),
                str(self.work),
                str(self.merged),
                str(self.nsfile),
                f"/run/netns/{self.cns}",
            ],
            stdin=subprocess.DEVNULL,
            stdout=console,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        console.close()
        self.pid1 = wait_for("the container's systemd", self._find_pid1, 30, 0.02)
        # Until PID 1 listens on its private socket, systemctl prints nothing and fails.
        end = time.monotonic() + timeout
        state = ""
        while state in ("", "offline") and time.monotonic() < end:
            state = self.exec(
                "systemctl", "is-system-running", "--wait", check=False, timeout=timeout
            ).stdout.strip()
            if state in ("", "offline"):
                time.sleep(0.05)
        if state not in ("running", "degraded"):
            raise AssertionError(f"boot {self.boots} ended in state {state!r}\n{self.console()}")
        return state

    def _find_pid1(self) -> int | None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"systemd-nspawn exited {self.proc.returncode}\n{self.console()}")
        with contextlib.suppress(OSError):
            pid = self.proc.pid
            for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
                if Path(f"/proc/{child}/comm").read_text().strip() == "systemd":
                    return int(child)
        return None

    def kill(self) -> None:
        """Pull the plug: SIGKILL the container's PID 1 (every process dies, the disk stays)."""
        assert self.pid1 is not None and self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid1, signal.SIGKILL)
        try:
            self.proc.wait(timeout=20)
        finally:
            self.pid1 = None
            ip("netns", "del", self.cns, check=False)
        # The kernel tears the namespace down asynchronously; its veth pair (and so our "vp")
        # goes with it. Wait, so that the next boot starts from a clean slate.
        wait_for(
            "the old veth pair to go away",
            lambda: ip("-n", self.pns, "link", "show", "vp", check=False).returncode != 0,
            20,
        )

    def close(self) -> None:
        if self.pid1 is not None:
            with contextlib.suppress(Exception):
                self.kill()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        ip("netns", "del", self.cns, check=False)
        ip("netns", "del", self.pns, check=False)

    def console(self) -> str:
        p = self.dir / f"console-{self.boots}.log"
        return p.read_text(errors="replace")[-4000:] if p.exists() else ""

    # ------------------------------------------------------------------------- inside

    def exec(
        self, *argv: str, check: bool = True, timeout: float = 60, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        assert self.pid1 is not None, "not running"
        return run(
            "nsenter",
            "-t",
            str(self.pid1),
            "-a",
            "env",
            "-i",
            f"PATH={PATH}",
            "LC_ALL=C.UTF-8",
            *argv,
            check=check,
            timeout=timeout,
            input=input,
        )

    def sh(self, script: str, check: bool = True, timeout: float = 60) -> str:
        return self.exec("sh", "-euc", script, check=check, timeout=timeout).stdout

    def write(self, path: str, text: str, mode: int = 0o644) -> None:
        """Write a file in the machine: through the container when it runs, else the upper dir."""
        if self.running:
            self.exec(
                "sh",
                "-euc",
                'mkdir -p "$(dirname "$1")"; cat >"$1"; chmod "$2" "$1"',
                "sh",
                path,
                f"{mode:o}",
                input=text,
            )
            return
        dest = self.upper / path.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(text)
        dest.chmod(mode)

    def read(self, path: str) -> str:
        return self.exec("cat", path).stdout

    def exists(self, path: str) -> bool:
        return self.exec("test", "-e", path, check=False).returncode == 0

    def cli(self, *args: str, timeout: float = 60) -> tuple[int, dict[str, Any]]:
        """netcfg-txn --json ARGS: (exit code, the one JSON document it printed)."""
        p = self.exec("netcfg-txn", "--json", *args, check=False, timeout=timeout)
        try:
            doc = json.loads(p.stdout)
        except json.JSONDecodeError:
            raise AssertionError(
                f"netcfg-txn {' '.join(args)} printed no JSON (exit {p.returncode})\n"
                f"stdout: {p.stdout}\nstderr: {p.stderr}"
            ) from None
        return p.returncode, doc

    def cli_ok(self, *args: str, timeout: float = 60) -> dict[str, Any]:
        rc, doc = self.cli(*args, timeout=timeout)
        assert rc == 0 and doc.get("ok") is True, f"netcfg-txn {' '.join(args)} -> {rc}: {doc}"
        return doc

    def show(self, unit: str, *props: str) -> dict[str, str]:
        out = self.exec("systemctl", "show", unit, *(f"--property={p}" for p in props)).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def journal(self, *matches: str, unit: str | None = None) -> list[dict[str, Any]]:
        """This boot's journal entries matching FIELD=VALUE terms, oldest first."""
        args = ["journalctl", "-b", "-o", "json", "--no-pager"]
        if unit:
            args += ["-u", unit]
        p = self.exec(*args, *matches, check=False)
        return [json.loads(line) for line in p.stdout.splitlines() if line.startswith("{")]

    def journal_text(self, unit: str) -> str:
        return self.exec(
            "journalctl", "-b", "--no-pager", "-o", "cat", "-u", unit, check=False
        ).stdout

    def ipv4(self, dev: str = "eth1") -> list[str]:
        out = self.exec("ip", "-j", "-4", "addr", "show", "dev", dev).stdout
        return [f"{a['local']}/{a['prefixlen']}" for i in json.loads(out) for a in i["addr_info"]]

    # ------------------------------------------------------------------------- peer side

    def peer_ping(self, addr: str, count: int = 1) -> bool:
        p = run(
            "ip",
            "netns",
            "exec",
            self.pns,
            "ping",
            "-q",
            "-n",
            "-c",
            str(count),
            "-W",
            "1",
            addr,
            check=False,
        )
        return p.returncode == 0

    def peer_reaches(self, addr: str, timeout: float = 10) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.peer_ping(addr):
                return True
            time.sleep(0.2)
        return False


@contextlib.contextmanager
def machine(workdir: Path, lowers: Sequence[Path], tag: str) -> Iterator[Machine]:
    m = Machine(workdir, lowers, tag)
    try:
        yield m
    finally:
        m.close()
