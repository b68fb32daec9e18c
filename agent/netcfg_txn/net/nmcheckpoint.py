# SPDX-License-Identifier: GPL-3.0-or-later
"""NetworkManager checkpoints: NM's own live rollback, as a fast path and a second backstop.

At ``start`` (``prepare``, before the snapshot is published) a checkpoint of every device is
taken over D-Bus (``CheckpointCreate``) with no rollback timeout; once the transaction is on
disk (``arm``) its timeout is set to our deadline + the backstop grace + a margin, so NM rolls
the live state back by itself if neither netcfg-txnd nor the systemd backstop did. At a rollback
``CheckpointRollback`` restores the live state of every device in one call (NM re-applies only
what differs: an untouched link is not bounced); our files restore stays the source of truth and
the usual down/up runs for any device the checkpoint did not restore. Commit destroys the
checkpoint *before* the commit point, so a crash cannot leave NM to revert a kept change.

A checkpoint lives in NM's memory only: after NM restarts it is gone. The record kept here names
the checkpoint's object path *and* the unique bus name of the NetworkManager process that made it
(``:1.42``, never reused while the bus runs), and every call goes to that name: a restarted NM
cannot receive it, so a reused path can never roll back someone else's checkpoint, and the
rollback takes the ordinary path. Every call goes through ``busctl`` (systemd's D-Bus client,
present wherever NetworkManager runs with systemd); nothing here ever raises into an operation.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from netcfg_txn.core.clock import Clock
from netcfg_txn.core.errors import CommandFailed
from netcfg_txn.core.model import StepResult, Txn
from netcfg_txn.host.runner import Runner
from netcfg_txn.store import fsutil

log = logging.getLogger(__name__)

NM = "org.freedesktop.NetworkManager"
NM_PATH = "/org/freedesktop/NetworkManager"
CHECKPOINT = f"{NM}.Checkpoint"
DEVICE = f"{NM}.Device"
# NM's own rollback comes this long after the systemd backstop would have run: it is the last
# resort, for a host where both netcfg-txnd and the backstop are gone.
NM_MARGIN_S = 30.0
# NMRollbackResult
ROLLBACK_OK = 0
ROLLBACK_ERRORS = {1: "device gone", 2: "device unmanaged", 3: "rollback failed"}
CALL_TIMEOUT_S = 20.0


# ------------------------------------------------------------------------------- pure part


def busctl(*args: str) -> list[str]:
    return ["busctl", "--system", "--json=short", *args]


def owner_argv() -> list[str]:
    """The unique bus name of the running NetworkManager."""
    bus = "org.freedesktop.DBus"
    return busctl("call", bus, "/org/freedesktop/DBus", bus, "GetNameOwner", "s", NM)


def create_argv(owner: str, devices: Sequence[str] = (), timeout_s: int = 0) -> list[str]:
    """``CheckpointCreate(ao devices, u rollback_timeout, u flags)``: no devices = all of them;
    timeout 0 = NM never rolls back by itself; flags 0: fails if a device is already in another
    checkpoint (an admin's), which then wins and we take the ordinary path."""
    return busctl(
        "call", owner, NM_PATH, NM, "CheckpointCreate", "aouu",
        str(len(devices)), *devices, str(timeout_s), "0",
    )  # fmt: skip


def rollback_argv(owner: str, path: str) -> list[str]:
    return busctl("call", owner, NM_PATH, NM, "CheckpointRollback", "o", path)


def destroy_argv(owner: str, path: str) -> list[str]:
    return busctl("call", owner, NM_PATH, NM, "CheckpointDestroy", "o", path)


def adjust_argv(owner: str, path: str, timeout_s: int) -> list[str]:
    """``CheckpointAdjustRollbackTimeout``: the timeout counts from now."""
    return busctl(
        "call", owner, NM_PATH, NM, "CheckpointAdjustRollbackTimeout", "ou", path, str(timeout_s)
    )


def objects_argv(owner: str) -> list[str]:
    """Every object NM exports with its properties, in one call (ObjectManager)."""
    om = "org.freedesktop.DBus.ObjectManager"
    return busctl("call", owner, "/org/freedesktop", om, "GetManagedObjects")


def parse_reply(stdout: str, signature: str) -> Any:
    """The value of a ``busctl --json=short`` reply of this D-Bus type signature: a method's
    single out argument, or a property's value."""
    try:
        doc = json.loads(stdout)
    except ValueError:
        raise ValueError(f"busctl: not JSON: {stdout[:200]!r}") from None
    if not isinstance(doc, dict) or doc.get("type") != signature or "data" not in doc:
        raise ValueError(f"busctl: expected a {signature!r} reply, got {stdout[:200]!r}")
    data = doc["data"]
    # A method reply is the list of its out arguments (we only call single-argument ones).
    return data[0] if isinstance(data, list) and len(data) == 1 else data


def parse_str(stdout: str, signature: str) -> str:
    value = parse_reply(stdout, signature)
    if not isinstance(value, str) or not value:
        raise ValueError(f"busctl: expected a {signature!r} string, got {stdout[:200]!r}")
    return value


def parse_rollback(stdout: str) -> dict[str, int]:
    """``CheckpointRollback``'s ``a{su}``: device object path -> NMRollbackResult."""
    result = parse_reply(stdout, "a{su}")
    if not isinstance(result, dict) or not all(
        isinstance(k, str) and isinstance(v, int) for k, v in result.items()
    ):
        raise ValueError(f"busctl: unexpected rollback result {stdout[:200]!r}")
    return result


def parse_interfaces(stdout: str) -> dict[str, str]:
    """``GetManagedObjects``' ``a{oa{sa{sv}}}`` -> {device object path: interface name}."""
    objects = parse_reply(stdout, "a{oa{sa{sv}}}")
    if not isinstance(objects, dict):
        raise ValueError("busctl: GetManagedObjects returned no object map")
    out: dict[str, str] = {}
    for path, interfaces in objects.items():
        dev = interfaces.get(DEVICE) if isinstance(interfaces, dict) else None
        name = dev.get("Interface") if isinstance(dev, dict) else None
        if isinstance(name, dict) and isinstance(name.get("data"), str):
            out[path] = name["data"]
    return out


def rollback_timeout_s(remaining_s: float, grace_s: float) -> int:
    """NM's own deadline, in whole seconds from now: after ours and after the backstop's."""
    return max(1, math.ceil(max(0.0, remaining_s) + grace_s + NM_MARGIN_S))


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    path: str  # D-Bus object path (numbered anew after NM restarts)
    owner: str  # unique bus name of the NM process that holds it
    txn: str = ""  # the transaction it is bound to ("" while only prepared)

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "owner": self.owner, "txn": self.txn}

    @classmethod
    def from_json(cls, d: Any) -> Checkpoint:
        if not isinstance(d, dict) or not all(
            isinstance(d.get(k), str) and d.get(k) for k in ("path", "owner", "txn")
        ):
            raise ValueError(f"not a checkpoint record: {d!r}")
        return cls(d["path"], d["owner"], d["txn"])


# ------------------------------------------------------------------------------ the door


class NmCheckpoint:
    """One transaction's checkpoint: taken at start, bound and timed by ``arm``, used by the
    rollback, destroyed at commit or when the transaction ends. Implements the engine's
    backstop calls (``arm``/``disarm``/``before_commit``); never raises."""

    def __init__(self, run: Runner, record: Path, clock: Clock) -> None:
        self._run = run
        self._clock = clock
        self.record = record  # in the state dir: survives a restart of netcfg-txnd
        self._pending: Checkpoint | None = None  # prepared by this process, not yet bound

    def _call(self, argv: list[str]) -> str:
        return self._run(argv, timeout_s=CALL_TIMEOUT_S, check=True).stdout

    def _destroy(self, cp: Checkpoint) -> None:
        try:
            self._call(destroy_argv(cp.owner, cp.path))
            log.info("NetworkManager checkpoint %s destroyed", cp.path)
        except CommandFailed as e:  # gone with its NM, or rolled back already
            log.info("NetworkManager checkpoint %s not destroyed: %s", cp.path, e.message)

    # -- the record

    def _read(self) -> Checkpoint | None:
        try:
            return Checkpoint.from_json(fsutil.read_json(self.record))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            log.warning("ignoring the NetworkManager checkpoint record %s: %s", self.record, e)
            return None

    def _forget(self) -> None:
        try:
            fsutil.remove(self.record)
        except OSError as e:
            log.warning("cannot remove %s: %s", self.record, e)

    # -- lifecycle

    def prepare(self) -> None:
        """At start, before the snapshot: a checkpoint of every device, with no timeout."""
        if self._pending is not None:  # a start that failed after preparing
            self._destroy(self._pending)
            self._pending = None
        try:
            owner = parse_str(self._call(owner_argv()), "s")
            path = parse_str(self._call(create_argv(owner)), "o")
        except (CommandFailed, ValueError) as e:
            log.warning("no NetworkManager checkpoint (the rollback takes the usual path): %s", e)
            return
        self._pending = Checkpoint(path, owner)

    def arm(self, t: Txn, grace_s: float) -> bool:
        """Start, extend, resume: keep NM's own rollback after our deadline. A checkpoint is
        bound only to the transaction whose start prepared it (a later one would hold the
        changed state); one whose timeout cannot be moved is destroyed, never left to fire
        before our deadline."""
        cp = self._read()
        if cp is not None and cp.txn != t.id:
            self._destroy(cp)  # a leftover of a transaction that ended without us
            self._forget()
            cp = None
        if cp is None and self._pending is not None:
            cp, self._pending = dataclasses.replace(self._pending, txn=t.id), None
            try:
                fsutil.write_json(self.record, cp.to_json())
            except OSError as e:
                log.warning("cannot record the NetworkManager checkpoint: %s", e)
                self._destroy(cp)
                return False
        if cp is None:
            return False
        timeout = rollback_timeout_s(t.deadline.remaining_s(self._clock.now()), grace_s)
        try:
            self._call(adjust_argv(cp.owner, cp.path, timeout))
        except CommandFailed as e:
            log.warning("txn=%s NetworkManager checkpoint %s dropped: %s", t.id, cp.path, e)
            self._destroy(cp)
            self._forget()
            return False
        log.info("txn=%s NetworkManager checkpoint %s rolls back in %ds", t.id, cp.path, timeout)
        return True

    def disarm(self, txn_id: str) -> None:
        cp = self._read()
        if cp is not None and cp.txn == txn_id:
            self._destroy(cp)
            self._forget()

    def before_commit(self, t: Txn) -> None:
        """Before the commit point: NM must never revert a kept change."""
        self.disarm(t.id)

    def discard(self) -> None:
        """Destroy the checkpoint unused (this rollback does not want NM's), so that NM never
        rolls back by itself either."""
        cp = self._read()
        if cp is not None:
            self._destroy(cp)
            self._forget()

    def rollback(self) -> tuple[list[StepResult], set[str]] | None:
        """Restore the live state from the checkpoint: (steps, names of the interfaces it
        restored), or None without a usable checkpoint. NM destroys one it rolled back."""
        cp = self._read()
        if cp is None:
            return None
        try:
            results = parse_rollback(self._call(rollback_argv(cp.owner, cp.path)))
        except (CommandFailed, ValueError) as e:  # gone with its NM: not a failed step
            self._forget()
            log.warning("no NetworkManager checkpoint rollback (down/up instead): %s", e)
            return None
        self._forget()
        if failed := {d: ROLLBACK_ERRORS.get(r, f"result {r}") for d, r in results.items() if r}:
            log.info("checkpoint %s did not restore (down/up instead): %s", cp.path, failed)
        try:
            names = parse_interfaces(self._call(objects_argv(cp.owner)))
        except (CommandFailed, ValueError) as e:  # then every device takes the usual down/up
            log.warning("cannot list NetworkManager's devices: %s", e)
            names = {}
        restored = {names[d] for d, r in results.items() if r == ROLLBACK_OK and d in names}
        return [StepResult("checkpoint", cp.path, True)], restored
