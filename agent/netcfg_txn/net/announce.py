# SPDX-License-Identifier: GPL-3.0-or-later
"""Gratuitous ARP for the IPv4 addresses a rollback brought back.

While a changed config had taken an address away, every peer that kept talking to it saw its
neighbour entry fail, and Linux retries a failed entry only once a second: without a word from
us a peer waits up to a second after the rollback before it reaches the address again (measured
here: ~1 s from the deadline to the first answered ping on ifupdown and networkd, against
~0.1 s on NetworkManager, which announces the addresses it configures). One ARP announcement
(a request for our own address, sender = target) per address updates those entries at once.
Best effort: a failure is logged, never a rollback error.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import struct
from collections.abc import Iterable

log = logging.getLogger(__name__)

ETH_P_ARP = 0x0806
BROADCAST = b"\xff" * 6


def frame(mac: str, address: str) -> bytes:
    """An Ethernet frame holding a gratuitous ARP request for ``address`` from ``mac``. Pure."""
    hw = bytes.fromhex(mac.replace(":", ""))
    ip = ipaddress.IPv4Address(address).packed
    if len(hw) != 6:
        raise ValueError(f"not an Ethernet address: {mac!r}")
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + hw + ip + b"\x00" * 6 + ip
    return BROADCAST + hw + struct.pack("!H", ETH_P_ARP) + arp


def announce(ifname: str, mac: str | None, addresses: Iterable[str]) -> None:
    """Send one announcement per IPv4 address on ``ifname`` (nothing for a link without MAC)."""
    addrs = list(addresses)
    if not mac or not addrs:
        return
    try:
        with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as s:
            s.bind((ifname, ETH_P_ARP))
            for a in addrs:
                s.send(frame(mac, a))
    except (OSError, ValueError) as e:
        log.info("cannot announce %s on %s: %s", ", ".join(addrs), ifname, e)
        return
    log.debug("announced %s on %s", ", ".join(addrs), ifname)
