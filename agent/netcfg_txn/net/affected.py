# SPDX-License-Identifier: GPL-3.0-or-later
"""Which interfaces a rollback must bounce, and in what order. Pure.

An interface is affected iff its effective configuration differs between the snapshot and the
current files, or the parent it is stacked on does (wherever the tie is stated). Then: the links
stacked on an affected one are affected too (a vlan or bridge on a bounced port), and so are the
ports of a changed bridge or bond, but not the other ports of a bridge that is only bounced
because one port changed. Everything else is never touched.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import PurePosixPath

from netcfg_txn.core.rollback import BouncePlan
from netcfg_txn.net.backends import SELF, Backend, FileConfig

# A key with one of these is a match pattern (networkd Name=, netplan match.name), not a name.
_PATTERN_CHARS = frozenset("*?[ !")


@dataclasses.dataclass(frozen=True)
class FileChange:
    path: PurePosixPath
    old: bytes | None  # content in the snapshot (None: the file did not exist then)
    new: bytes | None  # current content (None: the file is missing now)


def is_pattern(key: str) -> bool:
    return not _PATTERN_CHARS.isdisjoint(key)


def matches(key: str, name: str) -> bool:
    """Does a fragment key (a name, or globs with ``!`` exclusions) apply to this link name."""
    if key == name or not is_pattern(key):
        return key == name
    words = key.split()
    pos = [w for w in words if not w.startswith("!")]
    neg = [w[1:] for w in words if w.startswith("!")]
    return any(fnmatch.fnmatchcase(name, p) for p in pos) and not any(
        fnmatch.fnmatchcase(name, n) for n in neg
    )


@dataclasses.dataclass(frozen=True)
class _View:
    """Every owned file's parse result on one side (snapshot or now), drop-ins merged."""

    files: tuple[tuple[PurePosixPath, FileConfig], ...]  # in precedence order
    aliases: Mapping[str, str]

    def expand(self, key: str, universe: Iterable[str]) -> set[str]:
        key = self.aliases.get(key, key)
        return {n for n in universe if matches(key, n)} if is_pattern(key) else {key}

    def effective(self, name: str, *, virtual_only: bool = False) -> tuple[str, ...]:
        """The fragments that configure ``name``, honouring networkd's first-match-wins."""
        out: list[str] = []
        claimed: set[str] = set()
        for path, fc in self.files:
            hits = sorted({t for k, t in fc.fragments.items() if matches(k, name)})
            if not hits or (virtual_only and not any(matches(v, name) for v in fc.virtual)):
                continue
            if fc.exclusive:
                if path.suffix in claimed:
                    continue
                claimed.add(path.suffix)
            out += hits
        return tuple(out)


@dataclasses.dataclass(frozen=True)
class _Graph:
    names: frozenset[str]  # configured here (globs resolved)
    virtual: frozenset[str]
    enslaved: Mapping[str, frozenset[str]]  # controller -> ports
    stacked: Mapping[str, frozenset[str]]  # upper -> the parent it sits on
    ids: Mapping[str, str]

    def lowers(self, name: str) -> frozenset[str]:
        return self.enslaved.get(name, frozenset()) | self.stacked.get(name, frozenset())


def _graph(view: _View, universe: frozenset[str]) -> _Graph:
    names: set[str] = set()
    virtual: set[str] = set()
    edges: dict[bool, dict[str, set[str]]] = {True: {}, False: {}}
    ids: dict[str, str] = {}
    for _, fc in view.files:
        for key in fc.fragments:
            names |= view.expand(key, universe)
        for v in fc.virtual:
            virtual |= view.expand(v, universe)
        for upper, lows in fc.deps.items():
            ports = upper in fc.controllers
            for u in view.expand(upper, universe):
                for low in lows:
                    edges[ports].setdefault(u, set()).update(view.expand(low, universe) - {u})
        for name, cid in fc.connection_ids.items():
            ids.setdefault(name, cid)
    return _Graph(
        frozenset(names),
        frozenset(virtual),
        {k: frozenset(v) for k, v in edges[True].items()},
        {k: frozenset(v) for k, v in edges[False].items()},
        ids,
    )


def _parse(backend: Backend, path: PurePosixPath, data: bytes | None) -> FileConfig | str | None:
    """The parse result, an error message, or None for an absent file."""
    if data is None:
        return None
    try:
        return backend.parse(path, data.decode("utf-8"))
    except UnicodeDecodeError as e:
        return f"{path}: not UTF-8 text: {e}"
    except Exception as e:  # a parser bug, like bad content, must never stop the rollback
        return str(e) if str(e).startswith(str(path)) else f"{path}: {e}"


def _residue(fc: FileConfig | None, data: bytes | None) -> str | bytes | None:
    if fc is None or not fc.unattributed:
        return None
    return fc.unattributed_text if fc.unattributed_text is not None else data


def _attributed(fc: FileConfig | None) -> FileConfig | None:
    """The part of a parse result that names interfaces."""
    return fc and dataclasses.replace(fc, unattributed=False, unattributed_text=None)


def _merge_dropins(
    parsed: Mapping[PurePosixPath, FileConfig],
) -> dict[PurePosixPath, FileConfig]:
    """Fold each drop-in into the file it extends: its SELF key becomes that file's keys."""
    out = {p: fc for p, fc in parsed.items() if fc.extends is None}
    for _, drop in sorted(parsed.items(), key=lambda item: str(item[0])):
        main = out.get(drop.extends) if drop.extends is not None else None
        if main is None or drop.extends is None:
            continue  # no main file on this side: the drop-in configures nothing
        keys = list(main.fragments)
        deps = {k: set(v) for k, v in main.deps.items()}
        for upper, lows in drop.deps.items():
            deps.setdefault(upper, set()).update(
                k for low in lows for k in (keys if low == SELF else [low])
            )
        extra = "".join(t for k, t in drop.fragments.items() if k == SELF)
        out[drop.extends] = dataclasses.replace(
            main,
            fragments={k: t + extra for k, t in main.fragments.items()},
            deps={k: frozenset(v) for k, v in deps.items()},
            controllers=main.controllers | drop.controllers,
        )
    return out


def _views(
    old: Mapping[PurePosixPath, FileConfig], new: Mapping[PurePosixPath, FileConfig]
) -> tuple[_View, _View]:
    """Both sides; a reference (NM uuid, netplan id) is looked up on its own side first."""
    folded = _merge_dropins(old), _merge_dropins(new)
    ordered = [tuple(sorted(f.items(), key=lambda i: (i[0].name, str(i[0])))) for f in folded]
    aliases = [{a: n for _, fc in files for a, n in fc.aliases.items()} for files in ordered]
    return (
        _View(ordered[0], {**aliases[1], **aliases[0]}),
        _View(ordered[1], {**aliases[0], **aliases[1]}),
    )


def _order(
    names: Iterable[str], lowers: Callable[[str], frozenset[str]], upper_first: bool
) -> tuple[str, ...]:
    """Upper links before their lowers (or after); a dependency cycle falls back to name order."""
    left = set(names)
    out: list[str] = []
    while left:
        if upper_first:
            ready = left - {low for u in left for low in lowers(u) if low != u}
        else:
            ready = {n for n in left if not (lowers(n) & (left - {n}))}
        ready = ready or {min(left)}
        out += sorted(ready)
        left -= ready
    return tuple(out)


def plan_bounce(
    backend: Backend,
    changes: Sequence[FileChange],
    live: frozenset[str],
    fallback: str,
    *,
    foreign: Mapping[PurePosixPath, str] | None = None,
) -> BouncePlan:
    """What to bounce, given every managed file as (snapshot, now) and the live link names.

    Pass unchanged files too (``old == new``): they are never diffed, but they hold the links'
    ties (a bridge whose ports are configured elsewhere) and networkd's first-match precedence.
    ``fallback`` is ``"reload"``, ``"none"`` or ``"all"`` for changes no interface explains.
    Content that does not parse, on either side, makes its file unattributed; planning goes on.
    ``foreign``: changed files of another stack (path → its name): unattributed, the fallback
    applies to them too.
    """
    old: dict[PurePosixPath, FileConfig] = {}
    new: dict[PurePosixPath, FileConfig] = {}
    unattributed: dict[str, None] = {}  # ordered set of paths
    notes: list[str] = []
    for path, stack in sorted((foreign or {}).items()):
        unattributed[str(path)] = None
        notes.append(
            f"{path}: configuration of {stack}, not of the active stack {backend.stack.value}"
        )
    owned = sorted((c for c in changes if backend.owns(c.path)), key=lambda c: str(c.path))
    known = {c.path for c in owned}
    for ch in owned:
        o, n = _parse(backend, ch.path, ch.old), _parse(backend, ch.path, ch.new)
        if isinstance(o, str) or isinstance(n, str):
            unattributed[str(ch.path)] = None
            notes += [f"{e} (change not attributable)" for e in (o, n) if isinstance(e, str)]
            # The side that parses serves both: the file then diffs as unchanged but keeps its ties.
            keep = n if isinstance(o, str) else o
            if isinstance(keep, FileConfig):
                old[ch.path] = new[ch.path] = keep
            continue
        if o is not None:
            old[ch.path] = o
        if n is not None:
            new[ch.path] = n
        fc = o or n
        if ch.old == ch.new or fc is None:
            continue
        if _residue(o, ch.old) != _residue(n, ch.new):
            unattributed[str(ch.path)] = None
            notes.append(f"{ch.path}: changed content that no interface can be blamed for")
        if fc.extends is not None and fc.extends not in known:
            unattributed[str(ch.path)] = None
            notes.append(f"{ch.path}: drop-in for {fc.extends}, which is not managed")

    vold, vnew = _views(old, new)
    literal = {k for v in (vold, vnew) for _, fc in v.files for k in (*fc.fragments, *fc.virtual)}
    literal |= {
        v.aliases.get(k, k) for v in (vold, vnew) for _, fc in v.files for k in _dep_names(fc)
    }
    universe = frozenset({k for k in literal if not is_pattern(k)} | live)
    gold, gnew = _graph(vold, universe), _graph(vnew, universe)
    changed = {n for n in gold.names | gnew.names if vold.effective(n) != vnew.effective(n)}
    # A link now stacked on another parent (or no longer, or newly): its tie may be stated only
    # in the parent's file (networkd's VLAN=), which then counts as the stacked link's change.
    retied = {
        n for n in {*gold.stacked, *gnew.stacked} if gold.stacked.get(n) != gnew.stacked.get(n)
    }
    # Only links the config creates (bridge, bond, vlan): bouncing one deletes it, and what the
    # config does not list goes with it (VM taps on a bridge, links stacked by other tools).
    readdress = {
        n
        for n in changed & gold.virtual & gnew.virtual & live
        if _addresses_only(backend, vold.effective(n), vnew.effective(n))
    }
    changed = (changed - readdress) | retied
    readdress -= retied

    # Closure: everything stacked on or enslaving a changed link, transitively; and the ports of a
    # changed controller, but not the other ports of one bounced only because one port changed.
    uppers: dict[str, set[str]] = {}
    for g in (gold, gnew):
        for u in {*g.enslaved, *g.stacked}:
            for low in g.lowers(u):
                uppers.setdefault(low, set()).add(u)
    affected = set(changed)
    todo = list(changed)
    while todo:
        for u in uppers.get(todo.pop(), set()) - affected:
            affected.add(u)
            todo.append(u)
    for c in changed:
        affected |= gold.enslaved.get(c, frozenset()) | gnew.enslaved.get(c, frozenset())

    readdress -= affected  # bounced anyway, because something it sits on is
    down, up = affected & gnew.names, affected & gold.names
    paths = tuple(unattributed)
    if paths and fallback == "all":
        # A stack whose files name no interface: "every interface it configures" is every link.
        down |= gnew.names if backend.attributes else live - {"lo"}
        up |= gold.names if backend.attributes else live - {"lo"}
        notes.append(f"fallback all: bouncing every interface for {', '.join(paths)}")
    elif paths:
        notes.append(f"fallback {fallback}: no interface bounced for {', '.join(paths)}")
    delete = {
        n
        for n in affected & gnew.virtual & live
        if n not in gold.virtual
        # a changed definition of the link itself (vlan id, bond mode) needs it recreated
        or vold.effective(n, virtual_only=True) != vnew.effective(n, virtual_only=True)
    }
    attributed = any(_attributed(old.get(p)) != _attributed(new.get(p)) for p in known)
    down_order = _order(down, gnew.lowers, upper_first=True)
    up_order = _order(up, gold.lowers, upper_first=False)
    return BouncePlan(
        down=down_order,
        delete=_order(delete, gnew.lowers, upper_first=True),
        up=up_order,
        unattributed=paths,
        reload=attributed or bool(paths) and fallback != "none",
        down_ids={n: gnew.ids[n] for n in down_order if n in gnew.ids},
        up_ids={n: gold.ids[n] for n in up_order if n in gold.ids},
        notes=tuple(notes),
        readdress=tuple(sorted(readdress)),
    )


def _addresses_only(backend: Backend, old: Sequence[str], new: Sequence[str]) -> bool:
    """Do two configurations of one link differ in nothing but its static addresses?"""
    if len(old) != len(new):
        return False
    for o, n in zip(old, new, strict=True):
        if o == n:
            continue
        a, b = backend.without_addresses(o), backend.without_addresses(n)
        if a is None or a != b:
            return False
    return True


def _dep_names(fc: FileConfig) -> Iterable[str]:
    for upper, lows in fc.deps.items():
        yield upper
        yield from lows
