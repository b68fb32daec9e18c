# SPDX-License-Identifier: GPL-3.0-or-later
"""netcfg-txnd and the netcfg-txn CLI running *inside* a stack's sandbox, for end-to-end tests.

The daemon gets ``--root /`` (the sandbox's own /etc, overlaid and bind-mounted, see
``stacks.HostSandbox``) and ``[apply] backend = "<stack>"``, so a rollback drives that stack's
real tools (ifdown/ifup, networkctl, nmcli, netplan) on the test's namespaces only::

    with Topology.create() as topo, running_stack(topo, tmp_path / "box", "networkd") as stack:
        with AgentDaemon.run(stack, tmp_path / "agent") as agent:
            txn = agent.cli("start", "--timeout", "5s")["transaction"]
            ...
            ended = agent.wait_ended(txn["id"])
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from netcfg_txn import client
from netcfg_txn.core.errors import NetcfgTxnError
from tests.netns.stacks import AGENT_ENV, HarnessError, Stack, agent_command, wait_until

# Harness stack name -> ``[apply] backend``.
BACKENDS = {
    "ifupdown": "ifupdown",
    "ifupdown2": "ifupdown2",
    "networkd": "networkd",
    "NetworkManager": "networkmanager",
    "netplan": "netplan",
}


class AgentDaemon:
    def __init__(self, stack: Stack, workdir: Path, backend: str | None = None) -> None:
        self.stack = stack
        self.box = stack.sandbox
        self.workdir = workdir
        self.state = workdir / "state"
        self.sock = workdir / "control"
        self.config = workdir / "netcfg-txn.toml"
        self.backend = backend or BACKENDS[stack.name]
        self.env = {**AGENT_ENV, **stack.env()}

    @classmethod
    @contextlib.contextmanager
    def run(
        cls, stack: Stack, workdir: Path, backend: str | None = None, *, extra_config: str = ""
    ) -> Iterator[AgentDaemon]:
        """Start the daemon (the sandbox stops it by PID on close)."""
        agent = cls(stack, workdir, backend)
        agent.start(extra_config)
        yield agent

    def start(self, extra_config: str = "") -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        # No [files] presets: the default manages every preset's globs, right inside a sandbox.
        # [timer] min 1s: the expiry tests use a few seconds to keep the tier fast. It comes before
        # [apply], because extra_config's first lines are [apply] keys.
        timer = "" if "[timer]" in extra_config else '[timer]\nmin = "1s"\n'
        self.config.write_text(
            f'[state]\ndir = "{self.state}"\n{timer}[apply]\nbackend = "{self.backend}"\n'
            f"{extra_config}"
        )
        argv = agent_command(
            "netcfg-txnd",
            "--root",
            "/",
            "--state-dir",
            str(self.state),
            "--socket",
            str(self.sock),
            "--config",
            str(self.config),
            "--log-level",
            "debug",
        )
        self.proc = self.box.popen(argv, name="netcfg-txnd", env=self.env)

        def up() -> bool:
            if self.proc.poll() is not None:
                raise HarnessError(f"netcfg-txnd exited:\n{self.log()}")
            return self.sock.exists()

        wait_until("netcfg-txnd control socket", up, 15.0)

    def log(self, lines: int = 60) -> str:
        return self.box.log_tail("netcfg-txnd", lines)

    def cli(self, *args: str, check: bool = True) -> dict[str, Any]:
        """``netcfg-txn --json ARGS`` inside the sandbox; its one JSON document."""
        argv = agent_command("netcfg-txn", "--socket", str(self.sock), "--json", *args)
        p = self.box.run(argv, env=self.env, check=False, timeout_s=60.0)
        try:
            doc = json.loads(p.stdout)
        except ValueError:
            raise HarnessError(
                f"netcfg-txn {' '.join(args)}: no JSON ({p.returncode}):\n{p.stdout}\n{p.stderr}"
            ) from None
        if check and (p.returncode != 0 or not doc.get("ok", True)):
            raise HarnessError(f"netcfg-txn {' '.join(args)} failed ({p.returncode}): {doc}")
        if not isinstance(doc, dict):
            raise HarnessError(f"netcfg-txn {' '.join(args)}: not an object: {doc!r}")
        return doc

    def api(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """One request over the control socket from the test process (cheap enough to poll)."""
        return client.call(str(self.sock), method, path, dict(body) if body else None)

    def history_entry(self, txn_id: str) -> dict[str, Any] | None:
        try:
            doc = self.api("GET", "/v1/history?limit=5")
        except NetcfgTxnError:
            return None
        found = [h for h in doc["history"] if h["id"] == txn_id]
        return found[0] if found else None

    def wait_ended(self, txn_id: str, timeout_s: float = 30.0) -> dict[str, Any]:
        """Poll (every 20 ms, in-process) until the transaction is in the history."""
        try:
            return wait_until(f"{txn_id} in history", lambda: self.history_entry(txn_id), timeout_s)
        except HarnessError as e:
            raise HarnessError(f"{e}\nnetcfg-txnd log:\n{self.log()}") from None


def elapsed(t0: float) -> float:
    return time.monotonic() - t0
