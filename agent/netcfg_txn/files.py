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
import logging
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path, PurePosixPath

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
            here = fsutil.under(root, d) if d != PurePosixPath("/") else root
            if is_wild(seg):
                try:
                    names = sorted(os.listdir(here))
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
        for p in _candidates(root, g, skipped):
            if p in found or not fileset.matches(p):
                continue
            try:
                os.lstat(fsutil.under(root, p))
            except (FileNotFoundError, NotADirectoryError):
                continue
            found.add(p)
    return sorted(found), skipped


def stat_one(
    root: Path, path: PurePosixPath, limits: Limits, sink: BlobSink | None
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
    root: Path, fileset: FileSet, limits: Limits | None = None, sink: BlobSink | None = None
) -> Manifest:
    """Every managed file now. Unreadable or oversize files abort with a clear error (a file we
    could not snapshot would otherwise be deleted by a rollback as "added")."""
    limits = limits or Limits()
    paths, skipped = list_managed(root, fileset)
    files: list[FileState] = []
    total = 0
    for p in paths:
        try:
            got = stat_one(root, p, limits, sink)
        except FileNotFoundError:
            continue  # vanished between listing and reading: it is simply not there now
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
    if not parent.exists():
        parent.mkdir(mode=0o755, parents=True)
    fsutil.check_parents(root, f.path)
    action = "recreate"
    with contextlib.suppress(FileNotFoundError):
        os.lstat(real)
        action = "rewrite"
    if f.kind == "symlink":
        assert f.target is not None
        tmp = parent / f".{real.name}.{os.getpid()}.nct-link"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        os.symlink(f.target, tmp)
        os.lchown(tmp, f.uid, f.gid)
        return _Pending(f, real, tmp, action)
    data = blob(f.sha256)
    if hashlib.sha256(data).hexdigest() != f.sha256:
        raise OSError(errno.EIO, f"snapshot blob {f.sha256[:12]} is corrupt")
    tmp = fsutil.write_temp(parent, real.name, data, mode=f.mode, uid=f.uid, gid=f.gid, fsync=False)
    try:
        fsutil.set_xattrs(tmp, f.xattrs)
        os.utime(tmp, ns=(f.mtime_ns, f.mtime_ns), follow_symlinks=False)
    except BaseException:
        os.unlink(tmp)
        raise
    return _Pending(f, real, tmp, action)


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
