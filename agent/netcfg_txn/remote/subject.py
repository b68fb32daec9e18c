# SPDX-License-Identifier: GPL-3.0-or-later
"""A TLS peer's certificate subject, structured: parse, format, read from a request. Pure."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Protocol


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


def client_subject(request: _Request) -> Subject | None:
    """The subject of the TLS client certificate the server verified, or None (no cert, no TLS)."""
    transport = request.transport
    if transport is None:
        return None
    return subject_attrs(transport.get_extra_info("peercert"))
