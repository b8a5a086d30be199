//! One entry of the connection slab: the socket, its buffers, its deadlines,
//! and what it is now (an HTTP exchange, a parked long poll, an event
//! stream, a WebSocket).

use std::net::SocketAddr;
use std::time::Instant;

use mio::net::TcpStream;

use super::out::OutQueue;
use crate::proto::ws::{CloseState, MessageReader};
use crate::wire::chunked::ChunkedDecoder;

/// A connection in the slab.
pub struct Conn {
    /// Unique for the process's life (slab keys are reused; ids are not), so
    /// a timer or a subscription can tell "my connection" from a newcomer
    /// that got the same key.
    pub id: u64,
    pub stream: TcpStream,
    pub peer: SocketAddr,
    /// Received bytes not yet consumed (a partial head, frame or body).
    pub inbuf: Vec<u8>,
    pub out: OutQueue,
    pub kind: Kind,
    pub phase: Phase,
    /// What the `Slot::Deadline` deadline means when it fires.
    pub wait: Wait,
    /// Real deadlines per `timer::Slot`, and the earliest heap entry armed
    /// for each (see `timer.rs`).
    pub deadlines: [Option<Instant>; 2],
    pub armed: [Option<Instant>; 2],
    /// Writable interest is registered (only while output is pending).
    pub want_write: bool,
    /// Already in the loop's list of connections to flush.
    pub dirty: bool,
    /// Cut as a slow consumer (its output passed `--send-buffer-bytes`).
    pub slow: bool,
    /// Queued to be read again next turn (its read budget ran out).
    pub read_again: bool,
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
    /// or the close timeout passes. Closing a socket with unread input makes
    /// the kernel send RST, which can destroy our last answer in flight at
    /// the peer: lingering is how nginx (`lingering_close`) avoids that.
    Lingering,
}

/// What the connection's deadline means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// A new connection that has sent nothing: close silently.
    FirstByte,
    /// A request has begun and must be complete by the deadline: 408.
    RequestHead,
    /// Between keep-alive requests: close silently.
    KeepAlive,
    /// A parked long poll: answer with the current state.
    LongPoll,
    /// A WebSocket close we sent must be answered by then.
    CloseHandshake,
    /// Lingering ends.
    Linger,
    /// A webhook attempt's time is up.
    Client,
    /// Redis did not answer in time (a Redis connection), or a request
    /// held for a channel sync waited too long (503).
    Backplane,
    /// No deadline applies (event streams, open WebSockets).
    None,
}

/// What the connection is now.
pub enum Kind {
    Http(HttpState),
    /// A held request; answered by an event or its deadline.
    LongPoll(Parked),
    Sse(SseStream),
    Ws(WsSession),
    /// An outgoing webhook delivery (we are the client).
    Client(ClientConn),
    /// One of the two connections to the Redis backplane.
    Redis(RedisConn),
}

pub struct RedisConn {
    pub role: RedisRole,
    /// The non-blocking connect completed.
    pub connected: bool,
    /// A PING went out and its answer has not come back.
    pub awaiting_pong: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisRole {
    /// Commands and their replies, in order.
    Commands,
    /// SUBSCRIBE mode: announcements of new messages.
    Subscriber,
}

/// A webhook attempt on the wire.
pub struct ClientConn {
    /// The delivery this attempt is for (`webhooks::Webhooks::deliveries`).
    pub delivery: u64,
    /// The non-blocking connect completed.
    pub connected: bool,
    /// The response's status, once its head is in.
    pub status: Option<u16>,
    /// How the rest of the response body is framed.
    pub body: Option<ClientBody>,
}

pub enum ClientBody {
    Length(u64),
    Chunked(ChunkedDecoder),
    UntilClose,
}

/// An HTTP/1.1 connection between or inside requests.
#[derive(Default)]
pub struct HttpState {
    /// A chunked request body being decoded: the head stays at the front of
    /// the buffer until the body is complete.
    pub chunked: Option<ChunkedBody>,
    /// `100 Continue` was sent for the request being received.
    pub continue_sent: bool,
    /// The request being run again was held once for a backplane sync.
    pub synced_once: bool,
}

pub struct ChunkedBody {
    pub decoder: ChunkedDecoder,
    pub body: Vec<u8>,
    /// Raw bytes after the head that the decoder has taken.
    pub raw_taken: usize,
}

/// How a held request will be answered, kept from its head.
pub struct Reply {
    pub head_only: bool,
    pub http10: bool,
    pub keep_alive: bool,
    /// The `Origin` to echo in `Access-Control-Allow-Origin`.
    pub cors: Option<String>,
}

pub struct Parked {
    pub reply: Reply,
    pub on: ParkedOn,
}

/// What a long poll waits for.
pub enum ParkedOn {
    Job(u64),
    /// A publish waiting for the backplane to assign its id.
    Publish,
    Channel {
        channel: usize,
        after: u64,
    },
}

/// An open `text/event-stream` response.
pub struct SseStream {
    pub source: SseSource,
}

pub enum SseSource {
    /// `/sse`: the time every `interval`.
    Clock {
        interval: std::time::Duration,
    },
    Channel(usize),
}

/// An open WebSocket.
pub struct WsSession {
    pub reader: MessageReader,
    pub close: CloseState,
    pub role: WsRole,
    /// A ping went out and no pong came back yet.
    pub awaiting_pong: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WsRole {
    /// `/echo`: every message back as it came.
    Echo,
    /// `/`: the chat room.
    Chat,
    /// `/channels/{ch}/ws`: a channel subscriber and publisher.
    Channel(usize),
}

impl Kind {
    /// The name `/stats` counts this connection under.
    pub fn stats_name(&self) -> &'static str {
        match self {
            Kind::Http(_) => "http",
            Kind::LongPoll(_) => "longpoll",
            Kind::Sse(_) => "sse",
            Kind::Ws(_) => "ws",
            Kind::Client(_) => "webhook",
            Kind::Redis(_) => "redis",
        }
    }
}

impl Conn {
    pub fn new(id: u64, stream: TcpStream, peer: SocketAddr) -> Self {
        Conn {
            id,
            stream,
            peer,
            inbuf: Vec::new(),
            out: OutQueue::new(),
            kind: Kind::Http(HttpState::default()),
            phase: Phase::Active,
            wait: Wait::FirstByte,
            deadlines: [None; 2],
            armed: [None; 2],
            want_write: false,
            dirty: false,
            slow: false,
            read_again: false,
        }
    }
}
