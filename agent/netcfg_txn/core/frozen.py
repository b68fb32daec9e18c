# SPDX-License-Identifier: GPL-3.0-or-later
"""The settings a rollback uses, frozen into the snapshot at ``start``. Pure.

A config edited, broken or deleted after ``start`` must not stop or change the rollback, so every
rollback path (deadline, manual, recovery, boot, backstop) takes the file set, limits, ``[apply]``
and timeouts from this document. Only those settings are frozen: the timer bounds, remote API and
probes keep following the current config.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from netcfg_txn.core.apply import ApplyConfig
from netcfg_txn.core.config import Config
from netcfg_txn.core.fileset import FileSet, Limits
from netcfg_txn.core.settings import SettingError

# The snapshot extra (snapshots/<id>/config.json) that holds it.
NAME = "config"
VERSION = 1


def freeze(cfg: Config) -> dict[str, Any]:
    return {
        "version": VERSION,
        "sources": list(cfg.sources),
        "files": {
            "include": list(cfg.fileset.include),
            "exclude": list(cfg.fileset.exclude),
            "max_file_size": cfg.limits.max_file_bytes,
            "max_total_size": cfg.limits.max_total_bytes,
        },
        "apply": dataclasses.asdict(cfg.apply),
        "lock_timeout_s": cfg.lock_timeout_s,
        "backstop_grace_s": cfg.backstop_grace_s,
    }


def thaw(doc: Mapping[str, Any], base: Config) -> Config:
    """``base`` with the frozen settings of ``doc``. Raises ValueError on a malformed document."""
    try:
        if doc.get("version") != VERSION:
            raise ValueError(f"unknown frozen config version {doc.get('version')!r}")
        f = doc["files"]
        include = tuple(str(g) for g in f["include"])
        if not include:
            raise ValueError("no include globs")
        fields = {x.name for x in dataclasses.fields(ApplyConfig)}
        try:
            apply = ApplyConfig(**{k: v for k, v in doc["apply"].items() if k in fields})
        except SettingError:
            # Frozen by an older version that checked less (a down_command without {ifname}):
            # its stack commands could not run anyway, so the current [apply] does, and the
            # frozen file set still decides what is restored.
            apply = base.apply
        return dataclasses.replace(
            base,
            fileset=FileSet(include, tuple(str(g) for g in f["exclude"])),
            limits=Limits(int(f["max_file_size"]), int(f["max_total_size"])),
            apply=apply,
            lock_timeout_s=float(doc["lock_timeout_s"]),
            backstop_grace_s=float(doc["backstop_grace_s"]),
        )
    except (KeyError, TypeError, AttributeError) as e:
        raise ValueError(f"malformed frozen config: {type(e).__name__}: {e}") from None


def same_files(a: Config, b: Config) -> bool:
    return (a.fileset.include, a.fileset.exclude) == (b.fileset.include, b.fileset.exclude)


def same_rules(a: Config, b: Config) -> bool:
    """Whether ``a`` and ``b`` would roll back the same way (same set, limits and network)."""
    return same_files(a, b) and (a.limits, a.apply) == (b.limits, b.apply)
