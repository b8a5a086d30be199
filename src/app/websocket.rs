//! WebSocket connections on the loop: the upgrade, then frames both ways
//! (RFC 6455). The codecs are in `wire::ws_*`, the per-connection protocol
//! state (messages, the closing handshake) in `proto::ws`; this file
//! connects them to the loop and to the three things a WebSocket can be
//! here: echo, chat, channel subscriber.
//!
//! Compression (`permessage-deflate`, RFC 7692; `--deflate on`, the
//! default): the upgrade accepts a client's offer and the connection keeps
//! only what was agreed (`WsSession::deflate`, two bytes). The loop's one
//! [`Compression`] does the work for every connection: each message is
//! compressed or inflated on its own, from an empty window (no context
//! takeover either way, see `wire::ws_deflate`), so nothing of it needs to
//! outlive the message.
//!
//! ```text
//!   in:   frames ─► proto::ws::MessageReader ─(RSV1: inflate, Compression)─► message
//!   out:  send(payload) ─(agreed, data, >= MIN_COMPRESS_BYTES, smaller?)─► RSV1 frame
//!         Broadcast: the frame made once per form (plain, each window size), shared
//! ```

use std::sync::Arc;

use super::conn::{Kind, Wait, WsRole, WsSession};
use super::http::{self, Ctx};
use super::{channels, chat, set_wait, App, Io};
use crate::net::{CloseReason, ConnId, Slot, Step};
use crate::proto::ws::{CloseState, Inflate, Message, MessageReader, PeerClose, Progress};
use crate::wire::http1::Head;
use crate::wire::ws_deflate::{Agreed, Deflater, DEFAULT_LEVEL, MIN_COMPRESS_BYTES};
use crate::wire::ws_frame::{self, opcode};
use crate::wire::{ws_close, ws_handshake};

/// The loop's `permessage-deflate` machinery, shared by every connection:
/// one compressor (one per window size in use, made on first use), one
/// decompressor, and the buffer each works in. A connection holds no
/// compression state of its own.
pub struct Compression {
    deflater: Deflater,
    inflate: Inflate,
    /// Where an incoming compressed message is inflated; lent to
    /// `MessageReader::poll`, which hands the message out from it.
    inflated: Vec<u8>,
    /// Where an outgoing message is compressed before it is framed.
    deflated: Vec<u8>,
}

/// The two buffers keep at most this much capacity between messages, so
/// one large message does not pin its memory for the life of the process.
const KEEP_SCRATCH: usize = 1 << 20;

impl Default for Compression {
    fn default() -> Self {
        Self::new()
    }
}

impl Compression {
    pub fn new() -> Self {
        Compression {
            deflater: Deflater::new(DEFAULT_LEVEL),
            inflate: Inflate::new(),
            inflated: Vec::new(),
            deflated: Vec::new(),
        }
    }

    /// `payload` compressed for a connection that agreed `agreed`, when
    /// that is allowed and worth it: a data message (RFC 7692 section 6:
    /// never a control frame), of at least `MIN_COMPRESS_BYTES` (below,
    /// deflate does not save anything; see `ws_deflate`), whose compressed
    /// form is smaller. `None`: send it as it is.
    fn compress(&mut self, agreed: Option<Agreed>, op: u8, payload: &[u8]) -> Option<&[u8]> {
        let agreed = agreed?;
        if opcode::is_control(op) || payload.len() < MIN_COMPRESS_BYTES {
            return None;
        }
        if self.deflated.capacity() > KEEP_SCRATCH {
            self.deflated = Vec::new();
        }
        self.deflated.clear();
        let ok = self
            .deflater
            .compress(payload, agreed.window_bits(), &mut self.deflated);
        (ok && self.deflated.len() < payload.len()).then_some(&self.deflated[..])
    }

    /// Appends `payload` as one whole frame for a connection that agreed
    /// `agreed`: compressed with RSV1 set when [`Self::compress`] says so,
    /// else as it is. Returns the compressed size when it was compressed.
    pub fn write_frame(
        &mut self,
        agreed: Option<Agreed>,
        op: u8,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Option<usize> {
        match self.compress(agreed, op, payload) {
            Some(z) => {
                ws_frame::write_compressed_frame(out, op, z);
                Some(z.len())
            }
            None => {
                ws_frame::write_frame(out, op, payload);
                None
            }
        }
    }
}

/// One message for many WebSockets (a channel publish, a chat line): each
/// form of its frame is made once, on first need, and shared by every
/// connection that takes that form (`Io::send_shared`): the uncompressed
/// frame, and one compressed frame per window size in use (browsers do not
/// limit the window, so that is one in practice). Compressing a broadcast
/// costs one compression, however many subscribers.
pub struct Broadcast {
    op: u8,
    payload: Vec<u8>,
    plain: Option<Arc<[u8]>>,
    /// (window bits, frame, compressed size): the frame for connections
    /// that compress with that window; the plain frame when compressing
    /// did not pay (size `None`).
    compressed: Vec<(u8, Arc<[u8]>, Option<usize>)>,
}

impl Broadcast {
    pub fn new(op: u8, payload: Vec<u8>) -> Self {
        Broadcast {
            op,
            payload,
            plain: None,
            compressed: Vec::new(),
        }
    }

    fn plain(&mut self) -> Arc<[u8]> {
        let (op, payload) = (self.op, &self.payload);
        self.plain
            .get_or_insert_with(|| {
                let mut f = Vec::with_capacity(payload.len() + 10);
                ws_frame::write_frame(&mut f, op, payload);
                f.into()
            })
            .clone()
    }

    /// The frame for a connection that agreed `agreed`, and its compressed
    /// size if it is compressed.
    fn frame_for(
        &mut self,
        c: &mut Compression,
        agreed: Option<Agreed>,
    ) -> (Arc<[u8]>, Option<usize>) {
        let Some(a) = agreed else {
            return (self.plain(), None);
        };
        let bits = a.window_bits();
        if let Some((_, f, z)) = self.compressed.iter().find(|(b, _, _)| *b == bits) {
            return (f.clone(), *z);
        }
        let made = match c.compress(agreed, self.op, &self.payload) {
            Some(z) => {
                let mut f = Vec::with_capacity(z.len() + 10);
                ws_frame::write_compressed_frame(&mut f, self.op, z);
                (Arc::from(f), Some(z.len()))
            }
            None => (self.plain(), None),
        };
        self.compressed.push((bits, made.0.clone(), made.1));
        made
    }

    /// Queues the message on `id` in the form its connection agreed.
    /// Returns whether it was queued (see `Io::send_shared`).
    pub fn send(&mut self, app: &mut App, io: &mut Io, id: ConnId) -> bool {
        let agreed = agreed(io, id);
        let (frame, compressed) = self.frame_for(&mut app.compression, agreed);
        let wire_len = compressed.unwrap_or(self.payload.len());
        app.trace.sent_frame(
            io.peer(id),
            self.op,
            compressed.is_some(),
            wire_len,
            &self.payload,
        );
        send_shared(app, io, id, &frame)
    }
}

/// What the connection agreed on compression (`None`: not a compressed
/// WebSocket).
pub fn agreed(io: &Io, id: ConnId) -> Option<Agreed> {
    match io.state(id).map(|s| &s.kind) {
        Some(Kind::Ws(ws)) => ws.deflate,
        _ => None,
    }
}

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
    // RFC 7692 section 5: the first offer we can honour, or none (a
    // malformed or unusable offer declines the extension, never the
    // upgrade). Its answer goes in the 101.
    let deflate = match app.cfg.deflate {
        true => ws_handshake::deflate_offer(head),
        false => None,
    };
    let trace = app.trace;
    let peer = io.peer(id);
    let Some(output) = io.output(id) else {
        return false;
    };
    let mut out = output.owned_tail();
    let start = out.len();
    ws_handshake::write_101_with_extensions(&mut out, accept_key, deflate.as_ref());
    trace.http_head(peer, "<-", &out[start..]);
    drop(out);
    let max = app.cfg.max_message_bytes;
    if let Some(s) = io.state_mut(id) {
        s.kind = Kind::Ws(WsSession {
            reader: match deflate {
                Some(_) => MessageReader::with_deflate(max),
                None => MessageReader::new(max),
            },
            close: CloseState::Open,
            role,
            awaiting_pong: false,
            may_publish: true,
            replay: None,
            deflate,
        });
    }
    // docs/api.md: --idle-timeout-ms is for HTTP keep-alive only; an open
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
        true => match ws_frame::parse_header_with(buf, reader.extension_rsv()) {
            Ok(crate::wire::Status::Complete(x)) => Some(x),
            _ => None,
        },
        false => None,
    };
    // The loop's inflate buffer, lent for this step: a compressed message
    // is handed out from it (moved, not copied: an empty `Vec` is free).
    let mut inflated = std::mem::take(&mut app.compression.inflated);
    let step = match reader.poll(buf, &mut app.compression.inflate, &mut inflated) {
        Err(e) => {
            if let Some((h, hl)) = header {
                app.trace.frame(peer, "->", &h, hl, &[]);
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
                    .frame(peer, "->", &h, hl, buf.get(hl..n).unwrap_or(&[]));
            }
            Step::Consumed(n)
        }
        Ok(Progress::Message(n, msg)) => {
            if let Some((h, hl)) = header {
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
                match app.compression.inflate.last_compressed_len() {
                    Some(z) => app.trace.compressed_frame(peer, "->", &h, hl, z, payload),
                    None => app.trace.frame(peer, "->", &h, hl, payload),
                }
            }
            message(app, io, id, (role, state, may_publish), msg);
            Step::Consumed(n)
        }
    };
    inflated.clear();
    if inflated.capacity() <= KEEP_SCRATCH {
        app.compression.inflated = inflated;
    }
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
                    // docs/api.md section 8: a subscriber without the publish
                    // right that sends a text message is closed with 1008.
                    io.set_close_reason(id, CloseReason::Protocol);
                    let reason = "this token does not allow publishing";
                    close(app, io, id, ws_close::POLICY, reason, true)
                }
            }
        },
        Message::Binary(b) => match role {
            WsRole::Echo => send(app, io, id, opcode::BINARY, b),
            // docs/api.md: chat and channels carry text only (section 7.4.1:
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

/// Queues one unmasked frame (section 5.1: servers never mask), compressed
/// when the connection agreed to it and the message is worth it
/// ([`Compression::write_frame`]).
pub fn send(app: &mut App, io: &mut Io, id: ConnId, op: u8, payload: &[u8]) {
    let agreed = agreed(io, id);
    let peer = io.peer(id);
    let Some(out) = io.output(id) else {
        return;
    };
    // Enough for either form: the compressed one is only used if smaller.
    let len = ws_frame::header_len(payload.len() as u64, false) + payload.len();
    let compressed = app
        .compression
        .write_frame(agreed, op, payload, &mut out.owned_tail_for(len));
    let wire_len = compressed.unwrap_or(payload.len());
    app.trace
        .sent_frame(peer, op, compressed.is_some(), wire_len, payload);
}

/// Queues a frame encoded once for many connections (a broadcast).
/// Returns whether it was queued.
pub fn send_shared(app: &mut App, io: &mut Io, id: ConnId, frame: &Arc<[u8]>) -> bool {
    let queued = io.send_shared(id, frame);
    if queued {
        app.stats.delivered += 1;
    }
    queued
}

/// Every `--ws-ping-ms`: ping, or close 1001 if the last ping is still
/// unanswered (docs/api.md section 3).
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
/// then the connection ends (docs/api.md section 3, "Slow consumers").
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ws_deflate;

    fn agreed(offer: &str) -> Option<Agreed> {
        ws_deflate::negotiate([offer.as_bytes()])
    }

    #[test]
    fn a_broadcast_is_compressed_once_per_window_and_shared() {
        let mut c = Compression::new();
        let payload = br#"{"id":1,"data":"a message long enough to be worth compressing, and repetitive, repetitive"}"#;
        let mut b = Broadcast::new(opcode::TEXT, payload.to_vec());
        let browser = agreed("permessage-deflate; client_max_window_bits");
        let small = agreed("permessage-deflate; server_max_window_bits=10");
        let (z1, n1) = b.frame_for(&mut c, browser);
        let (z2, n2) = b.frame_for(&mut c, browser);
        assert!(
            Arc::ptr_eq(&z1, &z2),
            "the second subscriber shares the first's bytes"
        );
        assert_eq!(n1, n2);
        let n = n1.expect("compressed");
        assert!(n < payload.len());
        assert_eq!(z1[0], 0xC1, "FIN + RSV1 + text");
        let (p1, none) = b.frame_for(&mut c, None);
        let (p2, _) = b.frame_for(&mut c, None);
        assert!(Arc::ptr_eq(&p1, &p2) && none.is_none());
        assert_eq!(p1[0], 0x81);
        let (w10, _) = b.frame_for(&mut c, small);
        assert!(
            !Arc::ptr_eq(&w10, &z1),
            "another window, another compression"
        );
        assert_eq!(b.compressed.len(), 2);
    }

    #[test]
    fn short_or_incompressible_broadcasts_share_the_plain_frame() {
        let mut c = Compression::new();
        let browser = agreed("permessage-deflate");
        let mut b = Broadcast::new(opcode::TEXT, b"{\"id\":1,\"data\":\"hi\"}".to_vec());
        let (z, n) = b.frame_for(&mut c, browser);
        let (p, _) = b.frame_for(&mut c, None);
        assert!(
            n.is_none() && Arc::ptr_eq(&z, &p),
            "under MIN_COMPRESS_BYTES: plain"
        );
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let noise: Vec<u8> = (0..200)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
        let mut b = Broadcast::new(opcode::BINARY, noise);
        let (z, n) = b.frame_for(&mut c, browser);
        assert!(n.is_none(), "random bytes do not shrink");
        assert!(Arc::ptr_eq(&z, &b.plain()));
    }

    #[test]
    fn control_frames_are_never_compressed() {
        let mut c = Compression::new();
        let mut out = Vec::new();
        let z = c.write_frame(
            agreed("permessage-deflate"),
            opcode::PING,
            &[b'a'; 100],
            &mut out,
        );
        assert_eq!((z, out[0]), (None, 0x89));
    }
}
