# SPDX-License-Identifier: GPL-3.0-or-later
"""ifupdown2 (Cumulus/Proxmox): the ifupdown file format, a laxer grammar, its own commands.

``ifreload`` is never used: it re-applies every interface, which is what we must not do.
"""

from __future__ import annotations

from typing import ClassVar

from netcfg_txn.net.backends.base import Stack
from netcfg_txn.net.backends.ifupdown import Ifupdown


class Ifupdown2(Ifupdown, stack=Stack.IFUPDOWN2):
    min_iface_words: ClassVar[int] = 2  # "iface br0" alone is a valid stanza here
    down_argv: ClassVar[tuple[str, ...]] = ("ifdown",)
    end_of_options: ClassVar[bool] = False  # not verified with its argparse; names are checked
