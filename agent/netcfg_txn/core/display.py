# SPDX-License-Identifier: GPL-3.0-or-later
"""Text for a terminal: every character that could move the cursor, change colours, rewrite the
title or overprint a line (ESC, CR, BS, other C0/C1 controls, bidi overrides) shown as an escape
instead. Labels, file names, command output and remote error messages all pass through here
before a human sees them. Pure.
"""

from __future__ import annotations

_KEEP = frozenset("\n\t")


def escape(text: str) -> str:
    """``text`` with each non-printable character (newline and tab excepted) as ``\\xNN`` or
    ``\\uNNNN``; printable text, including non-ASCII letters, is unchanged."""
    if text.isprintable():
        return text
    out = []
    for c in text:
        if c in _KEEP or c.isprintable():
            out.append(c)
        elif ord(c) < 0x100:
            out.append(f"\\x{ord(c):02x}")
        elif ord(c) < 0x10000:
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(f"\\U{ord(c):08x}")
    return "".join(out)


def escape_line(text: str) -> str:
    """One line of a table or message: newlines and tabs escaped too."""
    return escape(text).replace("\n", "\\n").replace("\t", "\\t")
