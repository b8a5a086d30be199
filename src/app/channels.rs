//! Channels over every transport (API.md section 2): one publish reaches
//! long pollers, event streams and WebSockets alike, each in id order,
//! exactly once per connection.
//!
//! ```text
//! POST /channels/news "hi" ─► hub.append → id 8
//!     ├─► WebSocket subscribers: one text frame {"id":8,"data":"hi"}, encoded once, shared
//!     ├─► SSE subscribers: one "id: 8\ndata: hi\n\n" event, encoded once, shared
//!     └─► parked long polls: each answered now with what follows its cursor
//! ```
//!
//! Resuming: a client names the last id it saw (`after=`, `Last-Event-ID`),
//! history fills the gap, and a gap history cannot fill is announced
//! (`truncated`), never silent.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use super::http::{decimal_param, Ctx};
use crate::hub::{HubError, Stored};
use crate::net::conn::{Kind, Parked, ParkedOn, SseSource, Wait, WsRole};
use crate::net::Server;
use crate::wire::http1::Head;
use crate::wire::ws_frame::{self, opcode};
use crate::wire::{json, query, sse};

/// At most this many messages in one long-poll answer (API.md).
const MAX_POLL_MESSAGES: usize = 100;
/// `timeout=S`: default and maximum, in seconds.
const DEFAULT_POLL_S: u64 = 30;
const MAX_POLL_S: u64 = 120;

impl Server {
    /// `POST /channels/{ch}` with the message as body → `201 {"id":N}`.
    pub(crate) fn publish_http(&mut self, key: usize, ctx: Ctx<'_>, name: &str, body: &[u8]) {
        let Ok(text) = std::str::from_utf8(body) else {
            return self.respond_error(key, ctx, 400, "a message must be UTF-8 text");
        };
        if text.is_empty() {
            return self.respond_error(key, ctx, 400, "a message must not be empty");
        }
        let ch = match self.hub.channel(name) {
            Ok(ch) => ch,
            Err(e) => return self.hub_error(key, ctx, e),
        };
        if self.redis.is_none() {
            let id = self.publish_local(ch, text);
            return self.respond_json(key, ctx, 201, &format!("{{\"id\":{id}}}"));
        }
        // With Redis, the id comes from Redis: hold the request until the
        // reply (`app::redis`).
        let waiter = Some((key, self.conns[key].id));
        match self.redis_publish(ch, text, waiter) {
            Ok(()) => self.hold_publish(key, ctx),
            Err(()) => self.respond_error(
                key,
                ctx,
                503,
                "the backplane (Redis) is unreachable; the message was not published",
            ),
        }
    }

    /// The channel `name`, ready to be read from `cursor` on (created on
    /// first use; synced first with several nodes). `None` when the request
    /// was answered (an error) or is held for the sync.
    fn ready_channel(
        &mut self,
        key: usize,
        ctx: Ctx<'_>,
        name: &str,
        cursor: Option<u64>,
    ) -> Option<usize> {
        let ch = match self.hub.channel(name) {
            Ok(ch) => ch,
            Err(e) => {
                self.hub_error(key, ctx, e);
                return None;
            }
        };
        self.channel_ready(key, ctx, ch, cursor).then_some(ch)
    }

    fn hub_error(&mut self, key: usize, ctx: Ctx<'_>, e: HubError) {
        match e {
            HubError::BadName => self.respond_error(key, ctx, 400, "invalid channel name"),
            HubError::Full => self.respond_error(key, ctx, 503, "too many channels exist"),
        }
    }

    /// Publishes to a channel by name (the embedding API's path). With
    /// Redis the message is sent there and delivered when it comes back.
    pub(crate) fn publish_str(&mut self, name: &str, data: &str) -> Result<(), String> {
        let ch = self.hub.channel(name).map_err(|e| e.to_string())?;
        self.publish(ch, data)
    }

    /// Publishes from a source that needs no id back (a WebSocket client,
    /// the embedding handle).
    pub(crate) fn publish(&mut self, ch: usize, data: &str) -> Result<(), String> {
        if self.redis.is_none() {
            self.publish_local(ch, data);
            return Ok(());
        }
        self.redis_publish(ch, data, None)
            .map_err(|()| "the backplane (Redis) is unreachable".to_string())
    }

    /// In process: the next id, history, delivery, all at once.
    fn publish_local(&mut self, ch: usize, data: &str) -> u64 {
        let m = self.hub.append(ch, Arc::from(data));
        let id = m.id;
        self.deliver(ch, m);
        id
    }

    /// Delivers a message that has its id to every local subscriber. Each
    /// transport's encoding is made once, only if someone needs it.
    pub(crate) fn deliver(&mut self, ch: usize, m: Stored) {
        let data: &str = &m.data.clone();
        let subs = std::mem::take(&mut self.hub.get_mut(ch).subscribers);
        let mut keep = Vec::with_capacity(subs.len());
        let mut polls = Vec::new();
        // Each transport's encoding, made on first need and then shared.
        let mut ws: Option<Arc<[u8]>> = None;
        let mut ev: Option<Arc<[u8]>> = None;
        for (key, id) in subs {
            let Some(c) = self.conns.get(key).filter(|c| c.id == id) else {
                continue;
            };
            match c.kind {
                Kind::Ws(_) => {
                    let frame = ws
                        .get_or_insert_with(|| ws_message_frame(&m).into())
                        .clone();
                    crate::trace::encoded_frames(self, key, &frame);
                    self.send_shared(key, &frame);
                    keep.push((key, id));
                }
                Kind::Sse(_) => {
                    let event = ev
                        .get_or_insert_with(|| sse_message_event(&m).into())
                        .clone();
                    crate::trace::sse(self, key, &event);
                    self.send_shared(key, &event);
                    keep.push((key, id));
                }
                Kind::LongPoll(_) => polls.push(key),
                Kind::Http(_) | Kind::Client(_) | Kind::Redis(_) => {}
            }
        }
        // Nothing above can subscribe anyone, so `keep` is the whole list.
        self.hub.get_mut(ch).subscribers = keep;
        for key in polls {
            crate::trace::event(self, key, format_args!("long poll released by id {}", m.id));
            self.release_channel_poll(key);
        }
        if !self.webhooks.hooks.is_empty() {
            let name = self.hub.get(ch).name.clone();
            self.webhooks_message(&name, m.id, data);
        }
    }

    // ----- long polling ----------------------------------------------------

    /// `GET /channels/{ch}/poll?after=N&timeout=S`.
    pub(crate) fn channel_poll(
        &mut self,
        key: usize,
        ctx: Ctx<'_>,
        head: &Head<'_, '_>,
        name: &str,
    ) {
        let after = match decimal_param(head.query, "after") {
            Ok(a) => a,
            Err(()) => {
                return self.respond_error(
                    key,
                    ctx,
                    400,
                    "after must be a non-negative whole number",
                )
            }
        };
        let timeout = match decimal_param(head.query, "timeout") {
            Ok(None) => DEFAULT_POLL_S,
            Ok(Some(s)) if s <= MAX_POLL_S => s,
            _ => {
                return self.respond_error(
                    key,
                    ctx,
                    400,
                    "timeout must be a whole number of seconds from 0 to 120",
                )
            }
        };
        let Some(ch) = self.ready_channel(key, ctx, name, after) else {
            return;
        };
        // Without `after`: only what is published from now on.
        let cursor = after.unwrap_or(self.hub.get(ch).last_id);
        let c = self.hub.get(ch);
        let r = c.resume(cursor);
        if r.truncated || r.start < c.history.len() || timeout == 0 {
            let body = poll_answer(self, ch, cursor);
            return self.respond_json(key, ctx, 200, &body);
        }
        let conn_id = self.conns[key].id;
        self.hub.subscribe(ch, key, conn_id);
        self.conns[key].kind = Kind::LongPoll(Parked {
            reply: ctx.to_reply(),
            on: ParkedOn::Channel {
                channel: ch,
                after: cursor,
            },
        });
        self.set_wait(key, Wait::LongPoll, Some(Duration::from_secs(timeout)));
        crate::trace::event(
            self,
            key,
            format_args!("long poll parked on channel {name} after {cursor} for up to {timeout} s"),
        );
    }

    /// Answers a parked channel poll with what follows its cursor.
    fn release_channel_poll(&mut self, key: usize) {
        let Some(c) = self.conns.get(key) else { return };
        let Kind::LongPoll(Parked {
            on: ParkedOn::Channel { channel, after },
            ..
        }) = c.kind
        else {
            return;
        };
        let (id, body) = (c.id, poll_answer(self, channel, after));
        self.hub.unsubscribe(channel, key, id);
        self.stats.delivered += 1;
        self.unpark(key, |s, key, ctx| s.respond_json(key, ctx, 200, &body));
    }

    pub(crate) fn channel_poll_expired(&mut self, key: usize) {
        crate::trace::event(self, key, "long poll expired");
        self.release_channel_poll(key);
    }

    // ----- Server-Sent Events -----------------------------------------------

    /// `GET /channels/{ch}/events`: an event stream, replaying from
    /// `Last-Event-ID` (or `?lastEventId=` on a first connect) first.
    pub(crate) fn channel_events(
        &mut self,
        key: usize,
        ctx: Ctx<'_>,
        head: &Head<'_, '_>,
        name: &str,
    ) {
        // The header wins when both are present: it is what a browser's
        // EventSource sends on its own reconnects (WHATWG HTML 9.2.3).
        let last = match head.header("last-event-id") {
            Some(v) => match query::parse_decimal(v) {
                Some(n) => Some(n),
                None if v.is_empty() => None,
                None => {
                    return self.respond_error(key, ctx, 400, "Last-Event-ID must be a message id")
                }
            },
            None => match decimal_param(head.query, "lastEventId") {
                Ok(n) => n,
                Err(()) => {
                    return self.respond_error(key, ctx, 400, "lastEventId must be a message id")
                }
            },
        };
        let Some(ch) = self.ready_channel(key, ctx, name, last) else {
            return;
        };
        if !self.start_event_stream(key, ctx, SseSource::Channel(ch)) {
            return;
        }
        if let Some(after) = last {
            let mut out = Vec::new();
            let c = self.hub.get(ch);
            let r = c.resume(after);
            if r.truncated {
                let data = format!("{{\"after\":{after},\"oldest\":{}}}", r.oldest);
                sse::write_event(&mut out, Some("truncated"), None, &data);
            }
            for m in c.history.range(r.start..) {
                write_sse_message(&mut out, m);
            }
            crate::trace::sse(self, key, &out);
            if let Some(c) = self.conns.get_mut(key) {
                c.out.push_bytes(&out);
            }
        }
        let conn_id = self.conns[key].id;
        self.hub.subscribe(ch, key, conn_id);
        crate::trace::event(self, key, format_args!("event stream subscribed to {name}"));
    }

    // ----- WebSocket --------------------------------------------------------

    /// `GET /channels/{ch}/ws[?after=N]`: upgrade, replay, subscribe.
    pub(crate) fn channel_ws(&mut self, key: usize, ctx: Ctx<'_>, head: &Head<'_, '_>, name: &str) {
        // API.md: a bad `after` is refused before any upgrade.
        let after = match decimal_param(head.query, "after") {
            Ok(a) => a,
            Err(()) => {
                return self.respond_error(
                    key,
                    ctx,
                    400,
                    "after must be a non-negative whole number",
                )
            }
        };
        let Some(ch) = self.ready_channel(key, ctx, name, after) else {
            return;
        };
        if !self.upgrade(key, ctx, head, WsRole::Channel(ch)) {
            return;
        }
        if let Some(after) = after {
            let c = self.hub.get(ch);
            let r = c.resume(after);
            let mut frames = Vec::new();
            if r.truncated {
                let text = format!(
                    "{{\"truncated\":true,\"after\":{after},\"oldest\":{}}}",
                    r.oldest
                );
                ws_frame::write_frame(&mut frames, opcode::TEXT, text.as_bytes());
            }
            for m in c.history.range(r.start..) {
                frames.extend_from_slice(&ws_message_frame(m));
            }
            crate::trace::encoded_frames(self, key, &frames);
            if let Some(c) = self.conns.get_mut(key) {
                c.out.push_bytes(&frames);
            }
        }
        let conn_id = self.conns[key].id;
        self.hub.subscribe(ch, key, conn_id);
    }

    /// A text message from a channel's WebSocket is published to it (the
    /// sender receives it too). An empty message is not published.
    pub(crate) fn ws_publish(&mut self, key: usize, ch: usize, text: &str) {
        if text.is_empty() {
            return;
        }
        if let Err(e) = self.publish(ch, text) {
            // No request to answer 503 to: the client is told in a frame.
            crate::trace::event(self, key, format_args!("publish refused: {e}"));
            let body = super::http::error_body(&e);
            self.ws_send(key, crate::wire::ws_frame::opcode::TEXT, body.as_bytes());
        }
    }
}

/// `{"messages":[...],"last":N}` for a poll after `after`, plus
/// `"truncated":true` when history does not reach back to it.
fn poll_answer(s: &Server, ch: usize, after: u64) -> String {
    let c = s.hub.get(ch);
    let r = c.resume(after);
    let mut out = String::from("{\"messages\":[");
    let mut last = if r.truncated {
        c.last_id.min(after)
    } else {
        after
    };
    for (i, m) in c
        .history
        .range(r.start..)
        .take(MAX_POLL_MESSAGES)
        .enumerate()
    {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{{\"id\":{},\"data\":", m.id);
        json::push_str(&mut out, &m.data);
        out.push('}');
        last = m.id;
    }
    if r.truncated && r.start >= c.history.len() {
        // Nothing kept to send: the cursor becomes the channel's last id.
        last = c.last_id;
    }
    let _ = write!(out, "],\"last\":{last}");
    if r.truncated {
        out.push_str(",\"truncated\":true");
    }
    out.push('}');
    out
}

/// The text frame `{"id":8,"data":"hi"}` for a message.
fn ws_message_frame(m: &Stored) -> Vec<u8> {
    let mut payload = Vec::with_capacity(m.data.len() + 24);
    payload.extend_from_slice(b"{\"id\":");
    crate::wire::http1::push_decimal(&mut payload, m.id);
    payload.extend_from_slice(b",\"data\":");
    json::write_str(&mut payload, &m.data);
    payload.push(b'}');
    let mut frame = Vec::with_capacity(payload.len() + 10);
    ws_frame::write_frame(&mut frame, opcode::TEXT, &payload);
    frame
}

fn write_sse_message(out: &mut Vec<u8>, m: &Stored) {
    sse::write_event(out, None, Some(m.id), &m.data);
}

fn sse_message_event(m: &Stored) -> Vec<u8> {
    let mut out = Vec::with_capacity(m.data.len() + 24);
    write_sse_message(&mut out, m);
    out
}
