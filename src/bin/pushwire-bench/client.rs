//! The client side: one thread, one `mio::Poll`, every connection in a slab.
//!
//! ```text
//!  Setup    open connections (at most MAX_SETTING_UP connecting or
//!           handshaking at once), upgrade / subscribe / first poll
//!  Warmup   traffic starts (echo: K messages per connection; fan-out: the
//!           publisher's clock starts), nothing is counted
//!  Measure  the window: completions, latencies, CPU
//!  Drain    fan-out only: publishing has stopped; wait (at most --drain)
//!           for the deliveries of messages published in the window
//! ```
//!
//! Per message the work is a memcpy of a pre-encoded frame or request into
//! the connection's reused output buffer, one `write` per wake-up per
//! connection, and an in-place parse of what came back (no allocation).
//! Echo latency is the time since the matching send, kept in a per-
//! connection FIFO (echoes come back in order). Fan-out latency is the
//! receive time minus the timestamp the publisher wrote into the message:
//! 20 decimal digits of nanoseconds since this process started, followed
//! by 'x' padding up to `--size`.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use mio::event::Event;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use pushwire::wire::chunked::ChunkedDecoder;
use pushwire::wire::http1::{parse_response_head, response_body, ResponseBody, MAX_HEADERS};
use pushwire::wire::ws_frame::{
    opcode, parse_header_with, write_masked_frame, write_masked_frame_with_rsv, RSV1,
};
use pushwire::wire::ws_handshake::accept_key;
use pushwire::wire::Status;

use crate::deflate::{self, Inflate};
use crate::metrics::{rss_kb, CpuMark, Histogram};
use crate::opts::{IdleKind, Opts, Payload, Scenario};

/// Connections connecting or handshaking at once during setup. mio's
/// `TcpListener::bind` listens with a backlog of 128 (std's value); more
/// connects at once overflow it, and each dropped SYN costs the client a
/// one-second retransmit.
const MAX_SETTING_UP: usize = 100;
/// The fixed masking key of every client frame (RFC 6455 section 5.7's).
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
/// RFC 6455 section 1.3's sample nonce: any valid key will do.
const WS_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
/// Digits of the timestamp at the start of every published message.
const TS_DIGITS: usize = 20;
/// Long-poll hold time asked of the server.
const POLL_TIMEOUT_S: u32 = 30;
/// Largest response head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Largest inflated message accepted (`--deflate`).
const MAX_INFLATED: usize = 64 << 20;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Role {
    WsEcho,
    TcpEcho,
    Http,
    WsSub,
    SseSub,
    LongPoll,
    Publisher,
    IdleWs,
    IdleSse,
    /// A long poll parked on the server for the whole run.
    IdlePoll,
}

impl Role {
    fn is_ws(self) -> bool {
        matches!(self, Role::WsEcho | Role::WsSub | Role::IdleWs)
    }
    fn is_sse(self) -> bool {
        matches!(self, Role::SseSub | Role::IdleSse)
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum St {
    Connecting,
    /// Upgrade, event-stream head or first poll answer awaited.
    Handshake,
    Ready,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, PartialOrd, Ord)]
enum Phase {
    Setup,
    Warmup,
    Measure,
    Drain,
    Done,
}

struct Conn {
    stream: TcpStream,
    role: Role,
    st: St,
    /// Received bytes not parsed yet (a partial frame, head, line).
    inbuf: Vec<u8>,
    /// Output not yet taken by the kernel: `out[out_pos..]`.
    out: Vec<u8>,
    out_pos: usize,
    /// Echo / keep-alive: send times of what is in flight, oldest first.
    fifo: VecDeque<u64>,
    /// Fan-out: the last message id seen (0: none yet); long poll: the cursor.
    last_id: u64,
    /// tcp-echo: bytes received of the message being echoed.
    partial: usize,
    /// SSE over chunked transfer coding.
    chunked: Option<ChunkedDecoder>,
    /// SSE: de-chunked bytes not scanned yet.
    body: Vec<u8>,
    /// SSE: the event being received.
    sse_id: u64,
    sse_ts: Option<u64>,
}

/// Counters shared by all connections.
struct Ctx {
    start: Instant,
    /// Nanoseconds since `start`, refreshed at every read.
    now: u64,
    phase: Phase,
    win_start: u64,
    win_end: u64,
    hist: Histogram,
    /// Echo round trips, responses, or deliveries received in the window.
    done_in_window: u64,
    /// Fan-out: deliveries of messages published in the window.
    delivered_of_window: u64,
    published_in_window: u64,
    published: u64,
    publish_ok: u64,
    publish_err: u64,
    ready: usize,
    setting_up: usize,
    failed: usize,
    closed: usize,
    subs_alive: usize,
    dup: u64,
    gaps: u64,
    truncated: u64,
    foreign: u64,
    bad_status: u64,
    bytes_in: u64,
    bytes_out: u64,
    errors: Vec<(String, u64)>,
    /// `--deflate`: the one decompressor for every connection.
    inflate: Inflate,
}

impl Ctx {
    fn in_window(&self, t: u64) -> bool {
        t >= self.win_start && t < self.win_end
    }

    /// Traffic generation runs in warmup and the window.
    fn sending(&self) -> bool {
        matches!(self.phase, Phase::Warmup | Phase::Measure)
    }

    fn error(&mut self, e: String) {
        if let Some(x) = self.errors.iter_mut().find(|(m, _)| *m == e) {
            x.1 += 1;
        } else if self.errors.len() < 8 {
            self.errors.push((e, 1));
        }
    }

    /// A request/response or echo round trip finished.
    fn complete(&mut self, sent: u64) {
        if self.in_window(self.now) {
            self.done_in_window += 1;
            self.hist.record(self.now.saturating_sub(sent));
        }
    }

    /// A fan-out message `id` published at `ts` arrived on a connection
    /// whose last id was `*last`.
    fn deliver(&mut self, last: &mut u64, id: u64, ts: u64) {
        if *last != 0 {
            if id <= *last {
                self.dup += 1;
            } else if id > *last + 1 {
                self.gaps += id - *last - 1;
            }
        }
        *last = (*last).max(id);
        if self.in_window(self.now) {
            self.done_in_window += 1;
        }
        if self.in_window(ts) {
            self.delivered_of_window += 1;
            self.hist.record(self.now.saturating_sub(ts));
        }
    }
}

/// Everything sent more than once, encoded once.
struct Tpl {
    size: usize,
    inflight: usize,
    echo_frame: Vec<u8>,
    tcp_msg: Vec<u8>,
    http_req: Vec<u8>,
    upgrade: Vec<u8>,
    sse_req: Vec<u8>,
    poll_first: Vec<u8>,
    poll_prefix: Vec<u8>,
    poll_suffix: Vec<u8>,
    publish: Vec<u8>,
    publish_ts_at: usize,
    accept: String,
    /// `--deflate`: the upgrade offers compression, and the server must
    /// accept it.
    deflate: bool,
}

impl Tpl {
    fn new(o: &Opts) -> Tpl {
        let host = &o.host;
        let ch = &o.channel;
        // A server with --token-secret wants a token on every channel
        // request: verified once per request or connection.
        let auth = o
            .token
            .as_ref()
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let get = |target: &str, extra: &str| {
            format!("GET {target} HTTP/1.1\r\nHost: {host}\r\n{auth}{extra}\r\n").into_bytes()
        };
        let ws_path = match o.scenario {
            Scenario::WsFanout => format!("/channels/{ch}/ws"),
            _ => o.path.clone().unwrap_or_else(|| "/echo".into()),
        };
        let offer = match o.deflate {
            true => format!("Sec-WebSocket-Extensions: {}\r\n", deflate::OFFER),
            false => String::new(),
        };
        let upgrade = get(
            &ws_path,
            &format!(
                "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {WS_KEY}\r\n\
                 Sec-WebSocket-Version: 13\r\n{offer}"
            ),
        );
        let content = |n: usize| match o.payload {
            Payload::Xs => vec![b'x'; n],
            Payload::Json => deflate::json_text(n).into_bytes(),
        };
        let payload = content(o.size);
        let mut echo_frame = Vec::with_capacity(o.size + 14);
        let op = if o.binary {
            opcode::BINARY
        } else {
            opcode::TEXT
        };
        if o.deflate {
            // No context takeover: the same message always compresses to
            // the same bytes, so it is compressed once, here.
            let z = deflate::compress(&payload);
            write_masked_frame_with_rsv(&mut echo_frame, true, RSV1, op, MASK, &z);
        } else {
            write_masked_frame(&mut echo_frame, true, op, MASK, &payload);
        }
        let http_path = o
            .path
            .clone()
            .unwrap_or_else(|| format!("/channels/{ch}/poll?timeout=0"));
        // The publish body: the timestamp, then padding to --size.
        let body_len = o.size.max(TS_DIGITS);
        let mut publish = format!(
            "POST /channels/{ch} HTTP/1.1\r\nHost: {host}\r\n{auth}Content-Type: text/plain\r\n\
             Content-Length: {body_len}\r\n\r\n"
        )
        .into_bytes();
        let publish_ts_at = publish.len();
        publish.extend(std::iter::repeat_n(b'0', TS_DIGITS));
        publish.extend(content(body_len - TS_DIGITS));
        Tpl {
            size: o.size,
            inflight: o.inflight,
            echo_frame,
            tcp_msg: payload,
            http_req: get(&http_path, ""),
            upgrade,
            sse_req: get(
                &format!("/channels/{ch}/events"),
                "Accept: text/event-stream\r\n",
            ),
            poll_first: get(&format!("/channels/{ch}/poll?timeout=0"), ""),
            poll_prefix: format!("GET /channels/{ch}/poll?timeout={POLL_TIMEOUT_S}&after=")
                .into_bytes(),
            poll_suffix: format!(" HTTP/1.1\r\nHost: {host}\r\n\r\n").into_bytes(),
            publish,
            publish_ts_at,
            accept: accept_key(WS_KEY),
            deflate: o.deflate,
        }
    }

    /// Queues one message or request of the connection's kind.
    fn send_one(&self, c: &mut Conn, now: u64) {
        let bytes = match c.role {
            Role::WsEcho => &self.echo_frame,
            Role::TcpEcho => &self.tcp_msg,
            Role::Http => &self.http_req,
            _ => return,
        };
        c.out.extend_from_slice(bytes);
        c.fifo.push_back(now);
    }

    fn send_poll(&self, c: &mut Conn) {
        c.out.extend_from_slice(&self.poll_prefix);
        push_decimal(&mut c.out, c.last_id);
        c.out.extend_from_slice(&self.poll_suffix);
    }
}

/// What a run measured.
pub struct Outcome {
    pub scenario: Scenario,
    pub conns_wanted: usize,
    pub ready: usize,
    pub failed: usize,
    pub closed: usize,
    pub setup_secs: f64,
    pub window_secs: f64,
    pub completed: u64,
    pub throughput: f64,
    pub unit: &'static str,
    pub p50_us: Option<f64>,
    pub p99_us: Option<f64>,
    pub p999_us: Option<f64>,
    pub max_us: Option<f64>,
    pub samples: u64,
    pub delivered: Option<f64>,
    pub delivered_count: u64,
    pub expected: u64,
    pub published: u64,
    pub published_in_window: u64,
    pub publish_err: u64,
    pub subscribers: usize,
    pub dup: u64,
    pub gaps: u64,
    pub truncated: u64,
    pub foreign: u64,
    pub bad_status: u64,
    pub client_cpu: Option<f64>,
    pub server_cpu: Option<f64>,
    pub server_rss_kb: Option<u64>,
    pub rss_before_kb: Option<u64>,
    pub rss_per_conn_kb: Option<f64>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub errors: Vec<(String, u64)>,
    /// `--deflate`: messages inflated, and messages that were byte for
    /// byte one inflated before (see `deflate::Inflate`).
    pub inflated: u64,
    pub inflate_reused: u64,
}

struct Bench {
    o: Opts,
    poll: Poll,
    conns: Slab<Conn>,
    ctx: Ctx,
    tpl: Tpl,
    scratch: Vec<u8>,
    /// Client connections opened so far (the publisher not included).
    opened: usize,
    publisher: Option<usize>,
    next_pub: f64,
    pub_interval: f64,
}

fn ns_since(start: Instant) -> u64 {
    start.elapsed().as_nanos() as u64
}

pub fn run(o: Opts) -> Result<Outcome, String> {
    let poll = Poll::new().map_err(|e| format!("poll: {e}"))?;
    let start = Instant::now();
    let tpl = Tpl::new(&o);
    let mut b = Bench {
        poll,
        conns: Slab::with_capacity(o.conns + 1),
        ctx: Ctx {
            start,
            now: 0,
            phase: Phase::Setup,
            win_start: u64::MAX,
            win_end: u64::MAX,
            hist: Histogram::new(),
            done_in_window: 0,
            delivered_of_window: 0,
            published_in_window: 0,
            published: 0,
            publish_ok: 0,
            publish_err: 0,
            ready: 0,
            setting_up: 0,
            failed: 0,
            closed: 0,
            subs_alive: 0,
            dup: 0,
            gaps: 0,
            truncated: 0,
            foreign: 0,
            bad_status: 0,
            bytes_in: 0,
            bytes_out: 0,
            errors: Vec::new(),
            inflate: Inflate::new(),
        },
        tpl,
        scratch: vec![0; 256 * 1024],
        opened: 0,
        publisher: None,
        next_pub: 0.0,
        pub_interval: 1e9 / o.rate,
        o,
    };
    b.run()
}

impl Bench {
    fn role(&self) -> Role {
        match self.o.scenario {
            Scenario::WsEcho => Role::WsEcho,
            Scenario::TcpEcho => Role::TcpEcho,
            Scenario::HttpKeepalive => Role::Http,
            Scenario::WsFanout => Role::WsSub,
            Scenario::SseFanout => Role::SseSub,
            Scenario::LongpollFanout => Role::LongPoll,
            Scenario::Idle => match self.o.idle_kind {
                IdleKind::Ws => Role::IdleWs,
                IdleKind::Sse => Role::IdleSse,
                IdleKind::LongPoll => Role::IdlePoll,
            },
            Scenario::ServeRawEcho | Scenario::ServeCanned => unreachable!("server modes"),
        }
    }

    fn run(&mut self) -> Result<Outcome, String> {
        let pid = self.o.server_pid.map(|p| p.to_string());
        if let Some(p) = &pid {
            if rss_kb(p).is_none() {
                return Err(format!("--server-pid {p}: no such process in /proc"));
            }
        }
        let rss_before = pid.as_deref().and_then(rss_kb);
        let fanout = self.o.scenario.is_fanout();
        let t0 = Instant::now();
        let setup_deadline = t0 + self.o.setup_timeout;
        if fanout {
            match self.open(Role::Publisher, 0) {
                Some(k) => self.publisher = Some(k),
                None => return Err("cannot open the publisher connection".into()),
            }
        }
        let mut events = Events::with_capacity(1024);
        let (mut cpu0, mut scpu0) = (None, None);
        let (mut cpu1, mut scpu1) = (None, None);
        let mut rss_window = None;
        let mut setup_secs = 0.0;
        let mut drain_end = Instant::now();
        let (mut win_start_i, mut win_end_i) = (t0, t0);
        let mut subs_at_window = 0usize;
        // The loop is bounded in time: every phase has a deadline.
        loop {
            let now_i = Instant::now();
            self.ctx.now = ns_since(self.ctx.start);
            match self.ctx.phase {
                Phase::Setup => {
                    while self.ctx.setting_up < MAX_SETTING_UP && self.opened < self.o.conns {
                        let role = self.role();
                        self.opened += 1;
                        self.open(role, self.opened - 1);
                    }
                    let publisher_ok = self
                        .publisher
                        .is_none_or(|k| self.conns.get(k).is_some_and(|c| c.st == St::Ready));
                    let all = self.opened == self.o.conns && self.ctx.setting_up == 0;
                    if (all && publisher_ok) || now_i >= setup_deadline {
                        if now_i >= setup_deadline && !all {
                            self.ctx.error(format!(
                                "setup timed out after {:?} with {} of {} ready",
                                self.o.setup_timeout, self.ctx.ready, self.o.conns
                            ));
                        }
                        setup_secs = now_i.duration_since(t0).as_secs_f64();
                        if fanout && self.publisher.is_none() {
                            let why = self.ctx.errors.first().map_or("", |e| e.0.as_str());
                            return Err(format!("the publisher could not connect: {why}"));
                        }
                        if self.ctx.ready == 0 {
                            let why = self.ctx.errors.first().map_or("", |e| e.0.as_str());
                            return Err(format!("no connection could be set up: {why}"));
                        }
                        self.ctx.phase = Phase::Warmup;
                        self.ctx.win_start = self.ctx.now + self.o.warmup.as_nanos() as u64;
                        self.ctx.win_end = self.ctx.win_start + self.o.duration.as_nanos() as u64;
                        win_start_i = now_i + self.o.warmup;
                        win_end_i = win_start_i + self.o.duration;
                        self.kick();
                        continue;
                    }
                }
                Phase::Warmup if now_i >= win_start_i => {
                    self.ctx.phase = Phase::Measure;
                    cpu0 = Some(CpuMark::take("self"));
                    scpu0 = pid.as_deref().map(CpuMark::take);
                    rss_window = pid.as_deref().and_then(rss_kb);
                    subs_at_window = self.ctx.subs_alive;
                    continue;
                }
                Phase::Measure if now_i >= win_end_i => {
                    cpu1 = Some(CpuMark::take("self"));
                    scpu1 = pid.as_deref().map(CpuMark::take);
                    self.ctx.phase = if fanout { Phase::Drain } else { Phase::Done };
                    drain_end = now_i + self.o.drain;
                    continue;
                }
                Phase::Drain => {
                    let expected = self.ctx.published_in_window * subs_at_window as u64;
                    if self.ctx.delivered_of_window >= expected || now_i >= drain_end {
                        self.ctx.phase = Phase::Done;
                    }
                }
                Phase::Done => break,
                _ => {}
            }
            if self.ctx.sending() {
                self.publish_due();
            }
            let until = |t: Instant| t.saturating_duration_since(now_i);
            let mut timeout = match self.ctx.phase {
                // Keep opening connections even if a batch fails at once.
                Phase::Setup => until(setup_deadline).min(Duration::from_millis(10)),
                Phase::Warmup => until(win_start_i),
                Phase::Measure => until(win_end_i),
                Phase::Drain => until(drain_end).min(Duration::from_millis(10)),
                Phase::Done => Duration::ZERO,
            };
            if self.ctx.sending() && self.publisher.is_some() {
                let next = self.next_pub - self.ctx.now as f64;
                timeout = timeout.min(Duration::from_nanos(next.max(0.0) as u64));
            }
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(format!("poll: {e}"));
                }
            }
            for ev in events.iter() {
                self.on_event(ev);
            }
        }
        let window_secs = win_end_i.duration_since(win_start_i).as_secs_f64();
        let pct = |a: Option<CpuMark>, b: Option<CpuMark>| match (a, b) {
            (Some(a), Some(b)) => a.percent_until(&b),
            _ => None,
        };
        let h = &self.ctx.hist;
        let us = |q: f64| h.quantile(q).map(|v| v as f64 / 1000.0);
        let expected = self.ctx.published_in_window * subs_at_window as u64;
        let idle = self.o.scenario == Scenario::Idle;
        let ready = self.ctx.ready;
        let rss_per_conn_kb = match (idle, rss_before, rss_window) {
            (true, Some(a), Some(b)) if ready > 0 => Some((b as f64 - a as f64) / ready as f64),
            _ => None,
        };
        let unit = match self.o.scenario {
            Scenario::HttpKeepalive => "requests/s",
            s if s.is_fanout() => "deliveries/s",
            Scenario::Idle => "-",
            _ => "messages/s",
        };
        Ok(Outcome {
            scenario: self.o.scenario,
            conns_wanted: self.o.conns,
            ready,
            failed: self.ctx.failed,
            closed: self.ctx.closed,
            setup_secs,
            window_secs,
            completed: self.ctx.done_in_window,
            throughput: self.ctx.done_in_window as f64 / window_secs,
            unit,
            p50_us: us(0.50),
            p99_us: us(0.99),
            p999_us: us(0.999),
            max_us: (h.count() > 0).then(|| h.max() as f64 / 1000.0),
            samples: h.count(),
            delivered: (fanout && expected > 0)
                .then(|| self.ctx.delivered_of_window as f64 / expected as f64),
            delivered_count: self.ctx.delivered_of_window,
            expected,
            published: self.ctx.published,
            published_in_window: self.ctx.published_in_window,
            publish_err: self.ctx.publish_err,
            subscribers: subs_at_window,
            dup: self.ctx.dup,
            gaps: self.ctx.gaps,
            truncated: self.ctx.truncated,
            foreign: self.ctx.foreign,
            bad_status: self.ctx.bad_status,
            client_cpu: pct(cpu0, cpu1),
            server_cpu: pct(scpu0, scpu1),
            server_rss_kb: if idle {
                rss_window
            } else {
                pid.as_deref().and_then(rss_kb)
            },
            rss_before_kb: rss_before,
            rss_per_conn_kb,
            bytes_in: self.ctx.bytes_in,
            bytes_out: self.ctx.bytes_out,
            errors: std::mem::take(&mut self.ctx.errors),
            inflated: self.ctx.inflate.inflated,
            inflate_reused: self.ctx.inflate.reused,
        })
    }

    /// Opens one connection (non-blocking; completion is writability).
    fn open(&mut self, role: Role, index: usize) -> Option<usize> {
        let src = (self.o.sources > 1)
            .then(|| Ipv4Addr::new(127, 0, 0, 1 + (index % self.o.sources as usize) as u8));
        let target = match role {
            Role::Publisher => self.o.publish_target.unwrap_or(self.o.target),
            _ => self.o.target,
        };
        let stream = match crate::sock::connect(target, src) {
            Ok(s) => s,
            Err(e) => {
                self.ctx.failed += 1;
                self.ctx.error(format!("connect: {e}"));
                return None;
            }
        };
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        let mut c = Conn {
            stream,
            role,
            st: St::Connecting,
            inbuf: Vec::new(),
            out: Vec::new(),
            out_pos: 0,
            fifo: VecDeque::new(),
            last_id: 0,
            partial: 0,
            chunked: None,
            body: Vec::new(),
            sse_id: 0,
            sse_ts: None,
        };
        // Both interests, once: edge-triggered writability costs nothing
        // while the socket never fills, and saves a reregister per flush.
        if let Err(e) = self.poll.registry().register(
            &mut c.stream,
            Token(key),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            self.ctx.failed += 1;
            self.ctx.error(format!("register: {e}"));
            return None;
        }
        entry.insert(c);
        if role != Role::Publisher {
            self.ctx.setting_up += 1;
        }
        Some(key)
    }

    /// Starts traffic at the beginning of the warmup.
    fn kick(&mut self) {
        let now = self.ctx.now;
        self.next_pub = now as f64;
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            let c = &mut self.conns[key];
            if c.st != St::Ready {
                continue;
            }
            match c.role {
                Role::WsEcho | Role::TcpEcho | Role::Http => {
                    for _ in 0..self.tpl.inflight {
                        self.tpl.send_one(c, now);
                    }
                }
                Role::LongPoll => self.tpl.send_poll(c),
                _ => continue,
            }
            self.flush_or_close(key);
        }
    }

    /// Queues every publish that is due and writes them.
    fn publish_due(&mut self) {
        let Some(key) = self.publisher else { return };
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        let now = ns_since(self.ctx.start);
        if self.next_pub > now as f64 {
            return;
        }
        // Bounded catch-up: after a stall, at most one second's worth.
        let mut n = 0;
        while self.next_pub <= now as f64 && n < (self.o.rate as usize).max(1) {
            let at = c.out.len() + self.tpl.publish_ts_at;
            c.out.extend_from_slice(&self.tpl.publish);
            write_fixed(&mut c.out[at..at + TS_DIGITS], now);
            self.ctx.published += 1;
            if self.ctx.in_window(now) {
                self.ctx.published_in_window += 1;
            }
            self.next_pub += self.pub_interval;
            n += 1;
        }
        if self.next_pub <= now as f64 {
            self.next_pub = now as f64 + self.pub_interval;
        }
        self.flush_or_close(key);
    }

    fn on_event(&mut self, ev: &Event) {
        let key = ev.token().0;
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        if c.st == St::Connecting {
            if !(ev.is_writable() || ev.is_error() || ev.is_read_closed() || ev.is_write_closed()) {
                return;
            }
            match c.stream.take_error() {
                Ok(None) => {}
                Ok(Some(e)) | Err(e) => return self.close(key, format!("connect: {e}")),
            }
            match c.stream.peer_addr() {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return,
                Err(e) => return self.close(key, format!("connect: {e}")),
            }
            self.connected(key);
        }
        if (ev.is_readable() || ev.is_read_closed() || ev.is_error()) && !self.read(key) {
            return;
        }
        self.flush_or_close(key);
    }

    fn connected(&mut self, key: usize) {
        let c = &mut self.conns[key];
        let _ = c.stream.set_nodelay(true);
        let t = &self.tpl;
        match c.role {
            Role::WsEcho | Role::WsSub | Role::IdleWs => {
                c.out.extend_from_slice(&t.upgrade);
                c.st = St::Handshake;
            }
            Role::SseSub | Role::IdleSse => {
                c.out.extend_from_slice(&t.sse_req);
                c.st = St::Handshake;
            }
            Role::LongPoll => {
                c.out.extend_from_slice(&t.poll_first);
                c.st = St::Handshake;
            }
            Role::IdlePoll => {
                // Held by the server for up to 120 s: no answer comes back
                // during the run, so it counts as ready once sent.
                let req = format!(
                    "GET /channels/{}/poll?timeout=120 HTTP/1.1\r\nHost: {}\r\n\r\n",
                    self.o.channel, self.o.host
                );
                c.out.extend_from_slice(req.as_bytes());
                c.st = St::Ready;
                self.ctx.ready += 1;
                self.ctx.setting_up -= 1;
            }
            Role::TcpEcho | Role::Http => {
                c.st = St::Ready;
                self.ctx.ready += 1;
                self.ctx.setting_up -= 1;
            }
            Role::Publisher => c.st = St::Ready,
        }
    }

    /// Reads until `WouldBlock`. False when the connection was closed.
    fn read(&mut self, key: usize) -> bool {
        loop {
            let Some(c) = self.conns.get_mut(key) else {
                return false;
            };
            match c.stream.read(&mut self.scratch) {
                Ok(0) => {
                    let why = format!("{:?} connection closed by the server", c.role);
                    self.close(key, why);
                    return false;
                }
                Ok(n) => {
                    self.ctx.now = ns_since(self.ctx.start);
                    self.ctx.bytes_in += n as u64;
                    if let Err(e) = feed(c, &self.scratch[..n], &mut self.ctx, &self.tpl) {
                        self.close(key, e);
                        return false;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.close(key, format!("read: {e}"));
                    return false;
                }
            }
        }
    }

    fn flush_or_close(&mut self, key: usize) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        if c.st == St::Connecting {
            return;
        }
        if let Err(e) = flush(c, &mut self.ctx) {
            self.close(key, format!("write: {e}"));
        }
    }

    fn close(&mut self, key: usize, why: String) {
        if !self.conns.contains(key) {
            return;
        }
        let mut c = self.conns.remove(key);
        let _ = self.poll.registry().deregister(&mut c.stream);
        if c.role == Role::Publisher {
            self.ctx.error(format!("publisher: {why}"));
            self.publisher = None;
            return;
        }
        if c.st == St::Ready {
            self.ctx.closed += 1;
            self.ctx.ready -= 1;
            if matches!(c.role, Role::WsSub | Role::SseSub | Role::LongPoll) {
                self.ctx.subs_alive -= 1;
            }
        } else {
            self.ctx.failed += 1;
            self.ctx.setting_up -= 1;
        }
        self.ctx.error(why);
    }
}

/// Hands `data` to the connection's parser, keeping what it did not use.
fn feed(c: &mut Conn, data: &[u8], ctx: &mut Ctx, t: &Tpl) -> Result<(), String> {
    if c.inbuf.is_empty() {
        let n = process(c, data, ctx, t)?;
        c.inbuf.extend_from_slice(&data[n..]);
    } else {
        let mut buf = std::mem::take(&mut c.inbuf);
        buf.extend_from_slice(data);
        let n = process(c, &buf, ctx, t)?;
        buf.drain(..n);
        c.inbuf = buf;
    }
    if c.inbuf.len() > (64 << 20) {
        return Err("more than 64 MiB received without a complete unit".into());
    }
    Ok(())
}

/// Parses every complete unit at the start of `data`; returns the bytes used.
fn process(c: &mut Conn, data: &[u8], ctx: &mut Ctx, t: &Tpl) -> Result<usize, String> {
    let mut pos = 0;
    if c.st == St::Handshake && (c.role.is_ws() || c.role.is_sse()) {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let (head, n) = match parse_response_head(data, &mut headers, MAX_HEAD) {
            Ok(Status::Complete(x)) => x,
            Ok(Status::Partial) => return Ok(0),
            Err(e) => return Err(format!("bad handshake response: {e:?}")),
        };
        if c.role.is_ws() {
            let accept = head
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("sec-websocket-accept"))
                .map(|h| h.value);
            if head.status != 101 || accept != Some(t.accept.as_bytes()) {
                return Err(format!("upgrade refused: status {}", head.status));
            }
            let compressed = head.headers.iter().any(|h| {
                h.name.eq_ignore_ascii_case("sec-websocket-extensions")
                    && h.value.starts_with(b"permessage-deflate")
            });
            if compressed != t.deflate {
                return Err(format!(
                    "compression offered: {}, accepted: {compressed}",
                    t.deflate
                ));
            }
        } else {
            if head.status != 200 {
                return Err(format!("event stream refused: status {}", head.status));
            }
            match response_body(&head, false) {
                Ok(ResponseBody::Chunked) => c.chunked = Some(ChunkedDecoder::new(usize::MAX)),
                Ok(ResponseBody::UntilClose) => {}
                Ok(other) => return Err(format!("event stream framed as {other:?}")),
                Err(e) => return Err(format!("event stream framing: {e:?}")),
            }
        }
        c.st = St::Ready;
        ctx.ready += 1;
        ctx.setting_up -= 1;
        if matches!(c.role, Role::WsSub | Role::SseSub) {
            ctx.subs_alive += 1;
        }
        pos = n;
    }
    let rest = &data[pos..];
    let used = match c.role {
        Role::WsEcho | Role::WsSub | Role::IdleWs => ws_frames(c, rest, ctx, t)?,
        Role::SseSub | Role::IdleSse => sse_stream(c, rest, ctx)?,
        Role::TcpEcho => {
            let total = c.partial + rest.len();
            c.partial = total % t.size;
            for _ in 0..total / t.size {
                echo_done(c, ctx, t);
            }
            rest.len()
        }
        Role::Http | Role::LongPoll | Role::Publisher => http_responses(c, rest, ctx, t)?,
        Role::IdlePoll => rest.len(),
    };
    Ok(pos + used)
}

/// One echo came back: time it, send the next.
fn echo_done(c: &mut Conn, ctx: &mut Ctx, t: &Tpl) {
    if let Some(sent) = c.fifo.pop_front() {
        ctx.complete(sent);
    }
    if ctx.sending() {
        t.send_one(c, ctx.now);
    }
}

fn ws_frames(c: &mut Conn, data: &[u8], ctx: &mut Ctx, t: &Tpl) -> Result<usize, String> {
    let mut pos = 0;
    let rsv = if t.deflate { RSV1 } else { 0 };
    loop {
        let buf = &data[pos..];
        let (h, hl) = match parse_header_with(buf, rsv) {
            Ok(Status::Complete(x)) => x,
            Ok(Status::Partial) => return Ok(pos),
            Err(e) => return Err(format!("bad frame from the server: {e}")),
        };
        if h.mask.is_some() {
            return Err("the server sent a masked frame".into());
        }
        let len = usize::try_from(h.payload_len).map_err(|_| "frame too long".to_string())?;
        if buf.len() - hl < len {
            return Ok(pos);
        }
        let payload = &buf[hl..hl + len];
        match h.opcode {
            opcode::TEXT | opcode::BINARY | opcode::CONTINUATION if h.fin => {
                // RSV1: a compressed message (the server never fragments).
                let message = match h.rsv & RSV1 != 0 {
                    true => ctx.inflate.inflate(payload, MAX_INFLATED)?,
                    false => payload,
                };
                if c.role == Role::WsEcho && message.len() != t.size {
                    return Err(format!("echo of {} bytes, sent {}", message.len(), t.size));
                }
                let delivery = ws_delivery(message);
                let truncated = message.starts_with(b"{\"truncated\":true");
                match c.role {
                    Role::WsEcho => echo_done(c, ctx, t),
                    Role::WsSub => match delivery {
                        Some((id, ts)) => ctx.deliver(&mut c.last_id, id, ts),
                        None if truncated => ctx.truncated += 1,
                        None => ctx.foreign += 1,
                    },
                    _ => {}
                }
            }
            opcode::PING => write_masked_frame(&mut c.out, true, opcode::PONG, MASK, payload),
            opcode::CLOSE => {
                let code = payload
                    .get(..2)
                    .map(|b| u16::from_be_bytes([b[0], b[1]]))
                    .unwrap_or(1005);
                return Err(format!("the server closed the WebSocket with {code}"));
            }
            _ => {}
        }
        pos += hl + len;
    }
}

/// `{"id":N,"data":"<20 digits>...` → (N, timestamp).
fn ws_delivery(p: &[u8]) -> Option<(u64, u64)> {
    let rest = p.strip_prefix(b"{\"id\":")?;
    let (id, n) = parse_u64(rest)?;
    let rest = rest[n..].strip_prefix(b",\"data\":\"")?;
    let (ts, _) = parse_u64(rest)?;
    Some((id, ts))
}

fn sse_stream(c: &mut Conn, data: &[u8], ctx: &mut Ctx) -> Result<usize, String> {
    let Some(dec) = c.chunked.as_mut() else {
        return Ok(sse_lines(c, data, ctx));
    };
    let mut body = std::mem::take(&mut c.body);
    let r = dec.decode(data, &mut body);
    let n = sse_lines(c, &body, ctx);
    body.drain(..n);
    c.body = body;
    match r {
        Ok(Status::Partial) => Ok(data.len()),
        Ok(Status::Complete(_)) => Err("the event stream ended".into()),
        Err(e) => Err(format!("bad chunked event stream: {e:?}")),
    }
}

/// Scans whole lines of an event stream; returns the bytes used.
fn sse_lines(c: &mut Conn, buf: &[u8], ctx: &mut Ctx) -> usize {
    let mut pos = 0;
    while let Some(nl) = buf[pos..].iter().position(|&b| b == b'\n') {
        let mut line = &buf[pos..pos + nl];
        pos += nl + 1;
        if let Some(l) = line.strip_suffix(b"\r") {
            line = l;
        }
        if line.is_empty() {
            if let Some(ts) = c.sse_ts.take() {
                if c.role == Role::SseSub {
                    ctx.deliver(&mut c.last_id, c.sse_id, ts);
                }
            }
            continue;
        }
        let field = |name: &[u8]| -> Option<&[u8]> {
            let v = line.strip_prefix(name)?;
            Some(v.strip_prefix(b" ").unwrap_or(v))
        };
        if let Some(v) = field(b"data:") {
            if c.sse_ts.is_none() {
                match parse_u64(v) {
                    Some((ts, _)) => c.sse_ts = Some(ts),
                    None => ctx.foreign += 1,
                }
            }
        } else if let Some(v) = field(b"id:") {
            if let Some((id, _)) = parse_u64(v) {
                c.sse_id = id;
            }
        } else if field(b"event:") == Some(b"truncated") {
            ctx.truncated += 1;
        }
    }
    pos
}

fn http_responses(c: &mut Conn, data: &[u8], ctx: &mut Ctx, t: &Tpl) -> Result<usize, String> {
    let mut pos = 0;
    while pos < data.len() {
        let buf = &data[pos..];
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let (head, hl) = match parse_response_head(buf, &mut headers, MAX_HEAD) {
            Ok(Status::Complete(x)) => x,
            Ok(Status::Partial) => break,
            Err(e) => return Err(format!("bad response: {e:?}")),
        };
        let status = head.status;
        let framing = response_body(&head, false).map_err(|e| format!("bad framing: {e:?}"))?;
        let mut dechunked = Vec::new();
        let (body, used): (&[u8], usize) = match framing {
            ResponseBody::None => (&[], hl),
            ResponseBody::Length(n) => {
                let n = n as usize;
                if buf.len() - hl < n {
                    break;
                }
                (&buf[hl..hl + n], hl + n)
            }
            ResponseBody::Chunked => {
                let mut d = ChunkedDecoder::new(usize::MAX);
                match d.decode(&buf[hl..], &mut dechunked) {
                    Ok(Status::Complete(m)) => (&dechunked, hl + m),
                    Ok(Status::Partial) => break,
                    Err(e) => return Err(format!("bad chunked response: {e:?}")),
                }
            }
            ResponseBody::UntilClose => {
                return Err(format!(
                    "status {status} without a length on a keep-alive connection"
                ))
            }
        };
        on_response(c, status, body, ctx, t)?;
        pos += used;
    }
    Ok(pos)
}

fn on_response(
    c: &mut Conn,
    status: u16,
    body: &[u8],
    ctx: &mut Ctx,
    t: &Tpl,
) -> Result<(), String> {
    let ok = (200..300).contains(&status);
    match c.role {
        Role::Http => {
            if !ok {
                ctx.bad_status += 1;
                ctx.error(format!(
                    "status {status}: {}",
                    String::from_utf8_lossy(body)
                ));
            }
            if let Some(sent) = c.fifo.pop_front() {
                ctx.complete(sent);
            }
            if ctx.sending() {
                t.send_one(c, ctx.now);
            }
        }
        Role::Publisher => {
            if status == 201 {
                ctx.publish_ok += 1;
            } else {
                ctx.publish_err += 1;
                ctx.error(format!(
                    "publish: status {status}: {}",
                    String::from_utf8_lossy(body)
                ));
            }
        }
        Role::LongPoll => {
            if !ok {
                ctx.bad_status += 1;
                return Err(format!(
                    "poll: status {status}: {}",
                    String::from_utf8_lossy(body)
                ));
            }
            let last = poll_answer(c, body, ctx)?;
            c.last_id = c.last_id.max(last);
            if c.st == St::Handshake {
                c.st = St::Ready;
                ctx.ready += 1;
                ctx.setting_up -= 1;
                ctx.subs_alive += 1;
            } else if ctx.phase != Phase::Done {
                // Keep polling through the drain: deliveries still count.
                t.send_poll(c);
            }
        }
        _ => {}
    }
    Ok(())
}

/// `{"messages":[{"id":8,"data":"..."},...],"last":8[,"truncated":true]}`:
/// records each message, returns `last`.
fn poll_answer(c: &mut Conn, body: &[u8], ctx: &mut Ctx) -> Result<u64, String> {
    let bad = || format!("unexpected poll answer: {}", String::from_utf8_lossy(body));
    let mut rest = body.strip_prefix(b"{\"messages\":[").ok_or_else(bad)?;
    let first = c.st == St::Handshake;
    while let Some(r) = rest
        .strip_prefix(b"{\"id\":")
        .or_else(|| rest.strip_prefix(b",{\"id\":"))
    {
        let (id, n) = parse_u64(r).ok_or_else(bad)?;
        let r = r[n..].strip_prefix(b",\"data\":\"").ok_or_else(bad)?;
        // Skip the string (our payloads hold no escapes; others may).
        let mut i = 0;
        while i < r.len() && r[i] != b'"' {
            i += if r[i] == b'\\' { 2 } else { 1 };
        }
        let (s, r) = r.split_at(i.min(r.len()));
        match parse_u64(s) {
            Some((ts, _)) if !first => ctx.deliver(&mut c.last_id, id, ts),
            Some(_) => {}
            None => ctx.foreign += 1,
        }
        rest = r.get(2..).ok_or_else(bad)?; // `"}`
    }
    let r = rest.strip_prefix(b"],\"last\":").ok_or_else(bad)?;
    let (last, n) = parse_u64(r).ok_or_else(bad)?;
    if r[n..].starts_with(b",\"truncated\":true") && !first {
        ctx.truncated += 1;
    }
    Ok(last)
}

/// Writes as much as the socket takes.
fn flush(c: &mut Conn, ctx: &mut Ctx) -> io::Result<()> {
    while c.out_pos < c.out.len() {
        match c.stream.write(&c.out[c.out_pos..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                c.out_pos += n;
                ctx.bytes_out += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                // Keep the buffer from growing at the front forever.
                if c.out_pos > 64 * 1024 && c.out_pos * 2 > c.out.len() {
                    c.out.drain(..c.out_pos);
                    c.out_pos = 0;
                }
                return Ok(());
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    c.out.clear();
    c.out_pos = 0;
    Ok(())
}

/// Leading decimal digits (at most 20) → (value, digits).
fn parse_u64(b: &[u8]) -> Option<(u64, usize)> {
    let mut v: u64 = 0;
    let mut n = 0;
    while n < b.len() && n < 20 && b[n].is_ascii_digit() {
        v = v.checked_mul(10)?.checked_add(u64::from(b[n] - b'0'))?;
        n += 1;
    }
    (n > 0).then_some((v, n))
}

/// `v` as exactly `out.len()` zero-padded digits.
fn write_fixed(out: &mut [u8], mut v: u64) {
    for b in out.iter_mut().rev() {
        *b = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

fn push_decimal(out: &mut Vec<u8>, v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut v = v;
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(parse_u64(b"00000000000000001234xx"), Some((1234, 20)));
        assert_eq!(parse_u64(b"x"), None);
        let mut b = [0u8; TS_DIGITS];
        write_fixed(&mut b, 987654321);
        assert_eq!(&b, b"00000000000987654321");
        let mut v = Vec::new();
        push_decimal(&mut v, 0);
        push_decimal(&mut v, 42);
        assert_eq!(v, b"042");
    }

    #[test]
    fn ws_payload() {
        assert_eq!(
            ws_delivery(b"{\"id\":7,\"data\":\"00000000000000000042xxx\"}"),
            Some((7, 42))
        );
        assert_eq!(ws_delivery(b"{\"truncated\":true}"), None);
    }
}
