# SPDX-License-Identifier: GPL-3.0-or-later
"""systemd-networkd: ``.network``, ``.netdev``, ``.link`` files and their ``.d/*.conf`` drop-ins."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, ClassVar

from netcfg_txn.core.errors import ConfigError
from netcfg_txn.core.model import StepResult
from netcfg_txn.net.backends.base import (
    SELF,
    Backend,
    FileConfig,
    Stack,
    command_step,
    missing_tools,
    probe,
)
from netcfg_txn.net.backends.keyfile import Section, canonical, parse_keyfile
from netcfg_txn.net.backends.networkd_stacked import STACKED_KEYS, naming_stacked, vlan_argv

if TYPE_CHECKING:  # the runner is injected: only its type is needed here
    from netcfg_txn.host.runner import Runner

DIRS = (PurePosixPath("/etc/systemd/network"), PurePosixPath("/run/systemd/network"))
DIRS_ON_HOST = tuple(Path(d) for d in DIRS)
SUFFIXES = (".network", ".netdev", ".link")

# networkctl's words for a name that resolves to no link (yet)
_NO_SUCH_DEVICE = "No such device"
# ... retried this long for a link networkd is about to create (a VLAN on a reconfigured parent)
APPEAR_S = 15.0
APPEAR_POLL_S = 0.2

# [Network] keys naming an upper link this one is a port of (enslaved); STACKED_KEYS name the
# links stacked on this one (this link is their parent).
_CONTROLLER_KEYS = ("Bridge", "Bond", "VRF", "Team")


def match_keys(words: Sequence[tuple[bool, str]]) -> list[str] | None:
    """Fragment keys for a match list of (negated, glob); None if it only excludes.

    One key per positive glob, each carrying every exclusion, as networkd matches: any positive
    and no negative (``Name=!eth0`` alone matches everything else, so nothing can be blamed).
    """
    pos = [w for neg, w in words if not neg]
    negs = [f"!{w}" for neg, w in words if neg]
    if not pos:
        return None
    return [" ".join([p, *negs]) for p in pos]


def match_words(section: Section, key: str) -> list[tuple[bool, str]]:
    """``Name=`` lines: a leading ``!`` negates the whole line; an empty value resets."""
    words: list[tuple[bool, str]] = []
    for value in section.values(key):
        neg = value.startswith("!")
        words.extend((neg, w) for w in value.removeprefix("!").split())
    return words


def _without_stacked(sections: Sequence[Section]) -> tuple[Section, ...]:
    """A parent's settings without the ``VLAN=``-like lines: each says "create that link on me",
    so it belongs to the stacked link (a tie in ``deps``), not to the parent. Adding or deleting
    a VLAN must not bounce the bond it sits on, and networkd creates a listed VLAN on a reload
    without taking its parent down."""
    return tuple(
        dataclasses.replace(s, entries=tuple(e for e in s.entries if e.key not in STACKED_KEYS))
        if s.name == "Network"
        else s
        for s in sections
    )


def _naming_controllers(names: set[str], dirs: Sequence[Path]) -> list[Path]:
    """The ``.network`` files and their drop-ins that make a link a port of one of ``names``."""
    found: list[Path] = []
    for d in dirs:
        candidates = [*d.glob("*.network"), *d.glob("*.network.d/*.conf")]
        for path in sorted(candidates):
            try:
                sections = parse_keyfile(PurePosixPath(path), path.read_text("utf-8"))
            except (OSError, UnicodeDecodeError, ConfigError):
                continue  # not ours to judge here: planning already reported it
            if any(
                w in names
                for s in sections
                if s.name == "Network"
                for k in _CONTROLLER_KEYS
                for v in s.values(k)
                for w in v.split()
            ):
                found.append(path)
    return found


class Networkd(Backend, stack=Stack.NETWORKD):
    end_of_options: ClassVar[bool] = True  # networkctl parses with getopt_long
    asynchronous = True
    dirs: Sequence[Path] = DIRS_ON_HOST  # where networkd reads its files (tests point elsewhere)

    def owns(self, path: PurePosixPath) -> bool:
        if path.parent in DIRS:
            return path.suffix in SUFFIXES
        d = path.parent
        return (
            d.parent in DIRS
            and path.suffix == ".conf"
            and any(d.name.endswith(f"{s}.d") for s in SUFFIXES)
        )

    def parse(self, path: PurePosixPath, text: str) -> FileConfig:
        sections = parse_keyfile(path, text)
        canon = canonical(sections)
        if path.suffix == ".conf":
            main = path.parent.with_name(path.parent.name.removesuffix(".d"))
            if main.suffix == ".network":
                canon = canonical(_without_stacked(sections))
            return self._fragment(main.suffix, [SELF], canon, sections, extends=main)
        if path.suffix == ".netdev":
            return self._netdev(canon, sections)
        key = "OriginalName" if path.suffix == ".link" else "Name"
        words = [w for s in sections if s.name == "Match" for w in match_words(s, key)]
        keys = match_keys(words)
        if keys is None:  # no Name= (MAC, Driver, Path ... or nothing): cannot be attributed
            return FileConfig(unattributed=True, unattributed_text=canon, exclusive=True)
        # What applies to each matched link, without the list of links: dropping eth3 from
        # "Name=eth2 eth3" changes nothing for eth2.
        applied = canonical(
            tuple(
                dataclasses.replace(s, entries=tuple(e for e in s.entries if e.key != key))
                if s.name == "Match"
                else s
                for s in (_without_stacked(sections) if path.suffix == ".network" else sections)
            )
        )
        return self._fragment(path.suffix, keys, applied, sections)

    def without_addresses(self, fragment: str) -> str | None:
        # Canonical keyfile text; ``networkctl reload`` re-applies a changed .network to its
        # links without taking them down, so netlink only has to agree with it.
        return "".join(
            line for line in fragment.splitlines(keepends=True) if not line.startswith("Address=")
        )

    @staticmethod
    def _fragment(
        suffix: str,
        keys: list[str],
        canon: str,
        sections: tuple[Section, ...],
        extends: PurePosixPath | None = None,
    ) -> FileConfig:
        deps: dict[str, frozenset[str]] = {}
        controllers: set[str] = set()
        if suffix == ".network":
            for s in sections:
                if s.name != "Network":
                    continue
                for k in _CONTROLLER_KEYS + STACKED_KEYS:
                    for upper in (w for v in s.values(k) for w in v.split()):
                        deps[upper] = deps.get(upper, frozenset()) | frozenset(keys)
                        if k in _CONTROLLER_KEYS:
                            controllers.add(upper)
        return FileConfig(
            fragments=dict.fromkeys(keys, canon),
            deps=deps,
            controllers=frozenset(controllers),
            extends=extends,
            exclusive=extends is None and suffix != ".netdev",
        )

    @staticmethod
    def _netdev(canon: str, sections: tuple[Section, ...]) -> FileConfig:
        names = [n for s in sections if s.name == "NetDev" for n in [s.get("Name")] if n]
        if not names:  # networkd ignores such a file; still, we cannot tell what it would be
            return FileConfig(unattributed=True, unattributed_text=canon)
        return FileConfig(fragments={names[-1]: canon}, virtual=frozenset(names[-1:]))

    def recreated(
        self, ifnames: Sequence[str], run: Runner, dirs: Sequence[Path] | None = None
    ) -> list[StepResult]:
        # networkd (v252) keeps a .network file whose mtime did not change on reload, with its
        # reference to the deleted bond or bridge: the ports would wait for it forever, down and
        # without a master. A new mtime makes networkd read it again and find the new link.
        # A stacked link comes back with its parent's configuration: ``up`` creates a VLAN it
        # can translate; for any other, the parent's file is touched (see networkd_stacked).
        dirs = self.dirs if dirs is None else dirs
        paths = _naming_controllers(set(ifnames), dirs)
        for n in ifnames:
            if vlan_argv(n, dirs) is None:
                paths += [p for p, _ in naming_stacked(n, dirs) if p not in paths]
        t = self.settings.timeout_s
        return [command_step("touch", str(p), ["touch", "-c", "--", str(p)], run, t) for p in paths]

    def down(
        self,
        ifnames: Sequence[str],
        run: Runner,
        *,
        connection_ids: Mapping[str, str] | None = None,
    ) -> list[StepResult]:
        # One command per link: networkctl resolves every name first and would fail them all.
        return self._each("down", ifnames, ["networkctl", "down"], run)

    def reload(self, run: Runner) -> list[StepResult]:
        argv = ["networkctl", "reload"]
        return [command_step("reload", "networkctl reload", argv, run, self.settings.timeout_s)]

    def up(
        self,
        ifnames: Sequence[str],
        run: Runner,
        *,
        connection_ids: Mapping[str, str] | None = None,
    ) -> list[StepResult]:
        out: list[StepResult] = []
        for n in ifnames:
            step = self._each("up", [n], ["networkctl", "reconfigure"], run)[0]
            created = None
            if not step.ok and _NO_SUCH_DEVICE in (step.error or ""):
                created = self._create_stacked(n, run)
            # A VLAN (or other stacked link) networkd creates itself once the reload
            # reconfigured its parent may not exist yet.
            until = time.monotonic() + min(APPEAR_S, self.settings.timeout_s)
            while (
                not step.ok and _NO_SUCH_DEVICE in (step.error or "") and time.monotonic() < until
            ):
                time.sleep(APPEAR_POLL_S)
                step = self._each("up", [n], ["networkctl", "reconfigure"], run)[0]
            # A failed creation matters only if the link never came (its parent was not there
            # yet, and networkd created both in the meantime: fine).
            if created is not None and (created.ok or not step.ok):
                out.append(created)
            out.append(step)
        return out

    def _create_stacked(self, name: str, run: Runner) -> StepResult | None:
        """A missing VLAN, created as its ``.netdev`` says (networkd adopts it): waiting for
        networkd would mean reconfiguring its parent. "File exists" means networkd was first."""
        argv = vlan_argv(name, self.dirs)
        if argv is None:
            return None
        for ifname in (name, argv[4]):  # the VLAN and its parent reach a command line
            if (refused := self.refuse_name("create", ifname)) is not None:
                return refused
        step = command_step("create", name, argv, run, self.settings.timeout_s)
        if not step.ok and "File exists" in (step.error or ""):
            return StepResult("create", name, True, "already created by networkd")
        return step

    def why_unusable(self, run: Runner) -> str | None:
        return missing_tools(run, "networkctl") or probe(
            run, ["networkctl", "--no-pager", "--no-legend", "list"]
        )
