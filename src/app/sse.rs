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

use super::http::{decimal_param, Ctx};
use crate::net::conn::{Kind, SseSource, SseStream, Wait};
use crate::net::timer::Slot;
use crate::net::Server;
use crate::wire::http1::Head;
use crate::wire::{date, sse};

/// The reconnect delay we suggest to browsers.
const RETRY_MS: u64 = 3000;

impl Server {
    /// Writes the stream's head and turns the connection into a stream.
    /// Returns false for HEAD (API.md: head, then close) or a gone connection.
    pub(crate) fn start_event_stream(
        &mut self,
        key: usize,
        ctx: Ctx<'_>,
        source: SseSource,
    ) -> bool {
        let headers = [("Cache-Control", "no-cache"), ("X-Accel-Buffering", "no")];
        // The body has no length: it is delimited by the connection's close
        // (RFC 9112 section 6.3 rule 8), so nothing can follow it.
        if self
            .write_head(key, ctx, 200, Some("text/event-stream"), &headers, None)
            .is_none()
        {
            return false;
        }
        if ctx.head_only {
            self.finish(key);
            return false;
        }
        let Some(c) = self.conns.get_mut(key) else {
            return false;
        };
        let mut retry = Vec::with_capacity(16);
        sse::write_retry(&mut retry, RETRY_MS);
        c.out.push_bytes(&retry);
        let beat = match source {
            SseSource::Clock { interval } => interval,
            SseSource::Channel(_) => self.cfg.sse_heartbeat,
        };
        c.kind = Kind::Sse(SseStream { source });
        crate::trace::sse(self, key, &retry);
        // A stream stays open as long as the client wants it: no idle
        // timeout (API.md section 3); heartbeats detect dead peers.
        self.set_wait(key, Wait::None, None);
        let next = self.now + beat;
        self.set_deadline(key, Slot::Tick, Some(next));
        self.mark_dirty(key);
        true
    }

    /// `GET /sse[?interval_ms=N]`: a welcome, then the time every interval.
    pub(crate) fn clock(&mut self, key: usize, ctx: Ctx<'_>, head: &Head<'_, '_>) {
        let interval = match decimal_param(head.query, "interval_ms") {
            Ok(None) => Duration::from_millis(1000),
            Ok(Some(ms @ 100..=60_000)) => Duration::from_millis(ms),
            _ => {
                let sentence = "interval_ms must be a whole number from 100 to 60000";
                return self.respond_error(key, ctx, 400, sentence);
            }
        };
        if !self.start_event_stream(key, ctx, SseSource::Clock { interval }) {
            return;
        }
        self.sse_send(key, |out| {
            sse::write_event(out, None, None, "Welcome to Server sent event")
        });
    }

    /// The stream's beat: the clock's next tick, or a channel's heartbeat.
    pub(crate) fn sse_tick(&mut self, key: usize) {
        let Some(Kind::Sse(s)) = self.conns.get(key).map(|c| &c.kind) else {
            return;
        };
        let (next, is_clock) = match s.source {
            SseSource::Clock { interval } => (interval, true),
            SseSource::Channel(_) => (self.cfg.sse_heartbeat, false),
        };
        if is_clock {
            let now = date::rfc3339(date::unix_millis_now());
            self.sse_send(key, |out| sse::write_event(out, None, None, &now));
        } else {
            self.sse_send(key, |out| sse::write_comment(out, "ping"));
        }
        let at = self.now + next;
        self.set_deadline(key, Slot::Tick, Some(at));
    }

    /// Queues bytes written by `write` on one stream.
    fn sse_send(&mut self, key: usize, write: impl FnOnce(&mut Vec<u8>)) {
        let mut buf = Vec::with_capacity(64);
        write(&mut buf);
        crate::trace::sse(self, key, &buf);
        let limit = self.cfg.send_buffer_bytes;
        if let Some(c) = self.conns.get_mut(key) {
            c.out.push_bytes(&buf);
            if c.out.len() > limit {
                c.slow = true;
            }
        }
        self.mark_dirty(key);
    }
}
