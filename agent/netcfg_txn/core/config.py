# SPDX-License-Identifier: GPL-3.0-or-later
"""Configuration: layered TOML -> one frozen ``Config``. Pure: ``host.configfiles`` reads files.

Every setting is declared once: ``[files]``, ``[timer]`` and ``[state]`` in ``SCHEMA`` (parser,
default, help); ``[apply]`` (``core.apply``), ``[remote]`` (``core.remoteconf``) and ``[probes]``
(``core.policy``, ``core.targets``) by their own dataclasses. Unknown keys and bad values are
errors ``FILE: [section] key: problem`` (exit 78), found here, before anything runs.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from netcfg_txn.core.apply import ApplyConfig
from netcfg_txn.core.errors import ConfigError, UsageError
from netcfg_txn.core.fileset import PRESETS, FileSet, Limits, check_glob, from_presets
from netcfg_txn.core.paths import DEFAULT_CONFIG as DEFAULT_CONFIG
from netcfg_txn.core.paths import DEFAULT_SOCKET as DEFAULT_SOCKET
from netcfg_txn.core.paths import DEFAULT_STATE_DIR as DEFAULT_STATE_DIR
from netcfg_txn.core.policy import ProbeSettings
from netcfg_txn.core.remoteconf import RemoteConfig
from netcfg_txn.core.settings import SettingError, declared, from_table
from netcfg_txn.core.targets import TargetPolicy
from netcfg_txn.core.units import MAX_DURATION_S as MAX_DURATION_S  # the config's units, for
from netcfg_txn.core.units import format_duration as format_duration  # its callers
from netcfg_txn.core.units import parse_duration as parse_duration
from netcfg_txn.core.units import parse_size as parse_size


def _str_list(v: Any) -> list[str]:
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise ValueError("must be a list of strings")
    return list(v)


def _globs(v: Any) -> list[str]:
    out = _str_list(v)
    for g in out:
        if (why := check_glob(g)) is not None:
            raise ValueError(f"glob {g!r} {why}")
    return out


def _presets(v: Any) -> list[str]:
    out = _str_list(v)
    for n in out:
        if n not in PRESETS:
            raise ValueError(f"unknown preset {n!r} (known: {', '.join(sorted(PRESETS))})")
    return out


def _count(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 1 or v > 10_000:
        raise ValueError("must be an integer from 1 to 10000")
    return v


def _grace(v: Any) -> float:
    # Shorter would race the daemon's own rollback: the backstop would kill a healthy daemon.
    seconds = parse_duration(v)
    if seconds < 5:
        raise ValueError("must be at least 5s")
    return seconds


def _abs_path(v: Any) -> str:
    if not isinstance(v, str) or not v.startswith("/"):
        raise ValueError("must be an absolute path")
    return v


# section -> key -> (parser, default, help): what `config show` prints. [files], [timer] and
# [state] are declared here; [apply] is derived from its dataclass (core.apply).
SCHEMA: dict[str, dict[str, tuple[Callable[[Any], Any], Any, str]]] = {
    "files": {
        "presets": (_presets, list(PRESETS), "glob presets to manage"),
        "include": (_globs, [], "extra absolute globs to manage"),
        "exclude": (_globs, [], "globs never managed, even if included"),
        "max_file_size": (parse_size, 64 << 20, "largest single managed file"),
        "max_total_size": (parse_size, 1 << 30, "largest snapshot in all"),
    },
    "timer": {
        "default": (parse_duration, 120.0, "dead-man timeout when start gives none"),
        "max": (parse_duration, 86400.0, "longest timeout start/extend accept"),
        "backstop_grace": (
            _grace,
            15.0,
            "how long after the deadline the systemd backstop rolls back if the daemon has not",
        ),
        "min": (parse_duration, 5.0, "shortest timeout start/extend accept"),
    },
    "state": {
        "dir": (_abs_path, str(DEFAULT_STATE_DIR), "persistent state (never tmpfs)"),
        "history": (_count, 20, "finished transactions (and archives) kept"),
        "lock_timeout": (parse_duration, 10.0, "how long a request waits for the state lock"),
    },
    "apply": {k: (d.parse, d.default, d.help) for k, d in declared(ApplyConfig).items()},
}

# Sections whose keys are validated by the module that owns them (remote API, probes).
OPEN_SECTIONS = ("remote", "probes")


@dataclasses.dataclass(frozen=True)
class Config:
    fileset: FileSet
    limits: Limits
    timeout_default_s: float
    timeout_max_s: float
    state_dir: Path
    history: int
    lock_timeout_s: float
    apply: ApplyConfig
    extra: Mapping[str, Mapping[str, Any]]  # OPEN_SECTIONS, raw
    sources: tuple[str, ...]
    remote: RemoteConfig = RemoteConfig()
    probes: ProbeSettings = ProbeSettings()
    backstop_grace_s: float = 15.0
    # Every SCHEMA key as parsed, under its TOML name ('config show' prints them as written).
    settings: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    timeout_min_s: float = 5.0
    probe_targets: TargetPolicy = TargetPolicy()

    def check_timeout(self, seconds: float | None) -> float:
        t = self.timeout_default_s if seconds is None else seconds
        if not math.isfinite(t) or t <= 0:
            raise UsageError("timeout must be a positive, finite number of seconds")
        if t < self.timeout_min_s:
            # Shorter than a confirm can possibly round-trip: it would only ever roll back.
            raise UsageError(
                f"timeout {t:g}s is under the minimum {format_duration(self.timeout_min_s)}",
                hint="lower [timer] min in the configuration if you really need shorter",
            )
        if t > self.timeout_max_s:
            raise UsageError(
                f"timeout {format_duration(t)} is over the maximum "
                f"{format_duration(self.timeout_max_s)}",
                hint="raise [timer] max in the configuration if you really need longer",
            )
        return t


def merge(layers: Sequence[tuple[str, Mapping[str, Any]]]) -> tuple[dict[str, Any], dict[str, str]]:
    """Later layers win key by key. Returns values and, per 'section.key', the file it came from."""
    values: dict[str, dict[str, Any]] = {}
    origin: dict[str, str] = {}
    for where, doc in layers:
        for section, table in doc.items():
            if section not in SCHEMA and section not in OPEN_SECTIONS:
                known = ", ".join(sorted([*SCHEMA, *OPEN_SECTIONS]))
                raise ConfigError(f"{where}: [{section}]: unknown section (known: {known})")
            if not isinstance(table, dict):
                raise ConfigError(f"{where}: {section}: must be a table ([{section}])")
            for key, value in table.items():
                if section in SCHEMA and key not in SCHEMA[section]:
                    known = ", ".join(SCHEMA[section])
                    raise ConfigError(f"{where}: [{section}] {key}: unknown key (known: {known})")
                values.setdefault(section, {})[key] = value
                origin[f"{section}.{key}"] = where
    return values, origin


def parse(layers: Sequence[tuple[str, str]], *, state_dir: Path | None = None) -> Config:
    """Pure: (file name, TOML text) pairs in precedence order -> Config."""
    docs = []
    for where, text in layers:
        try:
            docs.append((where, tomllib.loads(text)))
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{where}: invalid TOML: {e}") from None
    values, origin = merge(docs)
    v: dict[str, dict[str, Any]] = {}
    for section, keys in SCHEMA.items():
        if section == "apply":
            continue  # built whole below: its keys are checked together
        for key, (parser, default, _help) in keys.items():
            raw = values.get(section, {}).get(key)
            if raw is None:
                v.setdefault(section, {})[key] = default
                continue
            try:
                v.setdefault(section, {})[key] = parser(raw)
            except ValueError as e:
                raise ConfigError(f"{origin[f'{section}.{key}']}: [{section}] {key}: {e}") from None
    if v["timer"]["default"] > v["timer"]["max"]:
        where = origin.get("timer.default") or origin.get("timer.max") or "defaults"
        raise ConfigError(f"{where}: [timer] default: longer than [timer] max")
    if not v["timer"]["min"] <= v["timer"]["default"]:
        where = origin.get("timer.min") or origin.get("timer.default") or "defaults"
        raise ConfigError(f"{where}: [timer] min: longer than [timer] default")
    f = v["files"]
    try:
        apply = from_table(ApplyConfig, values.get("apply", {}))
        remote = from_table(RemoteConfig, values.get("remote", {}))
    except SettingError as e:
        where = origin.get(f"{e.section}.{e.key}") or _origin(origin, e.section)
        raise ConfigError(f"{where}: {e}", hint=e.hint) from None
    v["apply"] = {k: getattr(apply, d.field) for k, d in declared(ApplyConfig).items()}
    probe_table = dict(values.get("probes", {}))
    allow_from = origin.get("probes.allow", "defaults")
    probe_targets = TargetPolicy.from_toml(probe_table.pop("allow", []), allow_from)
    for key, value in probe_table.items():  # each key alone first, to name the file that set it
        ProbeSettings.from_toml({key: value}, origin[f"probes.{key}"])
    probes = ProbeSettings.from_toml(probe_table, _origin(origin, "probes"))
    fileset = from_presets(f["presets"], f["include"], f["exclude"])
    if not fileset.include:
        where = origin.get("files.presets") or origin.get("files.include") or "defaults"
        raise ConfigError(
            f"{where}: [files] presets: no presets and no include globs: nothing would be managed"
        )
    return Config(
        fileset=fileset,
        limits=Limits(f["max_file_size"], f["max_total_size"]),
        timeout_default_s=v["timer"]["default"],
        timeout_max_s=v["timer"]["max"],
        timeout_min_s=v["timer"]["min"],
        state_dir=state_dir or Path(v["state"]["dir"]),
        history=v["state"]["history"],
        lock_timeout_s=v["state"]["lock_timeout"],
        apply=apply,
        extra={s: dict(values.get(s, {})) for s in OPEN_SECTIONS},
        sources=tuple(w for w, _ in layers),
        remote=remote,
        probes=probes,
        backstop_grace_s=v["timer"]["backstop_grace"],
        settings=v,
        probe_targets=probe_targets,
    )


def _origin(origin: Mapping[str, str], section: str) -> str:
    """The file(s) that set keys of ``section``, for error messages."""
    files = sorted({w for k, w in origin.items() if k.startswith(f"{section}.")})
    return ", ".join(files) or "defaults"


def to_json(cfg: Config) -> dict[str, Any]:
    """The effective configuration under the keys a config file uses, every one of them
    (durations as "<seconds>s", sizes in bytes: both valid values of the key)."""
    doc: dict[str, Any] = {"sources": list(cfg.sources)}
    for section, keys in SCHEMA.items():
        table: dict[str, Any] = {}
        for key, (parser, default, _help) in keys.items():
            value = cfg.settings.get(section, {}).get(key, default)
            table[key] = f"{value:g}s" if parser in (parse_duration, _grace) else value
        doc[section] = table
    doc["state"]["dir"] = str(cfg.state_dir)  # --state-dir wins over the file
    doc.update({k: dict(v) for k, v in cfg.extra.items() if v})
    return doc
