//! # pushwire
//!
//! A real-time server you can read end to end: short polling, long polling,
//! Server-Sent Events, WebSocket and webhooks, side by side over one pub/sub
//! core, on a hand-written `mio` event loop.
//!
//! ## Reading order
//!
//! 1. [`wire`]: the formats, pure bytes in and out. Start with
//!    `wire::http1` (requests), then `wire::ws_handshake` (the 101),
//!    `wire::ws_frame` (frames), `wire::sse` (event streams); later
//!    `wire::hmac` and `wire::url` (webhooks) and `wire::resp` (Redis).
//! 2. [`proto::ws`]: the WebSocket state machine over those frames.
//! 3. [`net`]: the event loop, the connection slab, timers, the output
//!    queue.
//! 4. `app`: what each endpoint does: `app::jobs` (short and long
//!    polling), `app::channels` (pub/sub over every transport),
//!    `app::websocket`, `app::chat`, `app::sse`, `app::webhooks` (an HTTP
//!    client on the same loop), `app::redis` (several nodes),
//!    `app::shutdown`.
//! 5. [`hub`], [`jobs`] and [`webhooks`]: the bookkeeping behind channels,
//!    jobs and webhooks.
//!
//! `docs/` walks through each protocol with real captured bytes.
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
