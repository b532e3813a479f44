#!/usr/bin/env bash
# Sets up the machine and runs the whole test suite:
#   1. warnings-as-errors build: unit + privileged integration tests (namespaces, TUN; needs root)
#   2. ASan+UBSan build: unit tests
#   3. clang libFuzzer build: every fuzz target for a bounded time
# Exits non-zero on any failure. APPL_SKIP_SETUP=1 skips the apt-get step (for quick re-runs).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

[[ ${APPL_SKIP_SETUP:-0} == 1 ]] || scripts/setup.sh

passed=0
failed=0
status=0
# Runs ctest with the given arguments, adds its counts to the totals.
run_ctest() {
  local dir=$1
  shift
  local log
  log=$(mktemp)
  if ! (cd "$dir" && ctest --output-on-failure --no-tests=error "$@") | tee "$log"; then
    status=1
  fi
  local line
  line=$(grep -E 'tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -1 || true)
  if [[ $line =~ ([0-9]+)\ tests?\ failed\ out\ of\ ([0-9]+) ]]; then
    failed=$((failed + BASH_REMATCH[1]))
    passed=$((passed + BASH_REMATCH[2] - BASH_REMATCH[1]))
  else
    status=1
  fi
  rm -f "$log"
}

echo "== build (warnings as errors)"
scripts/build.sh build/ci -DCMAKE_BUILD_TYPE=RelWithDebInfo -DAPPL_WERROR=ON
if [[ $(id -u) -eq 0 ]]; then
  run_ctest build/ci
else
  echo "test: not root, so the privileged tests cannot run; run as root for the full suite" >&2
  status=1
  run_ctest build/ci -LE privileged
fi

echo "== unit tests under ASan+UBSan"
scripts/build.sh build/asan -DCMAKE_BUILD_TYPE=Debug -DAPPL_WERROR=ON -DAPPL_SANITIZE=ON
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  run_ctest build/asan -L unit

echo "== fuzz targets (bounded runs)"
CC=clang CXX=clang++ scripts/build.sh build/fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DAPPL_FUZZ=ON -DAPPL_WERROR=ON
run_ctest build/fuzz -L fuzz

echo "test: ${passed} passed, ${failed} failed"
exit $status
