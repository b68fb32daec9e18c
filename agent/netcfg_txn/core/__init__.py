# SPDX-License-Identifier: GPL-3.0-or-later
"""Pure logic: values, the state machine, config parsing.

No I/O: imports only ``core`` and the pure parts of the standard library."""
