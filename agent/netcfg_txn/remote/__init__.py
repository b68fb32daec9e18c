# SPDX-License-Identifier: GPL-3.0-or-later
"""Remote callers: TLS, peers and their tokens, authentication, rate limits, listener, client."""
