#!/usr/bin/env bash
# Integration test: a full DR failover against real BIND, NSD, Knot and PowerDNS
# secondaries.
#
# Runs itself inside a private network namespace (unshare -n); every daemon binds
# to 127.0.0.x on the namespace's loopback, and every process it starts is killed
# on exit.  The campus primary and the on-campus secondary are "lost" by dropping
# their packets with nftables.
#
# Checks, in order:
#   - status works; a promote while the master answers is refused (exit 4);
#   - bad input changes nothing: a bad configuration (--check exit 1, file:line),
#     a DR zone file with a syntax error (promote exit 1, file:line, secondaries
#     keep the campus serial, drdns keeps answering REFUSED), an unknown zone;
#   - --dry-run shows the plan and changes nothing;
#   - promote --wait 20: exit 3.  ns4 (BIND listing the campus first) is still
#     walking its primaries (~61 s: SOA retries and a TCP timeout against the
#     silent campus) and ns6 (an off-campus BIND never configured to list drdns)
#     REFUSES the NOTIFY and never converges; both are reported honestly, and the
#     drdns-first BIND, NSD, Knot and PowerDNS serve the DR serial;
#   - each secondary's AXFR equals the hand-written expected zone (dead NS dropped,
#     its address record kept as zone data, TTLs <= dr_ttl, serial = campus + 1);
#   - TSIG: NSD and PowerDNS transfer with their keys; an unsigned AXFR from
#     their addresses is refused;
#   - promote again --wait 150 (ns6 now down, so skipped): no second serial bump,
#     exit 0 once ns4 has converged;
#   - the audit log records who, why and the result; a restart keeps serving;
#   - failback: demote with the campus back but behind is refused (exit 4, the
#     serial it must publish, nothing changed); once the campus publishes above
#     the DR serial, demote returns every secondary to the campus data (exit 0)
#     and drdns answers REFUSED again -- ns1 (BIND, drdns first) with every
#     packet from the campus dropped, so only through the hand-back relay
#     (drdns serves the campus copies it fetched until every secondary
#     followed; --dry-run fetches and checks them too).
set -euo pipefail
source "$(cd "$(dirname "$0")" && pwd)/lib.sh" "$@"


CAMPUS_SERIAL=2026112301
DR_SERIAL=2026112302
ZONES=(example.edu 2.0.192.in-addr.arpa)
LIVE=(127.0.0.11 127.0.0.12 127.0.0.13 127.0.0.14 127.0.0.16)
FAST=(127.0.0.11 127.0.0.12 127.0.0.13 127.0.0.16) # dr-first BIND, NSD, Knot, PowerDNS

sandbox_require_netns
WORK=$(mktemp -d /tmp/drdns-failover.XXXXXX)
sandbox_init "$WORK"
trap 'finish; sandbox_cleanup' EXIT
sandbox_start_all
# ns6: off campus, alive, but its operator never added drdns as a primary.
sandbox_start_bind_secondary ns6 127.0.0.17 campus-only
for z in "${ZONES[@]}"; do sandbox_wait_serial 127.0.0.17 "$z" "$CAMPUS_SERIAL" 30; done

# drdns with its own copy of the DR set (so the test can break it).
mkdir -p "$WORK/drdns"
cp -r "$SRC/zones-dr" "$WORK/drdns/zones-dr"
CONF=$WORK/drdns/drdns.conf
drdns_write_conf "$CONF" "$WORK/drdns/zones-dr" '{ name = "ns6.example.edu."; address = "127.0.0.17"; }'
check "drdnsd --check accepts the sandbox configuration" "$DRDNS_BUILD/drdnsd" --check -c "$CONF"
check "  and says which zones publish drdnsd" grep -q "example.edu. publishes ns-dr.example.edu. as a public nameserver" <<<"$("$DRDNS_BUILD/drdnsd" --check -c "$CONF")"
drdns_start "$CONF"


# --- standby ---------------------------------------------------------------
out=$(drdnsctl --json status) || true
check "status: standby, master up" test "$(json_get "$out" 'd["role"]+" "+str(d["master"]["up"])')" = "standby True"
check "status: ns3 serves the campus serial" test "$(json_get "$out" '[s for s in d["secondaries"] if s["name"]=="ns3.example.edu."][0]["zones"][0]["serial"]')" = "$CAMPUS_SERIAL"
check "not promoted: drdns answers REFUSED" refuses "$DRDNS_ADDR" example.edu
set +e
drdnsctl frobnicate >/dev/null 2>&1; rc=$?
set -e
check "unknown control command: usage error (exit 2)" test "$rc" = 2
set +e
drdnsctl promote --yes >/dev/null 2>&1; rc=$?
set -e
check "promote without --reason: usage error (exit 2)" test "$rc" = 2
set +e
drdnsctl promote --reason $'two\nlines' --yes >/dev/null 2>&1; rc=$?
set -e
check "promote with a multi-line reason: usage error (exit 2)" test "$rc" = 2

set +e
out=$(drdnsctl --json promote --reason "test: master healthy" --yes --wait 5); rc=$?
set -e
check "promote while the master answers: exit 4" test "$rc" = 4
check "  and the message says why and offers --force" grep -q -- "--force" <<<"$out"
check "  and nothing changed" serves_all "$CAMPUS_SERIAL" "${LIVE[@]}"

# --- the campus goes dark ----------------------------------------------------
sandbox_blackhole 127.0.0.10 127.0.0.15
check "campus primary black-holed" test -z "$(sandbox_soa_serial 127.0.0.10 example.edu)"

# Bad configuration: rejected with file:line, the running daemon is untouched.
cat >"$WORK/bad.conf" <<'CONF'
controller = { id = "x"; address = "127.0.0.300"; port = 53; ns_name = "ns-dr.example.edu."; };
master = { address = "127.0.0.10"; fail_afetr = 3; };
secondaries = ( { name = "ns1.example.edu."; address = "127.0.0.11"; } );
zones = { directory = "/nonexistent"; };
CONF
set +e
msg=$("$DRDNS_BUILD/drdnsd" --check -c "$WORK/bad.conf" 2>&1); rc=$?
set -e
check "bad configuration: --check exit 1" test "$rc" = 1
check "  reports file:line for the bad address" grep -q "bad.conf:1:" <<<"$msg"
check "  reports the unknown key with its line" grep -q "bad.conf:2:.*fail_afetr" <<<"$msg"

# A DR zone file with a syntax error: promote fails, nothing changes.
cp "$WORK/drdns/zones-dr/example.edu.zone" "$WORK/example.edu.zone.orig"
echo "broken  IN  A  192.0.2.999" >>"$WORK/drdns/zones-dr/example.edu.zone"
badline=$(wc -l <"$WORK/drdns/zones-dr/example.edu.zone")
set +e
out=$(drdnsctl --json promote --reason "test: broken zone" --yes --wait 5); rc=$?
set -e
check "zone syntax error: promote exit 1" test "$rc" = 1
check "  message names file:line" grep -q "example.edu.zone:$badline:" <<<"$out"
check "  secondaries still serve the campus serial" serves_all "$CAMPUS_SERIAL" "${LIVE[@]}"
check "  drdns still answers REFUSED" refuses "$DRDNS_ADDR" example.edu
check "  drdnsd --check also fails" bash -c "! '$DRDNS_BUILD/drdnsd' --check -c '$CONF' 2>/dev/null"
cp "$WORK/example.edu.zone.orig" "$WORK/drdns/zones-dr/example.edu.zone"

# Dry run: the plan, and nothing changes.
out=$(drdnsctl --json promote --reason "test: dry run" --dry-run)
check "dry run: exit 0 and new serial $DR_SERIAL" test "$(json_get "$out" 'd["zones"][0]["new_serial"]')" = "$DR_SERIAL"
FWD='[z for z in d["zones"] if z["zone"]=="example.edu."][0]'
check "  ns0 would be dropped" test "$(json_get "$out" "[n['verdict'] for n in $FWD['ns'] if n['name']=='ns0.example.edu.'][0]")" = "drop"
check "  its address record would stay (zone data, not glue)" grep -q "ns0.example.edu. A 198.51.100.10" <<<"$(json_get "$out" "$FWD['kept_addresses']")"
check "  no glue would be dropped (no cut removed)" test "$(json_get "$out" "len($FWD['dropped_glue'])")" = 0
hout=$(drdnsctl promote --reason "test: dry run" --dry-run)
check "  the human plan says drdnsd is published" grep -q "publishes ns-dr.example.edu. as a public nameserver" <<<"$hout"
check "  and that ns0's address stays" grep -q "address kept (zone data, not glue): ns0.example.edu. A 198.51.100.10" <<<"$hout"
check "  the NS TTLs would be clamped" test "$(json_get "$out" "$FWD['ttls_clamped']")" -ge 5
check "  nothing changed: drdns answers REFUSED" refuses "$DRDNS_ADDR" example.edu
check "  nothing changed: secondaries keep the campus serial" serves_all "$CAMPUS_SERIAL" "${LIVE[@]}"

# Confirmation: on a terminal without --yes it asks; "no" changes nothing.
SOCK=$(dirname "$CONF")/control.sock
set +e
printf 'no\n' | script -qec "$DRDNS_BUILD/drdnsctl -s $SOCK promote --reason 'test: tty'" /dev/null >"$WORK/tty.out" 2>&1; rc=$?
set -e
check "tty without --yes: asks, and 'no' aborts (exit 1)" test "$rc" = 1
check "  the prompt asked for 'yes'" grep -q "Type 'yes'" "$WORK/tty.out"
check "  nothing changed" refuses "$DRDNS_ADDR" example.edu
set +e
drdnsctl promote --reason "test: no tty" </dev/null >/dev/null 2>&1; rc=$?
set -e
check "no terminal and no --yes: usage error (exit 2)" test "$rc" = 2
check "  nothing changed" refuses "$DRDNS_ADDR" example.edu

# --- promote ----------------------------------------------------------------
set +e
out=$(drdnsctl --json promote --reason "test: campus dark" --yes --wait 20); rc=$?
set -e
echo "$out" >"$WORK/promote1.json"
check "promote: exit 3 (ns6 never converges)" test "$rc" = 3
check "  ns6 reported not converged" test "$(json_get "$out" '[s["converged"] for s in d["secondaries"] if s["name"]=="ns6.example.edu."][0]')" = "false"
check "  ns4 (BIND, campus first, walking the dead campus) not yet converged" test "$(json_get "$out" '[s["converged"] for s in d["secondaries"] if s["name"]=="ns4.example.edu."][0]')" = "false"
check "  ns6's NOTIFY reported not acknowledged" test "$(json_get "$out" '[s["notify"]["acked"] for s in d["secondaries"] if s["name"]=="ns6.example.edu."][0]')" = "false"
check "  ns0 (dead) skipped, not waited for" test "$(json_get "$out" '[s["skipped"] for s in d["secondaries"] if s["name"]=="ns0.example.edu."][0]')" = "true"
for s in ns1 ns2 ns3 ns5; do
    check "  $s converged, with a time" test "$(json_get "$out" "[str(s['converged'])+' '+str(s['seconds'] is not None) for s in d['secondaries'] if s['name']=='$s.example.edu.'][0]")" = "True True"
done
check "BIND (DR first), NSD, Knot and PowerDNS serve the DR serial" serves_all "$DR_SERIAL" "${FAST[@]}"
check "drdns serves the DR serial" serves_all "$DR_SERIAL" "$DRDNS_ADDR"
check "unknown zone: drdns answers REFUSED" refuses "$DRDNS_ADDR" example.org
check "unknown zone: AXFR refused" bash -c "! dig +time=2 +tries=1 @$DRDNS_ADDR example.org AXFR | grep -q 'IN.SOA'"

compare_axfr() { # ADDR ZONE
    local expected
    expected=$(sed "s/@SERIAL@/$DR_SERIAL/" "$HERE/expected/$2.zone" | ldns-read-zone -c /dev/stdin |
               awk '!/^;/ && NF { $1 = $1; print }' | LC_ALL=C sort -u)
    local got
    got=$(sandbox_axfr "$1" "$2") || { echo "  AXFR from $1 failed"; return 1; }
    if [ "$expected" != "$got" ]; then
        diff <(echo "$expected") <(echo "$got") | sed 's/^/  /'
        return 1
    fi
}
max_ttl() { sandbox_axfr "$1" "$2" | awk '{ if ($2 > m) m = $2 } END { print m + 0 }'; }
for a in "$DRDNS_ADDR" "${FAST[@]}"; do
    for z in "${ZONES[@]}"; do
        check "AXFR of $z from $a equals the expected rewritten zone" compare_axfr "$a" "$z"
        check "  no TTL above dr_ttl" test "$(max_ttl "$a" "$z")" -le 600
        check "  NS set lacks the dead ns0" bash -c "! dig +short @$a $z NS | grep -q ns0"
        [ "$z" = example.edu ] &&
            check "  the dropped ns0's address is still served" test "$(dig +short +time=2 +tries=1 @$a ns0.example.edu A)" = 198.51.100.10
    done
done

# TSIG: the NSD secondary's transfers are keyed.
KEY=$(sed -n 's/.*secret "\(.*\)".*/\1/p' "$SRC/tests/integration/keys/nsd-dr.key")
check "TSIG: unsigned AXFR from NSD's address refused" bash -c "! dig +time=2 +tries=1 -b 127.0.0.12 @$DRDNS_ADDR example.edu AXFR | grep -q 'IN.SOA'"
check "TSIG: signed AXFR with NSD's key works" bash -c "dig +time=2 +tries=1 -b 127.0.0.12 -y hmac-sha256:drdns-nsd:$KEY @$DRDNS_ADDR example.edu AXFR | grep -q 'IN.SOA'"
check "TSIG: AXFR with a wrong key refused" bash -c "! dig +time=2 +tries=1 -b 127.0.0.12 -y hmac-sha256:drdns-nsd:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= @$DRDNS_ADDR example.edu AXFR | grep -q 'IN.SOA'"
# TSIG: PowerDNS (ns5) signs its transfers with its own key (AXFR-MASTER-TSIG).
PKEY=$(sed -n 's/.*secret "\(.*\)".*/\1/p' "$SRC/tests/integration/keys/pdns-dr.key")
check "TSIG: unsigned AXFR from PowerDNS's address refused" bash -c "! dig +time=2 +tries=1 -b 127.0.0.16 @$DRDNS_ADDR example.edu AXFR | grep -q 'IN.SOA'"
check "TSIG: signed AXFR with PowerDNS's key works" bash -c "dig +time=2 +tries=1 -b 127.0.0.16 -y hmac-sha256:drdns-pdns:$PKEY @$DRDNS_ADDR example.edu AXFR | grep -q 'IN.SOA'"
pdns_signed_axfr() { grep -q "AXFR-in zone: 'example.edu', primary: '$DRDNS_ADDR', zone committed with serial $DR_SERIAL" "$SANDBOX_DIR/ns5/pdns.log"; }
check "  PowerDNS's own log: the AXFR from drdns committed the DR serial" pdns_signed_axfr

# --- promote twice ----------------------------------------------------------
sandbox_stop ns6
set +e
out=$(drdnsctl --json promote --reason "test: again" --yes --wait 150); rc=$?
set -e
echo "$out" >"$WORK/promote2.json"
echo "ns4 (campus first) convergence, second promote: $(json_get "$out" '[s.get("seconds") for s in d["secondaries"] if s["name"]=="ns4.example.edu."][0]') s"
check "second promote (ns6 gone): exit 0, every live secondary converged" test "$rc" = 0
check "  already_promoted, serial not bumped again" test "$(json_get "$out" 'str(d["already_promoted"])+" "+str(d["zones"][0]["new_serial"])')" = "True $DR_SERIAL"
check "  ns4 (BIND, campus first) converged" test "$(json_get "$out" '[s["converged"] for s in d["secondaries"] if s["name"]=="ns4.example.edu."][0]')" = "true"
check "every live secondary serves $DR_SERIAL" serves_all "$DR_SERIAL" "${LIVE[@]}"
check "AXFR from ns4 equals the expected zone" compare_axfr 127.0.0.14 example.edu
echo "convergence seconds (first promote): $(json_get "$(cat "$WORK/promote1.json")" '{s["name"]: s.get("seconds") for s in d["secondaries"]}')"

# --- audit log and restart ----------------------------------------------------
AUDIT=$WORK/drdns/state/audit.log
check "audit log: the refused, failed and done promotions" test "$(grep -c '"action":"promote"' "$AUDIT")" -ge 4
check "  records the reason and the result" grep -q '"reason":"test: campus dark".*"result":"done-not-converged"\|"result":"done-not-converged".*"reason":"test: campus dark"' "$AUDIT"
check "  records the uid" grep -q '"uid":0' "$AUDIT"

drdns_stop TERM
drdns_start "$CONF"
check "after a restart: still primary" test "$(json_get "$(drdnsctl --json status)" 'd["role"]')" = "primary"
check "  still serving the DR serial" serves_all "$DR_SERIAL" "$DRDNS_ADDR"

# --- failback (demote) --------------------------------------------------------
# The operator fails back by hand: the watchdog is paused first, or it may step
# down by itself (it does once the campus is ahead and the secondaries follow).
drdnsctl pause --reason "test: manual failback" >/dev/null
# The campus comes back still at its old serial: demote must refuse (exit 4),
# name the serial the campus must publish (DR serial + 1), and change nothing.
sandbox_unblackhole 127.0.0.10 127.0.0.15
set +e
out=$(drdnsctl --json demote --reason "test: campus back, behind" --yes --wait 30); rc=$?
set -e
check "demote with the campus behind: exit 4" test "$rc" = 4
check "  names the serial the campus must publish ($((DR_SERIAL + 1)))" \
    test "$(json_get "$out" 'sorted(set(z["master_must_publish"] for z in d["zones"]))')" = "[$((DR_SERIAL + 1))]"
error_has() { grep -q "$2" <<<"$(json_get "$1" 'd["error"]')"; } # JSON TEXT (no pipe: pipefail + grep -q races)
check "  the error says why" error_has "$out" "the master must publish $((DR_SERIAL + 1))"
check "  nothing changed: still primary, serving $DR_SERIAL" \
    test "$(json_get "$(drdnsctl --json status)" 'd["role"]')" = primary
check "  drdns serves $DR_SERIAL" serves_all "$DR_SERIAL" "$DRDNS_ADDR"
check "  audit: the refused demote is on record" grep -q '"action":"demote".*"result":"refused"\|"result":"refused".*"action":"demote"' "$AUDIT"
set +e
drdnsctl demote --reason "no" --force --yes >/dev/null 2>&1; rc=$?
set -e
check "demote --force is a usage error (exit 2)" test "$rc" = 2

# The hand-back relay: ns1 (BIND, drdns listed first) cannot hear the campus at
# all from now on (every packet from the campus to it is dropped, the campus
# NOTIFY included), so it can follow the campus back only through drdns, which
# relays the campus copies during the demote.  (Own nft table: the sandbox's
# blackhole table is left alone.)  When its transfer-source fails, BIND retries
# from an unbound socket, and on the sandbox's loopback the kernel then picks
# the campus address itself as the source, which this rule cannot tell from
# ns4's own fallback (ns4 still has the campus cached as unreachable from the
# outage and needs that path): so ns1 could reach the campus that way after
# about 61 s.  What proves the relay is its log: it transferred the campus
# serial from drdns, within the demote's wait.
handback_cut() {
    nft -f - <<'NFT'
table inet drdns_handback_test {
    chain input {
        type filter hook input priority -10; policy accept;
        ip saddr 127.0.0.10 ip daddr 127.0.0.11 drop
    }
}
NFT
}
handback_uncut() { nft delete table inet drdns_handback_test 2>/dev/null || true; }
handback_cut
check "ns1 no longer hears the campus" bash -c "! dig +time=1 +tries=1 -b 127.0.0.11 @127.0.0.10 example.edu SOA | grep -q 'status:'"

# The campus publishes above the DR serial: demote succeeds, every live secondary
# returns to the campus data, drdns answers REFUSED again.
FB_SERIAL=$((DR_SERIAL + 5))
for z in "${ZONES[@]}"; do sandbox_campus_bump_serial "$z" "$FB_SERIAL" >/dev/null; done
out=$(drdnsctl --json demote --reason "test: failback" --dry-run)
check "demote --dry-run with the campus ahead: ready on every zone" \
    test "$(json_get "$out" 'all(z["ready"] for z in d["zones"]) and d["dry_run"]')" = true
check "  and it fetched and checked every campus copy (serial $FB_SERIAL)" \
    test "$(json_get "$out" '" ".join(sorted(set(str(z["ok"])+":"+str(z["campus_serial"]) for z in d["handback"]["zones"])))')" = "True:$FB_SERIAL"
human=$(drdnsctl demote --reason "test: failback" --dry-run)
check "  the human dry run lists the hand-back copies" grep -q "hand-back (campus copies" <<<"$human"
check "  still primary after the dry run" test "$(json_get "$(drdnsctl --json status)" 'd["role"]')" = primary
check "  drdns still serves $DR_SERIAL" serves_all "$DR_SERIAL" "$DRDNS_ADDR"
check "  ns1 (cut off from the campus) still serves $DR_SERIAL" serves_all "$DR_SERIAL" 127.0.0.11
set +e
out=$(drdnsctl --json demote --reason "test: failback" --yes --wait 120); rc=$?
set -e
echo "$out" >"$WORK/demote.json"
echo "failback seconds: $(json_get "$out" '{s["name"]: s.get("seconds") for s in d["secondaries"]}')"
echo "hand-back window: $(json_get "$out" 'd["handback"]["seconds"]') s, closed: $(json_get "$out" 'd["handback"]["closed"]')"
check "demote with the campus ahead: exit 0" test "$rc" = 0
check "  the hand-back relayed every zone at $FB_SERIAL" \
    test "$(json_get "$out" '" ".join(sorted(set(str(z["ok"])+":"+str(z["campus_serial"]) for z in d["handback"]["zones"])))')" = "True:$FB_SERIAL"
check "  the window closed once every secondary converged" \
    test "$(json_get "$out" 'd["handback"]["closed"]')" = "every secondary converged"
check "  ns1 (no campus NOTIFY, campus unreachable) converged through drdns" \
    test "$(json_get "$out" '[s["converged"] for s in d["secondaries"] if s["name"]=="ns1.example.edu."][0]')" = "true"
check "  ns1 transferred from drdns (its log)" \
    grep -q "transfer of 'example.edu/IN' from 127.0.0.20#53: Transfer completed.*serial $FB_SERIAL" "$SANDBOX_DIR/ns1/named.log"
check "  ns1 serves the campus data (NS ns0 back)" bash -c "dig +short @127.0.0.11 example.edu NS | grep -q ns0"
check "  every live secondary serves the campus serial $FB_SERIAL" serves_all "$FB_SERIAL" "${LIVE[@]}"
check "  drdns answers REFUSED" bash -c "dig +time=2 +tries=1 +norec @$DRDNS_ADDR example.edu SOA | grep -q 'status: REFUSED'"
check "  status: standby" test "$(json_get "$(drdnsctl --json status)" 'd["role"]')" = standby
check "  AXFR from ns2 (NSD) is the campus zone again (NS ns0 back)" bash -c "dig +short @127.0.0.12 example.edu NS | grep -q ns0"
check "  ns5 (PowerDNS, campus NOTIFY received) serves the campus zone again (NS ns0 back)" bash -c "dig +short @127.0.0.16 example.edu NS | grep -q ns0"
check "  audit: demote committed and done" grep -q '"action":"demote".*"result":"done"\|"result":"done".*"action":"demote"' "$AUDIT"
out=$(drdnsctl --json demote --reason "test: again" --yes)
check "a second demote: exit 0, nothing to do" test "$(json_get "$out" 'd["exit"]')" = 0
drdnsctl resume --reason "test: failback done" >/dev/null
handback_uncut

[ "$fail" -eq 0 ]
