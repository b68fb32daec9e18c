# SPDX-License-Identifier: GPL-3.0-or-later
# scripts/topology-test: the stacks layer, run in a chroot of the power-cut kernel layer (part of
# the image's cache key). Every stack the topology tier drives, installed but not started at boot:
# the guest runner starts the one its boot is about. ifupdown2 conflicts with ifupdown, so it is
# unpacked into /opt/ifupdown2 and put first in PATH for that stack only.
set -eu
export DEBIAN_FRONTEND=noninteractive
printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
chmod +x /usr/sbin/policy-rc.d
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
    ifenslave vlan bridge-utils netplan.io network-manager iputils-ping >/dev/null
cd /tmp
apt-get download -qq ifupdown2
dpkg-deb -x ifupdown2_*.deb /opt/ifupdown2
rm -f ifupdown2_*.deb
chmod 755 /opt/ifupdown2/usr/share/ifupdown2/__main__.py
mkdir -p /opt/ifupdown2/nct-bin
for tool in ifup ifdown ifquery ifreload; do
    ln -s ../usr/share/ifupdown2/__main__.py "/opt/ifupdown2/nct-bin/$tool"
done
# its configuration, where the unpacked tool looks for it
cp -a /opt/ifupdown2/etc/network/ifupdown2 /etc/network/
rm -f /usr/sbin/policy-rc.d
apt-get clean
rm -rf /var/lib/apt/lists/* /usr/share/doc/* /usr/share/man/*
systemctl disable NetworkManager.service NetworkManager-wait-online.service \
    NetworkManager-dispatcher.service systemd-networkd.service systemd-networkd.socket \
    systemd-networkd-wait-online.service >/dev/null 2>&1 || true
systemctl mask systemd-networkd-wait-online.service NetworkManager-wait-online.service
