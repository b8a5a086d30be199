//! Graceful shutdown (SIGINT, SIGTERM, or `Handle::stop`): what each kind
//! of connection is owed before the process goes.
//!
//! | connection        | what it gets                                          |
//! |-------------------|-------------------------------------------------------|
//! | WebSocket         | a close frame 1001 "going away" (RFC 6455 section 7.4.1), then the close handshake |
//! | event stream      | the end of its body (the connection closes cleanly; EventSource reconnects elsewhere) |
//! | parked long poll  | its answer now, as on timeout, with `Connection: close` |
//! | HTTP, mid-request | its answer, with `Connection: close`                  |
//! | HTTP, idle        | closed                                                |
//! | webhook attempt   | time to finish                                        |
//!
//! Everything must be done within `--shutdown-timeout-ms`; what is left
//! then is dropped.

use crate::net::conn::{Kind, Phase};
use crate::net::{CloseReason, Server};
use crate::wire::ws_close;

impl Server {
    pub(crate) fn begin_shutdown(&mut self) {
        if self.shutdown_deadline.is_some() {
            return;
        }
        log::info!("shutting down: {} connections open", self.conns.len());
        self.shutdown_deadline = Some(self.now + self.cfg.shutdown_timeout);
        self.close_listener();
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            let Some(c) = self.conns.get_mut(key) else {
                continue;
            };
            if c.phase != Phase::Active {
                continue;
            }
            match &mut c.kind {
                Kind::Ws(_) => {
                    self.ws_close(key, ws_close::GOING_AWAY, "server shutting down", true)
                }
                Kind::Sse(_) => self.finish(key),
                Kind::LongPoll(p) => {
                    p.reply.keep_alive = false;
                    self.long_poll_expired(key);
                }
                Kind::Http(_) if c.inbuf.is_empty() && c.out.is_empty() => {
                    self.close_now(key, CloseReason::Normal)
                }
                // A request in progress: answered with Connection: close
                // (see `draining` in app::http).
                Kind::Http(_) | Kind::Client(_) | Kind::Redis(_) => {}
            }
        }
    }

    /// Is the server shutting down? Answers then close their connection.
    pub(crate) fn draining(&self) -> bool {
        self.shutdown_deadline.is_some()
    }
}
