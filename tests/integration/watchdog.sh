#!/usr/bin/env bash
# Integration test: the watchdog acting on its own (no drdnsctl promote), against
# real BIND, NSD, Knot and PowerDNS secondaries.
#
# Runs itself inside a private network namespace (unshare -n); every daemon binds
# to 127.0.0.x on the namespace's loopback, and every process it starts is killed
# on exit.  Hosts are "lost" by dropping their packets with nftables
# (sandbox_blackhole: a silent dead host, no ICMP, no EPERM).
#
# Timing: master probes every 0.5 s (timeout 0.4 s), fail_after 4, recover_after 2,
# promote_after 0.  Nothing asserts a wall-clock duration: every step polls for
# its condition with a generous deadline.  State is read from the Prometheus
# endpoint (cheap, no probing), drdnsctl --json status, state.json, the audit
# log, the drdnsd log and the hook logs.
#
# Scenarios, in order (one drdnsd, one state dir, until (d)):
#   reload  SIGHUP with a broken configuration: drdnsd keeps running with the old
#           one and logs why; drdnsctl reload with a valid changed configuration
#           (metrics port moved): exit 0, the new port serves, the old one is gone.
#   (b)     flapping: the campus black-holed for fewer than fail_after rounds, then
#           back, four times: SUSPECT at most, never MASTER_DOWN, no promotion
#           attempted, secondaries at the campus serial, drdns REFUSED.
#   (c)     isolation: every secondary and the campus black-holed: ISOLATED, alert
#           "isolated", no promotion attempted over several rounds; all back:
#           NORMAL.
#   (f)     pause: drdnsctl pause, campus + ns0 dark: MASTER_DOWN, paused, alert
#           paused_while_down, no promotion attempted; the pause survives a
#           restart of drdnsd.
#   veto    a pre_promote hook that exits 1 while a flag file exists: resume ->
#           the hook runs (with the DRDNS_* environment), vetoes, nothing
#           changes, the log says vetoed; the flag is removed.
#   (c2)    isolation outlasts the veto's retry: the live secondaries are
#           black-holed too (ISOLATED) until past the 60 s retry time: still no
#           promotion attempted; the secondaries come back (atomically) ->
#   (a)     automatic promotion: reason "watchdog: ...", who the watchdog;
#           ns1 (BIND dr-first), ns2 (NSD), ns3 (Knot), ns5 (PowerDNS) and then
#           ns4 (BIND campus-first, ~61 s) serve campus+1; ns0 (dead) dropped from the NS
#           set; on_alert hooks ran with DRDNS_* env, post_promote once the
#           promotion finished (after ns4 converged); metrics
#           drdns_promoted 1, drdns_master_up 0; audit and state.json name the
#           watchdog.
#   (e)     the campus comes back behind the DR serial (alert master_returned, no
#           step-down), then publishes a newer serial (alert master_ahead): the
#           secondaries follow the campus and the watchdog steps down on its own
#           (audit "stepdown", post_demote hook, drdns REFUSED, state NORMAL),
#           then stays NORMAL.  See the comment there about BIND listing drdns
#           first (ns1) and auto_demote.
#   block   the campus dark again right after: MASTER_DOWN with alert "blocked"
#           (block_after_failover), no promotion attempted.
#   (d)     crash safety, each with a fresh drdnsd and state dir, campus dark:
#           d3 (first, while ns4 is idle) kill -9 from outside while the
#              promotion waits for ns4; restart: exactly one bump, ns4 converges
#              to it.
#           d1 DRDNS_TEST_FAULT=after-commit: drdnsd SIGKILLs itself after the
#              commit; state.json says promoted; a restart resumes serving and
#              NOTIFYs; secondaries reach exactly max(seen)+1; a second restart
#              does not bump again.  (Known gap, reported, not failed: the audit
#              log then has no record of that promotion.)
#           d2 DRDNS_TEST_FAULT=after-generation: dies before the commit; a
#              restart removes the left-over generation and the watchdog promotes
#              again: still exactly one bump.
set -euo pipefail
source "$(cd "$(dirname "$0")" && pwd)/lib.sh" "$@"

# python3 may be a version-manager shim that costs ~0.3 s a call; the state is
# polled with it, so put the real interpreter first on PATH.
PY=$(python3 -c 'import sys; print(sys.executable)')
PATH="$(dirname "$PY"):$PATH"
export PATH

T0=$IT_T0
IT_LOG_LINES=150
# checkd WHAT DIAG CMD...: like check, and on failure also runs DIAG (a command line).
checkd() { local what=$1 diag=$2; shift 2; if "$@"; then ok "$what"; else bad "$what"; eval "$diag" || true; fi; }
note() { echo "---- [$(( $(date +%s) - T0 )) s] $*"; }

CAMPUS=127.0.0.10
NS0=127.0.0.15
NS4=127.0.0.14
CAMPUS_SERIAL=2026112301
DR_SERIAL=2026112302
FAILBACK_SERIAL=2026112310
ZONES=(example.edu 2.0.192.in-addr.arpa)
SECS=(127.0.0.15 127.0.0.11 127.0.0.12 127.0.0.13 127.0.0.14 127.0.0.16) # ns0..ns5
LIVE=(127.0.0.11 127.0.0.12 127.0.0.13 127.0.0.14 127.0.0.16)            # off campus: ns1..ns5
FAST=(127.0.0.11 127.0.0.12 127.0.0.13 127.0.0.16) # dr-first BIND, NSD, Knot, PowerDNS

sandbox_require_netns
WORK=$(mktemp -d /tmp/drdns-watchdog.XXXXXX)
sandbox_init "$WORK"
trap 'finish; sandbox_cleanup' EXIT
sandbox_start_all
LOG=$SANDBOX_DIR/drdnsd.log
touch "$LOG"

# ---- helpers -----------------------------------------------------------------
now_ms() { date +%s%3N; }
# wait_until TIMEOUT CMD...: poll CMD every 0.2 s until it succeeds.
wait_until() {
    local deadline=$(( $(now_ms) + $1 * 1000 ))
    shift
    while :; do
        "$@" && return 0
        (( $(now_ms) < deadline )) || return 1
        sleep 0.2
    done
}
# hold SECONDS CMD...: CMD succeeds at every poll for SECONDS.
hold() {
    local deadline=$(( $(now_ms) + $1 * 1000 ))
    shift
    while (( $(now_ms) < deadline )); do
        "$@" || return 1
        sleep 0.2
    done
}
# Black-hole several addresses with one nft command, so that no probe round sees
# half of them (sandbox_blackhole puts its argument into "{ ... }").
blackhole_all()   { sandbox_blackhole "$(IFS=,; echo "$*")"; }
unblackhole_all() { sandbox_unblackhole "$(IFS=,; echo "$*")"; }

logmark() { wc -l <"$LOG"; }
log_since() { tail -n +"$(( $1 + 1 ))" "$LOG"; }
# (no grep -q after a pipe: with pipefail, grep leaving early can fail the
# writer with SIGPIPE and turn a match into a failure)
log_has() { log_since "$1" | grep -F -- "$2" >/dev/null; } # MARK TEXT
log_lacks() { ! log_has "$@"; }
not() { ! "$@"; }
log_lacks_re() { ! log_since "$1" | grep -E -- "$2" >/dev/null; } # MARK REGEX

serves_all_quiet() { # SERIAL ADDR...: as serves_all (lib.sh), printing nothing (polled)
    local serial=$1 a z
    shift
    for a in "$@"; do
        for z in "${ZONES[@]}"; do
            [ "$(sandbox_soa_serial "$a" "$z")" = "$serial" ] || return 1
        done
    done
}
show_serials() { # ADDR...
    local a z out=""
    for a in "$@"; do for z in "${ZONES[@]}"; do out+=" $a/$z=$(sandbox_soa_serial "$a" "$z")"; done; done
    echo "  serials:$out"
}
max_serial() { # ADDR...: the highest serial any of them serves, either zone
    local a z s m=0
    for a in "$@"; do for z in "${ZONES[@]}"; do
        s=$(sandbox_soa_serial "$a" "$z")
        if [ -n "$s" ] && [ "$s" -gt "$m" ]; then m=$s; fi
    done; done
    echo "$m"
}
ns_set() { # ADDR: the NS RRset of example.edu, one line
    dig +short +norec +time=2 +tries=1 @"$1" example.edu NS | sort | tr '\n' ' '
}

st() { json_get "$(drdnsctl --json status)" "$1"; } # PYEXPR over the status reply
wd_alerts() { st '" ".join(a["id"] for a in d["watchdog"]["alerts"])'; }
has_alert() { [[ " $(wd_alerts) " == *" $1 "* ]]; }

MPORT=9353
# shellcheck disable=SC2120 # (called with a port only where the old one is probed)
metrics() { # PORT (default $MPORT): the /metrics text
    python3 - "${1:-$MPORT}" <<'PY'
import sys, urllib.request
try:
    with urllib.request.urlopen("http://127.0.0.1:%s/metrics" % sys.argv[1], timeout=3) as r:
        sys.stdout.write(r.read().decode())
except Exception as e:
    sys.stderr.write("metrics: %s\n" % e)
    sys.exit(1)
PY
}
metric() { # SERIES: print its value
    metrics 2>/dev/null | awk -v k="$1" '$1 == k { print $2; f = 1 } END { exit !f }'
}
metric_is() { [ "$(metric "$1")" = "$2" ]; }
state_is() { metric_is "drdns_state{state=\"$1\"}" 1; }
alert_active() { metric_is "drdns_alert_active{alert=\"$1\"}" 1; }
state_alert() { state_is "$1" && alert_active "$2"; } # STATE ALERT
rounds() { metric drdns_probe_rounds_total || echo 0; }
wait_rounds() { # N: until N more probe rounds have completed (30 s at most)
    local want=$(( $(rounds) + $1 ))
    wait_until 30 eval '[ "$(rounds)" -ge '"$want"' ]'
}
stays_for_rounds() { # N STATE: the watchdog stays in STATE for N more rounds
    local want=$(( $(rounds) + $1 )) deadline=$(( $(now_ms) + 30000 ))
    while [ "$(rounds)" -lt "$want" ]; do
        state_is "$2" || { echo "  left $2"; return 1; }
        (( $(now_ms) < deadline )) || return 1
        sleep 0.2
    done
    state_is "$2"
}

state_json() { # DIR PYEXPR (d = DIR/state.json, {} when absent)
    python3 -c 'import json,os,sys
p=os.path.join(sys.argv[1],"state.json"); d=json.load(open(p)) if os.path.exists(p) else {}
r=eval(sys.argv[2]); print(json.dumps(r) if isinstance(r,(dict,list,bool)) or r is None else r)' "$1" "$2"
}
promoted_in() { [ "$(state_json "$1" 'd.get("promoted", False)')" = true ]; } # STATE_DIR
audit_eval() { # FILE PYEXPR (recs = its records)
    python3 -c 'import json,os,sys
recs=[json.loads(l) for l in open(sys.argv[1]) if l.strip()] if os.path.exists(sys.argv[1]) else []
r=eval(sys.argv[2]); print(json.dumps(r) if isinstance(r,(dict,list,bool)) or r is None else r)' "$1" "$2"
}
audit_count() { audit_eval "$1" "sum(1 for r in recs if $2)"; } # FILE PYCOND(r)

HOOKS=$WORK/hooks
mkdir -p "$HOOKS"
# One hook for every event: appends its DRDNS_* environment to <event>.log;
# pre_promote vetoes (exit 1) while $HOOKS/veto exists.
cat >"$HOOKS/hook.sh" <<EOF
#!/bin/sh
{ echo "--- \$(date +%s.%N)"; env | grep '^DRDNS_' | sort; } >>"$HOOKS/\$DRDNS_EVENT.log"
if [ "\$DRDNS_EVENT" = pre_promote ] && [ -e "$HOOKS/veto" ]; then
    echo "pre_promote: vetoed by the test (flag file)"
    exit 1
fi
exit 0
EOF
chmod +x "$HOOKS/hook.sh"
touch "$HOOKS/veto"
hook_runs() { awk '/^---/ { n++ } END { print n + 0 }' "$HOOKS/$1.log" 2>/dev/null || echo 0; }
hook_env() { # EVENT VAR: its value in the hook's last run
    awk -v v="$2=" '/^---/ { val = "" } index($0, v) == 1 { val = substr($0, length(v) + 1) } END { print val }' \
        "$HOOKS/$1.log" 2>/dev/null
}
NS1_LOG=$SANDBOX_DIR/ns1/named.log
ns1_mark() { wc -l <"$NS1_LOG"; }
ns1_log_has() { tail -n +"$(( $1 + 1 ))" "$NS1_LOG" | grep -F -- "$2" >/dev/null; } # MARK TEXT
ns1_notified_by_drdns() { ns1_log_has "$1" "notify from $DRDNS_ADDR#"; } # MARK
alert_hook_ran() { grep -qx "DRDNS_ALERT=$1" "$HOOKS/on_alert.log" 2>/dev/null; }

# ---- the drdnsd under test -------------------------------------------------------
mkdir -p "$WORK/drdns"
cp -r "$SRC/zones-dr" "$WORK/drdns/zones-dr"
CONF=$WORK/drdns/drdns.conf
STATE=$WORK/drdns/state
AUDIT=$STATE/audit.log
export DRDNS_MASTER_TIMING="interval = 0.5; timeout = 0.4; fail_after = 4; recover_after = 2;"
export DRDNS_POLICY_EXTRA="auto_promote = true; promote_after = 0; probe_timeout = 0.8; probe_attempts = 1; default_wait = 110;"
main_conf() { # METRICS_PORT
    DRDNS_CONF_EXTRA="hooks = { pre_promote = \"$HOOKS/hook.sh\"; post_promote = \"$HOOKS/hook.sh\";
    post_demote = \"$HOOKS/hook.sh\"; on_alert = \"$HOOKS/hook.sh\"; timeout = 10; };
metrics = { address = \"127.0.0.1\"; port = $1; };" \
        drdns_write_conf "$CONF" "$WORK/drdns/zones-dr"
}
# Nothing promoted since MARK: no PROMOTE decision in the log, state.json not
# promoted, drdns REFUSED.
no_promotion_attempted() {
    log_lacks "$1" "automatic promotion" && log_lacks "$1" "to=PROMOTING" &&
        ! promoted_in "$STATE" && refuses "$DRDNS_ADDR" example.edu
}

main_conf 9353
check "drdnsd --check accepts the watchdog configuration" "$DRDNS_BUILD/drdnsd" --check -c "$CONF"
drdns_start "$CONF"
check "watchdog NORMAL with the campus up" wait_until 20 state_is NORMAL
check "status: state NORMAL, standby, not paused" \
    test "$(st 'd["state"]+" "+d["role"]+" "+str(d["watchdog"]["paused"])')" = "NORMAL standby False"
check "metrics: drdns_master_up 1, drdns_promoted 0" \
    test "$(metric drdns_master_up) $(metric drdns_promoted)" = "1 0"
check "not promoted: drdns answers REFUSED" refuses "$DRDNS_ADDR" example.edu

# ---- reload ------------------------------------------------------------------------
note "reload: SIGHUP with a broken configuration, drdnsctl reload with a valid one"
sed -i 's/fail_after = 4;/fail_afetr = 4;/' "$CONF"
mark=$(logmark)
kill -HUP "${SANDBOX_PID[drdns]}"
check "SIGHUP, broken configuration: the log says the reload was refused" wait_until 10 log_has "$mark" "reload refused"
# (the message is the configuration's diagnostics: it goes on over the next lines)
check "  and why (the unknown key)" eval 'log_since "$mark" | grep -A3 "reload refused" | grep fail_afetr >/dev/null'

check "  drdnsd still running" kill -0 "${SANDBOX_PID[drdns]}"
check "  still answering on the control socket, state NORMAL" test "$(st 'd["state"]')" = NORMAL
check "  and still probing (old configuration)" wait_rounds 2
set +e
out=$(drdnsctl --json reload 2>&1); rc=$?
set -e
check "drdnsctl reload with the broken configuration: refused (exit 1)" test "$rc" = 1
check "  and says why" grep -q fail_afetr <<<"$out"
main_conf 9354 # a valid configuration with a change: the metrics endpoint moves
set +e
out=$(drdnsctl --json reload 2>&1); rc=$?
set -e
check "drdnsctl reload with a valid changed configuration: exit 0" test "$rc" = 0
check "  log: configuration reloaded" log_has "$mark" "configuration reloaded"
MPORT=9354
check "  metrics served on the new port" wait_until 10 state_is NORMAL
check "  and no longer on the old one" not metrics 9353

# ---- (b) flapping -------------------------------------------------------------------
note "(b) flapping: the campus dark for fewer than fail_after rounds, four times"
mark=$(logmark)
max_silent=0
flap_ok=1
# The silent-round count, read over bash's /dev/tcp (no interpreter start-up:
# here every 0.1 s of delay is a probe round closer to fail_after).
silent_rounds_fast() {
    local v rc
    exec 3<>"/dev/tcp/127.0.0.1/$MPORT" || return 1
    printf 'GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
    v=$(awk '$1 == "drdns_master_silent_rounds" { print $2; f = 1 } END { exit !f }' <&3)
    rc=$?
    exec 3<&-
    [ "$rc" = 0 ] && echo "$v"
}
silent_at_least() { [ "$(silent_rounds_fast || echo 0)" -ge "$1" ]; }
# Cycles 1-3: dark until the watchdog logs SUSPECT (one silent round; a grep of
# the log, so seen at once).  Cycle 4: until the metrics show two silent rounds.
# A round in flight may add one more; fail_after is 4.
seen_suspect() { log_has "$1" "from=NORMAL to=SUSPECT"; }
poll_fast() { # TIMEOUT CMD...: like wait_until, polling every 0.02 s
    local deadline=$(( $(now_ms) + $1 * 1000 ))
    shift
    until "$@"; do (( $(now_ms) < deadline )) || return 1; sleep 0.02; done
}
for cycle in 1 2 3 4; do
    cmark=$(logmark)
    sandbox_blackhole "$CAMPUS"
    if [ "$cycle" -le 3 ]; then
        poll_fast 10 seen_suspect "$cmark" || { flap_ok=0; echo "  cycle $cycle: SUSPECT not seen"; }
    else
        poll_fast 10 silent_at_least 2 || { flap_ok=0; echo "  cycle $cycle: two silent rounds not seen"; }
    fi
    sandbox_unblackhole "$CAMPUS"
    for _ in 1 2 3 4 5; do # the streak may grow by a round in flight
        s=$(metric drdns_master_silent_rounds || echo 0)
        if [ "$s" -gt "$max_silent" ]; then max_silent=$s; fi
        sleep 0.1
    done
    wait_until 15 state_is NORMAL || { flap_ok=0; echo "  cycle $cycle: not NORMAL again"; }
    sleep 0.5
done
echo "  highest master_silent_rounds sampled: $max_silent (fail_after 4)"
check "flapping: each outage was seen and ended (NORMAL again)" test "$flap_ok" = 1
check "  the log shows NORMAL -> SUSPECT transitions" log_has "$mark" "from=NORMAL to=SUSPECT"
check "  never MASTER_DOWN, ISOLATED, PROMOTING or PROMOTED" \
    log_lacks_re "$mark" 'to=(MASTER_DOWN|ISOLATED|PROMOTING|PROMOTED)'
check "  no promotion attempted (log; pre_promote hook never ran)" \
    eval 'no_promotion_attempted "$mark" && [ ! -e "$HOOKS/pre_promote.log" ]'
check "  no promote in the audit log" test "$(audit_count "$AUDIT" 'r["action"]=="promote"')" = 0
check "  secondaries still at the campus serial" serves_all_quiet "$CAMPUS_SERIAL" "${SECS[@]}"

# ---- (c) isolation ------------------------------------------------------------------
note "(c) isolation: the campus and every secondary dark"
mark=$(logmark)
blackhole_all "$CAMPUS" "${SECS[@]}"
check "isolation: state ISOLATED" wait_until 20 state_is ISOLATED
check "  alert isolated (status)" has_alert isolated
check "  alert isolated (metrics)" alert_active isolated
check "  status: master_silent_rounds >= fail_after" test "$(st 'd["watchdog"]["master_silent_rounds"]')" -ge 4
check "  stays ISOLATED for 8 more rounds" stays_for_rounds 8 ISOLATED
check "  no promotion attempted" no_promotion_attempted "$mark"
check "  on_alert hook ran for isolated" wait_until 5 alert_hook_ran isolated
unblackhole_all "$CAMPUS" "${SECS[@]}"
check "  everything back: NORMAL" wait_until 20 state_is NORMAL
check "  log: ISOLATED -> NORMAL" log_has "$mark" "from=ISOLATED to=NORMAL"
check "  still no promotion attempted" no_promotion_attempted "$mark"

# ---- (f) pause ------------------------------------------------------------------------
note "(f) pause: paused, then the campus (and ns0) dark"
mark=$(logmark)
check "drdnsctl pause --reason drill: exit 0" drdnsctl pause --reason drill
blackhole_all "$CAMPUS" "$NS0"
check "paused: state MASTER_DOWN" wait_until 20 state_is MASTER_DOWN
check "  status: watchdog.paused true, paused_by reason drill" \
    test "$(st 'str(d["watchdog"]["paused"])+" "+d["watchdog"]["paused_by"]["reason"]')" = "True drill"
check "  alert paused_while_down" has_alert paused_while_down
check "  metrics: drdns_paused 1" metric_is drdns_paused 1
check "  stays MASTER_DOWN for 8 more rounds" stays_for_rounds 8 MASTER_DOWN
check "  no promotion attempted" no_promotion_attempted "$mark"
check "  state.json: watchdog.paused true" test "$(state_json "$STATE" 'd["watchdog"]["paused"]')" = true
check "  audit: the pause is on record" test "$(audit_count "$AUDIT" 'r["action"]=="pause" and r["reason"]=="drill"')" = 1
drdns_stop TERM
mark=$(logmark)
drdns_start "$CONF"
check "after a restart: still paused" test "$(st 'str(d["watchdog"]["paused"])')" = True
check "  log: the watchdog started paused" log_has "$mark" "paused=yes"
check "  MASTER_DOWN again, alert paused_while_down" wait_until 20 state_alert MASTER_DOWN paused_while_down
wait_rounds 4 || true
check "  no promotion attempted" no_promotion_attempted "$mark"

# ---- pre_promote veto -------------------------------------------------------------
note "veto: resume with a pre_promote hook that exits 1"
mark=$(logmark)
check "drdnsctl resume: exit 0" drdnsctl resume
check "the pre_promote hook ran" wait_until 15 test -s "$HOOKS/pre_promote.log"
check "  drdnsd log: vetoed by the pre_promote hook" wait_until 10 log_has "$mark" "vetoed by pre_promote"
veto_seen=$(now_ms)
rm -f "$HOOKS/veto"
check "  hook env: DRDNS_EVENT=pre_promote" test "$(hook_env pre_promote DRDNS_EVENT)" = pre_promote
reason=$(hook_env pre_promote DRDNS_REASON)
check "  hook env: DRDNS_REASON starts with 'watchdog:' ($reason)" test "${reason#watchdog:}" != "$reason"
check "  hook env: DRDNS_ROLE=standby, DRDNS_STATE=PROMOTING" \
    test "$(hook_env pre_promote DRDNS_ROLE) $(hook_env pre_promote DRDNS_STATE)" = "standby PROMOTING"
check "  hook env: DRDNS_CONTROLLER, DRDNS_MASTER" \
    test "$(hook_env pre_promote DRDNS_CONTROLLER) $(hook_env pre_promote DRDNS_MASTER)" = "dr-sandbox $CAMPUS"
zones_env=$(hook_env pre_promote DRDNS_ZONES)
check "  hook env: DRDNS_ZONES names both zones ($zones_env)" \
    eval '[[ $zones_env == *example.edu* && $zones_env == *2.0.192.in-addr.arpa* ]]'
check "  not promoted, drdns REFUSED" no_promotion_attempted "$(logmark)"
check "  no promote in the audit log" test "$(audit_count "$AUDIT" 'r["action"]=="promote"')" = 0
check "  secondaries still at the campus serial" serves_all_quiet "$CAMPUS_SERIAL" "${LIVE[@]}"
check "  metrics: drdns_pre_promote_vetoes_total 1 (after the round)" wait_until 10 metric_is drdns_pre_promote_vetoes_total 1
check "  back to MASTER_DOWN with alert promote_failed" wait_until 10 state_alert MASTER_DOWN promote_failed

# ---- (c2) isolation outlasting the retry ----------------------------------------------
# The vetoed promotion is retried 60 s later.  Spend that wait usefully: cut the
# live secondaries off too (ISOLATED) until well past the retry time, so that the
# only thing holding the promotion back is the isolation.
note "(c2) isolated until past the retry time of the vetoed promotion"
mark=$(logmark)
blackhole_all "${LIVE[@]}"
check "isolated again: state ISOLATED" wait_until 20 state_is ISOLATED
left=$(( (veto_seen + 66000 - $(now_ms)) / 1000 ))
echo "  holding ISOLATED for $left s (the retry is due 60 s after the veto)"
check "  stays ISOLATED past the retry time" hold "$left" state_is ISOLATED
check "  no promotion attempted (log; the hook ran once in all)" \
    eval 'no_promotion_attempted "$mark" && [ "$(hook_runs pre_promote)" = 1 ]'

# ---- (a) automatic promotion ------------------------------------------------------------
note "(a) the live secondaries come back: the watchdog promotes"
mark=$(logmark)
unblackhole_all "${LIVE[@]}"
check "state.json: promoted" wait_until 20 promoted_in "$STATE"
check "  the pre_promote hook ran again and let it through" test "$(hook_runs pre_promote)" = 2
checkd "  ns1 (BIND dr-first), ns2 (NSD), ns3 (Knot), ns5 (PowerDNS) serve $DR_SERIAL" 'show_serials "${FAST[@]}"' \
    wait_until 40 serves_all_quiet "$DR_SERIAL" "${FAST[@]}"
check "  drdns serves $DR_SERIAL" serves_all_quiet "$DR_SERIAL" "$DRDNS_ADDR"
check "  watchdog state PROMOTED" wait_until 10 state_is PROMOTED
check "  status: role primary, state PROMOTED" test "$(st 'd["role"]+" "+d["state"]')" = "primary PROMOTED"
check "  status: the reason is the watchdog's" test "$(st 'd["reason"].startswith("watchdog:")')" = true
check "  state.json: who is the watchdog" test "$(state_json "$STATE" 'd["who"]')" = "watchdog controller=dr-sandbox"
check "  state.json: reason starts with 'watchdog:'" test "$(state_json "$STATE" 'd["reason"].startswith("watchdog:")')" = true
check "  audit: a promote by the watchdog, committed" \
    test "$(audit_count "$AUDIT" 'r["action"]=="promote" and r["who"]=={"watchdog":"dr-sandbox"} and r["reason"].startswith("watchdog:") and r["result"]=="committed"')" = 1
check "  audit: no operator promote" test "$(audit_count "$AUDIT" 'r["action"]=="promote" and "uid" in r["who"]')" = 0
for a in "$DRDNS_ADDR" 127.0.0.13 127.0.0.11 127.0.0.12 127.0.0.16; do
    ns=$(ns_set "$a")
    check "  NS set at $a lacks the dead ns0, has ns-dr ($ns)" \
        eval '[[ $ns != *ns0.example.edu* && $ns == *ns-dr.example.edu.* ]]'
done
check "  on_alert hook ran for master_down, with a message" \
    eval 'alert_hook_ran master_down && grep -q "^DRDNS_ALERT_MESSAGE=the master has not answered" "$HOOKS/on_alert.log"'
check "  on_alert hook ran for paused_while_down and promote_failed" \
    eval 'alert_hook_ran paused_while_down && alert_hook_ran promote_failed'
check "  on_alert env: DRDNS_EVENT=on_alert" grep -qx 'DRDNS_EVENT=on_alert' "$HOOKS/on_alert.log"
check "  metrics: drdns_promoted 1, drdns_master_up 0" \
    wait_until 5 eval '[ "$(metric drdns_promoted) $(metric drdns_master_up)" = "1 0" ]'
check "  metrics: drdns_promotions_total 1" metric_is drdns_promotions_total 1
check "  drdnsd log: automatic promotion" log_has "$mark" 'automatic promotion reason="watchdog:'
check "  drdnsd log: the promotion used the watchdog's probe round" log_has "$mark" "promote uses the watchdog's probe round"
t_ns4=$(now_ms)
checkd "  ns4 (BIND campus-first) converges to $DR_SERIAL" 'show_serials $NS4' \
    wait_until 110 serves_all_quiet "$DR_SERIAL" "$NS4"
echo "  ns4 converged $(( ($(now_ms) - t_ns4) / 1000 )) s after the fast secondaries were checked"
check "  the promotion finished: every live secondary converged (exit 0)" \
    wait_until 20 log_has "$mark" "automatic promotion finished exit=0 committed=yes"
check "  audit: the final record (done)" \
    test "$(audit_count "$AUDIT" 'r["action"]=="promote" and r["result"]=="done" and r["who"]=={"watchdog":"dr-sandbox"}')" = 1
check "  every live secondary serves $DR_SERIAL" serves_all_quiet "$DR_SERIAL" "${LIVE[@]}"
# post_promote runs when the automatic promotion finishes, i.e. after the wait
# for convergence (ns4: about a minute after the commit), not at the commit.
check "  post_promote hook ran (once)" wait_until 10 eval '[ "$(hook_runs post_promote)" = 1 ]'
check "  post_promote env: DRDNS_EVENT, DRDNS_ROLE=primary, DRDNS_CONTROLLER" \
    test "$(hook_env post_promote DRDNS_EVENT) $(hook_env post_promote DRDNS_ROLE) $(hook_env post_promote DRDNS_CONTROLLER)" = "post_promote primary dr-sandbox"
check "  post_promote env: DRDNS_SERIALS has $DR_SERIAL for both zones ($(hook_env post_promote DRDNS_SERIALS))" \
    test "$(hook_env post_promote DRDNS_SERIALS | grep -o "=$DR_SERIAL" | wc -l)" = 2
check "  post_promote env: DRDNS_ZONES, DRDNS_MASTER, DRDNS_REASON" \
    test -n "$(hook_env post_promote DRDNS_ZONES)" -a "$(hook_env post_promote DRDNS_MASTER)" = "$CAMPUS" -a -n "$(hook_env post_promote DRDNS_REASON)"

# ---- (e) the campus comes back ------------------------------------------------------------
note "(e) the campus returns, behind the DR serial"
mark=$(logmark)
unblackhole_all "$CAMPUS" "$NS0"
check "alert master_returned (campus $CAMPUS_SERIAL < DR $DR_SERIAL)" wait_until 15 has_alert master_returned
check "  still PROMOTED" state_is PROMOTED
check "  drdns still serves $DR_SERIAL" serves_all_quiet "$DR_SERIAL" "$DRDNS_ADDR"
wait_rounds 4 || true
check "  no step-down while the campus is behind" log_lacks "$mark" "stepping down"

note "(e) the campus publishes $FAILBACK_SERIAL"
nmark=$(ns1_mark)
for z in "${ZONES[@]}"; do sandbox_campus_bump_serial "$z" "$FAILBACK_SERIAL"; done
check "campus serves $FAILBACK_SERIAL" serves_all_quiet "$FAILBACK_SERIAL" "$CAMPUS"
t_bump=$(now_ms)
# The watchdog steps down once the master is ahead on every zone AND every
# answering secondary serves the master's serial (auto_demote = false).  The
# master_ahead alert may be short-lived when everyone follows at once, so it is
# looked for in the log.
check "alert master_ahead raised" wait_until 15 log_has "$mark" "kind=master_ahead"
checkd "  ns2 (NSD), ns3 (Knot), ns4 (BIND campus-first), ns5 (PowerDNS), ns0 follow the campus" 'show_serials "${SECS[@]}"' \
    wait_until 30 serves_all_quiet "$FAILBACK_SERIAL" 127.0.0.12 127.0.0.13 "$NS4" 127.0.0.16 "$NS0"
# Does BIND listing drdns first (ns1) move to the campus while drdns still serves
# the lower DR serial?  Give it 20 s more.
if wait_until 20 log_has "$mark" "stepping down"; then
    echo "  FACT: ns1 (BIND, drdns listed first) followed the campus while drdns served $DR_SERIAL;"
    echo "           the watchdog stepped down on its own with auto_demote = false"
    check "  stepped down without auto_demote: the secondaries followed" log_has "$mark" "and the secondaries follow it"
    # how: BIND refreshes from the primary that sent the NOTIFY first
    check "  ns1's log: NOTIFY from the campus, then a transfer from the campus" \
        eval 'ns1_log_has "$nmark" "notify from $CAMPUS#" && ns1_log_has "$nmark" "transfer of '"'"'example.edu/IN'"'"' from $CAMPUS#53"'
else
    echo "  FINDING: ns1 (BIND, drdns listed first) stays at $(sandbox_soa_serial 127.0.0.11 example.edu) while drdns"
    echo "           serves $DR_SERIAL and the campus $FAILBACK_SERIAL, so with auto_demote = false the watchdog waits"
    show_serials "${SECS[@]}"
    check "  no step-down while ns1 lags (auto_demote = false)" log_lacks "$mark" "stepping down"
    check "  alert master_ahead still active" has_alert master_ahead
    # Work-around: a BIND that asks its first primary (drdns) for the SOA and gets
    # a serial equal to its own stops there; it would not ask the campus until
    # drdns stops answering.  So this scenario continues with auto_demote = true,
    # set by editing the configuration and reloading.
    sed -i 's/auto_promote = true;/auto_promote = true; auto_demote = true;/' "$CONF"
    check "  drdnsctl reload with auto_demote = true: exit 0" drdnsctl reload
    check "  the watchdog steps down (auto_demote)" wait_until 15 log_has "$mark" "stepping down"
    check "  its reason says auto_demote" log_has "$mark" "(auto_demote)"
fi
echo "  step-down $(( ($(now_ms) - t_bump) / 1000 )) s after the campus bump"
check "audit: stepdown by the watchdog, done" wait_until 20 eval \
    '[ "$(audit_count "$AUDIT" "r[\"action\"]==\"stepdown\" and r[\"result\"]==\"done\" and r[\"who\"]=={\"watchdog\":\"dr-sandbox\"}")" = 1 ]'
check "  audit: stepdown records the master's serial" \
    eval '[[ "$(audit_eval "$AUDIT" "[r for r in recs if r[\"action\"]==\"stepdown\"][-1][\"master_serials\"]")" == *$FAILBACK_SERIAL* ]]'
check "  state.json: promoted false" test "$(state_json "$STATE" 'd["promoted"]')" = false
check "  drdns answers REFUSED again" wait_until 5 refuses "$DRDNS_ADDR" example.edu
check "  watchdog NORMAL" wait_until 15 state_is NORMAL
check "  status: standby" test "$(st 'd["role"]')" = standby
check "  post_demote hook ran (DRDNS_ROLE=standby)" wait_until 10 eval '[ "$(hook_env post_demote DRDNS_ROLE)" = standby ]'
checkd "  every secondary, ns1 included, serves $FAILBACK_SERIAL" 'show_serials "${SECS[@]}"' \
    wait_until 30 serves_all_quiet "$FAILBACK_SERIAL" "${SECS[@]}"
check "  metrics: drdns_stepdowns_total 1, drdns_promoted 0" \
    wait_until 5 eval '[ "$(metric drdns_stepdowns_total) $(metric drdns_promoted)" = "1 0" ]'
mark2=$(logmark)
check "  stays NORMAL for 10 s" hold 10 state_is NORMAL
check "  no new promotion attempted" no_promotion_attempted "$mark2"
check "  pre_promote ran twice in all" test "$(hook_runs pre_promote)" = 2

# ---- block_after_failover ------------------------------------------------------------------
note "block: the campus dark again within block_after_failover"
mark=$(logmark)
blackhole_all "$CAMPUS" "$NS0"
check "MASTER_DOWN with alert blocked" wait_until 20 state_alert MASTER_DOWN blocked
wait_rounds 6 || true
check "  no promotion attempted" no_promotion_attempted "$mark"
check "  pre_promote did not run" test "$(hook_runs pre_promote)" = 2
drdns_stop TERM

# ---- (d) crash safety ------------------------------------------------------------------------
# Each variant: a fresh drdnsd (own directory, state, socket) with the campus and
# ns0 dark; no metrics; only the post_promote hook (to see whether it runs for a
# promotion interrupted by a crash).
DRDNS_CONF_EXTRA="hooks = { post_promote = \"$HOOKS/hook.sh\"; };"
fresh_conf() { # DIR
    mkdir -p "$1"
    drdns_write_conf "$1/drdns.conf" "$WORK/drdns/zones-dr"
    echo "$1/drdns.conf"
}
# start_fault FAULT CONF: drdnsd with DRDNS_TEST_FAULT=FAULT in its environment;
# waits until it has died by itself and sets fault_rc to its exit status.
start_fault() {
    DRDNS_CONF=$2
    _sandbox_spawn drdns "$LOG" env DRDNS_TEST_FAULT="$1" "$DRDNS_BUILD/drdnsd" -f -c "$2"
    local pid=${SANDBOX_PID[drdns]}
    fault_rc=none
    if wait_until 40 eval '! _sandbox_alive '"$pid"; then
        set +e
        wait "$pid"
        fault_rc=$?
        set -e
    fi
    unset 'SANDBOX_PID[drdns]'
}
gens() { (cd "$1" 2>/dev/null && ls -d gen-* 2>/dev/null) | tr '\n' ' '; } # STATE_DIR
serials_of() { state_json "$1" '" ".join(str(z["serial"]) for z in d.get("zones", []))'; } # STATE_DIR

# ns4 has been idle since it followed the campus in (e), so the NOTIFY of this
# promotion starts a fresh walk (~61 s) and the kill lands inside the wait for it.
note "(d3) kill -9 while the promotion waits for ns4"
before=$(max_serial "${LIVE[@]}")
E3=$((before + 1))
echo "  highest serial the secondaries serve: $before; one bump makes $E3"
C3=$(fresh_conf "$WORK/d3")
S3=$WORK/d3/state
mark=$(logmark)
drdns_start "$C3"
check "the watchdog promotes" wait_until 20 promoted_in "$S3"
check "  on its own" log_has "$mark" 'automatic promotion reason="watchdog:'
checkd "  ns1, ns2, ns3, ns5 converge to $E3" 'show_serials "${LIVE[@]}"' wait_until 30 serves_all_quiet "$E3" "${FAST[@]}"
in_flight=$(audit_eval "$S3/audit.log" '[r["result"] for r in recs if r["action"]=="promote"]')
ns4_now=$(sandbox_soa_serial "$NS4" example.edu)
check "  the promotion is still waiting (audit $in_flight; ns4 at $ns4_now)" \
    test "$in_flight" = '["committed"]' -a "$ns4_now" != "$E3"
kill -KILL "${SANDBOX_PID[drdns]}"
wait "${SANDBOX_PID[drdns]}" 2>/dev/null || true
unset 'SANDBOX_PID[drdns]'
mark=$(logmark)
pp_before=$(hook_runs post_promote)
drdns_start "$C3"
check "restart: resumes as primary" log_has "$mark" "resuming as primary"
check "  drdns serves $E3" serves_all_quiet "$E3" "$DRDNS_ADDR"
check "  no second promotion" log_lacks "$mark" "promote requested"
t_ns4=$(now_ms)
checkd "  ns4 converges to exactly $E3" 'show_serials $NS4' wait_until 130 serves_all_quiet "$E3" "$NS4"
echo "  ns4 converged $(( ($(now_ms) - t_ns4) / 1000 )) s after the restart"
check "  every live secondary serves $E3" serves_all_quiet "$E3" "${LIVE[@]}"
check "  state.json: serial $E3, one generation" \
    test "$(serials_of "$S3") $(gens "$S3")" = "$E3 $E3 gen-$(state_json "$S3" 'd["generation"]') "
check "  audit: exactly one promote committed" \
    test "$(audit_count "$S3/audit.log" 'r["action"]=="promote" and r["result"]=="committed"')" = 1
sleep 1
echo "  INFO: post_promote ran $(( $(hook_runs post_promote) - pp_before )) time(s) after the restart, with every secondary converged"
drdns_stop TERM

note "(d1) DRDNS_TEST_FAULT=after-commit"
before=$(max_serial "${LIVE[@]}")
E1=$((before + 1))
echo "  highest serial the secondaries serve: $before; one bump makes $E1"
C1=$(fresh_conf "$WORK/d1")
S1=$WORK/d1/state
mark=$(logmark)
start_fault after-commit "$C1"
check "after-commit: drdnsd killed itself (SIGKILL: 137, got $fault_rc)" test "$fault_rc" = 137
check "  after an automatic promotion" log_has "$mark" 'automatic promotion reason="watchdog:'
check "  log: the fault point" log_has "$mark" "DRDNS_TEST_FAULT=after-commit: killing myself"
check "  state.json: promoted, serial $E1 for both zones" \
    test "$(state_json "$S1" 'd["promoted"]') $(serials_of "$S1")" = "true $E1 $E1"
check "  one generation on disk" test "$(gens "$S1")" = "gen-$(state_json "$S1" 'd["generation"]') "
check "  the secondaries have not moved (nothing served, no NOTIFY)" serves_all_quiet "$before" "${FAST[@]}"
mark=$(logmark)
nmark=$(ns1_mark)
pp_before=$(hook_runs post_promote)
drdns_start "$C1"
check "restart: resumes as primary" log_has "$mark" "resuming as primary"
check "  drdns serves $E1" serves_all_quiet "$E1" "$DRDNS_ADDR"
# (drdnsd logs "resume notify acked=" only when the whole batch is over, ~31 s
# with dead ns0 retried; ns1's own log shows the NOTIFY at once)
check "  resume NOTIFY sent (ns1 logs a NOTIFY from drdns)" wait_until 20 ns1_notified_by_drdns "$nmark"
checkd "  ns1, ns2, ns3, ns5 converge to exactly $E1" 'show_serials "${LIVE[@]}"' wait_until 30 serves_all_quiet "$E1" "${FAST[@]}"
check "  no second promotion" log_lacks "$mark" "promote requested"
gen1=$(state_json "$S1" 'd["generation"]')
drdns_stop TERM
mark=$(logmark)
drdns_start "$C1"
wait_rounds_st() { sleep "$1"; } # no metrics here: rounds are 0.5 s apart
wait_rounds_st 3
check "second restart: state.json unchanged (generation $gen1, serial $E1)" \
    test "$(state_json "$S1" 'd["generation"]') $(serials_of "$S1")" = "$gen1 $E1 $E1"
check "  drdns, ns1, ns2, ns3, ns5 serve $E1" serves_all_quiet "$E1" "$DRDNS_ADDR" "${FAST[@]}"
check "  watchdog PROMOTED" test "$(st 'd["state"]')" = PROMOTED
check "  no promotion since the restart" log_lacks "$mark" "promote requested"
n_audit=$(audit_count "$S1/audit.log" 'r["action"]=="promote" and r["result"]=="committed"')
check "  audit: no promote committed record (drdnsd died at the commit point)" test "$n_audit" = 0
# The crash came between state.json's commit and the audit record; each start
# that resumes a committed promotion records it, so the promotion is on record.
n_resume=$(audit_count "$S1/audit.log" 'r["action"]=="resume" and r["result"]=="serving" and r["generation"]=='"$gen1")
check "  audit: both restarts recorded resuming generation $gen1 ($n_resume)" test "$n_resume" = 2
echo "  INFO: post_promote ran $(( $(hook_runs post_promote) - pp_before )) time(s) for this promotion"
drdns_stop TERM

note "(d2) DRDNS_TEST_FAULT=after-generation"
before=$(max_serial "${LIVE[@]}")
E2=$((before + 1))
echo "  highest serial the secondaries serve: $before; one bump makes $E2"
C2=$(fresh_conf "$WORK/d2")
S2=$WORK/d2/state
mark=$(logmark)
start_fault after-generation "$C2"
check "after-generation: drdnsd killed itself (SIGKILL: 137, got $fault_rc)" test "$fault_rc" = 137
check "  log: the fault point" log_has "$mark" "DRDNS_TEST_FAULT=after-generation: killing myself"
check "  state.json: not promoted (absent, or promoted false)" not promoted_in "$S2"
left_over=$(gens "$S2")
check "  a left-over generation on disk ($left_over)" test -n "$left_over"
for g in $left_over; do touch "$S2/$g/.left-over-marker"; done
check "  the secondaries have not moved" serves_all_quiet "$before" "${FAST[@]}"
mark=$(logmark)
drdns_start "$C2"
check "restart: the watchdog promotes again" wait_until 20 log_has "$mark" 'automatic promotion reason="watchdog:'
check "  state.json: promoted, serial $E2" \
    wait_until 10 eval '[ "$(state_json "$S2" "d.get(\"promoted\")") $(serials_of "$S2")" = "true $E2 $E2" ]'
check "  the left-over generation was removed" eval '! ls "$S2"/gen-*/.left-over-marker >/dev/null 2>&1'
check "  exactly one generation on disk" test "$(gens "$S2")" = "gen-$(state_json "$S2" 'd["generation"]') "
checkd "  ns1, ns2, ns3, ns5 converge to exactly $E2" 'show_serials "${LIVE[@]}"' wait_until 30 serves_all_quiet "$E2" "${FAST[@]}"
check "  drdns serves $E2" serves_all_quiet "$E2" "$DRDNS_ADDR"
drdns_stop TERM

[ "$fail" -eq 0 ]
