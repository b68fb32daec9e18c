# SPDX-License-Identifier: GPL-3.0-or-later
"""Reading and restoring the managed files under ``root``: the filesystem door for /etc.

Nothing here follows a symlink at or above a managed path (safety rule 4): restores act through
directory fds (``fsutil.open_dir``) with ``openat``/``renameat``/``unlinkat``, never by path, and
refuse directories another user could write in. Restores are batched: all temp files are written,
one ``syncfs`` per filesystem makes them durable, then each is renamed into place and every touched
directory is fsynced — the same guarantee as an fsync per file, at a fraction of the cost for large
sets. File contents move in bounded chunks both ways: no file is ever held whole in memory.
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
from typing import Any, BinaryIO, Protocol

from netcfg_txn.core.errors import ConfigError, Failed, NotPermitted, TooLarge
from netcfg_txn.core.fileset import FileSet, Limits, is_wild, segment_matches
from netcfg_txn.core.model import FileState, Manifest, Skipped, StepResult
from netcfg_txn.store import fsutil

log = logging.getLogger(__name__)


class BlobSpool(Protocol):
    def write(self, chunk: bytes) -> None: ...
    def keep(self, digest: str) -> None: ...
    def discard(self) -> None: ...


class BlobSink(Protocol):
    """Where snapshot bytes go: small files whole, bigger ones through a spool."""

    def __call__(self, digest: str, data: bytes) -> None: ...
    def spool(self) -> BlobSpool: ...
    def has(self, digest: str) -> bool: ...


BlobSource = Callable[[str], BinaryIO]  # opens a blob for streaming


def _candidates(
    root: Path, pattern: str, skipped: list[Skipped], errors: list[Skipped] | None
) -> Iterator[PurePosixPath]:
    """Expand one absolute glob under ``root`` segment by segment, never through a symlinked dir.

    A directory that cannot be listed is an error naming it, or with ``errors`` (tolerant) is
    named there and left out: a rollback still restores the snapshot's files in it."""

    def failed(d: PurePosixPath, e: OSError) -> None:
        why = f"cannot list managed directory: {e.strerror or e}"
        if errors is None:  # EACCES, EIO: a managed directory, never the state dir
            raise ConfigError(f"{d}: {why}") from None
        errors.append(Skipped(d, why))

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
                except OSError as e:
                    failed(d, e)
                    continue
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
                except OSError as e:
                    failed(d, e)
                    continue
                if stat.S_ISDIR(st.st_mode):
                    kept.append(d)
                elif stat.S_ISLNK(st.st_mode):
                    skipped.append(Skipped(d, "symlinked directory: not followed"))
            nxt = kept
        frontier = nxt
    yield from frontier


def list_managed(
    root: Path, fileset: FileSet, errors: list[Skipped] | None = None
) -> tuple[list[PurePosixPath], list[Skipped]]:
    """Every path matching ``fileset`` that exists (any type), sorted, plus what was skipped."""
    skipped: list[Skipped] = []
    found: set[PurePosixPath] = set()
    for g in fileset.include:
        literal_leaf = not is_wild(PurePosixPath(g).name)
        for p in _candidates(root, g, skipped, errors):
            if p in found or not fileset.matches(p):
                continue
            if literal_leaf:  # a wildcard leaf came from a directory listing: it exists
                try:
                    os.lstat(fsutil.under(root, p))
                except (FileNotFoundError, NotADirectoryError):
                    continue
                except OSError:
                    pass  # kept: reading it names the error (or, tolerant, records it)
            found.add(p)
    return sorted(found), skipped


class StatCache:
    """Digest and xattrs of files whose (dev, inode, size, mtime, ctime) did not change since they
    were read: git's index trick, so a second snapshot of an unchanged set reads no file contents.

    ctime cannot be set from user space, so any write, chmod or xattr change invalidates an entry
    (and a file replaced by another, even with the same times, has another inode). Entries
    younger than ``RACY_S`` are not trusted (a write in the same clock tick as the hash).
    The cache is a hint: losing it only costs a rehash, so it is written without fsync.
    """

    RACY_S = 2.0
    VERSION = 2

    def __init__(self, entries: dict[str, list[Any]] | None = None) -> None:
        self.entries: dict[str, list[Any]] = entries or {}
        self.dirty = False

    @staticmethod
    def _key(st: os.stat_result) -> list[Any]:
        return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]

    def lookup(
        self, path: PurePosixPath, st: os.stat_result
    ) -> tuple[str, tuple[tuple[str, str], ...]] | None:
        """(digest, xattrs) if the file is provably the one that was read."""
        e = self.entries.get(str(path))
        if e is None or len(e) != 7 or e[:5] != self._key(st) or not isinstance(e[6], dict):
            return None
        return str(e[5]), tuple(sorted((str(k), str(v)) for k, v in e[6].items()))

    def record(
        self,
        path: PurePosixPath,
        st: os.stat_result,
        digest: str,
        xattrs: tuple[tuple[str, str], ...],
    ) -> None:
        if time.time() - st.st_ctime_ns / 1e9 < self.RACY_S:
            self.entries.pop(str(path), None)
            return
        self.entries[str(path)] = [*self._key(st), digest, dict(xattrs)]
        self.dirty = True

    @classmethod
    def load(cls, path: Path) -> StatCache:
        try:
            doc = json.loads(path.read_bytes())
            if isinstance(doc, dict) and doc.get("version") == cls.VERSION:
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
            tmp.write_text(json.dumps({"version": self.VERSION, "entries": self.entries}))
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        self.dirty = False


class _SinkFailed(Exception):
    """Storing the copy failed (the state directory), not reading the managed file."""

    def __init__(self, err: OSError) -> None:
        super().__init__(str(err))
        self.err = err


def _hash(real: Path, limit: int, sink: BlobSink | None) -> tuple[str, int]:
    """sha256 and size of a regular file, read in chunks; its bytes go to ``sink`` as they come.

    A file that fits in one chunk is handed over whole; a bigger one is spooled to a temp blob,
    so memory stays bounded by one chunk whatever the file's size.
    """
    h = hashlib.sha256()
    first: list[bytes] = []
    spool: BlobSpool | None = None

    def consume(chunk: bytes) -> None:
        nonlocal spool
        h.update(chunk)
        if sink is None:
            return
        if spool is None and not first:
            first.append(chunk)
            return
        try:
            if spool is None:
                spool = sink.spool()
                spool.write(first.pop())
            spool.write(chunk)
        except OSError as e:
            raise _SinkFailed(e) from e

    try:
        size = fsutil.stream_nofollow(real, limit, consume)
        digest = h.hexdigest()
        try:
            if spool is not None:
                spool.keep(digest)
            elif sink is not None:
                sink(digest, first[0] if first else b"")
        except OSError as e:
            raise _SinkFailed(e) from e
    except BaseException:
        if spool is not None:
            spool.discard()
        raise
    return digest, size


def stat_one(
    root: Path,
    path: PurePosixPath,
    limits: Limits,
    sink: BlobSink | None,
    cache: StatCache | None = None,
    have_blob: Callable[[str], bool] | None = None,
    *,
    tolerant: bool = False,
) -> FileState | Skipped:
    """The state of one managed path; its bytes go to ``sink`` (the blob store) if given.

    A file over the per-file limit or that cannot be read raises ConfigError/TooLarge naming
    it, or with ``tolerant`` (a rollback archiving what it replaces) comes back as an entry
    with ``unarchived`` set and no bytes: the restore still converges it, nothing reads it whole.
    """
    real = fsutil.under(root, path)
    try:
        st = os.lstat(real)
        if stat.S_ISLNK(st.st_mode):
            target = os.readlink(real)
    except (FileNotFoundError, NotADirectoryError):
        raise FileNotFoundError(errno.ENOENT, "vanished", str(path)) from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read managed file: {e.strerror or e}") from None
    if stat.S_ISLNK(st.st_mode):
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

    def unarchived(why: str) -> FileState:
        return FileState(
            path=path,
            kind="file",
            sha256="",
            size=st.st_size,
            mode=stat.S_IMODE(st.st_mode),
            uid=st.st_uid,
            gid=st.st_gid,
            mtime_ns=st.st_mtime_ns,
            unarchived=why,
        )

    if st.st_size > limits.max_file_bytes:
        why = f"{st.st_size} bytes is over the per-file limit of {limits.max_file_bytes}"
        if tolerant:
            return unarchived(f"not archived: {why}")
        raise TooLarge(f"{path}: {why}", hint="raise [files] max_file_size or exclude the file")
    known = cache.lookup(path, st) if cache is not None else None
    if known is not None and (sink is None or sink.has(known[0])):
        (digest, xattrs), size = known, st.st_size
    else:
        try:
            digest, size = _hash(real, limits.max_file_bytes, sink)
        except _SinkFailed as e:  # the state disk: never blamed on the managed file
            if tolerant:
                return unarchived(f"not archived: state directory: {e.err.strerror or e.err}")
            raise e.err from None
        except FileNotFoundError:
            raise
        except OSError as e:
            if e.errno == errno.EFBIG:
                why = f"grew over the per-file limit of {limits.max_file_bytes} while being read"
            elif e.errno in (errno.ELOOP, errno.EINVAL):  # swapped for a symlink/FIFO meanwhile
                why = "changed while being read"
            else:
                why = f"cannot read managed file: {e.strerror or e}"
            if tolerant:
                return unarchived(f"not archived: {why}")
            if e.errno == errno.EFBIG:
                raise TooLarge(f"{path}: {why}") from None
            hint = "try again" if "changed" in why else None
            raise ConfigError(f"{path}: {why}", hint=hint) from None
        try:
            xattrs = fsutil.get_xattrs(real)
        except OSError as e:
            if tolerant:
                return unarchived(f"not archived: cannot read xattrs: {e.strerror or e}")
            raise ConfigError(f"{path}: cannot read xattrs: {e.strerror or e}") from None
        if cache is not None and size == st.st_size:
            cache.record(path, st, digest, xattrs)
    return FileState(
        path=path,
        kind="file",
        sha256=digest,
        size=size,
        mode=stat.S_IMODE(st.st_mode),
        uid=st.st_uid,
        gid=st.st_gid,
        mtime_ns=st.st_mtime_ns,
        xattrs=xattrs,
    )


def scan(
    root: Path,
    fileset: FileSet,
    limits: Limits | None = None,
    sink: BlobSink | None = None,
    cache: StatCache | None = None,
    have_blob: Callable[[str], bool] | None = None,
    errors: list[Skipped] | None = None,
) -> Manifest:
    """Every managed file now. Unreadable or oversize files abort with a clear error (a file we
    could not snapshot would otherwise be deleted by a rollback as "added").

    With ``errors`` (a rollback archiving what it is about to replace, or a read-only view)
    nothing aborts: an oversized or unreadable file is listed with ``unarchived`` set (so a
    restore still rewrites or deletes it) and named in ``errors``; the total cap does not apply.
    """
    limits = limits or Limits()
    tolerant = errors is not None
    paths, skipped = list_managed(root, fileset, errors)
    files: list[FileState] = []
    total = 0
    for p in paths:
        try:
            got = stat_one(root, p, limits, sink, cache, have_blob, tolerant=tolerant)
        except FileNotFoundError:
            continue  # vanished between listing and reading: it is simply not there now
        except Exception as e:
            if errors is None:
                raise
            errors.append(Skipped(p, str(e.message if isinstance(e, ConfigError) else e)))
            continue
        if isinstance(got, Skipped):
            skipped.append(got)
            continue
        if got.unarchived is not None:
            assert errors is not None
            errors.append(Skipped(p, got.unarchived))
        elif not tolerant:
            total += got.size
            if total > limits.max_total_bytes:
                raise TooLarge(
                    f"managed files total more than the limit of {limits.max_total_bytes} bytes",
                    hint="raise [files] max_total_size or narrow the globs",
                )
        files.append(got)
    return Manifest(tuple(files), tuple(skipped))


def unsafe_dirs(root: Path, fileset: FileSet, manifest: Manifest) -> list[str]:
    """Managed directories (and the directories above them) another user could write in."""
    dirs = set(fileset.watch_dirs()) | {f.path.parent for f in manifest.files}
    out = []
    for d in sorted(dirs):
        if (why := fsutil.dir_chain_problem(root, d)) is not None and why not in out:
            out.append(why)
    return out


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
        except OSError as e:
            raise ConfigError(f"{d}: cannot check managed directory: {e.strerror or e}") from None
    return out


def make_durable(root: Path, fileset: FileSet) -> None:
    """Flush the filesystems holding the managed directories (one syncfs each)."""
    dirs = []
    for d in sorted(fileset.watch_dirs()):
        real = fsutil.under(root, d)
        while not real.is_dir() and real != root:
            real = real.parent
        dirs.append(real)
    try:
        _sync_barrier(dirs)
    except OSError as e:  # a managed filesystem, not the state directory
        raise Failed(f"cannot flush the managed files to disk: {e.strerror or e}") from None


def read_current(root: Path, path: PurePosixPath, limit: int) -> bytes | None:
    """Content of a managed regular file now, for diffs and interface planning (None if missing,
    not a regular file, over ``limit`` or unreadable: these views must never fail on a file)."""
    try:
        return fsutil.read_nofollow(fsutil.under(root, path), limit)
    except OSError as e:
        log.debug("%s: not read: %s", path, e)
        return None


# ------------------------------------------------------------------------------------ restore


class _Dirs:
    """Open fds of the managed directories one restore touches (each opened once, safely)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.fds: dict[PurePosixPath, int] = {}

    def get(self, d: PurePosixPath, *, create: bool = False) -> int:
        fd = self.fds.get(d)
        if fd is None:
            fd = self.fds[d] = fsutil.open_dir(self.root, d, create=create)
        return fd

    def close(self) -> None:
        for fd in self.fds.values():
            os.close(fd)
        self.fds.clear()


@dataclasses.dataclass
class _Pending:
    state: FileState
    dir_fd: int
    tmp: str
    action: str


def _prepare(dirs: _Dirs, f: FileState, blob: BlobSource) -> _Pending:
    """Write the snapshot version under its fixed temp name beside the target, metadata set."""
    pfd = dirs.get(f.path.parent, create=True)
    name = f.path.name
    action = "recreate"
    with contextlib.suppress(FileNotFoundError):
        os.stat(name, dir_fd=pfd, follow_symlinks=False)
        action = "rewrite"
    if f.kind == "symlink":
        assert f.target is not None
        tmp = f".{name}{LINK_SUFFIX}"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp, dir_fd=pfd)
        os.symlink(f.target, tmp, dir_fd=pfd)
        os.chown(tmp, f.uid, f.gid, dir_fd=pfd, follow_symlinks=False)
        return _Pending(f, pfd, tmp, action)
    tmp = f".{name}{TEMP_SUFFIX}"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(tmp, flags, 0o600, dir_fd=pfd)
    except FileExistsError:  # left by a restore that crashed: this run replaces it
        os.unlink(tmp, dir_fd=pfd)
        fd = os.open(tmp, flags, 0o600, dir_fd=pfd)
    try:
        h = hashlib.sha256()
        with blob(f.sha256) as src:
            while chunk := src.read(fsutil.CHUNK):
                h.update(chunk)
                fsutil.write_all(fd, chunk)
        if h.hexdigest() != f.sha256:
            raise OSError(errno.EIO, f"snapshot blob {f.sha256[:12]} is corrupt")
        os.fchown(fd, f.uid, f.gid)  # before chmod: chown clears set-id bits
        os.fchmod(fd, f.mode)
        fsutil.set_xattrs(fd, f.xattrs)
        os.utime(fd, ns=(f.mtime_ns, f.mtime_ns))
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=pfd)
        raise
    finally:
        os.close(fd)
    return _Pending(f, pfd, tmp, action)


# Fixed names (never matched by a glob: they start with a dot), so recovery can find and remove
# the temp files of a restore that was killed half-way.
TEMP_SUFFIX = ".nct-restore"
LINK_SUFFIX = ".nct-link"


def sweep_temps(root: Path, paths: Iterable[PurePosixPath]) -> list[str]:
    """Remove restore temp files a crashed rollback left beside these managed paths."""
    removed = []
    for d in sorted({p.parent for p in paths}):
        try:
            fd = fsutil.open_dir(root, d)
        except (OSError, NotPermitted):
            continue  # missing or unsafe: the restore reports it for each of its files
        try:
            for n in os.listdir(fd):
                if n.startswith(".") and (n.endswith(TEMP_SUFFIX) or n.endswith(LINK_SUFFIX)):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(n, dir_fd=fd)
                        removed.append(str(d / n))
        except OSError as e:  # the restore recreates each temp name anyway (O_EXCL after unlink)
            log.warning("cannot sweep restore temp files in %s: %s", d, e)
        finally:
            os.close(fd)
    return removed


def _sync_barrier(dirs: Iterable[Path]) -> None:
    seen: set[int] = set()
    for d in dirs:
        dev = os.stat(d).st_dev
        if dev not in seen:
            seen.add(dev)
            fsutil.syncfs(d)


def _why(e: Exception) -> str:
    if isinstance(e, OSError):
        return e.strerror or str(e)
    return str(e)


def restore(
    root: Path,
    write: Iterable[FileState],
    delete: Iterable[PurePosixPath],
    blob: BlobSource,
) -> list[StepResult]:
    """Converge the given paths; keep going past failures and report each one."""
    results: list[StepResult] = []
    pending: list[_Pending] = []
    dirs = _Dirs(root)
    try:
        for f in write:
            try:
                pending.append(_prepare(dirs, f, blob))
            except Exception as e:
                results.append(StepResult("rewrite", str(f.path), False, _why(e)))
        touched: dict[int, PurePosixPath] = {}
        seen_dev: set[int] = set()
        for p in pending:
            dev = os.fstat(p.dir_fd).st_dev
            if dev not in seen_dev:
                seen_dev.add(dev)
                try:
                    fsutil.syncfs_fd(p.dir_fd)
                except OSError as e:  # still restore (better than not), but say it loudly
                    where = str(p.state.path.parent)
                    results.append(StepResult("sync", where, False, _why(e)))
        for p in pending:
            name = p.state.path.name
            try:
                os.replace(p.tmp, name, src_dir_fd=p.dir_fd, dst_dir_fd=p.dir_fd)
                touched[p.dir_fd] = p.state.path.parent
                results.append(StepResult(p.action, str(p.state.path), True))
            except Exception as e:
                with contextlib.suppress(OSError):
                    os.unlink(p.tmp, dir_fd=p.dir_fd)
                results.append(StepResult(p.action, str(p.state.path), False, _why(e)))
        for path in delete:
            try:
                fd = dirs.get(path.parent)
                os.unlink(path.name, dir_fd=fd)
                touched[fd] = path.parent
                results.append(StepResult("delete", str(path), True))
            except FileNotFoundError:
                results.append(StepResult("delete", str(path), True))
            except Exception as e:
                results.append(StepResult("delete", str(path), False, _why(e)))
        for fd, d in touched.items():
            try:
                os.fsync(fd)
            except OSError as e:
                results.append(StepResult("sync", str(d), False, _why(e)))
    finally:
        dirs.close()
    return results
