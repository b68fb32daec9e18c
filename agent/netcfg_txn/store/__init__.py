# SPDX-License-Identifier: GPL-3.0-or-later
"""The filesystem side: state directory, snapshots and restores, the watcher."""
