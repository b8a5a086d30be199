//! `--trace`: a narration of every protocol unit as it crosses the wire, on
//! stderr, one line each, tagged with the peer's address and a direction:
//!
//! ```text
//! 127.0.0.1:50312 -> GET /echo HTTP/1.1 (Upgrade: websocket, ...)
//! 127.0.0.1:50312 <- HTTP/1.1 101 Switching Protocols
//! 127.0.0.1:50312 -> frame FIN=1 RSV=000 op=text(0x1) MASK=1 key=37fa213d len=5 (7-bit) | 7f9f4d5158 "Hello"
//! 127.0.0.1:50312 <- frame FIN=1 RSV=000 op=text(0x1) MASK=0 len=5 (7-bit) | 48656c6c6f "Hello"
//! 127.0.0.1:50312 <- frame FIN=1 RSV=100 op=text(0x1) MASK=0 len=21 (7-bit) | deflate 21 B, inflated 300 B: 7b226964223a312c... "{"id":1,..."
//! 127.0.0.1:50312 .. long poll parked on job:3
//! ```
//!
//! A compressed message (RSV1, `permessage-deflate`) shows its header as
//! it was on the wire (`len` is the compressed size), both sizes, and the
//! first bytes of the inflated message.
//!
//! `->` is from the peer, `<-` to the peer, `..` an event of the connection.
//! When `--trace` is off every call returns after one branch: no formatting,
//! no allocation.

use std::fmt::Write as _;
use std::net::SocketAddr;

use crate::wire::ws_frame::{self, FrameHeader};

/// How many payload bytes a frame line shows.
const PREVIEW: usize = 16;

/// Writes one trace line.
pub fn line(peer: SocketAddr, dir: &str, text: &str) {
    eprintln!("{peer} {dir} {text}");
}

/// The narrator: on or off, decided once at start. Every method takes the
/// peer the unit belongs to (`None` when that connection is gone: nothing
/// is printed) and the unit itself; none of them knows the server.
#[derive(Debug, Clone, Copy, Default)]
pub struct Trace {
    pub on: bool,
}

impl Trace {
    pub fn new(on: bool) -> Self {
        Trace { on }
    }

    /// An event of a connection (`..`).
    ///
    /// Takes anything printable, so callers pass `format_args!(...)`: the
    /// text is only formatted when `--trace` is on.
    pub fn event(self, peer: Option<SocketAddr>, text: impl std::fmt::Display) {
        if let (true, Some(peer)) = (self.on, peer) {
            line(peer, "..", &text.to_string());
        }
    }

    /// A name lookup (`app/lookup.rs`): asked, answered (with which
    /// addresses), which address is used, timed out. No connection exists
    /// yet, so the line is tagged with the name and port looked up where a
    /// connection's lines have its peer:
    /// `cache.example:6379 .. dns: answered 10.0.0.5:6379; using 10.0.0.5:6379`.
    pub fn lookup(self, host: &str, port: u16, text: impl std::fmt::Display) {
        if self.on {
            eprintln!("{host}:{port} .. dns: {text}");
        }
    }

    /// An HTTP head (request or response): its first line, then its header
    /// names and values folded onto the same line.
    pub fn http_head(self, peer: Option<SocketAddr>, dir: &str, head: &[u8]) {
        let (true, Some(peer)) = (self.on, peer) else {
            return;
        };
        let text = String::from_utf8_lossy(head);
        let mut lines = text.split("\r\n").filter(|l| !l.is_empty());
        let first = redact_request_line(lines.next().unwrap_or(""));
        let rest: Vec<std::borrow::Cow<'_, str>> = lines.map(redact_header).collect();
        if rest.is_empty() {
            line(peer, dir, &first);
        } else {
            line(peer, dir, &format!("{first} ({})", rest.join(", ")));
        }
    }

    /// A WebSocket frame: the header (of `header_len` bytes on the wire)
    /// field by field, then the first payload bytes in hex and as text.
    pub fn frame(
        self,
        peer: Option<SocketAddr>,
        dir: &str,
        h: &FrameHeader,
        header_len: usize,
        payload: &[u8],
    ) {
        if let (true, Some(peer)) = (self.on, peer) {
            line(
                peer,
                dir,
                &format!(
                    "frame {} | {}",
                    ws_frame::describe(h, header_len),
                    preview(payload)
                ),
            );
        }
    }

    /// A compressed message's (last) frame: the header as on the wire, the
    /// compressed size of the whole message and its inflated size, then
    /// the first inflated bytes.
    pub fn compressed_frame(
        self,
        peer: Option<SocketAddr>,
        dir: &str,
        h: &FrameHeader,
        header_len: usize,
        compressed_len: usize,
        inflated: &[u8],
    ) {
        if let (true, Some(peer)) = (self.on, peer) {
            line(
                peer,
                dir,
                &compressed_text(h, header_len, compressed_len, inflated),
            );
        }
    }

    /// A frame we send, described from its parts: `wire_len` payload bytes
    /// on the wire; with `rsv1`, those are `payload` compressed.
    pub fn sent_frame(
        self,
        peer: Option<SocketAddr>,
        op: u8,
        rsv1: bool,
        wire_len: usize,
        payload: &[u8],
    ) {
        if self.on {
            let h = FrameHeader {
                fin: true,
                rsv: if rsv1 { ws_frame::RSV1 } else { 0 },
                opcode: op,
                mask: None,
                payload_len: wire_len as u64,
            };
            let hl = ws_frame::header_len(h.payload_len, false);
            if rsv1 {
                self.compressed_frame(peer, "<-", &h, hl, wire_len, payload);
            } else {
                self.frame(peer, "<-", &h, hl, payload);
            }
        }
    }

    /// An SSE event or comment we send, with its lines joined by `\n`.
    pub fn sse(self, peer: Option<SocketAddr>, bytes: &[u8]) {
        if let (true, Some(peer)) = (self.on, peer) {
            let text = String::from_utf8_lossy(bytes);
            line(
                peer,
                "<-",
                &format!("sse {:?}", text.trim_end_matches('\n')),
            );
        }
    }
}

/// `frame FIN=1 RSV=100 ... len=7 (7-bit) | deflate 7 B, inflated 5 B: ...`.
fn compressed_text(
    h: &FrameHeader,
    header_len: usize,
    compressed_len: usize,
    inflated: &[u8],
) -> String {
    format!(
        "frame {} | deflate {compressed_len} B, inflated {} B: {}",
        ws_frame::describe(h, header_len),
        inflated.len(),
        preview(inflated)
    )
}

/// A request line with any `access_token` value replaced by `…`: tokens
/// never appear in the trace (docs/api.md section 8).
fn redact_request_line(first: &str) -> std::borrow::Cow<'_, str> {
    let mut parts = first.splitn(3, ' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return first.into();
    };
    match crate::wire::bearer::redact_target(target) {
        std::borrow::Cow::Borrowed(_) => first.into(),
        std::borrow::Cow::Owned(t) => format!("{method} {t} {version}").into(),
    }
}

/// A header line with the value of `Authorization` (and
/// `Proxy-Authorization`) replaced.
fn redact_header(h: &str) -> std::borrow::Cow<'_, str> {
    let Some((name, value)) = h.split_once(':') else {
        return h.into();
    };
    let name_trimmed = name.trim();
    if name_trimmed.eq_ignore_ascii_case("authorization")
        || name_trimmed.eq_ignore_ascii_case("proxy-authorization")
    {
        let shown = crate::wire::bearer::redact_authorization(value.trim());
        format!("{name}: {shown}").into()
    } else {
        h.into()
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
    fn tokens_are_redacted_from_heads() {
        assert_eq!(
            super::redact_request_line("GET /channels/a/events?access_token=eyJx.y.z&x=1 HTTP/1.1"),
            "GET /channels/a/events?access_token=… HTTP/1.1".replace("… ", "…&x=1 ")
        );
        assert_eq!(
            super::redact_request_line("GET /x HTTP/1.1"),
            "GET /x HTTP/1.1"
        );
        assert_eq!(
            super::redact_header("Authorization: Bearer eyJx.y.z"),
            "Authorization: Bearer …"
        );
        assert_eq!(super::redact_header("Host: a"), "Host: a");
    }

    #[test]
    fn a_compressed_frame_shows_rsv1_and_both_sizes() {
        // RFC 7692 section 7.2.3.1: "Hello" in 7 compressed bytes.
        let h = crate::wire::ws_frame::FrameHeader {
            fin: true,
            rsv: crate::wire::ws_frame::RSV1,
            opcode: 1,
            mask: None,
            payload_len: 7,
        };
        assert_eq!(
            super::compressed_text(&h, 2, 7, b"Hello"),
            "frame FIN=1 RSV=100 op=text(0x1) MASK=0 len=7 (7-bit) \
             | deflate 7 B, inflated 5 B: 48656c6c6f \"Hello\""
        );
    }

    #[test]
    fn preview_shows_hex_and_text() {
        assert_eq!(super::preview(b"Hello"), "48656c6c6f \"Hello\"");
        assert_eq!(super::preview(&[0, 255]), "00ff \"..\"");
        assert!(super::preview(&[b'a'; 40]).ends_with("...\""));
    }
}
