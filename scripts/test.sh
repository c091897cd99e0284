#!/usr/bin/env bash
# Run every drdns test from a fresh Debian 12 machine:
#   1. install what is needed (scripts/deps.sh), build with -Wall -Wextra -Werror,
#      and check the code format (.clang-format);
#   2. unit tests (cmocka);
#   3. the unit tests again under ASan+UBSan, then under valgrind (no leaks);
#   4. integration tests: real BIND, NSD, Knot and PowerDNS in a private network
#      namespace.
# Ends with one line "N passed, N failed".  Exit status 0 only if nothing failed.
# Options: --unit-only skips the integration tests (quick local loop).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

UNIT_ONLY=0
[ "${1:-}" = "--unit-only" ] && UNIT_ONLY=1

passed=0
failed=0
failures=()

step_fail() { failed=$((failed + 1)); failures+=("$1"); echo "FAIL: $1"; }

# Count the results of one meson test run from its JSON log.
count_log() {
  local log=$1 label=$2
  if [ ! -f "$log" ]; then step_fail "$label (no test log)"; return; fi
  local counts
  counts=$(python3 - "$log" "$label" <<'PY'
import json, sys
ok = bad = 0
names = []
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r["result"] in ("OK", "EXPECTEDFAIL", "SKIP"):
        ok += 1
    else:
        bad += 1
        names.append(sys.argv[2] + ":" + r["name"])
print(ok, bad, " ".join(names))
PY
)
  local ok bad names
  read -r ok bad names <<<"$counts"
  passed=$((passed + ok))
  failed=$((failed + bad))
  [ -n "$names" ] && failures+=($names)
  echo "== $label: $ok passed, $bad failed"
}

run_meson_tests() { # build_dir label logbase [meson test args...]
  local dir=$1 label=$2 logbase=$3
  shift 3
  rm -f "$dir/meson-logs/$logbase"*.json
  meson test -C "$dir" --print-errorlogs --logbase "$logbase" "$@"
  # meson appends the wrapper's name to the log base when --wrapper is used
  local log
  log=$(ls -t "$dir/meson-logs/$logbase"*.json 2>/dev/null | head -n 1)
  count_log "${log:-$dir/meson-logs/$logbase.json}" "$label"
}

echo "== installing dependencies"
bash scripts/deps.sh || { step_fail "dependencies"; echo "$passed passed, $failed failed"; exit 1; }

echo "== build (-Wall -Wextra -Werror)"
if BUILD_DIR=build bash scripts/build.sh; then
  passed=$((passed + 1))
else
  step_fail "build"
  echo "$passed passed, $failed failed"
  exit 1
fi

echo "== code format (.clang-format)"
unformatted=$(git ls-files '*.c' '*.h' 2>/dev/null | while read -r f; do
  clang-format --dry-run --Werror "$f" >/dev/null 2>&1 || echo "$f"
done)
if [ -z "$unformatted" ]; then
  passed=$((passed + 1))
else
  step_fail "format: run clang-format -i on: $(echo $unformatted)"
fi

run_meson_tests build unit unit --suite unit

echo "== build with AddressSanitizer + UndefinedBehaviorSanitizer"
if [ ! -f build-asan/build.ninja ]; then
  meson setup build-asan -Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false \
    -Dbuildtype=debug >/dev/null
fi
if ninja -C build-asan >/dev/null; then
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    run_meson_tests build-asan asan unit-asan --suite unit
else
  step_fail "asan build"
fi

echo "== unit tests under valgrind"
run_meson_tests build valgrind unit-valgrind --suite unit --timeout-multiplier 10 \
  --wrapper "valgrind --quiet --leak-check=full --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect --error-exitcode=99 --track-fds=no"

if [ "$UNIT_ONLY" -eq 0 ]; then
  echo "== integration tests (real BIND, NSD, Knot, PowerDNS in a private network namespace)"
  run_meson_tests build integration integration --suite integration --num-processes 1
fi

if [ ${#failures[@]} -gt 0 ]; then
  echo "failed:"
  printf '  %s\n' "${failures[@]}"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
