# SPDX-License-Identifier: GPL-3.0-or-later
"""Tokens as the API and the state files see them: the header that carries a transaction's
token, and the hash that is stored and compared in place of any token (transactions and peers
alike). Pure."""

from __future__ import annotations

TOKEN_HEADER = "X-Netcfg-Txn-Token"


def hash_token(token: str) -> str:
    """SHA-256 hex of the token's UTF-8 bytes. ``surrogatepass``: a header value that arrived
    with undecodable bytes hashes to something that matches no stored hash instead of raising."""
    import hashlib  # here: the CLI, which only needs the header, starts without OpenSSL

    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
