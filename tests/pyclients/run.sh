#!/usr/bin/env bash
# Independent compressing WebSocket clients (Python `websockets`, which
# offers permessage-deflate by default) against pushwire: echo, chat and a
# channel subscriber (tests/pyclients/deflate_clients.py).
#
#   bash tests/pyclients/run.sh       prints "N passed, M failed"
#
# Makes its own venv (PYCLIENTS_VENV, default /tmp/pushwire-pyclients-venv)
# with a pinned `websockets` from PyPI the first time, so a fresh machine
# needs nothing installed by hand. PUSHWIRE_BIN=path skips the build.
set -euo pipefail
cd "$(dirname "$0")/../.."

VENV=${PYCLIENTS_VENV:-/tmp/pushwire-pyclients-venv}
WEBSOCKETS_VERSION=17.4
if ! "$VENV/bin/python" -c "import websockets, sys; sys.exit(websockets.__version__ != '$WEBSOCKETS_VERSION')" 2>/dev/null; then
    echo "pyclients: making $VENV with websockets $WEBSOCKETS_VERSION"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q "websockets==$WEBSOCKETS_VERSION"
fi

BIN=${PUSHWIRE_BIN:-}
if [ -z "$BIN" ]; then
    cargo build --release --quiet --bin pushwire
    BIN=${CARGO_TARGET_DIR:-target}/release/pushwire
fi
WORK=$(mktemp -d /tmp/pushwire-pyclients.XXXXXX)
"$BIN" --addr 127.0.0.1:0 >"$WORK/server.out" 2>"$WORK/server.err" &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$WORK"' EXIT
PORT=
for _ in $(seq 100); do
    PORT=$(sed -n '1s#^listening on http://127\.0\.0\.1:\([0-9]*\)$#\1#p' "$WORK/server.out" 2>/dev/null)
    [ -n "$PORT" ] && break
    sleep 0.05
done
[ -n "$PORT" ] || { echo "pyclients: the server did not start"; cat "$WORK/server.err"; exit 1; }
"$VENV/bin/python" tests/pyclients/deflate_clients.py "$PORT"
