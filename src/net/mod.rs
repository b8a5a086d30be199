//! The event loop: one thread, one `mio::Poll`, every connection in one slab.
//!
//! ```text
//!            ┌────────────── Poll::poll(timeout = earliest deadline) ◄──────────┐
//!            │                                                                 │
//!   token 0: listener ── accept until WouldBlock ── new Conn in the slab       │
//!   token 1: waker ───── drain the inbox (publish from other threads, stop)    │
//!   token k+2: conn k ─┬ writable: flush its output queue                      │
//!                      └ readable: read until WouldBlock, parse every complete │
//!                        unit (request, frame), answer into the output queue   │
//!   then: fire due timers; flush every connection that got output; ────────────┘
//! ```
//!
//! Nothing here blocks: sockets are non-blocking, reads and writes stop at
//! `WouldBlock`, waits are deadlines in `timer.rs`, and other threads reach
//! the loop only through the waker. Writable interest is registered only
//! while a connection has output the kernel did not take yet.
//!
//! The protocol logic lives in `crate::app` as further `impl Server` blocks;
//! this file only moves bytes and time.

pub mod conn;
pub mod out;
pub mod timer;

use std::collections::VecDeque;
use std::io::{self, Read};
use std::net::{Shutdown, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;

use crate::app::stats::Stats;
use crate::config::Config;
use crate::hub::Hub;
use crate::jobs::Jobs;
use conn::{Conn, Kind, Phase, Wait};
use timer::{Slot, TimerKey, Timers};

/// Token layout: the listener, the waker, then one token per slab entry
/// (slab key + `FIRST_CONN`).
const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);
pub(crate) const FIRST_CONN: usize = 2;

/// Bytes read per `read` call. One buffer for the whole loop: a connection
/// keeps only what it could not consume yet.
const READ_CHUNK: usize = 64 * 1024;

/// Bytes read from one connection per turn of the loop. A peer that keeps
/// its socket full (a flood of pongs, which need no answer and so never
/// trip the output backpressure) would otherwise keep the loop reading it
/// forever; past this budget it waits for the next turn like everyone else.
const READ_BUDGET: usize = 256 * 1024;

/// A connection's leftover input up to this size is moved to the front of
/// the loop's read buffer before the next read, rather than the read being
/// appended to it (see `read_loop`).
const MAX_LEAD: usize = 4 * 1024;

/// Why a connection ended, for `/stats` "closed".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// Orderly: the peer closed, or we finished.
    Normal,
    /// Header, idle or ping timeout.
    Timeout,
    /// A framing or protocol error.
    Protocol,
    /// The output passed `--send-buffer-bytes`.
    Slow,
    /// A socket error.
    Error,
}

/// Work handed to the loop from other threads.
#[derive(Debug)]
pub enum Command {
    Publish { channel: String, data: String },
    Stop,
}

/// A handle for other threads: publish to channels, stop the server. It
/// wakes the loop; it never touches the loop's state directly.
#[derive(Clone)]
pub struct Handle {
    waker: Arc<Waker>,
    inbox: Arc<Mutex<VecDeque<Command>>>,
}

impl Handle {
    fn send(&self, cmd: Command) {
        if let Ok(mut q) = self.inbox.lock() {
            q.push_back(cmd);
        }
        // A failed wake means the loop is gone; nothing left to tell.
        let _ = self.waker.wake();
    }

    /// Publishes `data` to `channel` as if it had been POSTed.
    pub fn publish(&self, channel: &str, data: &str) {
        self.send(Command::Publish {
            channel: channel.to_string(),
            data: data.to_string(),
        });
    }

    /// Asks the loop to shut down gracefully: stop accepting, close
    /// WebSockets with 1001, end streams and held polls, finish answers in
    /// flight. `Server::run` returns when all connections are gone or after
    /// `--shutdown-timeout-ms`.
    pub fn stop(&self) {
        self.send(Command::Stop);
    }
}

/// The server: the loop and everything it owns.
pub struct Server {
    pub(crate) poll: Poll,
    /// `None` once a shutdown began: dropping it closes the socket, so
    /// the kernel refuses new connections instead of queueing them.
    listener: Option<TcpListener>,
    pub(crate) local_addr: SocketAddr,
    pub(crate) conns: Slab<Conn>,
    pub(crate) timers: Timers,
    pub(crate) cfg: Config,
    /// The loop's idea of now, read once per wake-up.
    pub(crate) now: Instant,
    pub(crate) stats: Stats,
    pub(crate) jobs: Jobs,
    pub(crate) hub: Hub,
    pub(crate) webhooks: crate::webhooks::Webhooks,
    /// The Redis backplane (`--redis`), if any.
    pub(crate) redis: Option<crate::app::redis::Redis>,
    /// Set by a handler that must wait (a channel being synced with the
    /// backplane): the request stays unconsumed and runs again later.
    pub(crate) defer_request: bool,
    /// Chat members (slab key, connection id), in join order.
    pub(crate) chat: Vec<(usize, u64)>,
    /// Connections that got output during this wake-up.
    dirty: Vec<usize>,
    /// Connections to process and read again at the end of this wake-up.
    resume: Vec<usize>,
    /// Connections that used up their read budget: read again next turn.
    read_again: Vec<usize>,
    next_id: u64,
    scratch: Vec<u8>,
    waker: Arc<Waker>,
    inbox: Arc<Mutex<VecDeque<Command>>>,
    /// Set once a graceful shutdown began: the loop ends by then.
    pub(crate) shutdown_deadline: Option<Instant>,
    /// Connections in the slab whose phase is not `Active`.
    closing: usize,
    /// `Date` header value, rebuilt once per second.
    pub(crate) date: (u64, String),
}

impl Server {
    /// Binds the listener. `cfg.addr` with port 0 picks a free port;
    /// `local_addr` tells which.
    pub fn bind(cfg: Config) -> io::Result<Server> {
        let poll = Poll::new()?;
        let mut listener = TcpListener::bind(cfg.addr)?;
        if let Err(e) = raise_backlog(&listener, cfg.listen_backlog) {
            log::warn!(
                "could not set the listen backlog to {}: {e}",
                cfg.listen_backlog
            );
        }
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let local_addr = listener.local_addr()?;
        Ok(Server {
            poll,
            listener: Some(listener),
            local_addr,
            conns: Slab::new(),
            timers: Timers::new(),
            jobs: Jobs::new(cfg.max_jobs),
            hub: match cfg.redis {
                Some(_) => Hub::mirrored(cfg.history, cfg.max_channels),
                None => Hub::new(cfg.history, cfg.max_channels),
            },
            redis: cfg.redis.map(crate::app::redis::Redis::new),
            defer_request: false,
            webhooks: crate::webhooks::Webhooks::new(),
            cfg,
            now: Instant::now(),
            stats: Stats::default(),
            chat: Vec::new(),
            dirty: Vec::new(),
            resume: Vec::new(),
            read_again: Vec::new(),
            next_id: 1,
            scratch: vec![0; READ_CHUNK],
            waker,
            inbox: Arc::new(Mutex::new(VecDeque::new())),
            shutdown_deadline: None,
            closing: 0,
            date: (0, String::new()),
        })
    }

    /// Stops accepting: the listener leaves the poll and is closed.
    pub(crate) fn close_listener(&mut self) {
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A handle other threads can publish with.
    pub fn handle(&self) -> Handle {
        Handle {
            waker: self.waker.clone(),
            inbox: self.inbox.clone(),
        }
    }

    /// Runs the loop until `Handle::stop`.
    pub fn run(mut self) -> io::Result<()> {
        self.redis_connect();
        let mut events = Events::with_capacity(1024);
        loop {
            if let Some(deadline) = self.shutdown_deadline {
                if self.conns.is_empty() || self.now >= deadline {
                    log::info!("shut down with {} connections left", self.conns.len());
                    return Ok(());
                }
            }
            self.now = Instant::now();
            let mut timeout = self.timers.timeout(self.now);
            if let Some(deadline) = self.shutdown_deadline {
                let left = deadline.saturating_duration_since(self.now);
                timeout = Some(timeout.map_or(left, |t| t.min(left)));
            }
            if !self.read_again.is_empty() {
                // Input is waiting: look for new events, but don't sleep.
                timeout = Some(Duration::ZERO);
            }
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                // A signal interrupted the wait: not an error, wait again.
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            self.now = Instant::now();
            for ev in events.iter() {
                match ev.token() {
                    LISTENER => self.accept(),
                    WAKER => self.drain_inbox(),
                    Token(t) => {
                        let key = t - FIRST_CONN;
                        let (writable, readable, hup) = (
                            ev.is_writable(),
                            // Read on errors and hang-ups too: the read
                            // reports them (EOF or the error) in the one
                            // place that handles them.
                            ev.is_readable() || ev.is_read_closed() || ev.is_error(),
                            ev.is_read_closed() || ev.is_error(),
                        );
                        self.guarded(key, |s| {
                            if writable {
                                match s.conns.get(key).map(|c| &c.kind) {
                                    Some(Kind::Client(_)) => s.client_writable(key),
                                    Some(Kind::Redis(_)) => s.redis_writable(key),
                                    _ => s.flush(key),
                                }
                            }
                            if readable {
                                s.on_readable_event(key, hup);
                            }
                        });
                    }
                }
            }
            // Connections cut short by their read budget last turn, after
            // everyone who had news this turn.
            for key in std::mem::take(&mut self.read_again) {
                if let Some(c) = self.conns.get_mut(key) {
                    c.read_again = false;
                    self.on_readable(key);
                }
            }
            self.fire_timers();
            // Resuming can queue output, and flushing can resume readers.
            while !self.resume.is_empty() || !self.dirty.is_empty() {
                self.run_resumes();
                self.flush_dirty();
            }
        }
    }

    /// Runs one connection's event handling. A bug that panics (none is
    /// known: the parsers are fuzzed and every byte from the network is
    /// checked) then costs that connection, not the process: the panic is
    /// logged with the peer's address and the connection closed.
    fn guarded(&mut self, key: usize, f: impl FnOnce(&mut Server)) {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(self)));
        if result.is_err() {
            let peer = self.conns.get(key).map(|c| c.peer.to_string());
            log::error!(
                "a bug: handling {} panicked; closing that connection",
                peer.unwrap_or_default()
            );
            self.stats.closed.protocol += 1;
            self.scratch.resize(READ_CHUNK, 0);
            self.close_now(key, CloseReason::Error);
        }
    }

    // ----- accepting -------------------------------------------------------

    fn accept(&mut self) {
        loop {
            let Some(listener) = &self.listener else {
                return;
            };
            match listener.accept() {
                Ok((stream, peer)) => self.admit(stream, peer),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Out of file descriptors (EMFILE/ENFILE) or a transient
                    // network error. The pending connections stay in the
                    // backlog; since readiness is edge-triggered, try again
                    // after a short pause instead of spinning.
                    log::warn!("accept failed: {e}; retrying in 100 ms");
                    self.timers
                        .push(self.now + Duration::from_millis(100), TimerKey::AcceptRetry);
                    return;
                }
            }
        }
    }

    fn admit(&mut self, stream: mio::net::TcpStream, peer: SocketAddr) {
        self.stats.accepted += 1;
        // Small answers should leave at once, not wait for Nagle's timer.
        let _ = stream.set_nodelay(true);
        let id = self.next_conn_id();
        let over_limit = self.active_conns() >= self.cfg.max_conns;
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        let mut conn = Conn::new(id, stream, peer);
        if let Err(e) = self.poll.registry().register(
            &mut conn.stream,
            Token(key + FIRST_CONN),
            Interest::READABLE,
        ) {
            log::warn!("{peer}: register failed: {e}");
            return;
        }
        entry.insert(conn);
        crate::trace::event(self, key, "connected");
        if over_limit {
            // API.md: past --max-conns the refused connection gets a 503
            // and is closed. It lingers like any closing connection so the
            // 503 is not lost to a reset; it does not count as active.
            self.stats.closed.limit += 1;
            self.respond_error_and_close(key, None, 503, "the server is at its connection limit");
            return;
        }
        self.set_wait(key, Wait::FirstByte, Some(self.cfg.header_timeout));
    }

    /// Starts a non-blocking connect to `addr` (we are the client: a
    /// webhook delivery, Redis) and puts it in the slab as `kind`. The
    /// connect's outcome arrives as a writable event (`connect_outcome`);
    /// until then nothing is written. Returns the slab key and the id.
    pub(crate) fn connect_out(&mut self, addr: SocketAddr, kind: Kind) -> io::Result<(usize, u64)> {
        let mut stream = mio::net::TcpStream::connect(addr)?;
        let id = self.next_conn_id();
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        let token = Token(key + FIRST_CONN);
        self.poll.registry().register(
            &mut stream,
            token,
            Interest::READABLE | Interest::WRITABLE,
        )?;
        let mut conn = Conn::new(id, stream, addr);
        conn.kind = kind;
        conn.want_write = true;
        conn.wait = Wait::None;
        entry.insert(conn);
        Ok((key, id))
    }

    /// A connection id never used before.
    pub(crate) fn next_conn_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id - 1
    }

    /// Connections that count against `--max-conns` (not the ones that are
    /// only finishing their close).
    pub(crate) fn active_conns(&self) -> usize {
        self.conns.len() - self.closing
    }

    // ----- reading ---------------------------------------------------------

    /// Reads until `WouldBlock` and hands what arrived to the protocol.
    pub(crate) fn on_readable(&mut self, key: usize) {
        self.read_loop(key, false);
    }

    /// `on_readable` for a readiness event. Without a hang-up in the event,
    /// a short read ends the loop: on a stream socket, fewer bytes than
    /// asked for means the receive queue was empty at that moment, and any
    /// byte arriving later raises a new edge. That saves the read that
    /// would only have answered `WouldBlock`: one syscall per wake-up.
    fn on_readable_event(&mut self, key: usize, hup: bool) {
        self.read_loop(key, !hup);
    }

    fn read_loop(&mut self, key: usize, trust_short_read: bool) {
        let mut budget = READ_BUDGET;
        loop {
            if budget == 0 {
                // Fairness: read the rest on the next turn. Readiness is
                // edge-triggered, so this must be remembered, not awaited.
                if let Some(c) = self.conns.get_mut(key) {
                    if !c.read_again {
                        c.read_again = true;
                        self.read_again.push(key);
                    }
                }
                return;
            }
            let Some(c) = self.conns.get_mut(key) else {
                return;
            };
            let lingering = c.phase == Phase::Lingering;
            if !lingering && !self.may_read(key) {
                return;
            }
            let Some(c) = self.conns.get_mut(key) else {
                return;
            };
            if self.scratch.is_empty() {
                // The read buffer is lent out to a connection being processed
                // further up the stack: come back at the end of this wake-up.
                self.resume_later(key);
                return;
            }
            // A small leftover (a partial header) goes to the front of the
            // loop's buffer and the read lands right after it, so the whole
            // read is parsed in place; a large one is appended to instead.
            let lead = if lingering || c.inbuf.len() > MAX_LEAD {
                0
            } else {
                c.inbuf.len()
            };
            self.scratch[..lead].copy_from_slice(&c.inbuf[..lead]);
            let room = self.scratch.len() - lead;
            match c.stream.read(&mut self.scratch[lead..]) {
                Ok(0) => {
                    self.on_eof(key);
                    return;
                }
                Ok(n) => {
                    self.stats.bytes_in += n as u64;
                    budget = budget.saturating_sub(n);
                    if lingering {
                        continue; // discard
                    }
                    if self.conns[key].inbuf.len() == lead {
                        // Parse straight out of the loop's buffer and keep
                        // only an incomplete tail (no copy of the read).
                        let total = lead + n;
                        self.conns[key].inbuf.clear();
                        let mut scratch = std::mem::take(&mut self.scratch);
                        let used = self.process_bytes(key, &mut scratch[..total]);
                        if let Some(c) = self.conns.get_mut(key) {
                            if used < total && c.phase == Phase::Active {
                                if c.inbuf.capacity() == 0 {
                                    c.inbuf = out::pool::take();
                                }
                                c.inbuf.extend_from_slice(&scratch[used..total]);
                            } else if c.inbuf.capacity() > 0 {
                                out::pool::give(std::mem::take(&mut c.inbuf));
                            }
                        }
                        self.scratch = scratch;
                        self.mark_dirty(key);
                    } else {
                        self.conns[key].inbuf.extend_from_slice(&self.scratch[..n]);
                        self.process(key);
                    }
                    if trust_short_read && n < room {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::debug!("{}: read error: {e}", self.conns[key].peer);
                    self.close_now(key, CloseReason::Error);
                    return;
                }
            }
        }
    }

    /// Should we read more from this connection now? Not while its output
    /// backs up (the peer is not reading what we send: reading more would
    /// only queue more answers), not while a held request waits with
    /// further input buffered, not once it is closing.
    fn may_read(&self, key: usize) -> bool {
        let Some(c) = self.conns.get(key) else {
            return false;
        };
        if c.phase != Phase::Active {
            return false;
        }
        if c.out.len() > self.cfg.send_buffer_bytes.max(64 * 1024) {
            return false;
        }
        match c.kind {
            Kind::LongPoll(_) => c.inbuf.len() <= self.cfg.max_header_bytes,
            _ => true,
        }
    }

    /// Parses and answers everything complete in the connection's buffer.
    pub(crate) fn process(&mut self, key: usize) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        let mut buf = std::mem::take(&mut c.inbuf);
        let used = self.process_bytes(key, &mut buf);
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        buf.drain(..used);
        if buf.is_empty() && buf.capacity() > 0 {
            // An idle connection holds no buffer; the pool keeps it warm.
            out::pool::give(std::mem::take(&mut buf));
        }
        c.inbuf = buf;
        self.mark_dirty(key);
    }

    /// Runs `buf` through the connection's protocol, unit by unit (request,
    /// frame, response) until one is incomplete; returns the bytes used.
    fn process_bytes(&mut self, key: usize, buf: &mut [u8]) -> usize {
        let mut pos = 0;
        loop {
            let Some(c) = self.conns.get(key) else {
                return buf.len();
            };
            if c.phase != Phase::Active || pos == buf.len() {
                break;
            }
            let step = match c.kind {
                Kind::Http(_) => self.http_step(key, buf, pos),
                Kind::Ws(_) => self.ws_step(key, &mut buf[pos..]),
                // An event stream's client has nothing more to say; input is
                // dropped rather than buffered without bound.
                Kind::Sse(_) => Step::Consumed(buf.len() - pos),
                // A held request: later pipelined requests wait their turn.
                Kind::LongPoll(_) => Step::NeedMore,
                Kind::Client(_) => self.client_step(key, &mut buf[pos..]),
                Kind::Redis(_) => self.redis_step(key, &mut buf[pos..]),
            };
            match step {
                Step::NeedMore => break,
                Step::Consumed(n) => pos += n,
            }
        }
        pos
    }

    /// Asks for `key`'s buffered input to be processed and its socket read
    /// again at the end of this wake-up (after a held request is answered,
    /// or output drained below the backpressure mark). Deferring keeps
    /// processing from nesting inside another connection's.
    pub(crate) fn resume_later(&mut self, key: usize) {
        self.resume.push(key);
    }

    fn run_resumes(&mut self) {
        while let Some(key) = self.resume.pop() {
            self.process(key);
            self.on_readable(key);
        }
    }

    fn on_eof(&mut self, key: usize) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        match (&c.kind, c.phase) {
            (Kind::Client(_), _) => self.client_eof(key),
            (Kind::Redis(_), _) => self.redis_down("Redis closed the connection"),
            // The peer finished sending and we owe nothing: done.
            (_, Phase::Lingering) => self.close_now(key, CloseReason::Normal),
            // Half-close after a request: answer what was asked, then close
            // (RFC 9112 section 9.6 allows a client to half-close).
            (Kind::Http(_), Phase::Active) if !c.out.is_empty() => {
                self.finish(key);
            }
            _ => self.close_now(key, CloseReason::Normal),
        }
    }

    // ----- writing ---------------------------------------------------------

    /// Queues `key` for a flush at the end of this wake-up, so everything
    /// it got meanwhile leaves in one `write`.
    pub(crate) fn mark_dirty(&mut self, key: usize) {
        if let Some(c) = self.conns.get_mut(key) {
            if !c.dirty {
                c.dirty = true;
                self.dirty.push(key);
            }
        }
    }

    fn flush_dirty(&mut self) {
        while let Some(key) = self.dirty.pop() {
            if let Some(c) = self.conns.get_mut(key) {
                c.dirty = false;
                self.flush(key);
            }
        }
    }

    /// Writes queued output; toggles writable interest; finishes closing.
    pub(crate) fn flush(&mut self, key: usize) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        if c.slow {
            self.cut_slow(key);
            return;
        }
        let connecting = match &c.kind {
            Kind::Client(cc) => !cc.connected,
            Kind::Redis(rc) => !rc.connected,
            _ => false,
        };
        if connecting {
            return; // the request leaves once the connect completes
        }
        let before = c.out.len();
        match c.out.flush_to(&mut c.stream) {
            Ok(n) => self.stats.bytes_out += n as u64,
            Err(e) => {
                log::debug!("{}: write error: {e}", c.peer);
                self.close_now(key, CloseReason::Error);
                return;
            }
        }
        let c = &mut self.conns[key];
        let pending = !c.out.is_empty();
        if pending != c.want_write {
            let interest = if pending {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            let token = Token(key + FIRST_CONN);
            if self
                .poll
                .registry()
                .reregister(&mut c.stream, token, interest)
                .is_err()
            {
                self.close_now(key, CloseReason::Error);
                return;
            }
            c.want_write = pending;
        }
        if !pending && c.phase == Phase::Closing {
            self.start_lingering(key);
            return;
        }
        // Output drained below the backpressure mark: resume reading, since
        // an edge we skipped will not be reported again.
        let resumed = before > self.cfg.send_buffer_bytes.max(64 * 1024) && self.may_read(key);
        if resumed {
            self.resume_later(key);
        }
    }

    // ----- closing ---------------------------------------------------------

    /// Stops processing input; once the queued output is written, shuts
    /// down the write side and lingers (see `Phase::Lingering`).
    pub(crate) fn finish(&mut self, key: usize) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        if c.phase == Phase::Active {
            c.phase = Phase::Closing;
            self.closing += 1;
            self.leave_everything(key);
            self.mark_dirty(key);
        }
    }

    fn start_lingering(&mut self, key: usize) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        c.phase = Phase::Lingering;
        c.inbuf = Vec::new();
        if c.stream.shutdown(Shutdown::Write).is_err() {
            self.close_now(key, CloseReason::Normal);
            return;
        }
        crate::trace::event(self, key, "output done, write side shut down");
        self.set_wait(key, Wait::Linger, Some(self.cfg.linger));
        self.set_deadline(key, Slot::Tick, None);
        // Whatever is already readable is drained now.
        self.on_readable(key);
    }

    /// Closes at once: deregisters, drops the socket, leaves chat and
    /// channels.
    pub(crate) fn close_now(&mut self, key: usize, reason: CloseReason) {
        if !self.conns.contains(key) {
            return;
        }
        self.leave_everything(key);
        let mut c = self.conns.remove(key);
        match &c.kind {
            Kind::Client(cc) => self.client_closed(cc.delivery),
            Kind::Redis(_) => self.redis_down("the connection to Redis failed"),
            _ => {}
        }
        if c.phase != Phase::Active {
            self.closing -= 1;
        }
        let _ = self.poll.registry().deregister(&mut c.stream);
        match reason {
            CloseReason::Timeout => self.stats.closed.timeout += 1,
            CloseReason::Protocol => self.stats.closed.protocol += 1,
            _ => {}
        }
        if self.cfg.trace {
            crate::trace::line(c.peer, "x", &format!("closed ({reason:?})"));
        }
    }

    /// Removes the connection from every group it belongs to.
    fn leave_everything(&mut self, key: usize) {
        let Some(c) = self.conns.get(key) else { return };
        let id = c.id;
        match &c.kind {
            Kind::Ws(ws) if ws.role == conn::WsRole::Chat => self.chat_leave(key, id),
            Kind::Ws(ws) => {
                if let conn::WsRole::Channel(ch) = ws.role {
                    self.hub.unsubscribe(ch, key, id);
                }
            }
            Kind::Sse(s) => {
                if let conn::SseSource::Channel(ch) = s.source {
                    self.hub.unsubscribe(ch, key, id);
                }
            }
            Kind::LongPoll(p) => {
                if let conn::ParkedOn::Channel { channel, .. } = p.on {
                    self.hub.unsubscribe(channel, key, id);
                }
            }
            Kind::Http(_) | Kind::Client(_) | Kind::Redis(_) => {}
        }
    }

    // ----- time ------------------------------------------------------------

    /// Sets what the connection's deadline means and when it is (`None`:
    /// no deadline).
    pub(crate) fn set_wait(&mut self, key: usize, wait: Wait, after: Option<Duration>) {
        if let Some(c) = self.conns.get_mut(key) {
            c.wait = wait;
        }
        let at = after.map(|d| self.now + d);
        self.set_deadline(key, Slot::Deadline, at);
    }

    /// Moves one of the connection's deadlines (see `timer.rs` for why
    /// pushing one back costs no heap work).
    pub(crate) fn set_deadline(&mut self, key: usize, slot: Slot, at: Option<Instant>) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        let s = slot as usize;
        c.deadlines[s] = at;
        if let Some(at) = at {
            if c.armed[s].is_none_or(|armed| at < armed) {
                c.armed[s] = Some(at);
                let id = c.id;
                self.timers.push(at, TimerKey::Conn { key, id, slot });
            }
        }
    }

    fn fire_timers(&mut self) {
        while let Some((at, key)) = self.timers.pop_due(self.now) {
            match key {
                TimerKey::Conn { key, id, slot } => {
                    let Some(c) = self.conns.get_mut(key) else {
                        continue;
                    };
                    let s = slot as usize;
                    if c.id != id || c.armed[s] != Some(at) {
                        continue; // stale: a newer entry stands for this slot
                    }
                    c.armed[s] = None;
                    match c.deadlines[s] {
                        Some(d) if d <= self.now => {
                            c.deadlines[s] = None;
                            match slot {
                                Slot::Deadline => self.on_deadline(key),
                                Slot::Tick => self.on_tick(key),
                            }
                        }
                        // The deadline moved later: re-arm for it.
                        Some(d) => {
                            c.armed[s] = Some(d);
                            self.timers.push(d, TimerKey::Conn { key, id, slot });
                        }
                        None => {}
                    }
                }
                TimerKey::JobDone(job) => self.job_done(job),
                TimerKey::WebhookRetry(seq) => self.webhook_retry(seq),
                TimerKey::RedisReconnect => self.redis_connect(),
                TimerKey::AcceptRetry => self.accept(),
            }
        }
    }

    fn on_deadline(&mut self, key: usize) {
        let Some(c) = self.conns.get(key) else { return };
        match c.wait {
            Wait::FirstByte | Wait::KeepAlive => {
                crate::trace::event(self, key, "idle timeout, closing silently");
                self.close_now(key, CloseReason::Timeout);
            }
            Wait::RequestHead => {
                self.stats.closed.timeout += 1;
                self.respond_error_and_close(
                    key,
                    None,
                    408,
                    "the request was not complete within the header timeout",
                );
            }
            Wait::LongPoll => self.long_poll_expired(key),
            Wait::CloseHandshake => {
                crate::trace::event(self, key, "peer never answered our close");
                self.close_now(key, CloseReason::Timeout);
            }
            Wait::Linger => self.close_now(key, CloseReason::Normal),
            Wait::Client => self.client_timed_out(key),
            Wait::Backplane => self.backplane_deadline(key),
            Wait::None => {}
        }
    }

    fn on_tick(&mut self, key: usize) {
        let Some(c) = self.conns.get(key) else { return };
        match c.kind {
            Kind::Ws(_) => self.ws_ping_tick(key),
            Kind::Sse(_) => self.sse_tick(key),
            Kind::Redis(_) => self.redis_tick(key),
            _ => {}
        }
    }

    // ----- other threads ---------------------------------------------------

    fn drain_inbox(&mut self) {
        let cmds: Vec<Command> = match self.inbox.lock() {
            Ok(mut q) => q.drain(..).collect(),
            Err(_) => return,
        };
        for cmd in cmds {
            match cmd {
                Command::Publish { channel, data } => {
                    if let Err(e) = self.publish_str(&channel, &data) {
                        log::warn!("publish from a handle to {channel:?} refused: {e}");
                    }
                }
                Command::Stop => self.begin_shutdown(),
            }
        }
    }

    /// Brings the `Date` header value (RFC 9110 section 6.6.1) up to the
    /// current second; it is formatted once a second, not per response.
    ///
    /// Kept as the two header lines every response starts with, `Date` and
    /// `Server`, ready to copy in one piece.
    pub(crate) fn refresh_date(&mut self) {
        let secs = crate::wire::date::unix_millis_now() / 1000;
        if self.date.0 != secs || self.date.1.is_empty() {
            let date = crate::wire::date::imf_fixdate(secs);
            self.date = (secs, format!("Date: {date}\r\nServer: pushwire\r\n"));
        }
    }
}

/// Sets the listen backlog: how many completed handshakes the kernel
/// queues for `accept`. mio (like std) listens with 128; past that, a burst
/// of connects (10,000 clients reconnecting after a restart) has its SYNs
/// dropped and each dropped client waits a 1 s retransmission. On Linux,
/// `listen` on a listening socket just updates the backlog.
#[cfg(target_os = "linux")]
fn raise_backlog(listener: &TcpListener, backlog: u32) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    extern "C" {
        fn listen(fd: i32, backlog: i32) -> i32;
    }
    let backlog = backlog.min(i32::MAX as u32) as i32;
    // SAFETY: listen(2) takes two integers and touches no memory of ours;
    // the descriptor stays open, owned by `listener`, for the whole call.
    let r = unsafe { listen(listener.as_raw_fd(), backlog) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn raise_backlog(_listener: &TcpListener, _backlog: u32) -> io::Result<()> {
    Ok(())
}

/// Has a non-blocking connect finished? `Ok(false)`: not yet (a spurious
/// wake-up); `Err`: it failed.
pub(crate) fn connect_outcome(stream: &mio::net::TcpStream) -> io::Result<bool> {
    if let Ok(Some(e)) | Err(e) = stream.take_error() {
        return Err(e);
    }
    match stream.peer_addr() {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
        Err(e) => Err(e),
    }
}

/// What one parsing step did with a connection's buffered input.
pub(crate) enum Step {
    /// Wait for more bytes.
    NeedMore,
    /// This many bytes were used.
    Consumed(usize),
}
