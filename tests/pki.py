# SPDX-License-Identifier: GPL-3.0-or-later
"""A throwaway PKI for TLS tests, made with the openssl CLI (the cryptography package is not a
dependency): one CA, a server certificate for the test host names/addresses, a client certificate,
and a second, unrelated CA to provoke verification failures."""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

SERVER_NAMES = ("host1.test", "localhost")
SERVER_IPS = ("127.0.0.1", "::1", "192.0.2.1", "192.0.2.11", "198.51.100.1", "203.0.113.1")


@dataclasses.dataclass(frozen=True)
class Pki:
    dir: Path
    ca: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path
    other_client_cert: Path
    other_client_key: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _key(name: str, cwd: Path) -> None:
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-out", name, cwd=cwd)  # fmt: skip


def _ca(stem: str, cn: str, cwd: Path) -> None:
    _key(f"{stem}.key", cwd)
    _openssl("req", "-x509", "-new", "-key", f"{stem}.key", "-out", f"{stem}.pem", "-days", "3",
             "-subj", f"/CN={cn}", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=cwd)  # fmt: skip


def _leaf(stem: str, ca: str, subj: str, ext: str, cwd: Path) -> None:
    _key(f"{stem}.key", cwd)
    _openssl("req", "-new", "-key", f"{stem}.key", "-out", f"{stem}.csr", "-subj", subj, cwd=cwd)
    (cwd / f"{stem}.ext").write_text(ext)
    _openssl("x509", "-req", "-in", f"{stem}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
             "-CAcreateserial", "-out", f"{stem}.pem", "-days", "3", "-extfile", f"{stem}.ext",
             cwd=cwd)  # fmt: skip


def make_pki(d: Path) -> Pki:
    d.mkdir(parents=True, exist_ok=True)
    _ca("ca", "nct test CA", d)
    _ca("other-ca", "nct unrelated CA", d)
    san = ",".join([f"DNS:{n}" for n in SERVER_NAMES] + [f"IP:{ip}" for ip in SERVER_IPS])
    server_ext = f"basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\nsubjectAltName={san}\n"
    _leaf("server", "ca", "/O=netcfg-txn tests/CN=host1.test", server_ext, d)
    client_ext = "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n"
    _leaf("client", "ca", "/O=netcfg-txn tests/CN=orchestrator1", client_ext, d)
    _leaf("other-client", "other-ca", "/CN=orchestrator1", client_ext, d)
    for key in d.glob("*.key"):
        key.chmod(0o600)
    return Pki(
        dir=d,
        ca=d / "ca.pem",
        ca_key=d / "ca.key",
        server_cert=d / "server.pem",
        server_key=d / "server.key",
        client_cert=d / "client.pem",
        client_key=d / "client.key",
        other_ca=d / "other-ca.pem",
        other_client_cert=d / "other-client.pem",
        other_client_key=d / "other-client.key",
    )
