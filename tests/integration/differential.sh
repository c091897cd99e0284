#!/usr/bin/env bash
# Integration test: drdnsd answers queries exactly as NSD 4.6 does.
#
# Runs itself inside a private network namespace (unshare -n) like the other
# integration scripts.  The zones in differential/zones/ (each name a case:
# wildcards, empty non-terminals, delegations with and without DS, glue,
# CNAME chains, MX and SRV targets, large TXT, mixed-case owners, a reverse
# zone with an RFC 2317 delegation) are promoted by one drdnsd per variant:
#
#   unsigned   127.0.1.1   NSD 127.0.2.1
#   nsec       127.0.1.2   NSD 127.0.2.2   (drdns signs: dnssec.keys)
#   nsec3      127.0.1.3   NSD 127.0.2.3   (dnssec.nsec3)
#   optout     127.0.1.4   NSD 127.0.2.4   (dnssec.nsec3 + nsec3_opt_out)
#
# Keys are made at run time with dnssec-keygen (ECDSAP256SHA256 KSK + ZSK for
# diff.test, one ED25519 CSK for the others).  The master (127.0.3.1) and
# ns2 (127.0.3.3) are black-holed, so promote goes ahead; ns1 (127.0.3.2) is
# a seed NSD serving the DR files, so promote observes a serial, and is
# stopped before the comparison.  NSD then gets exactly what drdnsd serves: an AXFR of
# each zone from the promoted drdnsd (signed copies checked with
# ldns-verify-zone).
#
# differential/compare.py generates a deterministic query corpus from the
# zones (DIFF_SEED, default 11) and sends every query to both servers:
# every owner and type, absent names at every depth, names below cuts and
# under wildcards, 0x20 case variations, DO on and off, UDP without EDNS and
# with buffers 512/1232/4096, TCP, ANY/DS/DNSKEY/NSEC3PARAM/RRSIG/unknown
# types, CHAOS.  Responses are compared section by section (rcode, flags,
# EDNS, answer/authority/additional as sets of RRsets with owner case and
# TTLs); with DO every RRSIG is validated against the zone's DNSKEY set.  Any
# difference not matched by differential/allowlist (each entry with its RFC
# reason) fails the test.
#
# Environment: DIFF_SEED (corpus seed), DIFF_PER_VARIANT (queries per
# variant, default 2000), DIFF_SHOW (differences printed, default 20),
# DIFF_VARIANTS (a subset, e.g. "unsigned nsec").
set -euo pipefail
source "$(cd "$(dirname "$0")" && pwd)/lib.sh" "$@"

D=$HERE/differential
ZONES=(diff.test other.test 2.0.192.in-addr.arpa)
read -r -a VARIANTS <<<"${DIFF_VARIANTS:-unsigned nsec nsec3 optout}"
MASTER=127.0.3.1
SECONDARY_ADDRS=(127.0.3.2 127.0.3.3)

# dnspython and cryptography: Debian's, also when another python3 is first in PATH
PY=
for p in python3 /usr/bin/python3; do
    if "$p" -c 'import dns.dnssec, dns.query, cryptography' 2>/dev/null; then PY=$p; break; fi
done
[ -n "$PY" ] || { echo "differential: python3 with dnspython and cryptography needed (scripts/deps.sh)" >&2; exit 1; }

sandbox_require_netns
WORK=$(mktemp -d /tmp/drdns-differential.XXXXXX)
sandbox_init "$WORK"
trap 'finish; sandbox_cleanup' EXIT # finish shows every daemon's log after a failure
ln -s "$WORK/${VARIANTS[0]}/drdnsd.log" "$WORK/drdnsd.log" # for finish
sandbox_blackhole "$MASTER" "${SECONDARY_ADDRS[1]}"

variant_index() { local i; for i in "${!VARIANTS[@]}"; do [ "${VARIANTS[$i]}" = "$1" ] && echo $((i + 1)); done; }
dr_addr()  { echo "127.0.1.$(( $(variant_index "$1") ))"; }
nsd_addr() { echo "127.0.2.$(( $(variant_index "$1") ))"; }

# write_drdns_conf VARIANT DIR
write_drdns_conf() {
    local v=$1 dir=$2 dnssec=""
    case $v in
        unsigned) ;;
        nsec)   dnssec="dnssec = { keys = \"$dir/keys\"; };" ;;
        nsec3)  dnssec="dnssec = { keys = \"$dir/keys\"; nsec3 = true; };" ;;
        optout) dnssec="dnssec = { keys = \"$dir/keys\"; nsec3 = true; nsec3_opt_out = true; };" ;;
        *) echo "unknown variant $v" >&2; return 1 ;;
    esac
    cat >"$dir/drdns.conf" <<CONF
# drdns.conf for the differential test, variant $v
controller = {
    id = "dr-diff-$v";
    address = "$(dr_addr "$v")";
    port = 53;
    ns_name = "ns-dr.diff.test.";
    control_socket = "$dir/control.sock";
    state_dir = "$dir/state";
    allow_transfer = [ "127.0.0.1" ];
};
master = { address = "$MASTER"; port = 53; interval = 1.0; timeout = 0.5; fail_after = 2; };
secondaries = (
    { name = "ns1.diff.test."; address = "${SECONDARY_ADDRS[0]}"; },
    { name = "ns2.elsewhere.example."; address = "${SECONDARY_ADDRS[1]}"; }
);
zones = { directory = "$dir/zones-dr"; dr_ttl = 3600; min_ns = 3; };
policy = { poll_interval = 0.2; auto_promote = false; };
$dnssec
CONF
}

make_keys() {
    local k=$1/keys z
    mkdir -p "$k"
    dnssec-keygen -q -K "$k" -a ECDSAP256SHA256 -f KSK diff.test >/dev/null
    dnssec-keygen -q -K "$k" -a ECDSAP256SHA256 diff.test >/dev/null
    for z in other.test 2.0.192.in-addr.arpa; do
        dnssec-keygen -q -K "$k" -a ED25519 -f KSK "$z" >/dev/null
    done
}

# write_nsd_conf WHAT ADDR DIR: an nsd.conf serving DIR/ZONE.zone on ADDR
write_nsd_conf() {
    local v=$1 addr=$2 d=$3 z
    cat >"$d/nsd.conf" <<EOF
# NSD for the differential test: $v
server:
    ip-address: $addr
    port: 53
    do-ip4: yes
    do-ip6: no
    username: ""
    chroot: ""
    zonesdir: "$d"
    database: ""
    zonelistfile: "$d/zone.list"
    pidfile: "$d/nsd.pid"
    xfrdfile: "$d/xfrd.state"
    xfrdir: "$d"
    logfile: "$d/nsd.log"
    cookie-secret-file: "$d/cookiesecrets.txt"
    server-count: 1
    verbosity: 1
    hide-version: yes
    hide-identity: yes
    refuse-any: no
    round-robin: no
    minimal-responses: no
    rrl-ratelimit: 0
    rrl-whitelist-ratelimit: 0

remote-control:
    control-enable: no
EOF
    for z in "${ZONES[@]}"; do
        printf '\nzone:\n    name: "%s"\n    zonefile: "%s/%s.zone"\n' "$z" "$d" "$z" >>"$d/nsd.conf"
    done
}

# quiet CMD...: CMD's output only when it fails
quiet() {
    local out
    out=$("$@" 2>&1) && return 0
    printf '%s\n' "$out" | tail -n 20 >&2
    return 1
}

# axfr ADDR ZONE: the zone as transferred, case and order kept
axfr() {
    dig -b 127.0.0.1 +onesoa +nocmd +nostats +noall +answer +time=5 +tries=1 @"$1" "$2" AXFR
}

# ns2 is black-holed (dropped from the NS set down to min_ns: kept);
# ns1 (the first secondary) answers the SOA queries of promote with the DR
# files' serial (1), served by a seed NSD: promote needs one observed serial.
# It does not transfer, so promote exits 3 (not converged).  It is stopped
# once every drdnsd is promoted.
mkdir -p "$WORK/seed"
cp "$D"/zones/*.zone "$WORK/seed/"
_sandbox_add_addr "${SECONDARY_ADDRS[0]}"
write_nsd_conf "seed (ns1.diff.test. before the promotion)" "${SECONDARY_ADDRS[0]}" "$WORK/seed"
_sandbox_spawn seed "$WORK/seed/nsd.log" nsd -d -c "$WORK/seed/nsd.conf"
check "seed NSD listens on ${SECONDARY_ADDRS[0]}" _sandbox_wait_listen seed "${SECONDARY_ADDRS[0]}"

for v in "${VARIANTS[@]}"; do
    dir=$WORK/$v
    mkdir -p "$dir/zones-dr" "$dir/nsd"
    cp "$D"/zones/*.zone "$dir/zones-dr/"
    [ "$v" = unsigned ] || make_keys "$dir"
    write_drdns_conf "$v" "$dir"
    _sandbox_add_addr "$(dr_addr "$v")"
    _sandbox_add_addr "$(nsd_addr "$v")"
    check "$v: drdnsd --check accepts the configuration" quiet "$DRDNS_BUILD/drdnsd" --check -c "$dir/drdns.conf"
    _sandbox_spawn "drdns-$v" "$dir/drdnsd.log" "$DRDNS_BUILD/drdnsd" -f -c "$dir/drdns.conf"
done
for v in "${VARIANTS[@]}"; do
    dir=$WORK/$v
    ctl=("$DRDNS_BUILD/drdnsctl" -s "$dir/control.sock")
    up=0
    for _ in $(seq 1 100); do
        "${ctl[@]}" status >/dev/null 2>&1 && { up=1; break; }
        sleep 0.1
    done
    check "$v: drdnsd is up" test "$up" = 1
    set +e
    out=$("${ctl[@]}" --json promote --reason "differential test" --yes --force --wait 1 2>&1); rc=$?
    set -e
    # 3: the (black-holed) secondaries did not converge
    check "$v: promoted (exit $rc)" test "$rc" = 0 -o "$rc" = 3
    [ "$rc" = 0 ] || [ "$rc" = 3 ] || printf '%s\n' "$out" | head -n 20 >&2
    for z in "${ZONES[@]}"; do
        f=$dir/nsd/$z.zone
        axfr "$(dr_addr "$v")" "$z" >"$f" || true
        check "$v $z: AXFR from drdnsd" grep -q "[[:space:]]SOA[[:space:]]" "$f"
        if [ "$v" != unsigned ]; then
            check "$v $z: ldns-verify-zone on drdnsd's copy" quiet ldns-verify-zone "$f"
        fi
    done
    [ "$v" = "${VARIANTS[-1]}" ] && sandbox_stop seed
    write_nsd_conf "variant $v, drdnsd's AXFR copies" "$(nsd_addr "$v")" "$dir/nsd"
    check "$v: nsd-checkconf" nsd-checkconf "$dir/nsd/nsd.conf"
    _sandbox_spawn "nsd-$v" "$dir/nsd/nsd.log" nsd -d -c "$dir/nsd/nsd.conf"
    check "$v: NSD listens on $(nsd_addr "$v")" _sandbox_wait_listen "nsd-$v" "$(nsd_addr "$v")"
done

# NSD loaded every zone with drdnsd's serial
for v in "${VARIANTS[@]}"; do
    for z in "${ZONES[@]}"; do
        want=$(sandbox_soa_serial "$(dr_addr "$v")" "$z")
        ok_serial=0
        for _ in $(seq 1 50); do
            [ -n "$want" ] && [ "$(sandbox_soa_serial "$(nsd_addr "$v")" "$z")" = "$want" ] && { ok_serial=1; break; }
            sleep 0.1
        done
        check "$v $z: NSD serves drdnsd's serial ${want:-none}" test "$ok_serial" = 1
    done
done

# The comparer itself: NSD against itself is identical; NSD with the unsigned
# zones against NSD with the NSEC zones differs, and that fails.
u=${VARIANTS[0]}
if [ "$u" = unsigned ] && [ "${#VARIANTS[@]}" -gt 1 ]; then
    s=${VARIANTS[1]}
    set +e
    out=$("$PY" "$D/compare.py" --per-variant 300 --show 0 --allowlist "$D/allowlist" --zones "${ZONES[*]}" \
        "$s=$(nsd_addr "$s"),$(nsd_addr "$s"),$WORK/$s/nsd" 2>&1); rc=$?
    set -e
    check "compare.py: NSD against itself: exit 0, none differ" \
        test "$rc:$(grep -c "^differential: total .* allowlisted, *0 differ" <<<"$out")" = 0:1
    test "$rc" = 0 || printf '%s\n' "$out" | tail -n 20 >&2
    set +e
    out=$("$PY" "$D/compare.py" --per-variant 300 --show 0 --allowlist "$D/allowlist" --zones "${ZONES[*]}" \
        "$s=$(nsd_addr "$u"),$(nsd_addr "$s"),$WORK/$s/nsd" 2>&1); rc=$?
    set -e
    check "compare.py: unsigned against signed zones: exit 1, differences counted" \
        test "$rc:$(grep -c "^differential: total .* [1-9][0-9]* differ" <<<"$out")" = 1:1
fi

targets=()
for v in "${VARIANTS[@]}"; do targets+=("$v=$(dr_addr "$v"),$(nsd_addr "$v"),$WORK/$v/nsd"); done
set +e
"$PY" "$D/compare.py" --seed "${DIFF_SEED:-11}" --per-variant "${DIFF_PER_VARIANT:-2000}" \
    --show "${DIFF_SHOW:-20}" --allowlist "$D/allowlist" --zones "${ZONES[*]}" \
    --report "$WORK/report.txt" "${targets[@]}"
rc=$?
set -e
for v in "${VARIANTS[@]}"; do
    check "$v: drdnsd still running" _sandbox_alive "${SANDBOX_PID[drdns-$v]}"
    check "$v: NSD still running" _sandbox_alive "${SANDBOX_PID[nsd-$v]}"
done
check "drdnsd and NSD answer alike (no difference outside the allowlist, RRSIGs valid)" test "$rc" = 0

[ "$fail" -eq 0 ]
