//! The reactor: one thread, one `mio::Poll`, every connection in one slab.
//! It moves bytes and time and knows nothing of HTTP, WebSocket or any
//! endpoint: what arrives is handed to the application through the [`App`]
//! trait, and the application answers through [`Io`].
//!
//! ```text
//!            ┌────────────── Poll::poll(timeout = earliest deadline) ◄──────────┐
//!            │                                                                 │
//!   token 0: listener ── accept until WouldBlock ── Conn in the slab           │
//!                        └► App::accepted                                      │
//!   token 1: waker ───── App::woken (lookups); drain the inbox ─► App::command │
//!   token k+2: conn k ─┬ writable: connect outcome ─► App::connected; flush    │
//!                      └ readable: read until WouldBlock ─► App::input, unit   │
//!                        by unit (a request, a frame), until it needs more     │
//!   then: due timers ─► App::deadline / App::timer; ended connections ─►       │
//!         App::stopped / App::closed; flush every connection that got output ─┘
//! ```
//!
//! Nothing here blocks: sockets are non-blocking, reads and writes stop at
//! `WouldBlock`, waits are deadlines in `timer.rs`, and other threads reach
//! the loop only through the waker. Writable interest is registered only
//! while a connection has output the kernel did not take yet.
//!
//! Output can be stamped (`Io::stamp`): when a flush writes the last byte
//! of a stamped chunk, the application hears the stamp and the time
//! (`App::stamp_written`), which is how publish-to-socket latency is
//! measured without the loop knowing what a message is.
//!
//! Connections are named by [`ConnId`] handles that cannot go stale (see
//! `conn.rs`). The application is told about a connection's end (`stopped`
//! when it stops being active but still drains its output, `closed` when it
//! leaves the slab) after the call that ended it has returned, never from
//! inside it, so no handler ever runs inside another.

pub mod conn;
pub mod out;
pub mod resolve;
pub mod timer;

use std::collections::VecDeque;
use std::io::{self, Read};
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;

pub use conn::{CloseReason, Conn, ConnId, Phase};
pub use timer::Slot;
use timer::{TimerKey, Timers};

/// Token layout: the listener, the waker, then one token per slab entry
/// (slab key + `FIRST_CONN`).
const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);
const FIRST_CONN: usize = 2;

/// Bytes read per `read` call. One buffer for the whole loop: a connection
/// keeps only what it could not consume yet.
const READ_CHUNK: usize = 64 * 1024;

/// Bytes read from one connection per turn of the loop. A peer that keeps
/// its socket full (a flood of pongs, which need no answer and so never
/// trip the output backpressure) would otherwise keep the loop reading it
/// forever; past this budget it waits for the next turn like everyone else.
const READ_BUDGET: usize = 256 * 1024;

/// Units (requests, frames, replies) taken from one connection's input per
/// turn. Bytes alone do not bound the work: 256 KiB of 7-byte frames is
/// 37,000 publishes, each fanned out. Past this many, the rest of its input
/// waits for the next turn.
const UNIT_BUDGET: usize = 256;

/// Output the refills of drained connections (replays queued as their
/// connections drain, `App::drained`) may queue in one turn, all together.
/// Past it, the other drained connections wait for the next turn, in
/// order: twenty clients replaying at once would otherwise each add a send
/// buffer every turn, and the turn every other client waits for would grow
/// with their number.
const REFILL_BUDGET: usize = 4 * 1024 * 1024;

/// A connection's leftover input up to this size is moved to the front of
/// the loop's read buffer before the next read, rather than the read being
/// appended to it (see `read_loop`).
const MAX_LEAD: usize = 4 * 1024;

/// What one parsing step did with a connection's buffered input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Wait for more bytes.
    NeedMore,
    /// This many bytes were used.
    Consumed(usize),
    /// This many bytes were used, and the connection must wait: hand it no
    /// more input until `Io::resume` (a held request; a request waiting for
    /// the backplane stays unconsumed: `Hold(0)`).
    Hold(usize),
}

/// The application: what the loop calls when something happens to a
/// connection or a timer. Every method gets the loop's [`Io`] to answer with.
pub trait App: Sized {
    /// What a connection is to the application.
    type State;
    /// The application's own timers.
    type Timer: Copy + Ord + std::fmt::Debug;
    /// Work other threads send through a [`Handle`].
    type Command: Send + 'static;

    /// A connection was accepted (its state is `Default`-like, made by
    /// `new_state`).
    fn accepted(&mut self, io: &mut Io<Self>, id: ConnId);
    /// The state of a newly accepted connection.
    fn new_state(&mut self) -> Self::State;
    /// Bytes arrived: take one unit from the front of `buf`.
    fn input(&mut self, io: &mut Io<Self>, id: ConnId, buf: &mut [u8]) -> Step;
    /// An outgoing connect finished (or failed).
    fn connected(&mut self, io: &mut Io<Self>, id: ConnId, outcome: io::Result<()>);
    /// The peer closed its sending side (an active connection).
    fn eof(&mut self, io: &mut Io<Self>, id: ConnId);
    /// One of the connection's deadlines passed.
    fn deadline(&mut self, io: &mut Io<Self>, id: ConnId, slot: Slot);
    /// The connection's output passed its limit: last words (a close frame)
    /// may be queued; then it is cut.
    fn overflow(&mut self, io: &mut Io<Self>, id: ConnId);
    /// The output drained to half of `--send-buffer-bytes` or less, after
    /// `Io::notify_when_drained` asked for it: time to queue more.
    fn drained(&mut self, io: &mut Io<Self>, id: ConnId);
    /// The connection stopped being active but is still in the slab (its
    /// last output is leaving): it must leave every group it is in.
    fn stopped(&mut self, io: &mut Io<Self>, id: ConnId);
    /// The connection left the slab (whether or not `stopped` came first);
    /// its state is handed back.
    fn closed(&mut self, io: &mut Io<Self>, id: ConnId, state: Self::State, reason: CloseReason);
    /// An application timer is due.
    fn timer(&mut self, io: &mut Io<Self>, t: Self::Timer);
    /// Another thread sent work.
    fn command(&mut self, io: &mut Io<Self>, cmd: Self::Command);
    /// The waker fired (before the inbox is drained): helpers that hand
    /// results back through it (the name resolver, `resolve.rs`) have
    /// something to take. Spurious calls are harmless.
    fn woken(&mut self, _io: &mut Io<Self>) {}
    /// A chunk stamped with `Io::stamp` had its last byte written to its
    /// socket; `now` was read once for the flush that wrote it. Called
    /// from inside the flush, so it gets no `Io`: it may only count.
    fn stamp_written(&mut self, _at: Instant, _now: Instant) {}
}

/// What the loop itself needs to know (the rest of the configuration is the
/// application's).
#[derive(Debug, Clone)]
pub struct Options {
    pub addr: SocketAddr,
    pub listen_backlog: u32,
    /// Unsent output past which a connection stops being read (and, for
    /// `Io::send_shared`, is cut as slow).
    pub send_buffer_bytes: usize,
    /// Input a held connection may buffer before it stops being read.
    pub max_held_input: usize,
    /// How long a closing connection drains unread input.
    pub linger: Duration,
    /// Commands other threads may queue before `Handle::send` refuses.
    pub inbox_capacity: usize,
    /// `--trace`: narrate connects, closes and shutdowns.
    pub trace: bool,
}

/// The loop's own counters.
#[derive(Debug, Default, Clone, Copy)]
pub struct NetStats {
    pub accepted: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// Why `Handle::send` refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// The loop has ended.
    Gone,
    /// The loop is too far behind: its inbox is full.
    Full,
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SendError::Gone => "the server's event loop has ended",
            SendError::Full => "the server's event loop is too far behind (its inbox is full)",
        })
    }
}

impl std::error::Error for SendError {}

struct Inbox<C> {
    queue: Mutex<VecDeque<C>>,
    capacity: usize,
    gone: AtomicBool,
}

/// A handle for other threads: it queues a command and wakes the loop; it
/// never touches the loop's state directly. The queue is bounded: a send
/// never blocks and never grows memory without bound.
pub struct Handle<C> {
    waker: Arc<Waker>,
    inbox: Arc<Inbox<C>>,
}

impl<C> Clone for Handle<C> {
    fn clone(&self) -> Self {
        Handle {
            waker: self.waker.clone(),
            inbox: self.inbox.clone(),
        }
    }
}

impl<C> Handle<C> {
    pub fn send(&self, cmd: C) -> Result<(), SendError> {
        if self.inbox.gone.load(Ordering::Acquire) {
            return Err(SendError::Gone);
        }
        {
            let mut q = self.inbox.queue.lock().map_err(|_| SendError::Gone)?;
            if q.len() >= self.inbox.capacity {
                return Err(SendError::Full);
            }
            q.push_back(cmd);
        }
        self.waker.wake().map_err(|_| SendError::Gone)
    }

    /// The loop's waker, for helpers that hand results back to it (the
    /// name resolver).
    pub fn waker(&self) -> Arc<Waker> {
        self.waker.clone()
    }
}

/// The loop's side of everything: the slab, the timers, the output, the
/// listener. The application works on connections only through this.
pub struct Io<A: App> {
    poll: Poll,
    /// `None` once a shutdown began: dropping it closes the socket, so the
    /// kernel refuses new connections instead of queueing them.
    listener: Option<TcpListener>,
    local_addr: SocketAddr,
    conns: Slab<Conn<A::State>>,
    timers: Timers<A::Timer>,
    opts: Options,
    /// The loop's idea of now, read once per wake-up.
    now: Instant,
    pub stats: NetStats,
    next_serial: u64,
    /// Connections that got output during this wake-up.
    dirty: Vec<ConnId>,
    /// Connections to process and read again at the end of this wake-up.
    resume: Vec<ConnId>,
    /// Connections that used up their read budget: read again next turn.
    read_again: Vec<ConnId>,
    /// Connections whose output drained while the application asked to
    /// hear of it (`notify_when_drained`): told next turn.
    drained: Vec<ConnId>,
    /// Connections that stopped being active / left the slab, for the
    /// application to hear about once the current call returns.
    stopped: Vec<ConnId>,
    closed: Vec<(ConnId, A::State, CloseReason, SocketAddr)>,
    /// Connections in the slab that are closing or background: they do not
    /// count against `--max-conns`.
    not_counted: usize,
    /// Background connections (see `Conn::background`).
    background: usize,
    /// Set once a graceful shutdown began: the loop ends by then.
    shutdown_deadline: Option<Instant>,
    waker: Arc<Waker>,
}

impl<A: App> Io<A> {
    pub fn now(&self) -> Instant {
        self.now
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The connection behind `id`, if it is still the same connection.
    pub fn get(&self, id: ConnId) -> Option<&Conn<A::State>> {
        self.conns.get(id.key).filter(|c| c.serial == id.serial)
    }

    pub fn get_mut(&mut self, id: ConnId) -> Option<&mut Conn<A::State>> {
        self.conns.get_mut(id.key).filter(|c| c.serial == id.serial)
    }

    pub fn state(&self, id: ConnId) -> Option<&A::State> {
        self.get(id).map(|c| &c.state)
    }

    pub fn state_mut(&mut self, id: ConnId) -> Option<&mut A::State> {
        self.get_mut(id).map(|c| &mut c.state)
    }

    pub fn peer(&self, id: ConnId) -> Option<SocketAddr> {
        self.get(id).map(|c| c.peer)
    }

    /// Is `id` still here and reading and answering?
    pub fn is_active(&self, id: ConnId) -> bool {
        self.get(id).is_some_and(|c| c.phase == Phase::Active)
    }

    /// Every connection's handle (for a shutdown or a census).
    pub fn ids(&self) -> Vec<ConnId> {
        self.conns
            .iter()
            .map(|(key, c)| ConnId {
                key,
                serial: c.serial,
            })
            .collect()
    }

    /// Every connection, for counting.
    pub fn iter(&self) -> impl Iterator<Item = &Conn<A::State>> {
        self.conns.iter().map(|(_, c)| c)
    }

    /// Connections in the slab.
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// Connections that count against `--max-conns`: not the ones only
    /// finishing their close, nor the server's own (Redis).
    pub fn active_len(&self) -> usize {
        self.conns.len() - self.not_counted
    }

    pub fn timers_len(&self) -> usize {
        self.timers.len()
    }

    // ----- output ------------------------------------------------------------

    /// The connection's output queue, to append to; it is flushed at the end
    /// of this wake-up. `None` when the connection is gone.
    pub fn output(&mut self, id: ConnId) -> Option<&mut out::OutQueue> {
        let c = self
            .conns
            .get_mut(id.key)
            .filter(|c| c.serial == id.serial)?;
        if !c.dirty {
            c.dirty = true;
            self.dirty.push(id);
        }
        Some(&mut c.out)
    }

    /// Appends bytes to the connection's output.
    pub fn send(&mut self, id: ConnId, bytes: &[u8]) {
        if let Some(out) = self.output(id) {
            out.push_bytes(bytes);
        }
    }

    /// Queues bytes shared with other connections (a broadcast, encoded
    /// once). A connection that is not active gets nothing; one whose
    /// backlog passes `--send-buffer-bytes` is cut as slow at the next
    /// flush. Returns whether the bytes were queued.
    pub fn send_shared(&mut self, id: ConnId, bytes: &Arc<[u8]>) -> bool {
        let limit = self.opts.send_buffer_bytes;
        let Some(c) = self.get_mut(id) else {
            return false;
        };
        if c.phase != Phase::Active {
            return false;
        }
        c.out.push_shared(bytes.clone());
        if c.out.len() > limit {
            c.slow = true;
        }
        self.mark_dirty(id);
        true
    }

    /// Stamps the output queued so far on `id` with `at`: when its last
    /// byte is written to the socket, `App::stamp_written` hears of it
    /// (see `out::OutQueue::stamp`). Costs no allocation.
    pub fn stamp(&mut self, id: ConnId, at: Instant) {
        if let Some(c) = self.get_mut(id) {
            c.out.stamp(at);
        }
    }

    /// Marks the connection as over its output limit: cut at the next flush
    /// (after `App::overflow`).
    pub fn mark_slow(&mut self, id: ConnId) {
        if let Some(c) = self.get_mut(id) {
            c.slow = true;
        }
        self.mark_dirty(id);
    }

    /// Asks for one `App::drained` call once the connection's unsent output
    /// falls to half of `--send-buffer-bytes`, in the loop's next turn (one
    /// refill a turn: a fast reader takes turns with everyone else).
    pub fn notify_when_drained(&mut self, id: ConnId) {
        if let Some(c) = self.get_mut(id) {
            c.notify_drained = true;
        }
        // The next flush (this wake-up) checks the mark.
        self.mark_dirty(id);
    }

    /// Unsent output of the connection, in bytes.
    pub fn backlog(&self, id: ConnId) -> usize {
        self.get(id).map_or(0, |c| c.out.len())
    }

    /// Queues `id` for a flush at the end of this wake-up, so everything it
    /// got meanwhile leaves in one `write`.
    pub fn mark_dirty(&mut self, id: ConnId) {
        if let Some(c) = self.get_mut(id) {
            if !c.dirty {
                c.dirty = true;
                self.dirty.push(id);
            }
        }
    }

    // ----- life ----------------------------------------------------------------

    /// Records why the connection will close, if nothing else was recorded
    /// yet (the first reason wins).
    pub fn set_close_reason(&mut self, id: ConnId, reason: CloseReason) {
        if let Some(c) = self.get_mut(id) {
            if c.reason == CloseReason::Normal {
                c.reason = reason;
            }
        }
    }

    /// Stops processing input; once the queued output is written, shuts
    /// down the write side and lingers (see `Phase::Lingering`).
    pub fn finish(&mut self, id: ConnId, reason: CloseReason) {
        self.set_close_reason(id, reason);
        let Some(c) = self.get_mut(id) else { return };
        if c.phase == Phase::Active {
            c.phase = Phase::Closing;
            if !c.background {
                self.not_counted += 1;
            }
            self.stopped.push(id);
            self.mark_dirty(id);
        }
    }

    /// Closes at once: deregisters and drops the socket. The application
    /// hears of it (`stopped`, `closed`) once the current call returns.
    pub fn close_now(&mut self, id: ConnId, reason: CloseReason) {
        self.set_close_reason(id, reason);
        if self.get(id).is_none() {
            return;
        }
        let mut c = self.conns.remove(id.key);
        if c.phase != Phase::Active && !c.background {
            self.not_counted -= 1;
        }
        if c.background {
            self.not_counted -= 1;
            self.background -= 1;
        }
        let _ = self.poll.registry().deregister(&mut c.stream);
        for buf in [std::mem::take(&mut c.inbuf)] {
            if buf.capacity() > 0 {
                out::pool::give(buf);
            }
        }
        self.closed.push((id, c.state, c.reason, c.peer));
    }

    /// The application stopped holding this connection: its buffered input
    /// is processed and its socket read again at the end of this wake-up.
    pub fn resume(&mut self, id: ConnId) {
        if let Some(c) = self.get_mut(id) {
            c.held = false;
            self.resume.push(id);
        }
    }

    /// Starts a non-blocking connect to `addr` (we are the client: a
    /// webhook delivery, Redis) with `state`. `App::connected` reports the
    /// outcome; until then nothing is written. A `background` connection
    /// does not count against `--max-conns` or keep a shutdown waiting.
    pub fn connect(
        &mut self,
        addr: SocketAddr,
        state: A::State,
        background: bool,
    ) -> io::Result<ConnId> {
        let mut stream = TcpStream::connect(addr)?;
        let serial = self.next_serial();
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        self.poll.registry().register(
            &mut stream,
            Token(key + FIRST_CONN),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        let mut conn = Conn::new(serial, stream, addr, state);
        conn.want_write = true;
        conn.connecting = true;
        conn.background = background;
        entry.insert(conn);
        if background {
            self.background += 1;
            self.not_counted += 1;
        }
        Ok(ConnId { key, serial })
    }

    fn next_serial(&mut self) -> u64 {
        self.next_serial += 1;
        self.next_serial
    }

    // ----- time ----------------------------------------------------------------

    /// Moves one of the connection's deadlines (`None`: none). See
    /// `timer.rs` for why pushing one back costs no heap work.
    pub fn set_deadline(&mut self, id: ConnId, slot: Slot, at: Option<Instant>) {
        let Some(c) = self.conns.get_mut(id.key).filter(|c| c.serial == id.serial) else {
            return;
        };
        let s = slot as usize;
        c.deadlines[s] = at;
        if let Some(at) = at {
            if c.armed[s].is_none_or(|armed| at < armed) {
                c.armed[s] = Some(at);
                self.timers.push(at, TimerKey::Conn { id, slot });
            }
        }
    }

    /// `set_deadline` relative to now.
    pub fn set_deadline_in(&mut self, id: ConnId, slot: Slot, after: Option<Duration>) {
        let at = after.map(|d| self.now + d);
        self.set_deadline(id, slot, at);
    }

    /// Schedules an application timer.
    pub fn push_timer(&mut self, at: Instant, t: A::Timer) {
        self.timers.push(at, TimerKey::App(t));
    }

    // ----- shutdown ------------------------------------------------------------

    /// Stops accepting and gives the loop until `deadline` to end: it ends
    /// as soon as no connection but background ones is left.
    pub fn begin_shutdown(&mut self, deadline: Instant) {
        if self.shutdown_deadline.is_some() {
            return;
        }
        self.shutdown_deadline = Some(deadline);
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
    }

    pub fn shutting_down(&self) -> bool {
        self.shutdown_deadline.is_some()
    }

    pub fn waker(&self) -> Arc<Waker> {
        self.waker.clone()
    }

    fn trace(&self, peer: SocketAddr, text: &str) {
        if self.opts.trace {
            crate::trace::line(peer, "..", text);
        }
    }
}

/// The loop and the application it drives.
pub struct Reactor<A: App> {
    pub io: Io<A>,
    pub app: A,
    /// The one read buffer, lent to whichever connection is being read.
    scratch: Vec<u8>,
    inbox: Arc<Inbox<A::Command>>,
}

impl<A: App> Reactor<A> {
    /// Binds the listener. `opts.addr` with port 0 picks a free port;
    /// `Io::local_addr` tells which.
    pub fn bind(opts: Options, app: A) -> io::Result<Self> {
        let poll = Poll::new()?;
        let mut listener = TcpListener::bind(opts.addr)?;
        if let Err(e) = raise_backlog(&listener, opts.listen_backlog) {
            log::warn!(
                "could not set the listen backlog to {}: {e}",
                opts.listen_backlog
            );
        }
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let local_addr = listener.local_addr()?;
        let inbox = Arc::new(Inbox {
            queue: Mutex::new(VecDeque::new()),
            capacity: opts.inbox_capacity,
            gone: AtomicBool::new(false),
        });
        Ok(Reactor {
            io: Io {
                poll,
                listener: Some(listener),
                local_addr,
                conns: Slab::new(),
                timers: Timers::new(),
                opts,
                now: Instant::now(),
                stats: NetStats::default(),
                next_serial: 0,
                dirty: Vec::new(),
                resume: Vec::new(),
                read_again: Vec::new(),
                drained: Vec::new(),
                stopped: Vec::new(),
                closed: Vec::new(),
                not_counted: 0,
                background: 0,
                shutdown_deadline: None,
                waker,
            },
            app,
            scratch: vec![0; READ_CHUNK],
            inbox,
        })
    }

    /// A handle other threads can send commands with.
    pub fn handle(&self) -> Handle<A::Command> {
        Handle {
            waker: self.io.waker.clone(),
            inbox: self.inbox.clone(),
        }
    }

    /// Runs the loop until a shutdown (`Io::begin_shutdown`) completes.
    /// `start` runs first, inside the loop's panic guard (opening the
    /// server's own connections).
    pub fn run(mut self, start: impl FnOnce(&mut A, &mut Io<A>)) -> io::Result<()> {
        let result = self.run_inner(start);
        self.inbox.gone.store(true, Ordering::Release);
        result
    }

    fn run_inner(&mut self, start: impl FnOnce(&mut A, &mut Io<A>)) -> io::Result<()> {
        self.guarded(None, |r| start(&mut r.app, &mut r.io));
        let mut events = Events::with_capacity(1024);
        loop {
            self.io.now = Instant::now();
            if let Some(deadline) = self.io.shutdown_deadline {
                let foreground = self.io.conns.len() - self.io.background;
                if foreground == 0 || self.io.now >= deadline {
                    log::info!("shut down with {foreground} connections left");
                    return Ok(());
                }
            }
            let mut timeout = self.io.timers.timeout(self.io.now);
            if let Some(deadline) = self.io.shutdown_deadline {
                let left = deadline.saturating_duration_since(self.io.now);
                timeout = Some(timeout.map_or(left, |t| t.min(left)));
            }
            if !self.io.read_again.is_empty() || !self.io.drained.is_empty() {
                // Input or a refill is waiting: look for new events, but
                // don't sleep.
                timeout = Some(Duration::ZERO);
            }
            if let Err(e) = self.io.poll.poll(&mut events, timeout) {
                // A signal interrupted the wait: not an error, wait again.
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            self.io.now = Instant::now();
            for ev in events.iter() {
                match ev.token() {
                    LISTENER => self.guarded(None, |r| r.accept()),
                    WAKER => self.guarded(None, |r| {
                        r.app.woken(&mut r.io);
                        r.settle();
                        r.drain_inbox();
                    }),
                    Token(t) => {
                        let key = t - FIRST_CONN;
                        let Some(c) = self.io.conns.get(key) else {
                            continue; // closed earlier in this batch
                        };
                        let id = ConnId {
                            key,
                            serial: c.serial,
                        };
                        let (writable, readable, hup) = (
                            ev.is_writable(),
                            // Read on errors and hang-ups too: the read
                            // reports them (EOF or the error) in the one
                            // place that handles them.
                            ev.is_readable() || ev.is_read_closed() || ev.is_error(),
                            ev.is_read_closed() || ev.is_error(),
                        );
                        self.guarded(Some(id), |r| {
                            if writable {
                                r.on_writable(id);
                            }
                            if readable {
                                // Without a hang-up in the event, a short
                                // read ends the loop: fewer bytes than asked
                                // for means the receive queue was empty, and
                                // any byte arriving later raises a new edge.
                                r.read_loop(id, !hup);
                            }
                        });
                    }
                }
            }
            // Connections cut short by their read budget last turn, after
            // everyone who had news this turn.
            for id in std::mem::take(&mut self.io.read_again) {
                if let Some(c) = self.io.get_mut(id) {
                    c.read_again = false;
                    self.guarded(Some(id), |r| {
                        r.process(id);
                        r.read_loop(id, false);
                    });
                }
            }
            // Output that drained last turn is refilled once per turn (a
            // replay's next send buffer), so a client that reads as fast as
            // the server writes takes turns with everyone else instead of
            // being fed its whole replay in one turn; and all refills
            // together stop at REFILL_BUDGET (always at least one).
            let mut due = std::mem::take(&mut self.io.drained);
            let (mut queued, mut taken) = (0, 0);
            for &id in &due {
                if queued >= REFILL_BUDGET {
                    break;
                }
                taken += 1;
                if self.io.get(id).is_some_and(|c| c.phase == Phase::Active) {
                    let before = self.io.backlog(id);
                    self.guarded(Some(id), |r| r.app.drained(&mut r.io, id));
                    queued += self.io.backlog(id).saturating_sub(before);
                }
            }
            // Only flushes (below) add to the list: the rest go first.
            due.drain(..taken);
            self.io.drained = due;
            self.fire_timers();
            // Resuming can queue output, and flushing can resume readers.
            while !self.io.resume.is_empty() || !self.io.dirty.is_empty() {
                while let Some(id) = self.io.resume.pop() {
                    self.guarded(Some(id), |r| {
                        r.process(id);
                        r.read_loop(id, false);
                    });
                }
                while let Some(id) = self.io.dirty.pop() {
                    if let Some(c) = self.io.get_mut(id) {
                        c.dirty = false;
                        self.guarded(Some(id), |r| r.flush(id));
                    }
                }
            }
        }
    }

    /// Runs `f`, then tells the application about every connection that
    /// ended meanwhile. A bug that panics (none is known: the parsers are
    /// fuzzed and every byte from the network is checked) then costs the
    /// connection being handled, not the process: the panic is logged with
    /// the peer's address and that connection closed.
    fn guarded(&mut self, id: Option<ConnId>, f: impl FnOnce(&mut Self)) {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            f(self);
            self.settle();
        }));
        if result.is_err() {
            let peer = id.and_then(|id| self.io.peer(id));
            log::error!(
                "a bug: handling {} panicked; closing that connection",
                peer.map(|p| p.to_string())
                    .unwrap_or_else(|| "a timer".into())
            );
            if self.scratch.len() != READ_CHUNK {
                self.scratch = vec![0; READ_CHUNK];
            }
            if let Some(id) = id {
                self.io.close_now(id, CloseReason::Error);
            }
            // The notifications themselves run guarded, once more.
            let again = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.settle()));
            if again.is_err() {
                log::error!("a bug: a close notification panicked");
                self.io.stopped.clear();
                self.io.closed.clear();
            }
        }
    }

    /// Delivers the end-of-connection notifications, including those that
    /// handling them causes.
    fn settle(&mut self) {
        loop {
            if let Some(id) = self.io.stopped.pop() {
                self.app.stopped(&mut self.io, id);
                continue;
            }
            if let Some((id, state, reason, peer)) = self.io.closed.pop() {
                if self.io.opts.trace {
                    crate::trace::line(peer, "x", &format!("closed ({reason:?})"));
                }
                self.app.closed(&mut self.io, id, state, reason);
                continue;
            }
            return;
        }
    }

    // ----- accepting -----------------------------------------------------------

    fn accept(&mut self) {
        loop {
            let Some(listener) = &self.io.listener else {
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
                    let at = self.io.now + Duration::from_millis(100);
                    self.io.timers.push(at, TimerKey::AcceptRetry);
                    return;
                }
            }
        }
    }

    fn admit(&mut self, stream: TcpStream, peer: SocketAddr) {
        self.io.stats.accepted += 1;
        // Small answers should leave at once, not wait for Nagle's timer.
        let _ = stream.set_nodelay(true);
        let serial = self.io.next_serial();
        let state = self.app.new_state();
        let entry = self.io.conns.vacant_entry();
        let key = entry.key();
        let mut conn = Conn::new(serial, stream, peer, state);
        if let Err(e) = self.io.poll.registry().register(
            &mut conn.stream,
            Token(key + FIRST_CONN),
            Interest::READABLE,
        ) {
            log::warn!("{peer}: register failed: {e}");
            return;
        }
        entry.insert(conn);
        self.io.trace(peer, "connected");
        let id = ConnId { key, serial };
        self.app.accepted(&mut self.io, id);
        self.settle();
    }

    // ----- reading -------------------------------------------------------------

    fn read_loop(&mut self, id: ConnId, trust_short_read: bool) {
        let mut budget = READ_BUDGET;
        loop {
            let Some(c) = self.io.get_mut(id) else { return };
            if budget == 0 || c.read_again {
                // Fairness: read the rest on the next turn. Readiness is
                // edge-triggered, so this must be remembered, not awaited.
                if !c.read_again {
                    c.read_again = true;
                    self.io.read_again.push(id);
                }
                return;
            }
            let lingering = c.phase == Phase::Lingering;
            if !lingering && !self.may_read(id) {
                return;
            }
            let Some(c) = self.io.get_mut(id) else { return };
            if self.scratch.is_empty() {
                // The read buffer is lent out to a connection being processed
                // further up the stack: come back at the end of this wake-up.
                self.io.resume.push(id);
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
                    self.on_eof(id);
                    return;
                }
                Ok(n) => {
                    self.io.stats.bytes_in += n as u64;
                    budget = budget.saturating_sub(n);
                    if lingering {
                        continue; // discard
                    }
                    if self.io.conns[id.key].inbuf.len() == lead {
                        // Parse straight out of the loop's buffer and keep
                        // only an incomplete tail (no copy of the read).
                        let total = lead + n;
                        self.io.conns[id.key].inbuf.clear();
                        let mut scratch = std::mem::take(&mut self.scratch);
                        let used = self.process_bytes(id, &mut scratch[..total]);
                        if let Some(c) = self.io.get_mut(id) {
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
                        self.io.mark_dirty(id);
                    } else {
                        self.io.conns[id.key]
                            .inbuf
                            .extend_from_slice(&self.scratch[..n]);
                        self.process(id);
                    }
                    if trust_short_read && n < room {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::debug!("{}: read error: {e}", self.io.conns[id.key].peer);
                    self.io.close_now(id, CloseReason::Error);
                    return;
                }
            }
        }
    }

    /// Should we read more from this connection now? Not while its output
    /// backs up (the peer is not reading what we send: reading more would
    /// only queue more answers), not while a held request waits with
    /// further input buffered, not once it is closing.
    fn may_read(&self, id: ConnId) -> bool {
        let Some(c) = self.io.get(id) else {
            return false;
        };
        if c.phase != Phase::Active {
            return false;
        }
        if c.out.len() > self.io.opts.send_buffer_bytes.max(64 * 1024) {
            return false;
        }
        !c.held || c.inbuf.len() <= self.io.opts.max_held_input
    }

    /// Parses and answers everything complete in the connection's buffer.
    fn process(&mut self, id: ConnId) {
        let Some(c) = self.io.get_mut(id) else { return };
        let mut buf = std::mem::take(&mut c.inbuf);
        let used = self.process_bytes(id, &mut buf);
        let Some(c) = self.io.get_mut(id) else {
            if buf.capacity() > 0 {
                out::pool::give(buf);
            }
            return;
        };
        buf.drain(..used);
        if buf.is_empty() && buf.capacity() > 0 {
            // An idle connection holds no buffer; the pool keeps it warm.
            out::pool::give(std::mem::take(&mut buf));
        }
        c.inbuf = buf;
        self.io.mark_dirty(id);
    }

    /// Runs `buf` through the application, unit by unit (request, frame,
    /// reply) until one is incomplete, the connection is held, or its unit
    /// budget for this turn is spent; returns the bytes used.
    fn process_bytes(&mut self, id: ConnId, buf: &mut [u8]) -> usize {
        let mut pos = 0;
        let mut units = 0;
        loop {
            let Some(c) = self.io.get(id) else {
                return buf.len();
            };
            if c.phase != Phase::Active || c.held || pos == buf.len() {
                break;
            }
            if units == UNIT_BUDGET {
                if let Some(c) = self.io.get_mut(id) {
                    if !c.read_again {
                        c.read_again = true;
                        self.io.read_again.push(id);
                    }
                }
                break;
            }
            units += 1;
            match self.app.input(&mut self.io, id, &mut buf[pos..]) {
                Step::NeedMore => break,
                Step::Consumed(n) => pos += n,
                Step::Hold(n) => {
                    pos += n;
                    if let Some(c) = self.io.get_mut(id) {
                        c.held = true;
                    }
                    break;
                }
            }
        }
        pos
    }

    fn on_eof(&mut self, id: ConnId) {
        let Some(c) = self.io.get(id) else { return };
        if c.phase == Phase::Active {
            self.app.eof(&mut self.io, id);
        } else {
            // Closing or lingering: the peer finished sending and we owe
            // nothing more that it still wants.
            self.io.close_now(id, CloseReason::Normal);
        }
    }

    // ----- writing -------------------------------------------------------------

    fn on_writable(&mut self, id: ConnId) {
        let Some(c) = self.io.get_mut(id) else { return };
        if c.connecting {
            match connect_outcome(&c.stream) {
                Ok(false) => return, // spurious: not yet
                Ok(true) => {
                    c.connecting = false;
                    self.app.connected(&mut self.io, id, Ok(()));
                }
                Err(e) => {
                    self.app.connected(&mut self.io, id, Err(e));
                    return;
                }
            }
        }
        self.flush(id);
    }

    /// Writes queued output; toggles writable interest; finishes closing.
    fn flush(&mut self, id: ConnId) {
        let Some(c) = self.io.get_mut(id) else { return };
        if c.slow {
            // Last words (a close frame), one attempt to write them, cut.
            c.slow = false;
            self.app.overflow(&mut self.io, id);
            if let Some(c) = self.io.get_mut(id) {
                let app = &mut self.app;
                let _ = c.out.flush_to(&mut c.stream, stamp_reporter(app));
            }
            self.io.close_now(id, CloseReason::Slow);
            return;
        }
        if c.connecting {
            return; // the request leaves once the connect completes
        }
        let before = c.out.len();
        let app = &mut self.app;
        match c.out.flush_to(&mut c.stream, stamp_reporter(app)) {
            Ok(n) => self.io.stats.bytes_out += n as u64,
            Err(e) => {
                log::debug!("{}: write error: {e}", c.peer);
                self.io.close_now(id, CloseReason::Error);
                return;
            }
        }
        let c = &mut self.io.conns[id.key];
        let pending = !c.out.is_empty();
        if pending != c.want_write {
            let interest = if pending {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            let token = Token(id.key + FIRST_CONN);
            if self
                .io
                .poll
                .registry()
                .reregister(&mut c.stream, token, interest)
                .is_err()
            {
                self.io.close_now(id, CloseReason::Error);
                return;
            }
            c.want_write = pending;
        }
        if !pending && c.phase == Phase::Closing {
            self.start_lingering(id);
            return;
        }
        if c.notify_drained && c.out.len() <= self.io.opts.send_buffer_bytes / 2 {
            c.notify_drained = false;
            // Told next turn, not now: refilling here would loop (flush,
            // refill, flush, ...) for as long as the kernel takes more, a
            // whole 64 MiB replay in one turn while every other client
            // waits.
            if c.phase == Phase::Active {
                self.io.drained.push(id);
            }
        }
        // Output drained below the backpressure mark: resume reading, since
        // an edge we skipped will not be reported again.
        if before > self.io.opts.send_buffer_bytes.max(64 * 1024) && self.may_read(id) {
            self.io.resume.push(id);
        }
    }

    fn start_lingering(&mut self, id: ConnId) {
        let linger = self.io.opts.linger;
        let Some(c) = self.io.get_mut(id) else { return };
        c.phase = Phase::Lingering;
        if c.inbuf.capacity() > 0 {
            out::pool::give(std::mem::take(&mut c.inbuf));
        }
        if c.stream.shutdown(Shutdown::Write).is_err() {
            self.io.close_now(id, CloseReason::Normal);
            return;
        }
        let peer = c.peer;
        self.io.trace(peer, "output done, write side shut down");
        self.io.set_deadline_in(id, Slot::Deadline, Some(linger));
        self.io.set_deadline(id, Slot::Tick, None);
        // Whatever is already readable is drained now.
        self.read_loop(id, false);
    }

    // ----- time ----------------------------------------------------------------

    fn fire_timers(&mut self) {
        while let Some((at, key)) = self.io.timers.pop_due(self.io.now) {
            match key {
                TimerKey::Conn { id, slot } => {
                    let now = self.io.now;
                    let Some(c) = self.io.get_mut(id) else {
                        continue;
                    };
                    let s = slot as usize;
                    if c.armed[s] != Some(at) {
                        continue; // stale: a newer entry stands for this slot
                    }
                    c.armed[s] = None;
                    match c.deadlines[s] {
                        Some(d) if d <= now => {
                            c.deadlines[s] = None;
                            if c.phase == Phase::Lingering {
                                // Lingering ends; the only deadline it has.
                                self.guarded(Some(id), |r| r.io.close_now(id, CloseReason::Normal));
                            } else {
                                self.guarded(Some(id), |r| r.app.deadline(&mut r.io, id, slot));
                            }
                        }
                        // The deadline moved later: re-arm for it.
                        Some(d) => {
                            c.armed[s] = Some(d);
                            self.io.timers.push(d, TimerKey::Conn { id, slot });
                        }
                        None => {}
                    }
                }
                TimerKey::App(t) => self.guarded(None, |r| r.app.timer(&mut r.io, t)),
                TimerKey::AcceptRetry => self.guarded(None, |r| r.accept()),
            }
        }
    }

    // ----- other threads -------------------------------------------------------

    fn drain_inbox(&mut self) {
        let cmds: Vec<A::Command> = match self.inbox.queue.lock() {
            Ok(mut q) => q.drain(..).collect(),
            Err(_) => return,
        };
        for cmd in cmds {
            self.app.command(&mut self.io, cmd);
            self.settle();
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

/// What a flush does with the stamp of a chunk whose last byte it wrote:
/// tells the application, with the time read once per flush (lazily: a
/// flush that completes no stamped chunk reads no clock), right after the
/// write that handed the bytes to the kernel.
fn stamp_reporter<A: App>(app: &mut A) -> impl FnMut(Instant) + '_ {
    let mut now = None;
    move |at| {
        let now = *now.get_or_insert_with(Instant::now);
        app.stamp_written(at, now);
    }
}

/// Has a non-blocking connect finished? `Ok(false)`: not yet (a spurious
/// wake-up); `Err`: it failed.
fn connect_outcome(stream: &TcpStream) -> io::Result<bool> {
    if let Ok(Some(e)) | Err(e) = stream.take_error() {
        return Err(e);
    }
    match stream.peer_addr() {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    //! Handles that outlive their connection: every list the loop keeps
    //! (output, dirty, resume, timers) ignores a stale one, even once its
    //! slab key belongs to a newer connection.

    use super::*;

    #[derive(Default)]
    struct Recorder {
        deadlines: Vec<ConnId>,
        closed: Vec<(ConnId, CloseReason)>,
    }

    impl App for Recorder {
        type State = &'static str;
        type Timer = u8;
        type Command = ();
        fn accepted(&mut self, _: &mut Io<Self>, _: ConnId) {}
        fn new_state(&mut self) -> &'static str {
            "accepted"
        }
        fn input(&mut self, _: &mut Io<Self>, _: ConnId, buf: &mut [u8]) -> Step {
            Step::Consumed(buf.len())
        }
        fn connected(&mut self, _: &mut Io<Self>, _: ConnId, _: io::Result<()>) {}
        fn eof(&mut self, io: &mut Io<Self>, id: ConnId) {
            io.close_now(id, CloseReason::Normal);
        }
        fn deadline(&mut self, _: &mut Io<Self>, id: ConnId, _: Slot) {
            self.deadlines.push(id);
        }
        fn overflow(&mut self, _: &mut Io<Self>, _: ConnId) {}
        fn drained(&mut self, _: &mut Io<Self>, _: ConnId) {}
        fn stopped(&mut self, _: &mut Io<Self>, _: ConnId) {}
        fn closed(&mut self, _: &mut Io<Self>, id: ConnId, _: &'static str, r: CloseReason) {
            self.closed.push((id, r));
        }
        fn timer(&mut self, _: &mut Io<Self>, _: u8) {}
        fn command(&mut self, _: &mut Io<Self>, _: ()) {}
    }

    fn reactor() -> (Reactor<Recorder>, std::net::TcpListener) {
        let opts = Options {
            addr: "127.0.0.1:0".parse().unwrap(),
            listen_backlog: 16,
            send_buffer_bytes: 1024,
            max_held_input: 1024,
            linger: Duration::from_millis(10),
            inbox_capacity: 2,
            trace: false,
        };
        let peer = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        (Reactor::bind(opts, Recorder::default()).unwrap(), peer)
    }

    #[test]
    fn a_stale_handle_finds_nothing_after_its_slot_is_reused() {
        let (mut r, peer) = reactor();
        let addr = peer.local_addr().unwrap();
        let old = r.io.connect(addr, "old", false).unwrap();
        let at = r.io.now + Duration::from_millis(1);
        r.io.set_deadline(old, Slot::Deadline, Some(at));
        r.io.close_now(old, CloseReason::Normal);
        r.settle();
        let new = r.io.connect(addr, "new", false).unwrap();
        assert_eq!(new.key, old.key, "the slab reuses the key at once");
        assert_ne!(new, old);

        assert!(r.io.get(old).is_none());
        assert_eq!(r.io.state(new), Some(&"new"));
        // Output, closing and scheduling through the stale handle touch
        // nothing of the new connection.
        r.io.send(old, b"not for you");
        assert!(r.io.output(old).is_none());
        assert_eq!(r.io.backlog(new), 0);
        r.io.finish(old, CloseReason::Protocol);
        r.io.close_now(old, CloseReason::Error);
        r.io.resume(old);
        r.io.mark_dirty(old);
        r.io.set_deadline(old, Slot::Tick, Some(at));
        assert!(r.io.is_active(new));
        assert!(r.io.resume.is_empty() && r.io.dirty.is_empty());
        // The old connection's timer fires for nobody.
        r.io.now = at + Duration::from_millis(5);
        r.fire_timers();
        assert!(r.app.deadlines.is_empty(), "{:?}", r.app.deadlines);
        assert_eq!(r.app.closed, [(old, CloseReason::Normal)]);
    }

    #[test]
    fn the_first_close_reason_is_the_one_reported() {
        let (mut r, peer) = reactor();
        let id =
            r.io.connect(peer.local_addr().unwrap(), "c", false)
                .unwrap();
        r.io.set_close_reason(id, CloseReason::Timeout);
        r.io.finish(id, CloseReason::Normal);
        r.io.close_now(id, CloseReason::Error);
        r.settle();
        assert_eq!(r.app.closed, [(id, CloseReason::Timeout)]);
    }

    #[test]
    fn the_handle_queue_is_bounded() {
        let (r, _peer) = reactor();
        let h = r.handle();
        assert_eq!(h.send(()), Ok(()));
        assert_eq!(h.send(()), Ok(()));
        assert_eq!(h.send(()), Err(SendError::Full));
        r.inbox.gone.store(true, Ordering::Release);
        assert_eq!(h.send(()), Err(SendError::Gone));
    }
}
