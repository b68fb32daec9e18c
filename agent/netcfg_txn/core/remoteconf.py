# SPDX-License-Identifier: GPL-3.0-or-later
"""The ``[remote]`` section: the HTTPS listener of the remote API and its limits. Pure.

The TLS contexts built from it (which read the certificate files) are ``remote.tls``.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any, ClassVar

from netcfg_txn.core.errors import ConfigError
from netcfg_txn.core.settings import Parser, SettingError, check, from_table, setting
from netcfg_txn.core.units import parse_duration

DEFAULT_PORT = 7468

# The unit's LimitNOFILE= (1024) must hold every remote connection plus the daemon's own fds.
MAX_CONNECTIONS = 512


def parse_listen(item: str) -> tuple[str, int]:
    """``ADDR:PORT``, ``[V6ADDR]:PORT`` or ``HOSTNAME:PORT`` → (host, port). Raises ValueError."""
    m = re.fullmatch(r"\[([0-9A-Fa-f:.%a-zA-Z]+)\]:(\d{1,5})|([^\[\]:\s]+):(\d{1,5})", item.strip())
    if m is None:
        raise ValueError(f"{item!r} is not ADDR:PORT (IPv6 as [ADDR]:PORT)")
    host = m.group(1) or m.group(3)
    port = int(m.group(2) or m.group(4))
    if not 1 <= port <= 65535:
        raise ValueError(f"{item!r}: port out of range")
    if m.group(1) is not None:
        try:
            ipaddress.IPv6Address(host.split("%", 1)[0])
        except ValueError:
            raise ValueError(f"{item!r}: not an IPv6 address in brackets") from None
    return host, port


def _listen(v: Any) -> tuple[tuple[str, int], ...]:
    if isinstance(v, str):
        v = [v]
    if isinstance(v, tuple) and all(isinstance(i, tuple) for i in v):
        return v  # already parsed
    if not isinstance(v, list) or not all(isinstance(i, str) for i in v):
        raise ValueError("expected a list of 'ADDR:PORT' strings")
    return tuple(parse_listen(i) for i in v)


def _path(v: Any) -> PurePosixPath | None:
    """An absolute path; "" (or None) for none."""
    if v is None or v == "":
        return None
    if not isinstance(v, str | PurePosixPath):
        raise ValueError("expected a path string")
    p = PurePosixPath(v)
    if not p.is_absolute():
        raise ValueError("must be an absolute path")
    return p


def _bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError("expected true or false")
    return v


def _int(lo: int, hi: int) -> Parser:
    def parse(v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise ValueError(f"expected an integer from {lo} to {hi}")
        return v

    return parse


def _seconds(lo: float, hi: float) -> Parser:
    def parse(v: Any) -> float:
        try:
            seconds = parse_duration(v)
        except (ValueError, TypeError):
            seconds = float("nan")
        if not lo <= seconds <= hi:  # also refuses NaN
            raise ValueError(f"expected a duration from {lo:g}s to {hi:g}s")
        return seconds

    return parse


@dataclasses.dataclass(frozen=True)
class RemoteConfig:
    SECTION: ClassVar[str] = "remote"

    listen: tuple[tuple[str, int], ...] = setting((), _listen, "addresses the HTTPS API listens on")
    tls_cert: PurePosixPath | None = setting(
        PurePosixPath("/etc/netcfg-txn/tls/cert.pem"), _path, "server certificate (PEM)"
    )
    tls_key: PurePosixPath | None = setting(
        PurePosixPath("/etc/netcfg-txn/tls/key.pem"), _path, "its private key (root, 0600)"
    )
    client_ca: PurePosixPath | None = setting(None, _path, "require client certs from this CA")
    insecure_plaintext: bool = setting(False, _bool, "plain HTTP, loopback only")
    peers_dir: PurePosixPath = setting(
        PurePosixPath("/etc/netcfg-txn/peers.d"), _path, "one TOML file per remote peer"
    )
    auth_failures_per_minute: int = setting(30, _int(1, 100000), "per source, then 429")
    max_body_bytes: int = setting(65536, _int(1024, 16 << 20), "largest request body")
    # Resource limits of the listener: nothing a peer does may hold fds for long.
    header_timeout_s: float = setting(
        5.0, _seconds(0.5, 60.0), "time to send the headers", key="header_timeout"
    )
    idle_timeout_s: float = setting(
        15.0, _seconds(0.5, 300.0), "idle keep-alive connection", key="idle_timeout"
    )
    max_connections: int = setting(64, _int(1, MAX_CONNECTIONS), "open connections in all")
    max_connections_per_source: int = setting(8, _int(1, MAX_CONNECTIONS), "per source address")

    def __post_init__(self) -> None:
        check(self)
        if self.peers_dir is None:
            raise SettingError(self.SECTION, "peers_dir", "must not be empty")
        plaintext = self.insecure_plaintext
        if self.listen and not plaintext and (self.tls_cert is None or self.tls_key is None):
            raise SettingError(
                self.SECTION,
                "tls_cert",
                "tls_cert and tls_key are required when listen is set",
                hint="or set insecure_plaintext = true (never on an untrusted network)",
            )
        if plaintext and self.client_ca is not None:
            raise SettingError(self.SECTION, "client_ca", "client certificates need TLS")
        for host, port in self.listen if plaintext else ():
            if not _loopback(host):
                raise SettingError(
                    self.SECTION,
                    "insecure_plaintext",
                    f"plain HTTP is only allowed on loopback, not on {host}:{port}",
                    hint="configure tls_cert/tls_key, or tunnel to 127.0.0.1 (ssh -L)",
                )

    @property
    def enabled(self) -> bool:
        return bool(self.listen)

    @classmethod
    def from_toml(cls, table: Mapping[str, Any], where: str) -> RemoteConfig:
        """Validate a merged ``[remote]`` table; ``where`` names the file(s) it came from."""
        try:
            return from_table(cls, table)
        except SettingError as e:
            raise ConfigError(f"{where}: {e}", hint=e.hint) from None


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False  # a host name could resolve anywhere
