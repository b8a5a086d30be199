//! Event streams on the loop (WHATWG HTML section 9.2): the response head,
//! heartbeats, and the seeds' clock on `/sse`. The event format itself is
//! `wire::sse`.
//!
//! ```text
//! HTTP/1.1 200 OK
//! Content-Type: text/event-stream      <- what makes EventSource parse it
//! Cache-Control: no-cache              <- never replay a stale stream
//! X-Accel-Buffering: no                <- tell nginx-like proxies not to buffer
//! Connection: close                    <- the body ends when the connection does
//!
//! retry: 3000                          <- reconnect delay hint, in ms
//!
//! id: 8
//! data: hi
//!
//! : ping                               <- a comment: keeps proxies from timing out
//! ```

use std::time::Duration;

use super::conn::{Kind, SseSource, SseStream, Wait};
use super::http::{self, decimal_param, Ctx};
use super::{set_wait, App, Io};
use crate::net::{ConnId, Slot};
use crate::wire::http1::Head;
use crate::wire::{date, sse};

/// The reconnect delay we suggest to browsers.
const RETRY_MS: u64 = 3000;

/// Writes the stream's head and turns the connection into a stream.
/// Returns false for HEAD (docs/api.md: head, then close) or a gone connection.
pub fn start(app: &mut App, io: &mut Io, id: ConnId, ctx: Ctx<'_>, source: SseSource) -> bool {
    let headers = [("Cache-Control", "no-cache"), ("X-Accel-Buffering", "no")];
    // The body has no length: it is delimited by the connection's close
    // (RFC 9112 section 6.3 rule 8), so nothing can follow it.
    if http::write_head(
        app,
        io,
        id,
        ctx,
        200,
        Some("text/event-stream"),
        &headers,
        None,
    )
    .is_none()
    {
        return false;
    }
    if ctx.head_only {
        io.finish(id, crate::net::CloseReason::Normal);
        return false;
    }
    let mut retry = Vec::with_capacity(16);
    sse::write_retry(&mut retry, RETRY_MS);
    io.send(id, &retry);
    let beat = match source {
        SseSource::Clock { interval } => interval,
        SseSource::Channel(_) => app.cfg.sse_heartbeat,
    };
    if let Some(s) = io.state_mut(id) {
        s.kind = Kind::Sse(SseStream {
            source,
            replay: None,
        });
    }
    app.trace.sse(io.peer(id), &retry);
    // A stream stays open as long as the client wants it: no idle timeout
    // (docs/api.md section 3); heartbeats detect dead peers.
    set_wait(io, id, Wait::None, None);
    io.set_deadline_in(id, Slot::Tick, Some(beat));
    true
}

/// `GET /sse[?interval_ms=N]`: a welcome, then the time every interval.
pub fn clock(app: &mut App, io: &mut Io, id: ConnId, ctx: Ctx<'_>, head: &Head<'_, '_>) {
    let interval = match decimal_param(head.query, "interval_ms") {
        Ok(None) => Duration::from_millis(1000),
        Ok(Some(ms @ 100..=60_000)) => Duration::from_millis(ms),
        _ => {
            let sentence = "interval_ms must be a whole number from 100 to 60000";
            return http::respond_error(app, io, id, ctx, 400, sentence);
        }
    };
    if !start(app, io, id, ctx, SseSource::Clock { interval }) {
        return;
    }
    send(app, io, id, |out| {
        sse::write_event(out, None, None, "Welcome to Server sent event")
    });
}

/// The stream's beat: the clock's next tick, or a channel's heartbeat.
pub fn tick(app: &mut App, io: &mut Io, id: ConnId) {
    let Some(Kind::Sse(s)) = io.state(id).map(|s| &s.kind) else {
        return;
    };
    let (next, is_clock) = match s.source {
        SseSource::Clock { interval } => (interval, true),
        SseSource::Channel(_) => (app.cfg.sse_heartbeat, false),
    };
    if is_clock {
        let now = date::rfc3339(date::unix_millis_now());
        send(app, io, id, |out| sse::write_event(out, None, None, &now));
    } else {
        send(app, io, id, |out| sse::write_comment(out, "ping"));
    }
    io.set_deadline_in(id, Slot::Tick, Some(next));
}

/// Queues bytes written by `write` on one stream.
fn send(app: &mut App, io: &mut Io, id: ConnId, write: impl FnOnce(&mut Vec<u8>)) {
    let mut buf = Vec::with_capacity(64);
    write(&mut buf);
    app.trace.sse(io.peer(id), &buf);
    let limit = app.cfg.send_buffer_bytes;
    io.send(id, &buf);
    if io.backlog(id) > limit {
        io.mark_slow(id);
    }
}
