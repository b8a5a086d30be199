//! WebSocket compression: the `permessage-deflate` extension (RFC 7692).
//!
//! Two things travel on the wire. In the opening handshake, the client
//! offers the extension and the server accepts one offer (sections 5, 7.1):
//!
//! ```text
//! GET /echo HTTP/1.1
//! Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits   <- Chrome's offer
//!
//! HTTP/1.1 101 Switching Protocols
//! Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover
//! ```
//!
//! Then each data message may be compressed, on its own (section 7.2):
//!
//! ```text
//! send:     "Hello" --DEFLATE, fresh window, sync flush--> f2 48 cd c9 c9 07 00 00 00 ff ff
//!                                      remove the tail (7.2.1) -->  f2 48 cd c9 c9 07 00
//!           frame: c1 07 f2 48 cd c9 c9 07 00      (c1 = FIN + RSV1 + text: RSV1 marks
//!                                                    the first frame of a compressed message)
//! receive:  payloads of all the message's frames ++ 00 00 ff ff (7.2.2) --INFLATE--> "Hello"
//! ```
//!
//! `00 00 ff ff` is the end of the empty stored block that a DEFLATE sync
//! flush always emits (3 header bits, padding to a byte, LEN = 0000, NLEN
//! = ffff). Every message would end with it, so the sender drops it and the
//! receiver puts it back.
//!
//! # No compression state per connection
//!
//! A DEFLATE compressor holds about 300 KB (window, hash chains) and a
//! decompressor a 32 KB window. Kept per connection for "context takeover"
//! (each message compressed against the previous ones), 10,000 idle
//! subscribers would hold gigabytes. So the server always answers with both
//! `server_no_context_takeover` and `client_no_context_takeover`: every
//! message in both directions starts from an empty window, and the event
//! loop owns ONE [`Deflater`] and ONE [`Inflater`], reset per message and
//! shared by all its connections. A connection keeps only its [`Agreed`]
//! (two bytes). RFC 7692 lets the server add both parameters to any
//! accepted offer: section 7.1.1.1 ("A server MAY include the
//! server_no_context_takeover extension parameter in an extension
//! negotiation response even if the extension negotiation offer being
//! accepted by the extension negotiation response didn't include" it) and
//! section 7.1.1.2 ("A server MAY include the client_no_context_takeover
//! extension parameter in an extension negotiation response", which then
//! forbids the client context takeover). The price: repeated text across
//! messages is not shared, only repetition within a message. A broadcast is
//! compressed once and the same bytes go to every subscriber.
//!
//! # Window sizes
//!
//! * `client_max_window_bits` (what the client compresses with) is never
//!   answered: the one [`Inflater`] always uses the largest window (15
//!   bits), which decodes any stream made with a smaller one, and it is
//!   shared, so asking clients for less would save nothing. Section 7.1.2.2
//!   allows leaving it out of the response (and forbids it when the offer
//!   lacked it).
//! * `server_max_window_bits=N` in an offer limits the window we compress
//!   with. Section 7.1.2.1: the server accepts by echoing it "with the same
//!   or smaller value"; we echo N and compress with 2^N bytes of window
//!   ([`Agreed::window_bits`]); [`Deflater`] keeps one compressor per
//!   window size in use, made on first use (most clients never send the
//!   parameter: browsers do not, so one 15-bit compressor is the usual
//!   case). Without it in the offer we never add it: some clients (Go's
//!   nhooyr.io/websocket before its 2023 fix, coder/websocket#258) fail
//!   on an unrequested one.
//! * N = 8 (a 256-byte window) is the awkward one: zlib refuses it for raw
//!   DEFLATE since 1.2.9, and so do zlib-rs (`deflateInit2`) and flate2
//!   (which panics below 9). We still accept it, because a 9-bit compressor
//!   in the zlib family never refers further back than its window minus
//!   262 bytes (`MAX_DIST = w_size - MIN_LOOKAHEAD`, MIN_LOOKAHEAD = 258 +
//!   3 + 1): 512 - 262 = 250 bytes, inside a 256-byte window. So we answer
//!   `server_max_window_bits=8` and compress with 9 bits. The tests decode
//!   the output with an independent DEFLATE reader and check every
//!   distance. (Declining would leave Autobahn cases 13.3.* and 13.5.*, which
//!   offer only `server_max_window_bits=8`, uncompressed: UNIMPLEMENTED.)
//!
//! # Rules for the frame layer (RFC 7692 section 6, RFC 6455 section 5.2)
//!
//! RSV1 is the "Per-Message Compressed" bit. It is set on the first frame
//! of a compressed data message only; never on continuation frames, never
//! on control frames (a PMCE "operates only on data messages"; an endpoint
//! receiving RSV1 there MUST _Fail the WebSocket Connection_: 1002). RSV1
//! on a connection without the extension, and RSV2/RSV3 always, are 1002
//! (RFC 6455 section 5.2). A message without RSV1 is simply not compressed:
//! the choice is per message. The receiver concatenates the payloads of all
//! the message's frames before inflating (section 6.2).
//!
//! Pure functions and two small state machines over bytes: no sockets, no
//! clocks, no globals. DEFLATE itself is flate2 on the pure-Rust zlib-rs
//! backend.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// The extension's name (RFC 7692 section 7: "permessage-deflate").
pub const EXTENSION: &str = "permessage-deflate";

/// The end of the empty stored block a sync flush leaves at the end of
/// every message: removed by the sender (section 7.2.1 step 3), appended by
/// the receiver (section 7.2.2 step 1).
pub const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Messages shorter than this are sent uncompressed (RSV1 lets the sender
/// choose per message, RFC 7692 section 6).
///
/// Measured with zlib-rs at [`DEFAULT_LEVEL`] on messages in pushwire's
/// shape `{"id":N,"data":"..."}`, 300 of each size, the data cut from real
/// JSON (`cargo metadata` output, escaped into the string) and from English
/// prose (the GPL-3 text):
///
/// ```text
/// message bytes (json)  30   39   48   56   74   92  110  128  163  234  305  589  1157
/// saved by deflate      -7%  -5%  -3%  -1%  +5% +11% +16% +19% +25% +33% +39% +56% +67%
/// message bytes (prose) 29   37   45   53   69   85  101  117  149  213  277  533  1045
/// saved by deflate      -7%  -5%  -4%  -3%   0%  +7% +11% +15% +21% +29% +33% +43% +51%
/// ```
///
/// Below about 64 bytes deflate saves nothing: the block header, the
/// end-of-block code and the byte left over from the sync flush outweigh
/// the few repeats a short text has, and literals cost 8 or 9 bits each in
/// a fixed-Huffman block. From 64 bytes on it starts to pay. (The caller
/// also sends uncompressed whenever the compressed form is not smaller,
/// see [`Deflater::compress`].)
pub const MIN_COMPRESS_BYTES: usize = 64;

/// The compression level the server uses: zlib's default. On 1 KiB of
/// JSON (15-bit window, zlib-rs), level 6 took about 15 us per message,
/// level 1 a third of that but left output 36% larger, levels 2 to 9 were
/// within 6% of each other in size. A broadcast is compressed once for all
/// its subscribers, so bytes matter more than microseconds.
pub const DEFAULT_LEVEL: u32 = 6;

/// How many inflated bytes the [`Inflater`] produces per step: the size is
/// checked against the limit after every step, so memory never runs more
/// than this past the limit (a decompression bomb is stopped within one
/// step).
pub const INFLATE_STEP: usize = 16 * 1024;

/// The window sizes section 7.1.2 allows (base-2 logarithm, in bytes).
pub const MIN_WINDOW_BITS: u8 = 8;
pub const MAX_WINDOW_BITS: u8 = 15;

/// The smallest window flate2/zlib-rs compress raw DEFLATE with (see the
/// module doc for why 9 bits also serves an 8-bit agreement).
const MIN_COMPRESSOR_BITS: u8 = 9;

// ---------------------------------------------------------------------
// Negotiation (RFC 7692 sections 5 and 7.1, header grammar RFC 6455 9.1)
// ---------------------------------------------------------------------

/// What the server agreed to for one connection: all a compressing
/// connection keeps (2 bytes, `Copy`).
///
/// Both directions are always without context takeover (module doc), so
/// the only thing left to remember is whether the client limited the
/// window we compress with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Agreed {
    /// `server_max_window_bits` from the accepted offer (8..=15), echoed in
    /// the response; `None` when the offer did not limit it (15 bits).
    server_max_window_bits: Option<u8>,
}

impl Agreed {
    /// The `server_max_window_bits` value we answered, if any.
    pub fn server_max_window_bits(&self) -> Option<u8> {
        self.server_max_window_bits
    }

    /// The window size (9..=15 bits) the server compresses this
    /// connection's messages with; pass it to [`Deflater::compress`]. An
    /// agreement on 8 bits compresses with 9 (module doc: distances stay
    /// within 250 bytes). Connections with the same value can share one
    /// compressed copy of a broadcast.
    pub fn window_bits(&self) -> u8 {
        self.server_max_window_bits
            .unwrap_or(MAX_WINDOW_BITS)
            .clamp(MIN_COMPRESSOR_BITS, MAX_WINDOW_BITS)
    }

    /// Appends the value of the response's `Sec-WebSocket-Extensions`
    /// field, e.g. `permessage-deflate; server_no_context_takeover;
    /// client_no_context_takeover; server_max_window_bits=10`.
    ///
    /// Section 7.1.1.1 and 7.1.1.2: both no-context-takeover parameters may
    /// be added to any accepted offer. Section 7.1.2.1: an offered
    /// `server_max_window_bits` is accepted by echoing it. Section 7.1.2.2:
    /// `client_max_window_bits` is left out (we inflate with 15 bits).
    pub fn write_response(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(EXTENSION.as_bytes());
        out.extend_from_slice(b"; server_no_context_takeover; client_no_context_takeover");
        if let Some(bits) = self.server_max_window_bits {
            out.extend_from_slice(b"; server_max_window_bits=");
            if bits >= 10 {
                out.push(b'1');
            }
            out.push(b'0' + bits % 10);
        }
    }
}

/// Picks the first `permessage-deflate` offer the server can honour from
/// the request's `Sec-WebSocket-Extensions` values (every field line, in
/// order), or `None`: then the connection runs uncompressed and the `101`
/// names no extension (RFC 7692 section 5: declining is not an error).
///
/// The header is a list (RFC 6455 section 9.1): `name *(";" param)`
/// elements separated by commas, a param being `token [ "=" (token |
/// quoted-string) ]`; it may be split over several field lines, which is
/// the same as one line joined with commas, and the order of the elements
/// is the client's preference. Other extensions are skipped. A
/// `permessage-deflate` offer is declined, and the next one considered,
/// when it breaks section 7.1 ("A server MUST decline an extension
/// negotiation offer for this extension if ... an extension parameter not
/// defined for use in an offer ... an extension parameter with an invalid
/// value ... multiple extension parameters with the same name"). An element
/// that breaks the grammar is skipped up to the next comma.
///
/// Names are compared ASCII case-insensitively. RFC 6455 does not say
/// extension tokens are case-insensitive (they are case-sensitive tokens),
/// but nothing registered differs only by case, so a recipient may match
/// loosely for robustness (R. Fielding, httpwg/http-core#8); a client
/// sending `PerMessage-Deflate` means nothing else.
pub fn negotiate<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> Option<Agreed> {
    values.into_iter().find_map(first_acceptable)
}

/// The first acceptable offer in one field line.
fn first_acceptable(value: &[u8]) -> Option<Agreed> {
    let mut c = Cursor { s: value, i: 0 };
    loop {
        c.skip_ows();
        if c.at_end() {
            return None;
        }
        // RFC 9110 section 5.6.1: empty list elements (", ,") are ignored.
        if c.eat(b',') {
            continue;
        }
        match c.extension() {
            Ok(Some(agreed)) => return Some(agreed),
            Ok(None) => {}
            Err(Malformed) => c.skip_element(),
        }
    }
}

/// The grammar of RFC 6455 section 9.1 was broken.
struct Malformed;

/// A parameter's value as it stood in the header.
#[derive(Debug, Clone, Copy)]
enum Value<'a> {
    /// `name` alone.
    Absent,
    /// `name=token`.
    Token(&'a [u8]),
    /// `name="..."`: the bytes between the quotes, escapes not removed.
    Quoted(&'a [u8]),
}

impl<'a> Value<'a> {
    /// The value's text, quoted-pairs unescaped (RFC 9110 section 5.6.4).
    fn chars(self) -> impl Iterator<Item = u8> + 'a {
        let (raw, quoted) = match self {
            Value::Absent => (&[][..], false),
            Value::Token(t) => (t, false),
            Value::Quoted(q) => (q, true),
        };
        let mut it = raw.iter().copied();
        std::iter::from_fn(move || match it.next()? {
            b'\\' if quoted => it.next(),
            b => Some(b),
        })
    }

    /// A window size: "a decimal integer value without leading zeroes
    /// between 8 to 15, inclusive" (sections 7.1.2.1 and 7.1.2.2). RFC 6455
    /// section 9.1: a quoted value counts once unescaped, so `"10"` is 10.
    fn window_bits(self) -> Option<u8> {
        let mut digits = [0u8; 2];
        let mut n = 0;
        for b in self.chars() {
            *digits.get_mut(n)? = b;
            n += 1;
        }
        match (n, digits) {
            (1, [d @ b'8'..=b'9', _]) => Some(d - b'0'),
            (2, [b'1', d @ b'0'..=b'5']) => Some(10 + d - b'0'),
            _ => None,
        }
    }
}

/// The parameters of one `permessage-deflate` offer, as they are read.
#[derive(Debug, Default)]
struct Offer {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    client_max_window_bits: bool,
    /// Section 7.1: an unknown or repeated parameter, or a bad value.
    declined: bool,
}

impl Offer {
    fn param(&mut self, name: &[u8], value: Value<'_>) {
        let is = |known: &str| name.eq_ignore_ascii_case(known.as_bytes());
        let ok = if is("server_no_context_takeover") {
            // Section 7.1.1.1: "This extension parameter has no value."
            !std::mem::replace(&mut self.server_no_context_takeover, true)
                && matches!(value, Value::Absent)
        } else if is("client_no_context_takeover") {
            // Section 7.1.1.2: no value either.
            !std::mem::replace(&mut self.client_no_context_takeover, true)
                && matches!(value, Value::Absent)
        } else if is("server_max_window_bits") {
            // Section 7.1.2.1: a value is required, 8..=15.
            let bits = value.window_bits();
            let first = self.server_max_window_bits.is_none();
            // A bad value declines the offer; 0 only marks the name as seen.
            self.server_max_window_bits = Some(bits.unwrap_or(0));
            first && bits.is_some()
        } else if is("client_max_window_bits") {
            // Section 7.1.2.2: "no value or a decimal integer value ... between
            // 8 to 15". A value is the client's promise to use no more; we
            // inflate with 15 bits anyway, so only its validity matters.
            !std::mem::replace(&mut self.client_max_window_bits, true)
                && (matches!(value, Value::Absent) || value.window_bits().is_some())
        } else {
            // Section 7.1: "an extension parameter not defined for use in an
            // offer".
            false
        };
        self.declined |= !ok;
    }

    /// Every valid offer is one we can honour (module doc: any window from
    /// 8 to 15 bits, context takeover never used).
    fn accept(&self) -> Option<Agreed> {
        (!self.declined).then_some(Agreed {
            server_max_window_bits: self.server_max_window_bits,
        })
    }
}

/// A position in one field value.
struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn at_end(&self) -> bool {
        self.i >= self.s.len()
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        let hit = self.peek() == Some(b);
        self.i += usize::from(hit);
        hit
    }

    /// OWS (RFC 9110 section 5.6.3): spaces and tabs.
    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }

    /// `token = 1*tchar` (RFC 9110 section 5.6.2).
    fn token(&mut self) -> Result<&'a [u8], Malformed> {
        let start = self.i;
        while self.peek().is_some_and(is_tchar) {
            self.i += 1;
        }
        if self.i == start {
            return Err(Malformed);
        }
        Ok(&self.s[start..self.i])
    }

    /// `quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE` (RFC 9110
    /// section 5.6.4), the opening quote already taken. On an error the
    /// rest of the line is given up: where the string was meant to end,
    /// and so where the next element starts, cannot be known.
    fn quoted_string(&mut self) -> Result<&'a [u8], Malformed> {
        let start = self.i;
        loop {
            match self.peek() {
                Some(b'"') => {
                    self.i += 1;
                    return Ok(&self.s[start..self.i - 1]);
                }
                // quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text )
                Some(b'\\')
                    if self
                        .s
                        .get(self.i + 1)
                        .is_some_and(|&b| is_qtext(b) || b == b'"' || b == b'\\') =>
                {
                    self.i += 2;
                }
                Some(b) if is_qtext(b) => self.i += 1,
                _ => {
                    self.i = self.s.len();
                    return Err(Malformed);
                }
            }
        }
    }

    /// One element: `extension-token *( OWS ";" OWS extension-param )`,
    /// then OWS and a comma or the end. Returns the agreement when it is an
    /// acceptable `permessage-deflate` offer.
    fn extension(&mut self) -> Result<Option<Agreed>, Malformed> {
        let name = self.token()?;
        let ours = name.eq_ignore_ascii_case(EXTENSION.as_bytes());
        let mut offer = Offer::default();
        loop {
            self.skip_ows();
            if self.at_end() || self.eat(b',') {
                break;
            }
            if !self.eat(b';') {
                return Err(Malformed);
            }
            // extension-param = token [ "=" (token | quoted-string) ]; RFC
            // 6455 writes its grammar with implied whitespace between
            // elements, so OWS is allowed around "=" too.
            self.skip_ows();
            let param = self.token()?;
            self.skip_ows();
            let value = if self.eat(b'=') {
                self.skip_ows();
                if self.eat(b'"') {
                    Value::Quoted(self.quoted_string()?)
                } else {
                    Value::Token(self.token()?)
                }
            } else {
                Value::Absent
            };
            if ours {
                offer.param(param, value);
            }
        }
        Ok(if ours { offer.accept() } else { None })
    }

    /// After a grammar error: skips to just past the next comma that is
    /// not inside a quoted-string, so the next element can be read.
    fn skip_element(&mut self) {
        while let Some(b) = self.peek() {
            self.i += 1;
            match b {
                b',' => return,
                // A broken quoted-string moves to the end: the loop ends.
                b'"' => _ = self.quoted_string(),
                _ => {}
            }
        }
    }
}

/// `tchar` (RFC 9110 section 5.6.2).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// `qdtext` (RFC 9110 section 5.6.4): HTAB, SP and visible characters but
/// `"` and `\`, and obs-text.
fn is_qtext(b: u8) -> bool {
    matches!(b, b'\t' | b' ' | 0x21 | 0x23..=0x5B | 0x5D..=0x7E | 0x80..=0xFF)
}

// ---------------------------------------------------------------------
// The message transform (RFC 7692 section 7.2)
// ---------------------------------------------------------------------

/// The event loop's one compressor for outgoing messages.
///
/// Holds one DEFLATE state per window size in use (9..=15 bits, made on
/// first use: usually only 15), each about 300 KB, reset before every
/// message (the reset clears a 128 KB hash table: about 2 us, most of the
/// cost of a short message). Nothing is kept per connection.
pub struct Deflater {
    level: Compression,
    /// Index `bits - 9`.
    by_window: [Option<Compress>; (MAX_WINDOW_BITS - MIN_COMPRESSOR_BITS + 1) as usize],
}

impl Deflater {
    /// A compressor at `level` (0..=9; see [`DEFAULT_LEVEL`]).
    pub fn new(level: u32) -> Self {
        Deflater {
            level: Compression::new(level.min(9)),
            by_window: Default::default(),
        }
    }

    /// Appends `payload` compressed as one whole message (section 7.2.1):
    /// DEFLATE with a fresh window of `window_bits` ([`Agreed::window_bits`];
    /// 8 is treated as 9, other values outside 9..=15 are clamped), a sync
    /// flush, and the trailing `00 00 ff ff` removed. The caller sends it
    /// with RSV1 on the first frame.
    ///
    /// Returns `false`, `out` unchanged, if the compressor failed (it does
    /// not with valid settings): send the message uncompressed. The caller
    /// should also send uncompressed when the result is not shorter than
    /// `payload` (incompressible data), and skip compressing anything under
    /// [`MIN_COMPRESS_BYTES`].
    #[must_use]
    pub fn compress(&mut self, payload: &[u8], window_bits: u8, out: &mut Vec<u8>) -> bool {
        let bits = window_bits.clamp(MIN_COMPRESSOR_BITS, MAX_WINDOW_BITS);
        let level = self.level;
        let c = self.by_window[usize::from(bits - MIN_COMPRESSOR_BITS)]
            .get_or_insert_with(|| Compress::new_with_window_bits(level, false, bits));
        // No context takeover: each message starts from an empty window.
        c.reset();
        let start = out.len();
        // Incompressible data grows by 5 bytes per stored block (at least
        // 16 KiB each), plus the flush: this is enough at once.
        out.reserve(payload.len() + payload.len() / 4096 + 64);
        let mut rest = payload;
        loop {
            let before = c.total_in();
            if c.compress_vec(rest, out, FlushCompress::Sync).is_err() {
                out.truncate(start);
                return false;
            }
            let used = usize::try_from(c.total_in() - before).unwrap_or(rest.len());
            rest = rest.get(used..).unwrap_or_default();
            // The flush is complete once all input is taken and the
            // compressor stopped with room to spare.
            if rest.is_empty() && out.len() < out.capacity() {
                break;
            }
            out.reserve(4096);
        }
        // Section 7.2.1: "Remove 4 octets (that are 0x00 0x00 0xff 0xff)
        // from the tail end." A sync flush always ends with them (an empty
        // stored block); if not, the stream is not what the receiver
        // expects, so do not send it.
        if out[start..].ends_with(&TAIL) {
            out.truncate(out.len() - TAIL.len());
            true
        } else {
            out.truncate(start);
            false
        }
    }
}

/// Why an incoming compressed message was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InflateError {
    /// Inflating would pass the size limit (`--max-message-bytes`): close
    /// 1009, "a message that is too big for it to process" (RFC 6455
    /// section 7.4.1).
    TooBig,
    /// Not valid DEFLATE data (bad block type, bad code, a distance before
    /// the start of the message, ...). RFC 7692 names no close code; the
    /// peer broke the extension's framing, so 1002 (protocol error), as
    /// Python `websockets` does.
    Corrupt,
}

impl InflateError {
    /// The close code this error ends the connection with.
    pub fn close_code(self) -> u16 {
        match self {
            InflateError::TooBig => 1009,
            InflateError::Corrupt => 1002,
        }
    }
}

impl std::fmt::Display for InflateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            InflateError::TooBig => "compressed message inflates past the size limit",
            InflateError::Corrupt => "compressed message is not valid DEFLATE data",
        })
    }
}

impl std::error::Error for InflateError {}

/// The event loop's one decompressor for incoming messages: a 15-bit
/// window (decodes whatever window the client used), reset per message,
/// and a fixed step buffer. Nothing is allocated per message but `out`.
pub struct Inflater {
    d: Decompress,
    step: Box<[u8]>,
}

impl Default for Inflater {
    fn default() -> Self {
        Self::new()
    }
}

impl Inflater {
    pub fn new() -> Self {
        Inflater {
            // Raw DEFLATE (no zlib header), 2^15-byte window.
            d: Decompress::new_with_window_bits(false, MAX_WINDOW_BITS),
            step: vec![0; INFLATE_STEP].into_boxed_slice(),
        }
    }

    /// Appends the inflated form of one whole compressed message (the
    /// payloads of all its frames, concatenated) to `out` (section 7.2.2):
    /// `00 00 ff ff` appended, inflated from a fresh window.
    ///
    /// The size is checked as it grows: output comes in steps of at most
    /// [`INFLATE_STEP`] bytes, and the moment it would pass `limit` bytes
    /// (counted from `out`'s length on entry) inflating stops with
    /// [`InflateError::TooBig`]; `out` never grows past `limit`. On any
    /// error `out` is truncated back to its length on entry.
    ///
    /// A message ending with a final block (BFINAL = 1, section 7.2.3.4)
    /// ends there; what follows is ignored. A message cut inside a block
    /// gives what was decoded so far, as zlib-based peers do.
    pub fn inflate(
        &mut self,
        compressed: &[u8],
        limit: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), InflateError> {
        let start = out.len();
        let result = self.inflate_into(compressed, limit, start, out);
        if result.is_err() {
            out.truncate(start);
        }
        result
    }

    fn inflate_into(
        &mut self,
        compressed: &[u8],
        limit: usize,
        start: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), InflateError> {
        // No context takeover: each message starts from an empty window.
        self.d.reset(false);
        // Section 7.2.2 step 1, without copying the message: the tail is
        // fed as a second piece of input.
        for piece in [compressed, &TAIL[..]] {
            let mut rest = piece;
            loop {
                let (in0, out0) = (self.d.total_in(), self.d.total_out());
                let status = self
                    .d
                    .decompress(rest, &mut self.step, FlushDecompress::Sync)
                    .map_err(|_| InflateError::Corrupt)?;
                let used = usize::try_from(self.d.total_in() - in0).unwrap_or(rest.len());
                let made = usize::try_from(self.d.total_out() - out0).unwrap_or(usize::MAX);
                rest = rest.get(used..).unwrap_or_default();
                let step = self.step.get(..made).ok_or(InflateError::Corrupt)?;

                let produced = out.len() - start;
                if step.len() > limit - produced {
                    return Err(InflateError::TooBig);
                }
                if out.capacity() - out.len() < step.len() {
                    // Grow by doubling, but never past the limit: a bomb
                    // cannot make us allocate more than `limit` bytes.
                    let target = (produced * 2)
                        .max(produced + step.len())
                        .max(INFLATE_STEP)
                        .min(limit);
                    out.reserve_exact(target - produced);
                }
                out.extend_from_slice(step);

                if status == Status::StreamEnd {
                    // A final block: the message ends here (section 7.2.3.4).
                    return Ok(());
                }
                if rest.is_empty() && made < self.step.len() {
                    break; // this piece is used up and nothing is pending
                }
                if used == 0 && made == 0 {
                    // Input left, room to write, no progress: not DEFLATE.
                    return Err(InflateError::Corrupt);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(lines: &[&str]) -> Option<Agreed> {
        negotiate(lines.iter().map(|l| l.as_bytes()))
    }

    fn response(a: Agreed) -> String {
        let mut out = Vec::new();
        a.write_response(&mut out);
        String::from_utf8(out).unwrap()
    }

    const PLAIN: Option<Agreed> = Some(Agreed {
        server_max_window_bits: None,
    });

    fn bits(n: u8) -> Option<Agreed> {
        Some(Agreed {
            server_max_window_bits: Some(n),
        })
    }

    // --- negotiation: one named test per case -------------------------

    #[test]
    fn plain_offer_gets_both_no_context_takeover() {
        assert_eq!(offer(&["permessage-deflate"]), PLAIN);
        assert_eq!(
            response(PLAIN.unwrap()),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
        );
    }

    #[test]
    fn chrome_offer_client_max_window_bits_without_value() {
        assert_eq!(
            offer(&["permessage-deflate; client_max_window_bits"]),
            PLAIN
        );
    }

    #[test]
    fn client_max_window_bits_with_value_is_not_answered() {
        let a = offer(&["permessage-deflate; client_max_window_bits=10"]).unwrap();
        assert_eq!(a, PLAIN.unwrap());
        assert!(!response(a).contains("client_max_window_bits"));
    }

    #[test]
    fn server_max_window_bits_is_echoed() {
        let a = offer(&["permessage-deflate; server_max_window_bits=10"]).unwrap();
        assert_eq!(a, bits(10).unwrap());
        assert_eq!(a.window_bits(), 10);
        assert_eq!(
            response(a),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10"
        );
    }

    #[test]
    fn server_max_window_bits_8_is_accepted_and_compressed_with_9() {
        let a = offer(&["permessage-deflate; server_max_window_bits=8"]).unwrap();
        assert_eq!(a.server_max_window_bits(), Some(8));
        assert_eq!(a.window_bits(), 9);
        assert!(response(a).ends_with("; server_max_window_bits=8"));
    }

    #[test]
    fn both_no_context_takeover_params_offered() {
        assert_eq!(
            offer(&["permessage-deflate; server_no_context_takeover; client_no_context_takeover"]),
            PLAIN
        );
    }

    #[test]
    fn several_offers_first_unusable_second_taken() {
        // Autobahn 13.7's three offers, with the first made invalid.
        let h = "permessage-deflate; server_max_window_bits=7, \
                 permessage-deflate; client_no_context_takeover; server_max_window_bits=9, \
                 permessage-deflate";
        assert_eq!(offer(&[h]), bits(9));
    }

    #[test]
    fn first_acceptable_offer_wins() {
        let h = "permessage-deflate; server_max_window_bits=12, permessage-deflate";
        assert_eq!(offer(&[h]), bits(12));
    }

    #[test]
    fn duplicate_param_declines_the_offer() {
        assert_eq!(
            offer(&["permessage-deflate; server_no_context_takeover; server_no_context_takeover"]),
            None
        );
        assert_eq!(
            offer(&["permessage-deflate; client_max_window_bits; client_max_window_bits=9"]),
            None
        );
        assert_eq!(
            offer(&["permessage-deflate; server_max_window_bits=9; server_max_window_bits=9"]),
            None
        );
    }

    #[test]
    fn duplicate_param_then_good_offer() {
        let h = "permessage-deflate; client_no_context_takeover; client_no_context_takeover, permessage-deflate";
        assert_eq!(offer(&[h]), PLAIN);
    }

    #[test]
    fn quoted_values_count_unescaped() {
        assert_eq!(
            offer(&["permessage-deflate; server_max_window_bits=\"10\""]),
            bits(10)
        );
        assert_eq!(
            offer(&["permessage-deflate; server_max_window_bits=\"1\\1\""]),
            bits(11)
        );
        assert_eq!(
            offer(&["permessage-deflate; client_max_window_bits=\"15\""]),
            PLAIN
        );
    }

    #[test]
    fn quoted_value_that_is_not_a_window_size() {
        assert_eq!(
            offer(&["permessage-deflate; server_max_window_bits=\"1 0\""]),
            None
        );
        assert_eq!(
            offer(&["permessage-deflate; server_max_window_bits=\"\""]),
            None
        );
    }

    #[test]
    fn quoted_commas_in_another_extension_do_not_split_it() {
        let h = "x-foo; a=\"permessage-deflate, b\", permessage-deflate; server_max_window_bits=11";
        assert_eq!(offer(&[h]), bits(11));
    }

    #[test]
    fn bad_window_7_declines() {
        assert_eq!(
            offer(&["permessage-deflate; server_max_window_bits=7"]),
            None
        );
        assert_eq!(
            offer(&["permessage-deflate; client_max_window_bits=7"]),
            None
        );
    }

    #[test]
    fn bad_window_16_declines() {
        assert_eq!(
            offer(&["permessage-deflate; server_max_window_bits=16"]),
            None
        );
        assert_eq!(
            offer(&["permessage-deflate; client_max_window_bits=16"]),
            None
        );
    }

    #[test]
    fn bad_window_abc_declines() {
        assert_eq!(
            offer(&["permessage-deflate; server_max_window_bits=abc"]),
            None
        );
        assert_eq!(
            offer(&["permessage-deflate; client_max_window_bits=abc"]),
            None
        );
    }

    #[test]
    fn window_with_leading_zero_or_sign_declines() {
        for v in ["09", "010", "+9", "9.0", "1000000000000000009"] {
            let h = format!("permessage-deflate; server_max_window_bits={v}");
            assert_eq!(offer(&[&h]), None, "{v}");
        }
    }

    #[test]
    fn server_max_window_bits_without_value_declines() {
        assert_eq!(offer(&["permessage-deflate; server_max_window_bits"]), None);
    }

    #[test]
    fn value_on_no_context_takeover_declines() {
        assert_eq!(
            offer(&["permessage-deflate; server_no_context_takeover=1"]),
            None
        );
        assert_eq!(
            offer(&["permessage-deflate; client_no_context_takeover=\"\""]),
            None
        );
    }

    #[test]
    fn unknown_param_declines() {
        assert_eq!(offer(&["permessage-deflate; mux"]), None);
        assert_eq!(offer(&["permessage-deflate; max_window_bits=10"]), None);
    }

    #[test]
    fn other_extensions_before_it_are_skipped() {
        let h = "x-webkit-deflate-frame, foo; bar=1; baz=\"q\", permessage-deflate; client_max_window_bits";
        assert_eq!(offer(&[h]), PLAIN);
    }

    #[test]
    fn only_other_extensions_gives_none() {
        assert_eq!(
            offer(&[
                "x-webkit-deflate-frame",
                "deflate-frame; no_context_takeover"
            ]),
            None
        );
        assert_eq!(offer(&[]), None);
    }

    #[test]
    fn header_split_over_lines() {
        // RFC 6455 section 9.1: several lines are one comma-joined list.
        assert_eq!(
            offer(&["foo", "permessage-deflate; server_max_window_bits=13"]),
            bits(13)
        );
        assert_eq!(
            offer(&[
                "permessage-deflate; server_max_window_bits=99",
                "permessage-deflate"
            ]),
            PLAIN
        );
    }

    #[test]
    fn extension_name_is_case_insensitive() {
        assert_eq!(
            offer(&["PerMessage-Deflate; Client_Max_Window_Bits"]),
            PLAIN
        );
        assert_eq!(
            offer(&["PERMESSAGE-DEFLATE; SERVER_MAX_WINDOW_BITS=9"]),
            bits(9)
        );
    }

    #[test]
    fn whitespace_and_empty_elements_are_tolerated() {
        assert_eq!(
            offer(&[" ,permessage-deflate\t;\tserver_max_window_bits = 12 , "]),
            bits(12)
        );
        assert_eq!(offer(&[",,", ""]), None);
    }

    #[test]
    fn malformed_element_is_skipped_to_the_next_comma() {
        assert_eq!(
            offer(&["permessage-deflate; =5, permessage-deflate"]),
            PLAIN
        );
        assert_eq!(
            offer(&["permessage-deflate server_no_context_takeover, permessage-deflate"]),
            PLAIN
        );
        assert_eq!(
            offer(&["permessage-deflate;; x, permessage-deflate; server_max_window_bits=8"]),
            bits(8)
        );
    }

    #[test]
    fn unterminated_quote_gives_up_the_line_only() {
        assert_eq!(
            offer(&[
                "x; a=\"never closed, permessage-deflate",
                "permessage-deflate"
            ]),
            PLAIN
        );
        assert_eq!(offer(&["x; a=\"never closed, permessage-deflate"]), None);
    }

    #[test]
    fn prefix_of_the_name_is_another_extension() {
        assert_eq!(offer(&["permessage-deflatex", "permessage"]), None);
    }

    #[test]
    fn a_connection_keeps_two_bytes() {
        assert_eq!(std::mem::size_of::<Agreed>(), 2);
    }

    #[test]
    fn every_response_negotiates_back_to_itself() {
        for a in [PLAIN, bits(8), bits(9), bits(10), bits(15)] {
            let a = a.unwrap();
            let r = response(a);
            assert_eq!(negotiate([r.as_bytes()]), Some(a), "{r}");
        }
    }

    // --- the message transform: RFC 7692 section 7.2.3 examples -----------

    fn inflate(data: &[u8]) -> Result<Vec<u8>, InflateError> {
        let mut out = Vec::new();
        Inflater::new()
            .inflate(data, 1 << 20, &mut out)
            .map(|()| out)
    }

    fn compress(payload: &[u8], bits: u8) -> Vec<u8> {
        let mut out = Vec::new();
        assert!(Deflater::new(DEFAULT_LEVEL).compress(payload, bits, &mut out));
        out
    }

    const HELLO: [u8; 7] = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];

    // 7.2.3.1: "A Message Compressed Using One Compressed DEFLATE Block".
    #[test]
    fn rfc_7_2_3_1_hello_compresses_byte_for_byte() {
        assert_eq!(compress(b"Hello", 15), HELLO);
        assert_eq!(inflate(&HELLO).unwrap(), b"Hello");
    }

    // 7.2.3.1, fragmented: "41 03 f2 48 cd" then "80 04 c9 c9 07 00"; the
    // receiver concatenates the payloads before inflating (section 6.2).
    #[test]
    fn rfc_7_2_3_1_fragments_concatenate() {
        let joined = [&[0xf2, 0x48, 0xcd][..], &[0xc9, 0xc9, 0x07, 0x00]].concat();
        assert_eq!(inflate(&joined).unwrap(), b"Hello");
    }

    // 7.2.3.2: without context takeover the second "Hello" is compressed
    // exactly like the first (the shared-window form "f2 00 11 00 00" is
    // what a client using context takeover would send, and it cannot be
    // read from a fresh window: one reason we forbid it).
    #[test]
    fn rfc_7_2_3_2_no_context_takeover_repeats_the_first_form() {
        let mut d = Deflater::new(DEFAULT_LEVEL);
        let mut inflater = Inflater::new();
        for _ in 0..2 {
            let mut out = Vec::new();
            assert!(d.compress(b"Hello", 15, &mut out));
            assert_eq!(out, HELLO);
            let mut plain = Vec::new();
            inflater.inflate(&out, 100, &mut plain).unwrap();
            assert_eq!(plain, b"Hello");
        }
        assert_eq!(
            inflate(&[0xf2, 0x00, 0x11, 0x00, 0x00]),
            Err(InflateError::Corrupt)
        );
    }

    // 7.2.3.3: "Using a DEFLATE Block with No Compression".
    #[test]
    fn rfc_7_2_3_3_stored_block() {
        let p = [
            0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
        ];
        assert_eq!(inflate(&p).unwrap(), b"Hello");
        let mut d = Deflater::new(0);
        let mut out = Vec::new();
        assert!(d.compress(b"Hello", 15, &mut out));
        assert_eq!(out, p);
    }

    // 7.2.3.4: "Using a DEFLATE Block with BFINAL Set to 1".
    #[test]
    fn rfc_7_2_3_4_bfinal_block() {
        let p = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
        assert_eq!(inflate(&p).unwrap(), b"Hello");
    }

    // 7.2.3.5: "Two DEFLATE Blocks in One Message".
    #[test]
    fn rfc_7_2_3_5_two_blocks() {
        let p = [
            0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00,
        ];
        assert_eq!(inflate(&p).unwrap(), b"Hello");
    }

    // An empty message compresses to the one byte left of the flush's empty
    // stored block (section 7.2.1 step 3).
    #[test]
    fn empty_message_is_one_zero_byte() {
        assert_eq!(compress(b"", 15), [0x00]);
        assert_eq!(inflate(&[0x00]).unwrap(), b"");
        // An empty payload with RSV1 inflates to nothing, as zlib peers do.
        assert_eq!(inflate(&[]).unwrap(), b"");
    }

    // --- an independent implementation: CPython's zlib 1.2.13 ----------
    //
    // The vectors below were made with, for each (data, wbits):
    //   c = zlib.compressobj(6, zlib.DEFLATED, -wbits)
    //   v = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    //   assert v.endswith(b"\x00\x00\xff\xff"); v = v[:-4]
    // The other way, checked once by hand: our output at every window size
    // 8..=15 (for "", "Hello", the GPL-3 text and 50 KB of JSON) inflates in
    // zlib to the input, with zlib.decompressobj(-bits) and + 00 00 ff ff.
    // Fed with max_length=1, so that every back-reference must come from
    // zlib's own 2^bits window rather than from the output buffer, it also
    // decodes our 8-bit output (and refuses, as a control, a 300-byte
    // distance with -8: "invalid distance too far back").

    const PY_JSON: &[u8] = br#"{"id":8,"data":"{\"user\":\"alice\",\"text\":\"hello hello hello, is anyone there?\"}"}"#;
    const PY_JSON_DEFLATED: [u8; 76] = [
        0x4c, 0xc8, 0x31, 0x0a, 0xc0, 0x20, 0x10, 0x04, 0xc0, 0xaf, 0x1c, 0x5b, 0xfb, 0x80, 0x60,
        0x93, 0x8f, 0x5c, 0x73, 0xc4, 0x05, 0x05, 0x89, 0xa0, 0x17, 0x48, 0x10, 0xff, 0x1e, 0x48,
        0x95, 0x66, 0x8a, 0x99, 0x28, 0x09, 0x71, 0x0b, 0x48, 0xe6, 0x86, 0x88, 0xa9, 0xb8, 0x06,
        0xbb, 0x22, 0x2a, 0xac, 0x96, 0x83, 0x8a, 0xa0, 0x70, 0xde, 0xfe, 0x55, 0x66, 0xad, 0x4d,
        0x7e, 0x06, 0x29, 0x43, 0xec, 0x7c, 0xda, 0x49, 0xf1, 0xcc, 0xce, 0x5d, 0xb1, 0xb0, 0x5e,
        0x00,
    ];

    #[test]
    fn python_zlib_vectors_inflate() {
        assert_eq!(inflate(&HELLO).unwrap(), b"Hello"); // zlib gives the RFC's bytes too
        assert_eq!(inflate(&[0x00]).unwrap(), b"");
        assert_eq!(inflate(&PY_JSON_DEFLATED).unwrap(), PY_JSON);
        // wbits=-9, 108 bytes of "abc" repeated.
        let abc = [0x4a, 0x4c, 0x4a, 0x4e, 0xa4, 0x17, 0x02, 0x00];
        assert_eq!(inflate(&abc).unwrap(), b"abc".repeat(36));
    }

    #[test]
    fn python_zlib_vector_round_trips_through_us() {
        let ours = compress(PY_JSON, 15);
        assert_eq!(inflate(&ours).unwrap(), PY_JSON);
        assert!(ours.len() < PY_JSON.len());
    }

    // --- bounds -------------------------------------------------------

    #[test]
    fn decompression_bomb_stops_at_the_limit() {
        // 16 MiB of zeros deflate to about 16 KB.
        let bomb = compress(&vec![0u8; 16 << 20], 15);
        assert!(bomb.len() < 20_000, "{}", bomb.len());
        let limit = 1 << 20;
        let mut out = b"kept".to_vec();
        let mut inflater = Inflater::new();
        assert_eq!(
            inflater.inflate(&bomb, limit, &mut out),
            Err(InflateError::TooBig)
        );
        assert_eq!(out, b"kept");
        assert!(out.capacity() <= 4 + limit, "capacity {}", out.capacity());
        // The same Inflater still works afterwards.
        let mut ok = Vec::new();
        inflater.inflate(&HELLO, 5, &mut ok).unwrap();
        assert_eq!(ok, b"Hello");
    }

    #[test]
    fn limit_is_exact() {
        let mut i = Inflater::new();
        let mut out = Vec::new();
        assert_eq!(i.inflate(&HELLO, 4, &mut out), Err(InflateError::TooBig));
        assert!(out.is_empty());
        i.inflate(&HELLO, 5, &mut out).unwrap();
        assert_eq!(out, b"Hello");
        let big = vec![b'x'; 100_000];
        let c = compress(&big, 15);
        out.clear();
        assert_eq!(i.inflate(&c, 99_999, &mut out), Err(InflateError::TooBig));
        i.inflate(&c, 100_000, &mut out).unwrap();
        assert_eq!(out, big);
    }

    #[test]
    fn corrupt_data_is_refused() {
        // BTYPE = 11 is reserved (RFC 1951 section 3.2.3).
        assert_eq!(inflate(&[0x07]), Err(InflateError::Corrupt));
        // A stored block whose NLEN is not the complement of LEN.
        assert_eq!(
            inflate(&[0x00, 0x05, 0x00, 0x00, 0x00, b'H']),
            Err(InflateError::Corrupt)
        );
        let mut out = b"x".to_vec();
        assert_eq!(
            Inflater::new().inflate(&[0xff; 10], 100, &mut out),
            Err(InflateError::Corrupt)
        );
        assert_eq!(out, b"x");
    }

    #[test]
    fn error_close_codes() {
        assert_eq!(InflateError::TooBig.close_code(), 1009);
        assert_eq!(InflateError::Corrupt.close_code(), 1002);
    }

    // --- round trips at every window size -------------------------------

    /// Deterministic, compressible, with repeats at many distances.
    fn payload(seed: u64, len: usize) -> Vec<u8> {
        let words: [&[u8]; 8] = [
            b"{\"id\":",
            b"\"data\":",
            b"hello ",
            b"world ",
            b"42,",
            b"\"user\":",
            b"}",
            b"alice ",
        ];
        let mut x = seed | 1;
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if x.is_multiple_of(5) {
                out.push(x as u8); // some noise
            } else {
                out.extend_from_slice(words[(x >> 8) as usize % words.len()]);
            }
        }
        out.truncate(len);
        out
    }

    #[test]
    fn round_trip_every_window_size() {
        let mut d = Deflater::new(DEFAULT_LEVEL);
        let mut i = Inflater::new();
        for bits in MIN_WINDOW_BITS..=MAX_WINDOW_BITS {
            for (seed, len) in [
                (1, 0),
                (2, 1),
                (3, 100),
                (4, 5000),
                (5, 70_000),
                (6, 300_000),
            ] {
                let p = payload(seed + u64::from(bits), len);
                let mut c = b"prefix".to_vec();
                assert!(d.compress(&p, bits, &mut c));
                let mut back = b"head".to_vec();
                i.inflate(&c[6..], len, &mut back).unwrap();
                assert_eq!(&back[4..], &p[..], "bits {bits} len {len}");
            }
        }
    }

    #[test]
    fn incompressible_data_round_trips() {
        let mut x = 0x2545F4914F6CDD1Du64;
        let noise: Vec<u8> = (0..100_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let c = compress(&noise, 15);
        assert!(c.len() >= noise.len()); // the caller then sends it plain
        assert_eq!(inflate(&c).unwrap(), noise);
    }

    // --- window sizes, checked with an independent DEFLATE reader ----------

    /// A minimal DEFLATE decoder (RFC 1951) in the style of zlib's `puff`,
    /// to check what the compressor emits: returns the data and the
    /// longest back-reference distance used.
    fn puff(data: &[u8]) -> Option<(Vec<u8>, usize)> {
        struct Bits<'a> {
            s: &'a [u8],
            pos: usize, // in bits
        }
        impl Bits<'_> {
            fn bit(&mut self) -> Option<u32> {
                let b = *self.s.get(self.pos / 8)?;
                let v = (b >> (self.pos % 8)) & 1;
                self.pos += 1;
                Some(u32::from(v))
            }
            fn bits(&mut self, n: u32) -> Option<u32> {
                (0..n).try_fold(0, |v, i| Some(v | self.bit()? << i))
            }
        }
        struct Huffman {
            count: [u16; 16],
            symbol: Vec<u16>,
        }
        fn build(lengths: &[u8]) -> Huffman {
            let mut count = [0u16; 16];
            for &l in lengths {
                count[usize::from(l)] += 1;
            }
            count[0] = 0;
            let mut offs = [0u16; 16];
            for l in 1..15 {
                offs[l + 1] = offs[l] + count[l];
            }
            let mut symbol = vec![0; lengths.len()];
            for (s, &l) in lengths.iter().enumerate() {
                if l != 0 {
                    symbol[usize::from(offs[usize::from(l)])] = s as u16;
                    offs[usize::from(l)] += 1;
                }
            }
            Huffman { count, symbol }
        }
        fn decode(br: &mut Bits, h: &Huffman) -> Option<u16> {
            let (mut code, mut first, mut index) = (0i32, 0i32, 0i32);
            for len in 1..16 {
                code |= br.bit()? as i32;
                let count = i32::from(h.count[len]);
                if code - count < first {
                    return h.symbol.get((index + code - first) as usize).copied();
                }
                index += count;
                first = (first + count) << 1;
                code <<= 1;
            }
            None
        }
        const LBASE: [u16; 29] = [
            3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99,
            115, 131, 163, 195, 227, 258,
        ];
        const LEXT: [u8; 29] = [
            0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
        ];
        const DBASE: [u16; 30] = [
            1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025,
            1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
        ];
        const DEXT: [u8; 30] = [
            0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12,
            12, 13, 13,
        ];
        const ORDER: [usize; 19] = [
            16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
        ];

        let mut br = Bits { s: data, pos: 0 };
        let mut out = Vec::new();
        let mut max_dist = 0;
        // Blocks until the input ends at a block boundary.
        while br.pos < data.len() * 8 {
            let last = br.bit()?;
            match br.bits(2)? {
                0 => {
                    br.pos = br.pos.div_ceil(8) * 8;
                    let len = br.bits(16)?;
                    let nlen = br.bits(16)?;
                    if len != !nlen & 0xffff {
                        return None;
                    }
                    for _ in 0..len {
                        out.push(br.bits(8)? as u8);
                    }
                }
                t @ (1 | 2) => {
                    let (lit, dist) = if t == 1 {
                        let mut l = [8u8; 288];
                        l[144..256].fill(9);
                        l[256..280].fill(7);
                        (build(&l), build(&[5; 30]))
                    } else {
                        let nlen = br.bits(5)? as usize + 257;
                        let ndist = br.bits(5)? as usize + 1;
                        let ncode = br.bits(4)? as usize + 4;
                        let mut cl = [0u8; 19];
                        for &o in &ORDER[..ncode] {
                            cl[o] = br.bits(3)? as u8;
                        }
                        let clh = build(&cl);
                        let mut lengths = Vec::new();
                        while lengths.len() < nlen + ndist {
                            let sym = decode(&mut br, &clh)?;
                            let (v, n) = match sym {
                                0..=15 => (sym as u8, 1),
                                16 => (*lengths.last()?, 3 + br.bits(2)?),
                                17 => (0, 3 + br.bits(3)?),
                                _ => (0, 11 + br.bits(7)?),
                            };
                            lengths.extend(std::iter::repeat_n(v, n as usize));
                        }
                        (build(&lengths[..nlen]), build(&lengths[nlen..nlen + ndist]))
                    };
                    loop {
                        let sym = usize::from(decode(&mut br, &lit)?);
                        if sym < 256 {
                            out.push(sym as u8);
                        } else if sym == 256 {
                            break;
                        } else {
                            let s = sym - 257;
                            let len =
                                usize::from(*LBASE.get(s)?) + br.bits(u32::from(LEXT[s]))? as usize;
                            let ds = usize::from(decode(&mut br, &dist)?);
                            let d = usize::from(*DBASE.get(ds)?)
                                + br.bits(u32::from(DEXT[ds]))? as usize;
                            if d > out.len() {
                                return None;
                            }
                            max_dist = max_dist.max(d);
                            for _ in 0..len {
                                out.push(out[out.len() - d]);
                            }
                        }
                    }
                }
                _ => return None,
            }
            if last == 1 {
                break;
            }
        }
        Some((out, max_dist))
    }

    #[test]
    fn puff_reads_the_rfc_examples() {
        assert_eq!(puff(&[&HELLO[..], &TAIL].concat()).unwrap().0, b"Hello");
        let two = [
            0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00,
        ];
        assert_eq!(puff(&[&two[..], &TAIL].concat()).unwrap().0, b"Hello");
        assert_eq!(
            puff(&[&PY_JSON_DEFLATED[..], &TAIL].concat()).unwrap().0,
            PY_JSON
        );
    }

    #[test]
    fn compressed_distances_stay_inside_the_agreed_window() {
        // Repeats at distances around 2^n: a compressor allowed to look
        // further back than its window would use them.
        let mut inputs = Vec::new();
        for period in [
            200usize, 251, 255, 256, 257, 300, 511, 513, 1000, 2049, 4097, 8193, 20_000,
        ] {
            inputs.push(payload(period as u64, period).repeat(3));
        }
        inputs.push(payload(99, 50_000));
        for bits in MIN_WINDOW_BITS..=MAX_WINDOW_BITS {
            let window = 1usize << bits;
            // zlib's MAX_DIST: the compressor's window minus MIN_LOOKAHEAD
            // (258 + 3 + 1). For 8 bits the compressor has 9: 250 <= 256.
            let max_dist = (1usize << bits.max(MIN_COMPRESSOR_BITS)) - 262;
            assert!(max_dist <= window);
            let mut longest = 0;
            for (level, input) in [DEFAULT_LEVEL, 1, 9]
                .into_iter()
                .flat_map(|l| inputs.iter().map(move |i| (l, i)))
            {
                let mut out = Vec::new();
                let mut dl = Deflater::new(level);
                assert!(dl.compress(input, bits, &mut out));
                out.extend_from_slice(&TAIL);
                let (plain, dist) = puff(&out).expect("puff decodes our output");
                assert_eq!(&plain, input);
                assert!(
                    dist <= max_dist,
                    "bits {bits} level {level}: distance {dist} > {max_dist}"
                );
                longest = longest.max(dist);
            }
            // The repeats were found: the window was used, not just obeyed.
            assert!(
                longest >= max_dist * 9 / 10,
                "bits {bits}: longest distance {longest}"
            );
        }
    }
}
