#!/usr/bin/env bash
# The one test command (README "Test"), and what CI runs through .ci/run.
#
# Each stage installs what it needs when it is missing (Python venv for
# Autobahn, Debian's chromium and tshark, cargo-fuzz), so a clean clone on
# a fresh machine passes with nothing installed by hand.
#
#   bash tests/all.sh            everything
#   bash tests/all.sh cargo      only the stages named (cargo, prometheus,
#                                run, autobahn, browser, tshark, docs, fuzz)
set -uo pipefail
cd "$(dirname "$0")/.."

stages=("$@")
[ ${#stages[@]} -eq 0 ] && stages=(cargo prometheus run autobahn browser tshark docs fuzz)

# The README's first command, as written (with port 0 so it cannot clash):
# `cargo run --release` must start the server and serve the demo page.
readme_run() {
    local out
    out=$(mktemp)
    cargo run --release --quiet -- --addr 127.0.0.1:0 >"$out" 2>/dev/null &
    local pid=$!
    local line=""
    for _ in $(seq 600); do
        line=$(head -n 1 "$out")
        [ -n "$line" ] && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.5
    done
    local ok=1
    case "$line" in
        "listening on http://"*)
            local code
            code=$(curl -s -o /dev/null -w '%{http_code}' "${line#listening on }/")
            [ "$code" = 200 ] && ok=0
            echo "cargo run --release: $line, GET / -> $code" ;;
        *) echo "cargo run --release did not announce its address: '$line'" ;;
    esac
    pkill -P "$pid" 2>/dev/null
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    rm -f "$out"
    return $ok
}

passed=0
failed=0
failures=()
run_stage() {
    local name=$1
    shift
    echo
    echo "=== stage: $name"
    local start=$SECONDS
    if "$@"; then
        echo "--- stage $name: ok ($((SECONDS - start)) s)"
        passed=$((passed + 1))
    else
        echo "--- stage $name: FAILED ($((SECONDS - start)) s)"
        failed=$((failed + 1))
        failures+=("$name")
    fi
}

for s in "${stages[@]}"; do
    case "$s" in
        # Unit tests (byte vectors, RFC examples) and the integration suites
        # that drive the real binary over sockets with independent clients.
        cargo)
            # The Redis suite starts its own redis-server (Debian's package).
            if ! command -v redis-server >/dev/null; then
                echo "installing redis-server"
                (apt-get install -y -q redis-server >/dev/null 2>&1 \
                    || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q redis-server >/dev/null 2>&1; }) \
                    || echo "could not install redis-server: the redis suite will fail"
            fi
            run_stage cargo cargo test --all-targets ;;
        # /metrics as Prometheus' own tools see it: promtool on a live
        # answer, and a real Prometheus scraping the server (installs
        # Debian's prometheus when missing).
        prometheus)
            run_stage prometheus bash -c \
                'cargo build --release --quiet && bash tests/prometheus.sh target/release/pushwire' ;;
        # README's first command.
        run) run_stage run readme_run ;;
        # The Autobahn|Testsuite against /echo: every case of sections 1-10.
        autobahn) run_stage autobahn bash .ci/autobahn.sh ;;
        # The demo page in headless Chromium.
        browser) run_stage browser bash tests/browser/run.sh ;;
        # A chat and an echo session as Wireshark's dissectors see them.
        tshark) run_stage tshark bash tests/tshark.sh ;;
        # Every command in docs/ run as written against fresh servers, and
        # its output, traces and bytes compared with the pages.
        docs) run_stage docs bash -c 'cargo build --release -q && bash tests/docs.sh target/release/pushwire' ;;
        # A short run of every fuzz target.
        fuzz) run_stage fuzz bash tests/fuzz-smoke.sh ;;
        *) echo "unknown stage $s (cargo, prometheus, run, autobahn, browser, tshark, docs, fuzz)"; exit 2 ;;
    esac
done

echo
[ $failed -gt 0 ] && echo "failed stages: ${failures[*]}"
echo "stages: $passed passed, $failed failed"
[ $failed -eq 0 ]
