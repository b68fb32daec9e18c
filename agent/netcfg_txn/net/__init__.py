# SPDX-License-Identifier: GPL-3.0-or-later
"""The network side: which interfaces a change touches, the per-stack backends, the netlink door."""
