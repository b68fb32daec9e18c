# SPDX-License-Identifier: GPL-3.0-or-later
"""The end of every transaction, committed or rolled back: history (with the discarded config
archived), the new baseline, the list of rejected file sets; then the snapshot and the record go.
Idempotent: recovery runs it again for a terminal record a crash left behind."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from netcfg_txn.core import diff, txn
from netcfg_txn.core.model import Phase, Reason, Txn, manifest_from_json, manifest_to_json
from netcfg_txn.engine.base import EngineBase, log


class Finalizer(EngineBase):
    def _finalize(self, t: Txn) -> None:
        """History, baseline, rejected list; then drop the snapshot and the record. Idempotent."""
        if self.store.find_history(t.id) is None:
            snap = self.store.snapshot_manifest(t.id)
            if t.phase is Phase.ROLLED_BACK:
                now = snap  # restored exactly (every step succeeded): no need to rescan
            elif t.phase is Phase.COMMITTED:
                # The kept set becomes the baseline: keep its bytes, so 'diff' can show later
                # edits outside a transaction against it.
                writer = self.store.blob_writer()
                try:
                    now, _ = self._scan_tolerant(writer)
                    writer.commit()
                except BaseException:
                    writer.abort()
                    raise
            else:
                now, _ = self._scan_tolerant(None)
            doc: dict[str, Any] = {"snapshot": manifest_to_json(snap)}
            discarded_doc = self.store.snapshot_extra(t.id, "discarded")
            discarded = manifest_from_json(discarded_doc) if discarded_doc else now
            if t.phase is Phase.COMMITTED:
                doc["discarded"] = manifest_to_json(snap)  # the old config is what commit discards
                doc["changed"] = [str(c.path) for c in diff.changes(snap, now)]
            else:
                doc["discarded"] = manifest_to_json(discarded)
                doc["changed"] = [str(c.path) for c in diff.changes(snap, discarded)]
                applied = self.store.snapshot_extra(t.id, "applied")
                if applied is not None:
                    later = diff.changes(manifest_from_json(applied), discarded)
                    doc["edited_after_apply"] = [str(c.path) for c in later]
                    if later:  # the snapshot still won; say what was overwritten
                        log.warning(
                            "txn=%s files edited outside the tool after apply (archived): %s",
                            t.id,
                            ", ".join(doc["edited_after_apply"]),
                        )
                # Only a set that differed from the snapshot was rejected: an unchanged set
                # timing out is the snapshot itself, and refusing it later would be nonsense.
                if doc["changed"] and t.reason in (Reason.TIMEOUT, Reason.HEALTH, Reason.BOOT):
                    info = {"txn": t.id, "reason": t.reason.value, "wall_s": time.time()}
                    self.store.add_rejected(discarded.fingerprint(), info)
            if t.phase is Phase.FAILED:  # kept for a retry (rollback --force)
                links = self.store.snapshot_extra(t.id, "links")
                if links is not None:
                    doc["links"] = links
            # At boot nothing is bounced: networking starts after us.
            doc["bounced"] = list(t.rollback.bounced) if t.rollback is not None else []
            self.store.write_baseline(now)
            self.store.add_history(t, doc, keep=self.cfg.history)
            if self.root == Path("/"):
                from netcfg_txn.host import alarm

                alarm.update(t.id, t.phase is Phase.FAILED, "; ".join(t.errors))
        self.store.drop_snapshot(t.id)
        self._persist(t, txn.Finished())
        self.store.clear_txn()
        self._use_settings_of(None)
        self.backstop.disarm(t.id)
        self.store.gc_blobs()
