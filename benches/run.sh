#!/usr/bin/env bash
# The benchmark method of benches/README.md, as a script anyone can rerun.
#
#   bash benches/run.sh                 every scenario, 3 rounds
#   ROUNDS=1 DURATION=3 bash benches/run.sh ws-echo http
#
# The server under test is pinned to core 0 and the generator to core 1
# (taskset). Each pushwire scenario runs right after its baseline (a minimal
# mio raw-TCP echo server, a canned-response mio HTTP server), so a ratio
# compares two runs made under the same conditions. Machines are noisy:
# the script repeats every pair ROUNDS times and reports each ratio's
# median and range. Every run is bounded (warm-up + DURATION seconds).
# Raw JSON lines go to target/bench/results.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
FANOUT=${FANOUT:-10000}
# Subscribers in the two-node (Redis) comparison.
FANOUT_REDIS=${FANOUT_REDIS:-2000}
scenarios=("$@")
[ ${#scenarios[@]} -eq 0 ] && scenarios=(ws-echo ws-echo-16k http wrk fanout longpoll idle redis deflate token)
# Publishes per second in the compression comparison (1 KiB JSON each).
DEFLATE_RATE=${DEFLATE_RATE:-100}

command -v taskset >/dev/null || { echo "taskset (util-linux) is needed"; exit 2; }
cargo build --release --quiet --bin pushwire --bin pushwire-bench
BENCH=target/release/pushwire-bench
OUT=target/bench
mkdir -p "$OUT"
RESULTS=$OUT/results.jsonl
: >"$RESULTS"
# 10,000 subscribers need 10,000 descriptors in each process.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

SERVER_PID=""
stop_server() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=""
    fi
}
NODE_A=""
REDIS_PID=""
stop_redis_pair() {
    for p in $NODE_A $REDIS_PID; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    NODE_A=""
    REDIS_PID=""
}
trap 'stop_server; stop_redis_pair' EXIT

# CPU seconds (user + system) a process has used so far.
cpu_s() { awk '{ printf "%.2f", ($14 + $15) / 100 }' "/proc/$1/stat" 2>/dev/null || echo 0; }

# start_server NAME CMD...: starts CMD on core 0, sets PORT and SERVER_PID.
start_server() {
    local name=$1
    shift
    taskset -c 0 "$@" >"$OUT/$name.out" 2>"$OUT/$name.err" &
    SERVER_PID=$!
    for _ in $(seq 100); do
        if grep -q "listening on http://" "$OUT/$name.out" 2>/dev/null; then
            PORT=$(head -1 "$OUT/$name.out" | sed 's/.*://')
            return 0
        fi
        sleep 0.05
    done
    echo "$name did not start"; cat "$OUT/$name.err"; exit 1
}

# run LABEL ARGS...: one generator run on core 1, its JSON line kept.
run() {
    local label=$1
    shift
    local line
    line=$(taskset -c 1 "$BENCH" "$@" --target "127.0.0.1:$PORT" --server-pid "$SERVER_PID" \
        --duration "$DURATION" --warmup "$WARMUP" --json | tail -1)
    echo "{\"label\":\"$label\",\"round\":$round,\"result\":$line}" >>"$RESULTS"
    echo "  $label: $line"
}

pushwire() { start_server pushwire target/release/pushwire --addr 127.0.0.1:0 --max-conns 30000 "$@"; }

for round in $(seq "$ROUNDS"); do
    echo "round $round of $ROUNDS"
    for s in "${scenarios[@]}"; do
        case "$s" in
            ws-echo)
                start_server raw "$BENCH" serve-raw-echo; run tcp-echo-64 tcp-echo --conns 100 --inflight 16 --size 64; stop_server
                pushwire; run ws-echo-64 ws-echo --conns 100 --inflight 16 --size 64; stop_server ;;
            ws-echo-16k)
                start_server raw "$BENCH" serve-raw-echo; run tcp-echo-16k tcp-echo --conns 100 --inflight 16 --size 16384; stop_server
                pushwire --max-message-bytes 1048576; run ws-echo-16k ws-echo --conns 100 --inflight 16 --size 16384; stop_server ;;
            http)
                start_server canned "$BENCH" serve-canned; run canned http-keepalive --conns 100 --inflight 1; stop_server
                pushwire
                curl -s -X POST "http://127.0.0.1:$PORT/submit?duration_ms=600000" >/dev/null
                run shortpoll http-keepalive --conns 100 --inflight 1 --path "/checkstatus?jobId=job:1"
                stop_server ;;
            wrk)
                # The issue's own method for keep-alive short polls: wrk with
                # 100 connections (Debian's wrk), against the canned server
                # and against pushwire, one after the other.
                command -v wrk >/dev/null || { echo "wrk is needed for this scenario (apt-get install wrk)"; exit 2; }
                start_server canned "$BENCH" serve-canned
                c=$(taskset -c 1 wrk -t1 -c100 -d"${DURATION}s" "http://127.0.0.1:$PORT/" | awk '/Requests\/sec/ {print $2}')
                stop_server
                pushwire
                curl -s -X POST "http://127.0.0.1:$PORT/submit?duration_ms=600000" >/dev/null
                p=$(taskset -c 1 wrk -t1 -c100 -d"${DURATION}s" "http://127.0.0.1:$PORT/checkstatus?jobId=job:1" | awk '/Requests\/sec/ {print $2}')
                stop_server
                echo "{\"label\":\"wrk-canned\",\"round\":$round,\"result\":{\"throughput\":$c}}" >>"$RESULTS"
                echo "{\"label\":\"wrk-shortpoll\",\"round\":$round,\"result\":{\"throughput\":$p}}" >>"$RESULTS"
                echo "  wrk: canned $c requests/s, pushwire /checkstatus $p requests/s" ;;
            token)
                # The same channel workloads on a server with --token-secret,
                # each right after its run without: a token is verified once
                # per request or connection, never per message.
                SECRET=bench-secret-0123456789abcdef-0123456789
                TOKEN=$(target/release/pushwire token --subscribe '*' --publish '*' --ttl 0 --token-secret "$SECRET")
                pushwire; curl -s -d seed "http://127.0.0.1:$PORT/channels/bench" >/dev/null
                run poll-open http-keepalive --conns 100 --inflight 1 --path "/channels/bench/poll?after=0&timeout=0"; stop_server
                pushwire --token-secret "$SECRET"; curl -s -H "Authorization: Bearer $TOKEN" -d seed "http://127.0.0.1:$PORT/channels/bench" >/dev/null
                run poll-token http-keepalive --conns 100 --inflight 1 --path "/channels/bench/poll?after=0&timeout=0" --token "$TOKEN"; stop_server
                pushwire; run fanout-open ws-fanout --conns "$FANOUT" --rate 100 --size 64; stop_server
                pushwire --token-secret "$SECRET"; run fanout-token ws-fanout --conns "$FANOUT" --rate 100 --size 64 --token "$TOKEN"; stop_server ;;
            fanout)
                pushwire; run ws-fanout ws-fanout --conns "$FANOUT" --rate 100 --size 64; stop_server
                pushwire; run sse-fanout sse-fanout --conns "$FANOUT" --rate 100 --size 64; stop_server ;;
            longpoll)
                pushwire; run longpoll-fanout longpoll-fanout --conns 1000 --rate 1000 --size 64; stop_server ;;
            redis)
                # One node, then two nodes on one Redis: subscribers on B,
                # the publisher on A. The difference is the backplane's cost.
                pushwire; run fanout-1node ws-fanout --conns "$FANOUT_REDIS" --rate 100 --size 64; stop_server
                command -v redis-server >/dev/null || { echo "redis-server is needed for this scenario"; exit 2; }
                RPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
                redis-server --port "$RPORT" --save "" --appendonly no >"$OUT/redis.log" 2>&1 &
                REDIS_PID=$!
                sleep 0.3
                taskset -c 0 target/release/pushwire --addr 127.0.0.1:0 --redis "redis://127.0.0.1:$RPORT" >"$OUT/nodea.out" 2>/dev/null &
                NODE_A=$!
                sleep 0.3
                APORT=$(head -1 "$OUT/nodea.out" | sed 's/.*://')
                pushwire --redis "redis://127.0.0.1:$RPORT"
                r0=$(cpu_s "$REDIS_PID"); a0=$(cpu_s "$NODE_A")
                run fanout-2nodes ws-fanout --conns "$FANOUT_REDIS" --rate 100 --size 64 --publish-target "127.0.0.1:$APORT"
                awk -v r="$(cpu_s "$REDIS_PID")" -v r0="$r0" -v a="$(cpu_s "$NODE_A")" -v a0="$a0" \
                    'BEGIN { printf "  redis-server used %.2f s of CPU, node A %.2f s\n", r - r0, a - a0 }' 
                stop_server; stop_redis_pair ;;
            deflate)
                # permessage-deflate against no compression, same messages
                # (1 KiB of JSON records), each pair back to back.
                pushwire; run fanout-1k ws-fanout --conns "$FANOUT" --rate "$DEFLATE_RATE" --size 1024 --payload json; stop_server
                pushwire; run fanout-1k-deflate ws-fanout --conns "$FANOUT" --rate "$DEFLATE_RATE" --size 1024 --payload json --deflate; stop_server
                pushwire; run ws-echo-1k ws-echo --conns 100 --inflight 16 --size 1024 --payload json; stop_server
                pushwire; run ws-echo-1k-deflate ws-echo --conns 100 --inflight 16 --size 1024 --payload json --deflate; stop_server
                pushwire; run idle-ws-deflate idle --conns 10000 --idle-kind ws --deflate; stop_server ;;
            idle)
                pushwire; run idle-ws idle --conns 10000 --idle-kind ws; stop_server
                pushwire; run idle-sse idle --conns 10000 --idle-kind sse; stop_server
                pushwire; run idle-longpoll idle --conns 10000 --idle-kind longpoll; stop_server ;;
            *) echo "unknown scenario $s"; exit 2 ;;
        esac
    done
done

python3 - "$RESULTS" <<'PY'
import json, sys, statistics
rows = [json.loads(l) for l in open(sys.argv[1])]
by = {}
for r in rows:
    by.setdefault(r["label"], []).append(r["result"])
def tput(label):
    return [x.get("throughput", 0) for x in by.get(label, [])]
def spread(v):
    return f"{statistics.median(v):.2f} ({min(v):.2f}-{max(v):.2f})" if v else "-"
print()
print("ratios to the baseline, median (range) over rounds:")
for a, b, name in [("ws-echo-64", "tcp-echo-64", "WebSocket echo 64 B / raw TCP echo"),
                   ("ws-echo-16k", "tcp-echo-16k", "WebSocket echo 16 KiB / raw TCP echo"),
                   ("shortpoll", "canned", "keep-alive short polls / canned mio HTTP"),
                   ("wrk-shortpoll", "wrk-canned", "keep-alive short polls / canned mio HTTP, with wrk"),
                   ("ws-echo-1k-deflate", "ws-echo-1k", "WebSocket echo 1 KiB JSON, compressed / uncompressed"),
                   ("poll-token", "poll-open", "keep-alive channel polls, with a token / without")]:
    pa, pb = tput(a), tput(b)
    if pa and pb:
        print(f"  {name}: {spread([x / y for x, y in zip(pa, pb) if y])}")
p99 = lambda label: [x.get("p99_us") or 0 for x in by.get(label, [])]
for a, b, name in [("fanout-1k-deflate", "fanout-1k", "fan-out p99, 1 KiB JSON, compressed / uncompressed"),
                   ("fanout-token", "fanout-open", "fan-out p99, with tokens / without")]:
    pa, pb = p99(a), p99(b)
    if pa and pb:
        print(f"  {name}: {spread([x / y for x, y in zip(pa, pb) if y])}")
print()
print("per scenario (median over rounds):")
for label, res in by.items():
    med = lambda k: statistics.median([x.get(k) or 0 for x in res])
    print(f"  {label:16} throughput {med('throughput'):>12,.0f}/s  p50 {med('p50_us'):>8,.0f} us"
          f"  p99 {med('p99_us'):>9,.0f} us  p999 {med('p999_us'):>9,.0f} us"
          f"  delivered {med('delivered') if res[0].get('delivered') is not None else '-'}"
          f"  server cpu {med('server_cpu'):.0f}%"
          + (f"  rss/conn {med('rss_per_conn_kb'):.2f} kB" if res[0].get('rss_per_conn_kb') is not None else ""))
PY
