# SPDX-License-Identifier: GPL-3.0-or-later
"""Simulated fleet hosts for real ``ansible-playbook`` runs (tests/fleet, scripts/fleet-test,
scripts/fleet-bench).

Each host is a network namespace ``nctf-<tag>-h<i>`` whose processes share one private mount
namespace (the one ``ip netns exec`` gives them): its own ``/etc/network`` (a bind of the host's
directory), a fresh tmpfs on ``/run`` (ifupdown's state, the daemon's control socket, sshd's
privilege-separation directory), real ifupdown bringing up ``mgmt0`` (a veth whose peer sits on a
bridge in the controller namespace), the real ``netcfg-txnd`` with its default control socket, and
Debian's ``sshd`` on the management address. The controller is a namespace of its own
(``nctf-<tag>-c``), so nothing is added to the machine's own interfaces or routes; ansible-playbook
runs there. Addresses come from the benchmarking range 198.18.0.0/15. Everything is torn down in
``finally``: every process in our namespaces is killed (their mounts die with them), then the
namespaces are deleted.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
COLLECTIONS = REPO / "packaging"
VENV_BIN = Path(sys.executable).parent
NETWORK = "198.18.0.0/16"
CONTROLLER_ADDR = "198.18.0.1"
SSHD = "/usr/sbin/sshd"
SFTP = "/usr/lib/openssh/sftp-server"
TOOLS = ("ip", "ssh", "ssh-keygen", "nsenter", "ifup", "ifdown", "ping", SSHD)


def why_not() -> str | None:
    """Why the fleet tier cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (network and mount namespaces)"
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        return f"needs {', '.join(missing)} (openssh-server, openssh-client, ifupdown, iproute2)"
    if not (VENV_BIN / "ansible-playbook").exists():
        return f"needs ansible-core in the test venv ({VENV_BIN}/ansible-playbook)"
    return None


def host_addr(i: int) -> str:
    return f"198.18.{1 + i // 250}.{1 + i % 250}"


def cut_addr(i: int) -> str:
    """An address the controller cannot reach: the same host moved off the management network."""
    return f"198.19.{1 + i // 250}.{1 + i % 250}"


def _run(argv: Sequence[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    kw.setdefault("capture_output", True)
    kw.setdefault("check", True)
    return subprocess.run(list(argv), text=True, **kw)


def mgmt_stanza(addr: str, mtu: int = 1500) -> str:
    # the MTU is explicit so that a rollback's ifup sets it back (ifupdown leaves it otherwise)
    return f"auto mgmt0\niface mgmt0 inet static\n    address {addr}/16\n    mtu {mtu}\n"


HOST_SCRIPT = r"""set -e
D=$1
mount --bind "$D/etc/network" /etc/network
# root's shell setup on this machine (e.g. a pyenv rehash waiting 60 s on a stale lock before
# every ssh command) is no part of a simulated host
if [ -f /root/.bashrc ]; then mount --bind /dev/null /root/.bashrc; fi
mount -t tmpfs -o mode=0755 nctf-run /run
mkdir -p /run/network /run/sshd /run/netcfg-txn
chmod 0700 /run/netcfg-txn
ip link set lo up
ifup -a >"$D/ifup.log" 2>&1
"$PYTHON" -m netcfg_txn.daemon --config "$D/netcfg-txn.toml" >"$D/daemon.log" 2>&1 &
# sshd only listens once the daemon serves: a host that answers ssh is a ready host
n=0
while [ ! -S /run/netcfg-txn/control ]; do
  n=$((n + 1)); [ $n -lt 600 ] || { echo "daemon not ready" >&2; exit 1; }
  kill -0 $! 2>/dev/null || { echo "daemon died" >&2; exit 1; }
  sleep 0.1
done
exec "$SSHD" -D -e -f "$D/sshd_config" 2>>"$D/sshd.log"
"""


@dataclass
class Host:
    index: int
    ns: str
    dir: Path
    proc: subprocess.Popen[str] | None = None

    @property
    def name(self) -> str:
        return f"h{self.index}"

    @property
    def addr(self) -> str:
        return host_addr(self.index)

    @property
    def iface_file(self) -> Path:
        return self.dir / "etc/network/interfaces.d/mgmt0"

    def enter(self, argv: Sequence[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        """Run argv inside the host (its network and its mount namespace, as sshd sees them)."""
        assert self.proc is not None
        env = dict(os.environ, PATH=f"{VENV_BIN}:/usr/sbin:/usr/bin:/sbin:/bin")
        return _run(["nsenter", "-t", str(self.proc.pid), "-m", "-n", *argv], env=env, **kw)

    def cli(self, *args: str) -> tuple[int, dict[str, Any]]:
        p = self.enter([str(VENV_BIN / "netcfg-txn"), "--json", *args], check=False, timeout=60)
        try:
            return p.returncode, json.loads(p.stdout)
        except json.JSONDecodeError:
            return p.returncode, {"ok": False, "raw": p.stdout + p.stderr}

    def status(self) -> dict[str, Any]:
        return self.cli("status")[1]

    def live_addrs(self) -> list[str]:
        out = _run(["ip", "-n", self.ns, "-j", "addr", "show", "dev", "mgmt0"]).stdout
        return [a["local"] for link in json.loads(out) for a in link.get("addr_info", [])]

    def mtu(self) -> int:
        out = _run(["ip", "-n", self.ns, "-j", "link", "show", "dev", "mgmt0"]).stdout
        return int(json.loads(out)[0]["mtu"])

    def rss_kib(self) -> int:
        """Resident memory of everything running in this host (daemon, sshd, sessions)."""
        pids = _run(["ip", "netns", "pids", self.ns], check=False).stdout.split()
        total = 0
        for pid in pids:
            with contextlib.suppress(OSError, ValueError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        return total


@dataclass
class Fleet:
    workdir: Path
    n: int
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:5])
    timer_default: str = "60s"
    hosts: list[Host] = field(default_factory=list)

    @property
    def ctl(self) -> str:
        return f"nctf-{self.tag}-c"

    @property
    def key(self) -> Path:
        return self.workdir / "ssh/id_ed25519"

    # ------------------------------------------------------------------------------ building

    def build(self) -> None:
        made_ns: list[str] = []
        self._made_ns = made_ns
        _run(["ip", "netns", "add", self.ctl])
        made_ns.append(self.ctl)
        _run(["ip", "-n", self.ctl, "link", "set", "lo", "up"])
        _run(["ip", "-n", self.ctl, "link", "add", "br0", "type", "bridge"])
        _run(["ip", "-n", self.ctl, "link", "set", "br0", "up"])
        _run(["ip", "-n", self.ctl, "addr", "add", f"{CONTROLLER_ADDR}/16", "dev", "br0"])
        ssh = self.workdir / "ssh"
        ssh.mkdir(parents=True, mode=0o700)
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.key)])
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(ssh / "hostkey")])
        shutil.copy(ssh / "id_ed25519.pub", ssh / "authorized_keys")
        (self.workdir / "cp").mkdir()
        for i in range(self.n):
            host = Host(i, f"nctf-{self.tag}-h{i}", self.workdir / f"h{i}")
            _run(["ip", "netns", "add", host.ns])
            made_ns.append(host.ns)
            _run(["ip", "-n", host.ns, "link", "add", "mgmt0", "type", "veth", "peer", "name",
                  f"h{i}", "netns", self.ctl])  # fmt: skip
            _run(["ip", "-n", self.ctl, "link", "set", f"h{i}", "master", "br0", "up"])
            self._write_host(host)
            self.hosts.append(host)
        for host in self.hosts:
            env = dict(os.environ, PYTHON=sys.executable, SSHD=SSHD)
            log = open(host.dir / "host.log", "w")  # noqa: SIM115 - the child owns it
            host.proc = subprocess.Popen(
                ["ip", "netns", "exec", host.ns, "sh", "-c", HOST_SCRIPT, "host", str(host.dir)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                text=True, start_new_session=True,
            )  # fmt: skip
        self.wait_ssh([h.addr for h in self.hosts], timeout_s=120 + 2 * self.n)

    def _write_host(self, host: Host) -> None:
        d = host.dir
        net = d / "etc/network"
        for sub in ("interfaces.d", "if-up.d", "if-down.d", "if-pre-up.d", "if-post-down.d"):
            (net / sub).mkdir(parents=True)
        (net / "interfaces").write_text(
            "auto lo\niface lo inet loopback\n\nsource /etc/network/interfaces.d/*\n"
        )
        host.iface_file.write_text(mgmt_stanza(host.addr))
        (d / "state").mkdir(mode=0o700)
        (d / "netcfg-txn.toml").write_text(
            f'[files]\npresets = ["ifupdown"]\n[timer]\ndefault = "{self.timer_default}"\n'
            f'[state]\ndir = "{d}/state"\n[apply]\nbackend = "ifupdown"\n'
        )
        ssh = self.workdir / "ssh"
        (d / "sshd_config").write_text(
            f"ListenAddress {host.addr}\nHostKey {ssh}/hostkey\nPidFile none\n"
            f"AuthorizedKeysFile {ssh}/authorized_keys\nPermitRootLogin prohibit-password\n"
            "UsePAM no\nStrictModes no\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\n"
            f"Subsystem sftp {SFTP}\nSetEnv PATH={VENV_BIN}:/usr/sbin:/usr/bin:/sbin:/bin\n"
            "MaxStartups 100:30:200\nMaxSessions 50\nClientAliveInterval 5\nLogLevel ERROR\n"
        )

    def wait_ssh(self, addrs: Sequence[str], timeout_s: float) -> None:
        """Wait (in the controller namespace) until every address accepts TCP on port 22."""
        probe = (
            "import socket,sys,time\n"
            "left=set(sys.argv[2:]); end=time.monotonic()+float(sys.argv[1])\n"
            "while left and time.monotonic()<end:\n"
            "  for a in list(left):\n"
            "    try: socket.create_connection((a,22),timeout=0.5).close(); left.discard(a)\n"
            "    except OSError: pass\n"
            "  if left: time.sleep(0.2)\n"
            "print(' '.join(sorted(left))); sys.exit(1 if left else 0)\n"
        )
        p = self.ctl_run([sys.executable, "-c", probe, str(timeout_s), *addrs], check=False,
                         timeout=timeout_s + 30)  # fmt: skip
        if p.returncode != 0:
            logs = "\n".join(
                f"{h.name}: {(h.dir / 'host.log').read_text()[-400:]}"
                for h in self.hosts
                if h.addr in p.stdout.split()
            )
            raise RuntimeError(f"hosts not answering ssh after {timeout_s:g}s: {p.stdout}\n{logs}")

    # ----------------------------------------------------------------------------- controller

    def ctl_run(self, argv: Sequence[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        return _run(["ip", "netns", "exec", self.ctl, *argv], **kw)

    def ping(self, addr: str) -> bool:
        return self.ctl_run(["ping", "-c1", "-W1", addr], check=False).returncode == 0

    def inventory(self, path: Path, hosts: Sequence[Host] | None = None) -> Path:
        lines = ["[fleet]"]
        for h in hosts if hosts is not None else self.hosts:
            lines.append(f"{h.name} ansible_host={h.addr} nctf_index={h.index}")
        lines += [
            "",
            "[fleet:vars]",
            "ansible_user=root",
            f"ansible_ssh_private_key_file={self.key}",
            "ansible_python_interpreter=/usr/bin/python3",
        ]
        path.write_text("\n".join(lines) + "\n")
        return path

    def ansible_env(self, forks: int | None = None) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            PATH=f"{VENV_BIN}:{env.get('PATH', '/usr/bin:/bin')}",
            ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS),
            ANSIBLE_HOST_KEY_CHECKING="False",
            ANSIBLE_PIPELINING="True",
            ANSIBLE_FORKS=str(forks or max(5, self.n)),
            # a new SSH connection to a busy host (sshd re-execs, key exchange) on a loaded machine
            ANSIBLE_TIMEOUT="15",
            ANSIBLE_RETRY_FILES_ENABLED="False",
            ANSIBLE_NOCOLOR="1",
            ANSIBLE_LOCAL_TEMP=str(self.workdir / "ansible-tmp"),
            ANSIBLE_HOME=str(self.workdir / "ansible-home"),
            ANSIBLE_SSH_CONTROL_PATH_DIR=str(self.workdir / "cp"),
            # the hosts share the machine's /root: keep their job files and temp dirs in ours
            ANSIBLE_ASYNC_DIR=str(self.workdir / "async"),
            ANSIBLE_REMOTE_TMP=str(self.workdir / "remote-tmp"),
            ANSIBLE_SSH_ARGS=(
                "-o ControlMaster=auto -o ControlPersist=120s -o UserKnownHostsFile=/dev/null "
                "-o StrictHostKeyChecking=no -o BatchMode=yes "
                "-o ServerAliveInterval=2 -o ServerAliveCountMax=3"
            ),
            ANSIBLE_CALLBACK_RESULT_FORMAT="yaml",
        )
        env.pop("ANSIBLE_CONFIG", None)
        return env

    def playbook(
        self, playbook: Path, inventory: Path, *extra: str, timeout_s: float = 600
    ) -> subprocess.CompletedProcess[str]:
        return self.ctl_run(
            [str(VENV_BIN / "ansible-playbook"), "-i", str(inventory), str(playbook), *extra],
            env=self.ansible_env(), check=False, timeout=timeout_s,
        )  # fmt: skip

    def playbook_popen(self, playbook: Path, inventory: Path, *extra: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            ["ip", "netns", "exec", self.ctl, str(VENV_BIN / "ansible-playbook"), "-i",
             str(inventory), str(playbook), *extra],
            env=self.ansible_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True,
        )  # fmt: skip

    # ------------------------------------------------------------------------------- teardown

    def destroy(self) -> None:
        for ns in reversed(getattr(self, "_made_ns", [])):
            for _ in range(3):
                pids = _run(["ip", "netns", "pids", ns], check=False).stdout.split()
                if not pids:
                    break
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError, ValueError):
                        os.kill(int(pid), signal.SIGKILL)
                time.sleep(0.1)
        for h in self.hosts:
            if h.proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    h.proc.wait(timeout=10)
        for ns in reversed(getattr(self, "_made_ns", [])):
            _run(["ip", "netns", "del", ns], check=False)


@contextlib.contextmanager
def fleet(workdir: Path, n: int, **kw: Any) -> Iterator[Fleet]:
    f = Fleet(workdir, n, **kw)
    try:
        f.build()
        yield f
    finally:
        f.destroy()


def wait_until(what: str, cond: Callable[[], bool], timeout_s: float, every_s: float = 0.5) -> None:
    end = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout_s:g}s waiting for {what}")
        time.sleep(every_s)
