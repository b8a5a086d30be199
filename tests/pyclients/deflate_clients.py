"""Independent compressing clients: Python `websockets` against pushwire.

`websockets` offers permessage-deflate (RFC 7692) by default, with its own
DEFLATE code path (zlib from CPython) and its own framing. This checks, for
echo, chat and a channel subscriber, that the 101 names the extension, that
the text comes back right, and that the server really compressed (frames
with RSV1 seen by the client's decoder), plus that a client which turns
compression off gets an uncompressed connection.

    python deflate_clients.py PORT     prints "N passed, M failed"
"""

import json
import sys
import urllib.request

from websockets.extensions import permessage_deflate
from websockets.sync.client import connect

PORT = int(sys.argv[1])
BASE = f"ws://127.0.0.1:{PORT}"

# Count the frames the client inflated: the server's RSV1 frames.
compressed_frames = 0
_decode = permessage_deflate.PerMessageDeflate.decode


def counting_decode(self, frame, *, max_size=None):
    global compressed_frames
    if frame.rsv1:
        compressed_frames += 1
    return _decode(self, frame, max_size=max_size)


permessage_deflate.PerMessageDeflate.decode = counting_decode

passed = 0
failed = 0


def check(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok   {name}")
    else:
        failed += 1
        print(f"FAIL {name} {detail}")


def json_text(n):
    """About n bytes of JSON records (compresses well, not absurdly)."""
    rows, i = [], 0
    while sum(len(r) + 1 for r in rows) < n:
        rows.append(json.dumps({"user": f"u{i * 7919 % 1000}", "event": ["click", "view"][i % 2],
                                "x": i * 37 % 1280, "y": i * 91 % 720, "seq": i}))
        i += 1
    return "[" + ",".join(rows) + "]"


def extension(ws):
    return ws.response.headers.get("Sec-WebSocket-Extensions", "")


def named_deflate(ws):
    return extension(ws).startswith("permessage-deflate") and len(ws.protocol.extensions) == 1


def recv_text(ws, prefix=""):
    """The next text message that starts with `prefix` (chat joins skipped)."""
    while True:
        m = ws.recv(timeout=5)
        if m.startswith(prefix):
            return m


BIG = json_text(2048)

# --- echo ----------------------------------------------------------------------
before = compressed_frames
with connect(f"{BASE}/echo") as ws:
    check("echo: the 101 names permessage-deflate", named_deflate(ws), extension(ws))
    ws.send(BIG)
    check("echo: 2 KiB of JSON comes back intact", recv_text(ws) == BIG)
    ws.send("hi")
    check("echo: a short message comes back intact", recv_text(ws) == "hi")
    ws.send(BIG.encode())
    check("echo: binary comes back intact", ws.recv(timeout=5) == BIG.encode())
check("echo: the server compressed the large messages", compressed_frames - before == 2,
      f"{compressed_frames - before} compressed frames")

with connect(f"{BASE}/echo", compression=None) as ws:
    check("echo without compression: no extension in the 101", extension(ws) == "", extension(ws))
    ws.send(BIG)
    check("echo without compression: text intact", recv_text(ws) == BIG)

# --- chat ----------------------------------------------------------------------
with connect(f"{BASE}/") as a, connect(f"{BASE}/", compression=None) as b:
    check("chat: the 101 names permessage-deflate", named_deflate(a), extension(a))
    port = a.socket.getsockname()[1]
    before = compressed_frames
    a.send(BIG)
    want = f"User{port}: {BIG}"
    check("chat: the compressing member hears the line", recv_text(a, f"User{port}: ") == want)
    check("chat: the plain member hears the same line", recv_text(b, f"User{port}: ") == want)
    check("chat: the line reached the compressing member compressed", compressed_frames - before == 1,
          f"{compressed_frames - before}")

# --- a channel subscriber ---------------------------------------------------------
with connect(f"{BASE}/channels/pyclients/ws") as sub:
    check("channel: the 101 names permessage-deflate", named_deflate(sub), extension(sub))
    before = compressed_frames
    req = urllib.request.Request(f"http://127.0.0.1:{PORT}/channels/pyclients", data=BIG.encode(),
                                 method="POST")
    with urllib.request.urlopen(req, timeout=5) as r:
        mid = json.load(r)["id"]
    got = json.loads(recv_text(sub))
    check("channel: the subscriber receives the published text", got == {"id": mid, "data": BIG})
    sub.send(BIG)  # compressed by the client, published by the server
    got = json.loads(recv_text(sub))
    check("channel: its own compressed message is published back", got == {"id": mid + 1, "data": BIG})
    check("channel: both arrived compressed", compressed_frames - before == 2, f"{compressed_frames - before}")

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
