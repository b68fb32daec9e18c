# SPDX-License-Identifier: GPL-3.0-or-later
"""``[probes] allow``: where the probes of a remotely started transaction may connect. Pure."""

from __future__ import annotations

import dataclasses
import ipaddress

from netcfg_txn.core.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class TargetPolicy:
    """Where probes of a transaction a *remote peer* started may connect (``[probes] allow``).

    Without it, probes would let any peer with ``start`` scan ports and reach services that
    listen only on this host or its links. Loopback, link-local, multicast and unspecified
    addresses are refused unless an ``allow`` network contains them; with ``allow`` set, every
    target must be inside one of its networks. Local root is not limited (it can run nc anyway).
    """

    allow: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @classmethod
    def from_toml(cls, value: object, where: str) -> TargetPolicy:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            raise ConfigError(f"{where}: [probes] allow: expected a list of CIDRs")
        nets = []
        for item in value:
            try:
                nets.append(ipaddress.ip_network(str(item), strict=False))
            except ValueError:
                raise ConfigError(f"{where}: [probes] allow: {item!r} is not a CIDR") from None
        return cls(tuple(nets))

    def refusal(self, address: str) -> str | None:
        """Why a remote peer's probe may not reach ``address`` (an IP), or None."""
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return "not an IP address"
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        allowed = any(ip in net for net in self.allow)
        if allowed:
            return None
        if self.allow:
            return "outside [probes] allow"
        for what, bad in (
            ("loopback", ip.is_loopback),
            ("link-local", ip.is_link_local),
            ("multicast", ip.is_multicast),
            ("unspecified", ip.is_unspecified),
        ):
            if bad:
                return f"{what} address (add it to [probes] allow to permit)"
        return None
