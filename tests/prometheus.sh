#!/usr/bin/env bash
# tests/prometheus.sh: do Prometheus' own tools accept pushwire's /metrics?
#
# 1. installs Debian's `prometheus` package if promtool or prometheus is
#    missing (as root; `apt-get update` only when the install needs it);
# 2. starts the server on a free loopback port and publishes one message;
# 3. runs `promtool check metrics` on a live GET /metrics (the format and
#    the naming lints), and checks its Content-Type;
# 4. starts a real Prometheus on another free loopback port with a scrape
#    config for that one target (scrape_interval 1s), and waits (at most
#    30 s) until its HTTP API reports `up == 1` for it and a non-zero
#    `pushwire_messages_published_total`.
#
# Usage: tests/prometheus.sh [SERVER_BINARY]   (default target/release/pushwire;
#        prints "prometheus: N passed, M failed", exits 1 if any failed)
# KEEP=1 keeps the work directory (server output, metrics, Prometheus log).

set -u
cd "$(dirname "$0")/.."

BIN=${1:-target/release/pushwire}
WAIT_SECONDS=30
WORK=$(mktemp -d /tmp/pushwire-prometheus.XXXXXX)
SERVER_PID=
PROM_PID=

STAGE=prometheus
# shellcheck source=tests/lib.sh
. tests/lib.sh
cleanup() { finish "$PROM_PID" "$SERVER_PID"; }
trap cleanup EXIT

# A free TCP port on 127.0.0.1 (the kernel picks it; there is a small race
# until Prometheus binds it, which its start-up check below would show).
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null ||
        echo $((20000 + RANDOM % 40000))
}

# ---- 1. promtool and prometheus ---------------------------------------------------
if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then
    echo "installing prometheus..."
    export DEBIAN_FRONTEND=noninteractive
    apt_need prometheus
fi
echo "using $(promtool --version 2>&1 | head -n 1)"

# ---- 2. the server -----------------------------------------------------------------
[ -x "$BIN" ] || die "no server binary at $BIN (cargo build --release, or pass a path)"
"$BIN" --addr 127.0.0.1:0 >"$WORK/server.out" 2>"$WORK/server.err" &
SERVER_PID=$!
ADDR=
for _ in $(seq 100); do
    ADDR=$(sed -n '1s#^listening on http://\(127\.0\.0\.1:[0-9]*\)$#\1#p' "$WORK/server.out" 2>/dev/null)
    [ -n "$ADDR" ] && break
    kill -0 "$SERVER_PID" 2>/dev/null || die "the server exited: $(cat "$WORK/server.err")"
    sleep 0.05
done
[ -n "$ADDR" ] || die "the server did not print 'listening on http://127.0.0.1:PORT'"
echo "server on $ADDR"

if curl -fsS -o /dev/null -X POST --data hi "http://$ADDR/channels/m" 2>"$WORK/publish.err"; then
    ok "a message is published on channel m"
else
    fail "publishing on channel m" "$(cat "$WORK/publish.err")"
fi

# ---- 3. promtool on a live /metrics ------------------------------------------------
if curl -fsS -D "$WORK/metrics.head" -o "$WORK/metrics.txt" "http://$ADDR/metrics" 2>"$WORK/metrics.err"; then
    ok "GET /metrics answers 2xx"
else
    fail "GET /metrics" "$(cat "$WORK/metrics.err")"
fi
CTYPE=$(tr -d '\r' <"$WORK/metrics.head" 2>/dev/null | sed -n 's/^[Cc]ontent-[Tt]ype: *//p' | tail -n 1)
case "$CTYPE" in
    text/plain*version=0.0.4*) ok "Content-Type is $CTYPE" ;;
    *) fail "Content-Type of /metrics" "got '$CTYPE', want text/plain; version=0.0.4" ;;
esac
if promtool check metrics <"$WORK/metrics.txt" >"$WORK/promtool.out" 2>&1; then
    ok "promtool check metrics accepts /metrics"
else
    fail "promtool check metrics" "$(head -n 20 "$WORK/promtool.out")"
fi
for name in pushwire_messages_published_total pushwire_delivery_seconds_bucket; do
    if grep -q "^$name[ {]" "$WORK/metrics.txt" 2>/dev/null; then
        ok "/metrics has $name"
    else
        fail "/metrics has no $name"
    fi
done

# ---- 4. a real Prometheus scrapes it -----------------------------------------------
PROM_PORT=$(free_port)
cat >"$WORK/prometheus.yml" <<EOF
# Only this one target, on loopback.
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: pushwire
    static_configs:
      - targets: ['$ADDR']
EOF
prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/tsdb" \
    --web.listen-address="127.0.0.1:$PROM_PORT" >"$WORK/prometheus.log" 2>&1 &
PROM_PID=$!
API="http://127.0.0.1:$PROM_PORT/api/v1/query"

# True when the PromQL query $1 returns at least one series. A comparison
# like `up == 1` drops the series that fail it, so a non-empty result is
# the answer. The API answers JSON: {"status":"success","data":{...,
# "result":[{"metric":{...},"value":[<time>,"<value>"]}]}}.
has_result() {
    curl -fsS -G --data-urlencode "query=$1" "$API" 2>/dev/null | grep -q '"result":\[{'
}

UP=no
PUBLISHED=no
deadline=$((SECONDS + WAIT_SECONDS))
while [ "$SECONDS" -lt "$deadline" ]; do
    kill -0 "$PROM_PID" 2>/dev/null || break
    [ "$UP" = no ] && has_result "up{job=\"pushwire\"} == 1" && UP=yes
    [ "$PUBLISHED" = no ] && has_result 'pushwire_messages_published_total > 0' && PUBLISHED=yes
    [ "$UP" = yes ] && [ "$PUBLISHED" = yes ] && break
    sleep 0.5
done
if ! kill -0 "$PROM_PID" 2>/dev/null; then
    fail "prometheus is running" "$(tail -n 5 "$WORK/prometheus.log")"
fi
if [ "$UP" = yes ]; then
    ok "Prometheus scraped pushwire: up == 1"
else
    fail "Prometheus reports up == 1 within ${WAIT_SECONDS}s" \
        "$(curl -fsS "http://127.0.0.1:$PROM_PORT/api/v1/targets" 2>&1 | head -c 600)"
fi
if [ "$PUBLISHED" = yes ]; then
    ok "Prometheus has pushwire_messages_published_total > 0"
else
    fail "Prometheus has pushwire_messages_published_total > 0 within ${WAIT_SECONDS}s"
fi

echo "prometheus: $PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
