# SPDX-License-Identifier: GPL-3.0-or-later
"""Reading and restoring the managed files under ``root``: the filesystem door for /etc.

Nothing here follows a symlink at or above a managed path (safety rule 4). Restores are batched:
all temp files are written, one ``syncfs`` per filesystem makes them durable, then each is renamed
into place and every touched directory is fsynced — the same guarantee as an fsync per file, at a
fraction of the cost for large sets.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import json
import logging
import os
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from netcfg_txn import fsutil
from netcfg_txn.errors import ConfigError, TooLarge
from netcfg_txn.fileset import FileSet, Limits, is_wild, segment_matches
from netcfg_txn.model import FileState, Manifest, Skipped, StepResult

log = logging.getLogger(__name__)

BlobSink = Callable[[str, bytes], None]
BlobSource = Callable[[str], bytes]


def _candidates(root: Path, pattern: str, skipped: list[Skipped]) -> Iterator[PurePosixPath]:
    """Expand one absolute glob under ``root`` segment by segment, never through a symlinked dir."""
    parts = PurePosixPath(pattern).parts[1:]
    frontier: list[PurePosixPath] = [PurePosixPath("/")]
    for depth, seg in enumerate(parts):
        last = depth == len(parts) - 1
        nxt: list[PurePosixPath] = []
        for d in frontier:
            here = fsutil.under(root, d)
            if is_wild(seg):
                try:
                    names = sorted(os.listdir(here))  # these exist: no lstat needed below
                except (FileNotFoundError, NotADirectoryError):
                    continue
                except PermissionError:
                    raise ConfigError(
                        f"{d}: cannot list managed directory: permission denied"
                    ) from None
                nxt.extend(d / n for n in names if segment_matches(n, seg))
            else:
                nxt.append(d / seg)
        if not last:
            kept = []
            for d in nxt:
                try:
                    st = os.lstat(fsutil.under(root, d))
                except (FileNotFoundError, NotADirectoryError):
                    continue
                if stat.S_ISDIR(st.st_mode):
                    kept.append(d)
                elif stat.S_ISLNK(st.st_mode):
                    skipped.append(Skipped(d, "symlinked directory: not followed"))
            nxt = kept
        frontier = nxt
    yield from frontier


def list_managed(root: Path, fileset: FileSet) -> tuple[list[PurePosixPath], list[Skipped]]:
    """Every path matching ``fileset`` that exists (any type), sorted, plus what was skipped."""
    skipped: list[Skipped] = []
    found: set[PurePosixPath] = set()
    for g in fileset.include:
        literal_leaf = not is_wild(PurePosixPath(g).name)
        for p in _candidates(root, g, skipped):
            if p in found or not fileset.matches(p):
                continue
            if literal_leaf:  # a wildcard leaf came from a directory listing: it exists
                try:
                    os.lstat(fsutil.under(root, p))
                except (FileNotFoundError, NotADirectoryError):
                    continue
            found.add(p)
    return sorted(found), skipped


class StatCache:
    """Digests of files whose (dev, inode, size, mtime, ctime) did not change since they were
    hashed: git's index trick, so a second snapshot of an unchanged set reads no file contents.

    ctime cannot be set from user space, so any write or chmod invalidates an entry. Entries
    younger than ``RACY_S`` are not trusted (a write in the same clock tick as the hash).
    The cache is a hint: losing it only costs a rehash, so it is written without fsync.
    """

    RACY_S = 2.0

    def __init__(self, entries: dict[str, list[Any]] | None = None) -> None:
        self.entries: dict[str, list[Any]] = entries or {}
        self.dirty = False

    @staticmethod
    def _key(st: os.stat_result) -> list[Any]:
        return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]

    def lookup(self, path: PurePosixPath, st: os.stat_result) -> str | None:
        e = self.entries.get(str(path))
        if e is None or len(e) != 6 or e[:5] != self._key(st):
            return None
        return str(e[5])

    def record(self, path: PurePosixPath, st: os.stat_result, digest: str) -> None:
        if time.time() - st.st_ctime_ns / 1e9 < self.RACY_S:
            self.entries.pop(str(path), None)
            return
        self.entries[str(path)] = [*self._key(st), digest]
        self.dirty = True

    @classmethod
    def load(cls, path: Path) -> StatCache:
        try:
            doc = json.loads(path.read_bytes())
            if isinstance(doc, dict) and doc.get("version") == 1:
                entries = doc.get("entries")
                if isinstance(entries, dict):
                    return cls(entries)
        except (OSError, ValueError):
            pass
        return cls()

    def save(self, path: Path) -> None:
        if not self.dirty:
            return
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            tmp.write_text(json.dumps({"version": 1, "entries": self.entries}))
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        self.dirty = False


def stat_one(
    root: Path,
    path: PurePosixPath,
    limits: Limits,
    sink: BlobSink | None,
    cache: StatCache | None = None,
    have_blob: Callable[[str], bool] | None = None,
) -> FileState | Skipped:
    """The state of one managed path; its bytes go to ``sink`` (the blob store) if given."""
    real = fsutil.under(root, path)
    st = os.lstat(real)
    if stat.S_ISLNK(st.st_mode):
        target = os.readlink(real)
        return FileState(
            path=path,
            kind="symlink",
            sha256=hashlib.sha256(target.encode("utf-8", "surrogateescape")).hexdigest(),
            size=len(target),
            mode=stat.S_IMODE(st.st_mode),
            uid=st.st_uid,
            gid=st.st_gid,
            mtime_ns=st.st_mtime_ns,
            target=target,
        )
    if not stat.S_ISREG(st.st_mode):
        kind = "directory" if stat.S_ISDIR(st.st_mode) else "special file"
        return Skipped(path, f"{kind}: only regular files and symlinks are managed")
    if st.st_size > limits.max_file_bytes:
        raise TooLarge(
            f"{path}: {st.st_size} bytes is over the per-file limit of {limits.max_file_bytes}",
            hint="raise [files] max_file_size or exclude the file",
        )
    known = cache.lookup(path, st) if cache is not None else None
    if known is not None and (sink is None or (have_blob is not None and have_blob(known))):
        return FileState(
            path=path,
            kind="file",
            sha256=known,
            size=st.st_size,
            mode=stat.S_IMODE(st.st_mode),
            uid=st.st_uid,
            gid=st.st_gid,
            mtime_ns=st.st_mtime_ns,
            xattrs=fsutil.get_xattrs(real),
        )
    try:
        data = fsutil.read_nofollow(real, limits.max_file_bytes)
    except PermissionError as e:
        raise ConfigError(f"{path}: cannot read managed file: {e.strerror}") from None
    except OSError as e:
        if e.errno == errno.EFBIG:
            raise TooLarge(f"{path}: grew over the per-file limit while being read") from None
        if e.errno == errno.ELOOP:  # became a symlink between lstat and open
            raise ConfigError(f"{path}: changed while being read; try again") from None
        raise ConfigError(f"{path}: cannot read managed file: {e.strerror or e}") from None
    digest = hashlib.sha256(data).hexdigest()
    if sink is not None:
        sink(digest, data)
    if cache is not None and len(data) == st.st_size:
        cache.record(path, st, digest)
    return FileState(
        path=path,
        kind="file",
        sha256=digest,
        size=len(data),
        mode=stat.S_IMODE(st.st_mode),
        uid=st.st_uid,
        gid=st.st_gid,
        mtime_ns=st.st_mtime_ns,
        xattrs=fsutil.get_xattrs(real),
    )


def scan(
    root: Path,
    fileset: FileSet,
    limits: Limits | None = None,
    sink: BlobSink | None = None,
    cache: StatCache | None = None,
    have_blob: Callable[[str], bool] | None = None,
    errors: list[str] | None = None,
) -> Manifest:
    """Every managed file now. Unreadable or oversize files abort with a clear error (a file we
    could not snapshot would otherwise be deleted by a rollback as "added").

    With ``errors`` (a rollback archiving what it is about to replace) nothing aborts: size caps
    do not apply and a file that cannot be read is left out and named in ``errors``.
    """
    limits = limits or Limits()
    if errors is not None:
        limits = Limits(max_file_bytes=1 << 62, max_total_bytes=1 << 62)
    paths, skipped = list_managed(root, fileset)
    files: list[FileState] = []
    total = 0
    for p in paths:
        try:
            got = stat_one(root, p, limits, sink, cache, have_blob)
        except FileNotFoundError:
            continue  # vanished between listing and reading: it is simply not there now
        except Exception as e:
            if errors is None:
                raise
            errors.append(f"{p}: {e}")
            continue
        if isinstance(got, Skipped):
            skipped.append(got)
            continue
        total += got.size
        if total > limits.max_total_bytes:
            raise TooLarge(
                f"managed files total more than the limit of {limits.max_total_bytes} bytes",
                hint="raise [files] max_total_size or narrow the globs",
            )
        files.append(got)
    return Manifest(tuple(files), tuple(skipped))


def read_only_dirs(root: Path, fileset: FileSet) -> list[str]:
    """Existing managed directories on a read-only mount (e.g. outside a unit's ReadWritePaths)."""
    out = []
    for d in sorted(fileset.watch_dirs()):
        real = fsutil.under(root, d)
        try:
            if os.statvfs(real).f_flag & os.ST_RDONLY:
                out.append(str(d))
        except (FileNotFoundError, NotADirectoryError):
            continue
    return out


def make_durable(root: Path, fileset: FileSet) -> None:
    """Flush the filesystems holding the managed directories (one syncfs each)."""
    dirs = []
    for d in sorted(fileset.watch_dirs()):
        real = fsutil.under(root, d)
        while not real.is_dir() and real != root:
            real = real.parent
        dirs.append(real)
    _sync_barrier(dirs)


def read_current(root: Path, path: PurePosixPath, limit: int) -> bytes | None:
    """Content of a managed regular file now (None if missing or not a regular file)."""
    try:
        return fsutil.read_nofollow(fsutil.under(root, path), limit)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.EINVAL):
            return None
        raise


# ------------------------------------------------------------------------------------ restore


@dataclasses.dataclass
class _Pending:
    state: FileState
    real: Path
    tmp: Path
    action: str


def _prepare(root: Path, f: FileState, blob: BlobSource) -> _Pending:
    real = fsutil.under(root, f.path)
    parent = real.parent
    fsutil.check_parents(root, f.path, missing_ok=True)
    if not parent.exists():
        parent.mkdir(mode=0o755, parents=True)
    fsutil.check_parents(root, f.path)
    action = "recreate"
    with contextlib.suppress(FileNotFoundError):
        os.lstat(real)
        action = "rewrite"
    if f.kind == "symlink":
        assert f.target is not None
        tmp = parent / f".{real.name}{LINK_SUFFIX}"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        os.symlink(f.target, tmp)
        os.lchown(tmp, f.uid, f.gid)
        return _Pending(f, real, tmp, action)
    data = blob(f.sha256)
    if hashlib.sha256(data).hexdigest() != f.sha256:
        raise OSError(errno.EIO, f"snapshot blob {f.sha256[:12]} is corrupt")
    tmp = parent / f".{real.name}{TEMP_SUFFIX}"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)  # left by a restore that crashed: this run replaces it
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            os.fchown(out.fileno(), f.uid, f.gid)  # before chmod: chown clears set-id bits
            os.fchmod(out.fileno(), f.mode)
    except BaseException:
        os.unlink(tmp)
        raise
    try:
        fsutil.set_xattrs(tmp, f.xattrs)
        os.utime(tmp, ns=(f.mtime_ns, f.mtime_ns), follow_symlinks=False)
    except BaseException:
        os.unlink(tmp)
        raise
    return _Pending(f, real, tmp, action)


# Fixed names (never matched by a glob: they start with a dot), so recovery can find and remove
# the temp files of a restore that was killed half-way.
TEMP_SUFFIX = ".nct-restore"
LINK_SUFFIX = ".nct-link"


def sweep_temps(root: Path, paths: Iterable[PurePosixPath]) -> list[str]:
    """Remove restore temp files a crashed rollback left beside these managed paths."""
    removed = []
    for d in sorted({p.parent for p in paths}):
        real = fsutil.under(root, d)
        try:
            names = os.listdir(real)
        except (FileNotFoundError, NotADirectoryError):
            continue
        for n in names:
            if n.startswith(".") and (n.endswith(TEMP_SUFFIX) or n.endswith(LINK_SUFFIX)):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(real / n)
                    removed.append(str(d / n))
    return removed


def _sync_barrier(dirs: Iterable[Path]) -> None:
    seen: set[int] = set()
    for d in dirs:
        dev = os.stat(d).st_dev
        if dev not in seen:
            seen.add(dev)
            fsutil.syncfs(d)


def restore(
    root: Path,
    write: Iterable[FileState],
    delete: Iterable[PurePosixPath],
    blob: BlobSource,
) -> list[StepResult]:
    """Converge the given paths; keep going past failures and report each one (R17)."""
    results: list[StepResult] = []
    pending: list[_Pending] = []
    for f in write:
        try:
            pending.append(_prepare(root, f, blob))
        except OSError as e:
            results.append(StepResult("rewrite", str(f.path), False, e.strerror or str(e)))
        except Exception as e:
            results.append(StepResult("rewrite", str(f.path), False, str(e)))
    dirs = {p.real.parent for p in pending}
    if pending:
        _sync_barrier(dirs)
    for p in pending:
        try:
            fsutil.check_parents(root, p.state.path)
            os.replace(p.tmp, p.real)
            results.append(StepResult(p.action, str(p.state.path), True))
        except Exception as e:
            with contextlib.suppress(OSError):
                os.unlink(p.tmp)
            results.append(StepResult(p.action, str(p.state.path), False, str(e)))
    for path in delete:
        try:
            real = fsutil.under(root, path)
            fsutil.check_parents(root, path)
            os.unlink(real)
            dirs.add(real.parent)
            results.append(StepResult("delete", str(path), True))
        except FileNotFoundError:
            results.append(StepResult("delete", str(path), True))
        except Exception as e:
            results.append(StepResult("delete", str(path), False, str(e)))
    for d in sorted(dirs):
        with contextlib.suppress(FileNotFoundError):
            fsutil.fsync_dir(d)
    return results
