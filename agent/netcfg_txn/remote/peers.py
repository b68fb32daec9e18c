# SPDX-License-Identifier: GPL-3.0-or-later
"""Remote peer credentials: ``peers.d/NAME.toml`` files, and checking a bearer token against them.

A peer file holds only the SHA-256 of the peer's token, never the token. ``add_peer`` prints the
token once. Revoking a peer removes its file; the daemon reloads (SIGHUP or file change) by calling
``load_peers`` again, which is cheap: one directory scan and a few small reads.

Files are trusted only if they are regular files (symlinks are not followed), owned by root and not
writable or readable by anyone but root and, at most, root's group (0600/0640). ``PeerDb`` itself
is pure: ``authenticate`` takes the wall time as an argument.
"""

from __future__ import annotations

import errno
import logging
import os
import secrets
import stat
import time
import tomllib
from collections.abc import Callable, Iterable
from pathlib import Path, PurePath, PurePosixPath

from netcfg_txn.core.errors import ConfigError, NotFound
from netcfg_txn.core.tokens import hash_token as hash_token  # a peer token is hashed with it
from netcfg_txn.host import sd
from netcfg_txn.remote.peerdb import (
    _MAX_FILE,
    DEFAULT_OPERATIONS,
    parse_operations,
    peer_to_toml,
    valid_name,
)
from netcfg_txn.remote.peerdb import (
    Peer as Peer,
)
from netcfg_txn.remote.peerdb import (
    PeerDb as PeerDb,
)
from netcfg_txn.remote.peerdb import (
    parse_time as parse_time,
)
from netcfg_txn.remote.peerdb import (
    peer_from_toml as peer_from_toml,
)
from netcfg_txn.remote.peerdb import (
    subject_matches as subject_matches,
)
from netcfg_txn.store.fsutil import atomic_write, fsync_dir, under

log = logging.getLogger(__name__)


def peers_path(dir: PurePath, root: Path) -> Path:
    """Where the configured ``dir`` (as on the managed system) lives for this process."""
    return under(root, PurePosixPath(dir))


def _check_dir(path: Path, expected_uid: int) -> None:
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise ConfigError(f"{path}: peers_dir is not a directory (symlinks are not followed)")
    if st.st_uid != expected_uid or st.st_mode & 0o022:
        raise ConfigError(
            f"{path}: peers_dir must be owned by uid {expected_uid} and not group/world-writable "
            f"(mode {stat.S_IMODE(st.st_mode):04o}, uid {st.st_uid})"
        )


def _read_peer_file(path: Path, expected_uid: int) -> Peer:
    where = str(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise ConfigError(f"{where}: is a symlink; peer files must be regular files") from None
        raise ConfigError(f"{where}: cannot open: {e.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"{where}: not a regular file")
        if st.st_uid != expected_uid:
            raise ConfigError(f"{where}: owned by uid {st.st_uid}, must be owned by {expected_uid}")
        if stat.S_IMODE(st.st_mode) & ~0o640:
            raise ConfigError(
                f"{where}: mode {stat.S_IMODE(st.st_mode):04o} is too open (use 0600 or 0640)"
            )
        data = os.read(fd, _MAX_FILE + 1)
    finally:
        os.close(fd)
    if len(data) > _MAX_FILE:
        raise ConfigError(f"{where}: larger than {_MAX_FILE} bytes")
    try:
        table = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"{where}: invalid TOML: {e}") from None
    peer = peer_from_toml(table, where)
    if peer.name != path.name.removesuffix(".toml"):
        raise ConfigError(f"{where}: name: {peer.name!r} does not match the file name")
    return peer


def load_peers(
    dir: PurePath, root: Path = Path("/"), *, strict: bool = True, expected_uid: int = 0
) -> PeerDb:
    """Read every ``*.toml`` in ``dir`` (hidden files and other names are ignored).

    A missing directory means no peers. With ``strict`` the first bad file raises ConfigError (for
    start-up and ``peer list``); without it, bad files are skipped and listed in ``problems``, so a
    reload still drops revoked peers when some other file is broken (fail closed per file).
    """
    path = peers_path(dir, root)
    try:
        _check_dir(path, expected_uid)
        names = sorted(os.listdir(path))
    except FileNotFoundError:
        return PeerDb()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read peers_dir: {e.strerror}") from None
    peers: list[Peer] = []
    problems: list[str] = []
    for name in names:
        if name.startswith(".") or not name.endswith(".toml"):
            continue
        try:
            peers.append(_read_peer_file(path / name, expected_uid))
        except ConfigError as e:
            if strict:
                raise
            problems.append(e.message)
    # Two files with one token: the copy left behind when a peer was revoked by renaming, or a
    # pasted file. Whichever name is kept, the other's holder keeps working under it; refuse both.
    by_hash: dict[str, list[str]] = {}
    for peer in peers:
        by_hash.setdefault(peer.token_sha256, []).append(peer.name)
    shared = {h: n for h, n in by_hash.items() if len(n) > 1}
    if shared:
        for names_ in shared.values():
            msg = (
                f"{path}: peers {', '.join(names_)} have the same token_sha256; "
                "all of them are refused until each has its own token (peer add --rotate NAME)"
            )
            log.critical("peers: %s", msg)
            if strict:
                raise ConfigError(msg)
            problems.append(msg)
        peers = [p for p in peers if p.token_sha256 not in shared]
    return PeerDb(tuple(peers), tuple(problems))


def _checked_name(name: str) -> str:
    if not valid_name(name):
        raise ConfigError(f"invalid peer name {name!r} (letters, digits, . _ -; max 64)")
    return name


def add_peer(
    dir: PurePath,
    name: str,
    expires: str | float | None = None,
    operations: Iterable[str] | None = None,
    *,
    client_subject: str | None = None,
    rotate: bool = False,
    root: Path = Path("/"),
) -> str:
    """Create (or, with ``rotate``, replace) peer NAME and return its new token. Shown once only."""
    path = peers_path(dir, root)
    file = path / f"{_checked_name(name)}.toml"
    expires_s: float | None
    if expires is None or isinstance(expires, float):
        expires_s = expires
    else:
        expires_s = parse_time(expires, "--expires")
    ops = (
        DEFAULT_OPERATIONS
        if operations is None
        else parse_operations(list(operations), "--operations")
    )
    token = secrets.token_urlsafe(32)
    peer = Peer(name, hash_token(token), expires_s, ops, client_subject or None)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if os.path.lexists(file) and not rotate:
        raise ConfigError(
            f"{file}: peer {name} exists",
            hint=f"use 'peer add --rotate {name}' to replace its token",
        )
    atomic_write(file, peer_to_toml(peer).encode(), mode=0o600)
    return token


def revoke_peer(dir: PurePath, name: str, *, root: Path = Path("/")) -> None:
    """Remove peer NAME's file. The daemon drops it on its next reload (file watch or SIGHUP)."""
    path = peers_path(dir, root)
    file = path / f"{_checked_name(name)}.toml"
    try:
        os.unlink(file)
    except FileNotFoundError:
        raise NotFound(f"no peer named {name} in {path}") from None
    fsync_dir(path)


def list_peers(dir: PurePath, *, root: Path = Path("/")) -> PeerDb:
    """All loadable peers, and the files that were skipped with why."""
    return load_peers(dir, root, strict=False)


class PeerCache:
    """The daemon's view of peers.d: reloads when the directory's entries change (checked at most
    every ``min_interval_s``) and on ``reload()`` (SIGHUP). Every load, the first one too, skips
    bad files and logs them (a bad peer file must never keep the daemon, and with it the dead-man
    timer, from starting), so a revocation always takes effect within ``min_interval_s``."""

    def __init__(
        self,
        dir: PurePath,
        root: Path = Path("/"),
        *,
        min_interval_s: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._path = peers_path(dir, root)
        self._dir, self._root = dir, root
        self._interval = min_interval_s
        self._now = monotonic
        self._db = PeerDb()
        self.reload()
        self._checked = self._now()

    def get(self) -> PeerDb:
        now = self._now()
        if now - self._checked >= self._interval:
            self._checked = now
            if self._fingerprint() != self._stamp:
                self.reload()
        return self._db

    def reload(self) -> PeerDb:
        self._stamp = self._fingerprint()
        try:
            db = load_peers(self._dir, self._root, strict=False)
        except ConfigError as e:  # the directory itself is now unusable: trust nobody
            sd.optional_failed(log, "peers", f"{e.message}; no remote peer is accepted")
            db = PeerDb((), (e.message,))
        for problem in db.problems:
            sd.optional_failed(log, "peers", f"ignoring {problem}")
        if db.names() != self._db.names():
            log.info("peers: now %s", ", ".join(db.names()) or "none")
        self._db = db
        return db

    def _fingerprint(self) -> tuple[object, ...]:
        try:
            st = os.lstat(self._path)
            entries = sorted(
                (e.name, s.st_ino, s.st_mtime_ns, s.st_size, s.st_mode, s.st_uid)
                for e in os.scandir(self._path)
                for s in (e.stat(follow_symlinks=False),)
            )
        except OSError:
            return ("missing",)
        return (st.st_ino, st.st_mtime_ns, st.st_mode, st.st_uid, tuple(entries))
