#!/usr/bin/env bash
# drdns benchmarks, measured side by side against real peers in one run.
#
#   scripts/bench.sh [--records N] [--runs N] [--failovers N]
#
# Inside a private network namespace (nothing touches the host network):
#
# 1. AXFR serving.  One generated zone (N records, default 100000) is served as
#    a primary by drdns, BIND 9, NSD 4 and Knot 3, each on its own 127.0.0.x
#    address; hyperfine times the same client (`dig AXFR`, output discarded)
#    against each.  Reported as mean seconds and drdns's ratio to each peer.
#
# 2. Convergence after a failover.  The standard sandbox (BIND campus primary;
#    BIND drdns-first, NSD, Knot, BIND campus-first and PowerDNS secondaries) is failed
#    over FAILOVERS times (default 5).  For each secondary, drdns's own report
#    gives the seconds from the start of the convergence watch to the poll that
#    saw the DR serial (drdns polls every 50 ms here).  Beside it, in the same
#    run, the seconds each secondary takes to follow a NOTIFY from the real BIND
#    campus primary (the failback step between rounds), from the moment
#    `rndc reload` was issued to the 50 ms poll that saw the new serial: drdns
#    as primary vs BIND as primary, same secondaries, same poll resolution.
#    Medians are reported.
#
# 3. Automatic failover end to end.  drdnsd runs with the watchdog on
#    (auto_promote, promote_after 0; master interval 1.0 s, timeout 0.5 s,
#    fail_after 3: the shipped defaults for detection), WATCHDOG rounds (default
#    5).  Clock starts when nftables black-holes the campus (and ns0); each of
#    BIND (drdns first), NSD, Knot and PowerDNS is done at the first 50 ms poll where it
#    serves the DR serial for both zones.  Goal: interval x fail_after + 1 s.
#
# 4. DNSSEC signing.  One generated zone (SIGN_RECORDS A records, default
#    1,000,000), one ECDSAP256SHA256 KSK + ZSK from dnssec-keygen, signed with
#    NSEC by drdns's signer (tools/drdns-signzone, every core), ldns-signzone
#    and dnssec-signzone (-n CPUs), each timed with /usr/bin/time -v (wall
#    seconds, peak memory); signatures are counted in each output.  Beside them
#    the ceiling: `openssl speed -multi CPUs ecdsap256` signs per second.
#    Goal: drdns at 80% of that ceiling or more.  `--sign-only` runs just this.
#
# Prints Markdown tables for BENCHMARKS.md.  Installs what it needs and builds.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
export DRDNS_BUILD=${DRDNS_BUILD:-$SRC/build}
RECORDS=${RECORDS:-100000}
RUNS=${RUNS:-10}
FAILOVERS=${FAILOVERS:-5}
WATCHDOG=${WATCHDOG:-5}
SIGN_RECORDS=${SIGN_RECORDS:-1000000}
SIGN_ONLY=${SIGN_ONLY:-0}
while [ $# -gt 0 ]; do
    case $1 in
        --records) RECORDS=$2; shift 2 ;;
        --runs) RUNS=$2; shift 2 ;;
        --failovers) FAILOVERS=$2; shift 2 ;;
        --watchdog) WATCHDOG=$2; shift 2 ;;
        --sign-records) SIGN_RECORDS=$2; shift 2 ;;
        --sign-only) SIGN_ONLY=1; shift ;;
        *) echo "usage: $0 [--records N] [--runs N] [--failovers N] [--watchdog N] [--sign-records N] [--sign-only]" >&2; exit 2 ;;
    esac
done
export RECORDS RUNS FAILOVERS WATCHDOG SIGN_RECORDS SIGN_ONLY

if [ "${DRDNS_IN_NETNS:-}" != 1 ]; then
    bash "$SRC/scripts/deps.sh"
    BUILD_DIR="$DRDNS_BUILD" bash "$SRC/scripts/build.sh"
    export DRDNS_IN_NETNS=1
    exec unshare -n -- bash "$0" # options travel in the exported variables
fi

source "$SRC/scripts/lib/sandbox.sh"
source "$SRC/scripts/lib/drdns.sh"
sandbox_require_netns
WORK=$(mktemp -d /tmp/drdns-bench.XXXXXX)
sandbox_init "$WORK"
log() { printf '== %s\n' "$*" >&2; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "n/a"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

if [ "$SIGN_ONLY" != 1 ]; then
# ---------------------------------------------------------------------------
# 1. AXFR serving
# ---------------------------------------------------------------------------
Z=bench.test
ZF=$WORK/$Z.zone
log "generating $Z with $RECORDS records"
awk -v n="$RECORDS" 'BEGIN {
    print "$ORIGIN bench.test."; print "$TTL 300"
    print "@ SOA ns-dr.bench.test. hostmaster.bench.test. 1 3600 600 1209600 300"
    print "@ NS ns-dr.bench.test."; print "@ NS ns1.bench.test."
    print "ns-dr A 127.0.0.20"; print "ns1 A 127.0.0.31"
    for (i = 0; i < n - 6; i++) printf "h%d A 10.%d.%d.%d\n", i, int(i / 65536) % 256, int(i / 256) % 256, i % 256
}' >"$ZF"

# BIND primary (also the "secondary" drdns probes, so drdns sees a serial)
mkdir -p "$WORK/bind" "$WORK/nsd" "$WORK/knot" "$WORK/dr/zones"
cp "$ZF" "$WORK/bind/"; cp "$ZF" "$WORK/nsd/"; cp "$ZF" "$WORK/knot/"; cp "$ZF" "$WORK/dr/zones/"
cat >"$WORK/bind/named.conf" <<CONF
options { directory "$WORK/bind"; pid-file "$WORK/bind/named.pid"; listen-on { 127.0.0.31; };
  listen-on-v6 { none; }; recursion no; dnssec-validation no; notify no; allow-transfer { any; };
  session-keyfile "$WORK/bind/session.key"; };
controls { };
zone "$Z" { type primary; file "$WORK/bind/$Z.zone"; };
CONF
cat >"$WORK/nsd/nsd.conf" <<CONF
server:
  ip-address: 127.0.0.32
  port: 53
  username: ""
  chroot: ""
  zonesdir: "$WORK/nsd"
  database: ""
  pidfile: "$WORK/nsd/nsd.pid"
  xfrdfile: "$WORK/nsd/xfrd.state"
  zonelistfile: "$WORK/nsd/zone.list"
  server-count: 1
remote-control:
  control-enable: no
zone:
  name: "$Z"
  zonefile: "$WORK/nsd/$Z.zone"
  provide-xfr: 0.0.0.0/0 NOKEY
CONF
cat >"$WORK/knot/knot.conf" <<CONF
server:
  rundir: "$WORK/knot"
  listen: 127.0.0.33@53
  background-workers: 1
database:
  storage: "$WORK/knot"
acl:
  - id: any
    address: 0.0.0.0/0
    action: transfer
template:
  - id: default
    storage: "$WORK/knot"
    file: "%s.zone"
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
zone:
  - domain: $Z
    acl: any
CONF
for a in 127.0.0.31 127.0.0.32 127.0.0.33; do _sandbox_add_addr "$a"; done
_sandbox_spawn bench-bind "$WORK/bind/log" named -f -n 2 -c "$WORK/bind/named.conf"
_sandbox_spawn bench-nsd "$WORK/nsd/log" nsd -d -c "$WORK/nsd/nsd.conf"
_sandbox_spawn bench-knot "$WORK/knot/log" knotd -c "$WORK/knot/knot.conf"

cat >"$WORK/dr/drdns.conf" <<CONF
controller = { id = "bench"; address = "127.0.0.20"; port = 53; ns_name = "ns-dr.bench.test.";
  control_socket = "$WORK/dr/control.sock"; state_dir = "$WORK/dr/state"; allow_transfer = [ "127.0.0.1" ]; };
master = { address = "127.0.0.99"; };
secondaries = ( { name = "ns1.bench.test."; address = "127.0.0.31"; } );
zones = { directory = "$WORK/dr/zones"; dr_ttl = 600; min_ns = 1; };
policy = { notify_attempts = 1; };
CONF
drdns_start "$WORK/dr/drdns.conf"
for a in 127.0.0.31 127.0.0.32 127.0.0.33; do
    sandbox_wait_serial "$a" "$Z" 1 60 || { log "$a did not load $Z"; sandbox_dump_logs 20; exit 1; }
done
drdnsctl promote --reason "benchmark" --yes --wait 0 >/dev/null || true
sandbox_wait_serial 127.0.0.20 "$Z" 2 10 || { log "drdns did not serve $Z"; exit 1; }

log "AXFR of $RECORDS records: hyperfine, $RUNS runs each"
hyperfine --style basic --runs "$RUNS" --warmup 1 --export-json "$WORK/axfr.json" \
    -n drdns "dig +noall +tries=1 +time=30 @127.0.0.20 $Z AXFR" \
    -n "BIND 9" "dig +noall +tries=1 +time=30 @127.0.0.31 $Z AXFR" \
    -n "NSD 4" "dig +noall +tries=1 +time=30 @127.0.0.32 $Z AXFR" \
    -n "Knot 3" "dig +noall +tries=1 +time=30 @127.0.0.33 $Z AXFR" >&2
count=$(dig +noall +answer @127.0.0.20 $Z AXFR | wc -l)
log "drdns AXFR carried $count records (SOA twice)"
drdns_stop TERM
for n in bench-bind bench-nsd bench-knot; do sandbox_stop "$n"; done

# ---------------------------------------------------------------------------
# 2. Convergence after failover vs after a campus NOTIFY
# ---------------------------------------------------------------------------
log "failover convergence: $FAILOVERS rounds"
sandbox_start_all
ZONES=(example.edu 2.0.192.in-addr.arpa)
# poll_all ZONE SERIAL T0_MS: query every live secondary in parallel every 50 ms;
# print "ADDR SECONDS" (since T0_MS) when each first serves SERIAL (120 s cap).
poll_all() {
    local z=$1 want=$2 t0=$3 a now
    declare -A done_at=()
    local deadline=$(( t0 + 120000 ))
    while [ ${#done_at[@]} -lt ${#LIVE[@]} ] && [ "$(_sandbox_now_ms)" -lt "$deadline" ]; do
        local pids=()
        for a in "${LIVE[@]}"; do
            [ -n "${done_at[$a]:-}" ] && continue
            (dig +short +norec +time=1 +tries=1 @"$a" "$z" SOA 2>/dev/null | awk '{ print $3 }' >"$WORK/poll.$a") &
            pids+=($!)
        done
        wait "${pids[@]}" # only these: a bare wait would wait for the daemons too
        now=$(_sandbox_now_ms)
        for a in "${LIVE[@]}"; do
            [ -z "${done_at[$a]:-}" ] && [ "$(cat "$WORK/poll.$a" 2>/dev/null)" = "$want" ] && done_at[$a]=$now
        done
        sleep 0.05
    done
    for a in "${!done_at[@]}"; do
        awk -v a="$a" -v now="${done_at[$a]}" -v t0="$t0" 'BEGIN { printf "%s %.3f\n", a, (now - t0) / 1000 }'
    done
}
declare -A NAME=([127.0.0.11]="BIND 9 (drdns first, TSIG)" [127.0.0.12]="NSD 4 (TSIG)"
                 [127.0.0.13]="Knot 3 (TSIG)" [127.0.0.14]="BIND 9 (campus first)"
                 [127.0.0.16]="PowerDNS 4.7 (TSIG)")
declare -A NS=([127.0.0.11]=ns1 [127.0.0.12]=ns2 [127.0.0.13]=ns3 [127.0.0.14]=ns4 [127.0.0.16]=ns5)
LIVE=(127.0.0.11 127.0.0.12 127.0.0.13 127.0.0.14 127.0.0.16)
serial=2026112301
: >"$WORK/dr.tsv"; : >"$WORK/campus.tsv"; : >"$WORK/total.tsv"
mkdir -p "$WORK/fo"
for round in $(seq 1 "$FAILOVERS"); do
    rm -rf "$WORK/fo/state"
    DRDNS_POLL_INTERVAL=0.05 drdns_write_conf "$WORK/fo/drdns.conf" "$SRC/zones-dr"
    drdns_start "$WORK/fo/drdns.conf"
    sandbox_blackhole 127.0.0.10 127.0.0.15
    t0=$(date +%s.%N)
    out=$(drdnsctl --json promote --reason "bench round $round" --yes --wait 120) || true
    t1=$(date +%s.%N)
    echo "$t0 $t1" | awk '{ printf "%.3f\n", $2 - $1 }' >>"$WORK/total.tsv"
    for a in "${LIVE[@]}"; do
        echo "$a $(json_get "$out" "'%.3f' % [s['seconds'] for s in d['secondaries'] if s['name']=='${NS[$a]}.example.edu.'][0]")" >>"$WORK/dr.tsv"
    done
    dr_serial=$((serial + 1))
    drdns_stop TERM
    # Failback: the campus publishes above the DR serial; time each secondary.
    sandbox_unblackhole 127.0.0.10 127.0.0.15
    serial=$((dr_serial + 1))
    sandbox_campus_bump_serial example.edu "$serial" >/dev/null
    poll_all example.edu "$serial" "$SANDBOX_LAST_RELOAD_MS" >>"$WORK/campus.tsv"
    sandbox_campus_bump_serial 2.0.192.in-addr.arpa "$serial" >/dev/null
    for a in "${LIVE[@]}"; do sandbox_wait_serial "$a" 2.0.192.in-addr.arpa "$serial" 120 || true; done
done

# ---------------------------------------------------------------------------
# 3. Automatic failover: black hole -> every fast secondary serves the DR serial
# ---------------------------------------------------------------------------
log "watchdog failover, black hole to converged: $WATCHDOG rounds"
WD_INTERVAL=1.0 WD_TIMEOUT=0.5 WD_FAIL_AFTER=3
FAST=(127.0.0.11 127.0.0.12 127.0.0.13 127.0.0.16)
# poll_both SERIAL T0_MS: print "ADDR SECONDS" when each FAST secondary serves
# SERIAL for both zones (polled in parallel every 50 ms; 120 s cap).
poll_both() {
    local want=$1 t0=$2 a z now
    declare -A done_at=()
    local deadline=$(( t0 + 120000 ))
    while [ ${#done_at[@]} -lt ${#FAST[@]} ] && [ "$(_sandbox_now_ms)" -lt "$deadline" ]; do
        local pids=()
        for a in "${FAST[@]}"; do
            [ -n "${done_at[$a]:-}" ] && continue
            for z in "${ZONES[@]}"; do
                (dig +short +norec +time=1 +tries=1 @"$a" "$z" SOA 2>/dev/null | awk '{ print $3 }' >"$WORK/poll.$a.$z") &
                pids+=($!)
            done
        done
        wait "${pids[@]}"
        now=$(_sandbox_now_ms)
        for a in "${FAST[@]}"; do
            [ -n "${done_at[$a]:-}" ] && continue
            local all=1
            for z in "${ZONES[@]}"; do [ "$(cat "$WORK/poll.$a.$z" 2>/dev/null)" = "$want" ] || all=0; done
            [ "$all" = 1 ] && done_at[$a]=$now
        done
        sleep 0.05
    done
    for a in "${!done_at[@]}"; do
        awk -v a="$a" -v now="${done_at[$a]}" -v t0="$t0" 'BEGIN { printf "%s %.3f\n", a, (now - t0) / 1000 }'
    done
}
: >"$WORK/wd.tsv"
mkdir -p "$WORK/wd"
for round in $(seq 1 "$WATCHDOG"); do
    rm -rf "$WORK/wd/state"
    DRDNS_MASTER_TIMING="interval = $WD_INTERVAL; timeout = $WD_TIMEOUT; fail_after = $WD_FAIL_AFTER;" \
    DRDNS_POLICY_EXTRA="auto_promote = true; promote_after = 0;" \
        drdns_write_conf "$WORK/wd/drdns.conf" "$SRC/zones-dr"
    drdns_start "$WORK/wd/drdns.conf"
    for i in $(seq 1 50); do # a few rounds with the master up first
        [ "$(json_get "$(drdnsctl --json status)" "d.get('watchdog', {}).get('rounds', 0)")" -ge 3 ] && break
        sleep 0.2
    done
    t0=$(_sandbox_now_ms)
    sandbox_blackhole 127.0.0.10 127.0.0.15
    dr_serial=$((serial + 1))
    poll_both "$dr_serial" "$t0" >>"$WORK/wd.tsv"
    drdns_stop TERM
    sandbox_unblackhole 127.0.0.10 127.0.0.15
    serial=$((dr_serial + 1))
    for z in "${ZONES[@]}"; do sandbox_campus_bump_serial "$z" "$serial" >/dev/null; done
    for a in "${LIVE[@]}"; do for z in "${ZONES[@]}"; do sandbox_wait_serial "$a" "$z" "$serial" 120 || true; done; done
done

# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------
python3 - "$WORK/axfr.json" "$RECORDS" "$RUNS" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
res = {r["command"]: r for r in d["results"]}
dr = res["drdns"]["mean"]
print(f"### AXFR of one {int(sys.argv[2]):,}-record zone ({sys.argv[3]} runs each, hyperfine)\n")
print("| primary | mean s | stddev s | drdns time / peer time |")
print("|---|---|---|---|")
for name, r in res.items():
    print(f"| {name} | {r['mean']:.3f} | {r['stddev']:.3f} | {dr / r['mean']:.2f} |")
PY
echo
echo "### Convergence, seconds (median of $FAILOVERS rounds)"
echo
echo "| secondary | after drdns promote (drdns report, 50 ms polls) | after a BIND campus NOTIFY (from rndc reload, 50 ms polls) | drdns / BIND |"
echo "|---|---|---|---|"
for a in "${LIVE[@]}"; do
    d=$(awk -v a="$a" '$1 == a && $2 != "None" { print $2 }' "$WORK/dr.tsv" | median)
    c=$(awk -v a="$a" '$1 == a { print $2 }' "$WORK/campus.tsv" | median)
    r=$(awk -v d="$d" -v c="$c" 'BEGIN { if (c + 0 > 0 && d != "n/a") printf "%.2f", d / c; else print "n/a" }')
    echo "| ${NAME[$a]} | $d | $c | $r |"
done
echo
echo "Whole \`drdnsctl promote --wait 120\` (probe, rewrite, commit, NOTIFY, converge), median: $(median <"$WORK/total.tsv") s"
echo
echo "### Automatic failover: campus black-holed -> secondary serves the DR serial on both zones (median of $WATCHDOG rounds)"
echo
echo "Watchdog: interval $WD_INTERVAL s, timeout $WD_TIMEOUT s, fail_after $WD_FAIL_AFTER, promote_after 0; goal: interval x fail_after + 1 = $(awk -v i=$WD_INTERVAL -v f=$WD_FAIL_AFTER 'BEGIN { print i * f + 1 }') s"
echo
echo "| secondary | median s | min s | max s | within the goal |"
echo "|---|---|---|---|---|"
goal=$(awk -v i=$WD_INTERVAL -v f=$WD_FAIL_AFTER 'BEGIN { print i * f + 1 }')
for a in "${FAST[@]}"; do
    vals=$(awk -v a="$a" '$1 == a { print $2 }' "$WORK/wd.tsv")
    m=$(echo "$vals" | median)
    lo=$(echo "$vals" | sort -g | head -1)
    hi=$(echo "$vals" | sort -g | tail -1)
    w=$(awk -v m="$m" -v g="$goal" 'BEGIN { if (m == "n/a") print "n/a"; else print (m + 0 <= g + 0 ? "yes" : "no") }')
    echo "| ${NAME[$a]} | $m | ${lo:-n/a} | ${hi:-n/a} | $w |"
done
fi # SIGN_ONLY

# ---------------------------------------------------------------------------
# 4. DNSSEC signing
# ---------------------------------------------------------------------------
SZ=sign.test
SD=$WORK/sign
mkdir -p "$SD/keys"
log "generating $SZ with $SIGN_RECORDS records"
awk -v n="$SIGN_RECORDS" 'BEGIN {
    print "$ORIGIN sign.test."; print "$TTL 300"
    print "@ SOA ns1.sign.test. hostmaster.sign.test. 1 3600 600 1209600 300"
    print "@ NS ns1.sign.test."; print "ns1 A 127.0.0.31"
    for (i = 0; i < n - 3; i++) printf "h%d A 10.%d.%d.%d\n", i, int(i / 65536) % 256, int(i / 256) % 256, i % 256
}' >"$SD/$SZ.zone"
ksk=$(dnssec-keygen -q -K "$SD/keys" -a ECDSAP256SHA256 -f KSK "$SZ")
zsk=$(dnssec-keygen -q -K "$SD/keys" -a ECDSAP256SHA256 "$SZ")
CPUS=$(nproc)
# The environment drdnsd.service gives drdnsd, for every signer alike:
# transparent huge pages for glibc malloc's heap (fewer, cheaper page faults).
export GLIBC_TUNABLES=glibc.malloc.hugetlb=1
timed() { # NAME OUTFILE CMD...: wall seconds and peak KiB into $SD/NAME.time
    local name=$1 out=$2
    shift 2
    log "signing with $name"
    /usr/bin/time -v -o "$SD/$name.time" "$@" >"$SD/$name.log" 2>&1 || { log "$name failed"; tail -5 "$SD/$name.log" >&2; }
    printf '%s\n' "$out" >"$SD/$name.out"
}
timed drdns "$SD/drdns.signed" "$DRDNS_BUILD/drdns-signzone" -z "$SZ" -k "$SD/keys" -t "$CPUS" "$SD/$SZ.zone" "$SD/drdns.signed"
timed ldns-signzone "$SD/$SZ.zone.signed" ldns-signzone -f "$SD/$SZ.zone.signed" "$SD/$SZ.zone" "$SD/keys/$ksk" "$SD/keys/$zsk"
timed dnssec-signzone "$SD/bind.signed" dnssec-signzone -q -S -K "$SD/keys" -n "$CPUS" -o "$SZ" -f "$SD/bind.signed" "$SD/$SZ.zone"
log "openssl speed -multi $CPUS ecdsap256"
openssl speed -multi "$CPUS" -seconds 5 ecdsap256 >"$SD/openssl.txt" 2>/dev/null || true
ceiling=$(awk '/256 bits ecdsa/ { v = $(NF - 1) } END { print v + 0 }' "$SD/openssl.txt")

echo
echo "### DNSSEC signing of one ${SIGN_RECORDS}-record zone, ECDSAP256SHA256, NSEC, $CPUS CPUs"
echo
echo "Ceiling: \`openssl speed -multi $CPUS -seconds 5 ecdsap256\` = $ceiling signatures/s. Goal: drdns >= 80% of it. Every signer ran with GLIBC_TUNABLES=$GLIBC_TUNABLES, as drdnsd.service runs drdnsd."
echo
echo "| signer | wall s | signatures | signatures/s | % of ceiling | peak MiB |"
echo "|---|---|---|---|---|---|"
for name in drdns ldns-signzone dnssec-signzone; do
    out=$(cat "$SD/$name.out")
    sigs=$(ldns-read-zone "$out" 2>/dev/null | awk '$4 == "RRSIG" { n++ } END { print n + 0 }')
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, t, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + t[i]; print s }' "$SD/$name.time")
    mem=$(awk -F': ' '/Maximum resident/ { printf "%.0f", $2 / 1024 }' "$SD/$name.time")
    awk -v n="$name" -v w="$wall" -v s="$sigs" -v c="$ceiling" -v m="$mem" 'BEGIN {
        r = (w > 0) ? s / w : 0
        printf "| %s | %.2f | %d | %.0f | %s | %s |\n", n, w, s, r, (c > 0 ? sprintf("%.0f%%", 100 * r / c) : "n/a"), m }'
done
phase=$(sed -n 's/.* in \([0-9.]*\) s (\([0-9]*\) signatures\/s.*/\1 \2/p' "$SD/drdns.log")
echo
echo "End to end: reading the zone file, signing, writing the signed file. drdns's signing phase alone (its own report): ${phase% *} s, ${phase#* } signatures/s$(awk -v r="${phase#* }" -v c="$ceiling" 'BEGIN { if (c > 0 && r > 0) printf " (%.0f%% of the ceiling)", 100 * r / c }')."
