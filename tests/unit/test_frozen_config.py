# SPDX-License-Identifier: GPL-3.0-or-later
"""The frozen config of a snapshot (config.json) stays readable across the one-declaration
``[apply]``: a document the previous version wrote still rolls back with its own settings."""

from __future__ import annotations

from typing import Any

from netcfg_txn.core import config, frozen
from netcfg_txn.core.apply import ApplyConfig

# Written by the version before [apply] had one declaration (snapshots/<id>/config.json).
OLD: dict[str, Any] = {
    "version": 1,
    "sources": ["/etc/netcfg-txn/netcfg-txn.toml"],
    "files": {
        "include": ["/etc/network/interfaces"],
        "exclude": [],
        "max_file_size": 1024,
        "max_total_size": 4096,
    },
    "apply": {
        "backend": "command",
        "command": "",
        "fallback": "all",
        "down_command": "ip link set {ifname} down",
        "up_command": "ip link set {ifname} up",
        "reload_command": "",
        "timeout_s": 30.0,
    },
    "lock_timeout_s": 10.0,
    "backstop_grace_s": 15.0,
}


def test_a_frozen_config_of_the_previous_version_thaws() -> None:
    base = config.parse([])
    cfg = frozen.thaw(OLD, base)
    assert cfg.apply == ApplyConfig(
        backend="command",
        fallback="all",
        down_command="ip link set {ifname} down",
        up_command="ip link set {ifname} up",
        timeout_s=30.0,
    )
    assert cfg.fileset.include == ("/etc/network/interfaces",)
    assert (cfg.limits.max_file_bytes, cfg.limits.max_total_bytes) == (1024, 4096)


def test_freeze_writes_the_same_document_shape() -> None:
    cfg = frozen.thaw(OLD, config.parse([]))
    doc = frozen.freeze(cfg)
    assert doc["apply"] == OLD["apply"] and doc["files"] == OLD["files"]
    assert frozen.thaw(doc, config.parse([])) == cfg


def test_an_apply_the_new_rules_refuse_keeps_the_frozen_files() -> None:
    """Frozen before down_command needed {ifname}: its commands could not run, so the current
    [apply] does; the frozen file set still decides what is restored."""
    old = {**OLD, "apply": {**OLD["apply"], "down_command": "ifdown eth0"}}
    base = config.parse([])
    cfg = frozen.thaw(old, base)
    assert cfg.apply == base.apply
    assert cfg.fileset.include == ("/etc/network/interfaces",)
