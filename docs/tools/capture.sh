#!/usr/bin/env bash
# capture.sh: record pushwire's traffic on the loopback interface with tshark.
#
# usage: docs/tools/capture.sh start PORT FILE   capture tcp port PORT on lo into FILE (pcapng)
#        docs/tools/capture.sh stop FILE         end that capture; FILE is then complete
#
# Capturing needs root (or membership of the wireshark group). tshark:
#   echo 'wireshark-common wireshark-common/install-setuid boolean false' | debconf-set-selections
#   DEBIAN_FRONTEND=noninteractive apt-get install -y tshark
# Read the file back with `tshark -r FILE ...` (see docs/wireshark.md).
set -u

case "${1:-}" in
start)
    [ $# -eq 3 ] || { sed -n '4,5p' "$0"; exit 2; }
    port=$2 file=$3
    rm -f "$file" "$file.log"
    # -f: a capture filter (BPF), applied in the kernel: only pushwire's port.
    tshark -i lo -f "tcp port $port" -w "$file" -q >"$file.log" 2>&1 &
    echo $! >"$file.pid"
    for _ in $(seq 100); do
        grep -q 'Capturing on' "$file.log" 2>/dev/null && break
        if ! kill -0 "$(cat "$file.pid")" 2>/dev/null; then
            cat "$file.log" >&2
            exit 1
        fi
        sleep 0.1
    done
    # The kernel delivers packets to tshark's socket from here on; give
    # dumpcap a moment to have the file open before traffic starts.
    sleep 0.5
    echo "capturing tcp port $port on lo into $file"
    ;;
stop)
    [ $# -eq 2 ] || { sed -n '4,5p' "$0"; exit 2; }
    file=$2
    pid=$(cat "$file.pid" 2>/dev/null) || { echo "no capture running for $file" >&2; exit 1; }
    # Give the last packets a moment to reach the file, then stop as Ctrl-C would.
    sleep 0.5
    kill -INT "$pid" 2>/dev/null
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    rm -f "$file.pid"
    echo "$(grep -o '[0-9]* packets\? captured' "$file.log" | tail -n 1) in $file"
    ;;
*)
    sed -n '4,5p' "$0"
    exit 2
    ;;
esac
