# SPDX-License-Identifier: GPL-3.0-or-later
"""Interface names as the kernel accepts them, checked before a name reaches any command line.

Names come from managed files (an ``iface`` stanza, a keyfile's ``interface-name``, a netplan id)
that a rollback is about to act on, so they are untrusted text: a stanza ``iface -aiFILE`` must
never turn into ``ifdown --force -aiFILE``. The kernel's own rule (``dev_valid_name``): 1 to 15
bytes, not ``.`` or ``..``, no ``/``, no ``:``, no whitespace. On top of it we refuse a leading
``-`` (an option to every tool) and control characters. ifupdown's logical alias names
(``eth0:1``) are allowed where the caller says so. Pure.
"""

from __future__ import annotations

IFNAMSIZ = 16  # including the terminating NUL


def problem(name: str, *, alias: bool = False) -> str | None:
    """Why ``name`` is not a usable interface name, or None if it is."""
    raw = name.encode("utf-8", "surrogateescape")
    if not raw:
        return "empty interface name"
    if len(raw) > IFNAMSIZ - 1:
        return f"interface name longer than {IFNAMSIZ - 1} bytes"
    if name in (".", ".."):
        return "interface name '.' or '..'"
    if name.startswith("-"):
        return "interface name starts with '-' (it would be read as an option)"
    for c in name:
        if c == "/" or (c == ":" and not alias):
            return f"interface name contains {c!r}"
        if c.isspace() or not c.isprintable():
            return "interface name contains whitespace or a control character"
    return None


def valid(name: str, *, alias: bool = False) -> bool:
    return problem(name, alias=alias) is None
