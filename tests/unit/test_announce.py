# SPDX-License-Identifier: GPL-3.0-or-later
"""The gratuitous ARP a rollback sends for the addresses it brought back (the frame is ours;
its effect on a peer shows in scripts/bench's deadline figure)."""

from __future__ import annotations

import pytest

from netcfg_txn.net import announce


def test_the_gratuitous_arp_frame_announces_our_own_address() -> None:
    f = announce.frame("02:00:5e:10:00:01", "198.51.100.1")
    mac, ip = bytes.fromhex("02005e100001"), bytes([198, 51, 100, 1])
    assert f[:6] == b"\xff" * 6 and f[6:12] == mac and f[12:14] == b"\x08\x06"
    # Ethernet/IPv4, request; sender = target = our address, target MAC unknown
    assert f[14:22] == bytes.fromhex("0001080006040001")
    assert f[22:28] == mac and f[28:32] == ip and f[32:38] == b"\x00" * 6 and f[38:42] == ip
    with pytest.raises(ValueError):
        announce.frame("02:00", "198.51.100.1")
    with pytest.raises(ValueError):
        announce.frame("02:00:5e:10:00:01", "2001:db8::1")
