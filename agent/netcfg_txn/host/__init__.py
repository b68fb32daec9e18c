# SPDX-License-Identifier: GPL-3.0-or-later
"""Doors to the host: subprocesses, systemd (journal, notify), the failed-rollback alarm."""
