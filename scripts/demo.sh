#!/usr/bin/env bash
# drdns demo: a complete DR failover in a private sandbox with real nameservers.
#
#   scripts/demo.sh
#
# Installs what it needs (Debian 12, as root), builds drdns, then inside a
# private network namespace (nothing touches this host's network or port 53):
#   1. starts a BIND campus primary (127.0.0.10) carrying example.edu and
#      2.0.192.in-addr.arpa, an on-campus BIND secondary (ns0, 127.0.0.15), and
#      off-campus secondaries: BIND listing drdns first (ns1, TSIG), NSD (ns2,
#      TSIG), Knot (ns3, TSIG), BIND listing the campus first (ns4), and
#      PowerDNS (ns5, TSIG);
#   2. starts drdnsd (127.0.0.20) in standby and shows `drdnsctl status`;
#   3. cuts the campus off: nftables drops every packet to/from .10 and .15;
#   4. shows `drdnsctl promote --dry-run`, then promotes;
#   5. prints, for each secondary, the serial and NS set it serves and how long
#      it took to converge;
#   6. cleans up every process it started.
# Environment: DEMO_WAIT (default 120) is the promote --wait in seconds.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
export DRDNS_BUILD=${DRDNS_BUILD:-$SRC/build}

if [ "${DRDNS_IN_NETNS:-}" != 1 ]; then
    bash "$SRC/scripts/deps.sh"
    echo "== building drdns"
    BUILD_DIR="$DRDNS_BUILD" bash "$SRC/scripts/build.sh"
    export DRDNS_IN_NETNS=1
    exec unshare -n -- bash "$0" "$@"
fi

source "$SRC/scripts/lib/sandbox.sh"
source "$SRC/scripts/lib/drdns.sh"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
ZONES=(example.edu 2.0.192.in-addr.arpa)
declare -A WHO=([127.0.0.11]="ns1 BIND 9 (drdns first)" [127.0.0.12]="ns2 NSD 4"
                [127.0.0.13]="ns3 Knot 3" [127.0.0.14]="ns4 BIND 9 (campus first)"
                [127.0.0.15]="ns0 BIND 9 (on campus)" [127.0.0.16]="ns5 PowerDNS 4")

sandbox_require_netns
WORK=$(mktemp -d /tmp/drdns-demo.XXXXXX)
sandbox_init "$WORK"

say "starting the campus primary and six secondaries (private network namespace)"
sandbox_start_all
mkdir -p "$WORK/drdns"
drdns_write_conf "$WORK/drdns/drdns.conf" "$SRC/zones-dr"
"$DRDNS_BUILD/drdnsd" --check -c "$WORK/drdns/drdns.conf"
drdns_start "$WORK/drdns/drdns.conf"

table() {
    printf '  %-28s %-12s %-12s %s\n' "secondary" "example.edu" "reverse" "NS set of example.edu"
    local a
    for a in 127.0.0.15 127.0.0.11 127.0.0.12 127.0.0.13 127.0.0.14 127.0.0.16; do
        printf '  %-28s %-12s %-12s %s\n' "${WHO[$a]}" \
            "$(sandbox_soa_serial "$a" example.edu || true)" \
            "$(sandbox_soa_serial "$a" 2.0.192.in-addr.arpa || true)" \
            "$(dig +short +time=1 +tries=1 @"$a" example.edu NS 2>/dev/null | grep -v '^;' | sed 's/\.example\.edu\.//' | sort | tr '\n' ' ' || true)"
    done
}

say "normal operation: every secondary serves the campus data"
table
say "drdnsctl status"
drdnsctl status || true

say "the campus loses connectivity: dropping every packet to/from 127.0.0.10 and 127.0.0.15"
sandbox_blackhole 127.0.0.10 127.0.0.15
table

say "drdnsctl promote --dry-run (what would change; nothing does)"
drdnsctl promote --reason "demo: campus unreachable" --dry-run || true

say "drdnsctl promote --reason \"demo: campus unreachable\" --yes --wait ${DEMO_WAIT:-120}"
set +e
drdnsctl promote --reason "demo: campus unreachable" --yes --wait "${DEMO_WAIT:-120}"
rc=$?
set -e
echo "(exit code $rc: 0 = every secondary converged, 3 = some did not within --wait)"

say "after the failover: what each secondary serves"
table
say "drdnsctl status"
drdnsctl status || true
say "audit log"
cat "$WORK/drdns/state/audit.log"
say "done; cleaning up"
