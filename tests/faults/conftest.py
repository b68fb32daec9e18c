# SPDX-License-Identifier: GPL-3.0-or-later
"""Fault tier: the real netcfg-txnd under faults that must never cost an open transaction its
rollback (fd exhaustion by a TLS flood, a removed listen address, bad peer/TLS files, read errors
on the transaction record). Every case checks the same promise: the rollback runs within 1 s of
the deadline, every managed file is restored, and history and the journal say rolled-back/timeout.

The daemon's journal goes to a fake journald: the daemon runs in a private mount namespace whose
/run is a tmpfs, with /run/systemd/journal/socket a symlink to a datagram socket this test reads
(the native protocol, as tests/journal does). Needs root; network cases use our own namespaces.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.daemon.harness import Daemon, make
from tests.journald import Journal as Journal  # re-exported: the tier's tests import it here
from tests.pki import Pki, make_pki

REPO = Path(__file__).resolve().parents[2]
CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
ENV = {**os.environ, "PYTHONPATH": f"{REPO / 'agent'}:{REPO}", "PYTHONDONTWRITEBYTECODE": "1"}
PORT = 7468
PEERS_DIR = "/etc/netcfg-txn/peers.d"

MSG_ROLLED_BACK = "2c0bdd571b3042f98ef9658d2325167b"
MSG_OPTIONAL_FAILED = "64f9f332b1fb4477a73ac9df17a911e2"
MSG_DEADLINE_RETRY = "dd461dad8cb74940935a1905bd1e4c4a"

# Each case prints its measured deadline latency; collected here for the summary line.
LATENCIES: dict[str, float] = {}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/faults/" in str(item.fspath):
            item.add_marker(pytest.mark.faults)
            item.add_marker(pytest.mark.timeout(300))  # a loaded 2-core CI box, namespaces, TLS


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if LATENCIES:
        terminalreporter.write_line(
            "fault tier, deadline latency: "
            + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in sorted(LATENCIES.items()))
        )


def need(*tools: str) -> None:
    """Skip (or fail under CI=true) when not root or a tool is missing."""
    why = None
    if os.geteuid() != 0:
        why = "needs root (namespaces, the root-only control socket, ptrace)"
    else:
        missing = [t for t in tools if shutil.which(t) is None]
        if missing:
            why = f"needs {', '.join(missing)}"
    if why is not None:
        if CI:
            pytest.fail(f"fault tier cannot run (CI=true forbids skipping): {why}")
        pytest.skip(why)


def unit_nofile() -> int:
    """The soft RLIMIT_NOFILE the shipped unit gives the daemon (systemd's default soft limit,
    1024, when the unit sets none)."""
    text = (REPO / "units/netcfg-txnd.service").read_text()
    m = re.search(r"^LimitNOFILE=(\d+)(?::\d+)?\s*$", text, re.M)
    return int(m.group(1)) if m else 1024


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    j = Journal(tmp_path / "journal.sock")
    try:
        yield j
    finally:
        j.close()


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    need("openssl")
    return make_pki(tmp_path_factory.mktemp("pki"))


# ------------------------------------------------------------------------------ the daemon


def remote_toml(listen: str, extra_files: str = "", apply: str = "") -> str:
    return f"""\
[files]
{extra_files or 'presets = ["ifupdown"]'}
[timer]
default = "6s"
max = "1h"
[state]
lock_timeout = "5s"
[apply]
backend = "none"
command = {json.dumps(apply)}
[remote]
listen = ["{listen}"]
tls_cert = "/etc/netcfg-txn/tls/cert.pem"
tls_key = "/etc/netcfg-txn/tls/key.pem"
peers_dir = "{PEERS_DIR}"
"""


def install_tls(d: Daemon, pki: Pki) -> None:
    tls = d.root / "etc/netcfg-txn/tls"
    tls.mkdir(parents=True, exist_ok=True)
    (tls / "cert.pem").write_bytes(pki.server_cert.read_bytes())
    (tls / "key.pem").write_bytes(pki.server_key.read_bytes())
    (tls / "key.pem").chmod(0o600)


def add_peer(d: Daemon, name: str) -> str:
    from netcfg_txn.remote.peers import add_peer as _add

    return _add(Path(PEERS_DIR), name, root=d.root)


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    """``spawn(toml, wrapper=[...])`` → a Daemon (not started) over a fresh temp root."""
    made: list[Daemon] = []

    def _spawn(toml: str | None = None, *, wrapper: list[str] | None = None) -> Daemon:
        d = make(tmp_path / f"d{len(made)}", toml, wrapper=wrapper or ())
        made.append(d)
        return d

    try:
        yield _spawn
    finally:
        for d in made:
            d.kill()


def edit(d: Daemon) -> None:
    """Change one managed file, delete one, add one."""
    d.path("etc/network/interfaces.d/eth0").write_text("auto eth0\niface eth0 inet static\n")
    d.path("etc/network/interfaces.d/eth1").unlink()
    d.path("etc/network/interfaces.d/eth9").write_text("iface eth9 inet manual\n")


def start_txn(d: Daemon, timeout: str) -> tuple[str, float]:
    r = d.cli("start", "--timeout", timeout)
    assert r.rc == 0, f"start failed: {r.err}\n{d.log_text()}"
    t = r.doc["transaction"]
    return t["id"], float(t["deadline_wall_s"])


def restart(d: Daemon) -> None:
    """SIGKILL and start again (what systemd does after a crash); it must come up."""
    d.kill()
    d.start(timeout_s=30)


def assert_rolled_back_at_deadline(
    d: Daemon,
    journal: Journal,
    case: str,
    txn_id: str,
    deadline: float,
    before: dict[str, bytes],
    *,
    wait_s: float = 20.0,
) -> float:
    """The promise: rolled back within 1 s of the deadline, every file restored, and history and
    the journal say so (outcome rolled-back, cause timeout). Returns the latency."""
    d.wait_idle(max(0.0, deadline - time.time()) + wait_s)
    last = d.history()[0]["txn"]
    assert (last["id"], last["phase"], last["reason"]) == (txn_id, "rolled-back", "timeout"), last
    latency = float(last["ended_wall_s"]) - deadline
    LATENCIES[case] = latency
    print(f"{case}: rollback {latency * 1000:.0f} ms after the deadline")
    assert -0.05 <= latency < 1.0, f"{case}: rollback {latency:.2f}s after the deadline"
    assert managed(d.files()) == managed(before)
    entry = journal.wait_for(MESSAGE_ID=MSG_ROLLED_BACK, TXN_ID=txn_id)
    assert (entry["PHASE"], entry["REASON"]) == ("rolled-back", "timeout"), entry
    return latency


def managed(files: dict[str, bytes]) -> dict[str, bytes]:
    """The managed files of the fake root (not our own config, TLS files and peers.d)."""
    return {k: v for k, v in files.items() if not k.startswith("etc/netcfg-txn/")}


def ns_python(ns: str, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", "netns", "exec", ns, sys.executable, *args],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=60,
        **kw,
    )


def remote_call(
    ns: str, pki: Pki, host: str, token: str, method: str, *args: Any
) -> dict[str, Any]:
    """One RemoteClient call from inside namespace ``ns`` (tests/remote/peer_call.py)."""
    spec = {
        "client": {
            "host": host,
            "port": PORT,
            "ca_file": str(pki.ca),
            "peer_token": token,
            "timeout_s": 5.0,
        },  # fmt: skip
        "method": method,
        "args": list(args),
    }
    out = ns_python(ns, str(REPO / "tests/remote/peer_call.py"), json.dumps(spec))
    assert out.returncode == 0, out.stderr
    doc: dict[str, Any] = json.loads(out.stdout)
    return doc
