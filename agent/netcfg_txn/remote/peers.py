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

import dataclasses
import datetime
import errno
import hmac
import logging
import os
import re
import secrets
import stat
import time
import tomllib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path, PurePath, PurePosixPath
from typing import Any

from netcfg_txn.core.errors import BadToken, ConfigError, NotFound, NotPermitted
from netcfg_txn.core.model import Actor
from netcfg_txn.core.tokens import hash_token as hash_token  # a peer token is hashed with it
from netcfg_txn.host import sd
from netcfg_txn.remote.subject import Subject, format_dn, parse_dn
from netcfg_txn.store.fsutil import atomic_write, fsync_dir, under

log = logging.getLogger(__name__)

OPERATIONS: tuple[str, ...] = ("start", "arm", "confirm", "rollback", "status", "diff")
# What a peer added without --operations may do. ``diff`` (file contents, secrets redacted, and
# the rollback plan) is granted only by name: a controller that confirms needs no file contents.
DEFAULT_OPERATIONS = frozenset(OPERATIONS) - {"diff"}
# Every authenticated peer may ask for the version and capabilities, whatever its operations.
ANY_PEER_OPERATIONS = frozenset({"version"})

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_KEYS = frozenset({"name", "token_sha256", "expires", "operations", "client_subject"})
_MAX_BEARER = 1024
_MAX_FILE = 16384


@dataclasses.dataclass(frozen=True)
class Peer:
    name: str
    token_sha256: str
    expires_wall_s: float | None = None
    operations: frozenset[str] = DEFAULT_OPERATIONS
    client_subject: str | None = None

    def to_json(self) -> dict[str, Any]:
        """For ``peer list``: everything but the hash."""
        return {
            "name": self.name,
            "expires": _format_time(self.expires_wall_s) if self.expires_wall_s else None,
            "operations": sorted(self.operations),
            "client_subject": self.client_subject,
        }


def valid_name(name: str) -> bool:
    return _NAME.fullmatch(name) is not None


def _format_time(wall_s: float) -> str:
    return datetime.datetime.fromtimestamp(wall_s, datetime.UTC).isoformat().replace("+00:00", "Z")


def parse_time(value: object, where: str) -> float:
    """An RFC 3339 timestamp (TOML datetime or string) with an explicit offset, as wall seconds."""
    if isinstance(value, datetime.datetime):
        dt = value
    elif isinstance(value, str):
        try:
            dt = datetime.datetime.fromisoformat(value.strip())
        except ValueError:
            raise ConfigError(f"{where}: not an RFC 3339 timestamp: {value!r}") from None
    else:
        raise ConfigError(f"{where}: expected an RFC 3339 timestamp, got {type(value).__name__}")
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ConfigError(f"{where}: timestamp needs a UTC offset (e.g. 2026-01-31T00:00:00Z)")
    return dt.timestamp()


def parse_operations(value: object, where: str) -> frozenset[str]:
    if isinstance(value, str):
        items: list[object] = [v for v in re.split(r"[\s,]+", value) if v]
    elif isinstance(value, list):
        items = list(value)
    else:
        raise ConfigError(f"{where}: expected a list of operations")
    ops = set()
    for item in items:
        if not isinstance(item, str) or item not in OPERATIONS:
            raise ConfigError(
                f"{where}: unknown operation {item!r} (one of {' '.join(OPERATIONS)})"
            )
        ops.add(item)
    if not ops:
        raise ConfigError(f"{where}: empty list: a peer must be allowed at least one operation")
    return frozenset(ops)


def peer_from_toml(table: Mapping[str, Any], where: str) -> Peer:
    """Validate one parsed peer file. Pure."""
    for key in table:
        if key not in _KEYS:
            raise ConfigError(f"{where}: {key}: unknown key")
    name = table.get("name")
    if not isinstance(name, str) or not valid_name(name):
        raise ConfigError(f"{where}: name: missing or invalid (letters, digits, . _ -; max 64)")
    digest = table.get("token_sha256")
    if not isinstance(digest, str) or not _HEX64.fullmatch(digest):
        raise ConfigError(f"{where}: token_sha256: missing or not 64 lowercase hex digits")
    expires = None
    if "expires" in table:
        expires = parse_time(table["expires"], f"{where}: expires")
    operations = DEFAULT_OPERATIONS
    if "operations" in table:
        operations = parse_operations(table["operations"], f"{where}: operations")
    subject = table.get("client_subject")
    if subject is not None and (not isinstance(subject, str) or not subject.strip()):
        raise ConfigError(f"{where}: client_subject: expected a non-empty string")
    if subject is not None and _has_unescaped_eq(subject):
        try:
            parse_dn(subject)
        except ValueError as e:
            raise ConfigError(f"{where}: client_subject: {e}") from None
    return Peer(name, digest, expires, operations, subject.strip() if subject else None)


def peer_to_toml(peer: Peer) -> str:
    lines = [
        "# netcfg-txn remote peer; the token itself is not stored",
        f'name = "{peer.name}"',
        f'token_sha256 = "{peer.token_sha256}"',
    ]
    if peer.expires_wall_s is not None:
        lines.append(f'expires = "{_format_time(peer.expires_wall_s)}"')
    if peer.operations != DEFAULT_OPERATIONS:
        lines.append(
            "operations = [" + ", ".join(f'"{op}"' for op in sorted(peer.operations)) + "]"
        )
    if peer.client_subject:
        lines.append("client_subject = " + _toml_string(peer.client_subject))
    return "\n".join(lines) + "\n"


def _toml_string(s: str) -> str:
    return (
        '"'
        + "".join(c if c.isprintable() and c not in '"\\' else f"\\u{ord(c):04x}" for c in s)
        + '"'
    )


def subject_matches(expected: str, presented: Subject | str | None) -> bool:
    """``expected`` is a full DN (``CN=a,O=b``, RFC 4514 escapes) or a bare CN.

    Compared attribute by attribute against the certificate's structured subject, never as text:
    a certificate whose CN is ``mallory,CN=ansible`` has one CN, and it is not ``ansible``. A bare
    CN matches a subject with exactly one CN equal to it.
    """
    if presented is None:
        return False
    if isinstance(presented, str):
        try:
            presented = parse_dn(presented)
        except ValueError:
            return False
    if _has_unescaped_eq(expected):
        try:
            want = parse_dn(expected)
        except ValueError:
            return False
        return _fold(want) == _fold(presented)
    cns = [v for k, v in presented if k.upper() == "CN"]
    return cns == [expected.strip()]


def _has_unescaped_eq(text: str) -> bool:
    return re.search(r"(?<!\\)=", text) is not None


def _fold(subject: Subject) -> tuple[tuple[str, str], ...]:
    return tuple((k.upper(), v) for k, v in subject)


@dataclasses.dataclass(frozen=True)
class PeerDb:
    peers: tuple[Peer, ...] = ()
    problems: tuple[str, ...] = ()  # files skipped by a non-strict load, with why

    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.peers)

    def authenticate(
        self,
        bearer: str | None,
        client_subject: Subject | str | None,
        operation: str,
        now_wall_s: float,
        *,
        address: str | None = None,
    ) -> Actor:
        """The peer holding ``bearer``, allowed to do ``operation`` now, or BadToken/NotPermitted.

        Every peer's hash is compared (``hmac.compare_digest``) with no early exit, so the time
        taken does not depend on which peer, if any, matched. Messages never contain the token.
        """
        if not bearer:
            raise BadToken(
                "missing peer credentials", hint="send 'Authorization: Bearer <peer token>'"
            )
        digest = hash_token(bearer) if len(bearer) <= _MAX_BEARER else ""
        found: Peer | None = None
        for peer in self.peers:
            if hmac.compare_digest(peer.token_sha256, digest):
                found = peer
        if found is None:
            raise BadToken("unknown or revoked peer token")
        if found.expires_wall_s is not None and now_wall_s >= found.expires_wall_s:
            raise BadToken(
                f"credentials of peer {found.name} expired at {_format_time(found.expires_wall_s)}",
                hint=f"rotate them: netcfg-txn peer add --rotate {found.name}",
            )
        if found.client_subject is not None and not subject_matches(
            found.client_subject, client_subject
        ):
            if client_subject is None:
                got = "no client certificate"
            elif isinstance(client_subject, str):
                got = f"subject {client_subject}"
            else:
                got = f"subject {format_dn(client_subject)}"
            raise NotPermitted(
                f"peer {found.name} is bound to client certificate {found.client_subject}, "
                f"got {got}"
            )
        if operation not in found.operations and operation not in ANY_PEER_OPERATIONS:
            raise NotPermitted(
                f"peer {found.name} may not {operation}",
                hint=f"allowed: {' '.join(sorted(found.operations))}",
            )
        return Actor(kind="remote", peer=found.name, address=address)


# ------------------------------------------------------------------------------------ files


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
