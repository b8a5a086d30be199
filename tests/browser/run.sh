#!/usr/bin/env bash
# The demo page and the client library in a real browser: installs what is
# missing (Debian's chromium, playwright-core from npm), builds and starts
# pushwire on a free port, drives every panel of / with demo.spec.mjs, saves
# target/demo.png, stops the server; then client.spec.mjs and
# client-token.spec.mjs put pushwire.js through a fault-injecting proxy
# (each starts the servers it needs from the same binary). Exits non-zero
# when a check fails.
#
#   bash tests/browser/run.sh            # SKIP_BUILD=1 to reuse target/release
#                                        # PUSHWIRE_BIN=path: that binary, no build
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
export DEBIAN_FRONTEND=noninteractive

apt_install() {
  if [ "$(id -u)" != 0 ]; then
    echo "browser: need root to apt-get install $*" >&2
    exit 1
  fi
  # A stale package list fails the install: refresh it once and retry.
  local log; log="$(mktemp)"
  if ! apt-get install -y --no-install-recommends "$@" >"$log" 2>&1; then
    if ! { apt-get update && apt-get install -y --no-install-recommends "$@"; } >"$log" 2>&1; then
      echo "browser: apt-get install $* failed:" >&2; tail -n 20 "$log" >&2; rm -f "$log"; exit 1
    fi
  fi
  rm -f "$log"
}

[ -x /usr/bin/chromium ] || { echo "browser: installing chromium"; apt_install chromium; }
command -v node >/dev/null && command -v npm >/dev/null || { echo "browser: installing node"; apt_install nodejs npm; }
if [ ! -f "$here/node_modules/playwright-core/package.json" ]; then
  echo "browser: installing playwright-core"
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
fi

cd "$root"
bin="${PUSHWIRE_BIN:-$root/target/release/pushwire}"
[ -n "${SKIP_BUILD:-}${PUSHWIRE_BIN:-}" ] || cargo build --release --quiet

tmp="$(mktemp -d)"
server=""
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

"$bin" --addr 127.0.0.1:0 >"$tmp/out" 2>"$tmp/err" &
server=$!
for _ in $(seq 100); do
  [ -s "$tmp/out" ] && break
  kill -0 "$server" 2>/dev/null || { echo "browser: the server exited:" >&2; cat "$tmp/err" >&2; exit 1; }
  sleep 0.1
done
url="$(head -n1 "$tmp/out" | sed -n 's/^listening on //p')"
[ -n "$url" ] || { echo "browser: no 'listening on' line from the server" >&2; exit 1; }
echo "browser: server at $url"

status=0
timeout 150 node "$here/demo.spec.mjs" "$url" "${SCREENSHOT:-$root/target/demo.png}" || status=$?
if [ "$status" != 0 ]; then
  echo "browser: last lines of the server's stderr:" >&2
  tail -n 20 "$tmp/err" >&2 || true
fi
kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; server=""

# pushwire.js (docs/api.md section 3) under faults; the token spec runs against
# the server's own tokens once its --help lists --token-secret, and until
# then plays section 8 at its proxy (TOKENS=real insists on the server).
timeout 90 node "$here/client.spec.mjs" "$bin" || status=1
timeout 60 node "$here/client-token.spec.mjs" "$bin" || status=1
exit "$status"
