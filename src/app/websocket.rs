//! WebSocket connections on the loop: the upgrade, then frames both ways
//! (RFC 6455). The codecs are in `wire::ws_*`, the per-connection protocol
//! state (messages, the closing handshake) in `proto::ws`; this file
//! connects them to the loop and to the three things a WebSocket can be
//! here: echo, chat, channel subscriber.

use std::sync::Arc;

use super::conn::{Kind, Wait, WsRole, WsSession};
use super::http::{self, Ctx};
use super::{channels, chat, set_wait, App, Io};
use crate::net::{CloseReason, ConnId, Slot, Step};
use crate::proto::ws::{CloseState, Message, MessageReader, PeerClose, Progress};
use crate::wire::http1::Head;
use crate::wire::ws_frame::{self, opcode};
use crate::wire::{ws_close, ws_handshake};

/// Answers an upgrade request: `101 Switching Protocols`, or the error that
/// says why not. After the 101 the connection speaks frames.
pub fn upgrade(
    app: &mut App,
    io: &mut Io,
    id: ConnId,
    ctx: Ctx<'_>,
    head: &Head<'_, '_>,
    role: WsRole,
) -> bool {
    let accept_key = match ws_handshake::validate(head) {
        // HEAD cannot switch protocols; it gets the head GET would get
        // without an upgrade.
        Ok(_) if ctx.head_only => {
            refuse_upgrade(app, io, id, ctx, ws_handshake::HandshakeError::NotAnUpgrade);
            return false;
        }
        Ok(k) => k,
        Err(e) => {
            refuse_upgrade(app, io, id, ctx, e);
            return false;
        }
    };
    let trace = app.trace;
    let peer = io.peer(id);
    let Some(output) = io.output(id) else {
        return false;
    };
    let mut out = output.owned_tail();
    let start = out.len();
    ws_handshake::write_101(&mut out, accept_key);
    trace.http_head(peer, "<-", &out[start..]);
    drop(out);
    if let Some(s) = io.state_mut(id) {
        s.kind = Kind::Ws(WsSession {
            reader: MessageReader::new(app.cfg.max_message_bytes),
            close: CloseState::Open,
            role,
            awaiting_pong: false,
            may_publish: true,
            replay: None,
        });
    }
    // API.md: --idle-timeout-ms is for HTTP keep-alive only; an open
    // WebSocket is kept alive by pings instead.
    set_wait(io, id, Wait::None, None);
    io.set_deadline_in(id, Slot::Tick, Some(app.cfg.ws_ping));
    true
}

/// 426 with the headers that tell the client how to upgrade (RFC 6455
/// section 4.4 for the version), or 400 for a bad key.
fn refuse_upgrade(
    app: &mut App,
    io: &mut Io,
    id: ConnId,
    ctx: Ctx<'_>,
    e: ws_handshake::HandshakeError,
) {
    let body = http::error_body(e.sentence());
    let headers: &[(&str, &str)] = if e.status() == 426 {
        &[
            ("Upgrade", "websocket"),
            ("Sec-WebSocket-Version", ws_handshake::VERSION),
        ]
    } else {
        &[]
    };
    http::respond_full(
        app,
        io,
        id,
        ctx,
        e.status(),
        Some(http::JSON),
        headers,
        body.as_bytes(),
    );
}

/// Takes frames off `buf` until a message completes or more bytes are
/// needed, and acts on that message.
pub fn frame_step(app: &mut App, io: &mut Io, id: ConnId, buf: &mut [u8]) -> Step {
    let Some(Kind::Ws(ws)) = io.state_mut(id).map(|s| &mut s.kind) else {
        return Step::NeedMore;
    };
    // The reader is moved out while the message it returns is handled, so
    // the handler can use the whole server (broadcasts reach other
    // connections). `MessageReader::new` does not allocate.
    let mut reader = std::mem::replace(&mut ws.reader, MessageReader::new(0));
    let (role, state, may_publish) = (ws.role, ws.close, ws.may_publish);
    let peer = io.peer(id);
    // For the trace: the header of the frame that starts here, if any.
    let header = match app.trace.on && reader.at_frame_start() {
        true => match ws_frame::parse_header(buf) {
            Ok(crate::wire::Status::Complete(x)) => Some(x),
            _ => None,
        },
        false => None,
    };
    let step = match reader.poll(buf) {
        Err(e) => {
            if let Some((h, _)) = header {
                app.trace.frame(peer, "->", &h, &[]);
            }
            app.trace.event(peer, format_args!("protocol error: {e}"));
            fail(app, io, id, e.close_code(), &e.to_string());
            Step::Consumed(buf.len())
        }
        Ok(Progress::NeedMore) => Step::NeedMore,
        Ok(Progress::Consumed(n)) => {
            // A fragment, or the start of a frame still arriving: show the
            // payload bytes that came with it (unmasked in place).
            if let Some((h, hl)) = header {
                app.trace
                    .frame(peer, "->", &h, buf.get(hl..n).unwrap_or(&[]));
            }
            Step::Consumed(n)
        }
        Ok(Progress::Message(n, msg)) => {
            if let Some((h, _)) = header {
                let payload: &[u8] = match &msg {
                    Message::Text(t) => t.as_bytes(),
                    Message::Binary(b) | Message::Ping(b) | Message::Pong(b) => b,
                    Message::Close(_) => &[],
                };
                let mut close = Vec::new();
                if let Message::Close(Some((code, reason))) = &msg {
                    ws_close::write(&mut close, *code, reason);
                }
                let payload = if close.is_empty() { payload } else { &close };
                app.trace.frame(peer, "->", &h, payload);
            }
            message(app, io, id, (role, state, may_publish), msg);
            Step::Consumed(n)
        }
    };
    if let Some(Kind::Ws(ws)) = io.state_mut(id).map(|s| &mut s.kind) {
        ws.reader = reader;
    }
    step
}

fn message(
    app: &mut App,
    io: &mut Io,
    id: ConnId,
    (role, state, may_publish): (WsRole, CloseState, bool),
    msg: Message<'_>,
) {
    match msg {
        // Section 5.5.2: "Upon receipt of a Ping frame, an endpoint MUST
        // send a Pong frame in response ... with identical Application
        // data".
        Message::Ping(p) => send(app, io, id, opcode::PONG, p),
        // Section 5.5.3: an unsolicited pong needs no answer; any pong
        // shows the peer is alive.
        Message::Pong(_) => {
            if let Some(Kind::Ws(ws)) = io.state_mut(id).map(|s| &mut s.kind) {
                ws.awaiting_pong = false;
            }
        }
        Message::Close(code) => peer_closed(app, io, id, state, code.map(|(c, _)| c)),
        // After our close, data frames are read and dropped (7.1.2).
        _ if !state.accepts_data() => {}
        Message::Text(t) => match role {
            WsRole::Echo => send(app, io, id, opcode::TEXT, t.as_bytes()),
            WsRole::Chat => chat::say(app, io, id, t),
            WsRole::Channel(ch) => {
                if may_publish {
                    channels::ws_publish(app, io, id, ch, t)
                } else {
                    // API.md section 8: a subscriber without the publish
                    // right that sends a text message is closed with 1008.
                    io.set_close_reason(id, CloseReason::Protocol);
                    let reason = "this token does not allow publishing";
                    close(app, io, id, ws_close::POLICY, reason, true)
                }
            }
        },
        Message::Binary(b) => match role {
            WsRole::Echo => send(app, io, id, opcode::BINARY, b),
            // API.md: chat and channels carry text only (section 7.4.1:
            // 1003, "a type of data it cannot accept"). Not a protocol
            // failure: a normal close, so the peer's close is awaited
            // (section 7.1.2).
            WsRole::Chat | WsRole::Channel(_) => {
                io.set_close_reason(id, CloseReason::Protocol);
                close(
                    app,
                    io,
                    id,
                    ws_close::UNSUPPORTED_DATA,
                    "binary messages are not accepted here",
                    true,
                )
            }
        },
    }
}

/// The peer sent a close frame: `proto::ws` says what we owe it.
fn peer_closed(app: &mut App, io: &mut Io, id: ConnId, state: CloseState, code: Option<u16>) {
    match state.on_peer_close(code) {
        PeerClose::HandshakeComplete => {
            app.trace.event(io.peer(id), "close handshake complete");
        }
        PeerClose::Answer(payload) => send(app, io, id, opcode::CLOSE, payload.bytes()),
    }
    // Section 7.1.1: the server closes the TCP connection first.
    io.finish(id, CloseReason::Normal);
}

/// Starts the closing handshake from our side with `code`. With
/// `wait_for_peer`, the connection waits (up to `--close-timeout-ms`) for
/// the peer's close; otherwise it ends once the frame is written.
pub fn close(app: &mut App, io: &mut Io, id: ConnId, code: u16, reason: &str, wait_for_peer: bool) {
    let mut payload = Vec::with_capacity(2 + reason.len());
    ws_close::write(&mut payload, code, reason);
    send(app, io, id, opcode::CLOSE, &payload);
    if wait_for_peer {
        if let Some(Kind::Ws(ws)) = io.state_mut(id).map(|s| &mut s.kind) {
            ws.close = CloseState::CloseSent;
        }
        set_wait(io, id, Wait::CloseHandshake, Some(app.cfg.close_timeout));
        io.set_deadline(id, Slot::Tick, None);
    } else {
        io.finish(id, CloseReason::Normal);
    }
}

/// _Fail the WebSocket Connection_ (section 7.1.7): send a close with the
/// error's code, then close without reading further.
fn fail(app: &mut App, io: &mut Io, id: ConnId, code: u16, reason: &str) {
    if matches!(code, 1002 | 1003 | 1007 | 1009) {
        io.set_close_reason(id, CloseReason::Protocol);
    }
    close(app, io, id, code, reason, false);
}

/// Queues one unmasked frame (section 5.1: servers never mask).
pub fn send(app: &mut App, io: &mut Io, id: ConnId, op: u8, payload: &[u8]) {
    app.trace.sent_frame(io.peer(id), op, payload);
    let Some(out) = io.output(id) else {
        return;
    };
    let len = ws_frame::header_len(payload.len() as u64, false) + payload.len();
    ws_frame::write_frame(&mut out.owned_tail_for(len), op, payload);
}

/// Queues a frame encoded once for many connections (a broadcast).
pub fn send_shared(app: &mut App, io: &mut Io, id: ConnId, frame: &Arc<[u8]>) {
    if io.send_shared(id, frame) {
        app.stats.delivered += 1;
    }
}

/// Every `--ws-ping-ms`: ping, or close 1001 if the last ping is still
/// unanswered (API.md section 3).
pub fn ping_tick(app: &mut App, io: &mut Io, id: ConnId) {
    let Some(Kind::Ws(ws)) = io.state_mut(id).map(|s| &mut s.kind) else {
        return;
    };
    if ws.close != CloseState::Open {
        return;
    }
    if ws.awaiting_pong {
        app.trace
            .event(io.peer(id), "no pong since the last ping: closing 1001");
        io.set_close_reason(id, CloseReason::Timeout);
        close(app, io, id, ws_close::GOING_AWAY, "ping timeout", false);
        return;
    }
    ws.awaiting_pong = true;
    send(app, io, id, opcode::PING, b"pushwire");
    io.set_deadline_in(id, Slot::Tick, Some(app.cfg.ws_ping));
}

/// A slow subscriber is cut: a close 1008 if the kernel still takes it,
/// then the connection ends (API.md section 3, "Slow consumers").
pub fn cut_slow(app: &mut App, io: &mut Io, id: ConnId) {
    app.trace.event(
        io.peer(id),
        "output passed --send-buffer-bytes: cut as slow",
    );
    if let Some(Kind::Ws(_)) = io.state(id).map(|s| &s.kind) {
        // Only if nothing of an earlier frame is half-written would the
        // close frame be well-formed; the queue's front is written first.
        let mut frame = Vec::with_capacity(32);
        let mut payload = Vec::with_capacity(24);
        ws_close::write(&mut payload, ws_close::POLICY, "too slow");
        ws_frame::write_frame(&mut frame, opcode::CLOSE, &payload);
        io.send(id, &frame);
    }
}
