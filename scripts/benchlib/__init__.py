# SPDX-License-Identifier: GPL-3.0-or-later
"""scripts/bench: performance figures of netcfg-txn, each next to a baseline measured in the same
run. ``main.py`` is the entry point; one module per benchmark family."""
