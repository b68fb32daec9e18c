# SPDX-License-Identifier: GPL-3.0-or-later
"""The TLS contexts of the remote API (server and client side), from ``[remote]`` settings.

The one module that loads certificates: every way that can fail becomes a ConfigError naming
the setting and the file. It does not import aiohttp, so the CLI's remote client stays quick
to start.
"""

from __future__ import annotations

import os
import ssl
import stat
from pathlib import Path, PurePosixPath

from netcfg_txn.core.errors import ConfigError
from netcfg_txn.core.remoteconf import RemoteConfig

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
