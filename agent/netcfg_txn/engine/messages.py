# SPDX-License-Identifier: GPL-3.0-or-later
"""The journal MESSAGE_IDs of the engine's state transitions (catalog:
packaging/catalog/netcfg-txn.catalog) and the DEADLINE field's format."""

from __future__ import annotations

import time

MSG_STARTED = "dadf92640bc84527a1a4140a871545aa"
MSG_EXTENDED = "dd97c583e3014ddc89467af7df43f658"
MSG_COMMITTED = "914c9ef68f16435491f920a19aa116cc"
MSG_ROLLBACK_BEGUN = "d496f8d097f8442b8692efaf871e340c"
MSG_ROLLED_BACK = "2c0bdd571b3042f98ef9658d2325167b"
MSG_FAILED = "d4510d873c7d42dcb01059d8acdbec9f"
MSG_BOOT_ROLLBACK = "bebcf3dda87d4724b3d11a99cada5f72"
MSG_RELOAD_REFUSED = "6ca995f6a42c434a8bfce25496f1835f"
MSG_FROZEN_CONFIG = "7670ecb6accf4c5586bfab07518698b4"


def rfc3339(wall_s: float) -> str:
    """The DEADLINE journal field (the catalog shows it): local time with its UTC offset."""
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(wall_s))
