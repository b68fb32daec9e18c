# SPDX-License-Identifier: GPL-3.0-or-later
"""Debian ifupdown: ``/etc/network/interfaces`` and ``/etc/network/interfaces.d/*``.

The parser also understands the ifupdown2 options (``bridge-vids``, ``vxlan-id``, ``link-type``),
so ``ifupdown2.py`` only changes the grammar's strictness and the commands.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, ClassVar

from netcfg_txn.core.errors import CommandFailed, ConfigError
from netcfg_txn.core.model import StepResult
from netcfg_txn.net.backends.base import Backend, FileConfig, Stack, missing_tools

if TYPE_CHECKING:  # the runner is injected: only its type is needed here
    from netcfg_txn.host.runner import Runner

INTERFACES = PurePosixPath("/etc/network/interfaces")
INTERFACES_D = PurePosixPath("/etc/network/interfaces.d")

# Lines that name interfaces without opening an iface stanza.
_MARKS = ("auto", "no-auto-down", "no-scripts")
_VLAN_NAME = re.compile(r"(?P<parent>.+)\.(?P<vid>\d+)")
# Options whose presence means the stanza creates the link rather than configuring one.
_CREATES = frozenset(
    {
        "bond-mode",
        "bond-slaves",
        "bridge-ports",
        "link-type",
        "vlan-raw-device",
        "vrf-table",
        "vxlan-id",
    }
)
_PORT_LISTS = ("bridge-ports", "bond-slaves")  # this stanza enslaves the listed links
_PORT_OF = ("bond-master", "vrf")  # this stanza is enslaved by the named link
_PARENT_OF = ("vlan-raw-device", "vxlan-physdev")  # this stanza is stacked on the named link


@dataclasses.dataclass
class _Stanza:
    name: str
    head: str
    options: list[tuple[str, str]]


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """(line number, text) with comments and blanks gone and ``\\`` continuations joined."""
    out: list[tuple[int, str]] = []
    carry: tuple[int, str] | None = None
    for no, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if carry is None and (not line or line.startswith("#")):
            continue  # only whole-line comments exist in this format
        if carry is not None:
            no, line = carry[0], f"{carry[1]} {line}"
            carry = None
        if line.endswith("\\"):
            carry = (no, line[:-1].strip())
            continue
        out.append((no, line))
    if carry is not None:
        out.append(carry)
    return out


class Ifupdown(Backend, stack=Stack.IFUPDOWN):
    # ifupdown insists on "iface NAME FAMILY METHOD"; ifupdown2 accepts a bare "iface NAME".
    min_iface_words: ClassVar[int] = 4
    down_argv: ClassVar[tuple[str, ...]] = ("ifdown", "--force")
    end_of_options: ClassVar[bool] = True  # ifupdown 0.8 parses with getopt_long
    alias_names: ClassVar[bool] = True

    def owns(self, path: PurePosixPath) -> bool:
        return path == INTERFACES or path.parent == INTERFACES_D

    def parse(self, path: PurePosixPath, text: str) -> FileConfig:
        stanzas: list[_Stanza] = []
        marks: dict[str, list[str]] = {}
        residue: list[str] = []  # source lines, mapping blocks: not any one interface's
        current: _Stanza | None = None
        in_mapping = False
        for no, line in _logical_lines(text):
            word, *args = line.split()
            if line.startswith("%") or "${" in line:
                # an ifupdown2 Mako template: what it expands to is unknowable here
                return FileConfig(unattributed=True)
            if word == "iface":
                if len(args) + 1 < self.min_iface_words:
                    raise ConfigError(f"{path}:{no}: expected 'iface NAME FAMILY METHOD'")
                current, in_mapping = _Stanza(args[0], " ".join(["iface", *args]), []), False
                stanzas.append(current)
            elif word in _MARKS or word.startswith("allow-"):
                for name in args:
                    marks.setdefault(name, []).append(word)
                current, in_mapping = None, False
            elif word in ("source", "source-directory", "source-dir"):
                residue.append(" ".join(line.split()))
                current, in_mapping = None, False
            elif word in ("mapping", "template"):
                residue.append(" ".join(line.split()))
                current, in_mapping = None, True
            elif in_mapping:
                residue.append(" ".join(line.split()))
            elif current is None:
                raise ConfigError(f"{path}:{no}: option {word!r} outside of an iface stanza")
            elif not args:
                raise ConfigError(f"{path}:{no}: option {word!r} has no value")
            else:
                # ifupdown reads bridge_ports and bridge-ports as the same IF_BRIDGE_PORTS
                current.options.append((word.replace("_", "-"), " ".join(args)))
        return self._config(stanzas, marks, residue)

    @staticmethod
    def _config(
        stanzas: list[_Stanza], marks: Mapping[str, list[str]], residue: list[str]
    ) -> FileConfig:
        text = {n: "".join(f"{m}\n" for m in sorted(set(ms))) for n, ms in marks.items()}
        deps: dict[str, set[str]] = {}
        virtual: set[str] = set()
        controllers: set[str] = set()
        for st in stanzas:
            body = "".join(f"  {k} {v}\n" for k, v in st.options)
            text[st.name] = text.get(st.name, "") + f"{st.head}\n{body}"
            if vlan := _VLAN_NAME.fullmatch(st.name):
                deps.setdefault(st.name, set()).add(vlan["parent"])
                virtual.add(st.name)
            for key, value in st.options:
                words = [w for w in value.split() if w != "none"]
                if key in _CREATES and (key != "bond-slaves" or words):
                    virtual.add(st.name)
                if key in _PORT_LISTS and words:
                    deps.setdefault(st.name, set()).update(words)
                    controllers.add(st.name)
                elif key in _PORT_OF and words:
                    deps.setdefault(words[0], set()).add(st.name)
                    controllers.add(words[0])
                elif key in _PARENT_OF and words:
                    deps.setdefault(st.name, set()).add(words[0])
        return FileConfig(
            fragments=text,
            deps={k: frozenset(v) for k, v in deps.items()},
            virtual=frozenset(virtual),
            unattributed=bool(residue),
            unattributed_text="\n".join(residue) if residue else None,
            controllers=frozenset(controllers),
        )

    def without_addresses(self, fragment: str) -> str | None:
        # ifup reads the files each time, and ifdown removes what the restored file says: a
        # changed "address"/"netmask" needs nothing from ifupdown once netlink has set it back.
        return "".join(
            line
            for line in fragment.splitlines(keepends=True)
            if line.split()[:1] not in (["address"], ["netmask"])
        )

    def down(
        self,
        ifnames: Sequence[str],
        run: Runner,
        *,
        connection_ids: Mapping[str, str] | None = None,
    ) -> list[StepResult]:
        return self._each("down", ifnames, self.down_argv, run)

    def reload(self, run: Runner) -> list[StepResult]:
        return []  # ifup reads the files each time it runs: there is nothing to reload

    def forget(self, ifnames: Sequence[str], run: Runner) -> list[StepResult]:
        # ifupdown still records them as configured (/run/network/ifstate), so ifup would do
        # nothing. ``ifdown --force`` on the restored config clears exactly their entries under
        # ifupdown's own lock; it may complain about addresses that are gone already.
        t = self.settings.timeout_s
        out = []
        eoo = ["--"] if self.end_of_options else []
        for n in ifnames:
            if (refused := self.refuse_name("forget", n)) is not None:
                out.append(refused)
                continue
            try:
                run([*self.down_argv, *eoo, n], timeout_s=t, check=False)
                out.append(StepResult("forget", n, True))
            except CommandFailed as e:  # not even started (timeout): ifup may refuse next
                out.append(StepResult("forget", n, False, str(e)))
        return out

    def up(
        self,
        ifnames: Sequence[str],
        run: Runner,
        *,
        connection_ids: Mapping[str, str] | None = None,
    ) -> list[StepResult]:
        return self._each("up", ifnames, ["ifup"], run)

    def why_unusable(self, run: Runner) -> str | None:
        return missing_tools(run, "ifup", "ifdown")
