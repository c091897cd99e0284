#!/usr/bin/env bash
# Integration test: the failback hand-back relay against a real BIND campus
# primary that requires TSIG on the DR host's transfers (master.tsig_key).
#
# Runs itself inside a private network namespace (unshare -n), like the others.
# The campus primary's allow-transfer becomes { key drdns-master; !DR; any; }:
# an unsigned AXFR from the DR address is refused, a signed one allowed, the
# secondaries' own transfers as before.  Checks:
#   - drdnsd --check says the hand-back is signed with the key;
#   - promote while the campus is dark; the campus returns and publishes above
#     the DR serial;
#   - demote with a wrong key (same name, other secret): exit 1, the zone and
#     the master's NOTAUTH named, nothing changed (still primary, the DR serial
#     served, the audit record "error"); the dry run says the same;
#   - demote with the right key: every campus copy fetched signed (the campus's
#     log shows the TSIG transfers), exit 0, every live secondary back on the
#     campus serial, drdns REFUSED again, status standby.
set -euo pipefail
source "$(cd "$(dirname "$0")" && pwd)/lib.sh" "$@"

DR_SERIAL=2026112302
ZONES=(example.edu 2.0.192.in-addr.arpa)
LIVE=(127.0.0.11 127.0.0.12 127.0.0.13 127.0.0.14)

sandbox_require_netns
WORK=$(mktemp -d /tmp/drdns-handback.XXXXXX)
sandbox_init "$WORK"
trap 'finish; sandbox_cleanup' EXIT
sandbox_start_all

# --- the campus requires TSIG from the DR host --------------------------------
C=$SANDBOX_DIR/campus
tsig-keygen -a hmac-sha256 drdns-master >"$WORK/master.key"
tsig-keygen -a hmac-sha256 drdns-master >"$WORK/wrong.key" # same name, other secret
sed -i "/^include .*rndc.key/a include \"$WORK/master.key\";" "$C/named.conf"
sed -i "s|allow-transfer { any; };|allow-transfer { key drdns-master; !$DRDNS_ADDR; any; };|" "$C/named.conf"
check "campus named.conf with the TSIG ACL is valid" named-checkconf "$C/named.conf"
timeout 10 rndc -c "$C/rndc.conf" reload >/dev/null
soa_in_axfr() { grep -q 'IN.SOA' <<<"$(dig +time=2 +tries=1 "$@" example.edu AXFR)"; }
unsigned_refused() { # the reload takes a moment
    local i
    for i in $(seq 1 20); do
        soa_in_axfr -b "$DRDNS_ADDR" @127.0.0.10 || return 0
        sleep 0.5
    done
    return 1
}
check "campus refuses an unsigned AXFR from the DR address" unsigned_refused
check "campus allows one signed with drdns-master" soa_in_axfr -b "$DRDNS_ADDR" -k "$WORK/master.key" @127.0.0.10

mkdir -p "$WORK/drdns"
cp -r "$SRC/zones-dr" "$WORK/drdns/zones-dr"
CONF=$WORK/drdns/drdns.conf
write_conf() { # KEYFILE
    DRDNS_MASTER_TIMING="interval = 1.0; timeout = 0.5; fail_after = 3; tsig_key = \"$1\";" \
        drdns_write_conf "$CONF" "$WORK/drdns/zones-dr"
}
write_conf "$WORK/master.key"
out=$("$DRDNS_BUILD/drdnsd" --check -c "$CONF")
check "drdnsd --check: the hand-back is signed with drdns-master" grep -q "TSIG-signed with key drdns-master." <<<"$out"
drdns_start "$CONF"
drdnsctl pause --reason "test: manual failback only" >/dev/null

# --- failover ------------------------------------------------------------------
sandbox_blackhole 127.0.0.10 127.0.0.15
set +e
drdnsctl --json promote --reason "test: campus dark" --yes --wait 100 >"$WORK/promote.json"; rc=$?
set -e
check "promote: exit 0 or 3" test "$rc" = 0 -o "$rc" = 3
check "drdns serves the DR serial" serves_all "$DR_SERIAL" "$DRDNS_ADDR"

# --- the campus is back, ahead -------------------------------------------------
sandbox_unblackhole 127.0.0.10 127.0.0.15
FB_SERIAL=$((DR_SERIAL + 5))
for z in "${ZONES[@]}"; do sandbox_campus_bump_serial "$z" "$FB_SERIAL" >/dev/null; done
AUDIT=$WORK/drdns/state/audit.log

# A wrong key: the campus answers NOTAUTH; nothing changes.
write_conf "$WORK/wrong.key"
check "reload with the wrong key file" drdnsctl reload
set +e
out=$(drdnsctl --json demote --reason "test: wrong key" --dry-run); rc=$?
set -e
check "demote --dry-run with a wrong key: exit 1" test "$rc" = 1
set +e
out=$(drdnsctl --json demote --reason "test: wrong key" --yes --wait 60); rc=$?
set -e
check "demote with a wrong key: exit 1" test "$rc" = 1
err=$(json_get "$out" 'd["error"]')
check "  names the zone and the master's NOTAUTH" grep -q "with TSIG key drdns-master. failed: NOTAUTH" <<<"$err"
check "  says nothing changed" grep -q "Nothing changed" <<<"$err"
check "  still primary" test "$(json_get "$(drdnsctl --json status)" 'd["role"]')" = primary
check "  drdns still serves the DR serial" serves_all "$DR_SERIAL" "$DRDNS_ADDR"
check "  audit: the demote is on record as an error" \
    test "$(tail -n 1 "$AUDIT" | python3 -c 'import json,sys; r=json.load(sys.stdin); print(r["action"], r["result"])')" = "demote error"

# The right key: the relay fetches signed copies and every secondary follows.
write_conf "$WORK/master.key"
check "reload with the right key file" drdnsctl reload
set +e
out=$(drdnsctl --json demote --reason "test: failback" --yes --wait 120); rc=$?
set -e
echo "failback seconds: $(json_get "$out" '{s["name"]: s.get("seconds") for s in d["secondaries"]}')"
echo "hand-back window: $(json_get "$out" 'd["handback"]["seconds"]') s"
check "demote with the right key: exit 0" test "$rc" = 0
check "  every campus copy fetched at $FB_SERIAL" \
    test "$(json_get "$out" '" ".join(sorted(set(str(z["ok"])+":"+str(z["campus_serial"]) for z in d["handback"]["zones"])))')" = "True:$FB_SERIAL"
check "  the campus served them TSIG-signed (its log)" \
    grep -q "client .*$DRDNS_ADDR#.* (example.edu): transfer of 'example.edu/IN': AXFR started: TSIG drdns-master" "$C/named.log"
check "  every live secondary serves the campus serial $FB_SERIAL" serves_all "$FB_SERIAL" "${LIVE[@]}"
check "  drdns answers REFUSED" refuses "$DRDNS_ADDR" example.edu
check "  status: standby, no hand-back window" \
    test "$(json_get "$(drdnsctl --json status)" 'd["role"]+" "+str("handback" in d)')" = "standby False"
drdnsctl resume --reason "test: done" >/dev/null

[ "$fail" -eq 0 ]
