# SPDX-License-Identifier: GPL-3.0-or-later
"""The ``[remote]`` settings and the TLS contexts built from them (server and client side).

``RemoteConfig.from_toml`` is pure. ``server_context``/``client_context`` read certificate files and
turn every way that can fail into a ConfigError naming the setting and the file. This module does
not import aiohttp, so the CLI's remote client stays quick to start.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import os
import re
import ssl
import stat
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from netcfg_txn.core.errors import ConfigError

log = logging.getLogger(__name__)

DEFAULT_PORT = 7468

_KEYS = frozenset(
    {
        "listen",
        "tls_cert",
        "tls_key",
        "client_ca",
        "insecure_plaintext",
        "peers_dir",
        "auth_failures_per_minute",
        "max_body_bytes",
        "header_timeout",
        "idle_timeout",
        "max_connections",
        "max_connections_per_source",
    }
)


def parse_listen(item: str, where: str) -> tuple[str, int]:
    """``ADDR:PORT``, ``[V6ADDR]:PORT`` or ``HOSTNAME:PORT`` → (host, port)."""
    m = re.fullmatch(r"\[([0-9A-Fa-f:.%a-zA-Z]+)\]:(\d{1,5})|([^\[\]:\s]+):(\d{1,5})", item.strip())
    if m is None:
        raise ConfigError(f"{where}: {item!r} is not ADDR:PORT (IPv6 as [ADDR]:PORT)")
    host = m.group(1) or m.group(3)
    port = int(m.group(2) or m.group(4))
    if not 1 <= port <= 65535:
        raise ConfigError(f"{where}: {item!r}: port out of range")
    if m.group(1) is not None:
        try:
            ipaddress.IPv6Address(host.split("%", 1)[0])
        except ValueError:
            raise ConfigError(f"{where}: {item!r}: not an IPv6 address in brackets") from None
    return host, port


def _path(table: Mapping[str, Any], key: str, default: str, where: str) -> PurePosixPath | None:
    value = table.get(key, default)
    if not isinstance(value, str):
        raise ConfigError(f"{where}: {key}: expected a path string")
    if value == "":
        return None
    p = PurePosixPath(value)
    if not p.is_absolute():
        raise ConfigError(f"{where}: {key}: must be an absolute path")
    return p


def _int(table: Mapping[str, Any], key: str, default: int, lo: int, hi: int, where: str) -> int:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ConfigError(f"{where}: {key}: expected an integer from {lo} to {hi}")
    return value


def _seconds(
    table: Mapping[str, Any], key: str, default: float, lo: float, hi: float, where: str
) -> float:
    from netcfg_txn.core.config import parse_duration  # config imports this module

    value = table.get(key, default)
    try:
        seconds = parse_duration(value)
    except (ValueError, TypeError):
        seconds = float("nan")
    if not lo <= seconds <= hi:  # also refuses NaN
        raise ConfigError(f"{where}: {key}: expected a duration from {lo:g}s to {hi:g}s")
    return seconds


# The unit's LimitNOFILE= (1024) must hold every remote connection plus the daemon's own fds.
MAX_CONNECTIONS = 512


@dataclasses.dataclass(frozen=True)
class RemoteConfig:
    listen: tuple[tuple[str, int], ...] = ()
    tls_cert: PurePosixPath | None = PurePosixPath("/etc/netcfg-txn/tls/cert.pem")
    tls_key: PurePosixPath | None = PurePosixPath("/etc/netcfg-txn/tls/key.pem")
    client_ca: PurePosixPath | None = None
    insecure_plaintext: bool = False
    peers_dir: PurePosixPath = PurePosixPath("/etc/netcfg-txn/peers.d")
    auth_failures_per_minute: int = 30
    max_body_bytes: int = 65536
    # Resource limits of the listener (remotelisten.py): nothing a peer does may hold fds for long.
    header_timeout_s: float = 5.0
    idle_timeout_s: float = 15.0
    max_connections: int = 64
    max_connections_per_source: int = 8

    @property
    def enabled(self) -> bool:
        return bool(self.listen)

    @classmethod
    def from_toml(cls, table: Mapping[str, Any], where: str) -> RemoteConfig:
        """Validate a merged ``[remote]`` table; ``where`` names the file(s) it came from."""
        for name in table:
            if name not in _KEYS:
                raise ConfigError(f"{where}: remote.{name}: unknown key")
        raw_listen = table.get("listen", [])
        if isinstance(raw_listen, str):
            raw_listen = [raw_listen]
        if not isinstance(raw_listen, list) or not all(isinstance(i, str) for i in raw_listen):
            raise ConfigError(f"{where}: remote.listen: expected a list of 'ADDR:PORT' strings")
        listen = tuple(parse_listen(i, f"{where}: remote.listen") for i in raw_listen)
        plaintext = table.get("insecure_plaintext", False)
        if not isinstance(plaintext, bool):
            raise ConfigError(f"{where}: remote.insecure_plaintext: expected true or false")
        defaults = cls()
        cert = _path(table, "tls_cert", str(defaults.tls_cert), f"{where}: remote")
        key = _path(table, "tls_key", str(defaults.tls_key), f"{where}: remote")
        client_ca = _path(table, "client_ca", "", f"{where}: remote")
        peers_dir = _path(table, "peers_dir", str(defaults.peers_dir), f"{where}: remote")
        if peers_dir is None:
            raise ConfigError(f"{where}: remote.peers_dir: must not be empty")
        if listen and not plaintext and (cert is None or key is None):
            raise ConfigError(
                f"{where}: remote.tls_cert: tls_cert and tls_key are required when listen is set",
                hint="or set insecure_plaintext = true (never on an untrusted network)",
            )
        if plaintext and client_ca is not None:
            raise ConfigError(f"{where}: remote.client_ca: client certificates need TLS")
        if plaintext:
            for host, port in listen:
                if not _loopback(host):
                    raise ConfigError(
                        f"{where}: remote.insecure_plaintext: plain HTTP is only allowed on "
                        f"loopback, not on {host}:{port}",
                        hint="configure tls_cert/tls_key, or tunnel to 127.0.0.1 (ssh -L)",
                    )
        return cls(
            listen=listen,
            tls_cert=cert,
            tls_key=key,
            client_ca=client_ca,
            insecure_plaintext=plaintext,
            peers_dir=peers_dir,
            auth_failures_per_minute=_int(
                table, "auth_failures_per_minute", 30, 1, 100000, f"{where}: remote"
            ),
            max_body_bytes=_int(table, "max_body_bytes", 65536, 1024, 16 << 20, f"{where}: remote"),
            header_timeout_s=_seconds(table, "header_timeout", 5.0, 0.5, 60.0, f"{where}: remote"),
            idle_timeout_s=_seconds(table, "idle_timeout", 15.0, 0.5, 300.0, f"{where}: remote"),
            max_connections=_int(
                table, "max_connections", 64, 1, MAX_CONNECTIONS, f"{where}: remote"
            ),
            max_connections_per_source=_int(
                table, "max_connections_per_source", 8, 1, MAX_CONNECTIONS, f"{where}: remote"
            ),
        )


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False  # a host name could resolve anywhere


# Forward secrecy and AEAD only, for TLS 1.2 (TLS 1.3 suites are all AEAD already).
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL:!MD5:!SHA1:!SHA256:!SHA384"


def _check_key_file(key: Path) -> None:
    """The private key must be root's alone: anyone who can read it can impersonate the host."""
    try:
        st = os.stat(key)
    except OSError:
        return  # _readable reports it
    mode = stat.S_IMODE(st.st_mode)
    if st.st_uid != 0 or mode & 0o077:
        raise ConfigError(
            f"remote.tls_key: {key} must be owned by root with mode 0600 "
            f"(it is uid {st.st_uid}, mode {mode:04o})",
            hint=f"chown root:root {key} && chmod 600 {key}",
        )


def _under(root: Path, p: PurePosixPath) -> Path:
    return root.joinpath(*p.parts[1:])


def _readable(path: Path, setting: str) -> None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ConfigError(f"remote.{setting}: {path}: no such file") from None
    except OSError as e:
        raise ConfigError(f"remote.{setting}: {path}: {e.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"remote.{setting}: {path}: not a regular file")
    if not os.access(path, os.R_OK):
        raise ConfigError(f"remote.{setting}: {path}: not readable")


def _load_chain(ctx: ssl.SSLContext, cert: Path, key: Path, what: str) -> None:
    _readable(cert, f"{what}cert")
    _readable(key, f"{what}key")
    try:
        ctx.load_cert_chain(os.fspath(cert), os.fspath(key))
    except ssl.SSLError as e:
        if "KEY_VALUES_MISMATCH" in str(e):
            raise ConfigError(
                f"remote.{what}key: {key} does not match certificate {cert}"
            ) from None
        raise ConfigError(
            f"remote.{what}cert/{what}key: cannot load {cert} with {key}: {e.reason or e}",
            hint="both must be PEM; an encrypted key is not supported",
        ) from None


def _load_ca(ctx: ssl.SSLContext, ca: Path, setting: str) -> None:
    _readable(ca, setting)
    try:
        ctx.load_verify_locations(cafile=os.fspath(ca))
    except ssl.SSLError as e:
        raise ConfigError(f"remote.{setting}: {ca}: not a PEM CA bundle: {e.reason or e}") from None


def server_context(cfg: RemoteConfig, root: Path = Path("/")) -> ssl.SSLContext:
    """TLS ≥ 1.2 server context; with ``client_ca``, client certificates are required."""
    if cfg.tls_cert is None or cfg.tls_key is None:
        raise ConfigError("remote.tls_cert: tls_cert and tls_key are required for TLS")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(TLS12_CIPHERS)
    key = _under(root, cfg.tls_key)
    _readable(key, "tls_key")
    _check_key_file(key)
    _load_chain(ctx, _under(root, cfg.tls_cert), key, "tls_")
    if cfg.client_ca is not None:
        ctx.verify_mode = ssl.CERT_REQUIRED
        _load_ca(ctx, _under(root, cfg.client_ca), "client_ca")
    else:
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def client_context(
    ca_file: str | os.PathLike[str] | None,
    client_cert: str | os.PathLike[str] | None = None,
    client_key: str | os.PathLike[str] | None = None,
) -> ssl.SSLContext:
    """TLS ≥ 1.2 client context verifying the server against ``ca_file`` (system CAs if None)."""
    if ca_file is None:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    else:
        # An explicit trust anchor replaces the system store (the peer CA is provisioned).
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies the chain and the host name
        _load_ca(ctx, Path(ca_file), "ca")
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(TLS12_CIPHERS)
    if client_key is not None and client_cert is None:
        raise ConfigError("client_key given without client_cert")
    if client_cert is not None:
        cert = Path(client_cert)
        _load_chain(ctx, cert, Path(client_key) if client_key else cert, "client_")
    return ctx


class _Transport(Protocol):
    def get_extra_info(self, name: str, default: Any = ...) -> Any: ...


class _Request(Protocol):
    @property
    def transport(self) -> _Transport | None: ...


_SHORT = {
    "commonName": "CN",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "countryName": "C",
    "localityName": "L",
    "stateOrProvinceName": "ST",
    "domainComponent": "DC",
    "emailAddress": "emailAddress",
}


# A certificate subject as (attribute, value) pairs, most specific first (``CN`` before ``O``).
# Compared as a structure, never as rendered text: a CN of "mallory,CN=ansible" is one value.
Subject = tuple[tuple[str, str], ...]


def subject_attrs(peercert: Mapping[str, Any] | None) -> Subject | None:
    """A verified peer certificate's subject as structured pairs. Pure."""
    if not peercert or "subject" not in peercert:
        return None
    # RDNs most specific first; the attributes of a multi-valued RDN (a+b) keep their order.
    pairs = [
        (_SHORT.get(k, k), v)
        for rdn in reversed(peercert["subject"])
        for (k, v) in rdn
        if isinstance(k, str) and isinstance(v, str)
    ]
    return tuple(pairs) or None


def _escape_value(v: str) -> str:
    out = "".join("\\" + c if c in ',+"\\<>;' else c for c in v)
    if out.startswith((" ", "#")):
        out = "\\" + out
    if out.endswith(" ") and not out.endswith("\\ "):
        out = out[:-1] + "\\ "
    return out


def format_dn(subject: Subject) -> str:
    """RFC 4514 text (special characters escaped), for messages and ``client_subject`` config."""
    return ",".join(f"{k}={_escape_value(v)}" for k, v in subject)


def parse_dn(text: str) -> Subject:
    """``CN=a,O=b`` (RFC 4514 escapes: ``\\,`` and ``\\2C``) → pairs. Raises ValueError."""
    pairs: list[tuple[str, str]] = []
    key, buf, in_value, i = "", [], False, 0
    while i <= len(text):
        c = text[i] if i < len(text) else ","
        if c == "\\" and i + 1 < len(text):
            nxt = text[i + 1 : i + 3]
            if re.fullmatch(r"[0-9A-Fa-f]{2}", nxt):
                buf.append(chr(int(nxt, 16)))
                i += 3
            else:
                buf.append(text[i + 1])
                i += 2
            continue
        if c == "=" and not in_value:
            key, buf, in_value = "".join(buf).strip(), [], True
        elif c in ",+" and i <= len(text):
            if not in_value or not key:
                raise ValueError(f"{text!r}: expected ATTR=VALUE pairs separated by commas")
            pairs.append((_canonical_attr(key), "".join(buf).strip()))
            key, buf, in_value = "", [], False
        else:
            buf.append(c)
        i += 1
    return tuple(pairs)


def _canonical_attr(key: str) -> str:
    upper = {v.upper(): v for v in _SHORT.values()}
    long = {k.upper(): v for k, v in _SHORT.items()}
    k = key.strip().upper()
    return upper.get(k) or long.get(k) or key.strip()


def subject_dn(peercert: Mapping[str, Any] | None) -> str | None:
    """A verified peer certificate's subject as ``CN=…,O=…`` text (most specific first). Pure."""
    attrs = subject_attrs(peercert)
    return format_dn(attrs) if attrs else None


def client_subject(request: _Request) -> Subject | None:
    """The subject of the TLS client certificate the server verified, or None (no cert, no TLS)."""
    transport = request.transport
    if transport is None:
        return None
    return subject_attrs(transport.get_extra_info("peercert"))
