# SPDX-License-Identifier: GPL-3.0-or-later
"""How a config section is declared: one frozen dataclass whose fields carry their TOML key,
parser and help text. Pure.

The dataclass is the only declaration of the section: ``declared`` derives the schema that
``config show`` and the man-page test read, ``from_table`` builds it from a TOML table, and
``check`` (called from the class's ``__post_init__``) holds every value to the same parsers,
however the object was made (a config file, a frozen config of a snapshot, a test).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Protocol, TypeVar

Parser = Callable[[Any], Any]

_META = "netcfg_txn.setting"


class SettingError(ValueError):
    """A bad value of one key: ``[section] key: problem`` (the caller adds the file)."""

    def __init__(self, section: str, key: str, problem: str, *, hint: str | None = None) -> None:
        super().__init__(f"[{section}] {key}: {problem}")
        self.section, self.key, self.problem, self.hint = section, key, problem, hint


@dataclasses.dataclass(frozen=True)
class Declared:
    field: str  # the dataclass field
    parse: Parser  # raw TOML value (or an already parsed one) -> value; raises ValueError
    default: Any
    help: str


def setting(default: Any, parse: Parser, help: str, *, key: str | None = None) -> Any:
    """A field of a section dataclass; ``key`` is its TOML name when it differs."""
    return dataclasses.field(default=default, metadata={_META: (key, parse, help)})


class Section(Protocol):
    SECTION: ClassVar[str]
    __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]


S = TypeVar("S", bound=Section)


def declared(cls: type[Section]) -> dict[str, Declared]:
    """TOML key -> its declaration, in declaration order."""
    out = {}
    for f in dataclasses.fields(cls):
        key, parse, help_ = f.metadata[_META]
        out[key or f.name] = Declared(f.name, parse, f.default, help_)
    return out


def check(obj: Section) -> None:
    """Every field through its parser (parsers accept their own output). Raises SettingError."""
    for key, d in declared(type(obj)).items():
        try:
            d.parse(getattr(obj, d.field))
        except ValueError as e:
            raise SettingError(obj.SECTION, key, str(e)) from None


def from_table(cls: type[S], table: Mapping[str, Any]) -> S:
    """A merged TOML table -> the section. Unknown keys and bad values raise SettingError."""
    keys = declared(cls)
    values = {}
    for key, raw in table.items():
        if key not in keys:
            raise SettingError(cls.SECTION, key, f"unknown key (known: {', '.join(keys)})")
        try:
            values[keys[key].field] = keys[key].parse(raw)
        except ValueError as e:
            raise SettingError(cls.SECTION, key, str(e)) from None
    return cls(**values)


def string(v: Any) -> str:
    if not isinstance(v, str):
        raise ValueError("must be a string")
    return v


def choice(*options: str) -> Parser:
    def check(v: Any) -> str:
        if v not in options:
            raise ValueError(f"must be one of {', '.join(options)}")
        return str(v)

    return check
