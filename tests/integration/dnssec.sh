#!/usr/bin/env bash
# Integration test: a signed DR set, transferred to real BIND, NSD and Knot
# secondaries, verifies.
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
#     NSD with TSIG, Knot) serves the DR serial, and an AXFR taken from each
#     verifies with ldns-verify-zone and with BIND's dnssec-verify; the DNSKEY
#     set is the campus's.
set -euo pipefail
source "$(cd "$(dirname "$0")" && pwd)/lib.sh" "$@"


CAMPUS_SERIAL=2026112301
DR_SERIAL=2026112302
ZONES=(example.edu 2.0.192.in-addr.arpa)
FAST=(127.0.0.11 127.0.0.12 127.0.0.13) # dr-first BIND, NSD, Knot

sandbox_require_netns
WORK=$(mktemp -d /tmp/drdns-dnssec.XXXXXX)

# The campus's keys, and the campus zones signed with them.
CAMPUS_KEYS=$WORK/campus-keys
mkdir -p "$CAMPUS_KEYS" "$WORK/campus-zones"
dnssec-keygen -q -K "$CAMPUS_KEYS" -a ECDSAP256SHA256 -f KSK example.edu >/dev/null
dnssec-keygen -q -K "$CAMPUS_KEYS" -a ECDSAP256SHA256 example.edu >/dev/null
dnssec-keygen -q -K "$CAMPUS_KEYS" -a ED25519 -f KSK 2.0.192.in-addr.arpa >/dev/null
for z in "${ZONES[@]}"; do
    dnssec-signzone -q -S -z -K "$CAMPUS_KEYS" -o "$z" -f "$WORK/campus-zones/$z.zone" \
        "$SRC/tests/integration/campus/$z.zone" >/dev/null
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
DRDNS_CONF_EXTRA="dnssec = { keys = \"$KEYS\"; };" drdns_write_conf "$CONF" "$WORK/drdns/zones-dr"
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

[ "$fail" -eq 0 ]
