# SPDX-License-Identifier: GPL-3.0-or-later
"""A host namespace running the real netcfg-txnd with its TLS listener, and a peer namespace
calling it with RemoteClient, joined by veth (RFC 5737 addresses, our namespaces only).

The managed "network config" of a host is ``/etc/nct/addr.conf`` under its fake root: the address
of its uplink. The ``[apply] command`` hook re-applies that file to the link, so a rollback really
restores the network, and a change of the file (followed by ``host.apply()``) really changes it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from netcfg_txn.remote.peers import add_peer
from tests import nslab
from tests.pki import Pki, make_pki
from tests.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": f"{REPO / 'agent'}:{REPO}", "PYTHONDONTWRITEBYTECODE": "1"}
PORT = 7468
PEERS_DIR = "/etc/netcfg-txn/peers.d"


CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_namespaces() -> None:
    """Skip with the reason; under CI=true fail instead (CI runs as root with iproute2)."""
    if (why := nslab.why_not()) is not None:
        if CI:
            pytest.fail(f"remote tier cannot run (CI=true forbids skipping): {why}", pytrace=False)
        pytest.skip(why)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/remote/" in str(item.fspath):
            item.add_marker(pytest.mark.netns)


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@dataclasses.dataclass
class Host:
    ns: str
    dev: str
    addr: str  # uplink address with prefix, e.g. 192.0.2.1/24
    dir: Path
    pki: Pki
    proc: subprocess.Popen[str] | None = None

    @property
    def root(self) -> Path:
        return self.dir / "root"

    @property
    def sock(self) -> Path:
        return self.dir / "control"

    @property
    def ip(self) -> str:
        return self.addr.split("/")[0]

    def write(self, rel: str, text: str) -> None:
        p = self.root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)

    def read(self, rel: str) -> str:
        return (self.root / rel).read_text()

    def apply(self) -> None:
        """What an admin does after editing: make the live network match the files."""
        nslab.ns_exec(self.ns, ["sh", str(self.dir / "apply.sh")], check=True, capture_output=True)

    def local(self, *args: str) -> dict[str, Any]:
        """``netcfg-txn --json …`` as local root over the control socket."""
        out = nslab.ns_exec(
            self.ns,
            [sys.executable, "-m", "netcfg_txn", "--socket", str(self.sock), "--json", *args],
            capture_output=True,
            env=ENV,
            timeout=60,
        )
        doc: dict[str, Any] = json.loads(out.stdout)
        return doc

    def state(self) -> tuple[Any, ...]:
        """What must not change when a request is refused."""
        st = self.local("status")
        t = st.get("transaction") or {}
        return (
            t.get("id"),
            t.get("phase"),
            t.get("deadline_wall_s"),
            self.read("etc/nct/addr.conf"),
        )

    def add_peer(self, name: str, **kw: Any) -> str:
        return add_peer(Path(PEERS_DIR), name, root=self.root, **kw)

    def configure(self, extra: str = "", timeout: str = "30s") -> None:
        tls = self.root / "etc/netcfg-txn/tls"
        tls.mkdir(parents=True, exist_ok=True)
        (tls / "cert.pem").write_bytes(self.pki.server_cert.read_bytes())
        (tls / "key.pem").write_bytes(self.pki.server_key.read_bytes())
        (tls / "key.pem").chmod(0o600)
        (tls / "client-ca.pem").write_bytes(self.pki.ca.read_bytes())
        (self.dir / "apply.sh").write_text(
            f"ip addr flush dev {self.dev} scope global\n"
            f"ip addr add $(cat {self.root}/etc/nct/addr.conf) dev {self.dev}\n"
        )
        (self.dir / "netcfg-txn.toml").write_text(
            f"""
[files]
presets = []
include = ["/etc/nct/*.conf"]
[timer]
default = "{timeout}"
min = "1s"
[state]
dir = "{self.dir / "state"}"
[apply]
backend = "none"
command = "sh {self.dir / "apply.sh"}"
[remote]
listen = ["0.0.0.0:{PORT}"]
tls_cert = "/etc/netcfg-txn/tls/cert.pem"
tls_key = "/etc/netcfg-txn/tls/key.pem"
peers_dir = "{PEERS_DIR}"
{extra}
"""
        )

    def start_daemon(self) -> None:
        log = open(self.dir / "daemon.log", "a")  # noqa: SIM115
        self.proc = nslab.ns_popen(
            self.ns,
            [
                sys.executable,
                "-m",
                "netcfg_txn.daemon",
                "--root",
                str(self.root),
                "--state-dir",
                str(self.dir / "state"),
                "--socket",
                str(self.sock),
                "--config",
                str(self.dir / "netcfg-txn.toml"),
                "--log-level",
                "DEBUG",
            ],
            env=ENV,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        proc = self.proc

        def up() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"daemon exited {proc.returncode}: {self.log()}")
            return self.sock.exists() and nslab.listening(self.ns, PORT)

        wait_for(up, "the daemon to serve its control socket and TLS port", 60, detail=self.log)

    def stop_daemon(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def log(self) -> str:
        return (self.dir / "daemon.log").read_text()[-4000:]


@dataclasses.dataclass
class Peer:
    ns: str
    pki: Pki

    def call(
        self,
        host: str,
        method: str,
        *args: Any,
        token: str | None = None,
        timeout_s: float = 3.0,
        **kwargs: Any,
    ) -> dict[str, Any]:
        client = {
            "host": host,
            "port": PORT,
            "ca_file": str(self.pki.ca),
            "peer_token": token,
            "timeout_s": timeout_s,
        }
        client.update(kwargs.pop("client", {}))
        spec = {"client": client, "method": method, "args": list(args), "kwargs": kwargs}
        out = nslab.ns_exec(
            self.ns,
            [sys.executable, str(REPO / "tests/remote/peer_call.py"), json.dumps(spec)],
            capture_output=True,
            env=ENV,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr
        doc: dict[str, Any] = json.loads(out.stdout)
        return doc


@dataclasses.dataclass
class Lab:
    host: Host
    peer: Peer
    token: str  # the peer's credential


def wait_peer(lab: Lab, token: str, *, known: bool = True) -> None:
    """The daemon re-reads peers.d at most once a second: wait until it answers ``status`` for
    a peer just added (or refuses one just revoked). A refused try spends one of the source's
    auth failures (30 a minute by default): a handful at most."""
    state = "known" if known else "revoked"
    wait_for(
        lambda: lab.peer.call(lab.host.ip, "status", token=token)["ok"] is known,
        f"the daemon to see the peer as {state}",
        interval_s=0.2,
        detail=lab.host.log,
    )


@contextlib.contextmanager
def lab_for(tmp_path: Path, pki: Pki, extra: str = "", timeout: str = "30s") -> Iterator[Lab]:
    require_namespaces()
    with nslab.namespaces("host", "peer") as ns:
        nslab.veth(ns["host"], "h0", ns["peer"], "p0")
        nslab.ip("-n", ns["peer"], "addr", "add", "192.0.2.2/24", "dev", "p0")
        host = Host(ns["host"], "h0", "192.0.2.1/24", tmp_path / "host", pki)
        host.dir.mkdir()
        host.write("etc/nct/addr.conf", host.addr + "\n")
        host.configure(extra, timeout)
        host.apply()
        token = host.add_peer("orch1")
        host.start_daemon()
        try:
            yield Lab(host, Peer(ns["peer"], pki), token)
        finally:
            host.stop_daemon()


@pytest.fixture
def lab(tmp_path: Path, pki: Pki) -> Iterator[Lab]:
    with lab_for(tmp_path, pki, extra="[probes]\nsettle_s = 0.2\ninterval_s = 0.2") as lab:
        yield lab
