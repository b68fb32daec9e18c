# SPDX-License-Identifier: GPL-3.0-or-later
from netcfg_txn.cli.main import run

run()
