# SPDX-License-Identifier: GPL-3.0-or-later
"""Redaction of secrets in what the API shows: diffs of managed files and free text. Pure.

Network config files carry secrets next to harmless settings: ``wpa-psk`` (ifupdown), ``psk=`` and
``password=`` (NetworkManager keyfiles, wpa_supplicant), ``password:`` and wireguard ``keys:
private:`` (netplan), ``PrivateKey=``/``PresharedKey=`` (networkd WireGuard), ``WPA_PSK=`` and
``KEY1=`` (ifcfg). Every line of the form ``NAME=VALUE``, ``NAME: VALUE`` or ``NAME VALUE`` whose
NAME looks like a secret keeps its name and loses its value; a file that as a whole is a key
(``*.key``, networkd's ``PrivateKeyFile=`` target) loses every line. This over-redacts rather than
under-redacts: a diff is for seeing *what* changed, and a changed secret still shows as a change.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any

REDACTED = "<redacted>"

# Normalized names (lowercase, without - _ . and spaces) that are secrets wherever they occur...
_SECRET_PARTS = (
    "psk",
    "passw",  # password, passwd
    "passphrase",
    "secret",
    "privatekey",
    "presharedkey",
    "wepkey",
)
# ...and ones that are secrets only as the whole name (netplan wireguard keys: private/shared,
# ifcfg ``KEY1``…``KEY4``, ifupdown ``wireless-key``, SIM ``pin``).
_SECRET_WHOLE = re.compile(r"(private|shared|key\d*|wirelesskey\d*|pin|pin\d)")

# NAME, then "=" or ":" (with optional blanks) or blanks, then the value; YAML list dashes allowed.
_LINE = re.compile(
    r"""^(?P<lead>[ \t]*(?:-[ \t]+)?)(?P<name>["']?[A-Za-z][A-Za-z0-9_.-]*["']?)
        (?P<sep>[ \t]*[=:][ \t]*|[ \t]+)(?P<value>\S.*?)(?P<trail>[ \t\r]*)$""",
    re.VERBOSE,
)
_INLINE = re.compile(
    r"""(?P<name>(?<![\w.-])(?:[\w.-]*?(?:psk|passw|passphrase|secret|private[-_.]?key
            |pre[-_.]?shared[-_.]?key|wep[-_.]?key)[\w.-]*
          |(?:private|shared|key\d*|wireless[-_]key\d*|pin\d?)(?![\w.-])))
        (?P<sep>[ \t]*[=:][ \t]*|[ \t]+)(?P<value>"[^"]*"|'[^']*'|\S+)""",
    re.VERBOSE | re.IGNORECASE,
)
_SECRET_FILE = re.compile(r".*\.(key|psk|pem)$|.*(secret|private|psk).*", re.IGNORECASE)


def is_secret_name(name: str) -> bool:
    n = re.sub(r"[-_.\s\"']", "", name).lower()
    return any(part in n for part in _SECRET_PARTS) or _SECRET_WHOLE.fullmatch(n) is not None


def is_secret_file(path: PurePosixPath | str) -> bool:
    """A file that as a whole is a secret (a key file), judged by its name."""
    return _SECRET_FILE.fullmatch(PurePosixPath(path).name) is not None


def redact_line(line: str) -> str:
    """One config line with a secret's value replaced; any other line unchanged."""
    m = _LINE.match(line)
    if m is None or not is_secret_name(m.group("name")):
        return line
    return m.group("lead") + m.group("name") + m.group("sep") + REDACTED + m.group("trail")


def redact_text(text: str) -> str:
    """Free text (an error message, command output): every ``secret-name value`` pair redacted."""

    def sub(m: re.Match[str]) -> str:
        name, sep = m.group("name"), m.group("sep")
        # "NAME VALUE" only in the ifupdown shape (wpa-psk X); prose such as "password is wrong"
        # is left alone.
        prose = not sep.strip() and not re.search(r"[-_]", name)
        if prose or not is_secret_name(name):
            return m.group(0)
        return m.group("name") + m.group("sep") + REDACTED

    return _INLINE.sub(sub, text)


def redact_diff(path: PurePosixPath | str, diff: str) -> str:
    """A unified diff with every secret value (or, for a key file, every line) redacted."""
    whole = is_secret_file(path)
    out = []
    for i, line in enumerate(diff.splitlines(keepends=True)):
        body = line.rstrip("\n")
        nl = line[len(body) :]
        if (i < 2 and body.startswith(("--- ", "+++ "))) or body.startswith(("@@", "\\ ")):
            out.append(line)
        elif body[:1] in ("+", "-", " "):
            out.append(body[0] + (REDACTED if whole else redact_line(body[1:])) + nl)
        else:
            out.append(REDACTED + nl if whole else redact_line(body) + nl)
    return "".join(out)


def redact_doc(doc: Any) -> Any:
    """Every string in a JSON document through ``redact_text`` (remote views of history/status)."""
    if isinstance(doc, str):
        return redact_text(doc)
    if isinstance(doc, Mapping):
        return {k: redact_doc(v) for k, v in doc.items()}
    if isinstance(doc, list | tuple):
        return [redact_doc(v) for v in doc]
    return doc


def redact_files(files: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ``diff`` view: each entry's unified diff with secrets redacted."""
    out = []
    for entry in files:
        e = dict(entry)
        if isinstance(e.get("diff"), str):
            e["diff"] = redact_diff(str(e.get("path", "")), e["diff"])
        out.append(e)
    return out


def probes_pass_fail(status: Mapping[str, Any]) -> dict[str, Any]:
    """A probe supervisor's status as a remote peer sees it: which probe passed or failed, never
    the error text or what a probed service answered (probes must not be a port scanner)."""
    doc = {k: v for k, v in status.items() if k != "last"}
    last = status.get("last")
    if isinstance(last, Mapping):
        doc["last"] = {
            "ok": last.get("ok"),
            "results": [
                {"spec": r.get("spec"), "ok": r.get("ok")}
                for r in last.get("results", [])
                if isinstance(r, Mapping)
            ],
        }
    else:
        doc["last"] = None
    return doc


def _secret_option(arg: str) -> bool:
    name = arg.split("=", 1)[0]
    return name.startswith("--") and "token" in name and not name.endswith(("-file", "-out"))


def redact_argv(argv: list[str]) -> list[str]:
    """A command line as it may be logged: the value of ``--token T``, ``--token=T``,
    ``--peer-token T`` (any ``--…token`` option but ``--…token-file``) replaced."""
    out: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            out.append(REDACTED)
            hide_next = False
        elif arg == "--":
            out.append(arg)
            out.extend(argv[len(out) :])
            break
        elif _secret_option(arg):
            if "=" in arg:
                out.append(arg.split("=", 1)[0] + "=" + REDACTED)
            else:
                out.append(arg)
                hide_next = True
        else:
            out.append(arg)
    return out
