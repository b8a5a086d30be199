#!/usr/bin/env bash
# Autobahn|Testsuite (fuzzingclient) against pushwire's /echo endpoint,
# with permessage-deflate: all 517 cases, sections 1-10 (framing, UTF-8,
# closing) and 12-13 (compression, RFC 7692), in one run of about 10
# minutes on 2 cores.
#
#   .ci/autobahn.sh [CASES]      CASES: run.sh case patterns, default all
#
# Expects the shared tooling beside the repository (../shared/autobahn), as
# in CI where the repository is a fresh clone next to shared/. Fails (exit
# status != 0) when run.sh fails (a FAILED or missing case, a FAILED/UNCLEAN
# close handshake: --strict-close), or when any case is NON-STRICT or
# UNIMPLEMENTED (a compression case the server declined).
# Environment: AUTOBAHN_OUT (report directory, default /tmp/autobahn-report).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
AUTOBAHN=$ROOT/../shared/autobahn
OUT=${AUTOBAHN_OUT:-/tmp/autobahn-report}
CASES=${1:-*}
cd "$ROOT"

WORK=$(mktemp -d /tmp/pushwire-autobahn.XXXXXX)
PID=""
cleanup() {
  if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
    kill "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# 1. the tool (idempotent; its output is shown only when it fails)
if ! "$AUTOBAHN/setup.sh" >"$WORK/setup.log" 2>&1; then
  cat "$WORK/setup.log" >&2
  echo "autobahn.sh: $AUTOBAHN/setup.sh failed" >&2
  exit 1
fi

# 2. the server, on a free port read from its first stdout line
cargo build --release --quiet
target/release/pushwire --addr 127.0.0.1:0 --max-message-bytes 16777216 \
  >"$WORK/server.out" 2>"$WORK/server.err" &
PID=$!
LINE=""
for _ in $(seq 1 100); do
  if [ "$(wc -l <"$WORK/server.out")" -ge 1 ]; then
    LINE=$(head -n 1 "$WORK/server.out")
    break
  fi
  if ! kill -0 "$PID" 2>/dev/null; then break; fi
  sleep 0.1
done
case "$LINE" in
  "listening on http://"*:*) PORT=${LINE##*:} ;;
  *)
    echo "autobahn.sh: pushwire did not announce its address (first line: '$LINE')" >&2
    tail -n 20 "$WORK/server.err" >&2 || true
    exit 1 ;;
esac

# 3. the suite (--deflate: 12.* and 13.* too; the server runs with its
# default --deflate on)
set +e
"$AUTOBAHN/run.sh" --deflate --strict-close --out "$OUT" "ws://127.0.0.1:$PORT/echo" "$CASES" | tee "$WORK/summary.txt"
RC=${PIPESTATUS[0]}
set -e

if ! kill -0 "$PID" 2>/dev/null; then
  echo "autobahn.sh: pushwire exited during the run" >&2
  tail -n 20 "$WORK/server.err" >&2 || true
  RC=1
fi

# 4. stricter than run.sh: no NON-STRICT case either, and no UNIMPLEMENTED
# one (what a server that declines compression gets in 12.*/13.*)
if ! grep -qx "NON-STRICT cases: none" "$WORK/summary.txt"; then
  echo "autobahn.sh: NON-STRICT cases are not accepted" >&2
  [ "$RC" != 0 ] || RC=1
fi
if ! grep -qx "unimplemented: 0" "$WORK/summary.txt"; then
  echo "autobahn.sh: UNIMPLEMENTED cases are not accepted" >&2
  [ "$RC" != 0 ] || RC=1
fi
if [ "$RC" != 0 ]; then
  echo "autobahn.sh: FAILED (status $RC); report in $OUT/index.html" >&2
else
  echo "autobahn.sh: ok"
fi
exit "$RC"
