//! Hostile clients over real sockets, against the real `pushwire` binary
//! (docs/api.md "HTTP, errors and limits", section 3 "Slow consumers" and section
//! 5 "Observability"): slowloris heads and slow bodies, thousands of idle
//! connections up to `--max-conns`, readers that never read, resets in the
//! middle of a frame, a chunk or a response, half-closed sockets, random
//! bytes to every endpoint, a ping flood and a pong flood, and graceful
//! shutdown on SIGTERM and SIGINT. Section 10 (issue 13, docs/api.md sections 2,
//! 4 and 7) tries what an anonymous client could use to exhaust the server
//! or make it call itself: junk channels, history by bytes, replays to
//! clients that never read, webhook self-loops, `--max-webhooks`, the
//! `Origin` rule for webhooks, chunked framing, a flood of tiny frames,
//! the receiver's bodies, and shutdown with Redis; each prints a
//! `bounds:` line (flags, peak RSS growth, the canary's slowest request)
//! for the README's table.
//!
//! Every attack runs next to a *canary*: a thread that keeps making normal
//! requests (`GET /stats` and a `/echo` WebSocket round trip every 20 ms)
//! and fails the test if any one of them fails or takes longer than
//! `CANARY_LIMIT`. After each attack the server's resident memory
//! (`VmRSS` in `/proc/<pid>/status`) must come back near its baseline; the
//! attacks that open thousands of connections run several rounds and
//! compare the rounds with each other, so that a leak of a few hundred
//! bytes per connection shows even though the allocator keeps its
//! high-water mark.

mod common;

use common::sse::Sse;
use common::ws::{frame, frame_header, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT};
use common::{find, parse_json, wait_for, JsonValue, Server};
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};
use tungstenite::{Message, WebSocket};

// ---------------------------------------------------------------------------
// Small tools: a PRNG, process memory, /stats, raw HTTP and WebSocket.
// ---------------------------------------------------------------------------

/// The longest a canary request may take.
const CANARY_LIMIT: Duration = Duration::from_millis(500);
/// How often the canary asks.
const CANARY_PERIOD: Duration = Duration::from_millis(20);
/// KiB in a MiB (RSS is read in KiB).
const MIB: u64 = 1024;

/// Deterministic xorshift64 (Marsaglia), so a failure can be replayed.
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> Self {
        XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
    fn pick_from(&mut self, n: usize, alphabet: &[u8]) -> Vec<u8> {
        (0..n)
            .map(|_| alphabet[self.below(alphabet.len() as u64) as usize])
            .collect()
    }
}

/// The process's resident set size in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/status: {e}"));
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in /proc/{pid}/status"))
}

/// Whether the process exists and is not a zombie (a crashed child stays a
/// zombie until the harness reaps it).
fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.trim_start().chars().next());
            !matches!(state, None | Some('Z') | Some('X'))
        }
        Err(_) => false,
    }
}

/// RSS after a short pause, once warm-up allocations are done.
fn baseline_rss(pid: u32) -> u64 {
    thread::sleep(Duration::from_millis(300));
    rss_kib(pid)
}

/// Waits (up to 5 s) for RSS to be at most `base + slack` KiB; panics with
/// the numbers if it does not get there.
fn expect_rss_settles(pid: u32, base: u64, slack: u64, what: &str) -> u64 {
    let limit = base + slack;
    let mut last = 0;
    let got = wait_for(Duration::from_secs(5), || {
        last = rss_kib(pid);
        (last <= limit).then_some(last)
    });
    match got {
        Some(r) => {
            eprintln!("{what}: RSS {r} KiB (baseline {base} KiB, limit {limit} KiB)");
            r
        }
        None => panic!(
            "{what}: server RSS stayed at {last} KiB, above baseline {base} KiB + {slack} KiB, \
             for 5 s after the attack"
        ),
    }
}

/// Samples a process's RSS every 20 ms on a thread and keeps the maximum.
struct RssWatch {
    stop: Arc<AtomicBool>,
    max: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl RssWatch {
    fn start(pid: u32) -> RssWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let max = Arc::new(AtomicU64::new(rss_kib(pid)));
        let (s, m) = (stop.clone(), max.clone());
        let thread = thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                if !process_alive(pid) {
                    return;
                }
                m.fetch_max(rss_kib(pid), Ordering::Relaxed);
                thread::sleep(Duration::from_millis(20));
            }
        });
        RssWatch {
            stop,
            max,
            thread: Some(thread),
        }
    }
    fn max(&self) -> u64 {
        self.max.load(Ordering::Relaxed)
    }
    fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.max()
    }
}

/// `GET /stats` on a fresh connection, parsed.
fn stats(server: &Server) -> JsonValue {
    let r = server.get("/stats");
    assert_eq!(r.status, 200, "GET /stats: {}", r.text());
    parse_json(&r.text()).expect("/stats is JSON")
}

/// `GET /stats` on an existing keep-alive connection, parsed.
fn stats_on(s: &mut TcpStream, addr: SocketAddr) -> JsonValue {
    s.write_all(format!("GET /stats HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .expect("write GET /stats");
    let r = try_read_response(s).expect("an answer to GET /stats");
    assert_eq!(r.status, 200);
    parse_json(&String::from_utf8_lossy(&r.body)).expect("/stats is JSON")
}

/// A number in the stats at a dotted path such as `closed.slow`.
fn stat(v: &JsonValue, path: &str) -> u64 {
    path.split('.')
        .try_fold(v, |v, k| v.get(k))
        .and_then(JsonValue::as_f64)
        .unwrap_or_else(|| panic!("no number at {path} in /stats: {v:?}")) as u64
}

/// Open connections of every kind.
fn open_total(v: &JsonValue) -> u64 {
    let open = v
        .get("connections")
        .and_then(|c| c.get("open"))
        .expect("connections.open in /stats");
    open.keys()
        .iter()
        .map(|k| open.get(k).and_then(JsonValue::as_f64).unwrap_or(0.0) as u64)
        .sum()
}

/// A connection with timeouts, so nothing here can hang a test.
fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// Closes a socket with a TCP reset instead of a FIN: `SO_LINGER` with a
/// zero timeout (std's `set_linger` is still unstable, so the libc symbol
/// std links anyway is declared here).
fn reset(s: TcpStream) {
    extern "C" {
        fn setsockopt(fd: i32, level: i32, name: i32, value: *const u8, len: u32) -> i32;
    }
    const SOL_SOCKET: i32 = 1;
    const SO_LINGER: i32 = 13;
    let linger: [i32; 2] = [1, 0]; // struct linger { l_onoff = 1, l_linger = 0 }
                                   // SAFETY: a valid descriptor and a pointer to 8 readable bytes.
    let rc = unsafe {
        setsockopt(
            s.as_raw_fd(),
            SOL_SOCKET,
            SO_LINGER,
            linger.as_ptr().cast(),
            std::mem::size_of_val(&linger) as u32,
        )
    };
    assert_eq!(rc, 0, "setsockopt(SO_LINGER)");
    drop(s);
}

/// A response read without panicking (for threads that must report, not
/// die): the head, and a body framed by Content-Length (or none).
#[derive(Debug)]
struct Resp {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.split("\r\n").skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
    fn json(&self) -> Result<JsonValue, String> {
        parse_json(&String::from_utf8_lossy(&self.body))
    }
}

fn try_read_response(s: &mut TcpStream) -> Result<Resp, String> {
    let mut buf = Vec::new();
    let end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 4096];
        match s.read(&mut chunk) {
            Ok(0) => return Err(format!("EOF after {} bytes of head", buf.len())),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(format!("reading the head: {e}")),
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line in {head:?}"))?;
    let mut r = Resp {
        status,
        head,
        body: buf[end..].to_vec(),
    };
    if let Some(len) = r.header("content-length") {
        let len: usize = len.parse().map_err(|_| "bad Content-Length".to_string())?;
        while r.body.len() < len {
            let mut chunk = [0u8; 16384];
            match s.read(&mut chunk) {
                Ok(0) => return Err("EOF inside the body".into()),
                Ok(n) => r.body.extend_from_slice(&chunk[..n]),
                Err(e) => return Err(format!("reading the body: {e}")),
            }
        }
        r.body.truncate(len);
    }
    Ok(r)
}

/// Reads until EOF or a reset; `Err` if that does not happen within the
/// socket's read timeout (counted once for the whole, not per read, so a
/// stream that keeps talking cannot hold it). Returns what came.
fn read_to_close(s: &mut TcpStream) -> Result<Vec<u8>, (io::Error, Vec<u8>)> {
    let limit = s
        .read_timeout()
        .ok()
        .flatten()
        .unwrap_or(Duration::from_secs(5));
    let end = Instant::now() + limit;
    let mut got = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let e = io::Error::new(ErrorKind::TimedOut, "no EOF within the read timeout");
            return Err((e, got));
        }
        let _ = s.set_read_timeout(Some(left));
        match s.read(&mut chunk) {
            Ok(0) => return Ok(got),
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err((e, got))
            }
            // A reset also ends the connection.
            Err(_) => return Ok(got),
        }
    }
}

/// The status of the first response in `bytes`, if it starts with one.
fn first_status(bytes: &[u8]) -> Option<u16> {
    let rest = bytes.strip_prefix(b"HTTP/1.1 ")?;
    std::str::from_utf8(rest.get(..3)?).ok()?.parse().ok()
}

// ----- WebSocket, raw --------------------------------------------------------

/// A raw WebSocket client connection after its `101`.
struct RawWs {
    s: TcpStream,
    buf: Vec<u8>,
    pos: usize,
}

impl RawWs {
    /// Connects and upgrades on `path`; panics unless the answer is `101`.
    fn open(addr: SocketAddr, path: &str) -> RawWs {
        let mut s = connect(addr);
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        s.write_all(req.as_bytes()).expect("write upgrade");
        let mut buf = Vec::new();
        let end = loop {
            if let Some(i) = find(&buf, b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            match s.read(&mut chunk) {
                Ok(0) => panic!("EOF before the 101 on {path}"),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) => panic!("no 101 on {path}: {e}"),
            }
        };
        assert_eq!(
            first_status(&buf),
            Some(101),
            "upgrade on {path}: {:?}",
            String::from_utf8_lossy(&buf)
        );
        RawWs { s, buf, pos: end }
    }

    /// The next server frame as (first byte, payload); `Ok(None)` on EOF.
    fn next_frame(&mut self) -> io::Result<Option<(u8, Vec<u8>)>> {
        loop {
            let avail = &self.buf[self.pos..];
            if avail.len() >= 2 {
                let mut len = (avail[1] & 0x7f) as usize;
                let mut at = 2;
                if len == 126 && avail.len() >= 4 {
                    len = u16::from_be_bytes([avail[2], avail[3]]) as usize;
                    at = 4;
                } else if len == 127 && avail.len() >= 10 {
                    len = u64::from_be_bytes(avail[2..10].try_into().unwrap()) as usize;
                    at = 10;
                }
                let complete = (avail[1] & 0x7f) < 126 || at > 2;
                if complete && avail.len() >= at + len {
                    let frame = (avail[0], avail[at..at + len].to_vec());
                    self.pos += at + len;
                    if self.pos > 1 << 20 {
                        self.buf.drain(..self.pos);
                        self.pos = 0;
                    }
                    return Ok(Some(frame));
                }
            }
            let mut chunk = [0u8; 65536];
            match self.s.read(&mut chunk) {
                Ok(0) => return Ok(None),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads frames until a pong arrives (others are skipped).
    fn until_pong(&mut self) {
        loop {
            match self.next_frame() {
                Ok(Some((b0, _))) if b0 & 0x0f == OP_PONG => return,
                Ok(Some(_)) => {}
                other => panic!("waiting for a pong: {other:?}"),
            }
        }
    }
}

/// A tungstenite client over a plain stream with timeouts.
fn ws_client(addr: SocketAddr, path: &str) -> Result<WebSocket<TcpStream>, String> {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    s.set_nodelay(true).map_err(|e| e.to_string())?;
    let (ws, resp) = tungstenite::client::client(format!("ws://{addr}{path}"), s)
        .map_err(|e| format!("handshake on {path}: {e}"))?;
    if resp.status().as_u16() != 101 {
        return Err(format!("status {} on {path}", resp.status()));
    }
    Ok(ws)
}

// ---------------------------------------------------------------------------
// The canary.
// ---------------------------------------------------------------------------

/// How the canary makes its HTTP requests.
#[derive(Clone, Copy, PartialEq)]
enum CanaryHttp {
    /// A new connection per request (exercises accept).
    Fresh,
    /// One keep-alive connection, opened before the attack (for when the
    /// server is full on purpose).
    KeepAlive,
}

/// A thread that keeps making normal requests and records any that fails
/// or is slower than `CANARY_LIMIT`.
struct Canary {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<CanaryReport>>,
}

#[derive(Debug, Default)]
struct CanaryReport {
    rounds: u64,
    failures: Vec<String>,
    slowest: Duration,
}

impl Canary {
    /// Connects its WebSocket (and keep-alive connection) before returning,
    /// so the slots are taken before any attack.
    fn start(addr: SocketAddr, mode: CanaryHttp) -> Canary {
        Canary::start_with_limit(addr, mode, CANARY_LIMIT)
    }

    /// [`Canary::start`] with another bound than `CANARY_LIMIT` on each
    /// request (for attacks whose fair share of the loop is, in a debug
    /// build, longer than that: say why where it is used).
    fn start_with_limit(addr: SocketAddr, mode: CanaryHttp, limit: Duration) -> Canary {
        let mut ws = Some(ws_client(addr, "/echo").expect("canary WebSocket"));
        let mut ka = match mode {
            CanaryHttp::KeepAlive => Some(connect(addr)),
            CanaryHttp::Fresh => None,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let st = stop.clone();
        let thread = thread::spawn(move || {
            let mut rep = CanaryReport::default();
            let began = Instant::now();
            let note =
                |rep: &mut CanaryReport, what: String, dt: Duration, res: Result<(), String>| {
                    rep.slowest = rep.slowest.max(dt);
                    let failed = match res {
                        Err(e) => Some(e),
                        Ok(()) if dt > limit => Some(format!("took {dt:?}")),
                        Ok(()) => None,
                    };
                    if let Some(why) = failed {
                        if rep.failures.len() < 20 {
                            rep.failures
                                .push(format!("at {:?}: {what}: {why}", began.elapsed()));
                        }
                        return false;
                    }
                    true
                };
            // At least one round, however short the attack: a test that
            // ends before the thread got a turn would otherwise find that
            // "the canary never ran" (seen under load on 2 cores).
            while rep.rounds == 0 || !st.load(Ordering::Relaxed) {
                rep.rounds += 1;
                let t = Instant::now();
                let res = canary_http(addr, ka.as_mut(), limit.max(Duration::from_secs(2)));
                if !note(&mut rep, "GET /stats".into(), t.elapsed(), res)
                    && mode == CanaryHttp::KeepAlive
                {
                    ka = Some(connect(addr));
                }
                let t = Instant::now();
                let text = format!("canary {}", rep.rounds);
                let res = match ws.as_mut() {
                    Some(ws) => canary_echo(ws, &text),
                    None => Err("no WebSocket".to_string()),
                };
                if !note(&mut rep, "/echo round trip".into(), t.elapsed(), res) {
                    ws = ws_client(addr, "/echo").ok();
                }
                thread::sleep(CANARY_PERIOD);
            }
            if let Some(mut ws) = ws {
                let _ = ws.close(None);
                let _ = ws.flush();
            }
            rep
        });
        Canary {
            stop,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> CanaryReport {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .unwrap()
            .join()
            .expect("canary thread panicked")
    }

    /// Stops the canary and asserts every request it made was served fast;
    /// returns its slowest request.
    fn check(self, what: &str) -> Duration {
        let rep = self.finish();
        eprintln!(
            "{what}: canary made {} rounds, slowest request {:?}",
            rep.rounds, rep.slowest
        );
        assert!(
            rep.failures.is_empty(),
            "{what}: other clients were not served well during the attack:\n{}",
            rep.failures.join("\n")
        );
        assert!(rep.rounds >= 1, "{what}: the canary never ran");
        rep.slowest
    }
}

impl Drop for Canary {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn canary_http(addr: SocketAddr, ka: Option<&mut TcpStream>, wait: Duration) -> Result<(), String> {
    let mut fresh;
    let s = match ka {
        Some(s) => s,
        None => {
            fresh = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
                .map_err(|e| format!("connect: {e}"))?;
            fresh
                .set_read_timeout(Some(wait))
                .map_err(|e| e.to_string())?;
            let _ = fresh.set_nodelay(true);
            &mut fresh
        }
    };
    s.write_all(format!("GET /stats HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .map_err(|e| format!("write: {e}"))?;
    let r = try_read_response(s)?;
    if r.status != 200 {
        return Err(format!("status {}", r.status));
    }
    r.json().map(|_| ())
}

fn canary_echo(ws: &mut WebSocket<TcpStream>, text: &str) -> Result<(), String> {
    ws.send(Message::Text(text.to_string()))
        .map_err(|e| format!("send: {e}"))?;
    loop {
        match ws.read().map_err(|e| format!("read: {e}"))? {
            Message::Text(t) if t == text => return Ok(()),
            Message::Ping(_) | Message::Pong(_) => {}
            other => return Err(format!("unexpected {other:?}")),
        }
    }
}

/// Touches the main paths once, so that what the server allocates on first
/// use (the date cache, a channel, buffers) is part of the baseline.
fn warm_up(server: &Server) {
    assert_eq!(server.get("/stats").status, 200);
    assert_eq!(server.get("/").status, 200);
    assert_eq!(server.post("/channels/warm", b"hello").status, 201);
    assert_eq!(
        server.get("/channels/warm/poll?after=0&timeout=0").status,
        200
    );
    assert_eq!(server.post("/submit?duration_ms=0", b"").status, 202);
    let mut ws = ws_client(server.addr, "/echo").unwrap();
    canary_echo(&mut ws, "warm").unwrap();
    let _ = ws.close(None);
    let _ = ws.flush();
}

// ---------------------------------------------------------------------------
// The trickle engine: many connections, each sending a byte at a time.
// ---------------------------------------------------------------------------

struct Trickle {
    /// Sent at once on connect.
    prefix: Vec<u8>,
    /// Then one byte of this (cycled) per tick; empty: send nothing more.
    drip: Vec<u8>,
}

#[derive(Debug)]
struct Trickled {
    got: Vec<u8>,
    /// When the server ended the connection, counted from the prefix.
    ended: Option<Duration>,
    how: String,
    dripped: usize,
}

/// Runs every trickle at once on non-blocking sockets (one thread, 10 ms
/// steps) until the server ends each, or `give_up` passes for it.
fn trickle(
    addr: SocketAddr,
    specs: Vec<Trickle>,
    every: Duration,
    give_up: Duration,
) -> Vec<Trickled> {
    struct St {
        s: TcpStream,
        start: Instant,
        next: Instant,
        drip: Vec<u8>,
        out: Trickled,
    }
    let mut all: Vec<St> = specs
        .into_iter()
        .map(|sp| {
            let mut s = connect(addr);
            // The prefix and the first drip leave at once: a connection
            // that has sent something is judged from its first byte.
            let mut first = sp.prefix;
            first.extend(sp.drip.first());
            if !first.is_empty() {
                s.write_all(&first).expect("write the first bytes");
            }
            s.set_nonblocking(true).unwrap();
            let start = Instant::now();
            St {
                s,
                start,
                next: start + every,
                out: Trickled {
                    got: Vec::new(),
                    ended: None,
                    how: "still open".into(),
                    dripped: usize::from(!sp.drip.is_empty()),
                },
                drip: sp.drip,
            }
        })
        .collect();
    let mut chunk = [0u8; 4096];
    loop {
        let now = Instant::now();
        let mut waiting = 0;
        for st in all.iter_mut().filter(|st| st.out.ended.is_none()) {
            loop {
                match st.s.read(&mut chunk) {
                    Ok(0) => {
                        st.out.ended = Some(st.start.elapsed());
                        st.out.how = "EOF".into();
                        break;
                    }
                    Ok(n) => st.out.got.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => {
                        st.out.ended = Some(st.start.elapsed());
                        st.out.how = format!("read error: {e}");
                        break;
                    }
                }
            }
            if st.out.ended.is_some() {
                continue;
            }
            if !st.drip.is_empty() && now >= st.next {
                let b = st.drip[st.out.dripped % st.drip.len()];
                match st.s.write(&[b]) {
                    Ok(1) => st.out.dripped += 1,
                    Ok(_) => {}
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(e) => {
                        st.out.ended = Some(st.start.elapsed());
                        st.out.how = format!("write error: {e}");
                        continue;
                    }
                }
                st.next += every;
            }
            if now.duration_since(st.start) < give_up {
                waiting += 1;
            }
        }
        if waiting == 0 {
            break;
        }
        thread::sleep(Duration::from_millis(10));
    }
    all.into_iter().map(|st| st.out).collect()
}

/// Asserts a trickled connection got exactly one `408` JSON error (after
/// `skip` earlier answers) and was then closed, within `bound`.
fn assert_408(i: usize, t: &Trickled, bound: Duration, what: &str) {
    let text = String::from_utf8_lossy(&t.got);
    let ended = t.ended.unwrap_or_else(|| {
        panic!(
            "{what} #{i}: never cut (sent {} bytes); got {text:?}",
            t.dripped
        )
    });
    assert!(
        ended <= bound,
        "{what} #{i}: cut only after {ended:?} (bound {bound:?}); got {text:?}"
    );
    assert_eq!(t.how, "EOF", "{what} #{i}: {}; got {text:?}", t.how);
    let at = find(&t.got, b"HTTP/1.1 408 ")
        .unwrap_or_else(|| panic!("{what} #{i}: no 408 before the close; got {text:?}"));
    let resp = &t.got[at..];
    let head_end = find(resp, b"\r\n\r\n").expect("a complete 408 head") + 4;
    let head = String::from_utf8_lossy(&resp[..head_end]).to_ascii_lowercase();
    assert!(
        head.contains("content-type: application/json"),
        "{what} #{i}: 408 without JSON: {head:?}"
    );
    let body = parse_json(&String::from_utf8_lossy(&resp[head_end..]))
        .unwrap_or_else(|e| panic!("{what} #{i}: 408 body is not JSON ({e}): {text:?}"));
    assert!(
        body.get("error").and_then(JsonValue::as_str).is_some(),
        "{what} #{i}: 408 body without error: {body:?}"
    );
}

// ---------------------------------------------------------------------------
// 1. Slowloris heads.
// ---------------------------------------------------------------------------

#[test]
fn slowloris_heads_get_408_and_others_are_served() {
    let server = Server::start(&["--header-timeout-ms", "500"]);
    let pid = server.pid();
    let canary = Canary::start(server.addr, CanaryHttp::Fresh);
    warm_up(&server);
    let base = baseline_rss(pid);
    let before = stats(&server);

    let mut slow_head = b"GET /stats HTTP/1.1\r\nHost: slowloris\r\nX-Slow: ".to_vec();
    slow_head.extend(std::iter::repeat_n(b'a', 200));
    const SLOW: usize = 200;
    const SILENT: usize = 20;
    for round in 0..2 {
        let mut specs: Vec<Trickle> = (0..SLOW)
            .map(|_| Trickle {
                prefix: Vec::new(),
                drip: slow_head.clone(),
            })
            .collect();
        specs.extend((0..SILENT).map(|_| Trickle {
            prefix: Vec::new(),
            drip: Vec::new(),
        }));
        let out = trickle(
            server.addr,
            specs,
            Duration::from_millis(100),
            Duration::from_secs(4),
        );
        for (i, t) in out[..SLOW].iter().enumerate() {
            assert_408(
                i,
                t,
                Duration::from_millis(1500),
                &format!("round {round}: slow head"),
            );
        }
        // docs/api.md: a connection that sends nothing at all is closed
        // silently after the header timeout.
        for (i, t) in out[SLOW..].iter().enumerate() {
            assert!(
                t.ended.is_some_and(|d| d <= Duration::from_millis(1500)),
                "round {round}: silent connection #{i} not closed in time: {t:?}"
            );
            assert!(
                t.got.is_empty(),
                "silent connection #{i} got {:?}",
                String::from_utf8_lossy(&t.got)
            );
        }
    }

    let after = stats(&server);
    assert!(
        stat(&after, "closed.timeout")
            >= stat(&before, "closed.timeout") + 2 * (SLOW + SILENT) as u64,
        "closed.timeout did not count the timeouts: {after:?}"
    );
    canary.check("slowloris heads");
    expect_rss_settles(pid, base, 8 * MIB, "slowloris heads");
}

// ---------------------------------------------------------------------------
// 2. Slow bodies.
// ---------------------------------------------------------------------------

#[test]
fn slow_bodies_are_cut_in_bounded_time() {
    let server = Server::start(&["--header-timeout-ms", "500"]);
    let pid = server.pid();
    let addr = server.addr;
    let canary = Canary::start(addr, CanaryHttp::Fresh);
    warm_up(&server);
    let base = baseline_rss(pid);

    const EACH: usize = 30;
    let body: Vec<u8> = b"abcdefghij".repeat(100);
    let mut chunked_body = Vec::new();
    for _ in 0..50 {
        chunked_body.extend_from_slice(b"14\r\n01234567890123456789\r\n");
    }
    let mut specs = Vec::new();
    // A complete head promising 1000 bytes, then one byte per 100 ms.
    for _ in 0..EACH {
        specs.push(Trickle {
            prefix: format!(
                "POST /channels/slow HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 1000\r\n\r\n"
            )
            .into_bytes(),
            drip: body.clone(),
        });
    }
    // The same with a chunked body.
    for _ in 0..EACH {
        specs.push(Trickle {
            prefix: format!(
                "POST /channels/slow HTTP/1.1\r\nHost: {addr}\r\nTransfer-Encoding: chunked\r\n\r\n"
            )
            .into_bytes(),
            drip: chunked_body.clone(),
        });
    }
    // A keep-alive connection: one quick request, then a slow second head.
    for _ in 0..EACH {
        specs.push(Trickle {
            prefix: format!("GET /stats HTTP/1.1\r\nHost: {addr}\r\n\r\n").into_bytes(),
            drip: format!(
                "GET /stats HTTP/1.1\r\nHost: {addr}\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
            )
            .into_bytes(),
        });
    }
    let out = trickle(
        addr,
        specs,
        Duration::from_millis(100),
        Duration::from_secs(5),
    );
    let bound = Duration::from_millis(2000);
    for (i, t) in out[..EACH].iter().enumerate() {
        assert_408(i, t, bound, "slow Content-Length body");
    }
    for (i, t) in out[EACH..2 * EACH].iter().enumerate() {
        assert_408(i, t, bound, "slow chunked body");
    }
    for (i, t) in out[2 * EACH..].iter().enumerate() {
        assert_eq!(
            first_status(&t.got),
            Some(200),
            "keep-alive #{i}: the first request was not answered: {:?}",
            String::from_utf8_lossy(&t.got)
        );
        assert_408(i, t, bound, "slow second head on a keep-alive connection");
    }
    // Nothing of the slow bodies was published.
    let r = server.get("/channels/slow/poll?after=0&timeout=0");
    assert_eq!(r.status, 200);
    assert!(
        r.text().contains("\"messages\":[]"),
        "a cut body was published: {}",
        r.text()
    );

    canary.check("slow bodies");
    expect_rss_settles(pid, base, 8 * MIB, "slow bodies");
}

// ---------------------------------------------------------------------------
// 3. Thousands of idle connections up to --max-conns.
// ---------------------------------------------------------------------------

/// The soft limit on open files of this process.
fn fd_soft_limit() -> u64 {
    let limits = std::fs::read_to_string("/proc/self/limits").expect("/proc/self/limits");
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024)
}

#[test]
fn idle_connections_fill_max_conns_then_503() {
    // Keep ~1000 descriptors for the other test running alongside.
    let n = fd_soft_limit().saturating_sub(1000).min(2000) as usize;
    assert!(n >= 100, "too few file descriptors for this test ({n})");
    eprintln!(
        "max-conns test with {n} connections (soft fd limit {})",
        fd_soft_limit()
    );
    let max = n.to_string();
    let server = Server::start(&["--max-conns", &max, "--header-timeout-ms", "60000"]);
    let pid = server.pid();
    let addr = server.addr;
    warm_up(&server);
    // Three slots are taken before the server fills: the canary's
    // WebSocket and keep-alive connection, and a control connection.
    let canary = Canary::start(addr, CanaryHttp::KeepAlive);
    let mut control = connect(addr);
    let base = baseline_rss(pid);
    let fixed = 3;
    let wait_open = |control: &mut TcpStream, want: usize, what: &str| {
        let mut last = 0;
        let ok = wait_for(Duration::from_secs(10), || {
            last = open_total(&stats_on(control, addr));
            (last == want as u64).then_some(())
        });
        assert!(
            ok.is_some(),
            "{what}: {last} connections open, expected {want}"
        );
    };
    let probe_503 = |i: usize| {
        let mut s = connect(addr);
        let r = try_read_response(&mut s)
            .unwrap_or_else(|e| panic!("refused connection #{i}: no answer: {e}"));
        assert_eq!(r.status, 503, "connection past --max-conns: {r:?}");
        assert_eq!(r.header("content-type"), Some("application/json"));
        let body = r.json().expect("503 body is JSON");
        assert!(
            body.get("error").and_then(JsonValue::as_str).is_some(),
            "{body:?}"
        );
        let t = Instant::now();
        match read_to_close(&mut s) {
            Ok(rest) => assert!(rest.is_empty(), "bytes after the 503: {rest:?}"),
            Err((e, _)) => panic!("refused connection not closed after {:?}: {e}", t.elapsed()),
        }
    };

    let mut after_first = 0;
    for round in 0..3 {
        let mut idle: Vec<TcpStream> = (fixed..n)
            .map(|i| {
                TcpStream::connect(addr)
                    .unwrap_or_else(|e| panic!("round {round}: connect #{i}: {e}"))
            })
            .collect();
        wait_open(&mut control, n, "after filling");
        let probes = if round == 0 { 5 } else { 1 };
        for i in 0..probes {
            probe_503(i);
        }
        if round == 0 {
            let st = stats_on(&mut control, addr);
            assert!(stat(&st, "closed.limit") >= 5, "closed.limit: {st:?}");
            // Free 500 slots: new connections are served again.
            idle.truncate(idle.len() - 500);
            wait_open(&mut control, n - 500, "after closing 500");
            for _ in 0..10 {
                let r = server.get("/stats");
                assert_eq!(r.status, 200, "a new connection after slots were freed");
            }
        }
        drop(idle);
        wait_open(&mut control, fixed, "after closing all");
        thread::sleep(Duration::from_millis(300));
        let rss = rss_kib(pid);
        eprintln!("max-conns round {round}: RSS {rss} KiB (baseline {base} KiB)");
        if round == 0 {
            after_first = expect_rss_settles(pid, base, 8 * MIB, "max-conns round 0");
        }
    }
    // Rounds 1 and 2 reuse what round 0 allocated: growth between them is
    // what a per-connection leak looks like (1 KiB a connection would be
    // about 4 MiB here).
    expect_rss_settles(
        pid,
        after_first,
        3 * MIB / 2,
        "max-conns rounds 1-2 (vs round 0)",
    );
    canary.check("idle connections");
}

// ---------------------------------------------------------------------------
// 4. Readers that never read.
// ---------------------------------------------------------------------------

#[derive(Debug, PartialEq)]
enum Flood {
    /// The writes stopped making progress: the server stopped reading.
    Stalled,
    /// The server ended the connection.
    Cut(String),
    /// Everything was written.
    AllSent,
}

/// Writes `unit` repeatedly until `total` bytes, a write stalls for 1 s,
/// or an error. Counts into `sent`.
fn flood(mut s: TcpStream, unit: Vec<u8>, total: u64, sent: Arc<AtomicU64>) -> JoinHandle<Flood> {
    thread::spawn(move || {
        s.set_write_timeout(Some(Duration::from_secs(1))).unwrap();
        while sent.load(Ordering::Relaxed) < total {
            let mut rest = &unit[..];
            while !rest.is_empty() {
                match s.write(rest) {
                    Ok(0) => return Flood::Cut("write returned 0".into()),
                    Ok(k) => {
                        sent.fetch_add(k as u64, Ordering::Relaxed);
                        rest = &rest[k..];
                    }
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                        return Flood::Stalled
                    }
                    Err(e) => return Flood::Cut(e.to_string()),
                }
            }
        }
        Flood::AllSent
    })
}

#[test]
fn reader_that_never_reads_is_throttled_with_bounded_memory() {
    let server = Server::start(&["--send-buffer-bytes", "65536"]);
    let pid = server.pid();
    let canary = Canary::start(server.addr, CanaryHttp::Fresh);
    warm_up(&server);
    let base = baseline_rss(pid);
    let watch = RssWatch::start(pid);

    // An echo client that sends 64 KiB binary messages and never reads the
    // echoes: up to 64 MiB.
    let ws = RawWs::open(server.addr, "/echo");
    let keep = ws.s.try_clone().unwrap();
    let sent = Arc::new(AtomicU64::new(0));
    let total = 64 * 1024 * 1024;
    let writer = flood(
        ws.s,
        frame(true, OP_BINARY, &vec![0x5a; 65536]),
        total,
        sent.clone(),
    );
    let outcome = writer.join().unwrap();
    let sent_bytes = sent.load(Ordering::Relaxed);
    // Stay connected (and unread) a while: memory must stay bounded.
    thread::sleep(Duration::from_millis(1000));
    let in_1 = stat(&stats(&server), "bytes.in");
    thread::sleep(Duration::from_millis(500));
    let in_2 = stat(&stats(&server), "bytes.in");
    let peak = watch.max();
    eprintln!(
        "non-reading echo client: {outcome:?} after {} KiB sent; server peak RSS {peak} KiB (baseline {base} KiB); \
         bytes.in grew {} in 500 ms while stalled",
        sent_bytes / 1024,
        in_2 - in_1
    );
    assert!(
        peak <= base + 16 * MIB,
        "server RSS reached {peak} KiB (baseline {base} KiB) while a client sent {} KiB it never read back",
        sent_bytes / 1024
    );
    assert_ne!(
        outcome,
        Flood::AllSent,
        "the server read all 64 MiB from a client that never reads its echoes"
    );
    if outcome == Flood::Stalled {
        // Backpressure: the server is not reading this socket any more
        // (only the canary's and these two requests' bytes come in).
        assert!(
            in_2 - in_1 < 64 * 1024,
            "the server kept reading from a stalled echo client: {} bytes in 500 ms",
            in_2 - in_1
        );
    }
    reset(keep);
    watch.stop();
    canary.check("echo reader that never reads");
    expect_rss_settles(pid, base, 8 * MIB, "echo reader that never reads");
}

#[test]
fn slow_channel_subscribers_are_cut_and_others_unaffected() {
    let server = Server::start(&["--send-buffer-bytes", "65536", "--history", "10"]);
    let pid = server.pid();
    let addr = server.addr;
    let canary = Canary::start(addr, CanaryHttp::Fresh);
    warm_up(&server);
    let base = baseline_rss(pid);
    let watch = RssWatch::start(pid);
    let slow_before = stat(&stats(&server), "closed.slow");
    const COUNT: u64 = 500;

    // A well-behaved subscriber that reads everything.
    let mut good = ws_client(addr, "/channels/flood/ws").expect("good subscriber");
    let reader = thread::spawn(move || {
        let mut next = 1;
        while next <= COUNT {
            match good.read() {
                Ok(Message::Text(t)) => {
                    let v = parse_json(&t).map_err(|e| format!("not JSON ({e}): {t:.80}"))?;
                    let id = v.get("id").and_then(JsonValue::as_f64).unwrap_or(0.0) as u64;
                    if id != next {
                        return Err(format!("expected id {next}, got {id}"));
                    }
                    next += 1;
                }
                Ok(Message::Ping(_) | Message::Pong(_)) => {}
                Ok(other) => return Err(format!("unexpected {other:?}")),
                Err(e) => return Err(format!("after {} messages: {e}", next - 1)),
            }
        }
        Ok(next - 1)
    });
    // A WebSocket and an SSE subscriber that never read.
    let mut lazy_ws = RawWs::open(addr, "/channels/flood/ws");
    let mut lazy_sse = connect(addr);
    lazy_sse
        .write_all(
            format!("GET /channels/flood/events HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes(),
        )
        .unwrap();
    let r = try_read_response(&mut lazy_sse).expect("event stream head");
    assert_eq!(r.status, 200);

    // 500 messages of 16 KiB from a keep-alive publisher.
    let mut publisher = connect(addr);
    let mut slowest = Duration::ZERO;
    for i in 1..=COUNT {
        let mut body = format!("{i:05}").into_bytes();
        body.resize(16 * 1024, b'x');
        let t = Instant::now();
        publisher
            .write_all(
                format!(
                    "POST /channels/flood HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                )
                .as_bytes(),
            )
            .unwrap();
        publisher.write_all(&body).unwrap();
        let r = try_read_response(&mut publisher).expect("publish answer");
        assert_eq!(r.status, 201, "publish #{i}: {r:?}");
        slowest = slowest.max(t.elapsed());
    }
    eprintln!("publisher: slowest publish {slowest:?}");
    assert!(
        slowest < CANARY_LIMIT,
        "the publisher was slowed down: {slowest:?}"
    );

    let mut last = JsonValue::Null;
    let cut = wait_for(Duration::from_secs(5), || {
        last = stats(&server);
        (stat(&last, "closed.slow") >= slow_before + 2).then_some(())
    });
    assert!(
        cut.is_some(),
        "the two non-reading subscribers were not both cut as slow: {last:?}"
    );
    let got = reader.join().unwrap();
    assert_eq!(got, Ok(COUNT), "the reading subscriber was affected");

    // The lazy ones now find their connection ended (after whatever was
    // already in flight).
    lazy_ws
        .s
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut close_code = None;
    loop {
        match lazy_ws.next_frame() {
            Ok(Some((b0, p))) if b0 & 0x0f == OP_CLOSE => {
                close_code = (p.len() >= 2).then(|| u16::from_be_bytes([p[0], p[1]]));
            }
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("the slow WebSocket subscriber was not disconnected")
            }
            Err(_) => break, // reset
        }
    }
    eprintln!("slow WebSocket subscriber: close code {close_code:?}");
    if let Some(code) = close_code {
        assert_eq!(code, 1008, "a slow subscriber's close code");
    }
    lazy_sse
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    if let Err((e, _)) = read_to_close(&mut lazy_sse) {
        panic!("the slow SSE subscriber was not disconnected: {e}");
    }
    let peak = watch.stop();
    eprintln!("slow subscribers: peak RSS {peak} KiB (baseline {base} KiB)");
    assert!(
        peak <= base + 16 * MIB,
        "server RSS reached {peak} KiB (baseline {base} KiB)"
    );
    canary.check("slow channel subscribers");
    expect_rss_settles(pid, base, 8 * MIB, "slow channel subscribers");
}

// ---------------------------------------------------------------------------
// 5. Resets mid-frame, mid-chunk, mid-response.
// ---------------------------------------------------------------------------

/// One round of every kind of reset, `n` of each.
fn reset_round(server: &Server, n: usize) {
    let addr = server.addr;
    let expect_continue = |s: &mut TcpStream| {
        let mut buf = Vec::new();
        while find(&buf, b"100 Continue\r\n\r\n").is_none() {
            let mut chunk = [0u8; 256];
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => panic!("no 100 Continue: {:?}", String::from_utf8_lossy(&buf)),
                Ok(k) => buf.extend_from_slice(&chunk[..k]),
            }
        }
    };
    type Attack<'a> = (&'static str, Box<dyn Fn() + 'a>);
    let attacks: Vec<Attack> =
        vec![
            // Half a WebSocket frame on /echo. The ping before it comes back as
            // a pong only once the server has read (and buffered) the half frame.
            (
                "half a frame on /echo",
                Box::new(|| {
                    let mut ws = RawWs::open(addr, "/echo");
                    let mut bytes = frame(true, OP_PING, b"p");
                    bytes.extend(frame_header(0x80 | OP_BINARY, 1000));
                    bytes.extend_from_slice(&[7; 10]);
                    ws.s.write_all(&bytes).unwrap();
                    ws.until_pong();
                    reset(ws.s);
                }),
            ),
            // Half a text frame on a channel subscriber.
            (
                "half a frame on a channel",
                Box::new(|| {
                    let mut ws = RawWs::open(addr, "/channels/rst/ws");
                    let mut bytes = frame(true, OP_PING, b"p");
                    bytes.extend(frame_header(0x80 | OP_TEXT, 5000));
                    bytes.extend_from_slice(b"half a message");
                    ws.s.write_all(&bytes).unwrap();
                    ws.until_pong();
                    reset(ws.s);
                }),
            ),
            // Half a chunk of a chunked body.
            (
                "half a chunk",
                Box::new(|| {
                    let mut s = connect(addr);
                    s.write_all(
                        format!(
                    "POST /channels/rst HTTP/1.1\r\nHost: {addr}\r\nTransfer-Encoding: chunked\r\n\
                     Expect: 100-continue\r\n\r\n64\r\nabc"
                )
                        .as_bytes(),
                    )
                    .unwrap();
                    expect_continue(&mut s);
                    reset(s);
                }),
            ),
            // Part of a Content-Length body.
            (
                "part of a body",
                Box::new(|| {
                    let mut s = connect(addr);
                    s.write_all(
                        format!(
                    "POST /channels/rst HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 1000\r\n\
                     Expect: 100-continue\r\n\r\n0123456789"
                )
                        .as_bytes(),
                    )
                    .unwrap();
                    expect_continue(&mut s);
                    reset(s);
                }),
            ),
            // Part of a head.
            (
                "part of a head",
                Box::new(|| {
                    let mut s = connect(addr);
                    s.write_all(
                        format!("GET /stats HTTP/1.1\r\nHost: {addr}\r\nX-Half: ab").as_bytes(),
                    )
                    .unwrap();
                    reset(s);
                }),
            ),
            // An event stream replaying 256 KiB of history: reset mid-response.
            (
                "mid-replay on SSE",
                Box::new(|| {
                    let mut s = connect(addr);
                    s.write_all(
                format!("GET /channels/big/events?lastEventId=0 HTTP/1.1\r\nHost: {addr}\r\n\r\n")
                    .as_bytes(),
            )
            .unwrap();
                    let mut first = [0u8; 1024];
                    assert!(s.read(&mut first).unwrap() > 0);
                    reset(s);
                }),
            ),
            // The same on a WebSocket.
            (
                "mid-replay on WebSocket",
                Box::new(|| {
                    let mut ws = RawWs::open(addr, "/channels/big/ws?after=0");
                    let _ = ws.next_frame();
                    reset(ws.s);
                }),
            ),
        ];
    let mut times = vec![Duration::ZERO; attacks.len()];
    for k in 0..n {
        for (i, (name, attack)) in attacks.iter().enumerate() {
            // Replays cost the server real work (encoding the history):
            // a quarter as many of those.
            if name.starts_with("mid-replay") && k % 4 != 0 {
                continue;
            }
            let t = Instant::now();
            attack();
            times[i] += t.elapsed();
        }
    }
    // Event streams and parked long polls, in batches, reset once the
    // server has them all.
    let t = Instant::now();
    let base = stats(server);
    let sse: Vec<TcpStream> = (0..n)
        .map(|_| {
            let mut s = connect(addr);
            s.write_all(
                format!("GET /channels/rst/events HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes(),
            )
            .unwrap();
            assert_eq!(try_read_response(&mut s).map(|r| r.status), Ok(200));
            s
        })
        .collect();
    let polls: Vec<TcpStream> = (0..n)
        .map(|_| {
            let mut s = connect(addr);
            s.write_all(
                format!("GET /channels/rst/poll?timeout=30 HTTP/1.1\r\nHost: {addr}\r\n\r\n")
                    .as_bytes(),
            )
            .unwrap();
            s
        })
        .collect();
    let parked = wait_for(Duration::from_secs(5), || {
        let st = stats(server);
        (stat(&st, "connections.open.longpoll")
            >= stat(&base, "connections.open.longpoll") + n as u64
            && stat(&st, "connections.open.sse") >= stat(&base, "connections.open.sse") + n as u64)
            .then_some(())
    });
    assert!(
        parked.is_some(),
        "the long polls and streams were not all open: {:?}",
        stats(server)
    );
    sse.into_iter().for_each(reset);
    polls.into_iter().for_each(reset);
    let summary: Vec<String> = attacks
        .iter()
        .zip(&times)
        .map(|((name, _), t)| format!("{name} {t:.1?}"))
        .chain([format!("streams and polls {:.1?}", t.elapsed())])
        .collect();
    eprintln!("reset round of {n} each: {}", summary.join(", "));
}

#[test]
fn resets_mid_frame_mid_chunk_and_mid_response_leave_nothing_behind() {
    let server = Server::start(&[]);
    let pid = server.pid();
    let addr = server.addr;
    // 256 KiB of history to replay (set up before the baseline): more
    // than the socket takes at once, so resets come mid-response.
    let big = vec![b'b'; 16 * 1024];
    for _ in 0..16 {
        assert_eq!(server.post("/channels/big", &big).status, 201);
    }
    let canary = Canary::start(addr, CanaryHttp::Fresh);
    warm_up(&server);
    let base = baseline_rss(pid);
    let quiet = |what: &str| {
        let mut last = JsonValue::Null;
        let ok = wait_for(Duration::from_secs(5), || {
            last = stats(&server);
            // The canary's WebSocket, the canary's and this request's HTTP.
            let calm = stat(&last, "connections.open.ws") <= 1
                && stat(&last, "connections.open.sse") == 0
                && stat(&last, "connections.open.longpoll") == 0
                && stat(&last, "connections.open.http") <= 2;
            calm.then_some(())
        });
        assert!(
            ok.is_some(),
            "{what}: connections left open after the resets: {last:?}"
        );
    };

    const N: usize = 200;
    let t = Instant::now();
    reset_round(&server, N);
    quiet("round 0");
    eprintln!("reset round 0 took {:?}", t.elapsed());
    let after_first = expect_rss_settles(pid, base, 8 * MIB, "resets round 0");
    for round in 1..3 {
        reset_round(&server, N);
        quiet(&format!("round {round}"));
    }
    assert!(process_alive(pid));
    // Two more rounds (~3600 connections) must not grow the heap.
    expect_rss_settles(pid, after_first, 2 * MIB, "resets rounds 1-2 (vs round 0)");
    // Nothing half-received was published.
    let r = server.get("/channels/rst/poll?after=0&timeout=0");
    assert!(r.text().contains("\"messages\":[]"), "{}", r.text());
    canary.check("resets");
}

// ---------------------------------------------------------------------------
// 6. Half-closed sockets.
// ---------------------------------------------------------------------------

#[test]
fn half_closed_sockets_get_their_full_answer_then_eof() {
    let server = Server::start(&[]);
    let addr = server.addr;
    let canary = Canary::start(addr, CanaryHttp::Fresh);

    // One request, then shutdown(Write).
    let mut s = connect(addr);
    s.write_all(format!("GET /stats HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let r = try_read_response(&mut s).expect("answer after a half-close");
    assert_eq!(r.status, 200);
    r.json().expect("complete JSON body");
    assert_eq!(
        read_to_close(&mut s).map_err(|e| e.0.to_string()),
        Ok(vec![])
    );

    // A request with a body.
    let mut s = connect(addr);
    s.write_all(
        format!("POST /channels/hc HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 5\r\n\r\nhello")
            .as_bytes(),
    )
    .unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let r = try_read_response(&mut s).expect("answer after a half-close");
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(
        r.json().unwrap().get("id").and_then(JsonValue::as_f64),
        Some(1.0)
    );
    assert_eq!(
        read_to_close(&mut s).map_err(|e| e.0.to_string()),
        Ok(vec![])
    );

    // Three pipelined requests, a large answer among them.
    let mut s = connect(addr);
    s.write_all(
        format!(
            "GET /stats HTTP/1.1\r\nHost: {addr}\r\n\r\nGET / HTTP/1.1\r\nHost: {addr}\r\n\r\n\
             GET /checkstatus?jobId=job:999 HTTP/1.1\r\nHost: {addr}\r\n\r\n"
        )
        .as_bytes(),
    )
    .unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).expect("read to EOF");
    let mut statuses = Vec::new();
    let mut rest = &all[..];
    while !rest.is_empty() {
        let status = first_status(rest)
            .unwrap_or_else(|| panic!("not a response: {:.80?}", String::from_utf8_lossy(rest)));
        let head_end = find(rest, b"\r\n\r\n").unwrap() + 4;
        let head = String::from_utf8_lossy(&rest[..head_end]).to_ascii_lowercase();
        let len: usize = head
            .split("\r\n")
            .find_map(|l| l.strip_prefix("content-length:"))
            .map(|v| v.trim().parse().unwrap())
            .expect("Content-Length");
        assert!(
            rest.len() >= head_end + len,
            "truncated answer after a half-close"
        );
        statuses.push(status);
        rest = &rest[head_end + len..];
    }
    assert_eq!(
        statuses,
        vec![200, 200, 404],
        "pipelined answers after a half-close"
    );

    // WebSocket: a message and a close, then shutdown(Write): the echo and
    // the close echo still come, then EOF.
    let mut ws = RawWs::open(addr, "/echo");
    let mut bytes = frame(true, OP_TEXT, b"before the close");
    let mut close = 1000u16.to_be_bytes().to_vec();
    close.extend_from_slice(b"bye");
    bytes.extend(frame(true, OP_CLOSE, &close));
    ws.s.write_all(&bytes).unwrap();
    ws.s.shutdown(Shutdown::Write).unwrap();
    let f = ws.next_frame().unwrap().expect("the echo");
    assert_eq!(
        (f.0, f.1.as_slice()),
        (0x80 | OP_TEXT, &b"before the close"[..])
    );
    let f = ws.next_frame().unwrap().expect("the close echo");
    assert_eq!(f.0, 0x80 | OP_CLOSE);
    assert_eq!(&f.1[..2], &1000u16.to_be_bytes());
    assert!(
        ws.next_frame().unwrap().is_none(),
        "EOF after the close echo"
    );

    // Only a close frame (with code 1001), then half-close.
    let mut ws = RawWs::open(addr, "/channels/hc/ws");
    ws.s.write_all(&frame(true, OP_CLOSE, &1001u16.to_be_bytes()))
        .unwrap();
    ws.s.shutdown(Shutdown::Write).unwrap();
    let mut code = None;
    while let Some((b0, p)) = ws.next_frame().unwrap() {
        if b0 & 0x0f == OP_CLOSE {
            code = Some(u16::from_be_bytes([p[0], p[1]]));
        }
    }
    assert_eq!(code, Some(1001), "the close echo before EOF");

    canary.check("half-closed sockets");
}

// ---------------------------------------------------------------------------
// 7. Random bytes to every endpoint.
// ---------------------------------------------------------------------------

#[derive(Clone)]
enum Setup {
    /// Plain bytes on a fresh connection.
    None,
    /// After a `101` on this path.
    Ws(&'static str),
    /// After the head of this event stream.
    Sse(&'static str),
}

#[derive(Clone)]
struct Case {
    name: String,
    setup: Setup,
    payload: Vec<u8>,
    /// The first answer, if any, must be an error (>= 400).
    error_expected: bool,
}

/// Every path of docs/api.md with a method that reaches it.
const ENDPOINTS: &[(&str, &str)] = &[
    ("GET", "/"),
    ("POST", "/submit"),
    ("GET", "/checkstatus?jobId=job:1"),
    ("POST", "/channels/x"),
    ("GET", "/channels/x/poll?timeout=1"),
    ("GET", "/channels/x/events"),
    ("GET", "/channels/x/ws"),
    ("GET", "/sse"),
    ("GET", "/echo"),
    ("POST", "/webhooks"),
    ("POST", "/webhook-receiver"),
    ("GET", "/stats"),
];

fn random_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    let header_alphabet = b"abcXYZ019-_:;, \t\r\n=/%\"?&Upgrade websocket";
    for (e, (method, path)) in ENDPOINTS.iter().enumerate() {
        for seed in 0..6u64 {
            let mut rng = XorShift::new(1000 * e as u64 + seed);
            let n = 1000 + rng.below(3000) as usize;
            // A valid request line, then random bytes.
            let mut p = format!("{method} {path} HTTP/1.1\r\n").into_bytes();
            p.extend(rng.bytes(n));
            cases.push(Case {
                name: format!("{method} {path} + {n} random bytes (seed {seed})"),
                setup: Setup::None,
                payload: p,
                error_expected: true,
            });
            // Random header-like text from a small alphabet (gets deeper
            // into the header parser).
            let mut p = format!("{method} {path} HTTP/1.1\r\nHost: fuzz\r\n").into_bytes();
            p.extend(rng.pick_from(n, header_alphabet));
            p.extend_from_slice(b"\r\n\r\n");
            cases.push(Case {
                name: format!("{method} {path} + random header text (seed {seed})"),
                setup: Setup::None,
                payload: p,
                error_expected: false,
            });
            // A random body, by length and chunked.
            let body = rng.bytes(n);
            let mut p =
                format!("{method} {path} HTTP/1.1\r\nHost: fuzz\r\nContent-Length: {n}\r\n\r\n")
                    .into_bytes();
            p.extend_from_slice(&body);
            cases.push(Case {
                name: format!("{method} {path} + random body (seed {seed})"),
                setup: Setup::None,
                payload: p,
                error_expected: false,
            });
            let mut p = format!(
                "{method} {path} HTTP/1.1\r\nHost: fuzz\r\nTransfer-Encoding: chunked\r\n\r\n"
            )
            .into_bytes();
            p.extend_from_slice(&body);
            cases.push(Case {
                name: format!("{method} {path} + random chunked body (seed {seed})"),
                setup: Setup::None,
                payload: p,
                error_expected: false,
            });
        }
    }
    for seed in 0..100u64 {
        let mut rng = XorShift::new(50_000 + seed);
        let n = 1 + rng.below(4096) as usize;
        cases.push(Case {
            name: format!("{n} random bytes on a fresh connection (seed {seed})"),
            setup: Setup::None,
            payload: rng.bytes(n),
            error_expected: true,
        });
    }
    for (w, path) in ["/echo", "/", "/channels/x/ws"].into_iter().enumerate() {
        for seed in 0..15u64 {
            let mut rng = XorShift::new(60_000 + 100 * w as u64 + seed);
            let n = 1 + rng.below(4096) as usize;
            cases.push(Case {
                name: format!("{n} random bytes after the 101 on {path} (seed {seed})"),
                setup: Setup::Ws(path),
                payload: rng.bytes(n),
                error_expected: false,
            });
        }
    }
    for seed in 0..5u64 {
        let mut rng = XorShift::new(70_000 + seed);
        cases.push(Case {
            name: format!("random bytes into an event stream (seed {seed})"),
            setup: Setup::Sse("/channels/x/events"),
            payload: rng.bytes(4096),
            error_expected: false,
        });
    }
    cases
}

/// Runs one case; `Err` says what was wrong with the server's answer.
fn run_case(addr: SocketAddr, case: &Case) -> Result<String, String> {
    let (mut s, leftover) = match case.setup {
        Setup::Ws(path) => {
            let ws = RawWs::open(addr, path);
            (ws.s, ws.buf[ws.pos..].to_vec())
        }
        _ => (connect(addr), Vec::new()),
    };
    s.set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    match case.setup {
        Setup::None => {}
        Setup::Ws(_) => {
            s.set_read_timeout(Some(Duration::from_millis(1000)))
                .unwrap();
        }
        Setup::Sse(path) => {
            s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
                .unwrap();
            let r = try_read_response(&mut s)?;
            if r.status != 200 {
                return Err(format!("event stream answered {}", r.status));
            }
            s.set_read_timeout(Some(Duration::from_millis(300)))
                .unwrap();
        }
    }
    // The server may answer and close before taking everything: a failed
    // write is fine, what it sent back is what counts.
    let _ = s.write_all(&case.payload);
    // Read until the server closes, or until the read timeout; once a
    // request was answered with a success (a keep-alive answer, an event
    // stream), only a little longer.
    let mut end = Instant::now() + s.read_timeout().unwrap().unwrap();
    let mut got = leftover;
    let mut closed = false;
    let mut chunk = [0u8; 65536];
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut chunk) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(n) => {
                got.extend_from_slice(&chunk[..n]);
                let answered = matches!(case.setup, Setup::None)
                    && find(&got, b"\r\n\r\n").is_some()
                    && first_status(&got).is_some_and(|st| st < 400);
                if answered {
                    end = end.min(Instant::now() + Duration::from_millis(200));
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
            Err(_) => {
                closed = true; // reset
                break;
            }
        }
    }
    match case.setup {
        Setup::None => {
            if got.is_empty() {
                return Ok(if closed {
                    "closed silently"
                } else {
                    "no answer yet"
                }
                .into());
            }
            let status = first_status(&got).ok_or_else(|| {
                format!(
                    "not an HTTP response: {:?}",
                    String::from_utf8_lossy(&got[..got.len().min(80)])
                )
            })?;
            if case.error_expected && status < 400 {
                return Err(format!("garbage answered with {status}"));
            }
            if status >= 400 {
                let head_end = find(&got, b"\r\n\r\n").ok_or("incomplete error head")? + 4;
                let head = String::from_utf8_lossy(&got[..head_end]).to_ascii_lowercase();
                if !head.contains("content-type: application/json") {
                    return Err(format!("error {status} is not JSON: {head:?}"));
                }
                let len: usize = head
                    .split("\r\n")
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .ok_or("error without Content-Length")?;
                let body = got
                    .get(head_end..head_end + len)
                    .ok_or("truncated error body")?;
                let v = parse_json(&String::from_utf8_lossy(body))
                    .map_err(|e| format!("error body: {e}"))?;
                if v.get("error").and_then(JsonValue::as_str).is_none() {
                    return Err(format!("error body without \"error\": {v:?}"));
                }
            }
            Ok(format!("answered {status}"))
        }
        Setup::Ws(_) => {
            // Look for a close frame among the server's frames.
            let mut rest = &got[..];
            let mut close = None;
            while rest.len() >= 2 {
                let mut len = (rest[1] & 0x7f) as usize;
                let mut at = 2;
                if len == 126 && rest.len() >= 4 {
                    len = u16::from_be_bytes([rest[2], rest[3]]) as usize;
                    at = 4;
                } else if len == 127 && rest.len() >= 10 {
                    len = u64::from_be_bytes(rest[2..10].try_into().unwrap()) as usize;
                    at = 10;
                }
                if rest[1] & 0x80 != 0 {
                    return Err("the server sent a masked frame".into());
                }
                if rest.len() < at + len {
                    break;
                }
                if rest[0] & 0x0f == OP_CLOSE && len >= 2 {
                    close = Some(u16::from_be_bytes([rest[at], rest[at + 1]]));
                }
                rest = &rest[at + len..];
            }
            Ok(match (close, closed) {
                (Some(c), _) => format!("ws close {c}"),
                (None, true) => "ws closed without a close frame".into(),
                (None, false) => "ws still open".into(),
            })
        }
        Setup::Sse(_) => Ok(if closed {
            "stream closed"
        } else {
            "stream open"
        }
        .into()),
    }
}

#[test]
fn random_bytes_to_every_endpoint_never_crash_the_server() {
    let server = Server::start(&["--header-timeout-ms", "500"]);
    let pid = server.pid();
    let addr = server.addr;
    let canary = Canary::start(addr, CanaryHttp::Fresh);
    warm_up(&server);
    let base = baseline_rss(pid);
    let cases = random_cases();
    let next = AtomicUsize::new(0);
    let results: Vec<(String, Result<String, String>)> = thread::scope(|sc| {
        let workers: Vec<_> = (0..8)
            .map(|_| {
                sc.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(case) = cases.get(i) else { break };
                        mine.push((case.name.clone(), run_case(addr, case)));
                    }
                    mine
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    let mut tally = std::collections::BTreeMap::new();
    let mut bad = Vec::new();
    for (name, r) in &results {
        match r {
            Ok(label) => *tally.entry(label.clone()).or_insert(0) += 1,
            Err(e) => bad.push(format!("{name}: {e}")),
        }
    }
    eprintln!("random bytes: {} cases: {tally:?}", results.len());
    assert!(process_alive(pid), "the server process died");
    assert!(
        bad.is_empty(),
        "bad answers to random bytes:\n{}",
        bad.join("\n")
    );
    let st = stats(&server);
    assert!(
        stat(&st, "closed.protocol") > 100,
        "protocol errors not counted: {st:?}"
    );
    canary.check("random bytes");
    assert!(process_alive(pid), "the server process died");
    expect_rss_settles(pid, base, 8 * MIB, "random bytes");
}

// ---------------------------------------------------------------------------
// 8. WebSocket ping flood.
// ---------------------------------------------------------------------------

#[test]
fn websocket_ping_flood_is_answered_with_bounded_memory() {
    // A 256 KiB send buffer: the server stops reading a flooder once that
    // much output (pongs) is queued. With the 1 MiB default, one flooder
    // that never reads keeps the (debug build's) loop busy ~0.2-0.4 s
    // before backpressure starts; see the pong flood test for the loop's
    // missing per-turn read budget.
    let server = Server::start(&["--send-buffer-bytes", "262144"]);
    let pid = server.pid();
    let addr = server.addr;
    let canary = Canary::start(addr, CanaryHttp::Fresh);
    warm_up(&server);
    let base = baseline_rss(pid);
    let watch = RssWatch::start(pid);

    // 100,000 pings, pipelined 1000 to a write, pongs read on another thread.
    const PINGS: u32 = 100_000;
    let ws = RawWs::open(addr, "/echo");
    let mut w = ws.s.try_clone().unwrap();
    let mut ws = ws;
    ws.s.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let t = Instant::now();
    let reader = thread::spawn(move || {
        let mut next = 0u32;
        while next < PINGS {
            match ws.next_frame() {
                Ok(Some((b0, p))) if b0 & 0x0f == OP_PONG => {
                    let seq = <[u8; 4]>::try_from(p.as_slice())
                        .ok()
                        .map(u32::from_be_bytes);
                    if seq != Some(next) {
                        return Err(format!("pong #{next} carried {p:?}"));
                    }
                    next += 1;
                }
                Ok(Some(_)) => {}
                Ok(None) => return Err(format!("EOF after {next} pongs")),
                Err(e) => return Err(format!("after {next} pongs: {e}")),
            }
        }
        Ok(next)
    });
    for batch in 0..PINGS / 1000 {
        let mut buf = Vec::with_capacity(1000 * 10);
        for i in 0..1000 {
            buf.extend(frame(true, OP_PING, &(batch * 1000 + i).to_be_bytes()));
        }
        w.write_all(&buf).expect("write pings");
    }
    let pongs = reader.join().unwrap();
    eprintln!("ping flood: {pongs:?} in {:?}", t.elapsed());
    assert_eq!(pongs, Ok(PINGS), "every ping gets its pong, in order");
    reset(w);

    // Now a flooder that never reads its pongs: the server must stop
    // reading it (or cut it) rather than queue pongs without bound.
    let ws = RawWs::open(addr, "/echo");
    let keep = ws.s.try_clone().unwrap();
    let mut unit = Vec::with_capacity(10_000 * 10);
    for i in 0..10_000u32 {
        unit.extend(frame(true, OP_PING, &i.to_be_bytes()));
    }
    let sent = Arc::new(AtomicU64::new(0));
    let outcome = flood(ws.s, unit, 256 * 1024 * 1024, sent.clone())
        .join()
        .unwrap();
    eprintln!(
        "non-reading ping flood: {outcome:?} after {} KiB of pings",
        sent.load(Ordering::Relaxed) / 1024
    );
    assert_ne!(
        outcome,
        Flood::AllSent,
        "the server read 256 MiB of pings nobody took pongs for"
    );
    thread::sleep(Duration::from_millis(500));
    let peak = watch.stop();
    eprintln!("ping flood: peak RSS {peak} KiB (baseline {base} KiB)");
    assert!(
        peak <= base + 16 * MIB,
        "server RSS reached {peak} KiB during a ping flood (baseline {base} KiB)"
    );
    reset(keep);
    canary.check("ping flood");
    expect_rss_settles(pid, base, 8 * MIB, "ping flood");
}

// ---------------------------------------------------------------------------
// 9. Graceful shutdown.
// ---------------------------------------------------------------------------

fn graceful_shutdown(signal: &str) {
    let mut server = Server::start(&[]);
    let pid = server.pid();
    let addr = server.addr;

    let mut ws = ws_client(addr, "/echo").expect("WebSocket");
    ws.get_mut()
        .set_read_timeout(Some(Duration::from_secs(7)))
        .unwrap();
    canary_echo(&mut ws, "before").unwrap();

    let mut sse = connect(addr);
    sse.set_read_timeout(Some(Duration::from_secs(7))).unwrap();
    sse.write_all(format!("GET /channels/x/events HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .unwrap();
    let head = try_read_response(&mut sse).expect("event stream head");
    assert_eq!(head.status, 200);
    assert!(head
        .header("content-type")
        .unwrap_or("")
        .starts_with("text/event-stream"));

    let mut poll = connect(addr);
    poll.set_read_timeout(Some(Duration::from_secs(7))).unwrap();
    poll.write_all(
        format!("GET /channels/x/poll?timeout=60 HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes(),
    )
    .unwrap();

    // An idle keep-alive connection, and a request whose body is half sent.
    let mut idle = connect(addr);
    idle.set_read_timeout(Some(Duration::from_secs(7))).unwrap();
    assert!(stats_on(&mut idle, addr).get("connections").is_some());
    let mut inflight = connect(addr);
    inflight
        .set_read_timeout(Some(Duration::from_secs(7)))
        .unwrap();
    inflight
        .write_all(
            format!("POST /channels/x HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 5\r\n\r\nhe")
                .as_bytes(),
        )
        .unwrap();

    let ready = wait_for(Duration::from_secs(5), || {
        let st = stats(&server);
        (stat(&st, "connections.open.longpoll") == 1
            && stat(&st, "connections.open.sse") == 1
            && stat(&st, "connections.open.ws") == 1)
            .then_some(())
    });
    assert!(ready.is_some(), "setup: {:?}", stats(&server));

    let t0 = Instant::now();
    let status = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{signal} failed");

    // The WebSocket gets a close frame with 1001 (going away).
    let code = loop {
        match ws.read() {
            Ok(Message::Close(Some(f))) => break Some(u16::from(f.code)),
            Ok(Message::Close(None)) => break None,
            Ok(_) => {}
            Err(e) => panic!("{signal}: the WebSocket ended without a close frame: {e}"),
        }
    };
    assert_eq!(code, Some(1001), "{signal}: WebSocket close code");
    let ended = loop {
        match ws.read() {
            Ok(_) => {}
            Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                break Ok(())
            }
            Err(e) => break Err(e.to_string()),
        }
    };
    assert_eq!(
        ended,
        Ok(()),
        "{signal}: the close handshake did not complete cleanly"
    );

    // Shutting down (the half-sent request keeps it from finishing): new
    // connections are refused. Checked here, reported at the end, so that
    // the rest of the shutdown is checked too.
    let refused = match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => Ok(()),
        Err(e) => Err(format!(
            "connecting during the shutdown failed, but not with a refusal: {e}"
        )),
        Ok(mut s) => {
            s.set_read_timeout(Some(Duration::from_millis(300)))
                .unwrap();
            let _ = s.write_all(format!("GET /stats HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes());
            let answer = try_read_response(&mut s);
            Err(format!(
                "a new connection was accepted (by the kernel: the listening socket is still \
                 open) during the shutdown, {:?} after the signal; it got {answer:?}",
                t0.elapsed()
            ))
        }
    };

    // The response in flight is finished, with Connection: close.
    inflight.write_all(b"llo").unwrap();
    let r = try_read_response(&mut inflight).expect("the in-flight request is answered");
    assert_eq!(r.status, 201, "{signal}: in-flight publish: {r:?}");
    assert_eq!(
        r.header("connection")
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("close")
    );
    assert_eq!(
        read_to_close(&mut inflight).map_err(|e| e.0.to_string()),
        Ok(vec![])
    );

    // The long poll is answered (200 JSON), then the connection closes.
    let r = try_read_response(&mut poll).expect("the long poll is answered");
    assert_eq!(r.status, 200, "{signal}: long poll: {r:?}");
    let v = r.json().expect("long-poll JSON");
    assert!(
        v.get("messages").is_some() && v.get("last").is_some(),
        "{v:?}"
    );
    assert!(
        read_to_close(&mut poll).is_ok(),
        "{signal}: the long poll's connection stayed open"
    );

    // The event stream's body ends (it may carry the message published above).
    match read_to_close(&mut sse) {
        Ok(rest) => {
            let text = String::from_utf8_lossy(&rest);
            assert!(!text.contains("HTTP/1.1"), "{text:?}");
        }
        Err((e, _)) => panic!("{signal}: the event stream did not end: {e}"),
    }
    // The idle keep-alive connection is closed.
    assert_eq!(
        read_to_close(&mut idle).map_err(|e| e.0.to_string()),
        Ok(vec![])
    );

    let exit = server.wait_exit(Duration::from_secs(6).saturating_sub(t0.elapsed()));
    let took = t0.elapsed();
    let exit = exit.unwrap_or_else(|| panic!("{signal}: still running {took:?} after the signal"));
    eprintln!("{signal}: exited with {exit} after {took:?}");
    assert!(exit.success(), "{signal}: exit status {exit}");
    if let Err(e) = refused {
        panic!("{signal}: {e}");
    }
    assert!(
        TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err(),
        "{signal}: still accepting after exit"
    );
}

#[test]
fn graceful_shutdown_on_sigterm() {
    graceful_shutdown("TERM");
}

#[test]
fn graceful_shutdown_on_sigint() {
    graceful_shutdown("INT");
}

/// Frames that need no answer (unsolicited pongs, RFC 6455 section 5.5.3)
/// produce no output, so output backpressure never stops the server from
/// reading them: the loop must still take turns with other connections.
#[test]
fn websocket_pong_flood_does_not_starve_other_clients() {
    let server = Server::start(&[]);
    let pid = server.pid();
    let addr = server.addr;
    let canary = Canary::start(addr, CanaryHttp::Fresh);
    warm_up(&server);
    let base = baseline_rss(pid);
    let watch = RssWatch::start(pid);

    let ws = RawWs::open(addr, "/echo");
    let keep = ws.s.try_clone().unwrap();
    let mut unit = Vec::with_capacity(100_000 * 6);
    for _ in 0..100_000 {
        unit.extend(frame(true, OP_PONG, b""));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let (st, sn) = (stop.clone(), sent.clone());
    let mut w = ws.s;
    let writer = thread::spawn(move || {
        w.set_write_timeout(Some(Duration::from_secs(1))).unwrap();
        while !st.load(Ordering::Relaxed) {
            match w.write_all(&unit) {
                Ok(()) => sn.fetch_add(unit.len() as u64, Ordering::Relaxed),
                Err(e) => return Err(e.to_string()),
            };
        }
        Ok(())
    });
    thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::Relaxed);
    let res = writer.join().unwrap();
    eprintln!(
        "pong flood: {} KiB of unsolicited pongs in 3 s ({res:?})",
        sent.load(Ordering::Relaxed) / 1024
    );
    reset(keep);
    let peak = watch.stop();
    assert!(
        peak <= base + 16 * MIB,
        "server RSS reached {peak} KiB during a pong flood (baseline {base} KiB)"
    );
    canary.check("pong flood");
    expect_rss_settles(pid, base, 8 * MIB, "pong flood");
}

/// `--shutdown-timeout-ms`: a graceful shutdown waits for WebSockets to
/// answer their close 1001, but no longer than the flag says; a peer that
/// never answers cannot hold the process.
#[test]
fn shutdown_timeout_flag_bounds_a_graceful_shutdown() {
    for (ms, lo, hi) in [(400u64, 300u128, 1_500u128), (2_000, 1_800, 3_500)] {
        let mut server = Server::start(&["--shutdown-timeout-ms", &ms.to_string()]);
        // A WebSocket that will never read or answer anything.
        let mut s = server.connect();
        let req = format!(
            "GET /echo HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            server.addr
        );
        s.write_all(req.as_bytes()).unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while find(&head, b"\r\n\r\n").is_none() {
            assert_eq!(s.read(&mut byte).unwrap(), 1, "the 101 arrives");
            head.push(byte[0]);
        }
        assert!(
            head.starts_with(b"HTTP/1.1 101"),
            "{}",
            String::from_utf8_lossy(&head)
        );
        let start = Instant::now();
        let kill = std::process::Command::new("kill")
            .args(["-TERM", &server.pid().to_string()])
            .status()
            .expect("kill");
        assert!(kill.success());
        let status = server
            .wait_exit(Duration::from_secs(6))
            .expect("the process exits");
        let took = start.elapsed().as_millis();
        assert!(status.success(), "exit status {status:?}");
        assert!(
            (lo..hi).contains(&took),
            "--shutdown-timeout-ms {ms}: exited after {took} ms"
        );
        drop(s);
    }
}

// ---------------------------------------------------------------------------
// 10. Bounded by design (issue 13): what an anonymous client asks for never
// makes the server hold more than its flags say, and no webhook can make it
// call itself. Each test prints one `bounds:` line (the attack, the flags,
// the peak RSS growth and the canary's slowest request) for the README.
// ---------------------------------------------------------------------------

/// Prints the `bounds:` line of one attack.
fn report_bounds(attack: &str, flags: &str, base: u64, peak: u64, worst: Duration) {
    eprintln!(
        "bounds: {attack} | {flags} | RSS +{:.1} MiB | canary worst {} ms",
        peak.saturating_sub(base) as f64 / MIB as f64,
        worst.as_millis()
    );
}

/// Percent-encodes everything but unreserved characters (RFC 3986 2.3),
/// for a URL inside a query or a form value.
fn enc(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A request on a fresh connection, read without panicking.
fn ask(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
    let mut s = connect(addr);
    ask_on(&mut s, addr, method, path, headers, body)
}

/// A request on an existing keep-alive connection.
fn ask_on(
    s: &mut TcpStream,
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Resp {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if method == "POST" || !body.is_empty() {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    s.write_all(&bytes)
        .unwrap_or_else(|e| panic!("{method} {path}: write: {e}"));
    try_read_response(s).unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

/// `POST /webhooks` with a form body (and extra headers such as `Origin`).
fn register_webhook(addr: SocketAddr, url: &str, events: &str, headers: &[(&str, &str)]) -> Resp {
    let form = format!("url={}&events={}", enc(url), enc(events));
    let mut h = vec![("Content-Type", "application/x-www-form-urlencoded")];
    h.extend_from_slice(headers);
    ask(addr, "POST", "/webhooks", &h, form.as_bytes())
}

/// The `"id"` of a 201 answer to `POST /webhooks`.
fn webhook_id(r: &Resp) -> String {
    let v = r.json().expect("webhook JSON");
    v.get("id")
        .and_then(JsonValue::as_str)
        .unwrap_or_else(|| panic!("no id in {v:?}"))
        .to_string()
}

/// The ids `GET /webhooks` lists.
fn listed_webhooks(addr: SocketAddr) -> Vec<String> {
    let r = ask(addr, "GET", "/webhooks", &[], b"");
    assert_eq!(r.status, 200, "GET /webhooks: {r:?}");
    let v = r.json().expect("GET /webhooks is JSON");
    match v.get("webhooks") {
        Some(JsonValue::Arr(hooks)) => hooks
            .iter()
            .filter_map(|h| h.get("id").and_then(JsonValue::as_str).map(str::to_string))
            .collect(),
        other => panic!("no webhooks list: {other:?}"),
    }
}

/// Asserts an error answer: this status, JSON `{"error": ...}`.
fn assert_error_answer(r: &Resp, status: u16, what: &str) {
    assert_eq!(r.status, status, "{what}: {r:?}");
    assert_eq!(r.header("content-type"), Some("application/json"), "{what}");
    let v = r
        .json()
        .unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {r:?}"));
    assert!(
        v.get("error").and_then(JsonValue::as_str).is_some(),
        "{what}: no error sentence: {v:?}"
    );
}

/// Pipelined answers on one connection, each framed by Content-Length; what
/// follows one answer is kept for the next.
struct Answers {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Answers {
    fn next(&mut self) -> Result<Resp, String> {
        loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                let end = i + 4;
                let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                let mut r = Resp {
                    status: first_status(&self.buf).ok_or("no status line")?,
                    head,
                    body: Vec::new(),
                };
                let len: usize = r
                    .header("content-length")
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| format!("no Content-Length in {:?}", r.head))?;
                if self.buf.len() >= end + len {
                    r.body = self.buf[end..end + len].to_vec();
                    self.buf.drain(..end + len);
                    return Ok(r);
                }
            }
            let mut chunk = [0u8; 65536];
            match self.s.read(&mut chunk) {
                Ok(0) => return Err("EOF".into()),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e.to_string()),
            }
        }
    }
}

/// A webhook receiver written here: answers every request `200` and keeps
/// each request's text (head and body).
struct Sink {
    addr: SocketAddr,
    hits: Arc<std::sync::Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Sink {
    fn start() -> Sink {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the sink");
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (h, st) = (hits.clone(), stop.clone());
        let thread = thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                let mut s = match listener.accept() {
                    Ok((s, _)) => s,
                    Err(_) => {
                        thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                };
                let _ = s.set_nonblocking(false);
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                if let Ok(r) = try_read_response_like_request(&mut s) {
                    h.lock().unwrap().push(r);
                    let _ = s.write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                }
            }
        });
        Sink {
            addr,
            hits,
            stop,
            thread: Some(thread),
        }
    }

    fn hits(&self) -> Vec<String> {
        self.hits.lock().unwrap().clone()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One request (head, then a Content-Length body) as text.
fn try_read_response_like_request(s: &mut TcpStream) -> Result<String, String> {
    let mut buf = Vec::new();
    let end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 4096];
        match s.read(&mut chunk) {
            Ok(0) => return Err("EOF in the head".into()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(e.to_string()),
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    let len: usize = head
        .split("\r\n")
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < end + len {
        let mut chunk = [0u8; 16384];
        match s.read(&mut chunk) {
            Ok(0) => return Err("EOF in the body".into()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

// ----- 10.1 Channel exhaustion ----------------------------------------------

#[test]
fn junk_subscriptions_do_not_use_up_the_channels() {
    let flags = "--max-channels 50";
    let server = Server::start(&["--max-channels", "50"]);
    let pid = server.pid();
    let addr = server.addr;
    let canary = Canary::start(addr, CanaryHttp::Fresh);
    warm_up(&server); // "warm" is the one channel with a message
    let base = baseline_rss(pid);
    let watch = RssWatch::start(pid);

    // 10,000 polls on names nobody publishes to, pipelined on 4 keep-alive
    // connections (written by one thread, answers read by another).
    const JUNK: usize = 10_000;
    const CONNS: usize = 4;
    let t = Instant::now();
    let answered: Vec<Result<usize, String>> = thread::scope(|sc| {
        let readers: Vec<_> = (0..CONNS)
            .map(|c| {
                let s = connect(addr);
                let mut w = s.try_clone().unwrap();
                sc.spawn(move || {
                    let mut reqs = Vec::new();
                    for i in (c..JUNK).step_by(CONNS) {
                        reqs.extend_from_slice(
                            format!(
                                "GET /channels/junk{i}/poll?timeout=0 HTTP/1.1\r\nHost: {addr}\r\n\r\n"
                            )
                            .as_bytes(),
                        );
                    }
                    w.write_all(&reqs).expect("write the junk polls");
                });
                sc.spawn(move || {
                    let mut answers = Answers { s, buf: Vec::new() };
                    for n in 0..JUNK / CONNS {
                        let r = answers
                            .next()
                            .map_err(|e| format!("connection {c}: after {n} answers: {e}"))?;
                        if r.status != 200 {
                            return Err(format!("connection {c}: junk poll #{n}: {r:?}"));
                        }
                    }
                    Ok(JUNK / CONNS)
                })
            })
            .collect();
        readers.into_iter().map(|r| r.join().unwrap()).collect()
    });
    eprintln!(
        "channel exhaustion: {JUNK} junk polls answered in {:?}",
        t.elapsed()
    );
    for a in &answered {
        assert_eq!(a, &Ok(JUNK / CONNS), "every junk poll is answered 200");
    }

    // Subscribers on names nobody publishes to, open at once, then gone.
    let mut sse = Vec::new();
    let mut wss = Vec::new();
    for i in 0..20 {
        let mut s = connect(addr);
        s.write_all(
            format!("GET /channels/ghost{i}/events HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes(),
        )
        .unwrap();
        let r = try_read_response(&mut s).expect("an event stream head");
        assert_eq!(r.status, 200, "SSE on ghost{i}");
        sse.push(s);
        wss.push(RawWs::open(addr, &format!("/channels/spectre{i}/ws")));
    }
    let st = stats(&server);
    assert_eq!(
        stat(&st, "channels"),
        1,
        "with 40 subscribers on never-published names open, /stats counts channels without \
         a message: {st:?}"
    );
    drop(sse);
    drop(wss);
    let gone = wait_for(Duration::from_secs(5), || {
        let st = stats(&server);
        (stat(&st, "connections.open.sse") == 0 && stat(&st, "connections.open.ws") <= 1)
            .then_some(())
    });
    assert!(
        gone.is_some(),
        "the subscribers did not leave: {:?}",
        stats(&server)
    );

    // A publish to a new channel still works, and only channels with a
    // message count.
    let r = server.post("/channels/fresh0", b"first");
    assert_eq!(
        r.status,
        201,
        "publish to a new channel after 10,000 junk polls: {}",
        r.text()
    );
    let st = stats(&server);
    assert_eq!(stat(&st, "channels"), 2, "warm and fresh0: {st:?}");
    // Up to --max-channels (warm + fresh0..fresh48 = 50), then 503.
    let mut publisher = connect(addr);
    for i in 1..49 {
        let r = ask_on(
            &mut publisher,
            addr,
            "POST",
            &format!("/channels/fresh{i}"),
            &[],
            b"m",
        );
        assert_eq!(r.status, 201, "publish to channel #{} of 50: {r:?}", i + 2);
    }
    assert_eq!(stat(&stats(&server), "channels"), 50);
    let r = ask_on(&mut publisher, addr, "POST", "/channels/fresh49", &[], b"m");
    assert_error_answer(&r, 503, "the 51st channel");
    let r = ask_on(
        &mut publisher,
        addr,
        "POST",
        "/channels/fresh0",
        &[],
        b"again",
    );
    assert_eq!(
        r.status, 201,
        "a publish to an existing channel at the limit: {r:?}"
    );
    assert_eq!(r.json().ok().and_then(|v| v.get("id")?.as_f64()), Some(2.0));
    // Subscribing to another new name at the limit is still answered.
    let r = ask_on(
        &mut publisher,
        addr,
        "GET",
        "/channels/junk-late/poll?timeout=0",
        &[],
        b"",
    );
    assert_eq!(r.status, 200, "a poll on a new name at the limit: {r:?}");
    assert_eq!(stat(&stats(&server), "channels"), 50);

    let peak = watch.stop();
    let worst = canary.check("channel exhaustion");
    report_bounds("channel exhaustion", flags, base, peak, worst);
    expect_rss_settles(pid, base, 8 * MIB, "channel exhaustion");
}

// ----- 10.2 History bounded by bytes ----------------------------------------

/// A message of exactly `len` bytes that starts with `tag` and a space.
fn tagged(tag: &str, len: usize, fill: u8) -> Vec<u8> {
    let mut m = format!("{tag} ").into_bytes();
    m.resize(len, fill);
    m
}

/// The `(after, oldest)` of a truncation notice's JSON.
fn truncation(v: &JsonValue) -> (u64, u64) {
    let n = |k: &str| {
        v.get(k)
            .and_then(JsonValue::as_f64)
            .unwrap_or_else(|| panic!("no {k} in the truncation notice {v:?}")) as u64
    };
    (n("after"), n("oldest"))
}

#[test]
fn history_is_bounded_by_bytes_across_all_channels() {
    // 4 MiB a channel, 8 MiB in all: 100 messages of 1 MB over 10 channels
    // are 10 MB a channel by count (--history 1000), 100 MB in all.
    const MAX: u64 = 8 * 1024 * 1024;
    const SIZE: usize = 1_000_000;
    let flags = "--max-history-bytes 8388608 --history-bytes 4194304";
    let server = Server::start(&[
        "--max-history-bytes",
        "8388608",
        "--history-bytes",
        "4194304",
    ]);
    let pid = server.pid();
    let addr = server.addr;
    let canary = Canary::start(addr, CanaryHttp::Fresh);
    warm_up(&server);
    let base = baseline_rss(pid);
    let watch = RssWatch::start(pid);

    let mut publisher = connect(addr);
    let mut observer = connect(addr);
    let mut most = 0;
    for i in 0..100u64 {
        let body = tagged(&format!("{i:03}"), SIZE, b'h');
        let r = ask_on(
            &mut publisher,
            addr,
            "POST",
            &format!("/channels/big{}", i % 10),
            &[],
            &body,
        );
        assert_eq!(r.status, 201, "publish #{i}: {r:?}");
        let held = stat(&stats_on(&mut observer, addr), "history_bytes");
        most = most.max(held);
        assert!(
            held <= MAX,
            "after publish #{i}: history_bytes {held} > --max-history-bytes {MAX}"
        );
    }
    // The 8 newest messages (#92..#99, one in each of big2..big9, all id
    // 10) are what fits: the warm-up's message and #0..#91 were evicted.
    let st = stats(&server);
    assert_eq!(stat(&st, "history_bytes"), 8 * SIZE as u64, "{st:?}");
    let peak = watch.max();
    eprintln!("history by bytes: most history_bytes seen {most}, peak RSS {peak} KiB (baseline {base} KiB)");
    assert!(
        peak <= base + 8 * MIB + 40 * MIB,
        "server RSS reached {peak} KiB with --max-history-bytes 8 MiB: more than baseline {base} \
         KiB + 8 MiB of history + 40 MiB"
    );

    // big0 keeps nothing (its ten were evicted by the global limit, not by
    // its own 4 MiB): a resume from 0 is told so, oldest = the next id.
    let mut sse = Sse::open_ok(&server, "/channels/big0/events", &[("Last-Event-ID", "0")]);
    let e = sse.event();
    assert_eq!(
        e.event, "truncated",
        "the first event of a resume on big0: {e:?}"
    );
    assert!(e.id_field.is_none(), "a truncated event has no id: {e:?}");
    assert_eq!(truncation(&parse_json(&e.data).unwrap()), (0, 11), "{e:?}");
    sse.assert_quiet(Duration::from_millis(300));
    let v = parse_json(&server.get("/channels/big0/poll?after=0&timeout=0").text()).unwrap();
    assert_eq!(
        v.get("truncated").and_then(JsonValue::as_bool),
        Some(true),
        "{v:?}"
    );
    assert_eq!(
        v.get("last").and_then(JsonValue::as_f64),
        Some(10.0),
        "{v:?}"
    );
    assert!(
        matches!(v.get("messages"), Some(JsonValue::Arr(m)) if m.is_empty()),
        "{v:?}"
    );

    // big9 keeps only its id 10 (its own limit alone would keep 7..10).
    let mut sse = Sse::open_ok(&server, "/channels/big9/events", &[("Last-Event-ID", "0")]);
    let e = sse.event();
    assert_eq!(
        e.event, "truncated",
        "the first event of a resume on big9: {e:?}"
    );
    assert_eq!(truncation(&parse_json(&e.data).unwrap()), (0, 10), "{e:?}");
    let (id, data) = sse.message();
    assert_eq!((id, data.len(), &data[..4]), (10, SIZE, "099 "));
    sse.assert_quiet(Duration::from_millis(300));
    let r = server.get("/channels/big9/poll?after=0&timeout=0");
    let v = parse_json(&r.text()).unwrap();
    assert_eq!(v.get("truncated").and_then(JsonValue::as_bool), Some(true));
    assert_eq!(v.get("last").and_then(JsonValue::as_f64), Some(10.0));
    match v.get("messages") {
        Some(JsonValue::Arr(m)) => {
            assert_eq!(m.len(), 1);
            assert_eq!(m[0].get("id").and_then(JsonValue::as_f64), Some(10.0));
        }
        other => panic!("no messages: {other:?}"),
    }
    // And on WebSocket: the notice frame, then id 10.
    let mut ws = RawWs::open(addr, "/channels/big5/ws?after=0");
    let (b0, p) = ws.next_frame().unwrap().expect("a truncation frame");
    assert_eq!(b0 & 0x0f, OP_TEXT);
    let v = parse_json(&String::from_utf8_lossy(&p)).unwrap();
    assert_eq!(
        v.get("truncated").and_then(JsonValue::as_bool),
        Some(true),
        "{v:?}"
    );
    assert_eq!(truncation(&v), (0, 10));
    let (_, p) = ws.next_frame().unwrap().expect("message 10");
    assert!(
        p.starts_with(b"{\"id\":10,\"data\":\"095 "),
        "{:?}",
        String::from_utf8_lossy(&p[..40])
    );

    let peak = watch.stop();
    let worst = canary.check("history by bytes");
    report_bounds(
        "history by bytes (100 x 1 MB, 10 channels)",
        flags,
        base,
        peak,
        worst,
    );
}

// ----- 10.3 Replay amplification --------------------------------------------

/// A WebSocket upgrade request for `path`.
fn upgrade_request(addr: SocketAddr, path: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
}

/// Waits (up to 5 s) until the server's `bytes.out` has not moved for
/// 500 ms: whatever it will queue for stalled clients is queued.
fn wait_output_settles(server: &Server) -> u64 {
    let mut last = stat(&stats(server), "bytes.out");
    let mut still = 0;
    let end = Instant::now() + Duration::from_secs(5);
    while still < 5 && Instant::now() < end {
        thread::sleep(Duration::from_millis(100));
        let now = stat(&stats(server), "bytes.out");
        // The canary and these requests add a few KiB each time.
        still = if now - last < 64 * 1024 { still + 1 } else { 0 };
        last = now;
    }
    last
}

/// A close-delimited event stream read in bulk: `common::sse` parses byte
/// by byte, seconds for 64 MB in a debug build. Only what these replays
/// send is understood: blocks of `field: value` lines ended by a blank
/// line, values without CR.
struct BulkSse {
    s: TcpStream,
    buf: Vec<u8>,
    /// Start of the next block in `buf`.
    pos: usize,
    /// How far `buf` was searched for the block's end.
    scanned: usize,
}

impl BulkSse {
    fn open(addr: SocketAddr, path: &str, last_event_id: u64) -> BulkSse {
        let mut s = connect(addr);
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(
            format!(
                "GET {path} HTTP/1.1\r\nHost: {addr}\r\nLast-Event-ID: {last_event_id}\r\n\r\n"
            )
            .as_bytes(),
        )
        .unwrap();
        let mut sse = BulkSse {
            s,
            buf: Vec::new(),
            pos: 0,
            scanned: 0,
        };
        let end = loop {
            if let Some(i) = find(&sse.buf, b"\r\n\r\n") {
                break i + 4;
            }
            assert!(sse.fill(), "no event stream head on {path}");
        };
        let head = String::from_utf8_lossy(&sse.buf[..end]).to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 200"), "{head}");
        assert!(
            !head.contains("transfer-encoding"),
            "expected a close-delimited stream: {head}"
        );
        sse.pos = end;
        sse.scanned = end;
        sse
    }

    /// Reads more; false on EOF or error.
    fn fill(&mut self) -> bool {
        if self.pos > 8 << 20 {
            self.buf.drain(..self.pos);
            self.scanned -= self.pos;
            self.pos = 0;
        }
        let old = self.buf.len();
        self.buf.resize(old + 256 * 1024, 0);
        let n = self.s.read(&mut self.buf[old..]).unwrap_or(0);
        self.buf.truncate(old + n);
        n > 0
    }

    /// The next event's `(event type, id, data)`; comments and `retry:`
    /// blocks are skipped. `None` at the end of the stream or after the
    /// read timeout.
    fn next(&mut self) -> Option<(String, Option<u64>, Vec<u8>)> {
        loop {
            let end = loop {
                let from = self.scanned.max(self.pos);
                if let Some(i) = self.buf[from..].iter().position(|&b| b == b'\n') {
                    let at = from + i;
                    if self.buf.get(at + 1) == Some(&b'\n') {
                        break at;
                    }
                    if at + 1 < self.buf.len() {
                        self.scanned = at + 1;
                        continue;
                    }
                    self.scanned = at;
                } else {
                    self.scanned = self.buf.len();
                }
                if !self.fill() {
                    return None;
                }
            };
            let block = &self.buf[self.pos..end];
            let (mut event, mut id, mut data) = (String::from("message"), None, None::<Vec<u8>>);
            for line in block.split(|&b| b == b'\n') {
                if let Some(v) = line.strip_prefix(b"data: ") {
                    data = Some(match data {
                        None => v.to_vec(),
                        Some(mut d) => {
                            d.push(b'\n');
                            d.extend_from_slice(v);
                            d
                        }
                    });
                } else if let Some(v) = line.strip_prefix(b"id: ") {
                    id = std::str::from_utf8(v).ok().and_then(|v| v.parse().ok());
                } else if let Some(v) = line.strip_prefix(b"event: ") {
                    event = String::from_utf8_lossy(v).into_owned();
                }
            }
            self.pos = end + 2;
            self.scanned = self.pos;
            if let Some(data) = data {
                return Some((event, id, data));
            }
        }
    }
}

/// The frame a WebSocket subscriber gets for message `id` whose data is
/// `tag`, a space, then `size - tag.len() - 1` times `fill`: checked by
/// length and prefix (the JSON escaping of `fill` takes `escaped` bytes).
fn check_ws_message(
    p: &[u8],
    id: u64,
    tag: &str,
    size: usize,
    escaped: usize,
) -> Result<(), String> {
    let prefix = format!("{{\"id\":{id},\"data\":\"{tag} ");
    let want = prefix.len() + (size - tag.len() - 1) * escaped + 2;
    if !p.starts_with(prefix.as_bytes()) || p.len() != want || !p.ends_with(b"\"}") {
        return Err(format!(
            "message {id}: a frame of {} bytes starting {:?} (expected {want} bytes starting {prefix:?})",
            p.len(),
            String::from_utf8_lossy(&p[..p.len().min(40)])
        ));
    }
    Ok(())
}

/// What a replay test publishes and who asks for it.
struct ReplayAttack {
    what: &'static str,
    count: u64,
    size: usize,
    /// The byte after each message's tag; a control byte is six bytes in
    /// a WebSocket frame's JSON.
    fill: u8,
    /// The clients that never read: SSE ones, then WebSocket ones.
    stalled_sse: usize,
    stalled_ws: usize,
    /// Read the whole replay over SSE too (WebSocket always).
    read_sse: bool,
}

/// `count` messages of `size` bytes (a tag, then `fill`) on one channel
/// with room for all of them, then 20 clients that never read ask for the
/// whole replay (SSE `Last-Event-ID: 0`, WebSocket `after=0`): each may
/// cost about `--send-buffer-bytes`, not the history. Then a client that
/// reads gets the whole replay, in order, once, and a message published
/// during its replay after it, once.
fn replay_amplification(a: ReplayAttack) {
    const SEND_BUFFER: u64 = 1024 * 1024; // the default --send-buffer-bytes
    let what = a.what;
    let escaped = if a.fill < 0x20 { 6 } else { 1 };
    let flags = "--history-bytes 67108864 --max-history-bytes 67108864";
    let server = Server::start(&[
        "--history-bytes",
        "67108864",
        "--max-history-bytes",
        "67108864",
    ]);
    let pid = server.pid();
    let addr = server.addr;
    // While the non-readers are served: a debug build encodes a megabyte
    // of replay in 5-30 ms; the 20 initial replays run in the turn their
    // requests arrive, and the refills (until the kernel's buffers, ~4 MB
    // a socket on loopback, are full) take up to 4 MiB a turn: a fresh
    // connection's request waits two or three turns, 0.5-1.2 s seen on a
    // loaded machine (a release build: ~20 times less). The bound says the
    // loop still takes turns; the readers below are held to the usual one.
    let canary = Canary::start_with_limit(addr, CanaryHttp::Fresh, Duration::from_secs(4));
    warm_up(&server);
    let base = baseline_rss(pid);
    let watch = RssWatch::start(pid);

    let mut publisher = connect(addr);
    for i in 1..=a.count {
        let body = tagged(&format!("{i:05}"), a.size, a.fill);
        let r = ask_on(&mut publisher, addr, "POST", "/channels/replay", &[], &body);
        assert_eq!(r.status, 201, "{what}: publish #{i}: {r:?}");
    }
    let history = a.count * a.size as u64;
    assert_eq!(
        stat(&stats(&server), "history_bytes"),
        history + 5,
        "{what}: all kept"
    );
    let published = rss_kib(pid);
    let out_before = stat(&stats(&server), "bytes.out");

    // 20 clients that ask for the whole replay and never read a byte.
    let mut lazy = Vec::new();
    for i in 0..a.stalled_sse + a.stalled_ws {
        let mut s = connect(addr);
        let req = if i < a.stalled_sse {
            format!(
                "GET /channels/replay/events HTTP/1.1\r\nHost: {addr}\r\nLast-Event-ID: 0\r\n\r\n"
            )
        } else {
            upgrade_request(addr, "/channels/replay/ws?after=0")
        };
        s.write_all(req.as_bytes()).unwrap();
        lazy.push(s);
    }
    let n = (a.stalled_sse + a.stalled_ws) as u64;
    let ready = wait_for(Duration::from_secs(5), || {
        let st = stats(&server);
        (stat(&st, "connections.open.sse") + stat(&st, "connections.open.ws") > n).then_some(())
    });
    assert!(
        ready.is_some(),
        "{what}: the stalled subscribers: {:?}",
        stats(&server)
    );
    let out_after = wait_output_settles(&server);
    thread::sleep(Duration::from_millis(200));
    let peak = watch.max();
    let whole = history * escaped as u64 / 1024;
    let limit = base + history / 1024 + n * 2 * SEND_BUFFER / 1024 + 24 * MIB;
    eprintln!(
        "{what}: {n} stalled replays: {} KiB written to them (the kernel's buffers), peak RSS \
         {peak} KiB (baseline {base} KiB, {published} KiB after publishing, limit {limit} KiB)",
        (out_after - out_before) / 1024
    );
    assert!(
        peak <= limit,
        "{what}: server RSS reached {peak} KiB while {n} clients that never read asked for a \
         replay of up to {whole} KiB each: above baseline {base} KiB + the history {} KiB + \
         {n} x 2 x --send-buffer-bytes + 24 MiB = {limit} KiB (whole replays would take {n} x \
         {whole} KiB)",
        history / 1024,
    );
    for s in lazy {
        reset(s);
    }
    let worst_stalled = canary.check(&format!("{what}, while the non-readers were served"));

    // The readers next, each on a thread that counts what it got. Once
    // the first message is in, a message is published (during the replay)
    // and another connection asks GET /stats: one connection's replay is
    // refilled once a turn, so the answer comes while the reader is still
    // early in the replay, however fast it reads; a loop that fed it the
    // whole replay in one go would answer when it is near the end. Counted
    // in messages, not milliseconds, so a loaded machine does not matter.
    let canary = Canary::start_with_limit(addr, CanaryHttp::Fresh, Duration::from_secs(2));
    let mut control = connect(addr);
    let mut live_id = a.count;
    let mut during_replay = |what: &str, got: &AtomicU64, data: &[u8]| {
        let ok = wait_for(Duration::from_secs(10), || {
            (got.load(Ordering::Relaxed) >= 1).then_some(())
        });
        assert!(ok.is_some(), "{what}: no first message");
        let r = ask_on(&mut publisher, addr, "POST", "/channels/replay", &[], data);
        assert_eq!(r.status, 201);
        let t = Instant::now();
        stats_on(&mut control, addr);
        let at = got.load(Ordering::Relaxed);
        eprintln!(
            "{what}: GET /stats answered in {:?}, the reader at message {at} of {}",
            t.elapsed(),
            a.count
        );
        at
    };
    let (count, size) = (a.count, a.size);
    if a.read_sse {
        // A reader on SSE: 1..=count, then the message published meanwhile.
        let t = Instant::now();
        let mut sse = BulkSse::open(addr, "/channels/replay/events", 0);
        let got = Arc::new(AtomicU64::new(0));
        let g = got.clone();
        let reader = thread::spawn(move || -> Result<(), String> {
            for want in 1..=count {
                let (event, id, data) = sse.next().ok_or(format!("ended before {want}"))?;
                let tag = format!("{want:05} ");
                if event != "message"
                    || id != Some(want)
                    || data.len() != size
                    || !data.starts_with(tag.as_bytes())
                {
                    return Err(format!(
                        "message {want}: {event} {id:?}, {} bytes starting {:?}",
                        data.len(),
                        String::from_utf8_lossy(&data[..data.len().min(20)])
                    ));
                }
                g.store(want, Ordering::Relaxed);
            }
            let live = sse.next();
            if live
                != Some((
                    "message".into(),
                    Some(count + 1),
                    b"live during SSE".to_vec(),
                ))
            {
                return Err(format!("after the replay: {live:?}"));
            }
            sse.s
                .set_read_timeout(Some(Duration::from_millis(300)))
                .unwrap();
            match sse.next() {
                None => Ok(()),
                Some(e) => Err(format!("an event after the live one: {e:?}")),
            }
        });
        let at = during_replay(what, &got, b"live during SSE");
        let res = reader.join().unwrap();
        assert_eq!(res, Ok(()), "{what}: the SSE reader");
        live_id += 1;
        assert!(
            at < count / 2,
            "{what}: another client's request was answered only when the SSE reader had {at} \
             of the {count} replayed messages"
        );
        eprintln!("{what}: SSE reader done in {:?}", t.elapsed());
    }

    // A reader on WebSocket: the history, then the one(s) published meanwhile.
    let t = Instant::now();
    let mut ws = RawWs::open(addr, "/channels/replay/ws?after=0");
    let got = Arc::new(AtomicU64::new(0));
    let g = got.clone();
    let read_sse = a.read_sse;
    let reader = thread::spawn(move || -> Result<(), String> {
        let mut next = || match ws.next_frame() {
            Ok(Some((b0, p))) if b0 & 0x0f == OP_TEXT => Ok(p),
            other => Err(format!("{:?}", other.map(|o| o.map(|f| f.0)))),
        };
        for want in 1..=count {
            let p = next()?;
            check_ws_message(&p, want, &format!("{want:05}"), size, escaped)?;
            g.store(want, Ordering::Relaxed);
        }
        let live =
            |id: u64, text: &str| format!("{{\"id\":{id},\"data\":\"{text}\"}}").into_bytes();
        if read_sse && next()? != live(live_id, "live during SSE") {
            return Err("the message published during the SSE replay".into());
        }
        if next()? != live(live_id + 1, "live during WS") {
            return Err("the message published during the WebSocket replay".into());
        }
        ws.s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        match ws.next_frame() {
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => Ok(()),
            other => Err(format!("after the replay and the live message: {other:?}")),
        }
    });
    let at = during_replay(what, &got, b"live during WS");
    let res = reader.join().unwrap();
    assert_eq!(res, Ok(()), "{what}: the WebSocket reader");
    assert!(
        at < count / 2,
        "{what}: another client's request was answered only when the WebSocket reader had \
         {at} of the {count} replayed messages"
    );
    eprintln!("{what}: WebSocket reader done in {:?}", t.elapsed());

    let peak = watch.stop();
    let worst = canary.check(&format!("{what}, while the readers were served"));
    report_bounds(what, flags, base, peak, worst.max(worst_stalled));
}

#[test]
fn replays_to_clients_that_never_read_cost_a_send_buffer_each() {
    replay_amplification(ReplayAttack {
        what: "replay of 64 x 1 MB to 20 non-readers",
        count: 64,
        size: 1_000_000,
        fill: b'r',
        stalled_sse: 10,
        stalled_ws: 10,
        read_sse: true,
    });
}

/// Control bytes are six bytes each in a WebSocket frame's JSON
/// (`\u0001`): a whole replay of these 8 MB would be 48 MB a client.
#[test]
fn replays_of_control_bytes_are_not_multiplied_by_json_escaping() {
    replay_amplification(ReplayAttack {
        what: "replay of 64 x 128 KB of control bytes to 20 WebSocket non-readers",
        count: 64,
        size: 128_000,
        fill: 0x01,
        stalled_sse: 0,
        stalled_ws: 20,
        read_sse: false,
    });
}

// ----- 10.4 Webhooks that would call the server itself ----------------------

/// `GET /webhook-receiver`'s entries.
fn receiver_entries(addr: SocketAddr) -> Vec<JsonValue> {
    let r = ask(addr, "GET", "/webhook-receiver", &[], b"");
    assert_eq!(r.status, 200, "GET /webhook-receiver: {r:?}");
    match r.json().expect("receiver JSON").get("received") {
        Some(JsonValue::Arr(v)) => v.clone(),
        other => panic!("no received list: {other:?}"),
    }
}

#[test]
fn webhooks_cannot_make_the_server_call_itself() {
    let server = Server::start(&[]);
    let pid = server.pid();
    let addr = server.addr;
    let port = addr.port();
    let canary = Canary::start(addr, CanaryHttp::Fresh);
    warm_up(&server);
    let base = baseline_rss(pid);
    let watch = RssWatch::start(pid);

    // Every spelling of this server's own address, on a channel: 400.
    for url in [
        format!("http://127.0.0.1:{port}/channels/loop"),
        format!("http://localhost:{port}/channels/loop"),
        format!("http://127.0.0.1:{port}/"),
    ] {
        let r = register_webhook(addr, &url, "channel.loop", &[]);
        assert_error_answer(&r, 400, &format!("a webhook to {url}"));
        let cb = format!("/submit?duration_ms=0&callback={}", enc(&url));
        let r = ask(addr, "POST", &cb, &[], b"");
        assert_error_answer(&r, 400, &format!("a job callback to {url}"));
    }
    assert!(
        listed_webhooks(addr).is_empty(),
        "a self-loop webhook was kept"
    );

    // On IPv6 loopback too, when the machine has it.
    if std::net::TcpListener::bind("[::1]:0").is_ok() {
        let v6 = Server::start(&["--addr", "[::1]:0"]);
        let p6 = v6.addr.port();
        for url in [
            format!("http://[::1]:{p6}/channels/loop"),
            format!("http://127.0.0.1:{p6}/channels/loop"),
        ] {
            let r = register_webhook(v6.addr, &url, "channel.loop", &[]);
            assert_error_answer(
                &r,
                400,
                &format!("a webhook to {url} on a server at {}", v6.addr),
            );
        }
    } else {
        eprintln!("self-loop: no IPv6 loopback here; [::1] not tried");
    }

    // The built-in receiver is a sink (it publishes nothing): allowed, and
    // one publish is one delivery, not a loop.
    let r = register_webhook(
        addr,
        &format!("http://127.0.0.1:{port}/webhook-receiver"),
        "channel.loop",
        &[],
    );
    assert_eq!(r.status, 201, "a webhook to the built-in receiver: {r:?}");
    let published = stat(&stats(&server), "messages.published");
    assert_eq!(server.post("/channels/loop", b"once").status, 201);
    let got = wait_for(Duration::from_secs(5), || {
        let e = receiver_entries(addr);
        (!e.is_empty()).then_some(e)
    });
    let got = got.expect("the built-in receiver got the delivery");
    assert_eq!(
        got[0].get("verified").and_then(JsonValue::as_bool),
        Some(true),
        "{got:?}"
    );
    thread::sleep(Duration::from_millis(1000));
    assert_eq!(receiver_entries(addr).len(), 1, "one publish, one delivery");
    assert_eq!(stat(&stats(&server), "messages.published"), published + 1);

    // A publish made by a webhook delivery reaches subscribers but fires
    // no webhook; a normal publish does.
    let sink = Sink::start();
    let r = register_webhook(
        addr,
        &format!("http://{}/hook", sink.addr),
        "channel.quiet",
        &[],
    );
    assert_eq!(r.status, 201, "{r:?}");
    let mut sub = Sse::open_ok(&server, "/channels/quiet/events", &[]);
    let r = server.request(
        "POST",
        "/channels/quiet",
        &[("X-Pushwire-Delivery", "d-17")],
        b"relayed",
    );
    assert_eq!(r.status, 201, "a publish by a delivery: {}", r.text());
    sub.expect_message(1, "relayed");
    thread::sleep(Duration::from_millis(1500));
    assert!(
        sink.hits().is_empty(),
        "a delivery's publish fired a webhook: {:?}",
        sink.hits()
    );
    assert_eq!(server.post("/channels/quiet", b"direct").status, 201);
    sub.expect_message(2, "direct");
    let hits = wait_for(Duration::from_secs(5), || {
        let h = sink.hits();
        (!h.is_empty()).then_some(h)
    })
    .expect("a normal publish reaches the webhook");
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert!(hits[0].contains("\"data\":\"direct\""), "{}", hits[0]);

    let peak = watch.stop();
    let worst = canary.check("webhook self-loop");
    report_bounds("webhook self-loop", "(defaults)", base, peak, worst);
}

// ----- 10.5 --max-webhooks ---------------------------------------------------

#[test]
fn max_webhooks_counts_job_callbacks_until_they_are_delivered() {
    let flags = "--max-webhooks 2";
    let server = Server::start(&["--max-webhooks", "2"]);
    let pid = server.pid();
    let addr = server.addr;
    let canary = Canary::start(addr, CanaryHttp::Fresh);
    warm_up(&server);
    let base = baseline_rss(pid);
    let watch = RssWatch::start(pid);
    let sink = Sink::start();
    let hook = format!("http://{}/hook", sink.addr);
    let callback = |ms: u64| {
        ask(
            addr,
            "POST",
            &format!("/submit?duration_ms={ms}&callback={}", enc(&hook)),
            &[],
            b"",
        )
    };

    let a = register_webhook(addr, &hook, "channel.x", &[]);
    let b = register_webhook(addr, &hook, "channel.y", &[]);
    assert_eq!((a.status, b.status), (201, 201), "{a:?} {b:?}");
    let (a, b) = (webhook_id(&a), webhook_id(&b));
    assert_error_answer(
        &register_webhook(addr, &hook, "channel.z", &[]),
        503,
        "a third webhook",
    );
    assert_error_answer(&callback(0), 503, "a job callback past --max-webhooks");
    assert_eq!(listed_webhooks(addr), vec![a.clone(), b.clone()]);

    // Deleting one makes room.
    assert_eq!(
        ask(addr, "DELETE", &format!("/webhooks/{a}"), &[], b"").status,
        204
    );
    let c = register_webhook(addr, &hook, "channel.z", &[]);
    assert_eq!(c.status, 201, "after a delete: {c:?}");
    assert_eq!(
        ask(addr, "DELETE", &format!("/webhooks/{b}"), &[], b"").status,
        204
    );

    // A job's callback takes a place until its delivery is done.
    let job = callback(300);
    assert_eq!(job.status, 202, "{job:?}");
    let j = job
        .json()
        .ok()
        .and_then(|v| v.get("webhook")?.as_str().map(str::to_string))
        .unwrap_or_else(|| panic!("no webhook id in {job:?}"));
    assert_eq!(listed_webhooks(addr).len(), 2);
    assert_error_answer(
        &register_webhook(addr, &hook, "channel.w", &[]),
        503,
        "while the callback waits",
    );
    let hits = wait_for(Duration::from_secs(5), || {
        let h = sink.hits();
        (!h.is_empty()).then_some(h)
    })
    .expect("the job's callback was delivered");
    assert!(hits[0].contains("job.done"), "{}", hits[0]);
    let gone = wait_for(Duration::from_secs(2), || {
        (!listed_webhooks(addr).contains(&j)).then_some(())
    });
    assert!(
        gone.is_some(),
        "the delivered callback is still listed: {:?}",
        listed_webhooks(addr)
    );
    let d = register_webhook(addr, &hook, "channel.w", &[]);
    assert_eq!(d.status, 201, "after the callback's delivery: {d:?}");
    // Its attempt stays readable.
    let r = ask(addr, "GET", &format!("/webhooks/{j}/deliveries"), &[], b"");
    assert_eq!(r.status, 200, "{r:?}");

    let peak = watch.stop();
    let worst = canary.check("--max-webhooks");
    report_bounds("webhook count", flags, base, peak, worst);
}

// ----- 10.6 Only the server's own pages may make it call out -----------------

#[test]
fn webhooks_need_the_servers_own_origin_or_a_listed_one() {
    let server = Server::start(&[]);
    let pid = server.pid();
    let addr = server.addr;
    let canary = Canary::start(addr, CanaryHttp::Fresh);
    warm_up(&server);
    let base = baseline_rss(pid);
    let watch = RssWatch::start(pid);
    let sink = Sink::start();
    let hook = format!("http://{}/hook", sink.addr);
    let cb = format!("/submit?duration_ms=0&callback={}", enc(&hook));
    let evil = [("Origin", "http://evil.example")];
    let own_origin = format!("http://{addr}");
    let own = [("Origin", own_origin.as_str())];

    // Without --allow-origin every origin may use the API, but not make
    // the server call out.
    assert_error_answer(
        &register_webhook(addr, &hook, "job.done", &evil),
        403,
        "register, evil origin",
    );
    assert_error_answer(
        &ask(addr, "POST", &cb, &evil, b""),
        403,
        "a callback, evil origin",
    );
    assert!(
        listed_webhooks(addr).is_empty(),
        "{:?}",
        listed_webhooks(addr)
    );
    let r = ask(addr, "POST", "/submit?duration_ms=0", &evil, b"");
    assert_eq!(
        r.status, 202,
        "a job without a callback, evil origin: {r:?}"
    );
    let id = webhook_id(&register_webhook(addr, &hook, "job.done", &[]));
    let del = format!("/webhooks/{id}");
    assert_error_answer(
        &ask(addr, "DELETE", &del, &evil, b""),
        403,
        "delete, evil origin",
    );
    assert_eq!(listed_webhooks(addr), vec![id.clone()]);

    // The server's own origin (its demo page) may, in any case.
    assert_eq!(
        ask(addr, "DELETE", &del, &own, b"").status,
        204,
        "delete, own origin"
    );
    let r = register_webhook(addr, &hook, "job.done", &own);
    assert_eq!(r.status, 201, "register, own origin {own_origin}: {r:?}");
    let upper = [("Origin", &*own_origin.to_ascii_uppercase())];
    let r = register_webhook(addr, &hook, "job.done", &upper);
    assert_eq!(r.status, 201, "register, own origin upper-cased: {r:?}");
    let r = ask(addr, "POST", &cb, &own, b"");
    assert_eq!(r.status, 202, "a callback, own origin: {r:?}");
    let peak = watch.stop();
    let worst = canary.check("webhook origin rule");
    drop(server);

    // A listed origin may too; another still may not.
    let listed = Server::start(&["--allow-origin", "http://evil.example"]);
    let a2 = listed.addr;
    let r = register_webhook(a2, &hook, "job.done", &evil);
    assert_eq!(r.status, 201, "register, listed origin: {r:?}");
    let id = webhook_id(&r);
    let other = [("Origin", "http://other.example")];
    assert_error_answer(
        &register_webhook(a2, &hook, "job.done", &other),
        403,
        "an unlisted origin",
    );
    assert_eq!(
        ask(a2, "POST", &cb, &evil, b"").status,
        202,
        "a callback, listed origin"
    );
    assert_eq!(
        ask(a2, "DELETE", &format!("/webhooks/{id}"), &evil, b"").status,
        204
    );
    report_bounds(
        "webhook origin rule",
        "(defaults); --allow-origin http://evil.example",
        base,
        peak,
        worst,
    );
}

// ----- 10.7 Chunked framing -------------------------------------------------

#[test]
fn chunk_extensions_count_against_the_body_limit() {
    let flags = "--max-body-bytes 1000";
    let server = Server::start(&["--max-body-bytes", "1000"]);
    let pid = server.pid();
    let addr = server.addr;
    let canary = Canary::start(addr, CanaryHttp::Fresh);
    warm_up(&server);
    let base = baseline_rss(pid);
    let watch = RssWatch::start(pid);
    let head = format!(
        "POST /channels/chunky HTTP/1.1\r\nHost: {addr}\r\nTransfer-Encoding: chunked\r\n\r\n"
    );

    // Framing within the allowance is fine: 900 one-byte chunks with
    // 40-byte extensions (about 45 KB of raw body for 900 bytes).
    let mut s = connect(addr);
    let mut req = head.clone().into_bytes();
    for _ in 0..900 {
        req.extend_from_slice(format!("1;e={}\r\na\r\n", "x".repeat(38)).as_bytes());
    }
    req.extend_from_slice(b"0\r\n\r\n");
    s.write_all(&req).unwrap();
    let r = try_read_response(&mut s).expect("an answer to the chunked publish");
    assert_eq!(
        r.status, 201,
        "900 bytes in 1-byte chunks with extensions: {r:?}"
    );

    // 1-byte chunks with 4000-byte extensions: cut once the raw body
    // passes 1000 + 64 KiB, long before 200 KiB was sent.
    let mut s = connect(addr);
    s.write_all(head.as_bytes()).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(1))).unwrap();
    let chunk = format!("1;ext={}\r\na\r\n", "e".repeat(4000)).into_bytes();
    let mut sent = 0;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let mut write_error = None;
    while got.is_empty() && sent < 200 * 1024 {
        if let Err(e) = s.write_all(&chunk) {
            write_error = Some(e.to_string());
            break;
        }
        sent += chunk.len();
        // Past the allowance, give a busy machine time to answer before
        // sending more (the bound is on what the server takes in, not on
        // how fast it says so).
        let wait = if sent > 72 * 1024 { 200 } else { 1 };
        s.set_read_timeout(Some(Duration::from_millis(wait)))
            .unwrap();
        match s.read(&mut buf) {
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => {
                write_error = Some(e.to_string());
                break;
            }
        }
    }
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let rest = read_to_close(&mut s);
    let closed = rest.is_ok();
    got.extend(rest.unwrap_or_else(|(_, got)| got));
    eprintln!(
        "chunked framing: answered after {} KiB sent ({write_error:?}): {:?}",
        sent / 1024,
        String::from_utf8_lossy(&got[..got.len().min(60)])
    );
    assert_eq!(
        first_status(&got),
        Some(413),
        "after {sent} bytes of 1-byte chunks with 4000-byte extensions: {:?}",
        String::from_utf8_lossy(&got)
    );
    assert!(sent < 200 * 1024, "the 413 came only after {sent} bytes");
    assert!(closed, "the connection stayed open after the 413");
    let r = server.get("/channels/chunky/poll?after=1&timeout=0");
    assert!(
        r.text().contains("\"messages\":[]"),
        "the cut body was published: {}",
        r.text()
    );

    let peak = watch.stop();
    let worst = canary.check("chunked framing");
    report_bounds("chunked framing", flags, base, peak, worst);
}

// ----- 10.8 Fairness: work per turn, not only bytes --------------------------

#[test]
fn a_flood_of_tiny_frames_takes_turns_with_other_clients() {
    const N: u64 = 30_000;
    let server = Server::start(&[]);
    let pid = server.pid();
    let addr = server.addr;
    let canary = Canary::start(addr, CanaryHttp::Fresh);
    warm_up(&server);
    let base = baseline_rss(pid);
    let watch = RssWatch::start(pid);
    let mut control = connect(addr);
    let before = stat(&stats_on(&mut control, addr), "messages.published");

    // The flooder publishes to its own channel, and reads what comes back
    // (its own messages) on a thread, which says when the first arrived.
    let ws = RawWs::open(addr, "/channels/fair/ws");
    let mut w = ws.s.try_clone().unwrap();
    let mut ws = ws;
    ws.s.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let (first_tx, first_rx) = std::sync::mpsc::channel();
    let reader = thread::spawn(move || {
        let mut next = 1;
        while next <= N {
            match ws.next_frame() {
                Ok(Some((b0, p))) if b0 & 0x0f == OP_TEXT => {
                    let want = format!("{{\"id\":{next},\"data\":\"x\"}}");
                    if p != want.as_bytes() {
                        return Err(format!(
                            "expected {want}, got {:?}",
                            String::from_utf8_lossy(&p)
                        ));
                    }
                    if next == 1 {
                        let _ = first_tx.send(());
                    }
                    next += 1;
                }
                Ok(Some(_)) => {}
                other => return Err(format!("after {} messages: {other:?}", next - 1)),
            }
        }
        Ok(next - 1)
    });
    let flood: Vec<u8> = (0..N).flat_map(|_| frame(true, OP_TEXT, b"x")).collect();
    w.write_all(&flood).expect("write the flood");
    first_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the flood's first message came back");
    // The server is working through the flood: another client is served
    // meanwhile, after at most a turn of it.
    let t = Instant::now();
    let during = stat(&stats_on(&mut control, addr), "messages.published") - before;
    let took = t.elapsed();
    eprintln!(
        "fairness: /stats answered in {took:?} with {during} of the {N} flood frames published"
    );
    assert!(
        during < N / 3,
        "another client's request waited for {during} of {N} publishes from one connection's \
         single write (the loop takes at most 256 units a connection a turn)"
    );
    assert_eq!(reader.join().unwrap(), Ok(N), "the flooder's own messages");
    assert_eq!(
        stat(&stats_on(&mut control, addr), "messages.published") - before,
        N
    );
    reset(w);

    let peak = watch.stop();
    let worst = canary.check("tiny-frame flood");
    report_bounds(
        "30,000 tiny frames in one write",
        "(defaults)",
        base,
        peak,
        worst.max(took),
    );
}

// ----- 10.9 The receiver's bodies ---------------------------------------------

#[test]
fn receiver_bodies_are_cut_and_its_answer_is_shared() {
    const KEEP: usize = 64 * 1024;
    let server = Server::start(&[]);
    let pid = server.pid();
    let addr = server.addr;
    let canary = Canary::start(addr, CanaryHttp::Fresh);
    warm_up(&server);
    let base = baseline_rss(pid);
    let watch = RssWatch::start(pid);

    // 200 KiB in, 64 KiB kept, and said so.
    let mut poster = connect(addr);
    let big = tagged("first", 200 * 1024, b'b');
    let r = ask_on(&mut poster, addr, "POST", "/webhook-receiver", &[], &big);
    assert_eq!(r.status, 200, "{r:?}");
    let e = receiver_entries(addr);
    let body = e[0]
        .get("body")
        .and_then(JsonValue::as_str)
        .expect("a body");
    assert_eq!((body.len(), &body[..6]), (KEEP, "first "), "the kept body");
    assert_eq!(
        e[0].get("body_truncated").and_then(JsonValue::as_bool),
        Some(true),
        "{:?}",
        &e[0].keys()
    );
    let r = ask_on(
        &mut poster,
        addr,
        "POST",
        "/webhook-receiver",
        &[],
        b"small",
    );
    assert_eq!(r.status, 200);
    let e = receiver_entries(addr);
    assert_eq!(e[1].get("body").and_then(JsonValue::as_str), Some("small"));
    assert_ne!(
        e[1].get("body_truncated").and_then(JsonValue::as_bool),
        Some(true)
    );

    // 100 such bodies: the answer is about 100 x 64 KiB. (Of letters: the
    // answer is built on the loop once per change, and 6.4 MB of control
    // bytes, 38 MB of JSON, take ~0.6 s of a debug build's loop.)
    for i in 0..100 {
        let body = tagged(&format!("{i:03}"), 200 * 1024, b'q');
        let r = ask_on(&mut poster, addr, "POST", "/webhook-receiver", &[], &body);
        assert_eq!(r.status, 200, "{r:?}");
    }
    let stored = rss_kib(pid);
    let answer_kib = 100 * KEEP as u64 / 1024;
    let out_before = stat(&stats(&server), "bytes.out");
    let mut lazy = Vec::new();
    for _ in 0..20 {
        let mut s = connect(addr);
        s.write_all(format!("GET /webhook-receiver HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
            .unwrap();
        lazy.push(s);
    }
    let out_after = wait_output_settles(&server);
    let peak = watch.max();
    // The answer is built once (a growing String, then the shared copy:
    // up to twice its size for a moment) and shared by every request.
    let limit = base + 100 * KEEP as u64 / 1024 + 2 * answer_kib + 24 * MIB;
    eprintln!(
        "receiver: 20 stalled GETs: {} KiB written to them, peak RSS {peak} KiB, now {} KiB \
         (baseline {base} KiB, {stored} KiB with 100 bodies stored, limit {limit} KiB)",
        (out_after - out_before) / 1024,
        rss_kib(pid)
    );
    assert!(
        peak <= limit,
        "server RSS reached {peak} KiB while 20 clients that never read asked for the \
         {answer_kib} KiB receiver list: above baseline {base} KiB + 100 x 64 KiB stored + \
         twice one answer + 24 MiB = {limit} KiB (an answer each would take 20 x {answer_kib} \
         KiB)"
    );
    for s in lazy {
        reset(s);
    }
    // A reader gets the whole list: the last 100, each cut.
    let r = ask(addr, "GET", "/webhook-receiver", &[], b"");
    assert_eq!(r.status, 200);
    let mark = b"\"body_truncated\":true";
    let cut = r.body.windows(mark.len()).filter(|w| w == mark).count();
    assert_eq!(
        cut,
        100,
        "entries marked body_truncated in {} bytes",
        r.body.len()
    );
    assert!(
        r.body.len() as u64 > answer_kib * 1024,
        "{} bytes",
        r.body.len()
    );

    let peak = watch.stop();
    let worst = canary.check("receiver bodies");
    report_bounds(
        "receiver: 100 bodies of 200 KiB, 20 non-readers",
        "(defaults)",
        base,
        peak,
        worst,
    );
}

// ----- 10.10 Shutdown with a backplane ---------------------------------------

/// SIGTERM to a node with `--redis` ends as promptly as without one: the
/// backplane's connections are the server's own, not clients to wait for.
#[test]
fn sigterm_with_redis_ends_within_a_second() {
    let redis = common::RedisServer::start();
    let url = redis.url();
    for with_subscriber in [false, true] {
        let what = if with_subscriber {
            "with a WebSocket subscriber"
        } else {
            "idle"
        };
        let mut server = Server::start(&["--redis", &url]);
        let addr = server.addr;
        let up = wait_for(Duration::from_secs(5), || {
            let st = stats(&server);
            st.get("backplane")?.get("up")?.as_bool()?.then_some(())
        });
        assert!(
            up.is_some(),
            "the backplane did not come up: {:?}",
            stats(&server)
        );
        // The subscriber reads (so it answers the close 1001 at once).
        let subscriber = with_subscriber.then(|| {
            let mut ws = ws_client(addr, "/channels/r/ws").expect("a subscriber");
            assert_eq!(server.post("/channels/r", b"hello").status, 201);
            match ws.read() {
                Ok(Message::Text(t)) => assert!(t.contains("hello"), "{t}"),
                other => panic!("the subscriber's message: {other:?}"),
            }
            thread::spawn(move || while ws.read().is_ok() {})
        });
        let t0 = Instant::now();
        let kill = std::process::Command::new("kill")
            .args(["-TERM", &server.pid().to_string()])
            .status()
            .expect("kill");
        assert!(kill.success());
        let exit = server.wait_exit(Duration::from_secs(6));
        let took = t0.elapsed();
        eprintln!("bounds: shutdown with --redis, {what} | --redis {url} | exited after {took:?}");
        let exit = exit.unwrap_or_else(|| panic!("{what}: still running {took:?} after SIGTERM"));
        assert!(exit.success(), "{what}: exit status {exit}");
        assert!(
            took < Duration::from_secs(1),
            "{what}: SIGTERM with --redis took {took:?} (the default --shutdown-timeout-ms is 5 s)"
        );
        if let Some(t) = subscriber {
            t.join().unwrap();
        }
    }
}
