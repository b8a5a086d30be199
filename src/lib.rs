//! # pushwire
//!
//! A real-time server you can read end to end: short polling, long polling,
//! Server-Sent Events, WebSocket and webhooks, side by side over one pub/sub
//! core, on a hand-written `mio` event loop.
//!
//! ## The architecture
//!
//! ```text
//!   sockets, timers, waker            what the bytes mean             formats
//!  ┌──────────────────────────┐     ┌──────────────────────────┐   ┌───────────┐
//!  │ net::Reactor             │     │ app::App  (net::App)     │   │ wire::*   │
//!  │  Poll, the slab of Conn, │ ──► │  one match per event on  │──►│ pure fns  │
//!  │  timers, output queues,  │     │  the connection's kind ─►│   │ over bytes│
//!  │  read budgets, Handle    │ ◄── │  http, longpoll, sse,    │   └───────────┘
//!  │  (knows no endpoint)     │ Io  │  websocket, webhooks ... │   ┌───────────┐
//!  └──────────────────────────┘     └──────────────────────────┘──►│ proto::ws │
//!                                     hub, jobs, webhooks:          └───────────┘
//!                                     the bookkeeping
//! ```
//!
//! The loop (`net`) hands the application every event through the
//! `net::App` trait and knows nothing of HTTP or WebSocket; the application
//! answers through `net::Io`. Connections are named by `net::ConnId`
//! handles that cannot be mistaken for a later connection in the same slab
//! slot. The formats (`wire`) touch no socket and no clock, which is what
//! lets them be tested byte by byte and fuzzed (`fuzz/`).
//!
//! ## Reading order
//!
//! Every file a reader needs, in the order that builds on what came before:
//!
//! 1. `main.rs` (flags in, server running, signals out) and `config.rs`
//!    (every flag, its default, the `--help` text), then `server.rs` (the
//!    library's front door: `Server`, `Handle`).
//! 2. [`wire`], the formats: `http1` (requests, RFC 9112 body framing, and
//!    responses for the webhook client), `chunked`, `query`, `date`;
//!    `ws_handshake` (where the 101 is written), `ws_frame` (how a frame's
//!    length is encoded), `ws_close`, `utf8`; `sse`; `json`; `hmac` and
//!    `url` (webhooks); `resp` (Redis); `jwt`, `bearer` and `json_read`
//!    (access tokens); `ws_deflate` (permessage-deflate); `prometheus` and
//!    `redis_url`.
//! 3. [`proto::ws`]: the WebSocket state machine over those frames:
//!    messages, fragments, masks, fail-fast UTF-8, the closing handshake.
//! 4. [`net`]: the reactor (`mod.rs`: one loop, read until `WouldBlock`,
//!    writable interest only while output is pending, the `App` trait),
//!    `conn.rs` (a slab entry, `ConnId`, close reasons), `out.rs` (the
//!    output queue), `timer.rs` (the deadline heap), `resolve.rs` (name
//!    lookups off the loop).
//! 5. [`app`]: `mod.rs` first (the one place that decides what each kind of
//!    connection does with each event), `conn.rs` (what a connection is),
//!    then `http.rs` and `routes.rs` (requests, the path table), `access.rs`
//!    (tokens: who may publish, subscribe, administer), `jobs.rs`
//!    (short polling), `longpoll.rs` (every held request: park, release,
//!    expire), `channels.rs` (one publish to every transport), `sse.rs`,
//!    `websocket.rs`, `chat.rs`, `webhooks.rs` and `webhook_client.rs`,
//!    `redis.rs` and `redis_conn.rs` (several nodes), `stats.rs`,
//!    `shutdown.rs`, `demo.html` (the demo page) and `pushwire.js` (the
//!    browser client: transports, fallback, resume).
//! 6. [`hub`], [`jobs`] and [`webhooks`]: the bookkeeping behind channels,
//!    jobs and webhooks; [`trace`]: the `--trace` narration.
//!
//! Two questions a newcomer asks, each answered by one file: where is a
//! long poll parked, released and expired? `app/longpoll.rs`. How does one
//! publish reach SSE, WebSocket and long-poll subscribers?
//! `app/channels.rs`, `deliver`.
//!
//! `docs/api.md` is the reference (paths, parameters, statuses, bodies,
//! flags); `docs/` walks through each protocol byte by byte, with the
//! commands that reproduce every capture.
//!
//! ## Embedding
//!
//! ```no_run
//! let server = pushwire::Server::bind(pushwire::Config::default()).unwrap();
//! let handle = server.handle();
//! std::thread::spawn(move || server.run());
//! handle.publish("logins", "a user just logged in").unwrap();
//! ```

pub mod app;
pub mod config;
pub mod hub;
pub mod jobs;
pub mod net;
pub mod proto;
pub mod server;
pub mod trace;
pub mod webhooks;
pub mod wire;

pub use config::Config;
pub use net::SendError;
pub use server::{Handle, Server};
