#!/usr/bin/env python3
"""wire.py: a raw-socket client that prints every byte it sends and receives.

usage: python3 docs/tools/wire.py SCENARIO [HOST:PORT] [ARG...] [--hex]
       python3 docs/tools/wire.py raw [HOST:PORT] TEXT [SECONDS]
       python3 docs/tools/wire.py get [HOST:PORT] PATH...
       python3 docs/tools/wire.py list

SCENARIO is one walkthrough's session (`list` names them, the server
flags each expects and the arguments it takes); it runs against HOST:PORT
(default 127.0.0.1:8080).
`raw` sends TEXT (write `\\r\\n` for CR LF) on one connection and prints every
read until the server closes or SECONDS (default 2) pass without a byte.
`get` sends a GET for each PATH on one keep-alive connection and prints one
line per answer: status line and body. `--hex` prints HTTP bytes as a hex
dump instead of text.

Each line starts with `[t=...]`, seconds since the session began, then an
optional connection name, then `->` (sent) or `<-` (received):

    [t= 0.001s] <- received 185 bytes      one read, then its bytes:
    HTTP/1.1 202 Accepted\\r\\n              HTTP heads with their CR LF shown
    ...
    [t= 0.301s] -> 81 85 c7 1e 5a 93 8f 7b 36 ff a8  text "Hello" (key c71e5a93)
                                            a WebSocket frame: its bytes, then
                                            what they mean (payload unmasked)

WebSocket masking keys are fixed (not random, as RFC 6455 section 5.3 wants
of a real client) so that the bytes in docs/ can be reproduced exactly.
Python 3 standard library only. With PUSHWIRE_WIRE_LOG=FILE set, every
read and write is also appended to FILE as a JSON line (tests/docs.sh uses
it to find the bytes the docs show).
"""

import base64
import json
import os
import select
import socket
import sys
import time

T0 = time.monotonic()
HEX = False
LOG = None
_conn_ids = 0


def now():
    return time.monotonic() - T0


def stamp():
    return "[t=%6.3fs]" % now()


def say(line):
    print(line, flush=True)


def log(conn, direction, data):
    if LOG is not None:
        LOG.write(json.dumps({"conn": conn, "dir": direction, "hex": data.hex()}) + "\n")
        LOG.flush()


# ----- rendering ----------------------------------------------------------------

def hexdump(data):
    """`offset  16 bytes in hex  ASCII`, `.` for anything unprintable."""
    lines = []
    for off in range(0, len(data), 16):
        row = data[off:off + 16]
        hx = " ".join("%02x" % b for b in row)
        text = "".join(chr(b) if 0x20 <= b < 0x7F else "." for b in row)
        lines.append("%04x  %-47s  %s" % (off, hx, text))
    return lines


def render_text(data):
    """An HTTP head line by line with its CR LF shown as `\\r\\n`; whatever
    follows the head as it is (an event stream's bare LF ends a line)."""
    if HEX:
        return hexdump(data)
    text = data.decode("utf-8", "backslashreplace")
    lines = []
    if text.startswith(("HTTP/", "GET ", "POST ", "HEAD ", "PUT ", "DELETE ", "OPTIONS ")) and "\r\n\r\n" in text:
        head, text = text.split("\r\n\r\n", 1)
        lines += [line + "\\r\\n" for line in head.split("\r\n")]
        lines.append("\\r\\n")
    if text:
        if "\r\n" in text:
            parts = text.split("\r\n")
            lines += [p + "\\r\\n" for p in parts[:-1]]
            if parts[-1]:
                lines.append(parts[-1])
        else:
            parts = text.replace("\r", "\\r").split("\n")
            if parts[-1] == "":
                parts.pop()
            lines += parts
    return lines


OPCODES = {0x0: "continuation", 0x1: "text", 0x2: "binary", 0x8: "close", 0x9: "ping", 0xA: "pong"}


def shown_text(payload):
    text = payload.decode("utf-8", "backslashreplace")
    text = text.replace("\r", "\\r").replace("\n", "\\n")
    return '"%s"' % (text if len(text) <= 48 else text[:48] + "...")


def describe_frame(fin, rsv, op, key, payload):
    """What a frame means: opcode name, then its payload (unmasked)."""
    name = OPCODES.get(op, "opcode 0x%x" % op)
    if rsv:
        name += " RSV=%d%d%d" % (rsv >> 2 & 1, rsv >> 1 & 1, rsv & 1)
    if not fin:
        name += " (FIN=0)"
    elif op == 0:
        name += " (FIN=1)"
    if op == 0x8:
        if len(payload) >= 2:
            code = int.from_bytes(payload[:2], "big")
            desc = "%s %d %s" % (name, code, shown_text(payload[2:]))
        else:
            desc = name + " (no status code)"
    elif op == 0x2:
        desc = "%s %s" % (name, payload[:24].hex(" ") + (" ..." if len(payload) > 24 else ""))
    else:
        desc = "%s %s" % (name, shown_text(payload))
    if len(payload) > 48:
        desc += ", %d bytes" % len(payload)
    if key is not None:
        desc += " (key %s)" % key.hex()
    return desc


def frame_hex(frame):
    if len(frame) <= 48:
        return frame.hex(" ")
    return frame[:20].hex(" ") + " ... (%d bytes)" % len(frame)


def parse_frame(buf):
    """One complete frame at the start of `buf`: (fin, rsv, op, key,
    payload unmasked, length of the frame), or None if it is incomplete."""
    if len(buf) < 2:
        return None
    fin, rsv, op = buf[0] >> 7, (buf[0] >> 4) & 7, buf[0] & 0x0F
    masked, n, pos = buf[1] >> 7, buf[1] & 0x7F, 2
    if n == 126:
        if len(buf) < 4:
            return None
        n, pos = int.from_bytes(buf[2:4], "big"), 4
    elif n == 127:
        if len(buf) < 10:
            return None
        n, pos = int.from_bytes(buf[2:10], "big"), 10
    key = None
    if masked:
        if len(buf) < pos + 4:
            return None
        key, pos = bytes(buf[pos:pos + 4]), pos + 4
    if len(buf) < pos + n:
        return None
    payload = bytes(buf[pos:pos + n])
    if key:
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return fin, rsv, op, key, payload, pos + n


def build_frame(op, payload, key, fin=True, rsv=0, length_form=None):
    """A client frame (RFC 6455 section 5.2), masked with `key` unless it is
    None. `length_form` forces 7, 16 or 64 bits for the length."""
    first = (0x80 if fin else 0) | (rsv << 4) | op
    mask_bit = 0x80 if key is not None else 0
    n = len(payload)
    form = length_form or (7 if n < 126 else 16 if n < 65536 else 64)
    if form == 7:
        head = bytes([first, mask_bit | n])
    elif form == 16:
        head = bytes([first, mask_bit | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([first, mask_bit | 127]) + n.to_bytes(8, "big")
    if key is None:
        return head + payload
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


# ----- connections -------------------------------------------------------------

class Conn:
    """One TCP connection. `name` tags its lines when a session has several;
    `brief` prints each request and answer on one line (for side requests
    such as a publisher's)."""

    def __init__(self, addr, name=None, brief=False):
        global _conn_ids
        _conn_ids += 1
        self.id = "%d.%d" % (os.getpid(), _conn_ids)
        self.addr = addr
        self.sock = socket.create_connection(addr)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.name = name
        self.brief = brief
        self.ws = False
        self.pending = b""      # received bytes not yet a whole frame
        self.last_op = None     # the opcode of the last frame received
        self.reads = 0
        self.open = True

    @property
    def host(self):
        return "%s:%d" % self.addr

    def prefix(self, arrow):
        return "%s %s%s" % (stamp(), self.name + " " if self.name else "", arrow)

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)
        log(self.id, "->", data)
        if self.brief:
            first, _, rest = data.partition(b"\r\n")
            method, target = first.decode().split(" ")[:2]
            body = rest.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in rest else b""
            say("%s %s %s%s" % (self.prefix("->"), method, target,
                                " " + shown_text(body) if body else ""))
            return
        say("%s sent %d bytes" % (self.prefix("->"), len(data)))
        for line in render_text(data):
            say(line)

    def send_frame(self, op, payload, key, **kw):
        if isinstance(payload, str):
            payload = payload.encode()
        frame = build_frame(op, payload, key, **kw)
        self.sock.sendall(frame)
        log(self.id, "->", frame)
        fin, rsv, op, key, payload, _ = parse_frame(frame)
        say("%s %s  %s" % (self.prefix("->"), frame_hex(frame), describe_frame(fin, rsv, op, key, payload)))

    def request(self, method, target, body=b"", headers=(), close=False):
        """Sends an HTTP/1.1 request with a Host line and, for a body, its
        Content-Length."""
        if isinstance(body, str):
            body = body.encode()
        head = "%s %s HTTP/1.1\r\nHost: %s\r\n" % (method, target, self.host)
        for h in headers:
            head += h + "\r\n"
        if body or method == "POST":
            head += "Content-Length: %d\r\n" % len(body)
        if close:
            head += "Connection: close\r\n"
        self.send(head.encode() + b"\r\n" + body)

    def upgrade(self, target, key, extra=()):
        """The opening handshake of RFC 6455 section 4.1, with a fixed key."""
        self.request("GET", target, headers=(
            "Upgrade: websocket", "Connection: Upgrade",
            "Sec-WebSocket-Key: " + key, "Sec-WebSocket-Version: 13") + tuple(extra))

    def close(self):
        if self.open:
            self.open = False
            self.sock.close()

    def on_readable(self):
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            say("%s connection reset" % self.prefix("<-"))
            self.close()
            return
        if not data:
            if not self.brief:
                say("%s EOF (the server closed the connection)" % self.prefix("<-"))
            self.close()
            return
        log(self.id, "<-", data)
        self.reads += 1
        if self.ws:
            return self.frames(data)
        if self.brief:
            text = data.decode("utf-8", "backslashreplace")
            status = text.split("\r\n", 1)[0].split(" ", 1)[1]
            body = text.split("\r\n\r\n", 1)[1] if "\r\n\r\n" in text else ""
            say("%s %s %s" % (self.prefix("<-"), status, body.strip()))
            return
        rest = b""
        if data.startswith(b"HTTP/1.1 101 ") and b"\r\n\r\n" in data:
            end = data.index(b"\r\n\r\n") + 4
            data, rest = data[:end], data[end:]
            self.ws = True
        say("%s received %d bytes" % (self.prefix("<-"), len(data) + len(rest)))
        for line in render_text(data):
            say(line)
        if rest:
            self.frames(rest)

    def frames(self, data):
        self.pending += data
        while True:
            f = parse_frame(self.pending)
            if f is None:
                return
            fin, rsv, op, key, payload, n = f
            raw, self.pending = self.pending[:n], self.pending[n:]
            self.last_op = op
            say("%s %s  %s" % (self.prefix("<-"), frame_hex(raw), describe_frame(fin, rsv, op, key, payload)))


CONNS = []


def connect(addr, name=None, brief=False):
    c = Conn(addr, name, brief)
    CONNS.append(c)
    return c


def pump(until=None, wait=None, done=None):
    """Reads from every open connection, printing each read as it arrives,
    until the session time `until` (or `wait` seconds from now), or until
    `done()` is true."""
    if wait is not None:
        until = now() + wait
    while True:
        if done is not None and done():
            return
        left = until - now()
        if left <= 0:
            return
        socks = [c.sock for c in CONNS if c.open]
        if not socks:
            time.sleep(left)
            return
        ready, _, _ = select.select(socks, [], [], left)
        if not ready:
            continue
        # What the server sends in one pass (an event to a subscriber and the
        # publisher's 201, say) is read together and printed in the order
        # the connections were opened, so that a session prints the same
        # lines in the same order every time.
        time.sleep(0.005)
        ready, _, _ = select.select(socks, [], [], 0)
        for c in list(CONNS):
            if c.open and c.sock in ready:
                c.on_readable()


def at(t):
    """Waits (reading meanwhile) until session time `t`."""
    pump(until=t)


def closed(c):
    return lambda: not c.open


def answered(c, reads=1):
    start = c.reads
    return lambda: c.reads >= start + reads or not c.open


def key_of(text):
    """A readable Sec-WebSocket-Key: 16 ASCII bytes, base64-encoded."""
    assert len(text) == 16
    return base64.b64encode(text.encode()).decode()


# ----- the walkthroughs' sessions ---------------------------------------------------

SCENARIOS = {}


def scenario(flags):
    def register(f):
        SCENARIOS[f.__name__.replace("_", "-")] = (f, flags, f.__doc__.strip().splitlines()[0])
        return f
    return register


@scenario("")
def short_polling(addr):
    """docs/short-polling.md: submit a 4 s job, poll it every 1.5 s on one connection."""
    c = connect(addr)
    c.request("POST", "/submit?duration_ms=4000")
    pump(wait=2, done=answered(c))
    for t in (0.3, 1.8, 3.3, 4.8):
        at(t)
        c.request("GET", "/checkstatus?jobId=job:1")
        pump(wait=2, done=answered(c))
    c.close()


@scenario("")
def long_polling(addr):
    """docs/long-polling.md: a long poll released by the job's end, one expired by `wait`."""
    c = connect(addr)
    c.request("POST", "/submit?duration_ms=3000")
    pump(wait=2, done=answered(c))
    at(0.2)
    c.request("GET", "/checkstatus?jobId=job:1&wait=30")
    pump(wait=35, done=answered(c))
    at(3.3)
    c.request("POST", "/submit?duration_ms=10000")
    pump(wait=2, done=answered(c))
    at(3.5)
    c.request("GET", "/checkstatus?jobId=job:2&wait=2")
    at(4.5)
    stats = connect(addr, "stats", brief=True)
    stats.request("GET", "/stats", close=True)
    pump(wait=4, done=answered(c))
    c.close()


@scenario("--sse-heartbeat-ms 5000")
def sse(addr):
    """docs/sse.md: an event stream with two events and a heartbeat, then a resume."""
    c = connect(addr)
    c.request("GET", "/channels/weather/events", headers=("Accept: text/event-stream",))
    pump(wait=2, done=answered(c))
    for t, body in ((0.3, "sunny"), (0.6, "rain at 15:00\r\nwind from the west")):
        at(t)
        p = connect(addr, "publisher", brief=True)
        p.request("POST", "/channels/weather", body, ("Content-Type: text/plain",), close=True)
        pump(wait=2, done=lambda: closed(p)() and c.reads >= 2 + (t > 0.5))
    pump(wait=6, done=answered(c))          # the heartbeat
    at(5.3)
    c.close()
    say("%s connection closed by the client" % stamp())
    p = connect(addr, "publisher", brief=True)
    p.request("POST", "/channels/weather", "fog", ("Content-Type: text/plain",), close=True)
    pump(wait=2, done=closed(p))
    at(5.6)
    r = connect(addr)
    r.request("GET", "/channels/weather/events", headers=("Accept: text/event-stream", "Last-Event-ID: 1"))
    pump(wait=2, done=answered(r))
    at(6.0)
    r.close()


ECHO_KEY = key_of("pushwire-docs-01")


@scenario("--ws-ping-ms 2000")
def echo(addr):
    """docs/websocket.md: text, binary, ping, the server's ping, close on /echo."""
    c = connect(addr)
    c.upgrade("/echo", ECHO_KEY)
    pump(wait=2, done=answered(c))
    at(0.3)
    c.send_frame(0x1, "Hello", bytes.fromhex("c71e5a93"))
    pump(wait=1, done=answered(c))
    at(0.6)
    c.send_frame(0x2, bytes.fromhex("00ff10"), bytes.fromhex("c71e5a93"))
    pump(wait=1, done=answered(c))
    at(0.9)
    c.send_frame(0x9, "are you there?", bytes.fromhex("0badf00d"))
    pump(wait=3, done=answered(c, 2))       # the pong, then the server's own ping
    c.send_frame(0xA, "pushwire", bytes.fromhex("5eed1e55"))
    at(2.5)
    c.send_frame(0x8, b"\x03\xe8bye", bytes.fromhex("cafebabe"))
    pump(wait=3, done=closed(c))


@scenario("")
def ws_frames(addr):
    """docs/websocket.md: a 16-bit length, a length in a longer form than needed, fragments."""
    c = connect(addr)
    c.upgrade("/echo", key_of("pushwire-docs-02"))
    pump(wait=2, done=answered(c))
    message = "".join(str(i % 10) for i in range(130))
    c.send_frame(0x1, message, bytes.fromhex("01020304"))
    pump(wait=1, done=answered(c))
    c.send_frame(0x1, "Hello", bytes.fromhex("01020304"), length_form=16)
    pump(wait=1, done=answered(c))
    c.send_frame(0x1, "frag", bytes.fromhex("aabbccdd"), fin=False)
    pump(wait=0.3)
    c.send_frame(0x0, "mented", bytes.fromhex("eeff0011"))
    pump(wait=1, done=answered(c))
    c.send_frame(0x8, b"", bytes.fromhex("01020304"))
    pump(wait=3, done=closed(c))


@scenario("--ws-ping-ms 2000")
def ping_timeout(addr):
    """docs/websocket.md: a client that never answers the server's pings."""
    c = connect(addr)
    c.upgrade("/echo", key_of("pushwire-docs-03"))
    pump(wait=10, done=closed(c))


@scenario("")
def ws_errors(addr):
    """docs/websocket.md: an unmasked client frame fails the connection (1002)."""
    c = connect(addr)
    c.upgrade("/echo", key_of("pushwire-docs-04"))
    pump(wait=2, done=answered(c))
    c.send_frame(0x1, "Hello", None)
    pump(wait=3, done=closed(c))


@scenario("")
def chat(addr):
    """docs/websocket.md: two members of the chat room on `/`; a binary message is refused."""
    a = connect(addr, "A")
    a.upgrade("/", key_of("pushwire-chat-01"))
    pump(wait=2, done=answered(a))
    at(0.2)
    b = connect(addr, "B")
    b.upgrade("/", key_of("pushwire-chat-02"))
    pump(wait=2, done=lambda: a.reads >= 2 and b.reads >= 1)
    at(0.5)
    a.send_frame(0x1, "Hello! I'm client", bytes.fromhex("37fa213d"))
    pump(wait=1, done=lambda: a.reads >= 3 and b.reads >= 2)
    at(0.8)
    a.send_frame(0x2, bytes.fromhex("0102"), bytes.fromhex("01020304"))
    pump(wait=1, done=answered(a))
    at(1.1)
    a.send_frame(0x8, b"\x03\xeb", bytes.fromhex("a1b2c3d4"))
    pump(wait=3, done=lambda: not a.open and b.reads >= 3)
    at(1.6)
    b.send_frame(0x8, b"\x03\xe8", bytes.fromhex("a1b2c3d4"))
    pump(wait=3, done=closed(b))


@scenario("")
def channels(addr):
    """docs/channels.md: one publish reaching a WebSocket, an event stream and a long poll."""
    ws = connect(addr, "ws")
    ws.upgrade("/channels/news/ws", key_of("news-subscriber1"))
    pump(wait=2, done=answered(ws))
    at(0.1)
    ev = connect(addr, "sse")
    ev.request("GET", "/channels/news/events")
    pump(wait=2, done=answered(ev))
    at(0.2)
    lp = connect(addr, "poll")
    lp.request("GET", "/channels/news/poll?timeout=30")
    at(0.5)
    p = connect(addr, "publisher")
    p.request("POST", "/channels/news", 'deploy "v2" done')
    pump(wait=2, done=lambda: lp.reads >= 1 and p.reads >= 1 and ev.reads >= 2 and ws.reads >= 2)
    at(0.8)
    ws.send_frame(0x1, "from a socket", bytes.fromhex("11223344"))
    pump(wait=2, done=lambda: ws.reads >= 3 and ev.reads >= 3)
    at(1.1)
    lp.request("GET", "/channels/news/poll?after=1&timeout=30")
    pump(wait=2, done=answered(lp))
    at(1.3)
    for c in (ws, ev, lp, p):
        c.close()


@scenario("--history 3")
def truncation(addr):
    """docs/channels.md: resuming from before the oldest kept message, on every transport."""
    p = connect(addr, "publisher", brief=True)
    for i in range(1, 7):
        p.request("POST", "/channels/log", "m%d" % i)
        pump(wait=2, done=answered(p))
    p.close()
    lp = connect(addr)
    lp.request("GET", "/channels/log/poll?after=1")
    pump(wait=2, done=answered(lp))
    lp.close()
    ev = connect(addr)
    ev.request("GET", "/channels/log/events?lastEventId=1")
    pump(wait=2, done=answered(ev))
    ev.close()
    ws = connect(addr)
    ws.upgrade("/channels/log/ws?after=1", key_of("log-subscriber-1"))
    pump(wait=2, done=lambda: ws.reads >= 1 and not ws.pending and ws.ws)
    pump(wait=0.2)
    ws.close()


def token_claims(token):
    """The claims of a JWT (RFC 7519): its second part, base64url without
    padding, decoded. Read, not verified: only the server has the secret."""
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


@scenario("--token-secret SECRET (or PUSHWIRE_TOKEN_SECRET); args: TOKEN FRESH, both "
          "allowed to subscribe and publish to news, TOKEN made with --ttl 4")
def token_expiry(addr, token, fresh):
    """docs/access-control.md: a WebSocket ended at its token's exp, resumed with a fresh token."""
    global T0
    # Start 2 s before the token's exp, so that every run shows the same
    # times (a client reads exp the same way to plan its next token). exp
    # is whole seconds: a token made with --ttl 4 has 3 to 4 s left.
    time.sleep(max(0.0, token_claims(token)["exp"] - 2.0 - time.time()))
    T0 = time.monotonic()
    ws = connect(addr)
    ws.upgrade("/channels/news/ws?access_token=" + token, key_of("token-expiry-001"))
    pump(wait=2, done=answered(ws))
    at(0.5)
    ws.send_frame(0x1, "before exp", bytes.fromhex("1a2b3c4d"))
    pump(wait=1, done=answered(ws))
    pump(wait=4, done=lambda: ws.last_op == 0x8 or not ws.open)     # the server's close, at exp
    if ws.open:
        ws.send_frame(0x8, b"\x03\xf0", bytes.fromhex("1a2b3c4d"))   # 1008 back (RFC 6455 section 5.5.1)
        pump(wait=3, done=closed(ws))
    at(2.3)
    p = connect(addr, "publisher", brief=True)
    p.request("POST", "/channels/news", "while away", ("Authorization: Bearer " + fresh,), close=True)
    pump(wait=2, done=closed(p))
    at(2.5)
    again = connect(addr)
    again.upgrade("/channels/news/ws?after=1&access_token=" + fresh, key_of("token-expiry-002"))
    pump(wait=2, done=lambda: again.last_op is not None)
    at(2.8)
    again.send_frame(0x8, b"\x03\xe8", bytes.fromhex("1a2b3c4d"))
    pump(wait=3, done=closed(again))


# ----- generic commands -------------------------------------------------------------

def parse_addr(text):
    host, _, port = text.rpartition(":")
    return (host.strip("[]"), int(port))


def looks_like_addr(text):
    host, sep, port = text.rpartition(":")
    return bool(sep and host and port.isdigit() and not text.startswith("/"))


def raw(addr, text, silence=2.0):
    c = connect(addr)
    data = text.encode().decode("unicode_escape").encode("latin-1")
    c.send(data)
    while c.open:
        before = c.reads
        pump(wait=silence, done=lambda: c.reads > before or not c.open)
        if c.open and c.reads == before:
            break
    c.close()


def get(addr, paths):
    s = socket.create_connection(addr)
    width = max(len(p) for p in paths)
    for path in paths:
        req = "GET %s HTTP/1.1\r\nHost: %s:%d\r\n\r\n" % (path, addr[0], addr[1])
        s.sendall(req.encode())
        log("get", "->", req.encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += s.recv(65536)
        head, body = buf.split(b"\r\n\r\n", 1)
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(body) < length:
            body += s.recv(65536)
        log("get", "<-", head + b"\r\n\r\n" + body)
        status = head.split(b"\r\n", 1)[0].decode()
        say("GET %-*s -> %-26s %s" % (width, path, status, body.decode("utf-8", "backslashreplace")))
    s.close()


def main(argv):
    global HEX, LOG, T0
    if "--hex" in argv:
        HEX = True
        argv = [a for a in argv if a != "--hex"]
    if os.environ.get("PUSHWIRE_WIRE_LOG"):
        LOG = open(os.environ["PUSHWIRE_WIRE_LOG"], "a")
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        return 2
    cmd, args = argv[1], argv[2:]
    addr = ("127.0.0.1", 8080)
    if args and looks_like_addr(args[0]):
        addr, args = parse_addr(args[0]), args[1:]
    if cmd == "list":
        for name, (_, flags, doc) in SCENARIOS.items():
            print("%-14s %s%s" % (name, doc, "\n%14s server flags: %s" % ("", flags) if flags else ""))
        return 0
    if cmd == "raw" and args:
        raw(addr, args[0], float(args[1]) if len(args) > 1 else 2.0)
        return 0
    if cmd == "get" and args:
        get(addr, args)
        return 0
    if cmd in SCENARIOS:
        f = SCENARIOS[cmd][0]
        if len(args) != f.__code__.co_argcount - 1:
            print("%s takes %d argument(s) after HOST:PORT; see `list`" % (cmd, f.__code__.co_argcount - 1),
                  file=sys.stderr)
            return 2
        T0 = time.monotonic()
        f(addr, *args)
        for c in CONNS:
            c.close()
        return 0
    print("unknown command %r; see --help" % " ".join(argv[1:]), file=sys.stderr)
    return 2


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except ConnectionRefusedError:
        print("wire.py: connection refused: is pushwire running there?", file=sys.stderr)
        sys.exit(1)
    except BrokenPipeError:         # the output was cut short (`| head`)
        sys.exit(0)
