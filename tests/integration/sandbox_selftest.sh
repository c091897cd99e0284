#!/usr/bin/env bash
#
# tests/integration/sandbox_selftest.sh -- self-test of scripts/lib/sandbox.sh
#
# Starts the real-nameserver sandbox (campus BIND primary + BIND/NSD/Knot/
# PowerDNS secondaries) inside a private network namespace and checks that:
#   1. all six secondaries (ns0..ns5) load serial 2026112301 of both zones,
#      and their AXFRs are identical to the campus primary's;
#   2. blackholing 127.0.0.10 makes UDP and TCP queries to it time out, while
#      ns1..ns5 keep answering; the rndc channel still works while blackholed
#      and the NOTIFY it triggers does not get through;
#   3. after unblackholing, a campus serial bump reaches ns1..ns5 via NOTIFY
#      within 10 s (ns1/ns2/ns3/ns5 list the DR primary 127.0.0.20 first;
#      nothing listens there, so they fall back to the campus; PowerDNS asks
#      the NOTIFY's sender, the campus, at once);
#   4. every secondary sends its SOA checks and transfers from its own
#      address (the campus's log names each one's source);
#   5. a campus NOTIFY to ns5 dropped with sandbox_drop_notify is counted
#      and ns5 does not follow; sandbox_undrop_notify lets the next through.
#
# Usage: tests/integration/sandbox_selftest.sh      (as root)
#   SANDBOX_KEEP=1  keep the work directory (logs, configs) even on success.
# Prints PASS/FAIL lines; exits non-zero on failure.

set -euo pipefail

# Re-exec inside a private network namespace.
if [[ "${DRDNS_SANDBOX_IN_NETNS:-}" != 1 ]]; then
    if [[ $(id -u) != 0 ]]; then
        echo "sandbox_selftest: must run as root (needs unshare -n, nft, port 53)" >&2
        exit 2
    fi
    export DRDNS_SANDBOX_IN_NETNS=1
    exec unshare -n -- bash "$0" "$@"
fi

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
# shellcheck source-path=SCRIPTDIR source=../../scripts/lib/sandbox.sh
source "$REPO/scripts/lib/sandbox.sh"

sandbox_require_netns

WORK=$(mktemp -d /tmp/drdns-sandbox-selftest.XXXXXX)
sandbox_init "$WORK"

FAILS=0
T_START=$(date +%s%3N)

POLLERS=()
finish() {
    local rc=$? p
    for p in "${POLLERS[@]}"; do kill "$p" 2>/dev/null || true; done
    sandbox_cleanup
    if (( FAILS )) || (( rc )); then
        echo "sandbox_selftest: work directory kept: $WORK" >&2
    elif [[ "${SANDBOX_KEEP:-0}" == 1 ]]; then
        echo "sandbox_selftest: work directory kept: $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap finish EXIT

pass() { printf 'PASS: %s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*"; FAILS=$((FAILS + 1)); }
# check DESCRIPTION CMD... -- PASS/FAIL on CMD's exit status
check() {
    local desc=$1
    shift
    if "$@"; then pass "$desc"; else fail "$desc"; fi
}
elapsed() { echo $(( $(date +%s%3N) - T_START )); }

ZONES=(example.edu 2.0.192.in-addr.arpa)
CAMPUS=127.0.0.10
declare -A NAMEOF=([127.0.0.15]=ns0 [127.0.0.11]=ns1 [127.0.0.12]=ns2
                   [127.0.0.13]=ns3 [127.0.0.14]=ns4 [127.0.0.16]=ns5)
ALL_SEC=(127.0.0.15 127.0.0.11 127.0.0.12 127.0.0.13 127.0.0.14 127.0.0.16)
DR_SEC=(127.0.0.11 127.0.0.12 127.0.0.13 127.0.0.14 127.0.0.16)
S0=2026112301

# ---------------------------------------------------------------- startup
echo "== starting sandbox in $WORK"
if ! sandbox_start_all; then
    fail "sandbox_start_all"
    exit 1
fi
pass "sandbox_start_all ($(elapsed) ms since start)"

for z in "${ZONES[@]}"; do
    check "campus primary serves $z serial $S0" \
        test "$(sandbox_soa_serial "$CAMPUS" "$z")" = "$S0"
    ref=$(sandbox_axfr "$CAMPUS" "$z") || ref=""
    check "campus AXFR of $z is non-empty ($(grep -c . <<<"$ref") RRs)" test -n "$ref"
    for a in "${ALL_SEC[@]}"; do
        check "${NAMEOF[$a]} ($a) serves $z serial $S0" \
            test "$(sandbox_soa_serial "$a" "$z")" = "$S0"
        got=$(sandbox_axfr "$a" "$z") || got=""
        if [[ -n "$got" && "$got" == "$ref" ]]; then
            pass "${NAMEOF[$a]} ($a) AXFR of $z identical to campus"
        else
            fail "${NAMEOF[$a]} ($a) AXFR of $z differs from campus"
            diff <(echo "$ref") <(echo "$got") | head -20 || true
        fi
    done
done

# -------------------------------------------------------------- blackhole
echo "== blackholing $CAMPUS"
sandbox_blackhole "$CAMPUS"

t0=$(date +%s%3N)
rc=0
dig +norec +time=1 +tries=1 @"$CAMPUS" example.edu SOA >/dev/null 2>&1 || rc=$?
t1=$(date +%s%3N)
check "UDP dig @$CAMPUS times out (dig rc=$rc after $((t1 - t0)) ms)" test "$rc" = 9

t0=$(date +%s%3N)
rc=0
dig +tcp +norec +time=1 +tries=1 @"$CAMPUS" example.edu SOA >/dev/null 2>&1 || rc=$?
t1=$(date +%s%3N)
check "TCP dig @$CAMPUS hangs until timeout (dig rc=$rc after $((t1 - t0)) ms)" \
    test "$rc" = 9 -a $((t1 - t0)) -ge 900

for a in "${DR_SEC[@]}"; do
    check "${NAMEOF[$a]} ($a) still answers example.edu SOA $S0 while campus is blackholed" \
        test "$(sandbox_soa_serial "$a" example.edu)" = "$S0"
    www=$(dig +short +norec +time=1 +tries=1 @"$a" www.example.edu A 2>/dev/null || true)
    check "${NAMEOF[$a]} ($a) answers www.example.edu A 192.0.2.80" test "$www" = 192.0.2.80
done

# The rndc control port is exempt from the blackhole: the campus can still
# be changed, but its NOTIFYs are dropped.
S1=2026112302
if sandbox_campus_bump_serial 2.0.192.in-addr.arpa "$S1"; then
    pass "rndc reload works while campus is blackholed (2.0.192.in-addr.arpa -> $S1)"
else
    fail "rndc reload while campus is blackholed"
fi
sleep 2
for a in "${DR_SEC[@]}"; do
    check "${NAMEOF[$a]} ($a) did not see the blackholed bump (still $S0)" \
        test "$(sandbox_soa_serial "$a" 2.0.192.in-addr.arpa)" = "$S0"
done

echo "== unblackholing $CAMPUS"
sandbox_unblackhole "$CAMPUS"
check "campus answers again after unblackhole" \
    test "$(sandbox_soa_serial "$CAMPUS" example.edu)" = "$S0"

# ------------------------------------------------------ bump and follow
S2=2026112303
echo "== bumping campus serials: example.edu -> $S2, 2.0.192.in-addr.arpa -> $S2"
echo "   (2.0.192.in-addr.arpa was reloaded (NOTIFY sent) a few seconds ago while blackholed;"
echo "    BIND's notify-delay (5 s) postpones the NOTIFY for its new serial)"
# One background poller per (zone, secondary) pair, started right before the
# zone's bump, records the wall-clock ms at which the pair first serves the
# new serial; the times below are measured from the moment `rndc reload` was
# issued to the campus primary (poll resolution ~50 ms).
FOLLOW=$WORK/follow
mkdir -p "$FOLLOW"
declare -A BUMP_T0=()
poll_serial() {  # ADDR ZONE SERIAL OUTFILE
    local deadline=$(( $(date +%s%3N) + 10000 ))
    while (( $(date +%s%3N) < deadline )); do
        if [[ "$(sandbox_soa_serial "$1" "$2")" == "$3" ]]; then
            date +%s%3N >"$4"
            return 0
        fi
        sleep 0.05
    done
    echo timeout >"$4"
}
for z in "${ZONES[@]}"; do
    for a in "${ALL_SEC[@]}"; do
        poll_serial "$a" "$z" "$S2" "$FOLLOW/$z-$a" &
        POLLERS+=($!)
    done
    check "campus primary reloaded $z with serial $S2" \
        sandbox_campus_bump_serial "$z" "$S2"
    BUMP_T0[$z]=$SANDBOX_LAST_RELOAD_MS
done
for p in "${POLLERS[@]}"; do wait "$p" || true; done
for z in "${ZONES[@]}"; do
    for a in "${ALL_SEC[@]}"; do
        r=$(cat "$FOLLOW/$z-$a" 2>/dev/null || echo timeout)
        if [[ "$r" =~ ^[0-9]+$ ]]; then
            pass "${NAMEOF[$a]} ($a) serves $z serial $S2 $(( r - BUMP_T0[$z] )) ms after rndc reload"
        else
            fail "${NAMEOF[$a]} ($a) did not reach $z serial $S2 within 10 s (serves '$(sandbox_soa_serial "$a" "$z")')"
        fi
    done
done
for z in "${ZONES[@]}"; do
    ref=$(sandbox_axfr "$CAMPUS" "$z") || ref=""
    for a in "${ALL_SEC[@]}"; do
        got=$(sandbox_axfr "$a" "$z") || got=""
        check "${NAMEOF[$a]} ($a) AXFR of $z identical to campus after the bump" \
            test -n "$got" -a "$got" = "$ref"
    done
done

# ------------------------------------------------------ source addresses
# Each secondary's transfers come from its own address (BIND transfer-source,
# NSD outgoing-interface, Knot via, PowerDNS query-local-address): on lo the
# kernel would otherwise pick the destination, the campus's own address.
CAMPUS_LOG=$WORK/campus/named.log
for a in "${ALL_SEC[@]}"; do
    check "${NAMEOF[$a]} ($a) transfers from the campus from its own address" \
        grep -Eq "client @0x[0-9a-f]+ ${a//./\\.}#[0-9]+.*transfer of" "$CAMPUS_LOG"
done
check "ns5 (PowerDNS) signs its transfers from the campus with its TSIG key" \
    grep -Eq "client @0x[0-9a-f]+ 127\.0\.0\.16#[0-9]+/key drdns-pdns .*AXFR started: TSIG drdns-pdns" "$CAMPUS_LOG"

# --------------------------------------------------- a dropped NOTIFY
S3=2026112304
echo "== dropping the campus's NOTIFYs to ns5, bumping example.edu -> $S3"
sandbox_drop_notify "$CAMPUS" 127.0.0.16
check "campus primary reloaded example.edu with serial $S3" sandbox_campus_bump_serial example.edu "$S3"
check "ns1 follows the bump" sandbox_wait_serial 127.0.0.11 example.edu "$S3" 10
sleep 2
check "ns5 (NOTIFY dropped) stays at $S2" test "$(sandbox_soa_serial 127.0.0.16 example.edu)" = "$S2"
drops=$(sandbox_notify_drops "$CAMPUS" 127.0.0.16)
check "  the drop rules counted the NOTIFY ($drops packets)" test "$drops" -ge 1
sandbox_undrop_notify "$CAMPUS" 127.0.0.16
check "  sandbox_undrop_notify removed the rules" test "$(sandbox_notify_drops "$CAMPUS" 127.0.0.16)" = 0
S4=2026112305
check "campus primary reloaded example.edu with serial $S4" sandbox_campus_bump_serial example.edu "$S4"
check "ns5 follows the next NOTIFY ($S4)" sandbox_wait_serial 127.0.0.16 example.edu "$S4" 10

# ---------------------------------------------------------------- result
echo "== total $(elapsed) ms"
if (( FAILS )); then
    sandbox_dump_logs 40
    echo "RESULT: FAIL ($FAILS checks failed)"
    exit 1
fi
echo "RESULT: PASS"
