# shellcheck shell=bash
#
# tests/integration/lib.sh -- what every integration script shares.  First lines
# of a script:
#
#   set -euo pipefail
#   source "$(cd "$(dirname "$0")" && pwd)/lib.sh" "$@"
#
# It re-executes the script once inside a private network namespace
# (unshare -n: every daemon binds 127.0.0.x there, nothing reaches the host's
# network or port 53), sources scripts/lib/sandbox.sh and scripts/lib/drdns.sh,
# and defines:
#   HERE SRC DRDNS_BUILD     the test directory, the source tree, the build
#   ok WHAT / bad WHAT       count and print "PASS: WHAT" / "FAIL: WHAT"
#   check WHAT CMD...        ok or bad by CMD's exit status
#   serves_all SERIAL ADDR... every ADDR serves SERIAL for every zone in
#                            $ZONES (the script's); the first mismatch is printed
#   refuses ADDR ZONE        ADDR answers REFUSED for ZONE's SOA
#   finish                   prints "<script>: N checks passed, N failed (T s)"
#                            and, after a failure, the daemons' logs
#                            (IT_LOG_LINES lines of drdnsd's, default 80)

HERE=$(cd "$(dirname "$0")" && pwd)
SRC=${DRDNS_SRC:-$(cd "$HERE/../.." && pwd)}
export DRDNS_BUILD=${DRDNS_BUILD:-$SRC/build}

if [ "${DRDNS_IN_NETNS:-}" != 1 ]; then
    export DRDNS_IN_NETNS=1
    exec unshare -n -- "$0" "$@"
fi

source "$SRC/scripts/lib/sandbox.sh"
source "$SRC/scripts/lib/drdns.sh"

IT_NAME=$(basename "$0" .sh)
IT_T0=$(date +%s)
pass=0
fail=0
ok()   { pass=$((pass + 1)); echo "PASS: $*"; }
bad()  { fail=$((fail + 1)); echo "FAIL: $*"; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }
finish() {
    echo "$IT_NAME: $pass checks passed, $fail failed ($(( $(date +%s) - IT_T0 )) s)"
    if [ "$fail" -ne 0 ]; then
        sandbox_dump_logs 40
        echo "==== drdnsd log ====" >&2
        tail -n "${IT_LOG_LINES:-80}" "$SANDBOX_DIR/drdnsd.log" >&2 || true
    fi
}

serves_all() {
    local serial=$1 a z
    shift
    for a in "$@"; do
        for z in "${ZONES[@]}"; do
            [ "$(sandbox_soa_serial "$a" "$z")" = "$serial" ] || { echo "  $a $z: $(sandbox_soa_serial "$a" "$z")"; return 1; }
        done
    done
}
# No pipe into grep -q: under pipefail, grep exiting at the first match can
# SIGPIPE dig and fail the check.
refuses() {
    grep -q 'status: REFUSED' <<<"$(dig +time=2 +tries=1 +norec @"$1" "$2" SOA)"
}
