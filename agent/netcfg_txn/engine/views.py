# SPDX-License-Identifier: GPL-3.0-or-later
"""The engine's read-only views: status, diff, what a rollback would do (preview), history, and
the transaction as callers see it. None of them changes the state directory's records."""

from __future__ import annotations

import dataclasses
from typing import Any

from netcfg_txn.core import diff
from netcfg_txn.core.errors import NoTransaction
from netcfg_txn.core.model import Phase, Txn
from netcfg_txn.core.rollback import BouncePlan, StackPlan
from netcfg_txn.engine.base import EngineBase
from netcfg_txn.store import files
from netcfg_txn.store.state import Corrupt

NO_BOUNCE = BouncePlan(down=(), delete=(), up=(), unattributed=(), reload=False)


class ReadViews(EngineBase):
    def changed_paths(self, t: Txn) -> list[diff.Change]:
        snap = self.store.snapshot_manifest(t.id)
        return list(diff.changes(snap, self.scan(errors=[])))

    def diff(self) -> list[dict[str, Any]]:
        """Snapshot -> now with a transaction open; else the pending edits: baseline -> now."""
        t = self.current()
        if t is not None:
            changes = self.changed_paths(t)
        else:
            base, problem = self.baseline()
            if base is None:
                raise NoTransaction(
                    "no transaction is open and there is no baseline to compare with"
                    + (f" ({problem})" if problem else ""),
                    hint="the first commit or rollback records one",
                )
            changes = list(diff.changes(base, self.scan(errors=[])))
        out = []
        for c in changes:
            old = None
            if c.old is not None and c.old.kind == "file" and self.store.has_blob(c.old.sha256):
                old = self.store.blob(c.old.sha256)
            new = None
            if c.new is not None and c.new.kind == "file":
                new = files.read_current(self.root, c.path, self.cfg.limits.max_file_bytes)
            entry: dict[str, Any] = {"path": str(c.path), "change": c.kind}
            if c.old is not None and c.old.kind == "file" and old is None:
                entry["detail"] = "its earlier content is not kept"
            elif c.new is not None and c.new.unarchived is not None:
                entry["detail"] = f"not shown: {c.new.unarchived.removeprefix('not archived: ')}"
            elif c.kind == "metadata" and c.old and c.new:
                entry["detail"] = diff.describe_metadata(c.old, c.new)
            elif (c.old and c.old.kind == "symlink") or (c.new and c.new.kind == "symlink"):
                before = c.old.target if c.old else None
                after = c.new.target if c.new else None
                entry["detail"] = f"symlink {before!r} -> {after!r}"
            else:
                entry["diff"] = diff.unified(c.path, old, new)
            out.append(entry)
        return out

    def diff_base(self) -> str:
        """What ``diff`` compares with: the open transaction's snapshot, else the baseline."""
        return "snapshot" if self.current() is not None else "baseline"

    def preview(self) -> dict[str, Any]:
        """What a rollback would do right now (files and interfaces), without doing anything."""
        t = self._require_open(None)
        snap = self.store.snapshot_manifest(t.id)
        now, unreadable = self._scan_tolerant(None)
        rp = diff.plan_restore(snap, now)
        current = now.by_path()
        network = self._plan_network(snap, now)
        bounce = network.bounce if isinstance(network, StackPlan) else NO_BOUNCE
        return {
            "transaction": t.id,
            "backend": self.network.name,
            "files": [
                {"path": str(f.path), "action": "rewrite" if f.path in current else "recreate"}
                for f in rp.write
            ]
            + [{"path": str(p), "action": "delete"} for p in rp.delete],
            "untouched": len(rp.untouched),
            "interfaces": {
                "down": list(bounce.down),
                "delete": list(bounce.delete),
                "up": list(bounce.up),
            },
            "unattributed": list(bounce.unattributed),
            "notes": list(bounce.notes),
            "unreadable": [f"{u.path}: {u.why}" for u in unreadable],
        }

    def status(self) -> dict[str, Any]:
        t = self.current()
        now = self.clock.now()
        doc: dict[str, Any] = {"state": "idle" if t is None else t.phase.value}
        if t is not None:
            doc["transaction"] = public_txn(t, now.boot_id, now.boottime_s)
            edited: list[str] | None = None
            if self.store.complete_snapshots():
                try:
                    edited = [str(c.path) for c in self.changed_paths(t)]
                except (FileNotFoundError, Corrupt):
                    edited = None
            doc["edited"] = edited
        else:
            base, problem = self.baseline()
            if base is not None:
                cur = self.scan(errors=[])
                doc["pending"] = [str(c.path) for c in diff.changes(base, cur)]
            else:
                doc["pending"] = []
            if problem is not None:
                doc["warnings"] = [problem]
        last = next(iter(self.store.history(1)), None)
        if last is not None:
            lt = last.txn
            doc["last"] = {
                "id": lt.id,
                "outcome": lt.phase.value,
                "reason": lt.reason.value if lt.reason else None,
                "ended_wall_s": lt.ended_wall_s,
                "errors": list(lt.errors),
                "bounced": last.doc.get("bounced", []),
            }
            doc["last_error"] = lt.errors[0] if lt.errors else None
        return doc

    def changed_by(self, txn_id: str) -> dict[str, list[str]]:
        """What a finished transaction kept or overwrote: every managed file that differed from
        the snapshot, whoever edited it, and those edited after the last extend."""
        h = self.store.find_history(txn_id)
        if h is None:
            return {}
        out = {"changed": list(h.doc.get("changed", []))}
        if h.doc.get("edited_after_apply"):
            out["edited_after_apply"] = list(h.doc["edited_after_apply"])
        return out

    def history(self, limit: int) -> list[dict[str, Any]]:
        out = []
        for e in self.store.history(limit):
            d = public_txn(e.txn, None, None)
            d["seq"] = e.seq
            d["changed"] = e.doc.get("changed", [])
            d["bounced"] = e.doc.get("bounced", [])
            discarded = e.doc.get("discarded", {}).get("files", [])
            d["archived"] = sum(1 for f in discarded if not f.get("unarchived"))
            lost = [f"{f['path']}: {f['unarchived']}" for f in discarded if f.get("unarchived")]
            if lost:
                d["not_archived"] = lost
            if e.doc.get("edited_after_apply"):
                d["edited_after_apply"] = e.doc["edited_after_apply"]
            out.append(d)
        return out


def public_txn(t: Txn, boot_id: str | None, boottime_s: float | None) -> dict[str, Any]:
    """The transaction as callers see it: never the token hash."""
    d: dict[str, Any] = {
        "id": t.id,
        "phase": t.phase.value,
        "label": t.label,
        "created_wall_s": t.created.wall_s,
        "deadline_wall_s": t.deadline.wall_s,
        "timeout_s": t.timeout_s,
        "file_count": t.file_count,
        "actor": t.actor.describe(),
        "reason": t.reason.value if t.reason else None,
        "ended_by": t.ended_by.describe() if t.ended_by else None,
        "ended_wall_s": t.ended_wall_s,
        "errors": list(t.errors),
        "results": [dataclasses.asdict(r) for r in t.results],
    }
    if t.policy is not None:
        d["policy"] = dict(t.policy)
    if boot_id is not None and boottime_s is not None and t.phase is Phase.OPEN:
        if t.deadline.boot_id == boot_id:
            d["remaining_s"] = max(0.0, t.deadline.boottime_s - boottime_s)
        else:
            d["remaining_s"] = 0.0
    if t.rollback is not None and not t.rollback.files_only:
        d["interfaces"] = t.rollback.interfaces
    return d
