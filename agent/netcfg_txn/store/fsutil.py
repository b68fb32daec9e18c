# SPDX-License-Identifier: GPL-3.0-or-later
"""Crash-safe filesystem primitives. Stdlib only.

Every state file goes temp -> fsync -> rename -> fsync(dir) (safety rule 3). Managed paths are never
followed through symlinks: reads open with ``O_NOFOLLOW``; writes go through a directory fd opened
one component at a time from the root with ``O_DIRECTORY | O_NOFOLLOW`` (``open_dir``), so a
symlink swapped into the path after a check can never redirect them.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import fcntl
import json
import os
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from netcfg_txn.core.errors import NotPermitted


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_libc: Any = None


def syncfs(path: Path) -> None:
    """Flush one filesystem in one call: far cheaper than an fsync per file for big snapshots.

    Used as a barrier: data written before it is durable before any rename issued after it.
    """
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        syncfs_fd(fd, str(path))
    finally:
        os.close(fd)


def syncfs_fd(fd: int, name: str = "") -> None:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    if _libc.syncfs(fd) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), name or None)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def write_temp(
    directory: Path,
    name: str,
    data: bytes,
    *,
    mode: int,
    uid: int = -1,
    gid: int = -1,
    fsync: bool = True,
) -> Path:
    """Write ``data`` to a fresh temp file beside ``name``, metadata set before it is named."""
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            os.fchmod(f.fileno(), mode)
            if uid != -1 or gid != -1:
                os.fchown(f.fileno(), uid, gid)
            f.flush()
            if fsync:
                os.fsync(f.fileno())
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return Path(tmp)


def atomic_write(
    path: Path, data: bytes, *, mode: int = 0o600, uid: int = -1, gid: int = -1
) -> None:
    """After a crash ``path`` holds the old bytes or the new ones, never a mix."""
    tmp = write_temp(path.parent, path.name, data, mode=mode, uid=uid, gid=gid)
    try:
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def write_json(path: Path, doc: Any) -> None:
    # Compact: manifests of 10,000 files are written on every start and rollback.
    atomic_write(path, (json.dumps(doc, separators=(",", ":")) + "\n").encode(), mode=0o600)


def read_json(path: Path) -> Any:
    """Raises FileNotFoundError when missing, ValueError when corrupt."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        return json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: corrupt JSON: {e}") from None


def remove(path: Path) -> bool:
    """Unlink and fsync the parent; False if it was already gone (idempotent)."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    fsync_dir(path.parent)
    return True


def remove_tree(path: Path) -> None:
    """Remove a directory we own, without following symlinks inside it."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(path)
        return
    for entry in os.scandir(path):
        if entry.is_dir(follow_symlinks=False):
            remove_tree(Path(entry.path))
        else:
            os.unlink(entry.path)
    os.rmdir(path)


def makedirs(path: Path, mode: int = 0o700) -> None:
    path.mkdir(mode=mode, parents=True, exist_ok=True)


@contextlib.contextmanager
def flock(path: Path, *, blocking: bool = True) -> Iterator[int]:
    """An exclusive lock on ``path`` for the life of the context (BlockingIOError if taken)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        yield fd
    finally:
        os.close(fd)


def take_lock(path: Path) -> int:
    """Take an exclusive lock held until the process exits; raises BlockingIOError if held."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BaseException:
        os.close(fd)
        raise
    return fd


# ------------------------------------------------------------------------------ managed paths


def under(root: Path, path: PurePosixPath) -> Path:
    """Where ``path`` of the managed system lives for this process. Rejects anything not normal."""
    s = str(path)  # pathlib already dropped "." and empty components; ".." it keeps
    if not s.startswith("/") or "/../" in s + "/":
        raise NotPermitted(f"refusing a managed path that is not absolute and normal: {path}")
    r = str(root)
    return Path(s if r == "/" else r + s)


# Reads and hashes go in chunks of this size: a managed file is never held whole in memory.
CHUNK = 1 << 20
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def dir_problem(st: os.stat_result) -> str | None:
    """Why another user could race our writes in this directory, or None.

    Trusted: owned by root (or by ourselves, for a fake root run unprivileged) and not writable
    by group or others, unless sticky (then others cannot rename or delete what we put there).
    """
    if st.st_uid not in (0, os.geteuid()):
        return f"owned by uid {st.st_uid}, not root"
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o022 and not mode & stat.S_ISVTX:
        return f"writable by group or others (mode {mode:04o})"
    return None


def open_dir(root: Path, path: PurePosixPath, *, create: bool = False) -> int:
    """An fd of managed directory ``path``, opened from ``root`` one component at a time.

    No component is followed if it is a symlink (the parent is held open, so a swap after the
    check changes nothing) and every one must pass ``dir_problem``. ``create`` makes missing
    components (0755). Raises FileNotFoundError when missing, NotPermitted when unsafe.
    """
    under(root, path / "x")  # absolute and normal
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    shown = PurePosixPath("/")
    try:
        for part in ("", *path.parts[1:]):
            if part:
                shown = shown / part
                try:
                    nfd = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(part, 0o755, dir_fd=fd)
                    nfd = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except OSError as e:
                    if e.errno not in (errno.ELOOP, errno.ENOTDIR):
                        raise
                    if stat.S_ISLNK(os.stat(part, dir_fd=fd, follow_symlinks=False).st_mode):
                        raise NotPermitted(
                            f"refusing to follow a symlinked directory: {shown}"
                        ) from None
                    raise NotPermitted(f"{shown}: not a directory") from None
                os.close(fd)
                fd = nfd
            if (why := dir_problem(os.fstat(fd))) is not None:
                raise NotPermitted(
                    f"refusing to write in {shown}: {why}",
                    hint=f"make it root-owned and not group/other-writable: chown root {shown}; "
                    f"chmod go-w {shown}",
                )
        return fd
    except BaseException:
        os.close(fd)
        raise


def dir_chain_problem(root: Path, path: PurePosixPath) -> str | None:
    """The first directory from ``root`` down to ``path`` that fails ``dir_problem``, as a
    message; missing or symlinked components end the walk (those are handled elsewhere)."""
    real = root
    shown = PurePosixPath("/")
    for part in ("", *path.parts[1:]):
        if part:
            real, shown = real / part, shown / part
        try:
            st = os.lstat(real)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as e:
            return f"{shown}: cannot check: {e.strerror or e}"
        if not stat.S_ISDIR(st.st_mode):
            return None
        if (why := dir_problem(st)) is not None:
            return f"{shown}: {why}"
    return None


def stream_nofollow(path: Path, limit: int, consume: Callable[[bytes], None]) -> int:
    """Feed a regular file to ``consume`` in chunks without following a symlink at its name;
    returns its size. EFBIG as soon as it exceeds ``limit`` bytes: never read whole."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        total = 0
        while True:
            chunk = os.read(fd, CHUNK)
            if not chunk:
                return total
            total += len(chunk)
            if total > limit:
                raise OSError(errno.EFBIG, f"larger than {limit} bytes", str(path))
            consume(chunk)
    finally:
        os.close(fd)


def read_nofollow(path: Path, limit: int) -> bytes:
    """Read a regular file without following a symlink at its name; at most ``limit`` bytes."""
    chunks: list[bytes] = []
    stream_nofollow(path, limit, chunks.append)
    return b"".join(chunks)


def get_xattrs(path: Path) -> tuple[tuple[str, str], ...]:
    """All xattrs (incl. security.selinux) of ``path`` itself, never of a symlink's target."""
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as e:
        if e.errno in (errno.ENOTSUP, errno.EPERM):
            return ()
        raise
    out = []
    for name in sorted(names):
        with contextlib.suppress(OSError):
            out.append((name, os.getxattr(path, name, follow_symlinks=False).hex()))
    return tuple(out)


def set_xattrs(fd: int, xattrs: tuple[tuple[str, str], ...]) -> None:
    """Make the xattrs of the open file ``fd`` exactly ``xattrs``."""
    want = dict(xattrs)
    try:
        have = set(os.listxattr(fd))
    except OSError as e:
        if e.errno == errno.ENOTSUP and not want:
            return
        raise
    for name in have - set(want):
        os.removexattr(fd, name)
    for name, value in want.items():
        os.setxattr(fd, name, bytes.fromhex(value))
