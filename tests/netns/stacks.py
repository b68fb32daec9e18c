# SPDX-License-Identifier: GPL-3.0-or-later
"""Real network stacks in throwaway namespaces: the harness for end-to-end rollback tests.

Three layers, each usable on its own (pytest fixtures in ``conftest.py`` wrap them). The first
two live in ``harness.py`` and are re-exported here:

``Topology``
    Host and peer namespaces (``nct-<6 hex>``) joined by nct0 <-> p0 (peer 192.0.2.2/24) and
    nct1 <-> p1 (peer 198.51.100.2/24); the host side is left down and unconfigured.

``HostSandbox``
    A private mount namespace in the host namespace: /etc an overlay, the stacks' config dirs
    bind mounts of ``sandbox.root/etc/...``, private /run; ``run``/``popen`` execute inside it.

``Stack`` (``IfupdownStack``, ``Ifupdown2Stack``, ``NetworkdStack``, ``NetworkManagerStack``,
``NetplanStack``; ``STACKS`` maps names to classes)
    Renders a config from ``Iface`` specs in the stack's own format, writes it into the sandbox,
    starts the stack's daemons (dbus-daemon, systemd-networkd, NetworkManager), brings the config
    up with the stack's own tool, and ``apply()``-s a changed config to named interfaces only.
    ``DEFAULT_IFACES`` gives nct0 192.0.2.1/24 and nct1 198.51.100.1/24.

Plus (from ``harness.py``) ``ping``, ``FloodPing``/``flood_ping`` and ``PingMeter`` (loss across a
link while something else happens), ``netns_python`` (run Python, e.g.
``netcfg_txn.net.links``, inside a namespace) and ``agent_command`` (argv for
``netcfg-txn``/``netcfg-txnd`` from this checkout).

End to end, the daemon and the CLI run *inside* the sandbox, so they see the sandboxed /etc and
drive the stack's own tools (``stack.env()`` adds what those need, e.g. ifupdown2's PATH);
``agent.AgentDaemon`` wraps this, ``test_rollback_e2e.py`` uses it. By hand::

    with Topology.create() as topo, running_stack(topo, tmp_path / "box", "networkd") as stack:
        box, state, sock = stack.sandbox, tmp_path / "state", tmp_path / "control"
        env = {**AGENT_ENV, **stack.env()}
        box.popen(agent_command("netcfg-txnd", "--root", "/", "--state-dir", str(state),
                                "--socket", str(sock), "--config", str(cfg)),
                  name="netcfg-txnd", env=env)
        wait_until("control socket", sock.exists)
        cli = ["netcfg-txn", "--socket", str(sock), "--json"]
        box.run(agent_command(*cli, "start", "--timeout", "5s"), env=env)
        before = box.carrier_changes("nct0")
        stack.apply(with_iface(stack.ifaces, Iface("nct1", ("198.51.100.11/24",))), only=["nct1"])
        rollback = agent_command(*cli, "rollback")
        sent, received = flood_ping(box, "192.0.2.2", 300,
                                    during=lambda: box.run(rollback, env=env))
        assert (sent, received) == (300, 300) and box.carrier_changes("nct0") == before

``tmp_path`` lives under /tmp, which the sandbox shares with the host, so the state dir and the
socket are reachable from both sides; ``sandbox.logs`` collects every daemon's output.

Everything is torn down by ``close()`` (context managers): tracked daemons by PID (TERM, then
KILL), anything left in the sandbox's mount namespace or in our own namespaces by PID, then the
namespaces. Nothing here touches the machine's own interfaces or its real /etc.

The ifupdown2 stack needs an unpacked ifupdown2 (it conflicts with ifupdown, so it is not
installed): ``python -m tests.netns.stacks prepare-ifupdown2`` (``NCT_IFUPDOWN2_ROOT``, default
/var/tmp/nct-ifupdown2) does ``apt-get download ifupdown2`` + ``dpkg-deb -x`` once.
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import fcntl
import functools
import json
import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

from tests.netns.harness import (
    AGENT_ENV,
    CONFIG_DIRS,
    DEFAULT_VETHS,
    PATH,
    REPO,
    FloodPing,
    HarnessError,
    HostSandbox,
    PingMeter,
    T,
    Topology,
    Veth,
    agent_command,
    flood_ping,
    ip,
    ip_json,
    missing_tools,
    netns_python,
    new_ns_name,
    ping,
    run,
    stop_process,
    wait_until,
)

# The harness layer is re-exported: ``from tests.netns.stacks import Topology`` keeps working.
__all__ = [
    "AGENT_ENV",
    "CONFIG_DIRS",
    "DEFAULT_IFACES",
    "DEFAULT_VETHS",
    "PATH",
    "REPO",
    "STACKS",
    "FloodPing",
    "HarnessError",
    "HostSandbox",
    "Iface",
    "Ifupdown2Stack",
    "IfupdownStack",
    "NetplanStack",
    "NetworkManagerStack",
    "NetworkdStack",
    "PingMeter",
    "Route",
    "Stack",
    "Topology",
    "Veth",
    "agent_command",
    "flood_ping",
    "ifupdown2_ready",
    "ifupdown2_root",
    "ip",
    "ip_json",
    "live_mismatches",
    "missing_tools",
    "netns_python",
    "new_ns_name",
    "ping",
    "prepare_ifupdown2",
    "run",
    "running_stack",
    "start_dbus",
    "stop_process",
    "wait_until",
    "with_iface",
]

IFUPDOWN2_ENV = "NCT_IFUPDOWN2_ROOT"
DEFAULT_IFUPDOWN2_ROOT = Path("/var/tmp/nct-ifupdown2")
NETWORKD = "/lib/systemd/systemd-networkd"


# --------------------------------------------------------------------------------- stacks


@dataclasses.dataclass(frozen=True)
class Route:
    dst: str  # CIDR
    via: str  # gateway


@dataclasses.dataclass(frozen=True)
class Iface:
    """One interface as a stack should configure it (static IPv4 only, which is what we test)."""

    name: str
    addresses: tuple[str, ...] = ()  # CIDRs
    routes: tuple[Route, ...] = ()
    bridge_ports: tuple[str, ...] = ()  # non-empty: a bridge the stack creates, with these ports

    @property
    def is_bridge(self) -> bool:
        return bool(self.bridge_ports)


DEFAULT_IFACES = (Iface("nct0", ("192.0.2.1/24",)), Iface("nct1", ("198.51.100.1/24",)))


def with_iface(ifaces: Sequence[Iface], new: Iface) -> tuple[Iface, ...]:
    """``ifaces`` with the one named like ``new`` replaced (or ``new`` appended)."""
    out = [new if i.name == new.name else i for i in ifaces]
    return tuple(out if any(i.name == new.name for i in ifaces) else [*out, new])


def live_mismatches(ns: str, ifaces: Sequence[Iface]) -> list[str]:
    """What in namespace ``ns`` differs from ``ifaces`` (exact global IPv4 addresses, admin up,
    bridge ports enslaved, routes present). Empty when configured."""
    links = {x["ifname"]: x for x in ip_json("addr", "show", ns=ns)}
    routes = ip_json("-4", "route", "show", "table", "all", ns=ns)
    out = []
    for i in ifaces:
        link = links.get(i.name)
        if link is None:
            out.append(f"{i.name}: missing")
            continue
        if "UP" not in link.get("flags", []):
            out.append(f"{i.name}: down")
        have = {
            f"{a['local']}/{a['prefixlen']}"
            for a in link.get("addr_info", [])
            if a.get("family") == "inet"
        }
        if have != set(i.addresses):
            out.append(f"{i.name}: addresses {sorted(have)}, want {sorted(i.addresses)}")
        for port in i.bridge_ports:
            if links.get(port, {}).get("master") != i.name:
                out.append(f"{port}: not a port of {i.name}")
        for r in i.routes:
            if not any(x.get("dst") == r.dst and x.get("gateway") == r.via for x in routes):
                out.append(f"{i.name}: no route {r.dst} via {r.via}")
    return out


class Stack(abc.ABC):
    """One network configuration stack running inside a ``HostSandbox``.

    Lifecycle: ``prepare()`` → ``write(ifaces)`` → ``start()`` → ``up(ifaces)`` → any number of
    ``apply(new_ifaces, only=[...])``; ``sandbox.close()`` stops the daemons.
    """

    name: ClassVar[str]
    tools: ClassVar[tuple[str, ...]]  # executables it needs
    # The managed-file globs a netcfg-txn config for this stack would use.
    config_globs: ClassVar[tuple[str, ...]]

    def __init__(self, sandbox: HostSandbox) -> None:
        self.sandbox = sandbox
        self.ifaces: tuple[Iface, ...] = ()
        self._written: set[PurePosixPath] = set()
        self.timings: dict[str, float] = {}

    # --- availability

    @classmethod
    def missing(cls) -> str | None:
        """Why this stack cannot run here (a missing tool), or None."""
        gone = missing_tools(cls.tools)
        return f"{cls.name} stack needs {', '.join(gone)}" if gone else None

    # --- config

    @abc.abstractmethod
    def render(self, ifaces: Sequence[Iface]) -> dict[PurePosixPath, str]:
        """The config files (path as seen inside the sandbox → content). Pure."""

    def file_mode(self, path: PurePosixPath) -> int:
        return 0o644

    def prepare(self) -> None:
        """Populate ``sandbox.root`` with what the stack needs besides the config (hooks...)."""
        return None

    def write(self, ifaces: Sequence[Iface]) -> None:
        """Write ``render(ifaces)``: only files whose content changed, and remove files an earlier
        ``write`` made that are now gone."""
        files = self.render(ifaces)
        for gone in self._written - set(files):
            self.sandbox.path(gone).unlink(missing_ok=True)
        for inside, text in files.items():
            path = self.sandbox.path(inside)
            if path.exists() and path.read_text() == text:
                continue  # untouched: a new mtime alone makes networkd reconfigure the link
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            path.chmod(self.file_mode(inside))
        self._written = set(files)
        self.ifaces = tuple(ifaces)

    def adopt(self, ifaces: Sequence[Iface]) -> None:
        """Take ``ifaces`` as the current config without writing it: after something else (e.g.
        a netcfg-txn rollback) rewrote the files, so that later ``apply()`` calls start from it."""
        self._written = set(self.render(ifaces))
        self.ifaces = tuple(ifaces)

    # --- lifecycle

    def start(self) -> None:
        """Start the stack's daemons, if any (the sandbox stops them by PID)."""
        return None

    @abc.abstractmethod
    def up(self, ifaces: Sequence[Iface]) -> None:
        """Bring the written config up with the stack's own tool and wait until configured."""

    @abc.abstractmethod
    def apply(self, ifaces: Sequence[Iface], only: Sequence[str]) -> None:
        """Switch the config to ``ifaces`` and re-apply it to the interfaces in ``only`` (whose
        config changed, incl. removed ones) with the stack's own tool; wait until configured."""

    def ready(self, ifaces: Sequence[Iface]) -> bool:
        """Stack-specific readiness on top of the live state check."""
        return True

    def wait_configured(self, ifaces: Sequence[Iface], timeout_s: float = 15.0) -> float:
        """Wait until the live state matches ``ifaces`` and ``ready()``; returns seconds waited."""
        t0 = time.monotonic()
        last: list[str] = []

        def probe() -> bool:
            nonlocal last
            last = live_mismatches(self.sandbox.netns, ifaces)
            return not last and self.ready(ifaces)

        try:
            wait_until(f"{self.name} to configure {[i.name for i in ifaces]}", probe, timeout_s)
        except HarnessError as e:
            raise HarnessError(f"{e}: {last or 'stack not ready'}\n{self.diagnostics()}") from None
        return time.monotonic() - t0

    def env(self) -> dict[str, str]:
        """Environment additions the stack's tools need (for a daemon that calls them)."""
        return {}

    def diagnostics(self) -> str:
        out = self.sandbox.run(["ip", "-br", "addr"], check=False).stdout
        return f"ip -br addr:\n{out}"

    def timed(self, what: str, fn: Callable[[], T]) -> T:
        t0 = time.monotonic()
        try:
            return fn()
        finally:
            self.timings[what] = self.timings.get(what, 0.0) + time.monotonic() - t0

    def _names(self, ifaces: Sequence[Iface]) -> set[str]:
        return {i.name for i in ifaces}


# -- ifupdown -------------------------------------------------------------------------------


def _ifupdown_stanzas(i: Iface, *, native_bridge: bool) -> list[str]:
    lines = [f"auto {i.name}"]
    method = "static" if i.addresses else "manual"
    lines.append(f"iface {i.name} inet {method}")
    if i.addresses:
        lines.append(f"    address {i.addresses[0]}")
    if i.is_bridge and native_bridge:  # ifupdown2
        lines.append(f"    bridge-ports {' '.join(i.bridge_ports)}")
    elif i.is_bridge:  # ifupdown without bridge-utils: do it by hand
        lines.append(f"    pre-up ip link add {i.name} type bridge")
        for port in i.bridge_ports:
            lines.append(f"    pre-up ip link set {port} master {i.name}")
            lines.append(f"    pre-up ip link set {port} up")
        lines.append(f"    post-down ip link del {i.name}")
    for r in i.routes:
        lines.append(f"    post-up ip route add {r.dst} via {r.via} dev {i.name}")
        lines.append(f"    pre-down ip route del {r.dst} via {r.via} dev {i.name} || true")
    for extra in i.addresses[1:]:
        lines += ["", f"iface {i.name} inet static", f"    address {extra}"]
    return lines


class IfupdownStack(Stack):
    """Debian ifupdown: /etc/network/interfaces, ``ifup``/``ifdown`` (~20 ms a call)."""

    name = "ifupdown"
    tools: ClassVar[tuple[str, ...]] = ("ifup", "ifdown", "ifquery")
    config_globs = ("/etc/network/interfaces", "/etc/network/interfaces.d/*")
    native_bridge: ClassVar[bool] = False

    def prepare(self) -> None:
        # ifup runs the hook dirs with run-parts and fails ("pre-up script failed") without them.
        for d in ("if-pre-up.d", "if-up.d", "if-down.d", "if-post-down.d"):
            src, dst = Path("/etc/network") / d, self.sandbox.path(f"/etc/network/{d}")
            if src.is_dir():
                shutil.copytree(src, dst, symlinks=True, dirs_exist_ok=True)
            else:
                dst.mkdir(parents=True, exist_ok=True)
        self.sandbox.path("/etc/network/interfaces.d").mkdir(exist_ok=True)

    def render(self, ifaces: Sequence[Iface]) -> dict[PurePosixPath, str]:
        lines = [f"# netcfg-txn test harness ({self.name})", "auto lo", "iface lo inet loopback"]
        for i in ifaces:
            lines += ["", *_ifupdown_stanzas(i, native_bridge=self.native_bridge)]
        return {PurePosixPath("/etc/network/interfaces"): "\n".join(lines) + "\n"}

    def tool(self, argv: Sequence[str]) -> None:
        self.sandbox.run(argv, env=self.env())

    def _order(self, ifaces: Sequence[Iface], names: set[str]) -> list[str]:
        # Bridges after their ports on the way up.
        plain = [i.name for i in ifaces if i.name in names and not i.is_bridge]
        return plain + [i.name for i in ifaces if i.name in names and i.is_bridge]

    def up(self, ifaces: Sequence[Iface]) -> None:
        names = self._order(ifaces, self._names(ifaces))
        self.timed("up", lambda: self.tool(["ifup", *names]))
        self.timed("wait", lambda: self.wait_configured(ifaces))

    def apply(self, ifaces: Sequence[Iface], only: Sequence[str]) -> None:
        # ifdown needs the config the interface was brought up with: take it down first.
        old = [n for n in reversed(self._order(self.ifaces, set(only)))]
        if old:
            self.timed("down", lambda: self.tool(["ifdown", *old]))
        self.write(ifaces)
        new = self._order(ifaces, set(only))
        if new:
            self.timed("reapply", lambda: self.tool(["ifup", *new]))
        self.timed("wait", lambda: self.wait_configured(ifaces))


# -- ifupdown2 ------------------------------------------------------------------------------


def ifupdown2_root() -> Path:
    return Path(os.environ.get(IFUPDOWN2_ENV) or DEFAULT_IFUPDOWN2_ROOT)


def ifupdown2_ready(root: Path) -> bool:
    return (root / "nct-bin" / "ifup").exists() and (root / "etc/network/ifupdown2").is_dir()


def prepare_ifupdown2(root: Path | None = None) -> Path:
    """Unpack ifupdown2 (``apt-get download`` + ``dpkg-deb -x``) into ``root`` once.

    Adds ``root/nct-bin/{ifup,ifdown,ifquery,ifreload}`` symlinks to its ``__main__.py``. Safe to
    run concurrently (flock) and idempotent; the tree is published with an atomic rename.
    """
    root = root or ifupdown2_root()
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f".{root.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if ifupdown2_ready(root):
            return root
        tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
        try:
            run(
                ["apt-get", "download", "-o", "APT::Sandbox::User=root", "ifupdown2"],
                cwd=tmp,
                timeout_s=120,
                env={"PATH": PATH, "LC_ALL": "C.UTF-8"},
            )
            (deb,) = tmp.glob("ifupdown2_*.deb")
            tree = tmp / "tree"
            run(["dpkg-deb", "-x", str(deb), str(tree)])
            main = tree / "usr/share/ifupdown2/__main__.py"
            main.chmod(0o755)
            (tree / "nct-bin").mkdir()
            for tool in ("ifup", "ifdown", "ifquery", "ifreload"):
                (tree / "nct-bin" / tool).symlink_to("../usr/share/ifupdown2/__main__.py")
            shutil.rmtree(root, ignore_errors=True)
            tree.rename(root)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return root


class Ifupdown2Stack(IfupdownStack):
    """ifupdown2, unpacked (not installed) and first in PATH (~0.45 s a call)."""

    name = "ifupdown2"
    tools: ClassVar[tuple[str, ...]] = ("ip",)
    native_bridge = True

    @classmethod
    def missing(cls) -> str | None:
        if not ifupdown2_ready(ifupdown2_root()):
            return (
                f"ifupdown2 stack needs an unpacked ifupdown2 in {ifupdown2_root()}: run "
                "`python -m tests.netns.stacks prepare-ifupdown2`"
            )
        if not Path("/usr/bin/python3").exists():
            return "ifupdown2 stack needs /usr/bin/python3"
        return None

    def env(self) -> dict[str, str]:
        # /usr/bin first: ifupdown2's "#!/usr/bin/env python3" must get the system Python.
        return {"PATH": f"{ifupdown2_root() / 'nct-bin'}:{PATH}"}

    def prepare(self) -> None:
        super().prepare()
        src = ifupdown2_root() / "etc/network/ifupdown2"
        dst = self.sandbox.path("/etc/network/ifupdown2")
        shutil.copytree(src, dst, dirs_exist_ok=True)
        conf = dst / "ifupdown2.conf"
        text = conf.read_text()
        # State under the sandbox's private /run instead of the machine's /var/tmp/network;
        # no mako templates (python3-mako is not installed).
        text = re.sub(r"(?m)^state_dir=.*$", "state_dir=/run/network/ifupdown2/", text)
        text = re.sub(r"(?m)^template_enable=.*$", "template_enable=0", text)
        conf.write_text(text)

    def apply(self, ifaces: Sequence[Iface], only: Sequence[str]) -> None:
        # ifupdown2 reconciles on ifup (purges addresses not in the file); only interfaces that
        # disappear from the config need an ifdown, while their stanza still exists.
        keep = self._names(ifaces)
        removed = [n for n in reversed(self._order(self.ifaces, set(only))) if n not in keep]
        if removed:
            self.timed("down", lambda: self.tool(["ifdown", *removed]))
        self.write(ifaces)
        new = self._order(ifaces, set(only))
        if new:
            self.timed("reapply", lambda: self.tool(["ifup", *new]))
        self.timed("wait", lambda: self.wait_configured(ifaces))


# -- dbus -----------------------------------------------------------------------------------


def start_dbus(sandbox: HostSandbox, timeout_s: float = 10.0) -> subprocess.Popen[bytes]:
    """A private system bus in the sandbox (``/run/dbus/system_bus_socket``, tracked by PID)."""
    p = sandbox.popen(
        ["dbus-daemon", "--system", "--nofork", "--nopidfile", "--print-address=1"],
        name="dbus-daemon",
        stdout=subprocess.PIPE,
    )
    assert p.stdout is not None
    ready, _, _ = select.select([p.stdout], [], [], timeout_s)
    if not ready or not p.stdout.readline():
        raise HarnessError(f"dbus-daemon did not start:\n{sandbox.log_tail('dbus-daemon')}")
    return p


# -- systemd-networkd -----------------------------------------------------------------------


def _networkd_file(*sections: tuple[str, Sequence[str]]) -> str:
    out = []
    for name, lines in sections:
        out += [f"[{name}]", *lines, ""]
    return "\n".join(out)


class NetworkdStack(Stack):
    """systemd-networkd without systemd: read-only /sys, private dbus for ``networkctl``."""

    name = "networkd"
    tools: ClassVar[tuple[str, ...]] = ("networkctl", "dbus-daemon", NETWORKD)
    config_globs = ("/etc/systemd/network/*",)
    netdir: ClassVar[str] = "/etc/systemd/network"

    def render(self, ifaces: Sequence[Iface]) -> dict[PurePosixPath, str]:
        files: dict[PurePosixPath, str] = {}
        d = PurePosixPath(self.netdir)
        for i in ifaces:
            net = [
                "LinkLocalAddressing=no",
                "IPv6AcceptRA=no",
                *(f"Address={a}" for a in i.addresses),
            ]
            if not i.addresses:
                net.append("ConfigureWithoutCarrier=yes")
            routes = [("Route", [f"Destination={r.dst}", f"Gateway={r.via}"]) for r in i.routes]
            files[d / f"50-{i.name}.network"] = _networkd_file(
                ("Match", [f"Name={i.name}"]), ("Network", net), *routes
            )
            if i.is_bridge:
                files[d / f"50-{i.name}.netdev"] = _networkd_file(
                    ("NetDev", [f"Name={i.name}", "Kind=bridge"])
                )
                for port in i.bridge_ports:
                    files[d / f"50-{port}.network"] = _networkd_file(
                        ("Match", [f"Name={port}"]),
                        ("Network", [f"Bridge={i.name}", "LinkLocalAddressing=no"]),
                    )
        return files

    def start(self) -> None:
        self.timed("start", self._start)

    def _start(self) -> None:
        start_dbus(self.sandbox)
        self.sandbox.run(["chown", "-R", "systemd-network:systemd-network", "/run/systemd/netif"])
        self.sandbox.popen([NETWORKD], name="systemd-networkd", env={"SYSTEMD_LOG_LEVEL": "debug"})
        wait_until("networkd on the bus", lambda: self._networkctl_ok(), 10.0)

    def _networkctl_ok(self) -> bool:
        return self.sandbox.run(["networkctl", "list", "--no-pager"], check=False).returncode == 0

    def networkctl(self, *args: str) -> None:
        self.sandbox.run(["networkctl", *args])

    def generate(self) -> None:
        """netplan's hook; networkd reads its files directly."""

    def ready(self, ifaces: Sequence[Iface]) -> bool:
        # networkd's own verdict, from its state files: ADMIN_STATE=configured for every link.
        for i in ifaces:
            idx = self.sandbox.run(["cat", f"/sys/class/net/{i.name}/ifindex"], check=False)
            state = self.sandbox.run(
                ["cat", f"/run/systemd/netif/links/{idx.stdout.strip()}"], check=False
            ).stdout
            if "ADMIN_STATE=configured" not in state:
                return False
        return True

    def up(self, ifaces: Sequence[Iface]) -> None:
        # networkd configures matching links as soon as it starts; "up" is waiting for it.
        self.timed("wait", lambda: self.wait_configured(ifaces))

    def apply(self, ifaces: Sequence[Iface], only: Sequence[str]) -> None:
        keep = self._names(ifaces)
        removed_netdevs = [i.name for i in self.ifaces if i.is_bridge and i.name not in keep]
        self.write(ifaces)
        self.timed("generate", self.generate)
        self.timed("reload", lambda: self.networkctl("reload"))
        for name in removed_netdevs:  # networkd never deletes a netdev by itself
            if name in only:
                self.timed("delete", functools.partial(self.networkctl, "delete", name))
        present = [n for n in only if n in keep]
        if present:
            self.timed("reapply", lambda: self.networkctl("reconfigure", *present))
        self.timed("wait", lambda: self.wait_configured(ifaces))

    def diagnostics(self) -> str:
        return (
            f"{super().diagnostics()}\nnetworkd log:\n{self.sandbox.log_tail('systemd-networkd')}"
        )


# -- netplan --------------------------------------------------------------------------------


class NetplanStack(NetworkdStack):
    """netplan: YAML in /etc/netplan, ``netplan generate`` → networkd (netplan apply needs a
    running systemd, which we don't have)."""

    name = "netplan"
    tools: ClassVar[tuple[str, ...]] = ("netplan", "networkctl", "dbus-daemon", NETWORKD)
    config_globs = ("/etc/netplan/*.yaml",)

    def render(self, ifaces: Sequence[Iface]) -> dict[PurePosixPath, str]:
        eths: dict[str, Any] = {}
        bridges: dict[str, Any] = {}
        ports = {p for i in ifaces for p in i.bridge_ports}
        for i in ifaces:
            cfg: dict[str, Any] = {"link-local": []}
            if i.addresses:
                cfg["addresses"] = list(i.addresses)
            if i.routes:
                cfg["routes"] = [{"to": r.dst, "via": r.via} for r in i.routes]
            if i.is_bridge:
                cfg["interfaces"] = list(i.bridge_ports)
                bridges[i.name] = cfg
            else:
                eths[i.name] = cfg
        for port in ports:
            eths.setdefault(port, {"link-local": []})
        network: dict[str, Any] = {"version": 2, "renderer": "networkd", "ethernets": eths}
        if bridges:
            network["bridges"] = bridges
        # JSON is valid YAML: no PyYAML needed here.
        text = "# netcfg-txn test harness (netplan)\n" + json.dumps({"network": network}, indent=2)
        return {PurePosixPath("/etc/netplan/50-nct.yaml"): text + "\n"}

    def file_mode(self, path: PurePosixPath) -> int:
        return 0o600  # netplan warns about world-readable files

    def generate(self) -> None:
        self.sandbox.run(["netplan", "generate"])

    def apply(self, ifaces: Sequence[Iface], only: Sequence[str]) -> None:
        # `netplan generate` rewrites every .network file, so networkd reconfigures every link on
        # the reload, asynchronously: the old state files still say "configured" for a moment.
        # Wait until each link that stays has written a fresh state file (networkd replaces it,
        # so its inode changes), or a loss measured next would count this reconfiguration.
        stays = [i.name for i in ifaces if i.name in self._names(self.ifaces)]
        before = {n: self._state_inode(n) for n in stays}
        super().apply(ifaces, only)

        def settled() -> bool:
            return all(self._state_inode(n) != before[n] for n in stays) and self.ready(ifaces)

        self.timed("settle", lambda: wait_until("networkd to reconfigure after generate", settled))

    def _state_inode(self, ifname: str) -> str:
        script = f'stat -c %i "/run/systemd/netif/links/$(cat /sys/class/net/{ifname}/ifindex)"'
        return self.sandbox.run(["sh", "-c", script], check=False).stdout.strip()

    def _start(self) -> None:
        self.generate()
        super()._start()


# -- NetworkManager -------------------------------------------------------------------------


class NetworkManagerStack(Stack):
    """NetworkManager with the keyfile plugin, managing only nct* links, on a private bus."""

    name = "NetworkManager"
    tools: ClassVar[tuple[str, ...]] = ("NetworkManager", "nmcli", "dbus-daemon")
    config_globs = ("/etc/NetworkManager/system-connections/*",)

    def render(self, ifaces: Sequence[Iface]) -> dict[PurePosixPath, str]:
        conf = textwrap.dedent(
            """\
            # netcfg-txn test harness: keyfiles only, nct* links only, hands off /etc.
            [main]
            plugins=keyfile
            dns=none
            rc-manager=unmanaged
            hostname-mode=none
            no-auto-default=*
            auth-polkit=false

            [keyfile]
            unmanaged-devices=except:interface-name:nct0;except:interface-name:nct1;except:interface-name:nctbr*

            [logging]
            level=INFO
            """
        )
        d = PurePosixPath("/etc/NetworkManager")
        files = {d / "NetworkManager.conf": conf}
        masters = {p: i.name for i in ifaces for p in i.bridge_ports}
        for i in ifaces:
            files[d / "system-connections" / f"{i.name}.nmconnection"] = self._keyfile(i, None)
        for port, master in masters.items():
            if port not in self._names(ifaces):
                files[d / "system-connections" / f"{port}.nmconnection"] = self._keyfile(
                    Iface(port), master
                )
        return files

    @staticmethod
    def _keyfile(i: Iface, master: str | None) -> str:
        kind = "bridge" if i.is_bridge else "ethernet"
        lines = [
            "[connection]",
            f"id={i.name}",
            f"type={kind}",
            f"interface-name={i.name}",
            "autoconnect=true",
        ]
        if master is not None:
            lines += [f"master={master}", "slave-type=bridge", ""]
            return "\n".join(lines)
        lines += ["", f"[{kind}]", ""]
        if i.is_bridge:
            lines.insert(-1, "stp=false")
        lines += ["[ipv4]"]
        if i.addresses:
            lines.append("method=manual")
            lines += [f"address{n}={a}" for n, a in enumerate(i.addresses, 1)]
            lines += [f"route{n}={r.dst},{r.via}" for n, r in enumerate(i.routes, 1)]
        else:
            lines.append("method=disabled")
        lines += ["", "[ipv6]", "method=disabled", ""]
        return "\n".join(lines)

    def file_mode(self, path: PurePosixPath) -> int:
        return 0o600 if path.suffix == ".nmconnection" else 0o644  # NM ignores readable keyfiles

    def start(self) -> None:
        self.timed("start", self._start)

    def _start(self) -> None:
        start_dbus(self.sandbox)
        self.sandbox.popen(["NetworkManager", "--no-daemon"], name="NetworkManager")
        wait_until("NetworkManager on the bus", self._running, 10.0)

    def _running(self) -> bool:
        p = self.sandbox.run(["nmcli", "-t", "-f", "RUNNING", "general"], check=False)
        return p.returncode == 0 and p.stdout.strip() == "running"

    def nmcli(self, *args: str) -> None:
        self.sandbox.run(["nmcli", *args])

    def ready(self, ifaces: Sequence[Iface]) -> bool:
        for i in ifaces:
            p = self.sandbox.run(
                ["nmcli", "-g", "GENERAL.STATE", "device", "show", i.name], check=False
            )
            if not p.stdout.startswith("100"):
                return False
        return True

    def _activate(self, names: Sequence[str]) -> None:
        for name in names:
            self.nmcli("--wait", "10", "connection", "up", name)

    def up(self, ifaces: Sequence[Iface]) -> None:
        names = [i.name for i in ifaces if not i.is_bridge] + [
            i.name for i in ifaces if i.is_bridge
        ]
        self.timed("up", lambda: self._activate(names))
        self.timed("wait", lambda: self.wait_configured(ifaces))

    def apply(self, ifaces: Sequence[Iface], only: Sequence[str]) -> None:
        keep = self._names(ifaces)
        ports = [p for i in ifaces if i.is_bridge for p in i.bridge_ports if p not in keep]
        removed = [n for n in only if n not in keep]
        for name in removed:  # deactivate while the profile still exists
            self.timed("down", functools.partial(self.nmcli, "connection", "down", name))
        self.write(ifaces)
        self.timed("reload", lambda: self.nmcli("connection", "reload"))
        # Plain links, then bridges, then the port profiles of bridges (a link that just became
        # a port keeps its old active profile until its port profile is activated).
        bridges = {i.name for i in ifaces if i.is_bridge}
        order = [n for n in only if n in keep and n not in bridges]
        order += [n for n in only if n in bridges] + [n for n in only if n in ports]
        self.timed("reapply", lambda: self._activate(order))
        self.timed("wait", lambda: self.wait_configured(ifaces))

    def diagnostics(self) -> str:
        log_ = self.sandbox.log_tail("NetworkManager")
        return f"{super().diagnostics()}\nNetworkManager log:\n{log_}"


STACKS: dict[str, type[Stack]] = {
    s.name: s
    for s in (IfupdownStack, Ifupdown2Stack, NetworkdStack, NetworkManagerStack, NetplanStack)
}


@contextlib.contextmanager
def running_stack(
    topology: Topology,
    workdir: Path,
    stack: str | type[Stack],
    ifaces: Sequence[Iface] = DEFAULT_IFACES,
) -> Iterator[Stack]:
    """Sandbox + stack with ``ifaces`` written, started and up. Raises ``HarnessError`` if the
    stack is unavailable (callers decide skip or fail)."""
    cls = STACKS[stack] if isinstance(stack, str) else stack
    if (why := cls.missing()) is not None:
        raise HarnessError(why)
    with HostSandbox.open(topology.host, workdir) as box:
        s = cls(box)
        s.prepare()
        s.write(ifaces)
        s.start()
        s.up(ifaces)
        yield s


def main(argv: Sequence[str]) -> int:
    """``python -m tests.netns.stacks prepare-ifupdown2 [DIR]``"""
    if len(argv) >= 1 and argv[0] == "prepare-ifupdown2":
        print(prepare_ifupdown2(Path(argv[1]) if len(argv) > 1 else None))
        return 0
    print(main.__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
