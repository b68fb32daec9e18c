# SPDX-License-Identifier: GPL-3.0-or-later
"""Deadline → the changed interface answers a peer's ping again, per stack, real stacks.

Method (tests/netns/stacks.py harness). Host and peer namespaces joined by nct0 (192.0.2.1/24 ↔
192.0.2.2) and nct1 (198.51.100.1/24 ↔ 198.51.100.2), configured by the real stack (ifupdown,
ifupdown2, systemd-networkd, NetworkManager) inside a private mount namespace of the host
namespace; netcfg-txnd runs in that sandbox with ``--root /`` and ``[apply] backend`` = the stack.
Each repetition: ``start --timeout 5s``, move nct1 to 198.51.100.11/24 and apply it with the
stack's own tool, then the peer pings 198.51.100.1 every 2 ms (``ping -D``, wall-clock stamps)
while the timer expires and the daemon rolls back. The figure: first answered ping minus the
deadline recorded in the transaction (so the timer's own lateness counts), median of N.

Baselines, same sandbox and run. NetworkManager: its own checkpoint rollback of the same change —
``CheckpointCreate`` (all devices, rollback timeout 5 s) before the change, then nothing: the
first answered ping minus the checkpoint's deadline (its ``Created`` CLOCK_BOOTTIME stamp + the
timeout, in wall-clock time). The other stacks have no such mechanism: their baseline is the
stack's own tool putting the old config back by hand (old file written, then ``ifdown nct1;
ifup nct1`` / ``ifup nct1`` / ``networkctl reload; networkctl reconfigure nct1``), from the
instant the file is written — the floor for any rollback that uses the stack's tools.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchlib.common import REPO, Row, median, progress

STACK_NAMES = ("ifupdown", "ifupdown2", "networkd", "NetworkManager")
TIMEOUT_S = 5  # the transaction's (and the NM checkpoint's) timeout
ADDR = "198.51.100.1"  # nct1's address before the change: what the peer pings
TARGET_MS = 100.0
_REPLY = re.compile(r"^\[(\d+\.\d+)\] \d+ bytes from ")


class PeerPing:
    """``ping -D -i 0.002`` from the peer namespace; remembers the wall-clock time of each
    answer. Stopped by its PID."""

    def __init__(self, peer_ns: str, addr: str, interval_s: float = 0.002) -> None:
        argv = ["ip", "netns", "exec", peer_ns, "ping", "-D", "-n", "-W", "1"]
        self._proc = subprocess.Popen(
            [*argv, "-i", f"{interval_s:g}", addr],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.replies: list[float] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            if (m := _REPLY.match(line)) is not None:
                with self._cond:
                    self.replies.append(float(m.group(1)))
                    self._cond.notify_all()

    def first_after(self, wall_s: float, timeout_s: float) -> float | None:
        """The first answer stamped after ``wall_s``, waiting up to ``timeout_s``."""
        end = time.monotonic() + timeout_s
        with self._cond:
            while True:
                later = [r for r in self.replies if r > wall_s]
                if later:
                    return later[0]
                left = end - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)

    def stop(self) -> None:
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._reader.join(5)


@contextlib.contextmanager
def peer_ping(peer_ns: str) -> Iterator[PeerPing]:
    p = PeerPing(peer_ns, ADDR)
    try:
        yield p
    finally:
        p.stop()


def _busctl(box: Any, *args: str) -> Any:
    p = box.run(["busctl", "--system", "--json=short", *args])
    return json.loads(p.stdout)["data"]


def _nm_checkpoint_rep(stack: Any, peer: str, base: Any, changed: Any) -> float | None:
    """One repetition of NM's own checkpoint rollback: ms from its deadline to the answer."""
    box = stack.sandbox
    nm, nm_path = "org.freedesktop.NetworkManager", "/org/freedesktop/NetworkManager"
    (cp,) = _busctl(
        box, "call", nm, nm_path, nm, "CheckpointCreate", "aouu", "0", str(TIMEOUT_S), "0"
    )
    created_ms = _busctl(box, "get-property", nm, cp, f"{nm}.Checkpoint", "Created")
    due_boot = created_ms / 1e3 + TIMEOUT_S
    due_wall = time.time() - (time.clock_gettime(time.CLOCK_BOOTTIME) - due_boot)
    if not _change(stack, changed, due_wall):
        time.sleep(max(0.0, due_wall - time.time()) + 2)  # let NM's rollback run first
        _back_to_base(stack, base)
        return None
    with peer_ping(peer) as pp:
        first = pp.first_after(due_wall, TIMEOUT_S + 15)
    _back_to_base(stack, base)
    return None if first is None else (first - due_wall) * 1e3


class Daemon:
    """netcfg-txnd inside the stack's sandbox as on a host: the stack's preset, info logging."""

    def __init__(self, stack: Any, work: Path, backend: str, preset: str) -> None:
        from tests.netns.stacks import AGENT_ENV, agent_command, wait_until

        from netcfg_txn import client

        self._client = client
        work.mkdir(parents=True, exist_ok=True)
        self.sock = work / "control"
        cfg = work / "netcfg-txn.toml"
        cfg.write_text(
            f'[files]\npresets = ["{preset}"]\n[state]\ndir = "{work / "state"}"\n'
            f'[timer]\nmin = "1s"\ndefault = "1h"\n[apply]\nbackend = "{backend}"\n'
        )
        argv = ["netcfg-txnd", "--root", "/", "--socket", str(self.sock), "--config", str(cfg)]
        stack.sandbox.popen(
            agent_command(*argv), name="netcfg-txnd", env={**AGENT_ENV, **stack.env()}
        )
        wait_until("netcfg-txnd control socket", self.sock.exists, 30)

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        return self._client.call(str(self.sock), method, path, body, timeout_s=120)

    def ended(self, txn_id: str, timeout_s: float) -> dict[str, Any]:
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            for h in self.call("GET", "/v1/history?limit=3")["history"]:
                if h["id"] == txn_id:
                    return dict(h)
            time.sleep(0.05)
        raise TimeoutError(f"{txn_id} did not end in {timeout_s:g}s")


def _change(stack: Any, changed: Any, due_wall: float) -> bool:
    """Apply the change with the stack's tool; False if it did not finish well before the
    deadline (a loaded machine), so the repetition measures nothing."""
    from tests.netns.stacks import HarnessError

    try:
        stack.apply(changed, only=["nct1"])
    except HarnessError as e:  # the rollback came before the change had settled
        progress(f"  the change did not settle before the deadline: {str(e)[:200]}")
        return False
    if time.time() > due_wall - 0.2:
        progress("  the change took longer than the timeout; repetition dropped")
        return False
    return True


def _back_to_base(stack: Any, base: Any) -> None:
    stack.adopt(base)
    stack.wait_configured(base, 30)


def _by_hand_rep(stack: Any, peer: str, base: Any, changed: Any) -> float | None:
    """One repetition of the stack's own tool restoring the old config: ms to the answer."""
    stack.apply(changed, only=["nct1"])
    with peer_ping(peer) as pp:
        t0 = time.time()
        stack.apply(base, only=["nct1"])
        first = pp.first_after(t0, 30)
    return None if first is None else (first - t0) * 1e3


def _ours_rep(stack: Any, agent: Daemon, peer: str, base: Any, changed: Any) -> float | None:
    body = {"timeout": f"{TIMEOUT_S}s", "allow_pending": True}
    txn = agent.call("POST", "/v1/transactions", body)["transaction"]
    due_wall = float(txn["deadline_wall_s"])
    if not _change(stack, changed, due_wall):
        agent.ended(txn["id"], 60)
        _back_to_base(stack, base)
        return None
    with peer_ping(peer) as pp:
        first = pp.first_after(due_wall, TIMEOUT_S + 30)
        entry = agent.ended(txn["id"], 60)
    if entry.get("phase") != "rolled-back" or entry.get("errors"):
        progress(f"  the rollback did not succeed: {entry}")
    _back_to_base(stack, base)
    return None if first is None else (first - due_wall) * 1e3


BACKENDS = {
    "ifupdown": ("ifupdown", "ifupdown"),
    "ifupdown2": ("ifupdown2", "ifupdown2"),
    "networkd": ("networkd", "networkd"),
    "NetworkManager": ("networkmanager", "networkmanager"),
}


def measure(stack_name: str, work: Path, n: int) -> tuple[list[float], list[float]]:
    """(ours in ms, baseline in ms: NM's checkpoint, or the stack's own tool by hand)."""
    sys.path.insert(0, str(REPO))
    from tests.netns.stacks import (
        DEFAULT_IFACES,
        STACKS,
        Iface,
        Topology,
        running_stack,
        with_iface,
    )

    if stack_name == "ifupdown2":
        from tests.netns.stacks import ifupdown2_ready, ifupdown2_root, prepare_ifupdown2

        if not ifupdown2_ready(ifupdown2_root()):
            prepare_ifupdown2()
    base = DEFAULT_IFACES
    changed = with_iface(base, Iface("nct1", ("198.51.100.11/24",)))
    ours: list[float] = []
    nm: list[float] = []
    with Topology.create() as topo, running_stack(topo, work / stack_name, STACKS[stack_name]) as s:
        backend, preset = BACKENDS[stack_name]
        agent = Daemon(s, work / f"{stack_name}-agent", backend, preset)
        for i in range(n):
            ms = _ours_rep(s, agent, topo.peer, base, changed)
            if ms is not None:
                ours.append(ms)
            progress(f"deadline {stack_name} #{i + 1}: netcfg-txn {ms and round(ms, 1)} ms")
        for i in range(n):
            if stack_name == "NetworkManager":
                ms, what = _nm_checkpoint_rep(s, topo.peer, base, changed), "NM checkpoint"
            else:
                ms, what = _by_hand_rep(s, topo.peer, base, changed), "by hand"
            if ms is not None:
                nm.append(ms)
            progress(f"deadline {stack_name} #{i + 1}: {what} {ms and round(ms, 1)} ms")
    return ours, nm


BY_HAND = {
    "ifupdown": "ifdown nct1; ifup nct1",
    "ifupdown2": "ifup nct1",
    "networkd": "networkctl reload; networkctl reconfigure nct1",
}


def bench(work: Path, quick: bool, reps: int | None) -> list[Row]:
    n = reps or (2 if quick else 7)
    rows: list[Row] = []
    for name in STACK_NAMES:
        ours, base = measure(name, work / "deadline", n)
        m, b = median(ours), median(base)
        if name == "NetworkManager":
            base_name = "(NM's own checkpoint rollback, its own timer)"
            target = "≤ NM's own checkpoint rollback"
            met = m is not None and b is not None and m <= b
        else:
            base_name = f"(old file back by hand + {BY_HAND[name]})"
            target = f"≤ {TARGET_MS:g} ms"
            met = m is not None and m <= TARGET_MS
        rows.append(
            Row(
                "deadline → the changed interface answers a peer's ping",
                m,
                "ms",
                b,
                base_name,
                target,
                met,
                len(ours),
                variant=f"{name}, netns",
                note=f"{name}: the peer pings 2 ms apart; first answer after the recorded "
                f"deadline, per repetition {[round(x, 1) for x in ours]} ms; baseline "
                f"{[round(x, 1) for x in base]} ms",
                samples=ours,
                baseline_samples=base,
            )
        )
    return rows
