//! One entry of the connection slab, as the loop sees it: the socket, its
//! buffers, its deadlines, where it is in its life. What the connection *is*
//! (an HTTP exchange, a WebSocket, a webhook request) is the application's
//! `state`, which the loop stores and never looks into.
//!
//! Every list that outlives one call (subscribers, chat members, parked
//! waiters, timers) names a connection by its [`ConnId`]: the slab key plus
//! the connection's serial number. Slab keys are reused the moment a
//! connection leaves; serials never are. Every lookup checks both, so a
//! handle kept past its connection's end finds nothing instead of finding
//! the stranger who got the same slot.

use std::net::SocketAddr;
use std::time::Instant;

use mio::net::TcpStream;

use super::out::OutQueue;

/// A handle to a connection that cannot go stale: `Io::get` with the
/// handle of a connection that has ended returns `None`, even after its
/// slab key was given to a new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId {
    pub(crate) key: usize,
    pub(crate) serial: u64,
}

impl ConnId {
    /// The connection's serial number: unique for the process's life.
    pub fn serial(self) -> u64 {
        self.serial
    }
}

/// Where the connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Reading and answering.
    Active,
    /// The last answer is queued; once it is written, the write side is
    /// shut down and we linger.
    Closing,
    /// Write side shut down; reading and discarding until the peer closes
    /// or `--linger-ms` passes. Closing a socket with unread input makes the
    /// kernel send RST, which can destroy our last answer in flight at the
    /// peer: lingering is how nginx (`lingering_close`) avoids that.
    Lingering,
}

/// Why a connection ended: counted in `/stats` "closed" and printed by
/// `--trace`. The first reason other than `Normal` that is recorded for a
/// connection is the one it closes with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// Orderly: the peer closed, or we finished.
    Normal,
    /// Header, idle or ping timeout, or a close handshake never answered.
    Timeout,
    /// Refused at a limit (`--max-conns`).
    Limit,
    /// A framing or protocol error.
    Protocol,
    /// The output passed `--send-buffer-bytes`.
    Slow,
    /// A socket error (or a bug caught by the panic guard).
    Error,
}

impl CloseReason {
    /// The word `--trace` and `/stats` use.
    pub fn name(self) -> &'static str {
        match self {
            CloseReason::Normal => "normal",
            CloseReason::Timeout => "timeout",
            CloseReason::Limit => "limit",
            CloseReason::Protocol => "protocol",
            CloseReason::Slow => "slow",
            CloseReason::Error => "error",
        }
    }
}

/// A connection in the slab. `S` is the application's per-connection state.
pub struct Conn<S> {
    pub(crate) serial: u64,
    pub(crate) stream: TcpStream,
    pub peer: SocketAddr,
    /// Received bytes not yet consumed (a partial head, frame or body).
    pub inbuf: Vec<u8>,
    pub out: OutQueue,
    pub phase: Phase,
    /// Why it will close (see `CloseReason`).
    pub(crate) reason: CloseReason,
    /// Real deadlines per `timer::Slot`, and the earliest heap entry armed
    /// for each (see `timer.rs`).
    pub(crate) deadlines: [Option<Instant>; 2],
    pub(crate) armed: [Option<Instant>; 2],
    /// Writable interest is registered (only while output is pending).
    pub(crate) want_write: bool,
    /// Already in the loop's list of connections to flush.
    pub(crate) dirty: bool,
    /// Its output passed `--send-buffer-bytes`: cut at the next flush.
    pub(crate) slow: bool,
    /// Queued to be read again next turn (its read budget ran out).
    pub(crate) read_again: bool,
    /// An outgoing connect still under way: nothing is written until it
    /// completes.
    pub(crate) connecting: bool,
    /// The application holds the request at the front of `inbuf` (a long
    /// poll, a request waiting for the backplane): input is not handed to
    /// it until `Io::resume`.
    pub(crate) held: bool,
    /// The application wants `App::drained` once the output falls to half
    /// of `--send-buffer-bytes` (a replay queued as the connection drains).
    pub(crate) notify_drained: bool,
    /// A connection the server keeps for itself (Redis): it does not keep
    /// a graceful shutdown waiting and does not count against
    /// `--max-conns`.
    pub(crate) background: bool,
    pub state: S,
}

impl<S> Conn<S> {
    pub(crate) fn new(serial: u64, stream: TcpStream, peer: SocketAddr, state: S) -> Self {
        Conn {
            serial,
            stream,
            peer,
            inbuf: Vec::new(),
            out: OutQueue::new(),
            phase: Phase::Active,
            reason: CloseReason::Normal,
            deadlines: [None; 2],
            armed: [None; 2],
            want_write: false,
            dirty: false,
            slow: false,
            read_again: false,
            connecting: false,
            held: false,
            notify_drained: false,
            background: false,
            state,
        }
    }

    pub fn is_active(&self) -> bool {
        self.phase == Phase::Active
    }
}
