#!/usr/bin/env bash
# tests/tshark.sh: does Wireshark's own dissector agree that pushwire speaks
# HTTP/1.1 and WebSocket (RFC 6455) correctly?
#
# 1. installs tshark if it is missing (Debian/Ubuntu, as root);
# 2. builds pushwire and starts it on a free loopback port;
# 3. captures that port on `lo` while a raw-socket Python client (below, no
#    pip dependencies, fixed masking keys) runs a chat session on `/`, an
#    echo session on `/echo` (text, binary, ping, close) and a compressed
#    echo session (permessage-deflate, RFC 7692: Wireshark inflates it);
# 4. reads the capture back with `-d tcp.port==PORT,http` (decode-as, since
#    the port is not 80) and asserts what the dissectors decoded.
#
# Usage: tests/tshark.sh        (prints "tshark: N passed, M failed")
# KEEP=1 keeps the work directory (capture, server trace) for inspection.
# PUSHWIRE_BIN=path skips the build and runs that binary instead.

set -u
cd "$(dirname "$0")/.."

WORK=$(mktemp -d /tmp/pushwire-tshark.XXXXXX)
SERVER_PID=
TSHARK_PID=

STAGE=tshark
# shellcheck source=tests/lib.sh
. tests/lib.sh
cleanup() { finish "$TSHARK_PID" "$SERVER_PID"; }
trap cleanup EXIT

# ---- 1. tshark ---------------------------------------------------------------
if ! command -v tshark >/dev/null 2>&1; then
    echo "installing tshark..."
    export DEBIAN_FRONTEND=noninteractive
    # Without this preseed, wireshark-common asks whether non-root users
    # may capture, and the install waits for an answer.
    echo 'wireshark-common wireshark-common/install-setuid boolean false' | debconf-set-selections 2>/dev/null
    apt_need tshark
fi
TSHARK_VERSION=$(tshark --version 2>/dev/null | head -n 1)
echo "using $TSHARK_VERSION"

# ---- 2. the server -------------------------------------------------------------
BIN=${PUSHWIRE_BIN:-}
if [ -z "$BIN" ]; then
    cargo build --release -q 2>"$WORK/build.log" || die "cargo build failed (see $WORK/build.log)"
    BIN=target/release/pushwire
fi
"$BIN" --addr 127.0.0.1:0 --trace >"$WORK/server.out" 2>"$WORK/server.trace" &
SERVER_PID=$!
PORT=
for _ in $(seq 100); do
    PORT=$(sed -n '1s#^listening on http://127\.0\.0\.1:\([0-9]*\)$#\1#p' "$WORK/server.out" 2>/dev/null)
    [ -n "$PORT" ] && break
    sleep 0.05
done
[ -n "$PORT" ] || die "the server did not print 'listening on ...'"
echo "server on port $PORT"

# ---- 3. capture + sessions -------------------------------------------------------
PCAP="$WORK/capture.pcapng"
tshark -i lo -f "tcp port $PORT" -w "$PCAP" >"$WORK/tshark.out" 2>"$WORK/tshark.err" &
TSHARK_PID=$!
for _ in $(seq 100); do
    grep -q -e 'Capture started' -e 'Capturing on' "$WORK/tshark.err" 2>/dev/null && break
    kill -0 "$TSHARK_PID" 2>/dev/null || die "tshark could not capture on lo: $(cat "$WORK/tshark.err")"
    sleep 0.1
done
grep -q -e 'Capture started' -e 'Capturing on' "$WORK/tshark.err" || die "tshark never started capturing"
sleep 0.5 # the message comes just before dumpcap's loop starts reading

cat >"$WORK/client.py" <<'PY'
"""A raw-socket WebSocket client with fixed masking keys (RFC 6455)."""
import base64, hashlib, socket, struct, sys, time, zlib

PORT = int(sys.argv[1])
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

def mask(data, key):
    return bytes(b ^ key[i % 4] for i, b in enumerate(data))

def frame(op, payload, key, rsv1=False):
    n = len(payload)
    head = bytes([0x80 | (0x40 if rsv1 else 0) | op])
    if n < 126:
        head += bytes([0x80 | n])
    else:
        head += bytes([0x80 | 126]) + struct.pack(">H", n)
    return head + key + mask(payload, key)

def deflate(data):
    """RFC 7692 section 7.2.1: raw DEFLATE, sync flush, 00 00 ff ff removed."""
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]

def inflate(data):
    """RFC 7692 section 7.2.2: the tail appended, then inflated."""
    return zlib.decompressobj(-15).decompress(data + b"\x00\x00\xff\xff")

class Ws:
    def __init__(self, path, key16, extensions=None):
        self.s = socket.create_connection(("127.0.0.1", PORT), timeout=5)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        key = base64.b64encode(key16).decode()
        ext = f"Sec-WebSocket-Extensions: {extensions}\r\n" if extensions else ""
        self.s.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{PORT}\r\n"
                        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{ext}\r\n").encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            d = self.s.recv(4096)
            if not d:
                sys.exit(f"{path}: closed during the handshake")
            self.buf += d
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        if not head.startswith(b"HTTP/1.1 101 "):
            sys.exit(f"{path}: no 101: {head!r}")
        self.head = head
        want = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
        print(f"ACCEPT {key} {want}")
        self.port = self.s.getsockname()[1]

    def send(self, op, payload, key, rsv1=False):
        self.s.sendall(frame(op, payload, key, rsv1))

    def recv(self):
        """The next whole frame from the server: (opcode, payload)."""
        b0, payload = self.recv_b0()
        return (None if b0 is None else b0 & 0x0F), payload

    def recv_b0(self):
        """The next whole frame from the server: (first byte, payload)."""
        while True:
            if len(self.buf) >= 2:
                b0, b1 = self.buf[0], self.buf[1]
                if b1 & 0x80:
                    sys.exit("the server masked a frame (RFC 6455 5.1 forbids it)")
                n, i = b1 & 0x7F, 2
                if n == 126:
                    n, i = struct.unpack(">H", self.buf[2:4])[0] if len(self.buf) >= 4 else -1, 4
                elif n == 127:
                    n, i = struct.unpack(">Q", self.buf[2:10])[0] if len(self.buf) >= 10 else -1, 10
                if n >= 0 and len(self.buf) >= i + n:
                    payload, self.buf = self.buf[i:i + n], self.buf[i + n:]
                    return b0, payload
            d = self.s.recv(65536)
            if not d:
                return None, b""
            self.buf += d

    def expect(self, op, payload):
        for _ in range(10):
            got = self.recv()
            if got == (op, payload):
                return
            if got[0] is None:
                break
        sys.exit(f"expected opcode {op} {payload!r}, last got {got!r}")

# Chat on /: two members, A says hello, both get "User<A's port>: ...".
a = Ws("/", b"tshark-chat-A-01")
b = Ws("/", b"tshark-chat-B-01")
hello = b"Hello! I'm client"
a.send(0x1, hello, bytes.fromhex("37fa213d"))
line = f"User{a.port}: ".encode() + hello
a.expect(0x1, line)
b.expect(0x1, line)
print(f"CHAT_LINE User{a.port}: Hello! I'm client")
for ws, key in ((a, "a1a2a3a4"), (b, "b1b2b3b4")):
    ws.send(0x8, struct.pack(">H", 1000), bytes.fromhex(key))
    ws.expect(0x8, struct.pack(">H", 1000))
    ws.s.close()

# Echo on /echo: text, binary, ping, close.
e = Ws("/echo", b"tshark-echo-0001")
e.send(0x1, b"echo me", bytes.fromhex("0badf00d"))
e.expect(0x1, b"echo me")
e.send(0x2, bytes([0x00, 0x01, 0x02, 0xFE, 0xFF]), bytes.fromhex("c71e5a93"))
e.expect(0x2, bytes([0x00, 0x01, 0x02, 0xFE, 0xFF]))
e.send(0x9, b"are you there?", bytes.fromhex("5eed1e55"))
e.expect(0xA, b"are you there?")
e.send(0x8, struct.pack(">H", 1000) + b"bye", bytes.fromhex("cafebabe"))
e.expect(0x8, struct.pack(">H", 1000))
e.s.close()

# Compressed echo on /echo: the client offers permessage-deflate, sends one
# compressed text (RSV1) and gets it back compressed.
z = Ws("/echo", b"tshark-zlib-0001", "permessage-deflate; client_max_window_bits")
if b"permessage-deflate" not in z.head:
    sys.exit(f"the 101 accepted no compression: {z.head!r}")
text = b"Hello, compressed world! " * 4
z.send(0x1, deflate(text), bytes.fromhex("d0d0cafe"), rsv1=True)
b0, payload = z.recv_b0()
if b0 != 0xC1 or inflate(payload) != text:
    sys.exit(f"compressed echo: first byte {b0!r}, payload {payload!r}")
print(f"DEFLATE_TEXT {text.decode()}")
print(f"DEFLATE_SIZES {len(deflate(text))} {len(payload)}")
z.send(0x8, struct.pack(">H", 1000), bytes.fromhex("e1e2e3e4"))
z.expect(0x8, struct.pack(">H", 1000))
z.s.close()
print("CLIENT_OK")
PY

if python3 "$WORK/client.py" "$PORT" >"$WORK/client.out" 2>&1; then
    ok "the Python client's own checks (chat and echo sessions)"
else
    fail "the Python client's own checks" "$(tail -n 3 "$WORK/client.out")"
fi
DEFLATE_TEXT=$(sed -n 's/^DEFLATE_TEXT //p' "$WORK/client.out")
sleep 1 # let the last FINs reach the capture
kill -INT "$TSHARK_PID" 2>/dev/null
wait "$TSHARK_PID" 2>/dev/null
TSHARK_PID=
[ -s "$PCAP" ] || die "no capture file was written"
CHAT_LINE=$(sed -n 's/^CHAT_LINE //p' "$WORK/client.out")

# ---- 4. what Wireshark decoded -------------------------------------------------
# tsh FILTER FIELD...: one line per matching packet, fields separated by |.
tsh() {
    local filter=$1
    shift
    local args=()
    for f in "$@"; do args+=(-e "$f"); done
    tshark -r "$PCAP" -d "tcp.port==$PORT,http" -Y "$filter" -T fields -E separator='|' \
        -E occurrence=a -E aggregator=, "${args[@]}" 2>"$WORK/tsh.err"
}
count() { tsh "$1" frame.number | grep -c .; }

# Field names differ between Wireshark versions: check the ones we use.
FIELDS=$(tshark -G fields 2>/dev/null | cut -f3)
has_field() { printf '%s\n' "$FIELDS" | grep -qx "$1"; }
for f in http.upgrade http.response.code http.sec_websocket_key http.sec_websocket_accept \
    websocket.opcode websocket.mask websocket.masking_key websocket.payload.text \
    websocket.payload.ping websocket.payload.pong websocket.payload.close.status_code \
    http.sec_websocket_extensions websocket.pmc; do
    has_field "$f" || fail "this tshark has no field $f"
done
# The unmasked binary payload: 4.0 hands it to the "data" dissector.
BIN_FIELD=data.data
has_field websocket.unmasked_payload && BIN_FIELD=websocket.unmasked_payload

n=$(count 'http.request.method == "GET" && http.upgrade == "websocket" && http.sec_websocket_version == 13')
[ "$n" -eq 4 ] && ok "4 upgrade requests decoded as HTTP (Upgrade: websocket, version 13)" ||
    fail "upgrade requests decoded: $n, want 4"

n=$(count 'http.response.code == 101 && http.upgrade == "websocket"')
[ "$n" -eq 4 ] && ok "4 '101 Switching Protocols' responses decoded" ||
    fail "101 responses decoded: $n, want 4"

n=$(count "http.response.code == 101 && http.sec_websocket_extensions contains \"permessage-deflate\" && http.sec_websocket_extensions contains \"client_no_context_takeover\"")
[ "$n" -eq 1 ] && ok "the compressed session's 101 names permessage-deflate (Wireshark saw it)" ||
    fail "101 responses naming permessage-deflate: $n, want 1"

# Sec-WebSocket-Accept as Wireshark saw it = what RFC 6455 4.2.2 says.
bad=0
while read -r _ key want; do
    got=$(tsh "http.sec_websocket_accept && tcp.srcport == $PORT" http.sec_websocket_accept |
        grep -cx "$want")
    sent=$(tsh "http.sec_websocket_key == \"$key\"" frame.number | grep -c .)
    [ "$got" -eq 1 ] && [ "$sent" -eq 1 ] || bad=$((bad + 1))
done < <(grep '^ACCEPT ' "$WORK/client.out")
[ "$bad" -eq 0 ] && [ "$(grep -c '^ACCEPT ' "$WORK/client.out")" -eq 4 ] &&
    ok "each Sec-WebSocket-Accept on the wire is base64(SHA-1(key + GUID))" ||
    fail "Sec-WebSocket-Accept check failed for $bad handshake(s)"

for op in 1 2 9 10 8; do
    n=$(count "websocket.opcode == $op")
    [ "$n" -ge 1 ] && ok "frames with websocket.opcode == $op decoded ($n)" ||
        fail "no frame decoded with websocket.opcode == $op"
done

# RFC 6455 5.1: every client frame masked, no server frame masked.
n=$(count "websocket && tcp.dstport == $PORT && websocket.mask == 0")
m=$(count "websocket && tcp.srcport == $PORT && websocket.mask == 1")
[ "$n" -eq 0 ] && [ "$m" -eq 0 ] && ok "client frames masked, server frames not" ||
    fail "masking: $n unmasked client frame(s), $m masked server frame(s)"

n=$(count "websocket.opcode == 1 && tcp.dstport == $PORT && websocket.masking_key == 37:fa:21:3d && websocket.payload.text == \"Hello! I'm client\"")
[ "$n" -eq 1 ] && ok "masked client text unmasked by Wireshark: \"Hello! I'm client\" (key 37fa213d)" ||
    fail "client text \"Hello! I'm client\" not found unmasked ($n)"

n=$(tsh "websocket.opcode == 1 && tcp.srcport == $PORT" websocket.payload.text | grep -cxF "$CHAT_LINE")
[ -n "$CHAT_LINE" ] && [ "$n" -eq 2 ] && ok "server text \"$CHAT_LINE\" reached both chat members" ||
    fail "server text \"$CHAT_LINE\" seen $n time(s), want 2"

n=$(tsh "websocket.opcode == 1 && websocket.payload.text == \"echo me\"" tcp.srcport | grep -c .)
[ "$n" -eq 2 ] && ok "echo text decoded both ways" || fail "echo text frames: $n, want 2"

n=$(tsh "websocket.opcode == 2" "$BIN_FIELD" | tr -d ':' | grep -cx '000102feff')
[ "$n" -eq 2 ] && ok "binary payload 00 01 02 fe ff unmasked both ways ($BIN_FIELD)" ||
    fail "binary payload 000102feff seen $n time(s) in $BIN_FIELD, want 2"

PING_HEX=$(printf 'are you there?' | od -An -tx1 | tr -d ' \n')
n=$(tsh "websocket.opcode == 9 && tcp.dstport == $PORT" websocket.payload.ping | tr -d ':' | grep -cx "$PING_HEX")
m=$(tsh "websocket.opcode == 10 && tcp.srcport == $PORT" websocket.payload.pong | tr -d ':' | grep -cx "$PING_HEX")
[ "$n" -eq 1 ] && [ "$m" -eq 1 ] && ok "ping answered by a pong with the same payload" ||
    fail "ping/pong payloads: ping $n, pong $m, want 1 and 1"

n=$(tsh "websocket.opcode == 8" websocket.payload.close.status_code | grep -cx 1000)
[ "$n" -eq 8 ] && ok "8 close frames with status 1000 (4 sent, 4 echoed)" ||
    fail "close frames with status 1000: $n, want 8"

# permessage-deflate: RSV1 ("Per-Message Compressed") both ways, and
# Wireshark's own inflater gets the text back from each.
n=$(count "websocket.pmc == 1 && tcp.dstport == $PORT")
m=$(count "websocket.pmc == 1 && tcp.srcport == $PORT")
[ "$n" -eq 1 ] && [ "$m" -eq 1 ] && ok "one compressed message each way (RSV1: websocket.pmc == 1)" ||
    fail "compressed frames: $n from the client, $m from the server, want 1 and 1"
n=$(tsh "websocket.pmc == 1 && tcp.srcport == $PORT" websocket.payload.text | grep -cxF "$DEFLATE_TEXT")
m=$(tsh "websocket.pmc == 1 && tcp.dstport == $PORT" websocket.payload.text | grep -cxF "$DEFLATE_TEXT")
[ -n "$DEFLATE_TEXT" ] && [ "$n" -eq 1 ] && [ "$m" -eq 1 ] &&
    ok "Wireshark inflated the compressed text both ways: \"${DEFLATE_TEXT:0:25}...\"" ||
    fail "compressed text not inflated by Wireshark (server $n, client $m)"
n=$(count "websocket.pmc == 1 && websocket.rsv == 4 && websocket.payload_length < 100")
[ "$n" -eq 2 ] && ok "the compressed frames are shorter than the 100-byte text" ||
    fail "compressed frames shorter than the text: $n, want 2"

if bad=$(tshark -r "$PCAP" -d "tcp.port==$PORT,http" -Y '_ws.malformed || _ws.expert.severity >= error' 2>"$WORK/expert.err"); then
    [ -z "$bad" ] && ok "no malformed packet, no expert info at error level" ||
        fail "malformed or error-level packets:" "$bad"
else
    fail "the malformed/expert filter was refused" "$(cat "$WORK/expert.err")"
fi

echo "tshark: $PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
