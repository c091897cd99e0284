#!/usr/bin/env bash
# Integration test: a signed DR set, transferred to real BIND, NSD, Knot and
# PowerDNS secondaries, verifies.
#
# Runs itself inside a private network namespace (unshare -n) like failover.sh.
# Keys are made with BIND's dnssec-keygen at run time: example.edu with an
# ECDSAP256SHA256 KSK and ZSK, 2.0.192.in-addr.arpa with one ED25519 key (a CSK).
# The campus zones are signed with them by dnssec-signzone, so the campus
# primary and every secondary serve signed zones, as a signed campus does.
#
# Checks, in order:
#   - drdnsd --check accepts the keys; a corrupt private key makes it fail with
#     the file named;
#   - with the campus black-holed, a promote with a corrupt key fails (exit 1),
#     and nothing changed (REFUSED, secondaries on the campus serial);
#   - key continuity: with other keys for example.edu than the campus used, the
#     promotion (and its dry run) is refused with exit 4, naming the
#     secondaries, and nothing changed; the drill pre-flight fails on dnssec;
#   - with the campus keys, promote --dry-run shows each zone's keys and
#     continuity "same"; promote signs: every fast secondary (BIND drdns-first,
#     NSD with TSIG, Knot, PowerDNS with TSIG) serves the DR serial, and an AXFR taken from each
#     verifies with ldns-verify-zone and with BIND's dnssec-verify; the DNSKEY
#     set is the campus's.
#   - the RRSIG watch, while standby: example.edu is signed on the campus with
#     signatures that expire in 2 days; the watchdog's scans of every copy
#     raise alert rrsig:example.edu:3d (on_alert, repeated, escalated to
#     on_escalate), status shows the time to dark; drdnsctl ack records who and
#     why and stops the repeats; an unknown id is an error; after the
#     promotion drdns's fresh signatures reach the secondaries and the scans
#     see them;
#   - drdnsctl resign while promoted: the next serial, fresh signatures, the
#     secondaries follow and their copies verify.
set -euo pipefail
source "$(cd "$(dirname "$0")" && pwd)/lib.sh" "$@"


CAMPUS_SERIAL=2026112301
DR_SERIAL=2026112302
ZONES=(example.edu 2.0.192.in-addr.arpa)
FAST=(127.0.0.11 127.0.0.12 127.0.0.13 127.0.0.16) # dr-first BIND, NSD, Knot, PowerDNS

sandbox_require_netns
WORK=$(mktemp -d /tmp/drdns-dnssec.XXXXXX)

# The campus's keys, and the campus zones signed with them.
CAMPUS_KEYS=$WORK/campus-keys
mkdir -p "$CAMPUS_KEYS" "$WORK/campus-zones"
dnssec-keygen -q -K "$CAMPUS_KEYS" -a ECDSAP256SHA256 -f KSK example.edu >/dev/null
dnssec-keygen -q -K "$CAMPUS_KEYS" -a ECDSAP256SHA256 example.edu >/dev/null
dnssec-keygen -q -K "$CAMPUS_KEYS" -a ED25519 -f KSK 2.0.192.in-addr.arpa >/dev/null
for z in "${ZONES[@]}"; do
    # example.edu's signatures run out in 2 days: the campus forgot to re-sign
    expiry=(); [ "$z" = example.edu ] && expiry=(-e +172800)
    dnssec-signzone -q -S -z -K "$CAMPUS_KEYS" -d "$WORK" "${expiry[@]}" -o "$z" \
        -f "$WORK/campus-zones/$z.zone" "$SRC/tests/integration/campus/$z.zone" >/dev/null
done
export SANDBOX_CAMPUS_ZONEDIR=$WORK/campus-zones
sandbox_init "$WORK"
trap 'finish; sandbox_cleanup' EXIT
sandbox_start_all

# drdns's keys: first other keys for example.edu than the campus's.
KEYS=$WORK/keys
mkdir -p "$KEYS"
dnssec-keygen -q -K "$KEYS" -a ECDSAP256SHA256 -f KSK example.edu >/dev/null
dnssec-keygen -q -K "$KEYS" -a ECDSAP256SHA256 example.edu >/dev/null
cp "$CAMPUS_KEYS"/K2.0.192.in-addr.arpa.+* "$KEYS/"

mkdir -p "$WORK/drdns"
cp -r "$SRC/zones-dr" "$WORK/drdns/zones-dr"
CONF=$WORK/drdns/drdns.conf
# Hooks that log what they were run for.
HOOK_LOG=$WORK/hooks.log
printf '#!/bin/sh\necho "$DRDNS_EVENT $DRDNS_ALERT $DRDNS_ALERT_REPEAT" >>"%s"\n' "$HOOK_LOG" >"$WORK/hook"
chmod +x "$WORK/hook"
: >"$HOOK_LOG"
DRDNS_CONF_EXTRA="dnssec = { keys = \"$KEYS\"; };
hooks = { on_alert = \"$WORK/hook\"; on_escalate = \"$WORK/hook\"; timeout = 5; };
alerts = { repeat = 10; escalate_after = 1; rrsig_scan_interval = 5; };" \
    drdns_write_conf "$CONF" "$WORK/drdns/zones-dr"
check "drdnsd --check accepts the keys" "$DRDNS_BUILD/drdnsd" --check -c "$CONF"

# A corrupt private key: named, and the check fails.
zsk_private=$(grep -L "DNSKEY 257" "$KEYS"/Kexample.edu.+013+*.key | head -n 1 | sed 's/\.key$/.private/')
cp "$zsk_private" "$WORK/private.orig"
sed -i 's/^PrivateKey: .*/PrivateKey: bm90IGEga2V5/' "$zsk_private"
set +e
msg=$("$DRDNS_BUILD/drdnsd" --check -c "$CONF" 2>&1); rc=$?
set -e
check "a corrupt private key: --check exit 1" test "$rc" = 1
check "  naming the key file" grep -q "$(basename "$zsk_private" .private)" <<<"$msg"

drdns_start "$CONF"

# wait_until SECONDS CMD...: poll CMD every half second, at most SECONDS.
wait_until() {
    local end=$(( $(date +%s) + $1 )); shift
    until "$@"; do
        [ "$(date +%s)" -lt "$end" ] || return 1
        sleep 0.5
    done
}
status_json() { drdnsctl --json status 2>/dev/null || true; }
# has_alert ID [acked]: status lists the acknowledgeable alert (acknowledged)
has_alert() {
    [ "$(json_get "$(status_json)" "any(a.get('id') == '$1' and a.get('ackable') and (a.get('acked') or '${2:-}' != 'acked') for a in d['watchdog']['alerts'])")" = true ]
}
hook_ran() { grep -qx "$1" "$HOOK_LOG"; }

# The RRSIG watch while standby: the campus copy of example.edu expires in 2 days.
check "standby: alert rrsig:example.edu:3d raised" wait_until 60 has_alert rrsig:example.edu:3d
st=$(status_json)
check "  on_alert ran for it (repeat 0)" wait_until 10 hook_ran "on_alert rrsig:example.edu:3d 0"
check "  time to dark: example.edu within 3 days, by its RRSIGs" test "$(json_get "$st" '[(z["dnssec"]["dark_cause"], 86400 < z["dnssec"]["seconds_to_dark"] < 259200) for z in d["watchdog"]["zones"] if z["zone"] == "example.edu."]')" = '[["rrsig", true]]'
check "  2.0.192.in-addr.arpa: signed, no alert" test "$(json_get "$st" '[(z["dnssec"]["signed"], z["dnssec"]["alert"]) for z in d["watchdog"]["zones"] if z["zone"] == "2.0.192.in-addr.arpa."]')" = '[[true, null]]'
check "  every answering secondary's copy scanned (signatures, earliest)" test "$(json_get "$st" 'all(z["rrsig"]["known"] and z["rrsig"]["signatures"] > 0 for s in d["watchdog"]["secondaries"] for z in s["zones"])')" = true
check "  the master's copy scanned" test "$(json_get "$st" 'all(z["master_rrsig"]["known"] for z in d["watchdog"]["zones"])')" = true
check "  human status shows the time to dark" grep -q "time to dark" <<<"$(drdnsctl status 2>&1 || true)"
check "  repeated after alerts.repeat, and escalated after 1 repeat" wait_until 40 hook_ran "on_escalate rrsig:example.edu:3d 1"
check "  on_alert repeat 1 with it" hook_ran "on_alert rrsig:example.edu:3d 1"
set +e
out=$(drdnsctl --json ack rrsig:nosuch:3d --reason "test"); rc=$?
set -e
check "ack of an unknown id: exit 1, the active ids listed" test "$rc:$(json_get "$out" '"rrsig:example.edu:3d" in d["error"]')" = "1:true"
set +e
drdnsctl ack rrsig:example.edu:3d >/dev/null 2>&1; rc=$?
set -e
check "ack without --reason: usage error (exit 2)" test "$rc" = 2
check "  still not acknowledged" test "$(json_get "$(status_json)" '[a["acked"] for a in d["watchdog"]["alerts"] if a["id"] == "rrsig:example.edu:3d"]')" = '[false]'
out=$(drdnsctl --json ack rrsig:example.edu:3d --reason "campus re-signs tonight, change 4711")
check "ack with a reason: exit 0" test "$(json_get "$out" 'd["exit"]')" = 0
check "  status: acknowledged, with who and why" test "$(json_get "$(status_json)" '[ (a["acked"], a["ack"]["reason"], "root" in a["ack"]["who"] or "uid 0" in a["ack"]["who"]) for a in d["watchdog"]["alerts"] if a["id"] == "rrsig:example.edu:3d"]')" = '[[true, "campus re-signs tonight, change 4711", true]]'
check "  state.json keeps it" test "$(json_get "$(cat "$WORK/drdns/state/state.json")" '[a["acked"] for a in d["alerts"] if a["id"] == "rrsig:example.edu:3d"]')" = '[true]'
check "  the audit log has it" grep -q '"action": *"ack"' "$WORK/drdns/state/audit.log"
check "  human status says who" grep -q "acknowledged by" <<<"$(drdnsctl status 2>&1 || true)"
acked_runs=$(grep -c "^on_alert rrsig:example.edu:3d" "$HOOK_LOG")

sandbox_blackhole 127.0.0.10 127.0.0.15
set +e
out=$(drdnsctl --json promote --reason "dnssec test: corrupt key" --yes --wait 5); rc=$?
set -e
check "promote with a corrupt key: exit 1" test "$rc" = 1
check "  the error names the key file" grep -q "$(basename "$zsk_private" .private)" <<<"$out"
check "  nothing changed: drdns answers REFUSED" refuses "$DRDNS_ADDR" example.edu
check "  the secondaries keep the campus serial" serves_all "$CAMPUS_SERIAL" "${FAST[@]}"
cp "$WORK/private.orig" "$zsk_private"

# Key continuity: these are not the keys the campus signed with.
set +e
out=$(drdnsctl --json promote --reason "dnssec test: rogue keys" --dry-run); rc=$?
set -e
check "other keys than the campus's: the dry run is refused (exit 4)" test "$rc" = 4
set +e
out=$(drdnsctl --json promote --reason "dnssec test: rogue keys" --yes --wait 5); rc=$?
set -e
check "  and so is the promotion (exit 4)" test "$rc" = 4
check "  the message says key continuity and names a secondary" bash -c 'grep -q "key continuity" <<<"$1" && grep -q "ns1.example.edu." <<<"$1"' _ "$out"
check "  nothing changed: drdns answers REFUSED" refuses "$DRDNS_ADDR" example.edu
check "  the secondaries keep the campus serial" serves_all "$CAMPUS_SERIAL" "${FAST[@]}"
set +e
out=$(drdnsctl --json drill --preflight-only); rc=$?
set -e
check "  the drill pre-flight fails on dnssec (exit 4)" test "$rc:$(json_get "$out" '[c["check"] for c in d["preflight"] if not c["ok"]]')" = '4:["dnssec"]'

# The campus's keys: continuity holds.
rm -f "$KEYS"/Kexample.edu.+*
cp "$CAMPUS_KEYS"/Kexample.edu.+* "$KEYS/"
out=$(drdnsctl --json promote --reason "dnssec test" --dry-run)
check "dry run with the campus keys: continuity same on both zones" test "$(json_get "$out" '[z["dnssec"]["continuity"] for z in d["zones"]]')" = '["same", "same"]'
check "dry run: example.edu signed with a KSK and a ZSK (13)" test "$(json_get "$out" '[ (k["algorithm"], k["ksk"]) for z in d["zones"] if z["zone"]=="example.edu." for k in z["dnssec"]["keys"]] == [(13, True), (13, False)]')" = true
check "  2.0.192.in-addr.arpa signed with one ED25519 key" test "$(json_get "$out" '[len(z["dnssec"]["keys"]) for z in d["zones"] if z["zone"]=="2.0.192.in-addr.arpa."][0]')" = 1

set +e
out=$(drdnsctl --json promote --reason "dnssec test" --yes --wait 30); rc=$?
set -e
check "promote signs and publishes (exit 0 or 3: ns4 lists the campus first)" test "$rc" = 0 -o "$rc" = 3
check "  the fast secondaries serve the DR serial" serves_all "$DR_SERIAL" "${FAST[@]}"
check "  signatures reported" test "$(json_get "$out" 'all(z["dnssec"]["signatures"] > 0 for z in d["zones"])')" = true

for a in "${FAST[@]}" "$DRDNS_ADDR"; do
    for z in "${ZONES[@]}"; do
        f=$WORK/axfr-$a-$z.zone
        sandbox_axfr "$a" "$z" >"$f" || true
        check "$a $z: AXFR has RRSIGs" grep -q " RRSIG " "$f"
        check "$a $z: ldns-verify-zone" ldns-verify-zone -q "$f"
        # one key signing everything (a CSK): dnssec-verify's -z
        zopt=(); [ "$z" = 2.0.192.in-addr.arpa ] && zopt=(-z)
        check "$a $z: dnssec-verify" dnssec-verify -q "${zopt[@]}" -o "$z" "$f"
    done
done
rdata() { awk '$4 == "DNSKEY" { $1 = $2 = $3 = $4 = ""; $0 = $0; $1 = $1; print }' | sort; }
want=$(grep -hv '^;' "$CAMPUS_KEYS"/Kexample.edu.+013+*.key | ldns-read-zone -c /dev/stdin 2>/dev/null | rdata)
got=$(rdata <"$WORK/axfr-127.0.0.11-example.edu.zone")
check "the DNSKEY set served is the campus's" test "$want" = "$got"

check "no on_alert repeat for the acknowledged alert" test "$(grep -c "^on_alert rrsig:example.edu:3d" "$HOOK_LOG")" = "$acked_runs"
# drdns's own signatures (30 days) reach the secondaries; the scans see them.
fresh_copies() {
    [ "$(json_get "$(status_json)" "all(z['rrsig']['known'] and z['rrsig']['earliest'] > $(date +%s) + 20*86400 for s in d['watchdog']['secondaries'] if s['address'] in ('127.0.0.11', '127.0.0.12', '127.0.0.13', '127.0.0.16') for z in s['zones'])")" = true ]
}
check "promoted: the scans see drdns's fresh signatures on the fast secondaries" wait_until 60 fresh_copies
st=$(status_json)
check "  status shows when drdns re-signs each zone" test "$(json_get "$st" 'all(z["dnssec"]["next_resign"] for z in d["watchdog"]["zones"])')" = true
# (ns4 lists the campus first and may still serve the 2-day copy: then the
# alert stays, naming only ns4)
check "  the alert is gone, or names only ns4" test "$(json_get "$st" 'all(all(n + ".example.edu." not in a["message"] for n in ("ns1", "ns2", "ns3", "ns5")) for a in d["watchdog"]["alerts"] if a["id"].startswith("rrsig:"))')" = true

# drdnsctl resign: the next serial, fresh signatures, NOTIFY.
RESIGNED=$((DR_SERIAL + 1))
out=$(drdnsctl --json resign --reason "dnssec test: re-sign" --dry-run)
check "resign --dry-run: plans serial $RESIGNED, changes nothing" test "$(json_get "$out" '[z["new_serial"] for z in d["zones"]]'):$(sandbox_soa_serial "$DRDNS_ADDR" example.edu)" = "[$RESIGNED, $RESIGNED]:$DR_SERIAL"
set +e
out=$(drdnsctl --json resign --reason "dnssec test: re-sign" --yes --wait 30); rc=$?
set -e
check "resign: exit 0 or 3 (ns4 lists the campus first)" test "$rc" = 0 -o "$rc" = 3
check "  drdns and the fast secondaries serve $RESIGNED" serves_all "$RESIGNED" "$DRDNS_ADDR" "${FAST[@]}"
check "  continuity held (same keys)" test "$(json_get "$out" '[z["dnssec"]["continuity"] for z in d["zones"]]')" = '["same", "same"]'
for a in "${FAST[@]}"; do
    for z in "${ZONES[@]}"; do
        f=$WORK/resigned-$a-$z.zone
        sandbox_axfr "$a" "$z" >"$f" || true
        check "$a $z after resign: ldns-verify-zone" ldns-verify-zone -q "$f"
    done
done
check "  the audit log has the resign" grep -q '"action": *"resign"' "$WORK/drdns/state/audit.log"
check "  still promoted, the promotion's reason kept" test "$(json_get "$(status_json)" '[d["role"], d["reason"]]')" = '["primary", "dnssec test"]'

[ "$fail" -eq 0 ]
