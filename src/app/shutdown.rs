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

use super::conn::Kind;
use super::{longpoll, websocket, App, Io};
use crate::net::CloseReason;
use crate::wire::ws_close;

pub fn begin(app: &mut App, io: &mut Io) {
    if app.draining {
        return;
    }
    app.draining = true;
    log::info!("shutting down: {} connections open", io.len());
    io.begin_shutdown(io.now() + app.cfg.shutdown_timeout);
    for id in io.ids() {
        let Some(c) = io.get_mut(id) else { continue };
        if !c.is_active() {
            continue;
        }
        let idle = c.inbuf.is_empty() && c.out.is_empty();
        match &mut c.state.kind {
            Kind::Ws(_) => websocket::close(
                app,
                io,
                id,
                ws_close::GOING_AWAY,
                "server shutting down",
                true,
            ),
            Kind::Sse(_) => io.finish(id, CloseReason::Normal),
            Kind::LongPoll(p) => {
                p.reply.keep_alive = false;
                longpoll::expired(app, io, id);
            }
            Kind::Http(_) if idle => io.close_now(id, CloseReason::Normal),
            // A request in progress: answered with Connection: close (see
            // `draining` in http.rs). The server's own Redis connections
            // do not keep the loop waiting (they are background).
            Kind::Http(_) | Kind::Client(_) | Kind::Redis(_) => {}
        }
    }
}
