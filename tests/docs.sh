#!/usr/bin/env bash
# tests/docs.sh: do the walkthroughs in docs/ still tell the truth?
#
# Every walkthrough shows the commands that produced its bytes. This check
# runs them, as written, against fresh servers, and compares what they print
# with what the page shows; nothing the pages claim is repeated here.
#
#   * every ```console block of docs/*.md is run, one `$ ` line at a time, in
#     one shell per page (from a work directory where `docs/` and
#     `target/release/pushwire` lead to this clone's), and what each command
#     prints must match the lines the page shows under it;
#   * a `target/release/pushwire ...` line starts a fresh server with the
#     flags shown (this script starts it, so it can watch it), and its
#     stderr (`--trace`) is kept; it gets the variables the page's
#     `export NAME=VALUE` lines set; `target/release/pushwire token ...`
#     runs in the page's shell like any other command;
#   * a block after `<!-- check view -->` must appear in what the page's
#     commands printed, `<!-- check trace [PORT] -->` in that server's trace,
#     `<!-- check bytes -->` in the bytes docs/tools/wire.py sent or received
#     (hex dumps, or lines of hex bytes, `->` sent and `<-` received); a
#     count "(N bytes):" just before a hex dump must be its length;
#   * `<!-- check skip: why -->` exempts the next block, and
#     `<!-- check needs: TOOL -->` (tshark, redis-server) the whole page
#     when TOOL is missing;
#   * every relative link in README.md and docs/*.md must lead to a file of
#     the clone, and its #anchor to a heading there.
#
# What may differ, and how (docs/README.md explains it to readers): the
# servers run on free 4-digit ports, not 8080/8081/8090 (nor 9911 for the
# webhook receiver, 6399 for Redis), and the output is mapped back; dates
# and RFC 3339 times are any date; `[t=...]` may differ by 0.25 s; client
# ports (5 digits), webhook secrets, signatures and delivery ids may differ,
# but consistently: the same value in the page must be the same value in
# the run (so a signature shown must be the one the server computed for the
# secret shown); an access token's `exp` (a time, 10 digits) may differ,
# and with it the token's claims part and signature: a token is compared
# part by part, its header exactly, its claims decoded and equal but for
# `exp`, its signature (and an HMAC-SHA256 shown in hex) consistently and
# one-to-one, and every token a page shows must verify with the
# PUSHWIRE_TOKEN_SECRET the page shows; curl's version in `User-Agent`; in tshark output, frame
# numbers, times and TSval/TSecr, and tshark's warning about running as
# root is dropped. A line `...` stands for any number of lines; runs of
# spaces count as one.
#
# Usage: tests/docs.sh [BINARY]     (default target/release/pushwire)
# Prints one line per check and "docs: N passed, M failed"; exits non-zero
# on a failure. Needs python3 and curl; the blocks that use tshark (as root)
# or redis-server are skipped, and say so, when those are missing. Takes
# about 25 s (the pages run in parallel, each on its own servers).
# KEEP=1 keeps the work directory (traces, wire logs, outputs);
# ONLY=sse,channels checks only those pages.

set -u
cd "$(dirname "$0")/.."
BIN=${1:-target/release/pushwire}
if [ ! -x "$BIN" ]; then
    echo "docs: no server binary at $BIN (cargo build --release, or pass its path)"
    echo "docs: 0 passed, 1 failed"
    exit 1
fi
BIN=$(realpath "$BIN")
WORK=$(mktemp -d /tmp/pushwire-docs.XXXXXX)
PY_PID=
cleanup() {
    [ -n "$PY_PID" ] && kill -TERM "$PY_PID" 2>/dev/null && wait "$PY_PID" 2>/dev/null
    if [ "${KEEP:-0}" = 1 ]; then echo "work directory kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

python3 - "$BIN" "$PWD" "$WORK" <<'PY' &
import os, re, shlex, shutil, signal, socket, subprocess, sys, threading, time, random, select, json

BIN, REPO, WORK = sys.argv[1], sys.argv[2], sys.argv[3]
DOC_PORTS = ["8080", "8081", "8090", "9911", "6399"]   # the ports the pages use
TOLERANCE = 0.25                                      # seconds, for [t=...]
CMD_TIMEOUT = 40
# Ports Wireshark decodes as HTTP without being told: never picked, or a
# page's decode-as lesson would read differently here.
WIRESHARK_HTTP = {1900, 2710, 2869, 3128, 3132, 5985, 8080, 8088, 11371}
HAVE_TSHARK = shutil.which("tshark") is not None and os.geteuid() == 0
HAVE_REDIS = shutil.which("redis-server") is not None and shutil.which("redis-cli") is not None

lock = threading.Lock()
results = []        # (ok: True/False/None for skipped, where, what, detail)
groups = []         # process groups to end
servers = []        # Popen of every server started

stopping = False     # interrupted: the pages' threads fail as their processes die; say nothing

def report(ok, where, what, detail=""):
    if stopping:
        return
    with lock:
        results.append((ok, where, what, detail))
        tag = {True: "ok  ", False: "FAIL", None: "skip"}[ok]
        print("%s %s %s" % (tag, where, what), flush=True)
        if detail and ok is not True:
            for line in detail.rstrip().split("\n"):
                print("     " + line, flush=True)

# ----- normalising and matching --------------------------------------------------

DATE = r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d GMT"
RFC3339 = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{3})?Z"
JWT = r"eyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}"
# (kind, regex with context; group "v" is the variable part)
TOKENS = [
    ("time", r"\[t=\s*(?P<v>\d+\.\d+)s\]"),
    ("any", r"(?P<v>" + DATE + ")"),
    ("any", r"(?P<v>" + RFC3339 + ")"),
    ("any", r"(?<=curl/)(?P<v>\d+\.\d+\.\d+)"),
    ("port", r"(?<=127\.0\.0\.1:)(?P<v>\d{5})(?!\d)"),
    ("port", r"(?<=User)(?P<v>\d{5})(?!\d)"),
    # the same port inside hex: "User" and five ASCII digits
    ("hexport", r"(?<=55 73 65 72 )(?P<v>3\d 3\d 3\d 3\d 3\d)"),
    ("hexport", r"(?<=55736572)(?P<v>3\d3\d3\d3\d3\d)"),
    ("secret", r"(?<=\"secret\":\")(?P<v>[0-9a-f]{32})(?![0-9a-f])"),
    ("secret", r"(?<=--secret )(?P<v>[0-9a-f]{32})(?![0-9a-f])"),
    ("secret", r"(?<=new\(b\")(?P<v>[0-9a-f]{32})(?![0-9a-f])"),
    ("sig", r"(?<=sha1=)(?P<v>[0-9a-f]{40})(?![0-9a-f])"),
    ("sig", r"^(?P<v>[0-9a-f]{40})$"),
    ("delivery", r"(?<=Delivery: )(?P<v>[0-9a-f]{8}-\d+)"),
    ("delivery", r"(?<=\"delivery\":\")(?P<v>[0-9a-f]{8}-\d+)"),
    # access tokens (JWT, docs/access-control.md): whole, or one part alone
    ("jwt", r"(?<![A-Za-z0-9_-])(?P<v>" + JWT + r")(?![A-Za-z0-9_-])"),
    ("b64json", r"(?<![A-Za-z0-9_.-])(?P<v>eyJ[A-Za-z0-9_-]+)(?![A-Za-z0-9_.-])"),
    ("jwtsig", r"^(?P<v>[A-Za-z0-9_-]{43})$"),
    ("mac", r"^(?P<v>(?:[0-9a-f]{2} ){31}[0-9a-f]{2})$"),
    ("exp", r"(?<=\"exp\":)(?P<v>\d{10})(?!\d)"),
]
TSHARK_TOKENS = [
    ("any", r"^(?P<v>\s*\d+ +\d+\.\d+)(?= )"),      # frame number and time
    ("any", r"(?<=^Frame )(?P<v>\d+)(?=:)"),
    ("any", r"(?<=TSval=)(?P<v>\d+)"),
    ("any", r"(?<=TSecr=)(?P<v>\d+)"),
    ("any", r"(?<=\[Time since request: )(?P<v>[\d.]+)(?= seconds\])"),
    ("any", r"(?<=in frame: )(?P<v>\d+)(?=\])"),
    ("port", r"(?<![\d.:=])(?P<v>\d{5})(?![\d.])"),  # client ports (not Win=, MSS=)
]
VALUE = {"time": r"\d+\.\d+", "any": r".+?", "port": r"\d{5}",
         "hexport": r"3\d ?3\d ?3\d ?3\d ?3\d", "secret": r"[0-9a-f]{32}",
         "sig": r"[0-9a-f]{40}", "delivery": r"[0-9a-f]{8}-\d+",
         "jwt": JWT, "b64json": r"eyJ[A-Za-z0-9_-]+", "jwtsig": r"[A-Za-z0-9_-]{43}",
         "mac": r"(?:[0-9a-f]{2} ){31}[0-9a-f]{2}", "exp": r"\d{10}"}

def b64url(text):
    """The bytes of unpadded base64url, or None."""
    import base64, binascii
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        return None

def bind(binds, doc, got, one_to_one=False):
    """`binds` with doc -> got, or None if doc is bound to something else
    (or, one to one, got to another doc value)."""
    if doc in binds:
        return binds if binds[doc] == got else None
    if one_to_one and any(v == got for k, v in binds.items() if k != doc):
        return None
    new = dict(binds)
    new[doc] = got
    return new

def match_token(kind, doc, got, binds):
    """New bindings if an access token (or one of its parts) in the run
    matches the page's: the header exactly, the claims decoded and equal
    but for `exp`, the signature consistently and one to one."""
    if kind == "jwt":
        for k, d, g in zip(("b64json", "b64json", "jwtsig"), doc.split("."), got.split(".")):
            binds = match_token(k, d, g, binds)
            if binds is None:
                return None
        return bind(binds, doc, got, True)
    if kind == "b64json":
        d, g = b64url(doc), b64url(got)
        if d is None or g is None:
            return binds if doc == got else None
        return match_line(d.decode("latin-1"), g.decode("latin-1"), binds)
    if kind in ("jwtsig", "mac"):
        return bind(binds, doc, got, True)
    return bind(binds, doc, got)        # exp: two tokens may share one

def trim(lines):
    """Without leading and trailing blank lines."""
    lines = list(lines)
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    return lines

def squash(line):
    return re.sub(r"[ \t]+", " ", line).rstrip()

_pattern_cache = {}

def line_pattern(doc_line, tshark=False):
    """A regex for lines that match `doc_line`, and what each group is."""
    key = (doc_line, tshark)
    if key in _pattern_cache:
        return _pattern_cache[key]
    tokens = TOKENS + (TSHARK_TOKENS if tshark else [])
    spans = []
    for kind, rx in tokens:
        for m in re.finditer(rx, doc_line):
            s, e = m.span("v")
            if not any(s < e2 and s2 < e for s2, e2, _, _ in spans):
                spans.append((s, e, kind, m.group("v")))
    spans.sort()
    out, kinds, pos = "", [], 0
    for s, e, kind, value in spans:
        out += re.escape(doc_line[pos:s]) + "(" + VALUE[kind] + ")"
        kinds.append((kind, value))
        pos = e
    out += re.escape(doc_line[pos:])
    result = (re.compile(out), kinds)
    _pattern_cache[key] = result
    return result

def match_line(doc_line, actual, binds, tshark=False):
    """New bindings if `actual` matches `doc_line`, else None."""
    rx, kinds = line_pattern(doc_line, tshark)
    m = rx.fullmatch(actual)
    if not m:
        return None
    return bind_groups(kinds, m.groups(), binds)

def bind_groups(kinds, groups, binds):
    """New bindings if each variable part of a match (`groups`) agrees with
    the page's value of its kind, else None."""
    new = None
    for (kind, doc_value), got in zip(kinds, groups):
        if kind == "time":
            if abs(float(doc_value) - float(got)) > TOLERANCE:
                return None
        elif kind in ("jwt", "b64json", "jwtsig", "mac", "exp"):
            new = match_token(kind, doc_value, got, binds if new is None else new)
            if new is None:
                return None
        elif kind in ("port", "hexport", "secret", "sig", "delivery"):
            if kind == "hexport":       # compare as the port it spells
                doc_value = bytes.fromhex(doc_value.replace(" ", "")).decode()
                got = bytes.fromhex(got.replace(" ", "")).decode()
            bound = binds.get(doc_value) if new is None else new.get(doc_value)
            if bound is None:
                new = dict(binds) if new is None else new
                new[doc_value] = got
            elif bound != got:
                return None
    return binds if new is None else new

def match_from(doc, act, i, j, binds, tshark, full):
    """Matches doc[i:] against act[j:] (all of it when `full`)."""
    while i < len(doc):
        if doc[i] == "...":
            for k in range(j, len(act) + 1):
                r = match_from(doc, act, i + 1, k, binds, tshark, full)
                if r is not None:
                    return r
            return None
        if j >= len(act):
            return None
        b = match_line(doc[i], act[j], binds, tshark)
        if b is None:
            return None
        binds, i, j = b, i + 1, j + 1
    if full and j != len(act):
        return None
    return binds

def best_prefix(doc, act, binds, tshark, full):
    """For a failure report: the doc line where the best attempt stopped."""
    best = (0, 0)
    for start in ([0] if full else range(len(act))):
        i, j, b = 0, start, binds
        while i < len(doc) and j < len(act) and doc[i] != "...":
            nb = match_line(doc[i], act[j], b, tshark)
            if nb is None:
                break
            b, i, j = nb, i + 1, j + 1
        if i > best[0]:
            best = (i, j)
    return best

def explain(doc, act, binds, tshark, full):
    i, j = best_prefix(doc, act, binds, tshark, full) if act else (0, 0)
    if not full and i == 0:
        lines = ["no run of lines matches; the page's line %d:" % 1, "  page: " + doc[0]]
        return "\n".join(lines)
    if i == len(doc):
        return "the run printed more than the page shows:\n  run:  " + act[j]
    lines = ["the page's line %d does not match:" % (i + 1)]
    lines.append("  page: " + (doc[i] if i < len(doc) else "(end of block)"))
    lines.append("  run:  " + (act[j] if j < len(act) else "(end of output)"))
    return "\n".join(lines)

# ----- bytes -------------------------------------------------------------------------

HEXDUMP = re.compile(r"^([0-9a-f]{4})  (.{2,47}?)(?:  |$)")
HEXLINE = re.compile(r"^\s*(->|<-)?\s*((?:[0-9a-f]{2} )*[0-9a-f]{2})(?= |$)")

def parse_bytes_block(lines):
    """[(direction or None, bytes)]: a hex dump is one unit, every other
    line of hex bytes one unit."""
    units, dump = [], b""
    for line in lines:
        m = HEXDUMP.match(line)
        if m and all(re.fullmatch(r"[0-9a-f]{2}", t) for t in m.group(2).split()):
            dump += bytes.fromhex(m.group(2))
            continue
        m = HEXLINE.match(line)
        if m and len(m.group(2).split()) >= 2:
            units.append((m.group(1), bytes.fromhex(m.group(2))))
    if dump:
        units.insert(0, (None, dump))
    return units

def bytes_pattern(data):
    text = data.decode("latin-1")
    return line_pattern(text)

# ----- one page ---------------------------------------------------------------------

taken = set()

def free_port(avoid):
    """A free 4-digit port, not taken by another page, whose digits appear
    nowhere in the page (so that mapping it back to 8080 cannot touch
    anything else)."""
    while True:
        p = random.randint(2000, 9999)
        if p in WIRESHARK_HTTP or str(p) in avoid:
            continue
        with lock:
            if p in taken:
                continue
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", p))
            except OSError:
                continue
            finally:
                s.close()
            taken.add(p)
            return str(p)

class Page:
    def __init__(self, path):
        self.path = path
        self.name = os.path.relpath(path, REPO)
        self.dir = os.path.join(WORK, os.path.basename(path)[:-3])
        os.makedirs(os.path.join(self.dir, "target", "release"))
        os.symlink(os.path.join(REPO, "docs"), os.path.join(self.dir, "docs"))
        os.symlink(BIN, os.path.join(self.dir, "target", "release", "pushwire"))
        text = open(path).read()
        self.ports = {p: free_port(text) for p in DOC_PORTS}
        self.binds = {}
        self.outputs = []       # every line the page's commands printed
        self.traces = {}        # doc port -> [trace file of each server started there]
        self.shell = None
        self.env = {}           # what the page's `export NAME=VALUE` lines set
        self.wirelog = os.path.join(self.dir, "wire.log")

    # substitutions between the page's world and this run's
    def to_run(self, text):
        for doc, real in self.ports.items():
            text = re.sub(r"(?<!\d)%s(?!\d)" % doc, real, text)
        for doc, real in self.binds.items():
            if len(doc) >= 10:          # secrets, signatures, delivery ids
                text = text.replace(doc, real)
        return text

    def from_run(self, text):
        for doc, real in self.ports.items():
            text = re.sub(r"(?<![\d.])%s(?!\d)" % real, doc, text)
        return text

    def blocks(self):
        """(line number, marker, language, lines) of every fenced block."""
        lines = open(self.path).read().split("\n")
        out, marker, i, para, last = [], None, 0, [], []
        while i < len(lines):
            line = lines[i]
            m = re.match(r"^<!-- check (.*?) -->$", line.strip())
            if m and not m.group(1).startswith("needs:"):
                marker = m.group(1)
            elif m:
                pass
            elif line.startswith("```"):
                lang, start, body = line[3:].strip(), i + 1, []
                i += 1
                while i < len(lines) and not lines[i].startswith("```"):
                    body.append(lines[i])
                    i += 1
                out.append((start, marker, lang, body, para or last))
                marker, para, last = None, [], []
            elif line.strip():
                para.append(line)
                marker = None       # a marker belongs to the block right after it
            elif para:
                last, para = para, []
            i += 1
        return out

    # the page's shell
    def start_shell(self):
        env = dict(os.environ, PUSHWIRE_WIRE_LOG=self.wirelog, LC_ALL="C.UTF-8")
        self.shell = subprocess.Popen(["bash", "--norc", "--noprofile"], cwd=self.dir, env=env,
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, start_new_session=True)
        with lock:
            groups.append(self.shell.pid)
        self.shell.stdin.write(b"exec 2>&1\n")
        self.shell.stdin.flush()

    def run_in_shell(self, command):
        marker = "@@@done-%d@@@" % random.randint(0, 1 << 30)
        script = "{ %s\n} </dev/null\necho; echo %s\n" % (command, marker)
        self.shell.stdin.write(script.encode())
        self.shell.stdin.flush()
        out, deadline = b"", time.monotonic() + CMD_TIMEOUT
        fd = self.shell.stdout.fileno()
        while marker.encode() not in out:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            r, _, _ = select.select([fd], [], [], left)
            if r:
                chunk = os.read(fd, 65536)
                if not chunk:
                    return None
                out += chunk
        text = out.decode("utf-8", "backslashreplace").split(marker)[0]
        text = text[:-1]                    # the newline of the `echo` before the marker
        if not text:
            return []
        lines = text.split("\n")
        if lines[-1] == "":
            lines.pop()
        # tshark's warning when run as root (CI runs as root; a reader in
        # the wireshark group does not see it).
        lines = [l for l in lines if not l.startswith('Running as user "root"')]
        return [squash(self.from_run(l)) for l in lines]

    def start_server(self, command):
        """`target/release/pushwire FLAGS [2>FILE] [&]`, started by us."""
        m = re.match(r"^(?:target/release/pushwire|cargo run --release --)(.*?)(?:\s+2>\s*(\S+))?\s*&?\s*$", command)
        args = shlex.split(m.group(1))
        trace_name = m.group(2)
        doc_port = "8080"
        if "--addr" in args:
            k = args.index("--addr")
            doc_port = args[k + 1].rsplit(":", 1)[1]
            del args[k:k + 2]
        args = [self.to_run(a) for a in args]
        trace = os.path.join(self.dir, trace_name or "server-%s-%d.log" % (doc_port, len(servers)))
        proc = subprocess.Popen([BIN, "--addr", "127.0.0.1:" + self.ports.get(doc_port, doc_port)] + args,
                                stdout=subprocess.PIPE, stderr=open(trace, "w"), cwd=self.dir,
                                env=dict(os.environ, **self.env))
        with lock:
            servers.append(proc)
        self.traces.setdefault(doc_port, []).append(trace)
        r, _, _ = select.select([proc.stdout], [], [], 5)
        first = proc.stdout.readline().decode().rstrip("\n") if r else ""
        return [squash(self.from_run(first))] if first else []

    def needs(self, commands):
        text = " ".join(commands)
        if ("tshark" in text or "capture.sh" in text) and not HAVE_TSHARK:
            return "tshark (as root) is not available"
        if "redis-" in text and not HAVE_REDIS:
            return "redis-server is not installed"
        return None

    def run_console(self, start, lines):
        """Runs each `$ ` command and compares its output."""
        cmds, cur = [], None
        for n, line in enumerate(lines):
            if line.startswith("$ ") or line.startswith("# "):
                cur = [start + n, line[2:], []]
                cmds.append(cur)
            elif cur is not None and cur[1].endswith("\\") and not cur[2]:
                cur[1] = cur[1][:-1] + " " + line.strip()
            elif cur is not None:
                cur[2].append(squash(line))
        why = self.needs([c[1] for c in cmds])
        if why:
            for lineno, command, _ in cmds:
                report(None, "%s:%d" % (self.name, lineno), "$ " + command[:60], why)
            return
        for lineno, command, expected in cmds:
            where = "%s:%d" % (self.name, lineno)
            what = "$ " + (command if len(command) <= 70 else command[:67] + "...")
            m = re.match(r"^export ([A-Za-z_][A-Za-z0-9_]*)=(\S+)$", command)
            if m:
                self.env[m.group(1)] = shlex.split(m.group(2))[0]
            if re.match(r"^(target/release/pushwire|cargo run --release --)( |$)(?!token( |$))", command) \
                    and "--help" not in command:
                actual = self.start_server(command)
            else:
                if self.shell is None:
                    self.start_shell()
                actual = self.run_in_shell(self.to_run(command))
                if actual is None:
                    report(False, where, what, "did not finish within %d s" % CMD_TIMEOUT)
                    continue
            self.outputs += actual
            if not expected:
                report(True, where, what)
                continue
            tshark = command.startswith("tshark")
            expected, actual = trim(expected), trim(actual)
            b = match_from(expected, actual, 0, 0, self.binds, tshark, True)
            if b is None:
                report(False, where, what, explain(expected, actual, self.binds, tshark, True))
            else:
                self.binds = b
                report(True, where, what)

    def check_text(self, start, marker, lines, prose):
        where = "%s:%d" % (self.name, start)
        kind = marker.split()[0]
        doc = [squash(l) for l in lines]
        while doc and not doc[-1]:
            doc.pop()
        if kind == "view":
            self.search(where, "view", doc, self.outputs)
        elif kind == "trace":
            port = marker.split()[1] if len(marker.split()) > 1 else "8080"
            files = self.traces.get(port)
            if not files:
                return report(None, where, "trace", "no server on port %s ran (see above)" % port)
            actual = []
            for f in files:
                for l in open(f, errors="backslashreplace").read().split("\n"):
                    if l and not re.match(r"^\[\d{4}-", l):
                        actual.append(squash(self.from_run(l)))
            self.search(where, "trace", doc, actual)
        elif kind == "bytes":
            self.check_bytes(where, lines, prose)
        else:
            report(False, where, "marker", "unknown marker %r" % marker)

    def search(self, where, what, doc, actual):
        for j in range(len(actual) + 1):
            b = match_from(doc, actual, 0, j, self.binds, False, False)
            if b is not None:
                self.binds = b
                return report(True, where, what)
        report(False, where, what, explain(doc, actual, self.binds, False, False))

    def check_bytes(self, where, lines, prose):
        if not os.path.exists(self.wirelog):
            return report(None, where, "bytes", "docs/tools/wire.py did not run on this page")
        streams = {}
        for l in open(self.wirelog):
            e = json.loads(l)
            streams.setdefault((e["conn"], e["dir"]), bytearray()).extend(bytes.fromhex(e["hex"]))
        texts = [(d, self.from_run(bytes(s).decode("latin-1"))) for (c, d), s in streams.items()]
        units = parse_bytes_block(lines)
        if not units:
            return report(False, where, "bytes", "no bytes found in the block")
        problems = []
        count = re.search(r"\((\d+) bytes\):$|(\d+) bytes:$", prose[-1].strip()) if prose else None
        if count and len(units) == 1:
            n = int(count.group(1) or count.group(2))
            if n != len(units[0][1]):
                problems.append("the text says %d bytes; the block shows %d" % (n, len(units[0][1])))
        for direction, data in units:
            rx, kinds = bytes_pattern(data)
            found = False
            for d, text in texts:
                if direction and d != direction:
                    continue
                for m in rx.finditer(text):
                    b = bind_groups(kinds, m.groups(), self.binds)
                    if b is not None:
                        self.binds, found = b, True
                        break
                if found:
                    break
            if not found:
                problems.append("never %s: %s" % ({"->": "sent", "<-": "received"}.get(direction, "on the wire"),
                                                   data[:24].hex(" ") + (" ..." if len(data) > 24 else "")))
        if problems:
            report(False, where, "bytes", "\n".join(problems))
        else:
            report(True, where, "bytes (%d bytes)" % sum(len(d) for _, d in units))

    def run(self):
        text = open(self.path).read()
        for tool in re.findall(r"<!-- check needs: (\S+) -->", text):
            have = HAVE_TSHARK if tool == "tshark" else HAVE_REDIS if tool == "redis-server" else shutil.which(tool)
            if not have:
                return report(None, self.name, "the whole page", "%s is not available" % tool)
        try:
            self.check_tokens(text)
            blocks = self.blocks()
            for start, marker, lang, lines, prose in blocks:
                if marker and marker.startswith("skip"):
                    continue
                if lang == "console" and marker is None:
                    self.run_console(start, lines)
            time.sleep(0.3)     # the last trace lines (closes) reach their files
            for start, marker, lang, lines, prose in blocks:
                if marker and not marker.startswith("skip") and lang != "console":
                    self.check_text(start, marker, lines, prose)
        except Exception as e:
            import traceback
            report(False, self.name, "the check itself failed", traceback.format_exc())
        finally:
            self.stop()

    def check_tokens(self, text):
        """Every access token the page shows verifies with the secret the
        page shows, and every part, claims set and HMAC it shows alone is
        one of those tokens': what a reader recomputes from the page agrees
        with the page."""
        import base64, hmac, hashlib
        tokens = sorted(set(re.findall(JWT, text)))
        if not tokens:
            return
        m = re.search(r"PUSHWIRE_TOKEN_SECRET=(\S+)", text)
        if not m:
            return report(False, self.name, "tokens", "the page shows tokens but no PUSHWIRE_TOKEN_SECRET=")
        secret = shlex.split(m.group(1))[0].encode()
        problems = []
        parts, claims, macs = set(), set(), set()
        for t in tokens:
            h, c, sig = t.split(".")
            mac = hmac.new(secret, (h + "." + c).encode(), hashlib.sha256).digest()
            if b64url(sig) != mac:
                problems.append("not signed with the page's secret: " + t[:40] + "...")
            parts |= {h, c, sig}
            claims.add(b64url(c).decode("latin-1"))
            macs.add(b64url(sig).hex(" "))
        fenced = False
        for line in text.split("\n"):
            line = line.strip()
            if line.startswith("```"):
                fenced = not fenced
                continue
            if not fenced:
                continue
            for p in re.findall(r"(?<![A-Za-z0-9_.-])eyJ[A-Za-z0-9_-]+(?![A-Za-z0-9_.-])", line):
                if p not in parts:
                    problems.append("a part of no token on the page: " + p[:40])
            if re.fullmatch(r"[A-Za-z0-9_-]{43}", line) and line not in parts:
                problems.append("a signature of no token on the page: " + line)
            if re.fullmatch(r"(?:[0-9a-f]{2} ){31}[0-9a-f]{2}", line) and line not in macs:
                problems.append("an HMAC of no token on the page: " + line[:23] + " ...")
            if line.startswith("{") and '"exp":' in line and line not in claims:
                problems.append("claims of no token on the page: " + line[:60])
        if problems:
            report(False, self.name, "tokens", "\n".join(problems))
        else:
            report(True, self.name, "tokens (%d, signed with the page's secret)" % len(tokens))

    def stop(self):
        if self.shell is not None:
            try:
                os.killpg(self.shell.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

def stop_everything(*_):
    global stopping
    stopping = True
    for p in servers:
        if p.poll() is None:
            p.kill()
    for g in groups:
        try:
            os.killpg(g, signal.SIGKILL)
        except ProcessLookupError:
            pass
    shutil.rmtree(WORK, ignore_errors=True) if os.environ.get("KEEP") != "1" else None
    print("docs: interrupted", flush=True)
    os._exit(1)         # the page threads die with the process

signal.signal(signal.SIGTERM, stop_everything)
signal.signal(signal.SIGINT, stop_everything)

# ----- links ---------------------------------------------------------------------

def slug(heading):
    """The anchor GitHub gives a heading."""
    text = heading.strip().lower().replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")

def anchors(path):
    found, seen, fenced = set(), {}, False
    for line in open(path).read().split("\n"):
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and re.match(r"^#{1,6} ", line):
            a = slug(line.lstrip("#"))
            n = seen.get(a, 0)
            seen[a] = n + 1
            found.add(a if n == 0 else "%s-%d" % (a, n))
    return found

def check_links(path):
    """Every relative link of a page leads to a file, and its #anchor to a
    heading of that file."""
    where = os.path.relpath(path, REPO)
    broken, fenced = [], False
    for line in open(path).read().split("\n"):
        if line.startswith("```"):
            fenced = not fenced
            continue
        if fenced:
            continue
        for target in re.findall(r"\]\(([^)\s]+)\)", line):
            if re.match(r"^[a-z]+:", target):
                continue
            file_part, _, anchor = target.partition("#")
            dest = os.path.normpath(os.path.join(os.path.dirname(path), file_part)) if file_part else path
            if not dest.startswith(REPO + os.sep) or not os.path.exists(dest):
                broken.append(target + " (no such file in the clone)")
            elif anchor and dest.endswith(".md") and anchor not in anchors(dest):
                broken.append(target + " (no such heading)")
    if broken:
        report(False, where, "links", "\n".join(broken))
    else:
        report(True, where, "links")

ONLY = os.environ.get("ONLY", "")
pages = [Page(os.path.join(REPO, "docs", f)) for f in sorted(os.listdir(os.path.join(REPO, "docs")))
         if f.endswith(".md") and (not ONLY or f[:-3] in ONLY.split(","))]
if not ONLY:
    check_links(os.path.join(REPO, "README.md"))
for p in pages:
    check_links(p.path)
threads = [threading.Thread(target=p.run, daemon=True) for p in pages]
for t in threads:
    t.start()
for t in threads:
    t.join()
for p in servers:
    if p.poll() is None:
        p.terminate()
for p in servers:
    try:
        p.wait(timeout=5)
    except subprocess.TimeoutExpired:
        p.kill()
for g in groups:
    try:
        os.killpg(g, signal.SIGKILL)
    except ProcessLookupError:
        pass
passed = sum(1 for r in results if r[0] is True)
failed = sum(1 for r in results if r[0] is False)
skipped = sum(1 for r in results if r[0] is None)
if skipped:
    print("(%d skipped)" % skipped)
print("docs: %d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
PY
PY_PID=$!
wait "$PY_PID"
rc=$?
PY_PID=
exit $rc
