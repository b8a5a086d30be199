//! What the server does with the bytes: HTTP requests routed to jobs,
//! channels, chat, echo and streams. Each file adds an `impl Server` block
//! for one protocol or feature; `crate::net` owns the sockets and timers.

pub mod channels;
pub mod chat;
pub mod http;
pub mod jobs;
pub mod redis;
pub mod routes;
pub mod shutdown;
pub mod sse;
pub mod stats;
pub mod webhooks;
pub mod websocket;

use http::Ctx;

use crate::net::conn::WsRole;
use crate::net::Server;
use crate::wire::http1::Head;
use crate::wire::ws_handshake;

/// The demo page, served from the binary (no CDN, no build step).
const DEMO_PAGE: &str = include_str!("demo.html");

impl Server {
    /// `/`: the chat room for a WebSocket upgrade, the demo page otherwise.
    pub(crate) fn index(&mut self, key: usize, ctx: Ctx<'_>, head: &Head<'_, '_>) {
        if ws_handshake::wants_websocket(head) {
            if self.upgrade(key, ctx, head, WsRole::Chat) {
                self.chat_join(key);
            }
            return;
        }
        self.respond_full(
            key,
            ctx,
            200,
            Some("text/html; charset=utf-8"),
            &[],
            DEMO_PAGE.as_bytes(),
        );
    }
}
