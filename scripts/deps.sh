#!/usr/bin/env bash
# Install what drdns needs to build, test and run its demo on Debian 12.
# Idempotent: does nothing when every package is already installed.
# Nameserver packages (bind9, nsd, knot, pdns-server) are installed with their services held
# back (policy-rc.d), so nothing ever listens on this host's port 53: the demo
# and the tests start their own copies inside a private network namespace.
set -euo pipefail

PACKAGES=(
  # build
  meson ninja-build pkg-config gcc
  libldns-dev libuv1-dev libconfig-dev libjansson-dev libssl-dev libcmocka-dev
  libmicrohttpd-dev libsystemd-dev
  # quality gates
  valgrind clang-format groff-base   # groff-base: tests/man_check.sh
  # real peers for integration tests and the demo
  bind9 bind9-utils bind9-dnsutils nsd knot knot-dnsutils ldnsutils
  pdns-server pdns-backend-sqlite3 sqlite3
  # differential test against NSD (query corpus and section-by-section compare)
  python3 python3-dnspython python3-cryptography   # cryptography: RRSIG validation
  # sandbox: private network namespaces and packet drops
  iproute2 nftables util-linux procps
  # benchmarks
  hyperfine
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "deps.sh: missing packages: ${missing[*]}; run as root to install them" >&2
  exit 1
fi
echo "deps.sh: installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Keep the packaged nameservers from starting on the host.
added_policy=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  added_policy=1
fi
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
[ "$added_policy" -eq 1 ] && rm -f /usr/sbin/policy-rc.d
# The host's own services are never stopped, disabled or reconfigured here:
# policy-rc.d kept the new packages from starting, and the sandbox never
# uses the host's port 53 (it runs in its own network namespace).
exit 0
