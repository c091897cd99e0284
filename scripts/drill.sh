#!/usr/bin/env bash
# scripts/drill.sh -- a DR drill as one runbook step.
#
#   scripts/drill.sh [-s SOCKET] [-z ZONE] [-w SECONDS] [-o DIR] [-r REASON]
#
#   1. the read-only pre-flight (drdnsctl drill --preflight-only); on failure
#      stop here: nothing was changed;
#   2. the live drill on the drill zone (drill.zone in drdns.conf, or -z):
#      drdns promotes that zone alone, every off-campus secondary follows,
#      drdns hands it back, and production serials are checked;
#   3. both JSON reports are kept in DIR (default ./drill-reports) as
#      drill-<UTC time>-preflight.json and drill-<UTC time>-live.json, as
#      evidence for the audit;
#   4. one line says PASS or FAIL, and the exit status is drdnsctl's:
#      0 pass, 3 a secondary did not follow (or production moved), 4 the
#      pre-flight failed (nothing changed), 1 error, 2 usage.
#
# Run it as a user that may use drdnsd's control socket.  Environment:
# DRDNSCTL names the drdnsctl binary (default: drdnsctl on PATH, else the one
# in build/ next to this script).  See drdnsctl(8), "A DR drill".
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
socket=() zone=() wait=() reason="DR drill (scripts/drill.sh)" outdir=./drill-reports

usage() {
    sed -n '3,4p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}
while getopts "s:z:w:o:r:h" opt; do
    case $opt in
    s) socket=(-s "$OPTARG") ;;
    z) zone=(--zone "$OPTARG") ;;
    w) wait=(--wait "$OPTARG") ;;
    o) outdir=$OPTARG ;;
    r) reason=$OPTARG ;;
    *) usage ;;
    esac
done
shift $((OPTIND - 1))
[ $# -eq 0 ] || usage

ctl=${DRDNSCTL:-}
if [ -z "$ctl" ]; then
    if command -v drdnsctl >/dev/null; then ctl=drdnsctl; else ctl=$here/../build/drdnsctl; fi
fi
mkdir -p "$outdir" || exit 1
stamp=$(date -u +%Y%m%dT%H%M%SZ)
pre=$outdir/drill-$stamp-preflight.json
live=$outdir/drill-$stamp-live.json

# field FILE KEY: a top-level string field of drdnsctl's indented JSON reply.
field() {
    sed -n "s/^  \"$2\": \"\\(.*\\)\",\\{0,1\\}\$/\\1/p" "$1" | head -n 1
}

"$ctl" "${socket[@]}" --json drill --preflight-only "${zone[@]}" >"$pre"
rc=$?
if [ "$rc" -ne 0 ]; then
    echo "drill: pre-flight FAILED (exit $rc): $(field "$pre" message)$(field "$pre" error)" >&2
    echo "drill: report: $pre" >&2
    exit "$rc"
fi
echo "drill: pre-flight passed ($pre)"

"$ctl" "${socket[@]}" --json drill "${zone[@]}" "${wait[@]}" --reason "$reason" >"$live"
rc=$?
verdict=$(field "$live" verdict)
msg="$(field "$live" message)$(field "$live" error)"
if [ "$rc" -eq 0 ]; then
    echo "drill: PASS: $msg"
else
    echo "drill: FAIL (exit $rc, verdict ${verdict:-none}): $msg" >&2
fi
echo "drill: report: $live"
exit "$rc"
