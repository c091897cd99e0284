#!/usr/bin/env bash
# Integration test: a secondary whose transfers come from another address than
# the one configured, and a DR file that does not publish drdns (issue 11).
#
# Runs itself inside a private network namespace (unshare -n) like failover.sh.
# Topology: the campus primary (BIND, 127.0.0.10) and one BIND secondary, ns1,
# configured in drdns as 127.0.0.11 but with `transfer-source 127.0.0.111`
# (a multi-homed host: its SOA queries and transfers come from .111).  The DR
# set is example.edu only, from zones-dr/ with the ns-dr NS record removed.
#
# Checks, in order:
#   - drdnsd --check says the zone does not publish drdns (MNAME only);
#   - promote (campus stopped): exit 3; ns1 not converged, and the report (JSON
#     and human) names the refused source 127.0.0.111 and the fix; status too;
#   - the dry-run plan and the promoted zone: no NS ns-dr (never added), MNAME
#     ns-dr;
#   - transfer_sources = [ "127.0.0.110/31" ] and drdnsctl reload: promote again
#     exits 0, ns1 converged, no refusal reported; ns1 serves the DR zone.
set -euo pipefail
source "$(cd "$(dirname "$0")" && pwd)/lib.sh" "$@"

CAMPUS_SERIAL=2026112301
DR_SERIAL=2026112302
ZONES=(example.edu)
NS1=127.0.0.11
SRC_ADDR=127.0.0.111

sandbox_require_netns
WORK=$(mktemp -d /tmp/drdns-xfrsrc.XXXXXX)
sandbox_init "$WORK"
trap 'finish; sandbox_cleanup' EXIT
SANDBOX_CAMPUS_NOTIFY=$NS1 sandbox_start_campus_primary

# ns1: a BIND secondary (DR primary first) transferring from another address.
d=$WORK/ns1
mkdir -p "$d"
ip addr add "$NS1/32" dev lo
ip addr add "$SRC_ADDR/32" dev lo
cat >"$d/named.conf" <<EOF
controls { };
options {
    directory "$d";
    pid-file "$d/named.pid";
    session-keyfile "$d/session.key";
    managed-keys-directory "$d";
    listen-on port 53 { $NS1; };
    listen-on-v6 { none; };
    query-source address $NS1;
    transfer-source $SRC_ADDR;
    // and BIND's retry after every primary failed (9.18 "alternate source",
    // default: any address, which the kernel would pick as 127.0.0.1)
    alt-transfer-source $SRC_ADDR;
    notify-source $NS1;
    recursion no;
    dnssec-validation no;
    allow-query { any; };
    allow-transfer { any; };
    notify no;
};
logging {
    channel l { file "$d/named.log"; severity info; print-time yes; print-category yes; };
    category default { l; };
    category lame-servers { null; };
};
zone "example.edu" {
    type secondary;
    primaries { $DRDNS_ADDR; 127.0.0.10; };
    file "$d/example.edu.zone";
    masterfile-format text;
};
EOF
named-checkconf "$d/named.conf" >/dev/null # (alt-transfer-source: "deprecated")
_sandbox_spawn ns1 "$d/named.log" named -f -n 1 -c "$d/named.conf"
_sandbox_wait_listen ns1 "$NS1"
sandbox_wait_serial "$NS1" example.edu "$CAMPUS_SERIAL" 30

# The DR set: example.edu without the ns-dr NS record (drdns is MNAME only).
mkdir -p "$WORK/drdns/zones-dr"
grep -v 'IN  NS    ns-dr' "$SRC/zones-dr/example.edu.zone" >"$WORK/drdns/zones-dr/example.edu.zone"
check "the DR file does not list ns-dr" bash -c "! grep -q 'NS *ns-dr' '$WORK/drdns/zones-dr/example.edu.zone'"
CONF=$WORK/drdns/drdns.conf
write_conf() { # [TRANSFER_SOURCES]
    cat >"$CONF" <<CONF
controller = {
    id = "dr-xfr-source";
    address = "$DRDNS_ADDR";
    port = 53;
    ns_name = "ns-dr.example.edu.";
    control_socket = "$WORK/drdns/control.sock";
    state_dir = "$WORK/drdns/state";
    allow_transfer = [ "127.0.0.1" ];
};
master = { address = "127.0.0.10"; port = 53; interval = 1.0; timeout = 0.5; fail_after = 3; };
secondaries = ( { name = "ns1.example.edu."; address = "$NS1"; ${1:+transfer_sources = [ \"$1\" ];} } );
zones = { directory = "$WORK/drdns/zones-dr"; dr_ttl = 600; min_ns = 1; };
policy = { poll_interval = 0.2; auto_promote = false; };
CONF
}
write_conf
out=$("$DRDNS_BUILD/drdnsd" --check -c "$CONF")
check "drdnsd --check: the zone does not publish drdns" grep -q "example.edu. does not publish drdns (MNAME only)" <<<"$out"
drdns_start "$CONF"

# The campus is lost.  Stopped rather than black-holed: ns1 learns at once that
# it is gone (ICMP port unreachable) instead of walking a silent primary for a
# minute, so its next transfer attempt goes to drdns within the wait.
sandbox_stop campus
check "campus primary gone" test -z "$(sandbox_soa_serial 127.0.0.10 example.edu)"

out=$(drdnsctl --json promote --reason "test: dry run" --dry-run)
check "dry run: publishes_self is false" test "$(json_get "$out" 'd["zones"][0]["publishes_self"]')" = false
check "  and ns-dr is not in the plan's NS set" test "$(json_get "$out" '[n["name"] for n in d["zones"][0]["ns"] if "ns-dr" in n["name"]]')" = "[]"
hout=$(drdnsctl promote --reason "test: dry run" --dry-run)
check "  the human plan says so" grep -q "does not publish drdns (MNAME only)" <<<"$hout"

# --- promote: ns1's transfers come from 127.0.0.111 and are refused ---------
set +e
out=$(drdnsctl --json promote --reason "test: campus dark" --yes --wait 20); rc=$?
set -e
echo "$out" >"$WORK/promote1.json"
NS1ROW='[s for s in d["secondaries"] if s["name"]=="ns1.example.edu."][0]'
check "promote: exit 3 (ns1's transfers are refused)" test "$rc" = 3
check "  ns1 not converged" test "$(json_get "$out" "$NS1ROW['converged']")" = false
check "  the report names the refused source address" test "$(json_get "$out" "$NS1ROW['transfer_refused']['source']")" = "$SRC_ADDR"
check "  for the zone, unsigned, not allowed" test "$(json_get "$out" "$NS1ROW['transfer_refused']['zone']+' '+str($NS1ROW['transfer_refused']['signed'])+' '+$NS1ROW['transfer_refused']['reason']")" = "example.edu. False not-allowed"
txt=$(json_get "$out" "$NS1ROW['transfer_refused']['text']")
echo "  text: $txt"
check "  and the fix" grep -q "transfer of example.edu. from $SRC_ADDR refused (not an allowed address): add it to secondaries\[ns1\].transfer_sources or controller.allow_transfer, or give the secondary a TSIG key" <<<"$txt"
check "  an unknown address: worded possibly" test "$(json_get "$out" "$NS1ROW['transfer_refused']['possibly']")" = true
check "drdns serves the DR serial" serves_all "$DR_SERIAL" "$DRDNS_ADDR"
check "  its NS set lacks ns-dr (never added)" bash -c "! dig +short @$DRDNS_ADDR example.edu NS | grep -q ns-dr"
check "  its SOA MNAME is ns-dr" test "$(dig +short @$DRDNS_ADDR example.edu SOA | awk '{print $1}')" = ns-dr.example.edu.
check "ns1 still serves the campus serial" serves_all "$CAMPUS_SERIAL" "$NS1"

out=$(drdnsctl --json status)
check "status: ns1 behind, its refused transfer named" test "$(json_get "$out" "$NS1ROW['transfer_refused']['source']")" = "$SRC_ADDR"
check "  and in the alerts" test "$(json_get "$out" "any('$SRC_ADDR' in str(a) and 'transfer_sources' in str(a) for a in d['alerts'])")" = true
hout=$(drdnsctl status || true)
check "  human status shows it" grep -q "from $SRC_ADDR refused" <<<"$hout"

set +e
hout=$(drdnsctl promote --reason "test: again, human" --yes --wait 5); rc=$?
set -e
sed 's/^/    | /' <<<"$hout"
check "promote again (human): exit 3" test "$rc" = 3
check "  the table is followed by the refusal and the fix" grep -q "ns1.example.edu.: possibly this secondary: transfer of example.edu. from $SRC_ADDR refused (not an allowed address): add it to secondaries\[ns1\].transfer_sources" <<<"$hout"

# --- the fix: transfer_sources (a prefix), reload -----------------------------
write_conf "127.0.0.110/31"
check "drdnsd --check accepts transfer_sources" "$DRDNS_BUILD/drdnsd" --check -c "$CONF"
drdnsctl reload >/dev/null
set +e
out=$(drdnsctl --json promote --reason "test: transfer_sources set" --yes --wait 120); rc=$?
set -e
echo "$out" >"$WORK/promote2.json"
echo "ns1 convergence after the fix: $(json_get "$out" "$NS1ROW.get('seconds')") s"
check "promote with transfer_sources: exit 0" test "$rc" = 0
check "  ns1 converged" test "$(json_get "$out" "$NS1ROW['converged']")" = true
check "  no refusal reported" test "$(json_get "$out" "$NS1ROW['transfer_refused']")" = null
check "ns1 serves the DR serial" serves_all "$DR_SERIAL" "$NS1"
check "  its NS set lacks ns-dr" bash -c "! dig +short @$NS1 example.edu NS | grep -q ns-dr"
check "  and ns0's address is still served (zone data, not glue)" test "$(dig +short @$NS1 ns0.example.edu A)" = 198.51.100.10
check "drdns logged the refusal" grep -q "xfr refused.*peer=$SRC_ADDR#.*reason=not-allowed" "$WORK/drdnsd.log"

[ "$fail" -eq 0 ]
