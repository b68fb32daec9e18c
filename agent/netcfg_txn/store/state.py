# SPDX-License-Identifier: GPL-3.0-or-later
"""The state directory: content-addressed blobs, snapshots, the transaction record, the baseline,
history and the rejected-config list. The filesystem door for /var/lib/netcfg-txn.

Layout::

    daemon.lock            held by the daemon for its lifetime (boot-rollback refuses while held)
    blobs/<sha256>         file contents, shared by every snapshot, archive and history entry
    snapshots/<id>/        published by one rename: manifest.json (+ links.json, discarded.json)
    snapshots/.<id>.partial  a crash during start: never counts, removed at recovery
    txn.json               the open (or finishing) transaction: the commit point of every phase
    baseline.json          the managed files at the last commit/rollback (pending-edit check)
    history/<seq>-<id>.json  finished transactions with their archived manifests
    history/<seq>-<id>.refs  the blobs that entry refers to (a rebuildable hint, see blobrefs)
    rejected.json          fingerprints of file sets rolled back by timeout/health/boot
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from netcfg_txn.core.errors import NotPermitted, Unavailable
from netcfg_txn.core.model import (
    Manifest,
    Txn,
    TxnId,
    manifest_from_json,
    manifest_to_json,
    txn_from_json,
    txn_to_json,
)
from netcfg_txn.store import blobrefs, fsutil, manifestmemo

log = logging.getLogger(__name__)


class Corrupt(Exception):
    """A state file exists but cannot be decoded."""


class BlobSpool:
    """One blob written in chunks to a temp file, named once its digest is known."""

    def __init__(self, writer: BlobWriter) -> None:
        self._writer = writer
        fd, tmp = tempfile.mkstemp(dir=writer._dir, prefix=".spool.", suffix=".tmp")
        self._fd: int | None = fd
        self._tmp = Path(tmp)
        self._size = 0

    def write(self, chunk: bytes) -> None:
        assert self._fd is not None
        fsutil.write_all(self._fd, chunk)
        self._size += len(chunk)

    def keep(self, digest: str) -> None:
        """Name it ``digest`` at commit (or drop it: that blob is already there)."""
        self._close()
        w = self._writer
        if w.has(digest):
            w.reused += digest not in w._temps
            self._tmp.unlink()
            return
        w._temps[digest] = self._tmp
        w.bytes_written += self._size

    def discard(self) -> None:
        self._close()
        with contextlib.suppress(FileNotFoundError):
            self._tmp.unlink()

    def _close(self) -> None:
        if self._fd is not None:
            os.fchmod(self._fd, 0o600)
            os.close(self._fd)
            self._fd = None


class BlobWriter:
    """Collects new blobs as temp files; ``commit`` makes them durable with one syncfs, then names
    them. A blob name therefore always holds complete bytes, even after a power cut. Small files
    come whole (``__call__``); bigger ones are streamed through a ``spool``. The blob directory is
    listed once (callers hold the state lock: nothing else adds or removes blobs meanwhile)."""

    def __init__(self, blobs: Path) -> None:
        self._dir = blobs
        self._temps: dict[str, Path] = {}
        self.bytes_written = 0
        self.reused = 0
        try:
            self._have = frozenset(os.listdir(blobs))
        except FileNotFoundError:
            self._have = frozenset()

    def has(self, digest: str) -> bool:
        return digest in self._have or digest in self._temps

    def __call__(self, digest: str, data: bytes) -> None:
        if digest in self._temps:
            return
        if digest in self._have:
            self.reused += 1
            return
        tmp = self._dir / f".{digest}.tmp"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(tmp, flags, 0o600)
        except FileExistsError:  # left by a run that crashed: replaced
            os.unlink(tmp)
            fd = os.open(tmp, flags, 0o600)
        try:
            fsutil.write_all(fd, data)
        except BaseException:
            os.close(fd)
            os.unlink(tmp)
            raise
        os.close(fd)
        self._temps[digest] = tmp
        self.bytes_written += len(data)

    def spool(self) -> BlobSpool:
        return BlobSpool(self)

    def commit(self) -> None:
        if not self._temps:
            return
        fsutil.syncfs(self._dir)
        for digest, tmp in self._temps.items():
            os.replace(tmp, self._dir / digest)
        fsutil.fsync_dir(self._dir)
        self._temps.clear()

    def abort(self) -> None:
        for tmp in self._temps.values():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        self._temps.clear()


@dataclasses.dataclass(frozen=True)
class HistoryEntry:
    seq: int
    txn: Txn
    doc: dict[str, Any]


class Store:
    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir
        self.blobs = state_dir / "blobs"
        self.snapshots = state_dir / "snapshots"
        self.history_dir = state_dir / "history"
        self.txn_path = state_dir / "txn.json"
        self.baseline_path = state_dir / "baseline.json"
        self.rejected_path = state_dir / "rejected.json"
        self.lock_path = state_dir / "daemon.lock"
        self.statcache_path = state_dir / "statcache.json"
        self._refs = blobrefs.HistoryRefs()
        self._memo = manifestmemo.ManifestMemo()

    def ensure(self) -> None:
        for d in (self.dir, self.blobs, self.snapshots, self.history_dir):
            fsutil.makedirs(d, 0o700)
        os.chmod(self.dir, 0o700)

    # ------------------------------------------------------------------------------ blobs

    def blob_writer(self) -> BlobWriter:
        return BlobWriter(self.blobs)

    def _blob_path(self, digest: str) -> str:
        if len(digest) != 64 or digest.strip("0123456789abcdef"):
            raise ValueError(f"not a blob name: {digest!r}")
        return f"{self.blobs}/{digest}"

    def blob(self, digest: str) -> bytes:
        """A whole blob; only for files within the per-file limit (diffs, interface planning)."""
        with open(self._blob_path(digest), "rb") as f:
            return f.read()

    def open_blob(self, digest: str) -> BinaryIO:
        """A blob to stream (restores never hold a file whole in memory)."""
        return open(self._blob_path(digest), "rb")  # noqa: SIM115 - the caller closes it

    def has_blob(self, digest: str) -> bool:
        return len(digest) == 64 and (self.blobs / digest).exists()

    # -------------------------------------------------------------------------- snapshots

    def publish_snapshot(self, txn_id: TxnId, manifest: Manifest, extra: dict[str, Any]) -> None:
        """All-or-nothing: a temp dir with every file fsynced, then one rename (safety rule 2)."""
        partial = self.snapshots / f".{txn_id}.partial"
        fsutil.remove_tree(partial)
        partial.mkdir(mode=0o700)
        # Each file fsynced, their names by the one fsync of the directory before the rename.
        docs = {"manifest": manifest_to_json(manifest), **extra}
        for name, doc in docs.items():
            data = (json.dumps(doc, separators=(",", ":")) + "\n").encode()
            os.replace(fsutil.write_temp(partial, name, data, mode=0o600), partial / f"{name}.json")
        fsutil.fsync_dir(partial)
        os.rename(partial, self.snapshots / txn_id)
        fsutil.fsync_dir(self.snapshots)

    def snapshot_manifest(self, txn_id: TxnId) -> Manifest:
        return self._manifest(self.snapshots / txn_id / "manifest.json")

    def snapshot_extra(self, txn_id: TxnId, name: str) -> Any | None:
        try:
            return fsutil.read_json(self.snapshots / txn_id / f"{name}.json")
        except FileNotFoundError:
            return None

    def write_snapshot_extra(self, txn_id: TxnId, name: str, doc: Any) -> None:
        fsutil.write_json(self.snapshots / txn_id / f"{name}.json", doc)

    def complete_snapshots(self) -> list[TxnId]:
        if not self.snapshots.exists():
            return []
        return sorted(
            TxnId(p.name)
            for p in self.snapshots.iterdir()
            if not p.name.startswith(".") and (p / "manifest.json").exists()
        )

    def drop_snapshot(self, txn_id: TxnId) -> None:
        """Not fsynced: a snapshot that comes back after a power cut has no record (the record
        goes after it, durably) and recovery drops it again."""
        fsutil.remove_tree(self.snapshots / txn_id)

    def discard_partials(self) -> list[str]:
        gone = []
        for p in self.snapshots.glob(".*.partial"):
            fsutil.remove_tree(p)
            gone.append(p.name)
        for d in (self.dir, self.blobs, self.history_dir, *self.snapshots.iterdir()):
            if d.is_dir() and not d.is_symlink():
                for p in d.glob(".*.tmp"):
                    p.unlink()
        if gone:
            fsutil.fsync_dir(self.snapshots)
        return gone

    # ----------------------------------------------------------------------------- records

    def read_txn(self) -> Txn | None:
        """None when idle. Raises Corrupt when the record cannot be decoded, and Unavailable
        when it cannot be read right now (EMFILE, EIO, ...): an I/O error says nothing about the
        record, so it must not trigger the immediate rollback that corruption does."""
        try:
            doc = fsutil.read_json(self.txn_path)
        except FileNotFoundError:
            return None
        except PermissionError:
            raise NotPermitted(f"cannot read {self.txn_path}", hint="run as root") from None
        except ValueError as e:
            raise Corrupt(str(e)) from None
        except OSError as e:
            raise Unavailable(
                f"cannot read the transaction record {self.txn_path}: {e.strerror or e} "
                "(not treated as corruption)",
                hint="retry; the daemon keeps retrying its timer",
            ) from None
        try:
            return txn_from_json(doc)
        except (KeyError, ValueError, TypeError, AttributeError) as e:
            raise Corrupt(f"{self.txn_path}: {type(e).__name__}: {e}") from None

    def write_txn(self, txn: Txn) -> None:
        fsutil.write_json(self.txn_path, txn_to_json(txn))

    def clear_txn(self) -> None:
        fsutil.remove(self.txn_path)

    def _manifest(self, path: Path) -> Manifest:
        try:
            return self._memo.get(path, lambda: manifest_from_json(fsutil.read_json(path)))
        except FileNotFoundError:
            raise
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise Corrupt(f"{path}: {e}") from None

    def read_baseline(self) -> Manifest | None:
        try:
            return self._manifest(self.baseline_path)
        except FileNotFoundError:
            return None

    def write_baseline(self, manifest: Manifest) -> None:
        fsutil.write_json(self.baseline_path, manifest_to_json(manifest))
        self._memo.put(self.baseline_path, manifest)

    # ----------------------------------------------------------------------------- history

    def _history_files(self) -> list[Path]:
        if not self.history_dir.exists():
            return []
        return sorted(p for p in self.history_dir.glob("*.json") if not p.name.startswith("."))

    def add_history(self, txn: Txn, doc: dict[str, Any], keep: int) -> None:
        """Idempotent per transaction id: recovery may finalize the same transaction twice."""
        files = self._history_files()
        if any(p.stem.split("-", 1)[1] == txn.id for p in files):
            return
        seq = int(files[-1].stem.split("-", 1)[0]) + 1 if files else 1
        path = self.history_dir / f"{seq:06d}-{txn.id}.json"
        fsutil.write_json(path, {"txn": txn_to_json(txn), **doc})
        # Rotated out without an fsync: an entry that comes back after a power cut only makes
        # the history one longer until the next one is added.
        for old in files[: max(0, len(files) + 1 - keep)]:
            old.unlink()
            with contextlib.suppress(FileNotFoundError):
                blobrefs.sidecar(old).unlink()
        with contextlib.suppress(KeyError, TypeError):
            blobrefs.write_sidecar(path, blobrefs.entry_digests(doc))

    def history(self, limit: int | None = None) -> Iterator[HistoryEntry]:
        """Newest first. Unreadable entries are skipped (and logged), never fatal."""
        files = self._history_files()[::-1]
        for p in files[:limit] if limit else files:
            try:
                doc = fsutil.read_json(p)
                yield HistoryEntry(int(p.stem.split("-", 1)[0]), txn_from_json(doc["txn"]), doc)
            except (OSError, ValueError, KeyError, TypeError) as e:
                log.warning("skipping unreadable history entry %s: %s", p, e)

    def find_history(self, txn_id: str) -> HistoryEntry | None:
        """The entry's name holds its id: only that one file is read."""
        for p in reversed(self._history_files()):
            if p.stem.split("-", 1)[-1] != txn_id:
                continue
            try:
                doc = fsutil.read_json(p)
                return HistoryEntry(int(p.stem.split("-", 1)[0]), txn_from_json(doc["txn"]), doc)
            except (OSError, ValueError, KeyError, TypeError) as e:
                log.warning("skipping unreadable history entry %s: %s", p, e)
        return None

    # ---------------------------------------------------------------------------- rejected

    def rejected(self) -> dict[str, dict[str, Any]]:
        try:
            doc = fsutil.read_json(self.rejected_path)
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            log.warning("%s is unreadable; starting a new rejected-config list", self.rejected_path)
            return {}
        return dict(doc) if isinstance(doc, dict) else {}

    def add_rejected(self, fingerprint: str, info: dict[str, Any], keep: int = 100) -> None:
        cur = self.rejected()
        cur[fingerprint] = info
        items = sorted(cur.items(), key=lambda kv: float(kv[1].get("wall_s", 0)))[-keep:]
        fsutil.write_json(self.rejected_path, dict(items))

    # ---------------------------------------------------------------------------------- gc

    def gc_blobs(self, extra_live: frozenset[str] = frozenset()) -> int:
        """Delete blobs no snapshot, baseline or history entry refers to.

        The history's references come from ``blobrefs`` (one sidecar per entry, cached), so a
        full history costs a directory listing here, not a re-read of every manifest."""
        live = set(extra_live)
        manifests = [self.baseline_path]  # the baseline: 'diff' of pending edits
        for tid in self.complete_snapshots():
            manifests += [self.snapshots / tid / f"{n}.json" for n in ("manifest", "discarded")]
        for path in manifests:
            try:
                live |= blobrefs.manifest_digests(fsutil.read_json(path))
            except FileNotFoundError:
                continue
            except (OSError, ValueError, KeyError, TypeError):
                if path != self.baseline_path:  # a corrupt baseline is ignored everywhere
                    return 0  # never delete what an unreadable snapshot might still need
        refs = self._refs.live(self._history_files())
        if refs is None:
            return 0  # never delete what an unreadable entry might still need
        live |= refs
        removed = 0  # not fsynced: garbage that comes back after a power cut goes next time
        for name in os.listdir(self.blobs):
            if name.startswith("."):
                continue
            if name not in live:
                os.unlink(self.blobs / name)
                removed += 1
        for name in os.listdir(self.history_dir):  # sidecars of entries deleted by hand
            if blobrefs.is_sidecar(name) and not (self.history_dir / f"{name[:-5]}.json").exists():
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.history_dir / name)
        return removed
