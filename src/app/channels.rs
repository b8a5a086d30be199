//! Channels over every transport (docs/api.md section 2): one publish reaches
//! long pollers, event streams and WebSockets alike, each in id order,
//! exactly once per connection.
//!
//! ```text
//! POST /channels/news "hi" ─► hub.append → id 8
//!     ├─► WebSocket subscribers: one text frame {"id":8,"data":"hi"}, encoded once, shared
//!     │   (and compressed once, shared by those that agreed permessage-deflate)
//!     ├─► SSE subscribers: one "id: 8\ndata: hi\n\n" event, encoded once, shared
//!     └─► parked long polls: each answered now with what follows its cursor
//! ```
//!
//! Resuming: a client names the last id it saw (`after=`, `Last-Event-ID`),
//! history fills the gap, and a gap history cannot fill is announced
//! (`truncated`), never silent.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::conn::{Kind, ParkedOn, SseSource, SseStream, WsRole, WsSession};
use super::http::{self, decimal_param, Ctx, Flow};
use super::websocket::Broadcast;
use super::{access, longpoll, redis, sse, webhooks, websocket, App, Io};
use crate::hub::{HubError, Stored};
use crate::net::ConnId;
use crate::wire::http1::Head;
use crate::wire::ws_frame::opcode;
use crate::wire::{json, query};

/// At most this many messages in one long-poll answer (docs/api.md).
const MAX_POLL_MESSAGES: usize = 100;
/// `timeout=S`: default and maximum, in seconds.
const DEFAULT_POLL_S: u64 = 30;
const MAX_POLL_S: u64 = 120;

/// `POST /channels/{ch}` with the message as body → `201 {"id":N}`.
/// `quiet`: the request carries `X-Pushwire-Delivery` (it is a webhook
/// delivery): the message reaches subscribers but fires no webhook.
pub fn publish_http(
    app: &mut App,
    io: &mut Io,
    id: ConnId,
    ctx: Ctx<'_>,
    name: &str,
    body: &[u8],
    quiet: bool,
) -> Flow {
    let Ok(text) = std::str::from_utf8(body) else {
        http::respond_error(app, io, id, ctx, 400, "a message must be UTF-8 text");
        return Flow::Done;
    };
    if text.is_empty() {
        http::respond_error(app, io, id, ctx, 400, "a message must not be empty");
        return Flow::Done;
    }
    let ch = match app.hub.channel(name) {
        Ok(ch) => ch,
        Err(e) => {
            hub_error(app, io, id, ctx, e);
            return Flow::Done;
        }
    };
    if let Err(e) = app.hub.check_publish(ch) {
        app.hub.release_if_unused(ch);
        hub_error(app, io, id, ctx, e);
        return Flow::Done;
    }
    if app.redis.is_none() {
        let mid = publish_local(app, io, ch, text, quiet);
        http::respond_json(app, io, id, ctx, 201, &format!("{{\"id\":{mid}}}"));
        return Flow::Done;
    }
    // With Redis, the id comes from Redis: hold the request until the
    // reply (`redis.rs`).
    match redis::publish(app, io, ch, text, quiet, Some(id)) {
        Ok(()) => longpoll::park(
            app,
            io,
            id,
            ctx,
            ParkedOn::Publish,
            redis::REPLY_TIMEOUT + Duration::from_secs(1),
        ),
        Err(()) => {
            app.hub.release_if_unused(ch);
            http::respond_error(
                app,
                io,
                id,
                ctx,
                503,
                "the backplane (Redis) is unreachable; the message was not published",
            );
            Flow::Done
        }
    }
}

/// The channel `name`, ready to be read from `cursor` on (created on first
/// use; synced first with several nodes). `Err` says what became of the
/// request: answered (an error) or to be retried after the sync.
fn ready_channel(
    app: &mut App,
    io: &mut Io,
    id: ConnId,
    ctx: Ctx<'_>,
    name: &str,
    cursor: Option<u64>,
) -> Result<usize, Flow> {
    let ch = match app.hub.channel(name) {
        Ok(ch) => ch,
        Err(e) => {
            hub_error(app, io, id, ctx, e);
            return Err(Flow::Done);
        }
    };
    match redis::channel_ready(app, io, id, ctx, ch, cursor) {
        redis::Readiness::Ready => Ok(ch),
        redis::Readiness::Answered => {
            app.hub.release_if_unused(ch);
            Err(Flow::Done)
        }
        redis::Readiness::Held => Err(Flow::Retry),
    }
}

fn hub_error(app: &mut App, io: &mut Io, id: ConnId, ctx: Ctx<'_>, e: HubError) {
    match e {
        HubError::BadName => http::respond_error(app, io, id, ctx, 400, "invalid channel name"),
        HubError::Full => http::respond_error(app, io, id, ctx, 503, "too many channels exist"),
    }
}

/// Publishes to a channel by name (the embedding API's path). With Redis
/// the message is sent there and delivered when it comes back.
pub fn publish_str(app: &mut App, io: &mut Io, name: &str, data: &str) -> Result<(), String> {
    let ch = app.hub.channel(name).map_err(|e| e.to_string())?;
    publish(app, io, ch, data)
}

/// Publishes from a source that needs no id back (a WebSocket client, the
/// embedding handle).
pub fn publish(app: &mut App, io: &mut Io, ch: usize, data: &str) -> Result<(), String> {
    if let Err(e) = app.hub.check_publish(ch) {
        app.hub.release_if_unused(ch);
        return Err(e.to_string());
    }
    if app.redis.is_none() {
        publish_local(app, io, ch, data, false);
        return Ok(());
    }
    redis::publish(app, io, ch, data, false, None).map_err(|()| {
        app.hub.release_if_unused(ch);
        "the backplane (Redis) is unreachable".to_string()
    })
}

/// In process: the next id, history, delivery, all at once. The message
/// was accepted at this wake-up of the loop (`io.now()`).
fn publish_local(app: &mut App, io: &mut Io, ch: usize, data: &str, quiet: bool) -> u64 {
    let m = app.hub.append(ch, Arc::from(data), quiet);
    let id = m.id;
    deliver(app, io, ch, m, io.now());
    id
}

/// Delivers a message that has its id to every local subscriber. Each
/// transport's encoding is made once, only if someone needs it, and the
/// same bytes are queued on every connection of that transport (for
/// WebSocket: once uncompressed, once compressed per window size in use,
/// see `websocket::Broadcast`).
///
/// `accepted` is when the message was accepted (see `metrics.rs`): each
/// subscriber's queued bytes are stamped with it (`Io::stamp`), and the
/// loop reports the stamp when their last byte is written, which feeds
/// `pushwire_delivery_seconds`.
pub fn deliver(app: &mut App, io: &mut Io, ch: usize, m: Stored, accepted: Instant) {
    let subs = std::mem::take(&mut app.hub.get_mut(ch).subscribers);
    let mut keep = Vec::with_capacity(subs.len());
    let mut polls = Vec::new();
    let mut ws: Option<Broadcast> = None;
    let mut ev: Option<Arc<[u8]>> = None;
    let trace = app.trace;
    for id in subs {
        // A subscriber that went away is dropped from the list here.
        match io.state(id).map(|s| &s.kind) {
            // Still replaying history: this message is in history, and the
            // replay reaches it in order.
            Some(Kind::Ws(WsSession {
                replay: Some(_), ..
            }))
            | Some(Kind::Sse(SseStream {
                replay: Some(_), ..
            })) => keep.push(id),
            Some(Kind::Ws(_)) => {
                let b =
                    ws.get_or_insert_with(|| Broadcast::new(opcode::TEXT, ws_message_payload(&m)));
                if b.send(app, io, id) {
                    io.stamp(id, accepted);
                }
                keep.push(id);
            }
            Some(Kind::Sse(_)) => {
                let event = ev
                    .get_or_insert_with(|| sse_message_event(&m).into())
                    .clone();
                trace.sse(io.peer(id), &event);
                if io.send_shared(id, &event) {
                    app.stats.delivered += 1;
                    io.stamp(id, accepted);
                }
                keep.push(id);
            }
            Some(Kind::LongPoll(_)) => polls.push(id),
            _ => {}
        }
    }
    // Nothing above can subscribe anyone, so `keep` is the whole list.
    app.hub.get_mut(ch).subscribers = keep;
    for id in polls {
        longpoll::release_channel(app, io, id, m.id);
        // The answer (head and body, queued just now) is the delivery.
        io.stamp(id, accepted);
    }
    if !m.quiet && !app.webhooks.hooks.is_empty() {
        let name = app.hub.get(ch).name.clone();
        webhooks::message(app, io, &name, m.id, &m.data);
    }
}

// ----- long polling ------------------------------------------------------------

/// `GET /channels/{ch}/poll?after=N&timeout=S`.
pub fn poll(
    app: &mut App,
    io: &mut Io,
    id: ConnId,
    ctx: Ctx<'_>,
    head: &Head<'_, '_>,
    name: &str,
) -> Flow {
    let Ok(after) = decimal_param(head.query, "after") else {
        let sentence = "after must be a non-negative whole number";
        http::respond_error(app, io, id, ctx, 400, sentence);
        return Flow::Done;
    };
    let timeout = match decimal_param(head.query, "timeout") {
        Ok(None) => DEFAULT_POLL_S,
        Ok(Some(s)) if s <= MAX_POLL_S => s,
        _ => {
            let sentence = "timeout must be a whole number of seconds from 0 to 120";
            http::respond_error(app, io, id, ctx, 400, sentence);
            return Flow::Done;
        }
    };
    let ch = match ready_channel(app, io, id, ctx, name, after) {
        Ok(ch) => ch,
        Err(flow) => return flow,
    };
    // Without `after`: only what is published from now on.
    let cursor = after.unwrap_or(app.hub.get(ch).last_id);
    let c = app.hub.get(ch);
    let r = c.resume(cursor);
    if r.truncated || r.start < c.history.len() || timeout == 0 {
        let body = poll_answer(app, ch, cursor);
        app.hub.release_if_unused(ch);
        http::respond_json(app, io, id, ctx, 200, &body);
        return Flow::Done;
    }
    let on = ParkedOn::Channel {
        channel: ch,
        after: cursor,
    };
    longpoll::park(app, io, id, ctx, on, Duration::from_secs(timeout))
}

/// `{"messages":[...],"last":N}` for a poll after `after`, plus
/// `"truncated":true` when history does not reach back to it. At most 100
/// messages and about `--send-buffer-bytes` of body (always at least one
/// message): `last` says where the next poll goes on.
pub fn poll_answer(app: &App, ch: usize, after: u64) -> String {
    let budget = app.cfg.send_buffer_bytes;
    let c = app.hub.get(ch);
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
            if out.len() + m.data.len() > budget {
                break;
            }
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

// ----- replays -------------------------------------------------------------------

/// Sends a resuming subscriber (SSE `Last-Event-ID`, WebSocket `after=`) the
/// history after its cursor as its connection drains: never more than about
/// `--send-buffer-bytes` queued at once, so a client that asks for a large
/// replay and stops reading holds that much, not the whole history.
///
/// ```text
///  cursor 3, history 4..900:  queue 4..40 (budget) ─► drained ─► 41..77 ─► ... 900: live
///  published meanwhile: skipped by `deliver`, reached here in order, once
///  evicted before the cursor got there: a `truncated` notice, then on from the oldest
/// ```
pub fn replay(app: &mut App, io: &mut Io, id: ConnId) {
    let (ch, cursor, is_ws) = match io.state(id).map(|s| &s.kind) {
        Some(Kind::Ws(WsSession {
            replay: Some(cursor),
            role: WsRole::Channel(ch),
            ..
        })) => (*ch, *cursor, true),
        Some(Kind::Sse(SseStream {
            replay: Some(cursor),
            source: SseSource::Channel(ch),
        })) => (*ch, *cursor, false),
        _ => return,
    };
    let budget = app.cfg.send_buffer_bytes;
    let backlog = io.backlog(id);
    let agreed = websocket::agreed(io, id);
    let peer = io.peer(id);
    let (trace, compression) = (app.trace, &mut app.compression);
    // A replay is one connection's own: its messages are compressed for
    // it alone (when it agreed to compression), not shared. Each message
    // is compressed on its own (no context takeover), so this costs what
    // a live delivery would, once per resuming client.
    let mut push_frame = |out: &mut Vec<u8>, payload: &[u8]| {
        let z = compression.write_frame(agreed, opcode::TEXT, payload, out);
        let wire_len = z.unwrap_or(payload.len());
        trace.sent_frame(peer, opcode::TEXT, z.is_some(), wire_len, payload);
    };
    let c = app.hub.get(ch);
    let r = c.resume(cursor);
    let mut out = Vec::new();
    // `last`: the id the client has everything up to once `out` is sent.
    let mut last = cursor;
    if r.truncated {
        if is_ws {
            let text = format!(
                "{{\"truncated\":true,\"after\":{cursor},\"oldest\":{}}}",
                r.oldest
            );
            push_frame(&mut out, text.as_bytes());
        } else {
            let data = format!("{{\"after\":{cursor},\"oldest\":{}}}", r.oldest);
            crate::wire::sse::write_event(&mut out, Some("truncated"), None, &data);
        }
        last = r.oldest - 1;
    }
    let mut sent_one = false;
    for m in c.history.range(r.start..) {
        if sent_one && backlog + out.len() >= budget {
            break;
        }
        if is_ws {
            push_frame(&mut out, &ws_message_payload(m));
        } else {
            write_sse_message(&mut out, m);
        }
        last = m.id;
        sent_one = true;
    }
    let done = last >= c.last_id;
    if !is_ws {
        app.trace.sse(io.peer(id), &out);
    }
    io.send(id, &out);
    let next = (!done).then_some(last);
    match io.state_mut(id).map(|s| &mut s.kind) {
        Some(Kind::Ws(ws)) => ws.replay = next,
        Some(Kind::Sse(st)) => st.replay = next,
        _ => {}
    }
    if !done {
        io.notify_when_drained(id);
    }
}

// ----- Server-Sent Events ------------------------------------------------------

/// `GET /channels/{ch}/events`: an event stream, replaying from
/// `Last-Event-ID` (or `?lastEventId=` on a first connect) first.
pub fn events(
    app: &mut App,
    io: &mut Io,
    id: ConnId,
    ctx: Ctx<'_>,
    head: &Head<'_, '_>,
    name: &str,
    grant: access::Grant,
) -> Flow {
    // The header wins when both are present: it is what a browser's
    // EventSource sends on its own reconnects (WHATWG HTML 9.2.3).
    let last = match head.header("last-event-id") {
        Some(v) => match query::parse_decimal(v) {
            Some(n) => Some(n),
            None if v.is_empty() => None,
            None => {
                http::respond_error(app, io, id, ctx, 400, "Last-Event-ID must be a message id");
                return Flow::Done;
            }
        },
        None => match decimal_param(head.query, "lastEventId") {
            Ok(n) => n,
            Err(()) => {
                http::respond_error(app, io, id, ctx, 400, "lastEventId must be a message id");
                return Flow::Done;
            }
        },
    };
    let ch = match ready_channel(app, io, id, ctx, name, last) {
        Ok(ch) => ch,
        Err(flow) => return flow,
    };
    if !sse::start(app, io, id, ctx, SseSource::Channel(ch)) {
        app.hub.release_if_unused(ch);
        return Flow::Done;
    }
    access::arm_expiry(io, id, grant);
    if let Some(after) = last {
        if let Some(Kind::Sse(st)) = io.state_mut(id).map(|s| &mut s.kind) {
            st.replay = Some(after);
        }
    }
    app.hub.subscribe(ch, id);
    replay(app, io, id);
    app.trace.event(
        io.peer(id),
        format_args!("event stream subscribed to {name}"),
    );
    Flow::Done
}

// ----- WebSocket ---------------------------------------------------------------

/// `GET /channels/{ch}/ws[?after=N]`: upgrade, replay, subscribe.
pub fn ws(
    app: &mut App,
    io: &mut Io,
    id: ConnId,
    ctx: Ctx<'_>,
    head: &Head<'_, '_>,
    name: &str,
    grant: access::Grant,
) -> Flow {
    // docs/api.md: a bad `after` is refused before any upgrade.
    let Ok(after) = decimal_param(head.query, "after") else {
        let sentence = "after must be a non-negative whole number";
        http::respond_error(app, io, id, ctx, 400, sentence);
        return Flow::Done;
    };
    let ch = match ready_channel(app, io, id, ctx, name, after) {
        Ok(ch) => ch,
        Err(flow) => return flow,
    };
    if !websocket::upgrade(app, io, id, ctx, head, WsRole::Channel(ch)) {
        app.hub.release_if_unused(ch);
        return Flow::Done;
    }
    if let Some(Kind::Ws(ws)) = io.state_mut(id).map(|s| &mut s.kind) {
        ws.may_publish = grant.may_publish;
    }
    access::arm_expiry(io, id, grant);
    if let Some(after) = after {
        if let Some(Kind::Ws(ws)) = io.state_mut(id).map(|s| &mut s.kind) {
            ws.replay = Some(after);
        }
    }
    app.hub.subscribe(ch, id);
    replay(app, io, id);
    Flow::Done
}

/// A text message from a channel's WebSocket is published to it (the sender
/// receives it too). An empty message is not published.
pub fn ws_publish(app: &mut App, io: &mut Io, id: ConnId, ch: usize, text: &str) {
    if text.is_empty() {
        return;
    }
    if let Err(e) = publish(app, io, ch, text) {
        // No request to answer 503 to: the client is told in a frame.
        app.trace
            .event(io.peer(id), format_args!("publish refused: {e}"));
        let body = http::error_body(&e);
        websocket::send(app, io, id, opcode::TEXT, body.as_bytes());
    }
}

/// The text message `{"id":8,"data":"hi"}` for a message.
fn ws_message_payload(m: &Stored) -> Vec<u8> {
    let mut payload = Vec::with_capacity(m.data.len() + 24);
    payload.extend_from_slice(b"{\"id\":");
    crate::wire::http1::push_decimal(&mut payload, m.id);
    payload.extend_from_slice(b",\"data\":");
    json::write_str(&mut payload, &m.data);
    payload.push(b'}');
    payload
}

fn write_sse_message(out: &mut Vec<u8>, m: &Stored) {
    crate::wire::sse::write_event(out, None, Some(m.id), &m.data);
}

fn sse_message_event(m: &Stored) -> Vec<u8> {
    let mut out = Vec::with_capacity(m.data.len() + 24);
    write_sse_message(&mut out, m);
    out
}
