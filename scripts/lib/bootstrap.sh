# SPDX-License-Identifier: GPL-3.0-or-later
# Shared by scripts/test and scripts/demo: install Debian packages and set up the .venv.
# shellcheck shell=bash

say() { printf '\n==> %s\n' "$*"; }

# The minimum to build and run the agent itself (the systemd-python wheel needs libsystemd-dev).
BASE_PACKAGES=(python3 python3-venv python3-dev gcc pkg-config libsystemd-dev)

# Everything the test tiers use.
APT_PACKAGES=(
  "${BASE_PACKAGES[@]}"
  iproute2 iputils-ping strace procps util-linux                  # namespaces, crash injection
  ifupdown network-manager netplan.io dbus systemd                # real network stacks
  systemd-container debootstrap dnsmasq-base                      # booted-systemd tests, DHCP server
  debhelper dh-python pybuild-plugin-pyproject python3-all python3-setuptools python3-wheel
  dpkg-dev fakeroot build-essential rpm                           # .deb / .rpm builds
  openssl wrk                                                     # TLS and load tests
  openssh-server openssh-client                                   # fleet tier: sshd per simulated host
  qemu-system-x86 qemu-utils                                      # power-cut VM
  groff-base man-db                                               # man pages render test
)

install_packages() {  # PACKAGE...
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" != 0 ]; then
    echo "missing packages (run as root to install): ${missing[*]}" >&2
    return 0
  fi
  say "installing ${missing[*]}"
  # Never let a package start its service on this host (NetworkManager would take over the
  # machine's own interfaces): a policy-rc.d that refuses, unless one is already there.
  local guard=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    guard=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
  [ -n "$guard" ] && rm -f /usr/sbin/policy-rc.d
  return 0
}

# The interpreter: python3 on PATH (Debian 12's is 3.11); a newer one is fine too.
PY=${PYTHON:-python3}

make_venv() {  # DIR STAMP-TEXT PIP-ARGS...
  local dir=$1 stamp=$2; shift 2
  if [ -x "$dir/bin/python" ] && [ "$(cat "$dir/.stamp" 2>/dev/null)" = "$stamp" ]; then
    return 0
  fi
  say "setting up $dir"
  rm -rf "$dir"
  "$PY" -m venv "$dir"
  "$dir/bin/pip" install -q --upgrade pip
  "$dir/bin/pip" install -q "$@"
  echo "$stamp" > "$dir/.stamp"
}



main_venv() {
  make_venv .venv "$(sha256sum pyproject.toml | cut -c1-16)" -e '.[test,dev]'
}
