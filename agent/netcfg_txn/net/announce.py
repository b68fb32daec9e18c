# SPDX-License-Identifier: GPL-3.0-or-later
"""Gratuitous ARP for the IPv4 addresses a rollback brought back.

While a changed config had taken an address away, every peer that kept talking to it saw its
neighbour entry fail, and Linux retries a failed entry only once a second: without a word from
us a peer waits up to a second after the rollback before it reaches the address again (measured
here: ~1 s from the deadline to the first answered ping on ifupdown and networkd, against
~0.1 s on NetworkManager, which announces the addresses it configures). One ARP announcement
(a request for our own address, sender = target) per address updates those entries at once.
It is sent three times (at once, after 0.2 s and after 1 s, as NetworkManager does), from a
thread of its own: a link just brought up drops packets until the kernel has attached its
queueing discipline, which a loaded machine can delay. Best effort: a failure is logged, never
a rollback error.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import struct
import threading
import time
from collections.abc import Iterable

log = logging.getLogger(__name__)

ETH_P_ARP = 0x0806
BROADCAST = b"\xff" * 6
REPEAT_AT_S = (0.0, 0.2, 1.0)


def frame(mac: str, address: str) -> bytes:
    """An Ethernet frame holding a gratuitous ARP request for ``address`` from ``mac``. Pure."""
    hw = bytes.fromhex(mac.replace(":", ""))
    ip = ipaddress.IPv4Address(address).packed
    if len(hw) != 6:
        raise ValueError(f"not an Ethernet address: {mac!r}")
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + hw + ip + b"\x00" * 6 + ip
    return BROADCAST + hw + struct.pack("!H", ETH_P_ARP) + arp


def announce(ifname: str, mac: str | None, addresses: Iterable[str]) -> None:
    """Announce each IPv4 address on ``ifname`` (nothing for a link without a MAC address)."""
    addrs = list(addresses)
    if not mac or not addrs:
        return
    frames = []
    for a in addrs:
        try:
            frames.append(frame(mac, a))
        except ValueError as e:
            log.info("cannot announce %s on %s: %s", a, ifname, e)
    if frames:
        threading.Thread(
            target=_send, args=(ifname, frames), name=f"announce-{ifname}", daemon=True
        ).start()


def _send(ifname: str, frames: list[bytes]) -> None:
    t0 = time.monotonic()
    for at in REPEAT_AT_S:
        time.sleep(max(0.0, t0 + at - time.monotonic()))
        try:
            with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as s:
                s.bind((ifname, ETH_P_ARP))
                for f in frames:
                    s.send(f)
        except OSError as e:
            log.info("cannot announce on %s: %s", ifname, e)
            return
    log.debug("announced %d address(es) on %s", len(frames), ifname)
