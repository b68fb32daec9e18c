# SPDX-License-Identifier: GPL-3.0-or-later
"""The live rollback's persisted state: its plan and how far it got. Pure: no I/O.

A ``RollbackPlan`` is decided once, before anything is touched, and stored in ``txn.json`` under
``"bounce"`` so that a rollback resumed after a crash or a reboot repeats the same plan. Its
network part is typed by the kind of network that made it: a stack backend (which interfaces go
down, which links are deleted, which come up), the ``[apply] command`` hook, or none.

``RollbackStage`` is the last step a rollback completed, persisted as ``"stage"``. The JSON shape
is the one the previous version wrote (a flat dict, stages as strings): records it left behind
still load and resume.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from typing import Any


class RollbackStage(enum.Enum):
    """The last step of a live rollback that completed, in the order they run."""

    UNPLANNED = ""
    PLANNED = "planned"  # the plan is recorded; nothing touched yet
    DOWN = "interfaces-down"  # changed interfaces taken down while their new config exists
    LINKS_DELETED = "links-deleted"  # links only the new config created are gone
    FILES = "files"  # the snapshot's files are back
    RELOADED = "reloaded"  # the stack re-read its files
    UP = "up"  # the affected interfaces came up from the restored config
    ROUTES = "routes"  # routes the bounce dropped are back
    VERIFIED = "verified"  # the live state was compared with the snapshot
    HOOK = "hook"  # the [apply] command ran (if there is one and anything changed)

    @property
    def order(self) -> int:
        return _ORDER[self]

    @classmethod
    def from_json(cls, value: object) -> RollbackStage:
        """Also reads the previous version's stages: its ``"down"`` covered both the interfaces
        going down and the created links being deleted."""
        if value == "down":
            return cls.LINKS_DELETED
        return cls(str(value))


_ORDER = {s: i for i, s in enumerate(RollbackStage)}


def _no_ids() -> Mapping[str, str]:
    return {}


def _names(d: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = d[key]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"rollback plan: {key} must be a list of strings")
    return tuple(value)


def _ids(d: Mapping[str, Any], key: str) -> Mapping[str, str]:
    value = d.get(key, {})
    if not isinstance(value, dict):
        raise ValueError(f"rollback plan: {key} must be a mapping")
    return {str(k): str(v) for k, v in value.items()}


@dataclasses.dataclass(frozen=True)
class BouncePlan:
    """Which interfaces a stack bounces, and in what order."""

    down: tuple[str, ...]  # now, with the current config; upper links first
    delete: tuple[str, ...]  # links only the current config created, still live: delete after down
    up: tuple[str, ...]  # after every file is restored; lower links first
    unattributed: tuple[str, ...]  # paths whose change no interface can be blamed for
    reload: bool  # the stack must re-read its files
    down_ids: Mapping[str, str] = dataclasses.field(default_factory=_no_ids)  # current config
    up_ids: Mapping[str, str] = dataclasses.field(default_factory=_no_ids)  # snapshot config
    notes: tuple[str, ...] = ()  # why paths are unattributed, what the fallback did: log them
    # Links whose only change is their static addresses: not bounced, their addresses are set
    # back over netlink (a bounced bridge would drop the ports and VM taps attached to it).
    readdress: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        # "readdress" only when used: a plan without it reads the same as the previous version's.
        extra = {"readdress": list(self.readdress)} if self.readdress else {}
        return {
            "down": list(self.down),
            "delete": list(self.delete),
            "up": list(self.up),
            "unattributed": list(self.unattributed),
            "reload": self.reload,
            "down_ids": dict(self.down_ids),
            "up_ids": dict(self.up_ids),
            "notes": list(self.notes),
            **extra,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> BouncePlan:
        """Raises KeyError/TypeError/ValueError on a malformed document."""
        if not isinstance(d["reload"], bool):
            raise ValueError("rollback plan: reload must be a boolean")
        return cls(
            down=_names(d, "down"),
            delete=_names(d, "delete"),
            up=_names(d, "up"),
            unattributed=_names(d, "unattributed"),
            reload=d["reload"],
            down_ids=_ids(d, "down_ids"),
            up_ids=_ids(d, "up_ids"),
            notes=tuple(str(n) for n in d.get("notes", [])),
            readdress=_names(d, "readdress") if "readdress" in d else (),
        )


@dataclasses.dataclass(frozen=True)
class StackPlan:
    """The plan of a stack backend (ifupdown, networkd, NetworkManager, ...)."""

    backend: str
    bounce: BouncePlan

    kind = "stack"


@dataclasses.dataclass(frozen=True)
class HookPlan:
    """The plan of the ``[apply] command`` hook: run it once the files are back, if any changed."""

    command: str
    changed: tuple[str, ...]  # the managed paths that differ from the snapshot

    kind = "hook"


@dataclasses.dataclass(frozen=True)
class NoNetworkPlan:
    """Nothing live is touched: only files are restored."""

    kind = "none"


NetworkPlan = StackPlan | HookPlan | NoNetworkPlan


@dataclasses.dataclass(frozen=True)
class RollbackPlan:
    """What a rollback decided before touching anything. The files to rewrite are not stored:
    they follow from the snapshot's manifest (persisted with it) and the files on disk, and
    deriving them again on resume skips what an interrupted restore already put back."""

    network: NetworkPlan
    unreadable: tuple[str, ...] = ()  # current files that could not be archived, and why
    files_only: bool = False  # at boot: files only, nothing was bounced

    @property
    def bounced(self) -> tuple[str, ...]:
        """The interfaces this rollback takes down or brings up, for history (none at boot)."""
        n = self.network
        if self.files_only or not isinstance(n, StackPlan):
            return ()
        return tuple(sorted({*n.bounce.down, *n.bounce.up}))

    @property
    def interfaces(self) -> dict[str, list[str]]:
        """The non-empty interface lists (down, delete, up), for status."""
        n = self.network
        if not isinstance(n, StackPlan):
            return {}
        b = n.bounce
        lists = {"down": b.down, "delete": b.delete, "up": b.up}
        return {k: list(v) for k, v in lists.items() if v}


def network_plan_to_json(p: NetworkPlan) -> dict[str, Any]:
    if isinstance(p, StackPlan):
        return {"backend": p.backend, **p.bounce.to_json()}
    if isinstance(p, HookPlan):
        return {"hook": p.command, "changed": list(p.changed)}
    return {}


def network_plan_from_json(d: Mapping[str, Any]) -> NetworkPlan:
    """The kind is told by its key, as the previous version wrote it: ``backend`` or ``hook``."""
    if "backend" in d:
        return StackPlan(str(d["backend"]), BouncePlan.from_json(d))
    if "hook" in d:
        return HookPlan(str(d["hook"]), _names(d, "changed") if "changed" in d else ())
    return NoNetworkPlan()


def rollback_plan_to_json(p: RollbackPlan) -> dict[str, Any]:
    d = network_plan_to_json(p.network)
    d["unreadable"] = list(p.unreadable)
    if p.files_only:
        d["files_only"] = True
    return d


def rollback_plan_from_json(d: Mapping[str, Any]) -> RollbackPlan:
    """Raises KeyError/TypeError/ValueError on a malformed document."""
    if not isinstance(d, Mapping):
        raise ValueError("rollback plan: not a mapping")
    return RollbackPlan(
        network=network_plan_from_json(d),
        unreadable=_names(d, "unreadable") if "unreadable" in d else (),
        files_only=bool(d.get("files_only", False)),
    )
