//! `--trace`: a narration of every protocol unit as it crosses the wire, on
//! stderr, one line each, tagged with the peer's address and a direction:
//!
//! ```text
//! 127.0.0.1:50312 -> GET /echo HTTP/1.1 (Upgrade: websocket, ...)
//! 127.0.0.1:50312 <- HTTP/1.1 101 Switching Protocols
//! 127.0.0.1:50312 -> frame FIN=1 RSV=000 op=text(0x1) MASK=1 key=37fa213d len=5 (7-bit) | 7f9f4d5158 "Hello"
//! 127.0.0.1:50312 <- frame FIN=1 RSV=000 op=text(0x1) MASK=0 len=5 (7-bit) | 48656c6c6f "Hello"
//! 127.0.0.1:50312 .. long poll parked on job:3
//! ```
//!
//! `->` is from the peer, `<-` to the peer, `..` an event of the connection.
//! When `--trace` is off every call returns after one branch: no formatting,
//! no allocation.

use std::fmt::Write as _;
use std::net::SocketAddr;

use crate::net::Server;
use crate::wire::ws_frame::{self, FrameHeader};

/// How many payload bytes a frame line shows.
const PREVIEW: usize = 16;

/// Writes one trace line.
pub fn line(peer: SocketAddr, dir: &str, text: &str) {
    eprintln!("{peer} {dir} {text}");
}

/// An event of connection `key` (`..`).
///
/// Takes anything printable, so callers pass `format_args!(...)`: the text
/// is only formatted when `--trace` is on.
pub fn event(s: &Server, key: usize, text: impl std::fmt::Display) {
    if s.cfg.trace {
        if let Some(c) = s.conns.get(key) {
            line(c.peer, "..", &text.to_string());
        }
    }
}

/// An HTTP head (request or response): its first line, then its header
/// names and values folded onto the same line.
pub fn http_head(s: &Server, key: usize, dir: &str, head: &[u8]) {
    if !s.cfg.trace {
        return;
    }
    let Some(c) = s.conns.get(key) else { return };
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n").filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or("");
    let rest: Vec<&str> = lines.collect();
    if rest.is_empty() {
        line(c.peer, dir, first);
    } else {
        line(c.peer, dir, &format!("{first} ({})", rest.join(", ")));
    }
}

/// A WebSocket frame: the header field by field, then the first payload
/// bytes in hex and as text.
pub fn frame(s: &Server, key: usize, dir: &str, h: &FrameHeader, payload: &[u8]) {
    if !s.cfg.trace {
        return;
    }
    let Some(c) = s.conns.get(key) else { return };
    line(
        c.peer,
        dir,
        &format!("frame {} | {}", ws_frame::describe(h), preview(payload)),
    );
}

/// A frame we send, described from its parts.
pub fn sent_frame(s: &Server, key: usize, op: u8, payload: &[u8]) {
    if s.cfg.trace {
        let h = FrameHeader {
            fin: true,
            rsv: 0,
            opcode: op,
            mask: None,
            payload_len: payload.len() as u64,
        };
        frame(s, key, "<-", &h, payload);
    }
}

/// Frames we send that are already encoded (a broadcast, a replay): each
/// header decoded again, so the trace shows exactly what leaves.
pub fn encoded_frames(s: &Server, key: usize, mut bytes: &[u8]) {
    if !s.cfg.trace {
        return;
    }
    while let Ok(crate::wire::Status::Complete((h, n))) = ws_frame::parse_header(bytes) {
        let end = (n as u64 + h.payload_len).min(bytes.len() as u64) as usize;
        frame(s, key, "<-", &h, &bytes[n..end]);
        bytes = &bytes[end..];
    }
}

/// An SSE event or comment we send, with its lines joined by `\n`.
pub fn sse(s: &Server, key: usize, bytes: &[u8]) {
    if s.cfg.trace {
        if let Some(c) = s.conns.get(key) {
            let text = String::from_utf8_lossy(bytes);
            line(
                c.peer,
                "<-",
                &format!("sse {:?}", text.trim_end_matches('\n')),
            );
        }
    }
}

/// `48656c6c6f "Hello"` (at most `PREVIEW` bytes, `...` when cut).
pub fn preview(payload: &[u8]) -> String {
    let shown = &payload[..payload.len().min(PREVIEW)];
    let mut s = String::with_capacity(shown.len() * 3 + 8);
    for b in shown {
        let _ = write!(s, "{b:02x}");
    }
    let text: String = shown
        .iter()
        .map(|&b| {
            if (0x20..0x7f).contains(&b) {
                b as char
            } else {
                '.'
            }
        })
        .collect();
    let more = if payload.len() > PREVIEW { "..." } else { "" };
    let _ = write!(s, "{more} \"{text}{more}\"");
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn preview_shows_hex_and_text() {
        assert_eq!(super::preview(b"Hello"), "48656c6c6f \"Hello\"");
        assert_eq!(super::preview(&[0, 255]), "00ff \"..\"");
        assert!(super::preview(&[b'a'; 40]).ends_with("...\""));
    }
}
