# SPDX-License-Identifier: GPL-3.0-or-later
from netcfg_txn.cli import run

run()
