#!/usr/bin/env bash
# Integration test: PowerDNS as a secondary of drdns, promote and failback.
#
# Runs itself inside a private network namespace (unshare -n) like failover.sh,
# with the standard sandbox (scripts/lib/sandbox.sh): ns5 (127.0.0.16) is
# PowerDNS 4.7 with the gsqlite3 backend, `secondary=yes`, its zones made by
# `pdnsutil create-secondary-zone ZONE 127.0.0.20 127.0.0.10` and TSIG by
# `pdnsutil import-tsig-key` + `activate-tsig-key ZONE drdns-pdns secondary`;
# drdns lists it with tsig_key = tests/integration/keys/pdns-dr.key.
#
# PowerDNS asks only the server that sent a NOTIFY.  So after a demote it follows
# the campus back only if the campus's NOTIFY reaches it, or if drdns itself
# serves the campus data when it NOTIFYs (the hand-back relay, issue 11 item 4).
# This test drops the campus's NOTIFYs to PowerDNS (nftables) for the failback.
# Once the zones are loaded, ns5 runs with PowerDNS's default
# xfr-cycle-interval=60 (the sandbox's 1 s makes it retry a refused check
# within seconds, against a primary of its choice, which would hide the
# problem): a check drdns refuses is retried 60 s later at the earliest, after
# the demote's --wait 45.
#
# Checks, in order:
#   - PowerDNS's zones: secondary, primaries drdns then campus, the TSIG key
#     activated for the zone (AXFR-MASTER-TSIG);
#   - promote (campus and ns0 black-holed): PowerDNS gets a TSIG-signed NOTIFY
#     from drdns, transfers with its key (an unsigned AXFR from its address is
#     refused), converges, and serves the DR serial; its AXFR of each zone is
#     drdns's; the convergence time is reported (not asserted);
#   - failback with the campus's NOTIFYs to PowerDNS dropped: the campus comes
#     back and publishes above the DR serial; PowerDNS does not hear of it (the
#     drop rules count the NOTIFYs; it still serves the DR serial); demote exits
#     0 (--wait 45) with PowerDNS converged; PowerDNS serves the campus serial and its AXFR
#     is the campus's; it got that copy from drdns (the relay), not by luck of
#     its own retries; drdns answers REFUSED afterwards; the time is reported.
set -euo pipefail
source "$(cd "$(dirname "$0")" && pwd)/lib.sh" "$@"

CAMPUS=127.0.0.10
PDNS=127.0.0.16
DR_SERIAL=2026112302
FB_SERIAL=2026112320
ZONES=(example.edu 2.0.192.in-addr.arpa)
PLOG= # PowerDNS's log, set once the sandbox is up

sandbox_require_netns
WORK=$(mktemp -d /tmp/drdns-pdns.XXXXXX)
sandbox_init "$WORK"
trap 'finish; sandbox_cleanup' EXIT
sandbox_start_all
PLOG=$SANDBOX_DIR/ns5/pdns.log
sandbox_restart_pdns_secondary ns5 "$PDNS" 60

mkdir -p "$WORK/drdns"
CONF=$WORK/drdns/drdns.conf
drdns_write_conf "$CONF" "$SRC/zones-dr"
check "drdnsd --check accepts the configuration with PowerDNS" "$DRDNS_BUILD/drdnsd" --check -c "$CONF"
drdns_start "$CONF"

# wait_until SECONDS CMD...: poll CMD every 0.2 s, at most SECONDS.
wait_until() {
    local end=$(( $(date +%s) + $1 )); shift
    until "$@"; do
        [ "$(date +%s)" -lt "$end" ] || return 1
        sleep 0.2
    done
}
pdnsutil5() { pdnsutil --config-dir="$SANDBOX_DIR/ns5" "$@" 2>/dev/null; }
plog_mark() { wc -l <"$PLOG"; }
plog_has() { tail -n +"$(( $1 + 1 ))" "$PLOG" | grep -F -- "$2" >/dev/null; } # MARK TEXT
secondary_of() { json_get "$1" "[s.get('$2') for s in d['secondaries'] if s['name']=='ns5.example.edu.'][0]"; } # JSON FIELD
same_axfr() { # ADDR_A ADDR_B ZONE
    local a b
    a=$(sandbox_axfr "$1" "$3") || { echo "  AXFR of $3 from $1 failed"; return 1; }
    b=$(sandbox_axfr "$2" "$3") || { echo "  AXFR of $3 from $2 failed"; return 1; }
    [ "$a" = "$b" ] || { diff <(echo "$a") <(echo "$b") | sed 's/^/  /' | head -20; return 1; }
}

# --- PowerDNS's configuration ---------------------------------------------------
for z in "${ZONES[@]}"; do
    zinfo=$(pdnsutil5 show-zone "$z")
    check "ns5: $z is a secondary zone (pdnsutil show-zone)" grep -q "^This is a Slave zone" <<<"$zinfo"
    check "  primaries drdns then campus" grep -q "^Primaries: $DRDNS_ADDR:53 $CAMPUS:53 *\$" <<<"$zinfo"
    check "  TSIG key drdns-pdns activated for it (AXFR-MASTER-TSIG)" \
        grep -q "AXFR-MASTER-TSIG = drdns-pdns" <<<"$(pdnsutil5 get-meta "$z" AXFR-MASTER-TSIG)"
done
check "ns5 serves the campus data" same_axfr "$CAMPUS" "$PDNS" example.edu
check "not promoted: drdns answers REFUSED" refuses "$DRDNS_ADDR" example.edu

# --- promote ------------------------------------------------------------------------
sandbox_blackhole 127.0.0.10 127.0.0.15
pmark=$(plog_mark)
set +e
out=$(drdnsctl --json promote --reason "pdns test: campus dark" --yes --wait 90); rc=$?
set -e
echo "$out" >"$WORK/promote.json"
check "promote: exit 0, or 3 with only ns4 (BIND, campus first) not converged" \
    test "$rc:$(json_get "$out" '",".join(sorted(s["name"] for s in d["secondaries"] if not s["converged"] and not s.get("skipped")))')" = "0:" -o \
         "$rc:$(json_get "$out" '",".join(sorted(s["name"] for s in d["secondaries"] if not s["converged"] and not s.get("skipped")))')" = "3:ns4.example.edu."
check "  ns5 (PowerDNS) converged" test "$(secondary_of "$out" converged)" = true
check "  its NOTIFY was acknowledged" test "$(json_get "$out" "[s['notify']['acked'] for s in d['secondaries'] if s['name']=='ns5.example.edu.'][0]")" = true
T_PROMOTE=$(secondary_of "$out" seconds)
echo "  PowerDNS convergence on promote: $T_PROMOTE s"
check "ns5 serves the DR serial $DR_SERIAL" serves_all "$DR_SERIAL" "$PDNS"
for z in "${ZONES[@]}"; do
    check "  its AXFR of $z is drdns's" same_axfr "$DRDNS_ADDR" "$PDNS" "$z"
    check "  its log: a TSIG-signed NOTIFY for $z from drdns" \
        plog_has "$pmark" "Received secure NOTIFY for $z from $DRDNS_ADDR, with TSIG key 'drdns-pdns'"
    check "  its log: $z transferred from drdns, serial $DR_SERIAL" \
        plog_has "$pmark" "AXFR-in zone: '$z', primary: '$DRDNS_ADDR', zone committed with serial $DR_SERIAL"
done
PKEY=$(sed -n 's/.*secret "\(.*\)".*/\1/p' "$SRC/tests/integration/keys/pdns-dr.key")
check "TSIG: drdns refuses an unsigned AXFR from PowerDNS's address" \
    bash -c "! dig +time=2 +tries=1 -b $PDNS @$DRDNS_ADDR example.edu AXFR | grep -q 'IN.SOA'"
check "TSIG: and serves it signed with PowerDNS's key" \
    bash -c "dig +time=2 +tries=1 -b $PDNS -y hmac-sha256:drdns-pdns:$PKEY @$DRDNS_ADDR example.edu AXFR | grep -q 'IN.SOA'"

# --- failback, the campus's NOTIFYs to PowerDNS dropped --------------------------------
drdnsctl pause --reason "pdns test: manual failback" >/dev/null
sandbox_drop_notify "$CAMPUS" "$PDNS"
sandbox_unblackhole 127.0.0.10 127.0.0.15
for z in "${ZONES[@]}"; do sandbox_campus_bump_serial "$z" "$FB_SERIAL" >/dev/null; done
check "the campus serves $FB_SERIAL" serves_all "$FB_SERIAL" "$CAMPUS"
check "  ns1 (BIND) hears of it" wait_until 20 serves_all "$FB_SERIAL" 127.0.0.11
check "  the drop rules counted the campus's NOTIFYs to PowerDNS" test "$(sandbox_notify_drops "$CAMPUS" "$PDNS")" -ge 2
check "  ns5 (PowerDNS) does not: still $DR_SERIAL" serves_all "$DR_SERIAL" "$PDNS"
fmark=$(plog_mark)
set +e
out=$(drdnsctl --json demote --reason "pdns test: failback" --yes --wait 45); rc=$?
set -e
echo "$out" >"$WORK/demote.json"
check "demote: exit 0" test "$rc" = 0
check "  ns5 (PowerDNS) converged" test "$(secondary_of "$out" converged)" = true
T_DEMOTE=$(secondary_of "$out" seconds)
echo "  PowerDNS convergence on demote: $T_DEMOTE s"
check "ns5 serves the campus serial $FB_SERIAL" serves_all "$FB_SERIAL" "$PDNS"
for z in "${ZONES[@]}"; do
    check "  its AXFR of $z is the campus's" same_axfr "$CAMPUS" "$PDNS" "$z"
    check "  it got $z from drdns (the hand-back relay), serial $FB_SERIAL" \
        plog_has "$fmark" "AXFR-in zone: '$z', primary: '$DRDNS_ADDR', zone committed with serial $FB_SERIAL"
done
check "every secondary serves the campus serial" serves_all "$FB_SERIAL" 127.0.0.15 127.0.0.11 127.0.0.12 127.0.0.13 127.0.0.14 "$PDNS"
check "drdns answers REFUSED again" wait_until 30 refuses "$DRDNS_ADDR" example.edu
check "status: standby" test "$(json_get "$(drdnsctl --json status)" 'd["role"]')" = standby
echo "PowerDNS convergence: promote $T_PROMOTE s, demote (campus NOTIFY dropped) $T_DEMOTE s"
sandbox_undrop_notify "$CAMPUS" "$PDNS"
drdnsctl resume --reason "pdns test: done" >/dev/null

[ "$fail" -eq 0 ]
