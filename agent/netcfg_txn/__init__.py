# SPDX-License-Identifier: GPL-3.0-or-later
"""netcfg-txn: transactional network configuration changes with a crash-safe dead-man timer."""

__version__ = "0.1.0"
