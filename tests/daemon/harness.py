# SPDX-License-Identifier: GPL-3.0-or-later
"""The real daemon and the real CLI in a temp root: start ``netcfg-txnd`` on a socket under the
test's directory, wait until it accepts, drive it with ``netcfg-txn``, and kill it by its pid.

Both run with ``sys.executable`` (``-m netcfg_txn.daemon`` / ``-m netcfg_txn``), so the suite on
the Debian-12 dependency floor tests the floor's aiohttp and click.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from netcfg_txn import client
from netcfg_txn.core.errors import NetcfgTxnError

FILES = {
    "etc/network/interfaces": "auto lo\niface lo inet loopback\nsource interfaces.d/*\n",
    "etc/network/interfaces.d/eth0": "auto eth0\niface eth0 inet dhcp\n",
    "etc/network/interfaces.d/eth1": "iface eth1 inet static\n    address 192.0.2.1/24\n",
    "etc/network/interfaces.d/br0": "iface br0 inet manual\n    bridge_ports none\n",
}

BASE_CONFIG = """\
[files]
presets = ["ifupdown"]
[timer]
default = "10m"  # long: a loaded machine must not expire what a test did not mean to
min = "1s"
max = "1h"
[state]
lock_timeout = "5s"
"""


def config(command: str = "") -> str:
    """The test config; ``command`` is the [apply] hook. Backend "none": never a stack's tools
    (they would act on the host's real configuration)."""
    return BASE_CONFIG + f'[apply]\nbackend = "none"\ncommand = {json.dumps(command)}\n'


@dataclasses.dataclass
class Result:
    rc: int
    out: str
    err: str

    @property
    def doc(self) -> Any:
        """stdout as exactly one JSON document (raises if it is anything else)."""
        return json.loads(self.out)


@dataclasses.dataclass
class Daemon:
    base: Path
    root: Path
    state: Path
    config: Path
    socket: Path
    log: Path
    wrapper: Sequence[str] = ()
    proc: subprocess.Popen[bytes] | None = None

    # ------------------------------------------------------------------------------ process

    def argv(self) -> list[str]:
        return [*self.wrapper, sys.executable, "-m", "netcfg_txn.daemon", "--root", str(self.root),
                "--config", str(self.config), "--state-dir", str(self.state), "--socket",
                str(self.socket), "--log-level", "DEBUG"]  # fmt: skip

    def start(self, *, wait: bool = True, timeout_s: float = 60.0) -> Daemon:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.argv(), stdout=log, stderr=log,
                                         stdin=subprocess.DEVNULL)  # fmt: skip
        if wait:
            self.wait_ready(timeout_s)
        return self

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        """READY = the control socket accepts and answers."""
        end = time.monotonic() + timeout_s
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"netcfg-txnd exited with {self.proc.returncode}:\n{self.log_text()}"
                )
            with contextlib.suppress(NetcfgTxnError, OSError):
                client.call(str(self.socket), "GET", "/v1/version", timeout_s=2)
                return
            if time.monotonic() > end:
                raise AssertionError(f"netcfg-txnd not ready in {timeout_s}s:\n{self.log_text()}")
            time.sleep(0.02)

    @property
    def pid(self) -> int:
        """The daemon's own pid (the child of a wrapper such as strace, if any)."""
        assert self.proc is not None
        if not self.wrapper:
            return self.proc.pid
        import psutil

        end = time.monotonic() + 10
        while time.monotonic() < end:
            with contextlib.suppress(psutil.Error):  # a wrapper that exec()s the daemon
                argv = psutil.Process(self.proc.pid).cmdline()
                # strace's own argv names the daemon too: only a process running Python counts
                if argv and argv[0] != self.wrapper[0] and "netcfg_txn.daemon" in " ".join(argv):
                    return self.proc.pid
            for ch in psutil.Process(self.proc.pid).children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    if "netcfg_txn.daemon" in " ".join(ch.cmdline()):
                        return ch.pid
            time.sleep(0.02)
        raise AssertionError("daemon process not found under its wrapper")

    def kill(self) -> None:
        """SIGKILL the daemon (a crash), then reap it (and its wrapper)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        self.reap()

    def stop(self) -> int | None:
        """SIGTERM: a clean stop."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        os.kill(self.pid, signal.SIGTERM)
        return self.reap()

    def reap(self, timeout_s: float = 15.0) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            # SIGKILL of a wrapper (strace -f) detaches the daemon and leaves it running: kill
            # every process under the wrapper first.
            import psutil

            with contextlib.suppress(psutil.Error):
                for ch in psutil.Process(self.proc.pid).children(recursive=True):
                    with contextlib.suppress(psutil.Error):
                        ch.kill()
            self.proc.kill()
            return self.proc.wait(5)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-4000:]
        except FileNotFoundError:
            return ""

    # ------------------------------------------------------------------------------- client

    def cli_argv(self, *args: str, as_json: bool = True) -> list[str]:
        return [sys.executable, "-m", "netcfg_txn", "--socket", str(self.socket),
                "--root", str(self.root), "--state-dir", str(self.state), "--config",
                str(self.config), *(["--json"] if as_json else []), *args]  # fmt: skip

    def cli(self, *args: str, as_json: bool = True, timeout_s: float = 60.0) -> Result:
        p = subprocess.run(self.cli_argv(*args, as_json=as_json), capture_output=True,
                           text=True, timeout=timeout_s, stdin=subprocess.DEVNULL)  # fmt: skip
        return Result(p.returncode, p.stdout, p.stderr)

    def cli_popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(self.cli_argv(*args), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True,
                                stdin=subprocess.DEVNULL)  # fmt: skip

    def api(
        self, method: str, path: str, body: dict[str, Any] | None = None, token: str | None = None
    ) -> dict[str, Any]:
        return client.call(str(self.socket), method, path, body, token=token, timeout_s=30)

    # -------------------------------------------------------------------------- the files

    def path(self, rel: str) -> Path:
        return self.root / rel

    def files(self) -> dict[str, bytes]:
        out = {}
        for dirpath, _dirs, names in os.walk(self.root):
            for n in names:
                p = Path(dirpath) / n
                out[str(p.relative_to(self.root))] = (
                    b"->" + os.readlink(p).encode() if p.is_symlink() else p.read_bytes()
                )
        return out

    def state_digest(self) -> dict[str, str]:
        """Every file of the state dir (but the lock) with a hash of its bytes and its mtime."""
        out = {}
        for dirpath, _dirs, names in os.walk(self.state):
            for n in names:
                p = Path(dirpath) / n
                if n == "daemon.lock":
                    continue
                st = p.stat()
                out[str(p.relative_to(self.state))] = (
                    hashlib.sha256(p.read_bytes()).hexdigest() + f" {st.st_mtime_ns}"
                )
        return out

    def txn_json(self) -> dict[str, Any] | None:
        try:
            return json.loads((self.state / "txn.json").read_bytes())  # type: ignore[no-any-return]
        except FileNotFoundError:
            return None

    def history(self) -> list[dict[str, Any]]:
        """Newest first, read offline (works whether or not the daemon runs)."""
        out = []
        hdir = self.state / "history"
        if not hdir.exists():
            return []
        for p in sorted(hdir.glob("*.json"), reverse=True):
            if not p.name.startswith("."):
                out.append(json.loads(p.read_bytes()))
        return out

    def wait_idle(self, timeout_s: float = 15.0) -> float:
        """Poll the state dir until no transaction is recorded; returns the time.time() seen."""
        end = time.monotonic() + timeout_s
        while (self.state / "txn.json").exists():
            if time.monotonic() > end:
                raise AssertionError(f"still not idle after {timeout_s}s:\n{self.log_text()}")
            time.sleep(0.02)
        return time.time()


def make(base: Path, toml: str | None = None, *, wrapper: Sequence[str] = ()) -> Daemon:
    base.mkdir(parents=True, exist_ok=True)
    root = base / "root"
    for rel, text in FILES.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    cfg = base / "netcfg-txn.toml"
    cfg.write_text(config() if toml is None else toml)
    return Daemon(base, root, base / "state", cfg, base / "ctl.sock", base / "daemon.log",
                  tuple(wrapper))  # fmt: skip


@contextlib.contextmanager
def running(base: Path, toml: str | None = None, **kw: Any) -> Iterator[Daemon]:
    d = make(base, toml, **kw)
    try:
        d.start()
        yield d
    finally:
        d.kill()
