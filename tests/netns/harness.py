# SPDX-License-Identifier: GPL-3.0-or-later
"""Throwaway namespaces, a sandboxed host and loss meters: the lower half of the netns harness
(``stacks.py`` builds the network stacks on top and re-exports everything here).

``Topology``
    Two fresh network namespaces, ``host`` and ``peer`` (both named ``nct-<6 hex>``), joined by two
    veth pairs: host ``nct0`` <-> peer ``p0`` (peer 192.0.2.2/24) and host ``nct1`` <-> peer ``p1``
    (peer 198.51.100.2/24). The peer side is up and addressed; the host side is left down and
    unconfigured for the stack under test. ``add_veth``/``add_bridge`` build more (veth and bridge
    are all this kernel offers: no dummy, bond or vlan).

``HostSandbox``
    A long-lived ``sleep`` inside the host namespace with its own mount namespace, in which
    ``/etc`` is an overlay (every write a daemon makes to /etc lands in ``workdir/overlay``, never
    on the machine) and ``CONFIG_DIRS`` (``/etc/network``, ``/etc/systemd/network``,
    ``/etc/NetworkManager``, ``/etc/netplan``, ``/etc/netcfg-txn``) are bind mounts of
    ``sandbox.root/etc/...``: plain directories the test reads and writes from outside
    (``sandbox.path("/etc/network/interfaces")``). ``/run`` and ``/var/lib/NetworkManager`` are
    private tmpfs; ``/sys`` is the namespace's sysfs, read-only unless ``readonly_sys=False``
    (networkd and NetworkManager need that, or they wait for udev forever; it also keeps a tool
    from writing the machine's global /sys/kernel knobs). ``run(argv)``/``popen(argv)``
    execute inside it with ``nsenter -t PID -m -n``.

Loss meters
    ``FloodPing``/``flood_ping``: ``ping -q -i 0.01 -c N`` around an action of known length.
    ``PingMeter``: an open-ended ``ping -i 0.01`` stopped with SIGINT, counted per sequence
    number, for actions of unknown length (a timer-driven rollback).

Plus ``netns_python`` (run Python, e.g. ``netcfg_txn.net.links``, inside a namespace) and
``agent_command`` (argv for ``netcfg-txn``/``netcfg-txnd`` from this checkout, same interpreter).

Everything is torn down by ``close()`` (context managers): tracked daemons by PID (TERM, then
KILL), anything left in the sandbox's mount namespace or in our own namespaces by PID, then the
namespaces. Nothing here touches the machine's own interfaces or its real /etc.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import re
import secrets
import select
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
PATH = "/usr/sbin:/usr/bin:/sbin:/bin"

# The config directories a sandbox replaces (as seen inside it).
CONFIG_DIRS = (
    PurePosixPath("/etc/network"),
    PurePosixPath("/etc/systemd/network"),
    PurePosixPath("/etc/NetworkManager"),
    PurePosixPath("/etc/netplan"),
    PurePosixPath("/etc/netcfg-txn"),  # not on the machine: created in the /etc overlay
)

T = TypeVar("T")

# Environment that makes this checkout's ``netcfg_txn`` importable (also from a venv without it).
AGENT_ENV = {"PYTHONPATH": str(REPO / "agent")}
_ENTRY_POINTS = {
    "netcfg-txn": ("netcfg_txn.cli.main", "run"),
    "netcfg-txnd": ("netcfg_txn.daemon", "main"),
}


def agent_command(tool: str, *args: str) -> list[str]:
    """argv running the ``netcfg-txn`` or ``netcfg-txnd`` entry point with this interpreter
    (pass ``env=AGENT_ENV``); like the installed console scripts, without needing them."""
    module, func = _ENTRY_POINTS[tool]
    code = f"import sys; sys.argv[0] = {tool!r}; from {module} import {func}; sys.exit({func}())"
    return [sys.executable, "-c", code, *args]


class HarnessError(RuntimeError):
    """The harness could not build or drive the environment (a bug or a broken machine)."""


# ------------------------------------------------------------------------------ small helpers


def new_ns_name() -> str:
    return f"nct-{secrets.token_hex(3)}"


def run(
    argv: Sequence[str],
    *,
    check: bool = True,
    timeout_s: float = 30.0,
    input: str | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command on the host side; on failure raise ``HarnessError`` with its output."""
    log.debug("+ %s", shlex.join(argv))
    try:
        p = subprocess.run(
            list(argv),
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env=dict(env) if env is not None else None,
            cwd=cwd,
        )
    except subprocess.TimeoutExpired as e:
        raise HarnessError(f"{shlex.join(argv)}: timed out after {timeout_s:g}s") from e
    if check and p.returncode != 0:
        raise HarnessError(
            f"{shlex.join(argv)} failed ({p.returncode}):\n{p.stdout.strip()}\n{p.stderr.strip()}"
        )
    return p


def ip(*args: str, ns: str | None = None, check: bool = True) -> str:
    argv = ["ip", *(["-n", ns] if ns else []), *args]
    return run(argv, check=check).stdout


def ip_json(*args: str, ns: str) -> list[dict[str, Any]]:
    out = ip("-j", *args, ns=ns)
    data = json.loads(out) if out.strip() else []
    if not isinstance(data, list):
        raise HarnessError(f"ip -j {' '.join(args)}: unexpected output {out!r}")
    return data


def wait_until(what: str, probe: Callable[[], T | None], timeout_s: float = 10.0) -> T:
    """Poll ``probe`` every 20 ms until it returns something other than None/False."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            raise HarnessError(f"timed out after {timeout_s:g}s waiting for {what}")
        time.sleep(0.02)


def missing_tools(tools: Sequence[str], path: str = PATH) -> list[str]:
    return [t for t in tools if shutil.which(t, path=path) is None]


def stop_process(p: subprocess.Popen[Any], timeout_s: float = 5.0) -> int | None:
    """SIGTERM, then SIGKILL after ``timeout_s``; returns the exit status."""
    if p.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout_s)
        except subprocess.TimeoutExpired:
            log.warning("pid %d ignored SIGTERM for %gs; killing it", p.pid, timeout_s)
            with contextlib.suppress(ProcessLookupError):
                p.kill()
            p.wait(timeout_s)
    return p.returncode


def _kill_pids(pids: Sequence[int], why: str) -> None:
    for pid in pids:
        if pid == os.getpid():
            continue
        log.warning("killing leftover pid %d (%s)", pid, why)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _read_carrier_changes(ns: str, ifname: str) -> int:
    out = run(["ip", "netns", "exec", ns, "cat", f"/sys/class/net/{ifname}/carrier_changes"])
    return int(out.stdout.strip())


# ----------------------------------------------------------------------------------- topology


@dataclasses.dataclass(frozen=True)
class Veth:
    host: str  # name in the host namespace
    peer: str  # name in the peer namespace
    peer_cidr: str | None  # address of the peer end, e.g. "192.0.2.2/24"


DEFAULT_VETHS = (Veth("nct0", "p0", "192.0.2.2/24"), Veth("nct1", "p1", "198.51.100.2/24"))


class Topology:
    """Host and peer namespaces joined by veth pairs. Use ``Topology.create()`` as a context
    manager; ``close()`` deletes both namespaces (and kills anything still running in them)."""

    def __init__(self, host: str, peer: str) -> None:
        self.host = host
        self.peer = peer
        self.veths: list[Veth] = []

    @classmethod
    def create(cls, veths: Sequence[Veth] = DEFAULT_VETHS) -> Topology:
        topo = cls(new_ns_name(), new_ns_name())
        try:
            for ns in (topo.host, topo.peer):
                run(["ip", "netns", "add", ns])
                ip("link", "set", "lo", "up", ns=ns)
            for v in veths:
                topo.add_veth(v.host, v.peer, v.peer_cidr)
        except BaseException:
            topo.close()
            raise
        return topo

    def __enter__(self) -> Topology:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add_veth(self, host_if: str, peer_if: str, peer_cidr: str | None = None) -> Veth:
        """A veth pair; the peer end is configured and up, the host end left down."""
        ip(
            "link",
            "add",
            host_if,
            "type",
            "veth",
            "peer",
            "name",
            peer_if,
            "netns",
            self.peer,
            ns=self.host,
        )
        if peer_cidr:
            ip("addr", "add", peer_cidr, "dev", peer_if, ns=self.peer)
        ip("link", "set", peer_if, "up", ns=self.peer)
        v = Veth(host_if, peer_if, peer_cidr)
        self.veths.append(v)
        return v

    def add_bridge(
        self, name: str, ports: Sequence[str] = (), *, cidr: str | None = None, peer: bool = False
    ) -> None:
        """A Linux bridge with ``ports`` enslaved, all up; in the peer namespace if ``peer``."""
        ns = self.peer if peer else self.host
        ip("link", "add", name, "type", "bridge", ns=ns)
        for port in ports:
            ip("link", "set", port, "master", name, ns=ns)
            ip("link", "set", port, "up", ns=ns)
        if cidr:
            ip("addr", "add", cidr, "dev", name, ns=ns)
        ip("link", "set", name, "up", ns=ns)

    def exec(self, argv: Sequence[str], *, peer: bool = False, check: bool = True) -> str:
        ns = self.peer if peer else self.host
        return run(["ip", "netns", "exec", ns, *argv], check=check).stdout

    def carrier_changes(self, ifname: str, *, peer: bool = False) -> int:
        """``/sys/class/net/IF/carrier_changes`` in that namespace: +2 per down/up."""
        return _read_carrier_changes(self.peer if peer else self.host, ifname)

    def close(self) -> None:
        for ns in (self.host, self.peer):
            pids = run(["ip", "netns", "pids", ns], check=False).stdout.split()
            _kill_pids([int(p) for p in pids], f"still running in namespace {ns}")
            run(["ip", "netns", "del", ns], check=False)


# ------------------------------------------------------------------------------------ sandbox


class HostSandbox:
    """A private mount namespace inside the host network namespace; see the module docstring.

    ``workdir`` (owned by the caller, e.g. pytest's ``tmp_path``) receives ``root/`` (the config
    tree), ``overlay/`` (writes to /etc) and ``logs/`` (daemon output).
    """

    def __init__(self, netns: str, workdir: Path, *, readonly_sys: bool = True) -> None:
        self.netns = netns
        self.workdir = workdir
        self.root = workdir / "root"
        self.logs = workdir / "logs"
        self.readonly_sys = readonly_sys
        self._proc: subprocess.Popen[str] | None = None
        self._children: list[subprocess.Popen[bytes]] = []
        self._mntns: str | None = None

    @classmethod
    @contextlib.contextmanager
    def open(cls, netns: str, workdir: Path, *, readonly_sys: bool = True) -> Iterator[HostSandbox]:
        box = cls(netns, workdir, readonly_sys=readonly_sys)
        try:
            box.start()
            yield box
        finally:
            box.close()

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise HarnessError("sandbox not started")
        return self._proc.pid

    def path(self, inside: str | PurePosixPath) -> Path:
        """Where a path under one of ``CONFIG_DIRS`` (as seen inside) lives on the host side."""
        p = PurePosixPath(inside)
        if not any(p == d or d in p.parents for d in CONFIG_DIRS):
            raise ValueError(
                f"{p} is not under a sandboxed config dir {[str(d) for d in CONFIG_DIRS]}"
            )
        return self.root / p.relative_to("/")

    def start(self) -> None:
        if any(c in str(self.workdir) for c in ",:\n"):
            raise HarnessError(f"workdir {self.workdir} cannot be an overlayfs option")
        for d in CONFIG_DIRS:
            self.path(d).mkdir(parents=True, exist_ok=True)
        upper, work = self.workdir / "overlay" / "upper", self.workdir / "overlay" / "work"
        for made in (upper, work, self.logs):
            made.mkdir(parents=True, exist_ok=True)
        q = shlex.quote
        lines = [
            "set -eu",
            f"mount -t overlay -o lowerdir=/etc,upperdir={q(str(upper))},workdir={q(str(work))}"
            " nct-etc /etc",
            "mount -t tmpfs -o mode=0755 nct-run /run",
            "mkdir -p /run/network /run/dbus /run/systemd/netif /run/systemd/network"
            " /run/NetworkManager",
            "chown systemd-network:systemd-network /run/systemd/netif 2>/dev/null || true",
        ]
        for d in CONFIG_DIRS:
            lines.append(f"mkdir -p {q(str(d))}")
            lines.append(f"mount --bind {q(str(self.path(d)))} {q(str(d))}")
        lines.append("mkdir -p /var/lib/NetworkManager")
        lines.append("mount -t tmpfs -o mode=0700 nct-nm /var/lib/NetworkManager")
        if self.readonly_sys:
            lines.append("mount -o remount,bind,ro /sys")
        lines += ["echo ready", "exec sleep infinity"]
        script = "\n".join(lines)
        unshare = ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script]
        argv = ["ip", "netns", "exec", self.netns, *unshare]
        err = (self.logs / "sandbox.stderr").open("w")
        self._proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err, text=True, cwd="/"
        )
        err.close()
        assert self._proc.stdout is not None
        ready, _, _ = select.select([self._proc.stdout], [], [], 10.0)
        line = self._proc.stdout.readline() if ready else ""
        if line.strip() != "ready":
            stop_process(self._proc)
            raise HarnessError(
                f"sandbox setup failed: {(self.logs / 'sandbox.stderr').read_text().strip()}"
            )
        self._mntns = os.readlink(f"/proc/{self.pid}/ns/mnt")

    def _argv(self, argv: Sequence[str]) -> list[str]:
        return ["nsenter", "-t", str(self.pid), "-m", "-n", "--", *argv]

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = {"PATH": PATH, "LC_ALL": "C.UTF-8", "HOME": "/root", "TERM": "dumb"}
        env.update(extra or {})
        return env

    def run(
        self,
        argv: Sequence[str],
        *,
        check: bool = True,
        timeout_s: float = 30.0,
        env: Mapping[str, str] | None = None,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside the sandbox (mount + net namespace), with a minimal environment
        (``PATH=/usr/sbin:/usr/bin:/sbin:/bin`` plus ``env``)."""
        return run(
            self._argv(argv), check=check, timeout_s=timeout_s, env=self.env(env), input=input
        )

    def popen(
        self,
        argv: Sequence[str],
        *,
        name: str | None = None,
        env: Mapping[str, str] | None = None,
        stdout: int | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start a long-running process inside the sandbox. Its PID is the process itself
        (``nsenter`` execs it); ``close()`` stops it. Output goes to ``logs/NAME.log`` unless
        ``stdout=subprocess.PIPE``."""
        name = name or Path(argv[0]).name
        logf = (self.logs / f"{name}.log").open("ab")
        try:
            p = subprocess.Popen(
                self._argv(argv),
                stdin=subprocess.DEVNULL,
                stdout=logf if stdout is None else stdout,
                stderr=logf,
                env=self.env(env),
                cwd="/",
            )
        finally:
            logf.close()
        self._children.append(p)
        return p

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.logs / f"{name}.log"
        if not path.exists():
            return f"(no {path.name})"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def ping(self, addr: str, count: int = 2) -> None:
        """``ping -c COUNT -W 1 ADDR`` from the host namespace; raises if any reply is missing."""
        self.run(
            ["ping", "-n", "-i", "0.2", "-c", str(count), "-W", "1", addr], timeout_s=count + 5
        )

    def carrier_changes(self, ifname: str) -> int:
        """``/sys/class/net/IF/carrier_changes`` of the host namespace: +2 per down/up."""
        return int(self.read_text(f"/sys/class/net/{ifname}/carrier_changes").strip())

    def read_text(self, inside: str) -> str:
        """A file as seen inside the sandbox (e.g. under its private /run)."""
        return self.run(["cat", inside]).stdout

    def close(self) -> None:
        for p in reversed(self._children):
            stop_process(p)
            if p.stdout is not None:
                p.stdout.close()
        self._children.clear()
        if self._mntns is not None:  # anything a daemon spawned (nm-dispatcher, ...)
            _kill_pids(_pids_in_mntns(self._mntns, exclude=self.pid), "left in the sandbox")
        if self._proc is not None:
            stop_process(self._proc)
            if self._proc.stdout is not None:
                self._proc.stdout.close()


def _pids_in_mntns(mntns: str, exclude: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == exclude:
            continue
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{entry}/ns/mnt") == mntns:
                pids.append(int(entry))
    return pids


# ---------------------------------------------------------------------------------- pings


def ping(where: HostSandbox | str, addr: str, count: int = 2) -> None:
    """Ping from a sandbox or a namespace name; raises ``HarnessError`` on any loss."""
    if isinstance(where, HostSandbox):
        where.ping(addr, count)
    else:
        run(
            [
                "ip",
                "netns",
                "exec",
                where,
                "ping",
                "-n",
                "-i",
                "0.2",
                "-c",
                str(count),
                "-W",
                "1",
                addr,
            ],
            timeout_s=count + 5,
        )


_PING_SUMMARY = re.compile(r"(\d+) packets transmitted, (\d+) (?:packets )?received")


class FloodPing:
    """``ping -q -i INTERVAL -c COUNT`` in the background; ``result()`` = (sent, received).

    with FloodPing(sandbox, "192.0.2.2", 300) as fp:
        do_something_disruptive()
    sent, received = fp.result()
    """

    def __init__(
        self, where: HostSandbox | str, addr: str, count: int, interval_s: float = 0.01
    ) -> None:
        self.addr = addr
        self.count = count
        # No -w: with a deadline ping counts replies, not requests, and "sent" overshoots.
        argv = ["ping", "-n", "-q", "-i", f"{interval_s:g}", "-c", str(count), "-W", "1", addr]
        if isinstance(where, HostSandbox):
            argv = where._argv(argv)
            env: dict[str, str] | None = where.env()
        else:
            argv = ["ip", "netns", "exec", where, *argv]
            env = None
        self._proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self._timeout_s = count * interval_s * 3 + 10.0
        self._result: tuple[int, int] | None = None
        time.sleep(0.05)  # let it start sending before the caller disrupts anything

    def __enter__(self) -> FloodPing:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._proc.poll() is None and exc[0] is not None:
            stop_process(self._proc, 1.0)

    def running(self) -> bool:
        return self._proc.poll() is None

    def result(self) -> tuple[int, int]:
        """Wait for ping to finish; (packets sent, replies received)."""
        if self._result is None:
            try:
                out, err = self._proc.communicate(timeout=self._timeout_s)
            except subprocess.TimeoutExpired:
                stop_process(self._proc, 1.0)
                raise HarnessError(
                    f"ping {self.addr} still running after {self._timeout_s:g}s"
                ) from None
            m = _PING_SUMMARY.search(out)
            if m is None:
                raise HarnessError(f"ping {self.addr}: no summary in {out!r} {err!r}")
            self._result = (int(m.group(1)), int(m.group(2)))
        return self._result


# A reply line ("64 bytes from 192.0.2.2: icmp_seq=7 ttl=64 ..."), not
# "From ... icmp_seq=7 Destination Host Unreachable" or "no answer yet for icmp_seq=7".
_PING_REPLY = re.compile(r"bytes from [^:]+: icmp_seq=(\d+) ")


class PingMeter:
    """An open-ended ``ping -i INTERVAL`` (no count) that runs until ``stop()``: for measuring
    loss across something whose duration is not known in advance (a timer-driven rollback).

    ``stop()`` sends SIGINT and counts per sequence number, so the one request that may still be
    in flight when the signal lands is not counted as lost: (sent, lost) where
    lost = requests before the last one that never got a reply. Replies go to a file (at 100
    lines/s a pipe would fill up and stall ping)::

        meter = PingMeter(sandbox, "192.0.2.2")
        ... something disruptive, of any duration ...
        sent, lost = meter.stop()
    """

    def __init__(self, where: HostSandbox | str, addr: str, interval_s: float = 0.01) -> None:
        self.addr = addr
        argv = ["ping", "-n", "-i", f"{interval_s:g}", "-W", "1", addr]
        if isinstance(where, HostSandbox):
            argv, env, logs = where._argv(argv), where.env(), where.logs
        else:
            argv, env, logs = ["ip", "netns", "exec", where, *argv], None, None
        self._out = tempfile.TemporaryFile("w+", dir=logs)
        self._proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        self._result: tuple[int, int] | None = None
        self.wait_replies(1)

    def __enter__(self) -> PingMeter:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._proc.poll() is None:
            stop_process(self._proc, 1.0)
        self._out.close()

    def _text(self) -> str:
        self._out.flush()
        self._out.seek(0)
        return self._out.read()

    def replies(self) -> int:
        return len(_PING_REPLY.findall(self._text()))

    def wait_replies(self, n: int, timeout_s: float = 5.0) -> None:
        """Wait until ``n`` replies came back in all (the link works now)."""

        def enough() -> bool:
            if self.replies() >= n:
                return True
            if self._proc.poll() is not None:  # e.g. "connect: Network is unreachable"
                raise HarnessError(f"ping {self.addr} exited: {self._text()[-500:]!r}")
            return False

        wait_until(f"{n} ping replies from {self.addr}", enough, timeout_s)

    def stop(self) -> tuple[int, int]:
        """SIGINT, then (requests sent, requests lost)."""
        if self._result is None:
            if self._proc.poll() is None:
                self._proc.send_signal(signal.SIGINT)
            try:
                self._proc.wait(5.0)
            except subprocess.TimeoutExpired:
                stop_process(self._proc, 1.0)
            text = self._text()
            m = _PING_SUMMARY.search(text)
            if m is None:
                raise HarnessError(f"ping {self.addr}: no summary in {text[-500:]!r}")
            sent = int(m.group(1))
            answered = {int(s) for s in _PING_REPLY.findall(text)}
            # iputils numbers requests from 1; the last may be in flight when SIGINT lands.
            lost = len(set(range(1, sent)) - answered)
            self._result = (sent, lost)
            self._out.close()
        return self._result


def flood_ping(
    where: HostSandbox | str,
    addr: str,
    count: int,
    *,
    during: Callable[[], object] | None = None,
    interval_s: float = 0.01,
) -> tuple[int, int]:
    """(sent, received) of a ``ping -q -i 0.01`` run while ``during()`` happens.

    Raises ``HarnessError`` if the ping finished before ``during`` returned: then the measurement
    did not cover the whole action, so pick a larger ``count``.
    """
    with FloodPing(where, addr, count, interval_s) as fp:
        if during is not None:
            during()
            if not fp.running():
                raise HarnessError(f"flood ping of {addr} ended before the action did; raise count")
        return fp.result()


# ------------------------------------------------------------------------- python in a netns


def netns_python(ns: str, code: str, arg: object = None, *, timeout_s: float = 60.0) -> Any:
    """Run ``code`` with this interpreter inside namespace ``ns`` and return its JSON result.

    The code sees ``arg`` (JSON round-tripped) and ``links`` (an open
    ``netcfg_txn.net.links.Links``) with ``netcfg_txn.net.links`` imported as ``L``, and sets
    ``result`` to something JSON-able.
    ``sys.executable`` is used, so running pytest from another venv (e.g. pyroute2 0.7.2) runs the
    namespace side with that pyroute2 too.
    """
    prelude = (
        "import json, sys\n"
        "from netcfg_txn.net import links as L\n"
        "arg = json.load(sys.stdin)\n"
        "result = None\n"
        "with L.Links() as links:\n"
    )
    script = prelude + textwrap.indent(textwrap.dedent(code).strip() + "\n", "    ")
    script += "print(json.dumps(result))\n"
    pythonpath = os.pathsep.join([str(REPO / "agent"), os.environ.get("PYTHONPATH", "")])
    env = {"PATH": PATH, "LC_ALL": "C.UTF-8", "PYTHONPATH": pythonpath}
    p = run(
        ["ip", "netns", "exec", ns, sys.executable, "-c", script],
        input=json.dumps(arg),
        env=env,
        timeout_s=timeout_s,
    )
    return json.loads(p.stdout.strip().splitlines()[-1])
