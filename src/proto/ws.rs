//! The WebSocket protocol state of one connection (RFC 6455 sections 5-7),
//! driven by bytes in; the socket is the event loop's business.
//!
//! ```text
//!   bytes from TCP ──► MessageReader::poll ──► Message (text, binary,
//!                      (frames, fragments,      ping, pong, close)
//!                       masks, UTF-8, limits)
//!
//!   state:  Open ──(we send close)──► CloseSent ──(peer's close)──► TCP closed
//!             └────(peer sends close; we echo it)────────────────► TCP closed
//! ```
//!
//! Payload bytes are processed as they arrive, not when the whole frame is
//! in: a text message is unmasked and UTF-8-checked piece by piece, so
//! invalid text is refused at the first bad byte (section 8.1), even in the
//! middle of a frame. When a whole unfragmented frame is already in the read
//! buffer, it is unmasked in place and handed out as a borrowed slice: no
//! copy and no allocation on that, the common, path.
//!
//! Compressed messages (`permessage-deflate`, RFC 7692, when the handshake
//! agreed it: [`MessageReader::with_deflate`]) take another road. RSV1 on a
//! message's first frame says it is compressed (section 6); its payload
//! cannot be checked until it is inflated, and DEFLATE needs the whole
//! message, so:
//!
//! ```text
//!   RSV1 frame(s) ──► unmasked; one whole frame in the read buffer is used
//!                     in place, fragments are gathered in the reader's buffer
//!                     (at most --max-message-bytes of compressed bytes)
//!          FIN    ──► inflated once with the loop's one Inflater into the
//!                     loop's one output buffer, stopped the moment it would
//!                     pass --max-message-bytes (1009), then UTF-8-checked
//!                     whole (1007)
//! ```
//!
//! The inflater and its output buffer belong to the event loop and are
//! lent to `poll` (no decompressor lives per connection: see
//! `wire::ws_deflate`). Fragments are gathered per connection because the
//! one inflater cannot hold a connection's half-decoded stream while other
//! connections' messages pass through it. Messages without RSV1 stay on
//! the fast path above, on every connection.

use crate::wire::utf8::Utf8Validator;
use crate::wire::ws_close::{self, CloseError};
use crate::wire::ws_deflate::{InflateError, Inflater};
use crate::wire::ws_frame::{self, opcode, FrameError, RSV1};
use crate::wire::Status;

/// A complete message or control frame, borrowed from the read buffer or
/// from the reader's assembly buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Message<'a> {
    Text(&'a str),
    Binary(&'a [u8]),
    Ping(&'a [u8]),
    Pong(&'a [u8]),
    /// `None`: a close frame without a status code.
    Close(Option<(u16, &'a str)>),
}

/// What one call of `MessageReader::poll` achieved.
#[derive(Debug, PartialEq, Eq)]
pub enum Progress<'a> {
    /// Nothing can be done with these bytes yet; read more.
    NeedMore,
    /// The first `n` bytes were absorbed (a header, or part of a payload)
    /// without completing a message.
    Consumed(usize),
    /// The first `n` bytes completed this message.
    Message(usize, Message<'a>),
}

/// A rule of RFC 6455 the peer broke. Each variant maps to one close code
/// (`close_code`), in this one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WsError {
    /// A header-level rule (section 5.2, 5.5): 1002.
    Frame(FrameError),
    /// A client frame without a mask (section 5.1: "The server MUST close
    /// the connection upon receiving a frame that is not masked"): 1002.
    UnmaskedFrame,
    /// A continuation frame with no message to continue (section 5.4): 1002.
    UnexpectedContinuation,
    /// A new text/binary frame while a fragmented message is open
    /// (section 5.4): 1002.
    MessageInterrupted,
    /// A message larger than `--max-message-bytes` (section 7.4.1): 1009.
    MessageTooBig,
    /// A text message that is not UTF-8 (section 8.1): 1007.
    InvalidUtf8,
    /// A malformed close payload (section 5.5.1, 7.4): 1002 or 1007.
    BadClose(CloseError),
    /// RSV1 on a control frame (RFC 7692 section 6: the extension
    /// "operates only on data messages"; section 6.1: an endpoint that
    /// receives it "MUST _Fail the WebSocket Connection_"): 1002.
    CompressedControl,
    /// RSV1 on a continuation frame (RFC 7692 section 6.1: "An endpoint
    /// MUST NOT set the RSV1 bit on continuation frames"; only a message's
    /// first frame says whether it is compressed): 1002.
    CompressedContinuation,
    /// A compressed message that inflates past `--max-message-bytes`
    /// (1009) or is not valid DEFLATE data (1002), RFC 7692 section 7.2.2.
    Inflate(InflateError),
}

impl WsError {
    /// The status code of the close frame we send for this error.
    pub fn close_code(self) -> u16 {
        match self {
            WsError::Frame(_)
            | WsError::UnmaskedFrame
            | WsError::UnexpectedContinuation
            | WsError::MessageInterrupted
            | WsError::CompressedControl
            | WsError::CompressedContinuation
            | WsError::Inflate(InflateError::Corrupt) => ws_close::PROTOCOL_ERROR,
            WsError::MessageTooBig | WsError::Inflate(InflateError::TooBig) => ws_close::TOO_BIG,
            WsError::InvalidUtf8 => ws_close::INVALID_DATA,
            WsError::BadClose(e) => e.close_code(),
        }
    }
}

impl std::fmt::Display for WsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WsError::Frame(e) => write!(f, "{e}"),
            WsError::UnmaskedFrame => f.write_str("client frame not masked"),
            WsError::UnexpectedContinuation => f.write_str("continuation frame without a message"),
            WsError::MessageInterrupted => f.write_str("new message inside a fragmented message"),
            WsError::MessageTooBig => f.write_str("message larger than the limit"),
            WsError::InvalidUtf8 => f.write_str("text message is not valid UTF-8"),
            WsError::BadClose(e) => write!(f, "{e}"),
            WsError::CompressedControl => f.write_str("RSV1 (compressed) on a control frame"),
            WsError::CompressedContinuation => {
                f.write_str("RSV1 (compressed) on a continuation frame")
            }
            WsError::Inflate(e) => write!(f, "{e}"),
        }
    }
}

/// A data frame whose payload is still arriving.
#[derive(Debug, Clone, Copy)]
struct PartialFrame {
    fin: bool,
    key: [u8; 4],
    /// Payload bytes still to come.
    remaining: u64,
    /// Payload bytes already seen (the masking key's phase).
    seen: usize,
}

/// Reassembles messages from a client's frames (server side: every frame
/// must be masked).
#[derive(Debug)]
pub struct MessageReader {
    max_message: usize,
    /// The data frame being received, when its payload is incomplete.
    frame: Option<PartialFrame>,
    /// The opcode (text or binary) of the message being assembled.
    message: Option<u8>,
    /// The message being assembled had RSV1: `buffer` holds its compressed
    /// bytes, inflated at its last frame.
    compressed: bool,
    /// `permessage-deflate` was agreed: RSV1 may mark a compressed message.
    deflate: bool,
    /// Bytes of the message being assembled (unmasked).
    buffer: Vec<u8>,
    utf8: Utf8Validator,
    /// The last poll returned a message out of `buffer`; clear it next time.
    delivered: bool,
}

/// The event loop's one decompressor, as [`MessageReader::poll`] borrows
/// it, with what the last poll used it for.
pub struct Inflate {
    inflater: Inflater,
    last_compressed: Option<usize>,
}

impl Default for Inflate {
    fn default() -> Self {
        Self::new()
    }
}

impl Inflate {
    pub fn new() -> Self {
        Inflate {
            inflater: Inflater::new(),
            last_compressed: None,
        }
    }

    /// The size on the wire of the message the last `poll` returned, if it
    /// was compressed (the trace shows both sizes).
    pub fn last_compressed_len(&self) -> Option<usize> {
        self.last_compressed
    }
}

/// The assembly buffer keeps at most this much capacity between messages,
/// so one large message does not pin its memory for the connection's life.
const KEEP_CAPACITY: usize = 64 * 1024;

impl MessageReader {
    /// A reader for a connection without extensions: any RSV bit fails it.
    pub fn new(max_message: usize) -> Self {
        MessageReader {
            max_message,
            frame: None,
            message: None,
            compressed: false,
            deflate: false,
            buffer: Vec::new(),
            utf8: Utf8Validator::new(),
            delivered: false,
        }
    }

    /// A reader for a connection that agreed `permessage-deflate`: RSV1 on
    /// a message's first frame marks it compressed (RFC 7692 section 6).
    pub fn with_deflate(max_message: usize) -> Self {
        MessageReader {
            deflate: true,
            ..MessageReader::new(max_message)
        }
    }

    /// The RSV bits the connection's extensions define (for parsing
    /// headers the way this reader does: [`ws_frame::parse_header_with`]).
    pub fn extension_rsv(&self) -> u8 {
        if self.deflate {
            RSV1
        } else {
            0
        }
    }

    /// Is the next byte the start of a frame (not inside a payload)? The
    /// trace parses headers there to show them.
    pub fn at_frame_start(&self) -> bool {
        self.frame.is_none()
    }

    /// Is a fragmented message, or a frame's payload, in progress? (An
    /// idle reader holds no memory.)
    pub fn is_idle(&self) -> bool {
        self.frame.is_none() && self.message.is_none()
    }

    /// Takes what it can from the start of `input` (unmasking it in place)
    /// and says what that achieved. Call again with the rest until
    /// `NeedMore`.
    ///
    /// `inflate` and `inflated` are the loop's, lent for compressed
    /// messages: a compressed message is inflated into `inflated` (cleared
    /// first) and handed out from there.
    pub fn poll<'a>(
        &'a mut self,
        input: &'a mut [u8],
        inflate: &mut Inflate,
        inflated: &'a mut Vec<u8>,
    ) -> Result<Progress<'a>, WsError> {
        if self.delivered {
            self.delivered = false;
            self.buffer.clear();
            if self.buffer.capacity() > KEEP_CAPACITY {
                self.buffer = Vec::new();
            }
        }
        inflate.last_compressed = None;
        if let Some(frame) = self.frame {
            return self.continue_payload(frame, input, 0, inflate, inflated);
        }

        let header = ws_frame::parse_header_with(input, self.extension_rsv());
        let (h, hlen) = match header.map_err(WsError::Frame)? {
            Status::Partial => return Ok(Progress::NeedMore),
            Status::Complete(x) => x,
        };
        let Some(key) = h.mask else {
            return Err(WsError::UnmaskedFrame);
        };
        let len = h.payload_len;
        // Only reachable with the extension agreed: `parse_header_with`
        // refuses RSV1 otherwise (RFC 6455 section 5.2).
        let compressed = h.rsv & RSV1 != 0;

        if opcode::is_control(h.opcode) {
            // RFC 7692 section 6: control frames are never compressed.
            if compressed {
                return Err(WsError::CompressedControl);
            }
            // Control frames are at most 125 bytes (checked by the codec):
            // wait until the whole frame is here, then hand it out whole.
            // They may arrive between the fragments of a message (5.4).
            let total = hlen + len as usize;
            if input.len() < total {
                return Ok(Progress::NeedMore);
            }
            let payload = &mut input[hlen..total];
            ws_frame::apply_mask(payload, key, 0);
            let payload: &'a [u8] = payload;
            let msg = match h.opcode {
                opcode::PING => Message::Ping(payload),
                opcode::PONG => Message::Pong(payload),
                _ => Message::Close(ws_close::parse(payload).map_err(WsError::BadClose)?),
            };
            return Ok(Progress::Message(total, msg));
        }

        // Section 5.4: a continuation needs an open message, and a new
        // message may not start inside one.
        match (h.opcode, self.message) {
            (opcode::CONTINUATION, None) => return Err(WsError::UnexpectedContinuation),
            (opcode::TEXT | opcode::BINARY, Some(_)) => return Err(WsError::MessageInterrupted),
            _ => {}
        }
        // RFC 7692 section 6.1: only the first frame says "compressed".
        if compressed && h.opcode == opcode::CONTINUATION {
            return Err(WsError::CompressedContinuation);
        }
        // Refuse an oversized message as soon as a header announces it,
        // before its payload arrives. For a compressed message this bounds
        // the compressed bytes gathered; the inflated size is bounded as it
        // grows (`inflate_message`).
        if (self.buffer.len() as u64).saturating_add(len) > self.max_message as u64 {
            return Err(WsError::MessageTooBig);
        }

        // The fast path: a whole message in one frame, all of it here.
        if h.fin && self.message.is_none() && input.len() as u64 >= hlen as u64 + len {
            let total = hlen + len as usize;
            let payload = &mut input[hlen..total];
            ws_frame::apply_mask(payload, key, 0);
            let payload: &'a [u8] = payload;
            if compressed {
                // Inflated straight from the read buffer: nothing copied.
                let msg = inflate_message(h.opcode, payload, self.max_message, inflate, inflated)?;
                return Ok(Progress::Message(total, msg));
            }
            let msg = if h.opcode == opcode::TEXT {
                Message::Text(std::str::from_utf8(payload).map_err(|_| WsError::InvalidUtf8)?)
            } else {
                Message::Binary(payload)
            };
            return Ok(Progress::Message(total, msg));
        }

        // Otherwise the payload is streamed into the assembly buffer.
        if self.message.is_none() {
            self.message = Some(h.opcode);
            self.compressed = compressed;
            self.utf8.reset();
        }
        let frame = PartialFrame {
            fin: h.fin,
            key,
            remaining: len,
            seen: 0,
        };
        self.frame = Some(frame);
        self.continue_payload(frame, &mut input[hlen..], hlen, inflate, inflated)
    }

    /// Absorbs as much of a data frame's payload as `input` holds. `already`
    /// is how many bytes of the caller's input were consumed before `input`.
    fn continue_payload<'a>(
        &'a mut self,
        mut frame: PartialFrame,
        input: &'a mut [u8],
        already: usize,
        inflate: &mut Inflate,
        inflated: &'a mut Vec<u8>,
    ) -> Result<Progress<'a>, WsError> {
        let take = (frame.remaining.min(input.len() as u64)) as usize;
        let chunk = &mut input[..take];
        ws_frame::apply_mask(chunk, frame.key, frame.seen);
        if self.message == Some(opcode::TEXT) && !self.compressed {
            // Fail fast: refuse the message at the first byte that cannot
            // be part of valid UTF-8, even mid-frame (section 8.1).
            self.utf8.feed(chunk).map_err(|_| WsError::InvalidUtf8)?;
        }
        self.buffer.extend_from_slice(chunk);
        frame.remaining -= take as u64;
        frame.seen += take;
        let consumed = already + take;
        if frame.remaining > 0 {
            self.frame = Some(frame);
            return Ok(if consumed == 0 {
                Progress::NeedMore
            } else {
                Progress::Consumed(consumed)
            });
        }
        self.frame = None;
        if !frame.fin {
            return Ok(Progress::Consumed(consumed));
        }
        // The final fragment: the message is complete.
        let op = self.message.take();
        self.delivered = true;
        if std::mem::take(&mut self.compressed) {
            let op = op.unwrap_or(opcode::BINARY);
            let msg = inflate_message(op, &self.buffer, self.max_message, inflate, inflated)?;
            return Ok(Progress::Message(consumed, msg));
        }
        if op == Some(opcode::TEXT) {
            // The validator saw every byte; a code point may still be cut
            // short at the very end.
            self.utf8.finish().map_err(|_| WsError::InvalidUtf8)?;
            let text = std::str::from_utf8(&self.buffer).map_err(|_| WsError::InvalidUtf8)?;
            Ok(Progress::Message(consumed, Message::Text(text)))
        } else {
            Ok(Progress::Message(consumed, Message::Binary(&self.buffer)))
        }
    }
}

/// Inflates one whole compressed message (RFC 7692 section 7.2.2) into
/// `out`, at most `max` bytes of it, and checks a text message's UTF-8
/// (RFC 6455 section 8.1; it can only be judged once inflated).
fn inflate_message<'a>(
    op: u8,
    compressed: &[u8],
    max: usize,
    inflate: &mut Inflate,
    out: &'a mut Vec<u8>,
) -> Result<Message<'a>, WsError> {
    out.clear();
    inflate.last_compressed = Some(compressed.len());
    inflate
        .inflater
        .inflate(compressed, max, out)
        .map_err(WsError::Inflate)?;
    let out: &'a Vec<u8> = out;
    if op == opcode::TEXT {
        let text = std::str::from_utf8(out).map_err(|_| WsError::InvalidUtf8)?;
        Ok(Message::Text(text))
    } else {
        Ok(Message::Binary(out))
    }
}

/// Where the closing handshake (section 7) stands. This is the whole
/// WebSocket close state machine; below it, the loop closes the TCP
/// connection the same way for every protocol (`net::Phase`: the last
/// output drains, the write side is shut down, unread input is drained for
/// `--linger-ms`).
///
/// ```text
///  Open ──(we send close, wait_for_peer)──► CloseSent ──(peer's close)──► TCP closing
///    │                                          └──(--close-timeout-ms)──► TCP closed
///    ├──(we send close, failing: 7.1.7)──────────────────────────────────► TCP closing
///    └──(peer's close: we answer, 5.5.1)─────────────────────────────────► TCP closing
/// ```
///
/// In every branch the server closes the TCP connection first (section
/// 7.1.1), so the client does not hold TIME_WAIT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseState {
    /// Messages flow both ways.
    Open,
    /// We sent a close frame and wait for the peer's (section 7.1.2); data
    /// frames from the peer are read and dropped meanwhile.
    CloseSent,
}

/// What we owe a peer whose close frame arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerClose {
    /// It answered our close: the handshake is complete.
    HandshakeComplete,
    /// Answer with this close frame payload (section 5.5.1: "typically
    /// echoing the status code it received"; an empty close gets an empty
    /// close).
    Answer(ClosePayload),
}

/// A close frame payload of at most a status code (no reason text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClosePayload {
    code: Option<[u8; 2]>,
}

impl ClosePayload {
    pub fn bytes(&self) -> &[u8] {
        match &self.code {
            Some(c) => c,
            None => &[],
        }
    }
}

impl CloseState {
    /// Do data frames from the peer still count? Not after our close
    /// (section 7.1.2: we read and drop until its close arrives).
    pub fn accepts_data(self) -> bool {
        self == CloseState::Open
    }

    /// The peer's close frame arrived, with its status code if it had one.
    pub fn on_peer_close(self, code: Option<u16>) -> PeerClose {
        match self {
            CloseState::CloseSent => PeerClose::HandshakeComplete,
            CloseState::Open => PeerClose::Answer(ClosePayload {
                code: code.map(u16::to_be_bytes),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(fin: bool, op: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        ws_frame::write_masked_frame(&mut out, fin, op, [0x37, 0xfa, 0x21, 0x3d], payload);
        out
    }

    /// Feeds `wire` in pieces of `step` bytes and collects what came out.
    fn run(wire: &[u8], step: usize, max: usize) -> Result<Vec<String>, WsError> {
        run_with(MessageReader::new(max), wire, step)
    }

    /// `run` on a connection that agreed `permessage-deflate`.
    fn run_deflate(wire: &[u8], step: usize, max: usize) -> Result<Vec<String>, WsError> {
        run_with(MessageReader::with_deflate(max), wire, step)
    }

    fn run_with(mut r: MessageReader, wire: &[u8], step: usize) -> Result<Vec<String>, WsError> {
        let mut inflate = Inflate::new();
        let mut inflated = Vec::new();
        let mut buf: Vec<u8> = Vec::new();
        let mut out = Vec::new();
        for piece in wire.chunks(step.max(1)) {
            buf.extend_from_slice(piece);
            loop {
                match r.poll(&mut buf, &mut inflate, &mut inflated)? {
                    Progress::NeedMore => break,
                    Progress::Consumed(n) => {
                        buf.drain(..n);
                    }
                    Progress::Message(n, m) => {
                        out.push(format!("{m:?}"));
                        buf.drain(..n);
                    }
                }
            }
        }
        Ok(out)
    }

    #[test]
    fn rfc_masked_hello() {
        let wire = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        assert_eq!(run(&wire, 64, 100).unwrap(), ["Text(\"Hello\")"]);
    }

    #[test]
    fn fragments_with_a_ping_between_at_every_split() {
        let mut wire = masked(false, opcode::TEXT, b"Hel");
        wire.extend(masked(true, opcode::PING, b"p"));
        wire.extend(masked(true, opcode::CONTINUATION, b"lo"));
        for step in 1..wire.len() {
            assert_eq!(
                run(&wire, step, 100).unwrap(),
                ["Ping([112])", "Text(\"Hello\")"],
                "step {step}"
            );
        }
    }

    #[test]
    fn unmasked_frame_is_an_error() {
        assert_eq!(run(&[0x81, 0x00], 8, 100), Err(WsError::UnmaskedFrame));
    }

    #[test]
    fn continuation_without_start() {
        let wire = masked(true, opcode::CONTINUATION, b"x");
        assert_eq!(run(&wire, 64, 100), Err(WsError::UnexpectedContinuation));
    }

    #[test]
    fn new_message_inside_a_fragmented_one() {
        let mut wire = masked(false, opcode::TEXT, b"a");
        wire.extend(masked(true, opcode::TEXT, b"b"));
        assert_eq!(run(&wire, 64, 100), Err(WsError::MessageInterrupted));
    }

    #[test]
    fn too_big_is_refused_at_the_header() {
        let wire = masked(true, opcode::BINARY, &[0; 11]);
        assert_eq!(run(&wire[..8], 64, 10), Err(WsError::MessageTooBig));
        let mut frags = masked(false, opcode::BINARY, &[0; 6]);
        frags.extend(masked(true, opcode::CONTINUATION, &[0; 6]));
        assert_eq!(run(&frags, 64, 10), Err(WsError::MessageTooBig));
    }

    #[test]
    fn invalid_utf8_fails_before_the_frame_ends() {
        // 20 bytes announced; the 5th byte can no longer be valid UTF-8.
        let mut payload = vec![0xce, 0xba, 0xe1, 0xbd, 0xc0];
        payload.resize(20, b'a');
        let wire = masked(true, opcode::TEXT, &payload);
        let header_len = 6;
        assert_eq!(
            run(&wire[..header_len + 5], 1, 100),
            Err(WsError::InvalidUtf8)
        );
    }

    #[test]
    fn utf8_split_across_fragments_is_fine() {
        let euro = "€".as_bytes();
        let mut wire = masked(false, opcode::TEXT, &euro[..1]);
        wire.extend(masked(true, opcode::CONTINUATION, &euro[1..]));
        assert_eq!(run(&wire, 3, 100).unwrap(), ["Text(\"€\")"]);
    }

    #[test]
    fn truncated_code_point_at_message_end() {
        let mut wire = masked(false, opcode::TEXT, b"ok");
        wire.extend(masked(true, opcode::CONTINUATION, &[0xe2, 0x82]));
        assert_eq!(run(&wire, 64, 100), Err(WsError::InvalidUtf8));
    }

    #[test]
    fn close_payloads() {
        let mut p = vec![0x03, 0xe8];
        p.extend_from_slice(b"bye");
        assert_eq!(
            run(&masked(true, opcode::CLOSE, &p), 64, 100).unwrap(),
            ["Close(Some((1000, \"bye\")))"]
        );
        assert_eq!(
            run(&masked(true, opcode::CLOSE, b""), 64, 100).unwrap(),
            ["Close(None)"]
        );
        let e = run(&masked(true, opcode::CLOSE, &[0x03]), 64, 100).unwrap_err();
        assert_eq!(e.close_code(), 1002);
    }

    #[test]
    fn empty_messages() {
        assert_eq!(
            run(&masked(true, opcode::TEXT, b""), 64, 100).unwrap(),
            ["Text(\"\")"]
        );
        let mut wire = masked(false, opcode::BINARY, b"");
        wire.extend(masked(true, opcode::CONTINUATION, b""));
        assert_eq!(run(&wire, 64, 100).unwrap(), ["Binary([])"]);
    }

    // --- permessage-deflate (RFC 7692) ------------------------------------

    /// A masked frame with RSV bits (`rsv` as in `FrameHeader::rsv`).
    fn masked_rsv(fin: bool, rsv: u8, op: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let key = [0x37, 0xfa, 0x21, 0x3d];
        ws_frame::write_masked_frame_with_rsv(&mut out, fin, rsv, op, key, payload);
        out
    }

    /// RFC 7692 section 7.2.3.1: "Hello" in one compressed DEFLATE block.
    const HELLO_DEFLATED: [u8; 7] = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];

    fn deflated(data: &[u8]) -> Vec<u8> {
        let mut d = crate::wire::ws_deflate::Deflater::new(6);
        let mut out = Vec::new();
        assert!(d.compress(data, 15, &mut out));
        out
    }

    #[test]
    fn rfc7692_compressed_hello_at_every_split() {
        let wire = masked_rsv(true, RSV1, opcode::TEXT, &HELLO_DEFLATED);
        for step in 1..=wire.len() {
            assert_eq!(
                run_deflate(&wire, step, 100).unwrap(),
                ["Text(\"Hello\")"],
                "step {step}"
            );
        }
    }

    // RFC 7692 section 7.2.3.1, the fragmented form: RSV1 on the first
    // frame only, the payloads concatenated before inflating.
    #[test]
    fn rfc7692_compressed_hello_in_two_fragments_with_a_ping_between() {
        let mut wire = masked_rsv(false, RSV1, opcode::TEXT, &HELLO_DEFLATED[..3]);
        wire.extend(masked(true, opcode::PING, b"p"));
        wire.extend(masked(true, opcode::CONTINUATION, &HELLO_DEFLATED[3..]));
        for step in 1..=wire.len() {
            assert_eq!(
                run_deflate(&wire, step, 100).unwrap(),
                ["Ping([112])", "Text(\"Hello\")"],
                "step {step}"
            );
        }
    }

    #[test]
    fn uncompressed_message_on_a_deflate_connection_is_plain() {
        let wire = masked(true, opcode::TEXT, b"Hello");
        assert_eq!(run_deflate(&wire, 64, 100).unwrap(), ["Text(\"Hello\")"]);
    }

    #[test]
    fn rsv1_without_the_extension_is_a_reserved_bit() {
        let wire = masked_rsv(true, RSV1, opcode::TEXT, &HELLO_DEFLATED);
        assert_eq!(
            run(&wire, 64, 100),
            Err(WsError::Frame(FrameError::ReservedBits))
        );
        assert_eq!(WsError::Frame(FrameError::ReservedBits).close_code(), 1002);
    }

    #[test]
    fn rsv2_with_the_extension_is_still_a_reserved_bit() {
        let wire = masked_rsv(true, 0b010, opcode::TEXT, b"x");
        assert_eq!(
            run_deflate(&wire, 64, 100),
            Err(WsError::Frame(FrameError::ReservedBits))
        );
    }

    #[test]
    fn rsv1_on_a_control_frame_is_1002() {
        let wire = masked_rsv(true, RSV1, opcode::PING, b"p");
        assert_eq!(run_deflate(&wire, 64, 100), Err(WsError::CompressedControl));
        assert_eq!(WsError::CompressedControl.close_code(), 1002);
    }

    #[test]
    fn rsv1_on_a_continuation_frame_is_1002() {
        let mut wire = masked_rsv(false, RSV1, opcode::TEXT, &HELLO_DEFLATED[..3]);
        wire.extend(masked_rsv(
            true,
            RSV1,
            opcode::CONTINUATION,
            &HELLO_DEFLATED[3..],
        ));
        assert_eq!(
            run_deflate(&wire, 64, 100),
            Err(WsError::CompressedContinuation)
        );
        assert_eq!(WsError::CompressedContinuation.close_code(), 1002);
    }

    #[test]
    fn decompression_bomb_is_1009() {
        // 1 MiB of zeros is about 1 KiB compressed: far under the limit on
        // the wire, far over it inflated.
        let bomb = deflated(&vec![0u8; 1 << 20]);
        assert!(bomb.len() < 2048, "{}", bomb.len());
        let wire = masked_rsv(true, RSV1, opcode::BINARY, &bomb);
        let e = run_deflate(&wire, 4096, 64 * 1024).unwrap_err();
        assert_eq!(e, WsError::Inflate(InflateError::TooBig));
        assert_eq!(e.close_code(), 1009);
    }

    #[test]
    fn fragmented_bomb_is_1009_too() {
        let bomb = deflated(&vec![b'a'; 1 << 20]);
        let (a, b) = bomb.split_at(bomb.len() / 2);
        let mut wire = masked_rsv(false, RSV1, opcode::TEXT, a);
        wire.extend(masked(true, opcode::CONTINUATION, b));
        assert_eq!(
            run_deflate(&wire, 100, 64 * 1024),
            Err(WsError::Inflate(InflateError::TooBig))
        );
    }

    #[test]
    fn compressed_bytes_over_the_limit_are_1009_at_the_header() {
        let wire = masked_rsv(true, RSV1, opcode::BINARY, &[0; 11]);
        assert_eq!(run_deflate(&wire[..8], 64, 10), Err(WsError::MessageTooBig));
    }

    #[test]
    fn not_deflate_data_is_1002() {
        // Block type 3 (reserved) in the first byte.
        let wire = masked_rsv(true, RSV1, opcode::BINARY, &[0xff, 0xff, 0xff]);
        let e = run_deflate(&wire, 64, 100).unwrap_err();
        assert_eq!(e, WsError::Inflate(InflateError::Corrupt));
        assert_eq!(e.close_code(), 1002);
    }

    #[test]
    fn compressed_text_that_inflates_to_invalid_utf8_is_1007() {
        let wire = masked_rsv(true, RSV1, opcode::TEXT, &deflated(&[b'a', 0xc0, b'b']));
        assert_eq!(run_deflate(&wire, 64, 100), Err(WsError::InvalidUtf8));
    }

    #[test]
    fn compressed_size_is_reported_for_the_trace() {
        let mut r = MessageReader::with_deflate(100);
        let (mut inflate, mut inflated) = (Inflate::new(), Vec::new());
        let mut wire = masked_rsv(true, RSV1, opcode::TEXT, &HELLO_DEFLATED);
        let p = r.poll(&mut wire, &mut inflate, &mut inflated).unwrap();
        assert_eq!(p, Progress::Message(13, Message::Text("Hello")));
        assert_eq!(inflate.last_compressed_len(), Some(7));
        let mut plain = masked(true, opcode::TEXT, b"Hello");
        r.poll(&mut plain, &mut inflate, &mut inflated).unwrap();
        assert_eq!(inflate.last_compressed_len(), None);
    }

    #[test]
    fn large_message_in_small_pieces() {
        let data: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
        let wire = masked(true, opcode::BINARY, &data);
        let out = run(&wire, 1000, 100_000).unwrap();
        assert_eq!(out, [format!("{:?}", Message::Binary(&data))]);
    }
}
