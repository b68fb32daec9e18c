# SPDX-License-Identifier: GPL-3.0-or-later
"""``python -m netcfg_txn.daemon``."""

from netcfg_txn.daemon.main import main

main()
