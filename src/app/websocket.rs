//! WebSocket connections on the loop: the upgrade, then frames both ways
//! (RFC 6455). The codecs are in `wire::ws_*`, the per-connection protocol
//! state in `proto::ws`; this file connects them to sockets and to the
//! three things a WebSocket can be here: echo, chat, channel subscriber.

use std::sync::Arc;

use super::http::Ctx;
use crate::net::conn::{Kind, Wait, WsRole, WsSession};
use crate::net::timer::Slot;
use crate::net::{CloseReason, Server, Step};
use crate::proto::ws::{CloseState, Message, MessageReader, Progress};
use crate::wire::http1::Head;
use crate::wire::ws_frame::{self, opcode};
use crate::wire::{ws_close, ws_handshake};

impl Server {
    /// Answers an upgrade request: `101 Switching Protocols`, or the error
    /// that says why not. After the 101 the connection speaks frames.
    pub(crate) fn upgrade(
        &mut self,
        key: usize,
        ctx: Ctx<'_>,
        head: &Head<'_, '_>,
        role: WsRole,
    ) -> bool {
        let accept_key = match ws_handshake::validate(head) {
            // HEAD cannot switch protocols; it gets the head GET would get
            // without an upgrade.
            Ok(_) if ctx.head_only => {
                self.refuse_upgrade(key, ctx, ws_handshake::HandshakeError::NotAnUpgrade);
                return false;
            }
            Ok(k) => k,
            Err(e) => {
                self.refuse_upgrade(key, ctx, e);
                return false;
            }
        };
        let Some(c) = self.conns.get_mut(key) else {
            return false;
        };
        let mut out = c.out.owned_tail();
        let start = out.len();
        ws_handshake::write_101(&mut out, accept_key);
        let head_bytes = self.cfg.trace.then(|| out[start..].to_vec());
        drop(out);
        c.kind = Kind::Ws(WsSession {
            reader: MessageReader::new(self.cfg.max_message_bytes),
            close: CloseState::Open,
            role,
            awaiting_pong: false,
        });
        if let Some(h) = head_bytes {
            crate::trace::http_head(self, key, "<-", &h);
        }
        // API.md: --idle-timeout-ms is for HTTP keep-alive only; an open
        // WebSocket is kept alive by pings instead.
        self.set_wait(key, Wait::None, None);
        let next_ping = self.now + self.cfg.ws_ping;
        self.set_deadline(key, Slot::Tick, Some(next_ping));
        self.mark_dirty(key);
        true
    }

    /// 426 with the headers that tell the client how to upgrade (RFC 6455
    /// section 4.4 for the version), or 400 for a bad key.
    fn refuse_upgrade(&mut self, key: usize, ctx: Ctx<'_>, e: ws_handshake::HandshakeError) {
        let body = super::http::error_body(e.sentence());
        let headers: &[(&str, &str)] = if e.status() == 426 {
            &[
                ("Upgrade", "websocket"),
                ("Sec-WebSocket-Version", ws_handshake::VERSION),
            ]
        } else {
            &[]
        };
        self.respond_full(
            key,
            ctx,
            e.status(),
            Some(super::http::JSON),
            headers,
            body.as_bytes(),
        );
    }

    /// Takes frames off `buf` until a message completes or more bytes are
    /// needed, and acts on that message.
    pub(crate) fn ws_step(&mut self, key: usize, buf: &mut [u8]) -> Step {
        let Some(c) = self.conns.get_mut(key) else {
            return Step::NeedMore;
        };
        let Kind::Ws(ws) = &mut c.kind else {
            return Step::NeedMore;
        };
        // The reader is moved out while the message it returns is handled,
        // so the handler can use the whole server (broadcasts reach other
        // connections). `MessageReader::new` does not allocate.
        let mut reader = std::mem::replace(&mut ws.reader, MessageReader::new(0));
        let (role, state) = (ws.role, ws.close);
        // For the trace: the header of the frame that starts here, if any.
        let header = match self.cfg.trace && reader.at_frame_start() {
            true => match ws_frame::parse_header(buf) {
                Ok(crate::wire::Status::Complete(x)) => Some(x),
                _ => None,
            },
            false => None,
        };
        let step = match reader.poll(buf) {
            Err(e) => {
                if let Some((h, _)) = header {
                    crate::trace::frame(self, key, "->", &h, &[]);
                }
                crate::trace::event(self, key, format_args!("protocol error: {e}"));
                self.ws_fail(key, e.close_code(), &e.to_string());
                Step::Consumed(buf.len())
            }
            Ok(Progress::NeedMore) => Step::NeedMore,
            Ok(Progress::Consumed(n)) => {
                // A fragment, or the start of a frame still arriving: show
                // the payload bytes that came with it (unmasked in place).
                if let Some((h, hl)) = header {
                    crate::trace::frame(self, key, "->", &h, buf.get(hl..n).unwrap_or(&[]));
                }
                Step::Consumed(n)
            }
            Ok(Progress::Message(n, msg)) => {
                if self.cfg.trace {
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
                        crate::trace::frame(self, key, "->", &h, payload);
                    }
                }
                self.ws_message(key, role, state, msg);
                Step::Consumed(n)
            }
        };
        if let Some(Kind::Ws(ws)) = self.conns.get_mut(key).map(|c| &mut c.kind) {
            ws.reader = reader;
        }
        step
    }

    fn ws_message(&mut self, key: usize, role: WsRole, state: CloseState, msg: Message<'_>) {
        match msg {
            // Section 5.5.2: "Upon receipt of a Ping frame, an endpoint MUST
            // send a Pong frame in response ... with identical Application
            // data".
            Message::Ping(p) => self.ws_send(key, opcode::PONG, p),
            // Section 5.5.3: an unsolicited pong needs no answer; any pong
            // shows the peer is alive.
            Message::Pong(_) => {
                if let Some(Kind::Ws(ws)) = self.conns.get_mut(key).map(|c| &mut c.kind) {
                    ws.awaiting_pong = false;
                }
            }
            Message::Close(code) => self.ws_peer_closed(key, state, code),
            // After our close, data frames are read and dropped (7.1.2).
            _ if state == CloseState::CloseSent => {}
            Message::Text(t) => match role {
                WsRole::Echo => self.ws_send(key, opcode::TEXT, t.as_bytes()),
                WsRole::Chat => self.chat_say(key, t),
                WsRole::Channel(ch) => self.ws_publish(key, ch, t),
            },
            Message::Binary(b) => match role {
                WsRole::Echo => self.ws_send(key, opcode::BINARY, b),
                // API.md: chat and channels carry text only (section 7.4.1:
                // 1003, "a type of data it cannot accept").
                WsRole::Chat | WsRole::Channel(_) => {
                    self.stats.closed.protocol += 1;
                    self.ws_close(
                        key,
                        ws_close::UNSUPPORTED_DATA,
                        "binary messages are not accepted here",
                        // Not a protocol failure: a normal close, so the
                        // peer's close is awaited (section 7.1.2).
                        true,
                    )
                }
            },
        }
    }

    /// The peer sent a close frame.
    fn ws_peer_closed(&mut self, key: usize, state: CloseState, code: Option<(u16, &str)>) {
        if state == CloseState::CloseSent {
            // Our close was answered: the handshake is complete. Section
            // 7.1.1: the server closes the TCP connection first.
            crate::trace::event(self, key, "close handshake complete");
            self.finish(key);
            return;
        }
        // Section 5.5.1: answer with a close frame, "typically echoing the
        // status code it received". An empty close gets an empty close.
        let mut payload = Vec::with_capacity(2);
        if let Some((code, _)) = code {
            payload.extend_from_slice(&code.to_be_bytes());
        }
        self.ws_send(key, opcode::CLOSE, &payload);
        self.finish(key);
    }

    /// Starts the closing handshake from our side with `code`. With
    /// `wait_for_peer`, the connection waits (up to the close timeout) for
    /// the peer's close; otherwise it ends once the frame is written.
    pub(crate) fn ws_close(&mut self, key: usize, code: u16, reason: &str, wait_for_peer: bool) {
        let mut payload = Vec::with_capacity(2 + reason.len());
        ws_close::write(&mut payload, code, reason);
        self.ws_send(key, opcode::CLOSE, &payload);
        if wait_for_peer {
            if let Some(Kind::Ws(ws)) = self.conns.get_mut(key).map(|c| &mut c.kind) {
                ws.close = CloseState::CloseSent;
            }
            self.set_wait(key, Wait::CloseHandshake, Some(self.cfg.close_timeout));
            self.set_deadline(key, Slot::Tick, None);
        } else {
            self.finish(key);
        }
    }

    /// _Fail the WebSocket Connection_ (section 7.1.7): send a close with
    /// the error's code, then close without reading further.
    fn ws_fail(&mut self, key: usize, code: u16, reason: &str) {
        if matches!(code, 1002 | 1003 | 1007 | 1009) {
            self.stats.closed.protocol += 1;
        }
        self.ws_close(key, code, reason, false);
    }

    /// Queues one unmasked frame (section 5.1: servers never mask).
    pub(crate) fn ws_send(&mut self, key: usize, op: u8, payload: &[u8]) {
        crate::trace::sent_frame(self, key, op, payload);
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        let len = ws_frame::header_len(payload.len() as u64, false) + payload.len();
        ws_frame::write_frame(&mut c.out.owned_tail_for(len), op, payload);
        self.mark_dirty(key);
    }

    /// Queues bytes shared with other connections (a broadcast frame or
    /// event, encoded once). A subscriber whose backlog passes
    /// `--send-buffer-bytes` is marked slow and cut at the next flush.
    pub(crate) fn send_shared(&mut self, key: usize, bytes: &Arc<[u8]>) {
        let limit = self.cfg.send_buffer_bytes;
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        if c.phase != crate::net::conn::Phase::Active {
            return;
        }
        c.out.push_shared(bytes.clone());
        if c.out.len() > limit {
            c.slow = true;
        }
        self.stats.delivered += 1;
        self.mark_dirty(key);
    }

    /// Every `--ws-ping-ms`: ping, or close 1001 if the last ping is still
    /// unanswered (API.md section 3).
    pub(crate) fn ws_ping_tick(&mut self, key: usize) {
        let Some(Kind::Ws(ws)) = self.conns.get_mut(key).map(|c| &mut c.kind) else {
            return;
        };
        if ws.close != CloseState::Open {
            return;
        }
        if ws.awaiting_pong {
            crate::trace::event(self, key, "no pong since the last ping: closing 1001");
            self.stats.closed.timeout += 1;
            self.ws_close(key, ws_close::GOING_AWAY, "ping timeout", false);
            return;
        }
        ws.awaiting_pong = true;
        self.ws_send(key, opcode::PING, b"pushwire");
        let next = self.now + self.cfg.ws_ping;
        self.set_deadline(key, Slot::Tick, Some(next));
    }

    /// A slow subscriber is cut: a close 1008 if the kernel still takes it,
    /// then the connection ends (API.md section 3, "Slow consumers").
    pub(crate) fn cut_slow(&mut self, key: usize) {
        crate::trace::event(self, key, "output passed --send-buffer-bytes: cut as slow");
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        if let Kind::Ws(_) = c.kind {
            // Only if nothing of an earlier frame is half-written would the
            // close frame be well-formed; the queue's front is written first.
            let mut frame = Vec::with_capacity(32);
            let mut payload = Vec::with_capacity(24);
            ws_close::write(&mut payload, ws_close::POLICY, "too slow");
            ws_frame::write_frame(&mut frame, opcode::CLOSE, &payload);
            c.out.push_bytes(&frame);
            let _ = c.out.flush_to(&mut c.stream);
        }
        self.stats.closed.slow += 1;
        self.close_now(key, CloseReason::Slow);
    }
}
