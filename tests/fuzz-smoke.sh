#!/usr/bin/env bash
# Fuzz smoke test: every cargo-fuzz target in fuzz/, for a bounded time.
#
#   tests/fuzz-smoke.sh [TARGET...]     default: every target (cargo fuzz list)
#
# For each target it first replays the saved crash inputs in
# fuzz/regressions/<target>/ (a fixed bug must stay fixed), then fuzzes for
# FUZZ_SECONDS starting from the seeds in fuzz/corpus/<target>/, and prints
# one summary line. It fails (exit status 1) if any target crashes, panics,
# breaks one of its assertions, hangs (FUZZ_TIMEOUT per input) or does not
# build. A crashing input is left in fuzz/artifacts/<target>/.
#
# Environment:
#   FUZZ_SECONDS   seconds of fuzzing per target (default 20)
#   FUZZ_JOBS      targets fuzzed at once (default 2, one per core: with
#                  10 targets that is about 100 s, plus a 1.5 min build)
#   FUZZ_TIMEOUT   seconds one input may take before it counts as a hang
#                  (default 10)
#   FUZZ_WORK      where the corpora grown by this run go (default
#                  fuzz/corpus-work, ignored by git; the seeds are never
#                  written to)
#
# Works from a clean clone: installs cargo-fuzz if it is missing, and sets
# RUSTC_BOOTSTRAP=1 because cargo fuzz passes nightly-only rustc flags
# (-Zsanitizer=address) and this machine's toolchain is stable (see
# fuzz/README.md).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

FUZZ_SECONDS=${FUZZ_SECONDS:-20}
FUZZ_TIMEOUT=${FUZZ_TIMEOUT:-10}
FUZZ_WORK=${FUZZ_WORK:-$ROOT/fuzz/corpus-work}
FUZZ_JOBS=${FUZZ_JOBS:-2}
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz-smoke: installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo fuzz list)
fi
if [ "${#targets[@]}" -eq 0 ]; then
  echo "fuzz-smoke: no fuzz targets found" >&2
  exit 1
fi

echo "fuzz-smoke: building ${#targets[@]} targets"
build_start=$SECONDS
build_log=$(mktemp "${TMPDIR:-/tmp}/fuzz-smoke-build.XXXXXX")
if ! cargo fuzz build >"$build_log" 2>&1; then
  tail -n 40 "$build_log" >&2
  echo "fuzz-smoke: the fuzz targets do not build" >&2
  echo "fuzz-smoke: 0 passed, ${#targets[@]} failed"
  exit 1
fi
rm -f "$build_log"
echo "fuzz-smoke: built in $((SECONDS - build_start)) s; ${FUZZ_SECONDS} s per target, $FUZZ_JOBS at a time"

# One target: replay its regressions, fuzz it, write its summary line to
# $results/$t.line and "ok" or "FAIL" to $results/$t.status.
run_target() {
  local t=$1
  local log="$results/$t.log"
  local status=ok detail=""

  # 1. Replay the saved crash inputs: each file is run once.
  local regressions=()
  shopt -s nullglob
  regressions=("$ROOT/fuzz/regressions/$t"/*)
  shopt -u nullglob
  if [ "${#regressions[@]}" -gt 0 ]; then
    if ! cargo fuzz run "$t" "${regressions[@]}" -- -timeout="$FUZZ_TIMEOUT" >"$log" 2>&1; then
      status=FAIL
      detail="a saved input fails again: $(grep -E '^Running: ' "$log" | tail -n 1 | sed "s|^Running: $ROOT/||")"
      detail+=" -- $(grep -m1 -A1 -E 'panicked at' "$log" | tail -n 1 || true)"
      detail+="$(grep -m1 -E '^==[0-9]+==ERROR' "$log" || true)"
    fi
  fi

  # 2. Fuzz from the seeds; new inputs go to the scratch corpus.
  local execs=- rate=- cov=- corp=- last artifact seeds=()
  if [ "$status" = ok ]; then
    mkdir -p "$FUZZ_WORK/$t"
    [ -d "$ROOT/fuzz/corpus/$t" ] && seeds=("$ROOT/fuzz/corpus/$t")
    if ! cargo fuzz run "$t" "$FUZZ_WORK/$t" "${seeds[@]}" -- \
      -max_total_time="$FUZZ_SECONDS" -timeout="$FUZZ_TIMEOUT" \
      -print_final_stats=1 >"$log" 2>&1; then
      status=FAIL
      artifact=$(grep -m1 -oE 'Test unit written to [^ ]+' "$log" | sed 's/Test unit written to //' || true)
      detail="$(grep -m1 -A1 -E 'panicked at' "$log" | tail -n 1 || true)"
      [ -z "$detail" ] && detail="$(grep -m1 -E 'ERROR: |SUMMARY: ' "$log" || true)"
      [ -n "$artifact" ] && detail+=" -- input: ${artifact#"$ROOT"/}"
    fi
    execs=$(grep -m1 -oE 'stat::number_of_executed_units: +[0-9]+' "$log" | grep -oE '[0-9]+$' || echo -)
    rate=$(grep -m1 -oE 'stat::average_exec_per_sec: +[0-9]+' "$log" | grep -oE '[0-9]+$' || echo -)
    last=$(grep -E '^#[0-9]+' "$log" | tail -n 1 || true)
    cov=$(grep -oE 'cov: [0-9]+' <<<"$last" | grep -oE '[0-9]+' || echo -)
    corp=$(grep -oE 'corp: [0-9]+' <<<"$last" | grep -oE '[0-9]+' || echo -)
  fi

  {
    printf 'fuzz-smoke: %-14s %-4s %4ss %10s execs %7s/s  cov %5s  corpus %5s\n' \
      "$t" "$status" "$FUZZ_SECONDS" "$execs" "$rate" "$cov" "$corp"
    if [ "$status" != ok ]; then
      echo "fuzz-smoke:   $t: $detail"
      echo "fuzz-smoke:   full output: $log"
      echo "fuzz-smoke:   reproduce: RUSTC_BOOTSTRAP=1 cargo fuzz run $t <input>; minimize it" \
        "(cargo fuzz tmin $t <input>) and save it in fuzz/regressions/$t/"
    fi
  } >"$results/$t.line"
  echo "$status" >"$results/$t.status"
}

results=$(mktemp -d "${TMPDIR:-/tmp}/fuzz-smoke.XXXXXX")
for t in "${targets[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$FUZZ_JOBS" ]; do
    wait -n || true
  done
  run_target "$t" &
done
wait

passed=0
failed=0
failures=()
for t in "${targets[@]}"; do
  cat "$results/$t.line" 2>/dev/null || echo "fuzz-smoke: $t: no result"
  if [ "$(cat "$results/$t.status" 2>/dev/null)" = ok ]; then
    passed=$((passed + 1))
    rm -f "$results/$t.log"
  else
    failed=$((failed + 1))
    failures+=("$t")
  fi
done

[ "$failed" -gt 0 ] && echo "fuzz-smoke: failing targets: ${failures[*]} (logs in $results)"
[ "$failed" -eq 0 ] && rm -rf "$results"
echo "fuzz-smoke: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
