# SPDX-License-Identifier: GPL-3.0-or-later
"""Frozen value types shared by every layer, with their JSON codecs. Pure: no I/O.

The enum *values* and the JSON field names are the on-disk and wire contract: renaming a member or
an attribute must never silently change them.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any, NewType

from netcfg_txn.core.rollback import (
    RollbackPlan,
    RollbackStage,
    rollback_plan_from_json,
    rollback_plan_to_json,
)

TxnId = NewType("TxnId", str)

SCHEMA_VERSION = 1


class Phase(enum.Enum):
    OPEN = "open"
    COMMITTED = "committed"
    ROLLING_BACK = "rolling-back"
    ROLLED_BACK = "rolled-back"
    FAILED = "failed"

    @property
    def terminal(self) -> bool:
        return self in (Phase.COMMITTED, Phase.ROLLED_BACK, Phase.FAILED)


class Reason(enum.Enum):
    """Why a transaction ended the way it did."""

    CONFIRMED = "confirmed"
    MANUAL = "manual"
    TIMEOUT = "timeout"
    BOOT = "boot"
    HEALTH = "health"
    FORCED = "forced"


@dataclasses.dataclass(frozen=True)
class Instant:
    """A point on CLOCK_BOOTTIME of one boot. Never compared across boots."""

    boot_id: str
    boottime_s: float
    wall_s: float  # for display only


@dataclasses.dataclass(frozen=True)
class Deadline:
    boot_id: str
    boottime_s: float
    wall_s: float  # for display only

    def remaining_s(self, now: Instant) -> float:
        """Seconds left; 0 after a reboot, since then the deadline has passed by definition."""
        if now.boot_id != self.boot_id:
            return 0.0
        return max(0.0, self.boottime_s - now.boottime_s)

    @classmethod
    def after(cls, now: Instant, seconds: float) -> Deadline:
        return cls(now.boot_id, now.boottime_s + seconds, now.wall_s + seconds)


@dataclasses.dataclass(frozen=True)
class Actor:
    """Who asked: a local user over the control socket, a remote peer, or the agent itself."""

    kind: str  # "local" | "remote" | "system"
    uid: int | None = None
    pid: int | None = None
    command: str | None = None
    peer: str | None = None
    address: str | None = None

    def describe(self) -> str:
        if self.kind == "local":
            return f"uid={self.uid} pid={self.pid} cmd={self.command or '?'}"
        if self.kind == "remote":
            return f"peer={self.peer or '?'} from {self.address or '?'}"
        return self.command or "netcfg-txn"


SYSTEM = Actor(kind="system")
TIMER = Actor(kind="system", command="timer")  # the dead-man deadline passed
BOOT = Actor(kind="system", command="boot")  # left open by an earlier boot


@dataclasses.dataclass(frozen=True)
class FileState:
    """One managed path as found on disk. ``sha256`` names the blob holding its bytes."""

    path: PurePosixPath
    kind: str  # "file" | "symlink"
    sha256: str  # content digest (for a symlink: digest of its target text)
    size: int
    mode: int  # permission bits only
    uid: int
    gid: int
    mtime_ns: int
    target: str | None = None  # symlink target, verbatim
    xattrs: tuple[tuple[str, str], ...] = ()  # (name, hex value), incl. security.selinux
    # Why the bytes were not read (too large, unreadable); then ``sha256`` is "". Only tolerant
    # scans (a rollback archiving the discarded config, views) make such entries, never a snapshot.
    unarchived: str | None = None

    def same_content(self, other: FileState) -> bool:
        """Equal in everything a restore would set (mtime is informational)."""
        return (
            self.kind == other.kind
            and self.sha256 == other.sha256
            and self.target == other.target
            and (self.kind == "symlink" or self.mode == other.mode)
            and self.uid == other.uid
            and self.gid == other.gid
            and self.xattrs == other.xattrs
        )


@dataclasses.dataclass(frozen=True)
class Skipped:
    path: PurePosixPath
    why: str


@dataclasses.dataclass(frozen=True)
class Manifest:
    """Every managed path at one moment, keyed by absolute path."""

    files: tuple[FileState, ...]
    skipped: tuple[Skipped, ...] = ()

    def by_path(self) -> dict[PurePosixPath, FileState]:
        return {f.path: f for f in self.files}

    def digests(self) -> frozenset[str]:
        return frozenset(f.sha256 for f in self.files if f.kind == "file" and f.sha256)

    def fingerprint(self) -> str:
        """Order-independent hash of the whole set (content and metadata): a file set rolled
        back before is refused by it."""
        import hashlib

        h = hashlib.sha256()
        for f in sorted(self.files, key=lambda f: str(f.path)):
            h.update(f"{f.path}\0{f.kind}\0{f.sha256}\0{f.target}\0{f.mode}\n".encode())
        return h.hexdigest()


@dataclasses.dataclass(frozen=True)
class StepResult:
    """One action of a rollback or commit: a file rewrite, an ifdown, a hook run..."""

    action: str  # "rewrite" | "recreate" | "delete" | "down" | "up" | "reload" | "hook" | ...
    target: str  # a path or an interface name
    ok: bool
    error: str | None = None


@dataclasses.dataclass(frozen=True)
class Txn:
    """The persisted transaction record (``txn.json``)."""

    id: TxnId
    phase: Phase
    created: Instant
    deadline: Deadline
    timeout_s: float
    actor: Actor
    token_sha256: str
    label: str = ""
    file_count: int = 0
    reason: Reason | None = None
    ended_by: Actor | None = None
    ended_wall_s: float | None = None
    # Set when a rollback begins, before anything is touched, so recovery resumes the same plan
    # and skips the stages already done.
    rollback: RollbackPlan | None = None
    stage: RollbackStage = RollbackStage.UNPLANNED
    results: tuple[StepResult, ...] = ()
    errors: tuple[str, ...] = ()
    policy: Mapping[str, Any] | None = None  # confirm policy (probes), set by the remote issue


# ---------------------------------------------------------------------------------------- codecs


def _instant_to_json(i: Instant | Deadline) -> dict[str, Any]:
    return {"boot_id": i.boot_id, "boottime_s": i.boottime_s, "wall_s": i.wall_s}


def _actor_to_json(a: Actor) -> dict[str, Any]:
    return {k: v for k, v in dataclasses.asdict(a).items() if v is not None}


def _actor_from_json(d: Mapping[str, Any]) -> Actor:
    return Actor(
        kind=str(d["kind"]),
        uid=d.get("uid"),
        pid=d.get("pid"),
        command=d.get("command"),
        peer=d.get("peer"),
        address=d.get("address"),
    )


def file_to_json(f: FileState) -> dict[str, Any]:
    d: dict[str, Any] = {
        "path": str(f.path),
        "kind": f.kind,
        "sha256": f.sha256,
        "size": f.size,
        "mode": f.mode,
        "uid": f.uid,
        "gid": f.gid,
        "mtime_ns": f.mtime_ns,
    }
    if f.target is not None:
        d["target"] = f.target
    if f.xattrs:
        d["xattrs"] = dict(f.xattrs)
    if f.unarchived is not None:
        d["unarchived"] = f.unarchived
    return d


def file_from_json(d: Mapping[str, Any]) -> FileState:
    path = PurePosixPath(str(d["path"]))
    if not path.is_absolute() or ".." in path.parts:
        raise ValueError(f"manifest path is not absolute and normal: {path}")
    return FileState(
        path=path,
        kind=str(d["kind"]),
        sha256=str(d["sha256"]),
        size=int(d["size"]),
        mode=int(d["mode"]),
        uid=int(d["uid"]),
        gid=int(d["gid"]),
        mtime_ns=int(d["mtime_ns"]),
        target=d.get("target"),
        xattrs=tuple(sorted((str(k), str(v)) for k, v in dict(d.get("xattrs", {})).items())),
        unarchived=str(d["unarchived"]) if d.get("unarchived") is not None else None,
    )


def manifest_to_json(m: Manifest) -> dict[str, Any]:
    return {
        "version": SCHEMA_VERSION,
        "files": [file_to_json(f) for f in m.files],
        "skipped": [{"path": str(s.path), "why": s.why} for s in m.skipped],
    }


def manifest_from_json(d: Mapping[str, Any]) -> Manifest:
    return Manifest(
        files=tuple(file_from_json(f) for f in d["files"]),
        skipped=tuple(
            Skipped(PurePosixPath(s["path"]), str(s["why"])) for s in d.get("skipped", [])
        ),
    )


def txn_to_json(t: Txn) -> dict[str, Any]:
    return {
        "version": SCHEMA_VERSION,
        "id": t.id,
        "phase": t.phase.value,
        "created": _instant_to_json(t.created),
        "deadline": _instant_to_json(t.deadline),
        "timeout_s": t.timeout_s,
        "actor": _actor_to_json(t.actor),
        "token_sha256": t.token_sha256,
        "label": t.label,
        "file_count": t.file_count,
        "reason": t.reason.value if t.reason else None,
        "ended_by": _actor_to_json(t.ended_by) if t.ended_by else None,
        "ended_wall_s": t.ended_wall_s,
        "bounce": rollback_plan_to_json(t.rollback) if t.rollback is not None else None,
        "stage": t.stage.value,
        # By hand: dataclasses.asdict deep-copies, 0.3 s per 1,000 results x five writes.
        "results": [
            {"action": r.action, "target": r.target, "ok": r.ok, "error": r.error}
            for r in t.results
        ],
        "errors": list(t.errors),
        "policy": dict(t.policy) if t.policy is not None else None,
    }


def txn_from_json(d: Mapping[str, Any]) -> Txn:
    """Raises KeyError/ValueError/TypeError on anything malformed; callers treat that as corrupt."""
    if d.get("version") != SCHEMA_VERSION:
        raise ValueError(f"unsupported record version {d.get('version')!r}")
    c, dl = d["created"], d["deadline"]
    deadline = Deadline(str(dl["boot_id"]), float(dl["boottime_s"]), float(dl["wall_s"]))
    if not deadline.boot_id or deadline.boottime_s <= 0:
        raise ValueError("deadline is zero or empty")  # never read as "no deadline"
    return Txn(
        id=TxnId(str(d["id"])),
        phase=Phase(d["phase"]),
        created=Instant(str(c["boot_id"]), float(c["boottime_s"]), float(c["wall_s"])),
        deadline=deadline,
        timeout_s=float(d["timeout_s"]),
        actor=_actor_from_json(d["actor"]),
        token_sha256=str(d["token_sha256"]),
        label=str(d.get("label", "")),
        file_count=int(d.get("file_count", 0)),
        reason=Reason(d["reason"]) if d.get("reason") else None,
        ended_by=_actor_from_json(d["ended_by"]) if d.get("ended_by") else None,
        ended_wall_s=d.get("ended_wall_s"),
        rollback=rollback_plan_from_json(d["bounce"]) if d.get("bounce") is not None else None,
        stage=RollbackStage.from_json(d.get("stage", "")),
        results=tuple(StepResult(**r) for r in d.get("results", [])),
        errors=tuple(str(e) for e in d.get("errors", [])),
        policy=d.get("policy"),
    )
