# shellcheck shell=bash disable=SC2034
#
# scripts/lib/sandbox.sh -- real-nameserver sandbox for the drdns demo and
# integration tests.
#
# Source this file from a bash script that is ALREADY running inside a
# private network namespace (`unshare -n`).  Everything binds to 127.0.0.x
# on the namespace's own loopback interface; nothing ever touches the host's
# network.  The library is `set -euo pipefail` friendly.
#
# Standard topology (sandbox_start_all):
#
#   127.0.0.10  campus primary   BIND 9, `type primary`, full campus zones
#   127.0.0.15  ns0              BIND secondary, primaries { campus }  (on
#                                campus: blackhole it together with .10)
#   127.0.0.11  ns1              BIND secondary, primaries { dr key; campus; }
#   127.0.0.12  ns2              NSD secondary,  DR (AXFR+TSIG) then campus
#   127.0.0.13  ns3              Knot secondary, master: [dr (key), campus]
#   127.0.0.14  ns4              BIND secondary, primaries { campus; dr; }
#   127.0.0.16  ns5              PowerDNS secondary (sqlite3), primaries
#                                dr, campus; TSIG (one key for the zone)
#   127.0.0.20  DR primary       drdns -- NOT started by this library
#
# Zones: example.edu and 2.0.192.in-addr.arpa.
#
# Typical use:
#
#   source scripts/lib/sandbox.sh
#   sandbox_require_netns
#   sandbox_init /tmp/drdns-sandbox
#   sandbox_start_all
#   ...
#   (cleanup happens automatically on EXIT/INT/TERM)
#
# Tunables (environment, read when the functions run):
#   SANDBOX_CAMPUS_ZONEDIR  full campus zone files (default
#                           <repo>/tests/integration/campus)
#   SANDBOX_NSD_KEYFILE     BIND-format TSIG key used between drdns and NSD
#                           (default <repo>/tests/integration/keys/nsd-dr.key)
#   SANDBOX_BIND_KEYFILE    TSIG key between drdns and ns1 (BIND)
#                           (default <repo>/tests/integration/keys/bind-dr.key)
#   SANDBOX_KNOT_KEYFILE    TSIG key between drdns and ns3 (Knot)
#                           (default <repo>/tests/integration/keys/knot-dr.key)
#   SANDBOX_PDNS_KEYFILE    BIND-format TSIG key of the PowerDNS secondary
#                           (default <repo>/tests/integration/keys/pdns-dr.key);
#                           PowerDNS signs its transfers from every primary
#                           of a zone with it, so the campus knows it too
#   SANDBOX_CAMPUS_ADDR     campus primary address       (default 127.0.0.10)
#   SANDBOX_DR_ADDR         drdns DR primary address      (default 127.0.0.20)
#   SANDBOX_CAMPUS_NOTIFY   addresses the campus primary NOTIFYs (default
#                           the six standard secondaries)
#   SANDBOX_START_TIMEOUT   seconds sandbox_start_all waits for the
#                           secondaries to load the campus zones (default 30)
#   SANDBOX_BLACKHOLE_SILENT 1 (default): sandbox_blackhole drops in the
#                           input hook only, so senders get no EPERM and
#                           time out as with a real dead host; 0 also drops
#                           in the output hook (senders fail at once; see
#                           sandbox_blackhole)
#
# Global state set by the library (read-only for callers):
#   SANDBOX_ZONES           (example.edu 2.0.192.in-addr.arpa)
#   SANDBOX_SECONDARIES     addresses of ns0 ns1 ns2 ns3 ns4 ns5
#   SANDBOX_CAMPUS_SITE     (127.0.0.10 127.0.0.15): blackhole both to
#                           simulate a campus outage (ns0 dies with it)
#   SANDBOX_DIR             the work directory given to sandbox_init
#   SANDBOX_PIDS            array of every pid started
#   SANDBOX_PID[NAME]       pid of the daemon started under NAME
#                           (campus, ns0 .. ns5)
#   SANDBOX_LOG[NAME]       its log file
#   SANDBOX_WAITED_MS       set by sandbox_wait_serial
#   SANDBOX_LAST_RELOAD_MS  set by sandbox_campus_reload / _bump_serial
#
# Function index (details in each header below):
#   sandbox_require_netns
#   sandbox_init DIR
#   sandbox_cleanup
#   sandbox_start_campus_primary
#   sandbox_campus_zone_file ZONE
#   sandbox_campus_reload ZONE
#   sandbox_campus_bump_serial ZONE NEWSERIAL
#   sandbox_start_bind_secondary NAME ADDR ORDER
#   sandbox_start_nsd_secondary NAME ADDR
#   sandbox_start_knot_secondary NAME ADDR [ORDER]
#   sandbox_start_pdns_secondary NAME ADDR [ORDER]
#   sandbox_restart_pdns_secondary NAME ADDR XFR_CYCLE
#   sandbox_start_all
#   sandbox_stop NAME
#   sandbox_blackhole ADDR...
#   sandbox_unblackhole ADDR...
#   sandbox_drop_notify FROM TO
#   sandbox_notify_drops FROM TO
#   sandbox_undrop_notify FROM TO
#   sandbox_soa_serial ADDR ZONE
#   sandbox_wait_serial ADDR ZONE SERIAL TIMEOUT_SECONDS
#   sandbox_axfr ADDR ZONE
#   sandbox_dump_logs [LINES]

# ---------------------------------------------------------------------------
# Internal defaults
# ---------------------------------------------------------------------------

_SANDBOX_LIBDIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
_SANDBOX_REPO="$(cd "$_SANDBOX_LIBDIR/../.." && pwd)"

SANDBOX_ZONES=(example.edu 2.0.192.in-addr.arpa)
SANDBOX_SECONDARIES=(127.0.0.15 127.0.0.11 127.0.0.12 127.0.0.13 127.0.0.14 127.0.0.16)
SANDBOX_CAMPUS_SITE=(127.0.0.10 127.0.0.15)   # what a campus outage takes down
SANDBOX_DIR="${SANDBOX_DIR:-}"
SANDBOX_PIDS=()
declare -gA SANDBOX_PID=()
declare -gA SANDBOX_LOG=()
_SANDBOX_CLEANED=0
_SANDBOX_RNDC_PORT=953

_sandbox_campus_addr() { printf '%s\n' "${SANDBOX_CAMPUS_ADDR:-127.0.0.10}"; }
_sandbox_dr_addr()     { printf '%s\n' "${SANDBOX_DR_ADDR:-127.0.0.20}"; }
_sandbox_campus_zonedir() {
    printf '%s\n' "${SANDBOX_CAMPUS_ZONEDIR:-$_SANDBOX_REPO/tests/integration/campus}"
}
_sandbox_nsd_keyfile() {
    printf '%s\n' "${SANDBOX_NSD_KEYFILE:-$_SANDBOX_REPO/tests/integration/keys/nsd-dr.key}"
}

_sandbox_bind_keyfile() {
    printf '%s\n' "${SANDBOX_BIND_KEYFILE:-$_SANDBOX_REPO/tests/integration/keys/bind-dr.key}"
}
_sandbox_knot_keyfile() {
    printf '%s\n' "${SANDBOX_KNOT_KEYFILE:-$_SANDBOX_REPO/tests/integration/keys/knot-dr.key}"
}
_sandbox_pdns_keyfile() {
    printf '%s\n' "${SANDBOX_PDNS_KEYFILE:-$_SANDBOX_REPO/tests/integration/keys/pdns-dr.key}"
}

_sandbox_log() { printf 'sandbox: %s\n' "$*" >&2; }
_sandbox_die() { printf 'sandbox: ERROR: %s\n' "$*" >&2; return 1; }

_sandbox_need_init() {
    [[ -n "$SANDBOX_DIR" && -d "$SANDBOX_DIR" ]] ||
        _sandbox_die "sandbox_init has not been called"
}

# Monotonic-enough wall clock in milliseconds.
_sandbox_now_ms() { date +%s%3N; }

# _sandbox_spawn NAME LOGFILE CMD...  -- start CMD in the background with
# stdout+stderr appended to LOGFILE and record its pid.
_sandbox_spawn() {
    local name=$1 logf=$2
    shift 2
    "$@" >>"$logf" 2>&1 </dev/null &
    local pid=$!
    SANDBOX_PIDS+=("$pid")
    SANDBOX_PID[$name]=$pid
    SANDBOX_LOG[$name]=$logf
    printf '%s %s\n' "$name" "$pid" >>"$SANDBOX_DIR/pids"
}

# _sandbox_wait_listen NAME ADDR [TIMEOUT] -- wait until something listens
# on ADDR:53 over UDP and TCP, and the daemon NAME is still alive.
_sandbox_wait_listen() {
    local name=$1 addr=$2 timeout=${3:-15}
    local pid=${SANDBOX_PID[$name]}
    local deadline=$(( $(_sandbox_now_ms) + timeout * 1000 ))
    while (( $(_sandbox_now_ms) < deadline )); do
        if ! _sandbox_alive "$pid"; then
            _sandbox_log "$name (pid $pid) exited during startup"
            _sandbox_tail "$name" 40
            return 1
        fi
        if [[ -n "$(ss -Hlun "src $addr:53" 2>/dev/null)" &&
              -n "$(ss -Hltn "src $addr:53" 2>/dev/null)" ]]; then
            return 0
        fi
        sleep 0.1
    done
    _sandbox_log "$name did not start listening on $addr:53 within ${timeout}s"
    _sandbox_tail "$name" 40
    return 1
}

# _sandbox_add_addr ADDR -- make ADDR an explicit address of lo.  Any
# 127.x address is bindable thanks to the 127/8 local route, but BIND only
# listens on addresses it finds when scanning the interfaces, so each
# daemon's address is added as a /32 (inside the private netns only).
_sandbox_add_addr() {
    local a=$1
    ip -4 -o addr show dev lo | grep -qF " inet $a/" ||
        ip addr add "$a/32" dev lo
}

_sandbox_tail() {
    local name=$1 n=${2:-30}
    local f=${SANDBOX_LOG[$name]:-}
    [[ -n "$f" && -f "$f" ]] || return 0
    printf '==== %s: %s (last %s lines) ====\n' "$name" "$f" "$n" >&2
    tail -n "$n" "$f" >&2 || true
}

# ---------------------------------------------------------------------------
# sandbox_require_netns
#   Refuse to run unless we are inside a private network namespace: the
#   only interface may be `lo`, and (unless SANDBOX_ALLOW_SHARED_NETNS=1)
#   the namespace must differ from PID 1's.  Brings `lo` up.
#   Returns non-zero with a clear message otherwise.
# ---------------------------------------------------------------------------
sandbox_require_netns() {
    local ifs
    ifs=$(ip -o link show | awk -F': ' '{ sub(/@.*/, "", $2); print $2 }')
    if [[ "$ifs" != "lo" ]]; then
        _sandbox_die "not in a private network namespace (interfaces: ${ifs//$'\n'/ }); run under 'unshare -n'"
        return 1
    fi
    if [[ "${SANDBOX_ALLOW_SHARED_NETNS:-0}" != 1 &&
          -r /proc/1/ns/net &&
          "$(readlink /proc/self/ns/net)" == "$(readlink /proc/1/ns/net)" ]]; then
        _sandbox_die "this is PID 1's network namespace; run under 'unshare -n' (or set SANDBOX_ALLOW_SHARED_NETNS=1)"
        return 1
    fi
    ip link set lo up
}

# ---------------------------------------------------------------------------
# sandbox_init DIR
#   Create (if needed) the work directory DIR for configs, zone copies, logs
#   and pid files, and install an EXIT/INT/TERM trap that runs
#   sandbox_cleanup.  INT/TERM clean up, then `exit 130`/`exit 143`, which
#   also runs the EXIT trap.
#   NOTE: this replaces any EXIT/INT/TERM traps the caller had set; a caller
#   that needs its own EXIT handler should install it after sandbox_init
#   and call sandbox_cleanup from it (cleanup is idempotent).
# ---------------------------------------------------------------------------
sandbox_init() {
    local dir=${1:?usage: sandbox_init DIR}
    # a second sandbox_init first tears down what the first one started
    (( ${#SANDBOX_PIDS[@]} )) && sandbox_cleanup
    mkdir -p "$dir"
    SANDBOX_DIR=$(cd "$dir" && pwd)
    SANDBOX_PIDS=()
    SANDBOX_PID=()
    SANDBOX_LOG=()
    _SANDBOX_CLEANED=0
    : >"$SANDBOX_DIR/pids"
    trap 'sandbox_cleanup' EXIT
    trap 'sandbox_cleanup; exit 130' INT
    trap 'sandbox_cleanup; exit 143' TERM
}

# _sandbox_alive PID -- true if PID exists and is not a zombie.
_sandbox_alive() {
    local st
    st=$(awk '$1 == "State:" { print $2 }' "/proc/$1/status" 2>/dev/null) || return 1
    [[ -n "$st" && "$st" != Z && "$st" != X ]]
}

# _sandbox_descendants PID -- print the pids of all descendants of PID.
_sandbox_descendants() {
    local c
    for c in $(pgrep -P "$1" 2>/dev/null); do
        printf '%s\n' "$c"
        _sandbox_descendants "$c"
    done
}

# ---------------------------------------------------------------------------
# sandbox_cleanup
#   Kill every process the sandbox started (SIGTERM, then SIGKILL after up
#   to 3 s), including their descendants (NSD forks), reap them, and
#   delete the nftables table.  Pids come from SANDBOX_PIDS and from
#   $SANDBOX_DIR/pids (so daemons started in a subshell are found too).
#   Idempotent; never fails.
# ---------------------------------------------------------------------------
sandbox_cleanup() {
    (( _SANDBOX_CLEANED )) && return 0
    _SANDBOX_CLEANED=1
    local -          # restore the caller's set -e/-u/-o pipefail on return
    set +e
    local pid all=() alive=() i cands=("${SANDBOX_PIDS[@]}") n p
    # Daemons started from a subshell (e.g. `sandbox_start_all | tee`) are
    # not in SANDBOX_PIDS but are in the pids file; take those whose
    # command line still references this sandbox's directory.
    if [[ -n "$SANDBOX_DIR" && -r "$SANDBOX_DIR/pids" ]]; then
        while read -r n p; do
            [[ "$p" =~ ^[0-9]+$ ]] || continue
            # (2>/dev/null first: the process may be gone, failing the < redirect)
            tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline" |
                grep -qF "$SANDBOX_DIR/" && cands+=("$p")
        done <"$SANDBOX_DIR/pids"
    fi
    for pid in $(printf '%s\n' "${cands[@]}" | sort -un); do
        _sandbox_alive "$pid" || continue
        all+=("$pid")
        # descendants (NSD forks xfrd, reload and server processes)
        while read -r i; do [[ -n "$i" ]] && all+=("$i"); done \
            < <(_sandbox_descendants "$pid")
    done
    if (( ${#all[@]} )); then
        kill -TERM "${all[@]}" 2>/dev/null
        for i in $(seq 30); do
            alive=()
            for pid in "${all[@]}"; do
                _sandbox_alive "$pid" && alive+=("$pid")
            done
            (( ${#alive[@]} )) || break
            sleep 0.1
        done
        if (( ${#alive[@]} )); then
            _sandbox_log "SIGKILL to pids still alive: ${alive[*]}"
            kill -KILL "${alive[@]}" 2>/dev/null
        fi
    fi
    for pid in "${SANDBOX_PIDS[@]}"; do
        wait "$pid" 2>/dev/null
    done
    nft delete table inet drdns_sandbox 2>/dev/null
    return 0
}

# ---------------------------------------------------------------------------
# sandbox_stop NAME
#   Stop one daemon started by this library (SIGTERM, SIGKILL after 3 s).
#   E.g. `sandbox_stop campus` or `sandbox_stop ns2`.
# ---------------------------------------------------------------------------
sandbox_stop() {
    local name=${1:?usage: sandbox_stop NAME}
    local pid=${SANDBOX_PID[$name]:-}
    [[ -n "$pid" ]] || { _sandbox_die "no daemon named $name"; return 1; }
    local kids i
    kids=$(_sandbox_descendants "$pid")
    # shellcheck disable=SC2086
    kill -TERM "$pid" $kids 2>/dev/null || true
    for i in $(seq 30); do
        _sandbox_alive "$pid" || break
        sleep 0.1
    done
    # shellcheck disable=SC2086
    kill -KILL "$pid" $kids 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# ---------------------------------------------------------------------------
# sandbox_start_campus_primary
#   Start BIND 9 as the campus primary on $SANDBOX_CAMPUS_ADDR:53 (default
#   127.0.0.10) serving copies of the full campus zones (`type primary`)
#   from $SANDBOX_DIR/campus/.  NOTIFY is sent (from 127.0.0.10) to the
#   addresses in $SANDBOX_CAMPUS_NOTIFY only (`notify explicit`): the NS
#   records point at 192.0.2.x documentation addresses that do not exist
#   in the sandbox, so implicit NOTIFY would reach nobody.
#   rndc control channel: 127.0.0.10 port 953, key in campus/rndc.conf.
#   It knows the PowerDNS secondary's TSIG key ($SANDBOX_PDNS_KEYFILE):
#   PowerDNS signs its transfers from every primary of the zone with the
#   one key it has for the zone (AXFR-MASTER-TSIG), the campus included.
#   Waits until both zones are served.  Log: campus/named.log.
# ---------------------------------------------------------------------------
sandbox_start_campus_primary() {
    _sandbox_need_init || return 1
    local addr d zdir z notify
    addr=$(_sandbox_campus_addr)
    d="$SANDBOX_DIR/campus"
    zdir=$(_sandbox_campus_zonedir)
    notify=${SANDBOX_CAMPUS_NOTIFY:-${SANDBOX_SECONDARIES[*]}}
    mkdir -p "$d"
    _sandbox_add_addr "$addr"
    for z in "${SANDBOX_ZONES[@]}"; do
        cp "$zdir/$z.zone" "$d/$z.zone"
    done
    tsig-keygen -a hmac-sha256 rndc-key >"$d/rndc.key"
    {
        cat "$d/rndc.key"
        cat <<EOF
options {
    default-key "rndc-key";
    default-server $addr;
    default-port $_SANDBOX_RNDC_PORT;
};
EOF
    } >"$d/rndc.conf"

    local also="" a
    for a in $notify; do also+="$a; "; done
    cat >"$d/named.conf" <<EOF
// campus primary -- generated by scripts/lib/sandbox.sh
include "$d/rndc.key";
include "$(_sandbox_pdns_keyfile)";
controls {
    inet $addr port $_SANDBOX_RNDC_PORT allow { 127.0.0.0/8; } keys { "rndc-key"; };
};
options {
    directory "$d";
    pid-file "$d/named.pid";
    session-keyfile "$d/session.key";
    managed-keys-directory "$d";
    listen-on port 53 { $addr; };
    listen-on-v6 { none; };
    query-source address $addr;
    transfer-source $addr;
    notify-source $addr;
    recursion no;
    dnssec-validation no;
    allow-query { any; };
    allow-transfer { any; };
    notify explicit;
    also-notify { $also};
};
logging {
    channel sandbox_log {
        file "$d/named.log";
        severity info;
        print-time yes;
        print-category yes;
        print-severity yes;
    };
    category default { sandbox_log; };
    category lame-servers { null; };
};
EOF
    for z in "${SANDBOX_ZONES[@]}"; do
        cat >>"$d/named.conf" <<EOF
zone "$z" {
    type primary;
    file "$d/$z.zone";
};
EOF
    done
    named-checkconf -z "$d/named.conf" >"$d/checkconf.out" 2>&1 || {
        cat "$d/checkconf.out" >&2
        _sandbox_die "campus named.conf invalid"
        return 1
    }
    _sandbox_spawn campus "$d/named.log" named -f -n 1 -c "$d/named.conf"
    _sandbox_wait_listen campus "$addr" || return 1
    for z in "${SANDBOX_ZONES[@]}"; do
        local s
        s=$(_sandbox_zonefile_serial "$z" "$d/$z.zone")
        sandbox_wait_serial "$addr" "$z" "$s" 10 || {
            _sandbox_tail campus 40
            _sandbox_die "campus primary does not serve $z serial $s"
            return 1
        }
    done
    _sandbox_log "campus primary up on $addr (pid ${SANDBOX_PID[campus]})"
}

# _sandbox_zonefile_serial ZONE FILE -- SOA serial of a master file.
_sandbox_zonefile_serial() {
    named-compilezone -q -D -s full -o - "$1" "$2" 2>/dev/null |
        awk '$4 == "SOA" { print $7; exit }'
}

# ---------------------------------------------------------------------------
# sandbox_campus_zone_file ZONE
#   Print the path of the campus primary's working copy of ZONE (edit it,
#   then call sandbox_campus_reload ZONE).
# ---------------------------------------------------------------------------
sandbox_campus_zone_file() {
    local z=${1:?usage: sandbox_campus_zone_file ZONE}
    printf '%s\n' "$SANDBOX_DIR/campus/$z.zone"
}

# ---------------------------------------------------------------------------
# sandbox_campus_reload ZONE
#   `rndc reload ZONE` on the campus primary (10 s timeout).  The control
#   port (tcp/953) is exempt from sandbox_blackhole, so this also works
#   while the campus is blackholed.  Sets SANDBOX_LAST_RELOAD_MS (epoch ms
#   at which the reload command was issued).
# ---------------------------------------------------------------------------
sandbox_campus_reload() {
    local z=${1:?usage: sandbox_campus_reload ZONE}
    SANDBOX_LAST_RELOAD_MS=$(_sandbox_now_ms)
    timeout 10 rndc -c "$SANDBOX_DIR/campus/rndc.conf" reload "$z" \
        >>"$SANDBOX_DIR/campus/rndc.out" 2>&1 || {
        tail -n 3 "$SANDBOX_DIR/campus/rndc.out" >&2
        _sandbox_die "rndc reload $z failed"
        return 1
    }
}

# _sandbox_campus_loaded_serial ZONE -- serial the primary has loaded, via
# `rndc zonestatus` (works even while the campus is blackholed).
_sandbox_campus_loaded_serial() {
    timeout 10 rndc -c "$SANDBOX_DIR/campus/rndc.conf" zonestatus "$1" 2>/dev/null |
        awk '$1 == "serial:" { print $2; exit }'
}

# ---------------------------------------------------------------------------
# sandbox_campus_bump_serial ZONE NEWSERIAL
#   Rewrite the SOA serial in the campus primary's copy of ZONE to NEWSERIAL
#   (the zone file is re-emitted in canonical one-RR-per-line form by
#   named-compilezone, so any master-file layout works), then
#   `rndc reload ZONE` and wait until the primary has loaded it (checked
#   with `rndc zonestatus`; up to 3 reload attempts of 5 s each).  The
#   rewritten file loses its comments.
#   The primary then NOTIFYs the secondaries.
# ---------------------------------------------------------------------------
sandbox_campus_bump_serial() {
    local z=${1:?usage: sandbox_campus_bump_serial ZONE NEWSERIAL}
    local new=${2:?usage: sandbox_campus_bump_serial ZONE NEWSERIAL}
    [[ "$new" =~ ^[0-9]+$ ]] || { _sandbox_die "bad serial '$new'"; return 1; }
    local f tmp
    f=$(sandbox_campus_zone_file "$z")
    tmp="$f.new"
    named-compilezone -q -D -s full -o - "$z" "$f" 2>"$tmp.err" |
        awk -v s="$new" '$4 == "SOA" && !done { $7 = s; done = 1 } { print }' >"$tmp" || {
        cat "$tmp.err" >&2
        _sandbox_die "cannot rewrite $f"
        return 1
    }
    grep -q . "$tmp" || { cat "$tmp.err" >&2; _sandbox_die "cannot rewrite $f"; return 1; }
    mv "$tmp" "$f"
    rm -f "$tmp.err"
    local i
    for i in 1 2 3; do
        sandbox_campus_reload "$z" || true
        local deadline=$(( $(_sandbox_now_ms) + 5000 ))
        while (( $(_sandbox_now_ms) < deadline )); do
            [[ "$(_sandbox_campus_loaded_serial "$z")" == "$new" ]] && return 0
            sleep 0.05
        done
        # BIND skips a reload when the file's mtime is not newer than the
        # last load; make sure it is and try again.
        touch "$f"
    done
    _sandbox_tail campus 40
    _sandbox_die "campus primary did not load $z serial $new"
    return 1
}

# _sandbox_bind_secondary_conf NAME ADDR PRIMARIES [KEYFILE] -- write
# named.conf (KEYFILE: included, for a `key` in PRIMARIES)
_sandbox_bind_secondary_conf() {
    local name=$1 addr=$2 prims=$3 kf=${4:-} d="$SANDBOX_DIR/$1" z inc=""
    [[ -n "$kf" ]] && inc="include \"$kf\";"
    cat >"$d/named.conf" <<EOF
// $name: BIND secondary -- generated by scripts/lib/sandbox.sh
$inc
controls { };
options {
    directory "$d";
    pid-file "$d/named.pid";
    session-keyfile "$d/session.key";
    managed-keys-directory "$d";
    listen-on port 53 { $addr; };
    listen-on-v6 { none; };
    query-source address $addr;
    transfer-source $addr;
    notify-source $addr;
    recursion no;
    dnssec-validation no;
    allow-query { any; };
    allow-transfer { any; };
    notify no;
};
logging {
    channel sandbox_log {
        file "$d/named.log";
        severity info;
        print-time yes;
        print-category yes;
        print-severity yes;
    };
    category default { sandbox_log; };
    category lame-servers { null; };
};
EOF
    for z in "${SANDBOX_ZONES[@]}"; do
        cat >>"$d/named.conf" <<EOF
zone "$z" {
    type secondary;
    primaries { $prims };
    file "$d/$z.zone";
    masterfile-format text;
};
EOF
    done
}

# ---------------------------------------------------------------------------
# sandbox_start_bind_secondary NAME ADDR ORDER [KEYFILE]
#   Start a BIND 9 secondary called NAME listening only on ADDR:53, carrying
#   both zones, with query/transfer/notify source ADDR, `controls { }`,
#   `notify no`, transfers allowed to anyone (for sandbox_axfr).
#   ORDER selects the primaries list:
#     dr-first      primaries { 127.0.0.20; 127.0.0.10; };
#     campus-first  primaries { 127.0.0.10; 127.0.0.20; };
#     campus-only   primaries { 127.0.0.10; };     (ns0, lives on campus)
#   With KEYFILE (a BIND key file) the DR primary is listed as
#   `127.0.0.20 key "NAME"`: SOA checks and transfers to drdns are signed,
#   and drdns's signed NOTIFYs verify; the campus stays unsigned.
#   Files and log in $SANDBOX_DIR/NAME/.  Returns once it listens.
# ---------------------------------------------------------------------------
sandbox_start_bind_secondary() {
    local name=${1:?usage: sandbox_start_bind_secondary NAME ADDR ORDER [KEYFILE]}
    local addr=${2:?usage: sandbox_start_bind_secondary NAME ADDR ORDER [KEYFILE]}
    local order=${3:?usage: sandbox_start_bind_secondary NAME ADDR ORDER [KEYFILE]}
    local kf=${4:-}
    _sandbox_need_init || return 1
    local c dr prims d="$SANDBOX_DIR/$name" drk
    c=$(_sandbox_campus_addr)
    dr=$(_sandbox_dr_addr)
    drk=$dr
    if [[ -n "$kf" ]]; then
        local kname
        kname=$(_sandbox_tsig_field "$kf" name)
        [[ -n "$kname" ]] || { _sandbox_die "cannot parse TSIG key file $kf"; return 1; }
        drk="$dr key \"$kname\""
    fi
    case $order in
        dr-first)     prims="$drk; $c; " ;;
        campus-first) prims="$c; $drk; " ;;
        campus-only)  prims="$c; " ;;
        *) _sandbox_die "ORDER must be dr-first, campus-first or campus-only (got '$order')"; return 1 ;;
    esac
    mkdir -p "$d"
    _sandbox_add_addr "$addr"
    _sandbox_bind_secondary_conf "$name" "$addr" "$prims" "$kf"
    named-checkconf "$d/named.conf" >"$d/checkconf.out" 2>&1 || {
        cat "$d/checkconf.out" >&2
        _sandbox_die "$name named.conf invalid"
        return 1
    }
    _sandbox_spawn "$name" "$d/named.log" named -f -n 1 -c "$d/named.conf"
    _sandbox_wait_listen "$name" "$addr" || return 1
    _sandbox_log "$name: BIND secondary ($order) up on $addr (pid ${SANDBOX_PID[$name]})"
}

# _sandbox_tsig_field KEYFILE name|algorithm|secret -- read one field of a
# BIND-format `key "NAME" { algorithm ALG; secret "B64"; };` file.
_sandbox_tsig_field() {
    local f=$1 what=$2
    case $what in
        name) sed -n 's/^[[:space:]]*key[[:space:]]*"\{0,1\}\([^"[:space:]{]*\)"\{0,1\}[[:space:]]*{.*/\1/p' "$f" ;;
        algorithm) sed -n 's/.*algorithm[[:space:]]*"\{0,1\}\([^";[:space:]]*\)"\{0,1\}[[:space:]]*;.*/\1/p' "$f" ;;
        secret) sed -n 's/.*secret[[:space:]]*"\([^"]*\)".*/\1/p' "$f" ;;
    esac | head -n1
}

# ---------------------------------------------------------------------------
# sandbox_start_nsd_secondary NAME ADDR
#   Start an NSD 4.6 secondary called NAME on ADDR:53 carrying both zones.
#   Primaries, in this order:
#     request-xfr: AXFR 127.0.0.20 drdns-nsd   (DR primary, TSIG, AXFR only)
#     request-xfr: 127.0.0.10 NOKEY            (campus, IXFR/AXFR)
#   with matching allow-notify lines.  The TSIG key comes from
#   $SANDBOX_NSD_KEYFILE (BIND format, converted to an NSD key: clause).
#   outgoing-interface ADDR, no remote control, runs as root in the
#   foreground (`nsd -d`), database "" (NSD 4.6: no nsd.db; zones are kept
#   in memory and written to zone files), all state in $SANDBOX_DIR/NAME/.
#   provide-xfr to 127.0.0.0/8 (for sandbox_axfr).  Returns once it listens.
# ---------------------------------------------------------------------------
sandbox_start_nsd_secondary() {
    local name=${1:?usage: sandbox_start_nsd_secondary NAME ADDR}
    local addr=${2:?usage: sandbox_start_nsd_secondary NAME ADDR}
    _sandbox_need_init || return 1
    local c dr z d="$SANDBOX_DIR/$name"
    c=$(_sandbox_campus_addr)
    dr=$(_sandbox_dr_addr)
    mkdir -p "$d/xfr"
    _sandbox_add_addr "$addr"
    local kf kname kalg ksecret
    kf=$(_sandbox_nsd_keyfile)
    kname=$(_sandbox_tsig_field "$kf" name)
    kalg=$(_sandbox_tsig_field "$kf" algorithm)
    ksecret=$(_sandbox_tsig_field "$kf" secret)
    [[ -n "$kname" && -n "$kalg" && -n "$ksecret" ]] || {
        _sandbox_die "cannot parse TSIG key file $kf"
        return 1
    }
    cat >"$d/nsd.conf" <<EOF
# $name: NSD secondary -- generated by scripts/lib/sandbox.sh
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
    xfrdir: "$d/xfr"
    logfile: "$d/nsd.log"
    cookie-secret-file: "$d/cookiesecrets.txt"
    server-count: 1
    verbosity: 2
    hide-version: yes

remote-control:
    control-enable: no

key:
    name: "$kname"
    algorithm: $kalg
    secret: "$ksecret"

pattern:
    name: "sandbox-secondary"
    request-xfr: AXFR $dr $kname
    allow-notify: $dr $kname
    request-xfr: $c NOKEY
    allow-notify: $c NOKEY
    outgoing-interface: $addr
    provide-xfr: 127.0.0.0/8 NOKEY
EOF
    for z in "${SANDBOX_ZONES[@]}"; do
        cat >>"$d/nsd.conf" <<EOF

zone:
    name: "$z"
    zonefile: "$d/$z.zone"
    include-pattern: "sandbox-secondary"
EOF
    done
    nsd-checkconf "$d/nsd.conf" >"$d/checkconf.out" 2>&1 || {
        cat "$d/checkconf.out" >&2
        _sandbox_die "$name nsd.conf invalid"
        return 1
    }
    _sandbox_spawn "$name" "$d/nsd.log" nsd -d -c "$d/nsd.conf"
    _sandbox_wait_listen "$name" "$addr" || return 1
    _sandbox_log "$name: NSD secondary up on $addr (pid ${SANDBOX_PID[$name]})"
}

# ---------------------------------------------------------------------------
# sandbox_start_knot_secondary NAME ADDR [ORDER] [KEYFILE]
#   Start a Knot DNS 3.2 secondary called NAME on ADDR@53 carrying both
#   zones.  Remotes `campus` (127.0.0.10) and `dr` (127.0.0.20), both with
#   `via: ADDR`; ORDER dr-first (default) gives `master: [dr, campus]`,
#   campus-first gives `master: [campus, dr]`.  ACL: NOTIFY from both
#   primaries, AXFR to 127.0.0.0/8.  With KEYFILE (a BIND key file) the
#   remote `dr` has `key:` (SOA checks and transfers to drdns are signed)
#   and NOTIFY from drdns must be signed with it.  Storage, journal and rundir in
#   $SANDBOX_DIR/NAME/, runs as root in the foreground, logs to stderr
#   (captured in knot.log).  Returns once it listens.
# ---------------------------------------------------------------------------
sandbox_start_knot_secondary() {
    local name=${1:?usage: sandbox_start_knot_secondary NAME ADDR [ORDER] [KEYFILE]}
    local addr=${2:?usage: sandbox_start_knot_secondary NAME ADDR [ORDER] [KEYFILE]}
    local order=${3:-dr-first} kf=${4:-}
    _sandbox_need_init || return 1
    local c dr masters z d="$SANDBOX_DIR/$name"
    c=$(_sandbox_campus_addr)
    dr=$(_sandbox_dr_addr)
    local keysec="" drkey="" drnotify="    address: [$c, $dr]"
    if [[ -n "$kf" ]]; then
        local kname kalg ksecret
        kname=$(_sandbox_tsig_field "$kf" name)
        kalg=$(_sandbox_tsig_field "$kf" algorithm)
        ksecret=$(_sandbox_tsig_field "$kf" secret)
        [[ -n "$kname" && -n "$kalg" && -n "$ksecret" ]] || {
            _sandbox_die "cannot parse TSIG key file $kf"
            return 1
        }
        keysec="key:
  - id: $kname
    algorithm: $kalg
    secret: $ksecret

"
        drkey="
    key: $kname"
        drnotify="    address: [$c]
    action: notify
  - id: dr_notify
    address: [$dr]
    key: $kname"
    fi
    case $order in
        dr-first)     masters="[dr, campus]" ;;
        campus-first) masters="[campus, dr]" ;;
        *) _sandbox_die "ORDER must be dr-first or campus-first (got '$order')"; return 1 ;;
    esac
    mkdir -p "$d/run" "$d/zones"
    _sandbox_add_addr "$addr"
    cat >"$d/knot.conf" <<EOF
# $name: Knot DNS secondary -- generated by scripts/lib/sandbox.sh
server:
    rundir: "$d/run"
    pidfile: "$d/run/knot.pid"
    listen: $addr@53
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1

log:
  - target: stderr
    any: info

database:
    storage: "$d"

control:
    listen: "$d/run/knot.sock"

${keysec}remote:
  - id: campus
    address: $c@53
    via: $addr
  - id: dr
    address: $dr@53
    via: $addr$drkey

acl:
  - id: primaries_notify
$drnotify
    action: notify
  - id: local_transfer
    address: 127.0.0.0/8
    action: transfer

template:
  - id: default
    storage: "$d/zones"
    file: "%s.zone"
    master: $masters
    acl: [primaries_notify, ${kf:+dr_notify, }local_transfer]

zone:
EOF
    for z in "${SANDBOX_ZONES[@]}"; do
        printf '  - domain: %s\n' "$z" >>"$d/knot.conf"
    done
    knotc -c "$d/knot.conf" conf-check >"$d/checkconf.out" 2>&1 || {
        cat "$d/checkconf.out" >&2
        _sandbox_die "$name knot.conf invalid"
        return 1
    }
    _sandbox_spawn "$name" "$d/knot.log" knotd -c "$d/knot.conf"
    _sandbox_wait_listen "$name" "$addr" || return 1
    _sandbox_log "$name: Knot secondary ($order) up on $addr (pid ${SANDBOX_PID[$name]})"
}

# ---------------------------------------------------------------------------
# sandbox_start_pdns_secondary NAME ADDR [ORDER]
#   Start a PowerDNS Authoritative 4.7 secondary called NAME on ADDR:53
#   carrying both zones, with the gsqlite3 backend: a fresh database
#   $SANDBOX_DIR/NAME/pdns.sqlite3 made from the package's schema, and
#   `secondary=yes`.  Each zone is made with
#     pdnsutil create-secondary-zone ZONE 127.0.0.20 127.0.0.10
#   (ORDER dr-first, the default; campus-first swaps them) and gets the TSIG
#   key of $SANDBOX_PDNS_KEYFILE with `pdnsutil import-tsig-key` and
#   `pdnsutil activate-tsig-key ZONE KEY secondary` (AXFR-MASTER-TSIG: its
#   transfers are signed, from every primary of the zone).
#   query-local-address ADDR: its SOA checks and transfers come from ADDR.
#   Freshness checks every second (xfr-cycle-interval=1); once it listens
#   each zone is fetched from the campus (`pdns_control retrieve ZONE
#   127.0.0.10`).  On a NOTIFY PowerDNS asks only the server that sent it;
#   its other checks go to a primary it picks at random.
#   Runs as root in the foreground (--daemon=no --guardian=no); config,
#   control socket and pid file in $SANDBOX_DIR/NAME/, log (stderr) in
#   pdns.log.  Transfers allowed to 127.0.0.0/8 (for sandbox_axfr).
#   Returns once it listens.
# ---------------------------------------------------------------------------
sandbox_start_pdns_secondary() {
    local name=${1:?usage: sandbox_start_pdns_secondary NAME ADDR [ORDER]}
    local addr=${2:?usage: sandbox_start_pdns_secondary NAME ADDR [ORDER]}
    local order=${3:-dr-first}
    _sandbox_need_init || return 1
    local c dr prims z d="$SANDBOX_DIR/$name" schema
    c=$(_sandbox_campus_addr)
    dr=$(_sandbox_dr_addr)
    case $order in
        dr-first)     prims="$dr $c" ;;
        campus-first) prims="$c $dr" ;;
        *) _sandbox_die "ORDER must be dr-first or campus-first (got '$order')"; return 1 ;;
    esac
    schema=${SANDBOX_PDNS_SCHEMA:-/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql}
    [[ -r "$schema" ]] || schema=/usr/share/doc/pdns-backend-sqlite3/schema.sqlite3.sql
    [[ -r "$schema" ]] || {
        _sandbox_die "no PowerDNS sqlite3 schema (install pdns-backend-sqlite3)"
        return 1
    }
    local kf kname kalg ksecret
    kf=$(_sandbox_pdns_keyfile)
    kname=$(_sandbox_tsig_field "$kf" name)
    kalg=$(_sandbox_tsig_field "$kf" algorithm)
    ksecret=$(_sandbox_tsig_field "$kf" secret)
    [[ -n "$kname" && -n "$kalg" && -n "$ksecret" ]] || {
        _sandbox_die "cannot parse TSIG key file $kf"
        return 1
    }
    rm -rf "$d"
    mkdir -p "$d"
    _sandbox_add_addr "$addr"
    cat >"$d/pdns.conf" <<PDNSCONF
# $name: PowerDNS secondary -- generated by scripts/lib/sandbox.sh
launch=gsqlite3
gsqlite3-database=$d/pdns.sqlite3
gsqlite3-dnssec=yes
secondary=yes
local-address=$addr
local-port=53
query-local-address=$addr
xfr-cycle-interval=1
allow-axfr-ips=127.0.0.0/8
daemon=no
guardian=no
socket-dir=$d
disable-syslog=yes
log-dns-details=yes
loglevel=6
security-poll-suffix=
distributor-threads=1
receiver-threads=1
PDNSCONF
    sqlite3 "$d/pdns.sqlite3" <"$schema" || {
        _sandbox_die "$name: cannot create $d/pdns.sqlite3"
        return 1
    }
    local out="$d/pdnsutil.out"
    pdnsutil --config-dir="$d" import-tsig-key "$kname" "$kalg" "$ksecret" >>"$out" 2>&1 || {
        cat "$out" >&2
        _sandbox_die "$name: pdnsutil import-tsig-key failed"
        return 1
    }
    for z in "${SANDBOX_ZONES[@]}"; do
        # shellcheck disable=SC2086
        pdnsutil --config-dir="$d" create-secondary-zone "$z" $prims >>"$out" 2>&1 &&
            pdnsutil --config-dir="$d" activate-tsig-key "$z" "$kname" secondary >>"$out" 2>&1 || {
            cat "$out" >&2
            _sandbox_die "$name: pdnsutil cannot set up $z"
            return 1
        }
    done
    _sandbox_spawn "$name" "$d/pdns.log" pdns_server --config-dir="$d"
    _sandbox_wait_listen "$name" "$addr" || return 1
    # PowerDNS sends each freshness check to a primary it picks at random;
    # the DR primary is not up yet, and every check that goes there waits
    # out a timeout.  Fetch the zones from the campus now instead.
    for z in "${SANDBOX_ZONES[@]}"; do
        pdns_control --config-dir="$d" retrieve "$z" "$c" >>"$out" 2>&1 || true
    done
    _sandbox_log "$name: PowerDNS secondary ($order) up on $addr (pid ${SANDBOX_PID[$name]})"
}

# ---------------------------------------------------------------------------
# sandbox_restart_pdns_secondary NAME ADDR XFR_CYCLE
#   Restart the PowerDNS secondary NAME (started by
#   sandbox_start_pdns_secondary) on its database, with
#   xfr-cycle-interval=XFR_CYCLE (PowerDNS's default is 60).  Its zones,
#   keys and serials are kept.  Returns once it listens.
# ---------------------------------------------------------------------------
sandbox_restart_pdns_secondary() {
    local usage="usage: sandbox_restart_pdns_secondary NAME ADDR XFR_CYCLE"
    local name=${1:?$usage} addr=${2:?$usage} cycle=${3:?$usage}
    local d="$SANDBOX_DIR/$name"
    [[ "$cycle" =~ ^[0-9]+$ ]] || { _sandbox_die "bad xfr-cycle-interval '$cycle'"; return 1; }
    [[ -f "$d/pdns.conf" ]] || { _sandbox_die "$name is not a PowerDNS secondary"; return 1; }
    sandbox_stop "$name" || return 1
    sed -i "s/^xfr-cycle-interval=.*/xfr-cycle-interval=$cycle/" "$d/pdns.conf"
    _sandbox_spawn "$name" "$d/pdns.log" pdns_server --config-dir="$d"
    _sandbox_wait_listen "$name" "$addr" || return 1
    _sandbox_log "$name: PowerDNS secondary restarted on $addr, xfr-cycle-interval=$cycle (pid ${SANDBOX_PID[$name]})"
}

# ---------------------------------------------------------------------------
# sandbox_start_all
#   Start the standard topology (see the top of this file): campus primary
#   127.0.0.10, ns0 127.0.0.15 (BIND, campus-only), ns1 127.0.0.11 (BIND,
#   dr-first, TSIG), ns2 127.0.0.12 (NSD, TSIG), ns3 127.0.0.13 (Knot,
#   dr-first, TSIG), ns4 127.0.0.14 (BIND, campus-first, no key), ns5
#   127.0.0.16 (PowerDNS, dr-first, TSIG); then wait (SANDBOX_START_TIMEOUT,
#   default 30 s) until every secondary serves the campus serial of both
#   zones.  Returns 1 (after dumping logs) on failure.
# ---------------------------------------------------------------------------
sandbox_start_all() {
    _sandbox_need_init || return 1
    local t0 c
    t0=$(_sandbox_now_ms)
    c=$(_sandbox_campus_addr)
    sandbox_start_campus_primary || return 1
    sandbox_start_bind_secondary ns0 127.0.0.15 campus-only || return 1
    sandbox_start_bind_secondary ns1 127.0.0.11 dr-first "$(_sandbox_bind_keyfile)" || return 1
    sandbox_start_nsd_secondary  ns2 127.0.0.12 || return 1
    sandbox_start_knot_secondary ns3 127.0.0.13 dr-first "$(_sandbox_knot_keyfile)" || return 1
    sandbox_start_bind_secondary ns4 127.0.0.14 campus-first || return 1
    sandbox_start_pdns_secondary ns5 127.0.0.16 dr-first || return 1
    local z a s timeout=${SANDBOX_START_TIMEOUT:-30}
    local deadline=$(( $(_sandbox_now_ms) + timeout * 1000 ))
    for z in "${SANDBOX_ZONES[@]}"; do
        s=$(sandbox_soa_serial "$c" "$z")
        for a in "${SANDBOX_SECONDARIES[@]}"; do
            local left=$(( (deadline - $(_sandbox_now_ms) + 999) / 1000 ))
            (( left > 0 )) || left=1
            sandbox_wait_serial "$a" "$z" "$s" "$left" || {
                _sandbox_log "$a does not serve $z serial $s after ${timeout}s (serves '$(sandbox_soa_serial "$a" "$z")')"
                sandbox_dump_logs 40
                return 1
            }
        done
    done
    _sandbox_log "all secondaries loaded the campus zones in $(( $(_sandbox_now_ms) - t0 )) ms"
}

# _sandbox_nft_setup -- create the blackhole table once.  With
# SANDBOX_BLACKHOLE_SILENT=1 the output chain drops nothing (see
# sandbox_blackhole).
_sandbox_nft_setup() {
    nft list table inet drdns_sandbox >/dev/null 2>&1 && return 0
    local outdrop="ip daddr @blackholed drop
        ip saddr @blackholed drop"
    [[ "${SANDBOX_BLACKHOLE_SILENT:-1}" == 1 ]] &&
        outdrop="# SANDBOX_BLACKHOLE_SILENT=1: drop in the input hook only"
    nft -f - <<EOF
table inet drdns_sandbox {
    set blackholed {
        type ipv4_addr
    }
    chain output {
        type filter hook output priority 0; policy accept;
        # keep the campus rndc control channel usable while blackholed
        ip daddr @blackholed tcp dport $_SANDBOX_RNDC_PORT accept
        ip saddr @blackholed tcp sport $_SANDBOX_RNDC_PORT accept
        $outdrop
    }
    chain input {
        type filter hook input priority 0; policy accept;
        ip daddr @blackholed tcp dport $_SANDBOX_RNDC_PORT accept
        ip saddr @blackholed tcp sport $_SANDBOX_RNDC_PORT accept
        ip daddr @blackholed drop
        ip saddr @blackholed drop
    }
}
EOF
}

# ---------------------------------------------------------------------------
# sandbox_blackhole ADDR...
#   Silently DROP (not reject) every packet to or from each ADDR, in nft
#   table `inet drdns_sandbox` (output + input hooks).  UDP queries time
#   out and TCP connects hang.  Exception: TCP port 953 (the campus rndc
#   control channel) stays open so tests can still manage the primary.
#   By default (SANDBOX_BLACKHOLE_SILENT=1) packets are dropped only in the
#   input hook, as a dead host across a network behaves.  With
#   SANDBOX_BLACKHOLE_SILENT=0 they are dropped in the output hook too.
#   A drop in the output hook makes a local sendto() to ADDR fail at once
#   with EPERM, so a daemon that checks send errors sees the failure
#   immediately instead of waiting for a timeout: BIND 9.18 logs "refresh:
#   failure trying primary ...: operation canceled" and moves to its next
#   primary in well under a second.  A dead host across a real network
#   gives no such error, which is why input-only is the default: nothing is
#   reported to the sender and packets just vanish
#   (a campus-first BIND secondary then needs ~61 s after a NOTIFY from
#   the DR primary: 30 s of SOA retries plus a 30 s TCP transfer timeout
#   to the dead campus).  The mode is fixed when the nft table is created,
#   i.e. by the first sandbox_blackhole after sandbox_init.
# ---------------------------------------------------------------------------
sandbox_blackhole() {
    (( $# )) || { _sandbox_die "usage: sandbox_blackhole ADDR..."; return 1; }
    _sandbox_nft_setup
    local a
    for a in "$@"; do
        nft add element inet drdns_sandbox blackholed "{ $a }"
    done
}

# ---------------------------------------------------------------------------
# sandbox_unblackhole ADDR...
#   Undo sandbox_blackhole for each ADDR (ignores addresses that are not
#   blackholed).
# ---------------------------------------------------------------------------
sandbox_unblackhole() {
    (( $# )) || { _sandbox_die "usage: sandbox_unblackhole ADDR..."; return 1; }
    nft list table inet drdns_sandbox >/dev/null 2>&1 || return 0
    local a
    for a in "$@"; do
        nft delete element inet drdns_sandbox blackholed "{ $a }" 2>/dev/null || true
    done
}

# ---------------------------------------------------------------------------
# sandbox_drop_notify FROM TO
#   Silently drop the NOTIFYs FROM sends to TO:53 (input hook of table
#   `inet drdns_sandbox`): UDP messages with opcode NOTIFY (4), and every
#   TCP connection from FROM to TO:53 (a primary only connects to a
#   secondary's port 53 to notify it).  Everything else between the two
#   passes: TO's own SOA queries and transfers from FROM still work.  The
#   rules carry counters (see sandbox_notify_drops) and the comment
#   "notify FROM>TO".
# ---------------------------------------------------------------------------
sandbox_drop_notify() {
    local from=${1:?usage: sandbox_drop_notify FROM TO} to=${2:?usage: sandbox_drop_notify FROM TO}
    _sandbox_nft_setup
    # DNS flags byte 1 = transport header bit 80 (8 bytes UDP header, 2 ID
    # bytes); opcode = its bits 1-4: (byte & 0x78) == 4 << 3
    nft add rule inet drdns_sandbox input ip saddr "$from" ip daddr "$to" udp dport 53 \
        '@th,80,8' '&' 0x78 == 0x20 counter drop comment "\"notify $from>$to\""
    nft add rule inet drdns_sandbox input ip saddr "$from" ip daddr "$to" tcp dport 53 \
        counter drop comment "\"notify $from>$to\""
}

# _sandbox_notify_rules FROM TO -- print "HANDLE PACKETS" of each rule
# sandbox_drop_notify FROM TO added.
_sandbox_notify_rules() {
    nft -a list chain inet drdns_sandbox input 2>/dev/null |
        awk -v c="\"notify $1>$2\"" 'index($0, "comment " c) {
            p = 0; h = ""
            for (i = 1; i < NF; i++) {
                if ($i == "packets") p = $(i + 1)
                if ($i == "handle") h = $(i + 1)
            }
            if ($NF ~ /^[0-9]+$/ && $(NF - 1) == "handle") h = $NF
            print h, p
        }'
}

# ---------------------------------------------------------------------------
# sandbox_notify_drops FROM TO
#   Print how many packets the rules of sandbox_drop_notify FROM TO have
#   dropped (0 if there are none).
# ---------------------------------------------------------------------------
sandbox_notify_drops() {
    local from=${1:?usage: sandbox_notify_drops FROM TO} to=${2:?usage: sandbox_notify_drops FROM TO}
    _sandbox_notify_rules "$from" "$to" | awk '{ n += $2 } END { print n + 0 }'
}

# ---------------------------------------------------------------------------
# sandbox_undrop_notify FROM TO
#   Remove the rules of sandbox_drop_notify FROM TO (none: nothing to do).
# ---------------------------------------------------------------------------
sandbox_undrop_notify() {
    local from=${1:?usage: sandbox_undrop_notify FROM TO} to=${2:?usage: sandbox_undrop_notify FROM TO}
    local h p
    while read -r h p; do
        [[ -n "$h" ]] && nft delete rule inet drdns_sandbox input handle "$h"
    done < <(_sandbox_notify_rules "$from" "$to")
    return 0
}

# ---------------------------------------------------------------------------
# sandbox_soa_serial ADDR ZONE
#   Print the SOA serial ADDR serves for ZONE (one UDP query, 1 s timeout,
#   no retries), or nothing if there is no valid answer.  Always returns 0.
# ---------------------------------------------------------------------------
sandbox_soa_serial() {
    local addr=${1:?usage: sandbox_soa_serial ADDR ZONE} z=${2:?usage: sandbox_soa_serial ADDR ZONE}
    dig +short +norec +time=1 +tries=1 @"$addr" "$z" SOA 2>/dev/null |
        awk 'NF == 7 && $3 ~ /^[0-9]+$/ { print $3; exit }' || true
}

# ---------------------------------------------------------------------------
# sandbox_wait_serial ADDR ZONE SERIAL TIMEOUT_SECONDS
#   Poll (every 0.2 s) until ADDR serves SERIAL for ZONE.  Returns 0 when
#   it does, 1 after TIMEOUT_SECONDS.  Sets SANDBOX_WAITED_MS to the time
#   spent waiting.
# ---------------------------------------------------------------------------
sandbox_wait_serial() {
    local usage="usage: sandbox_wait_serial ADDR ZONE SERIAL TIMEOUT_SECONDS"
    local addr=${1:?$usage} z=${2:?$usage} want=${3:?$usage} timeout=${4:?$usage}
    local t0 deadline
    t0=$(_sandbox_now_ms)
    deadline=$(( t0 + timeout * 1000 ))
    SANDBOX_WAITED_MS=0
    while :; do
        if [[ "$(sandbox_soa_serial "$addr" "$z")" == "$want" ]]; then
            SANDBOX_WAITED_MS=$(( $(_sandbox_now_ms) - t0 ))
            return 0
        fi
        (( $(_sandbox_now_ms) < deadline )) || break
        sleep 0.2
    done
    SANDBOX_WAITED_MS=$(( $(_sandbox_now_ms) - t0 ))
    return 1
}

# ---------------------------------------------------------------------------
# sandbox_axfr ADDR ZONE
#   AXFR ZONE from ADDR and print it in a canonical, comparable form: one
#   RR per line, "owner TTL CLASS TYPE RDATA" with single spaces, owner and
#   domain names in RDATA lowercased (ldns-read-zone -c), the SOA exactly
#   once, lines sorted with LC_ALL=C.  Returns 1 (printing nothing) if the
#   transfer fails.  Timeout: 5 s.
# ---------------------------------------------------------------------------
sandbox_axfr() {
    local addr=${1:?usage: sandbox_axfr ADDR ZONE} z=${2:?usage: sandbox_axfr ADDR ZONE}
    local raw
    raw=$(dig +onesoa +nocmd +nostats +noall +answer +time=5 +tries=1 \
              @"$addr" "$z" AXFR 2>/dev/null) || return 1
    # A failed transfer prints "; Transfer failed." or nothing at all.
    awk '!/^;/ && $4 == "SOA" { ok = 1 } END { exit !ok }' <<<"$raw" || return 1
    grep -v '^;' <<<"$raw" |
        ldns-read-zone -c /dev/stdin 2>/dev/null |
        awk '!/^;/ && NF { $1 = $1; print }' |
        LC_ALL=C sort -u
}

# ---------------------------------------------------------------------------
# sandbox_dump_logs [LINES]
#   Print (to stderr) the last LINES (default 30) lines of every daemon log.
# ---------------------------------------------------------------------------
sandbox_dump_logs() {
    local n=${1:-30} name
    for name in "${!SANDBOX_LOG[@]}"; do
        _sandbox_tail "$name" "$n"
    done
}
