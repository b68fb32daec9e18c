# SPDX-License-Identifier: GPL-3.0-or-later
"""Confirmation by active probes."""
