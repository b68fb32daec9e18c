# SPDX-License-Identifier: GPL-3.0-or-later
"""Peers as values: a peer's record (name, token hash, expiry, operations, client subject), its
TOML form, the subject match, and ``PeerDb.authenticate``. No I/O: ``peers`` reads and writes the
files."""

from __future__ import annotations

import dataclasses
import datetime
import hmac
import re
from collections.abc import Mapping
from typing import Any

from netcfg_txn.core.errors import BadToken, ConfigError, NotPermitted
from netcfg_txn.core.model import Actor
from netcfg_txn.core.tokens import hash_token as hash_token  # a peer token is hashed with it
from netcfg_txn.remote.subject import Subject, format_dn, parse_dn

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
