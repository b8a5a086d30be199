//! What a connection is to the application: the state the loop stores in
//! each slab entry for us (`net::Conn::state`) and never looks into.
//!
//! ```text
//!  accepted ─► Http ─┬─ upgrade ──────────► Ws (echo, chat, channel)
//!                    ├─ event stream ─────► Sse (clock, channel)
//!                    ├─ held request ─────► LongPoll ─► Http (answered)
//!                    └─ answer, next request (keep-alive)
//!  connect() ─► Client (a webhook delivery) | Redis (the backplane)
//! ```

use std::time::Duration;

use crate::proto::ws::{CloseState, MessageReader};
use crate::wire::chunked::ChunkedDecoder;
use crate::wire::ws_deflate::Agreed;

/// The application's per-connection state.
pub struct Session {
    pub kind: Kind,
    /// What the connection's `Slot::Deadline` means when it fires.
    pub wait: Wait,
}

impl Session {
    pub fn http() -> Self {
        Session {
            kind: Kind::Http(HttpState::default()),
            wait: Wait::FirstByte,
        }
    }
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
    /// A webhook attempt's time is up.
    Client,
    /// Redis did not answer in time (a Redis connection), or a request
    /// held for a channel sync waited too long (503).
    Backplane,
    /// The stream's token expires (docs/api.md section 8).
    TokenExpiry,
    /// No deadline applies (event streams, open WebSockets).
    None,
}

/// What the connection is now.
pub enum Kind {
    Http(HttpState),
    /// A held request; answered by an event or its deadline (`longpoll`).
    LongPoll(Parked),
    Sse(SseStream),
    Ws(WsSession),
    /// An outgoing webhook delivery (we are the client).
    Client(ClientConn),
    /// One of the two connections to the Redis backplane.
    Redis(RedisConn),
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

pub struct RedisConn {
    pub role: RedisRole,
    /// The non-blocking connect completed.
    pub connected: bool,
    /// A PING went out and its answer has not come back.
    pub awaiting_pong: bool,
    /// Replies still owed to the login (`AUTH`, `SELECT`): until they are
    /// all `+OK`, the connection is not ready.
    pub handshake: usize,
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
    /// The response's status, once its head is in.
    pub status: Option<u16>,
    /// How the rest of the response body is framed.
    pub body: Option<ClientBody>,
    /// The outcome was recorded (so the close does not record another).
    pub done: bool,
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
    /// The last token verified on this connection and its claims: a
    /// keep-alive client sends the same token with every request, and the
    /// same bytes need no second HMAC (`access::check`).
    pub verified: Option<Box<VerifiedToken>>,
}

pub struct VerifiedToken {
    pub token: String,
    pub claims: crate::wire::jwt::Claims,
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    /// A replay under way: the last id sent (see `channels::replay`).
    pub replay: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SseSource {
    /// `/sse`: the time every `interval`.
    Clock {
        interval: Duration,
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
    /// Its text messages may be published (a channel's WebSocket whose
    /// token has the publish right, or any without `--token-secret`).
    pub may_publish: bool,
    /// A replay under way: the last id sent (see `channels::replay`).
    pub replay: Option<u64>,
    /// `permessage-deflate` as agreed in the handshake (two bytes: the
    /// compressor and decompressor are the loop's, shared; see
    /// `websocket::Compression`). `None`: an uncompressed connection.
    pub deflate: Option<Agreed>,
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
