#!/usr/bin/env python3
"""receiver.py: a webhook receiver that prints every request exactly as it arrived.

usage: python3 docs/tools/receiver.py [PORT] [--count N] [--status CODE[,CODE...]] [--secret HEX]

Listens on 127.0.0.1:PORT (default 9911). For each request it prints the
bytes it received (an HTTP head line by line, `\\r\\n` marking each CR LF,
then the body), answers with a canned response without a body
(`HTTP/1.1 200 OK`, `Content-Length: 0`, `Connection: close`) and closes the
connection. `[t=...]` is seconds since the first request.

  --count N          exit after N requests (default: run until Ctrl-C)
  --status 500,200   the status of each answer in turn; the last one repeats
                     (default 200), to watch pushwire retry
  --secret HEX       the webhook's secret: check X-Pushwire-Signature, the
                     HMAC-SHA1 of the body keyed with the secret's hex text

Python 3 standard library only.
"""

import hashlib
import hmac
import socket
import sys
import time

REASONS = {200: "OK", 201: "Created", 204: "No Content", 400: "Bad Request",
           404: "Not Found", 500: "Internal Server Error", 503: "Service Unavailable"}


def read_request(conn):
    """The whole request: head, then Content-Length bytes of body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def header(request, name):
    head = request.split(b"\r\n\r\n", 1)[0]
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name.lower():
            return value.strip().decode("latin-1")
    return None


def main(argv):
    if "-h" in argv or "--help" in argv:
        print(__doc__.strip())
        return 0
    port, count, statuses, secret = 9911, None, [200], None
    args = argv[1:]
    while args:
        a = args.pop(0)
        if a == "--count":
            count = int(args.pop(0))
        elif a == "--status":
            statuses = [int(s) for s in args.pop(0).split(",")]
        elif a == "--secret":
            secret = args.pop(0)
        elif a.isdigit():
            port = int(a)
        else:
            print("receiver.py: unknown argument %r; see --help" % a, file=sys.stderr)
            return 2
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen(16)
    print("receiver listening on 127.0.0.1:%d" % port, flush=True)
    t0, n = None, 0
    while count is None or n < count:
        conn, _ = server.accept()
        request = read_request(conn)
        t0 = t0 or time.monotonic()
        stamp = "[t=%6.3fs]" % (time.monotonic() - t0)
        print("%s <- received %d bytes" % (stamp, len(request)))
        head, _, body = request.partition(b"\r\n\r\n")
        for line in head.split(b"\r\n"):
            print(line.decode("utf-8", "backslashreplace") + "\\r\\n")
        print("\\r\\n")
        if body:
            print(body.decode("utf-8", "backslashreplace"))
        if secret is not None:
            expected = "sha1=" + hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()
            given = header(request, b"x-pushwire-signature") or ""
            verdict = "matches" if hmac.compare_digest(expected, given) else "does NOT match"
            print("X-Pushwire-Signature %s the HMAC-SHA1 of the body" % verdict)
        status = statuses[min(n, len(statuses) - 1)]
        answer = "HTTP/1.1 %d %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n" % (
            status, REASONS.get(status, "Status"))
        conn.sendall(answer.encode())
        conn.close()
        print("%s -> HTTP/1.1 %d %s, then close" % (stamp, status, REASONS.get(status, "Status")), flush=True)
        n += 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except KeyboardInterrupt:
        sys.exit(0)
