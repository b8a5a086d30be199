//! The chunked transfer coding (RFC 9112 section 7.1), decoded as a stream.
//!
//! A request body sent with `Transfer-Encoding: chunked` has no length up
//! front. Instead it is cut into chunks that each announce their own length
//! in hexadecimal, and a chunk of length zero ends it. The grammar, with the
//! section that defines each rule:
//!
//! ```text
//! chunked-body    = *chunk last-chunk trailer-section CRLF          ; 7.1
//! chunk           = chunk-size [ chunk-ext ] CRLF chunk-data CRLF   ; 7.1
//! chunk-size      = 1*HEXDIG                                        ; 7.1
//! last-chunk      = 1*("0") [ chunk-ext ] CRLF                      ; 7.1
//! chunk-data      = 1*OCTET   ; exactly chunk-size octets           ; 7.1
//! chunk-ext       = *( BWS ";" BWS chunk-ext-name
//!                      [ BWS "=" BWS chunk-ext-val ] )              ; 7.1.1
//! chunk-ext-name  = token                                           ; 7.1.1
//! chunk-ext-val   = token / quoted-string                           ; 7.1.1
//! trailer-section = *( field-line CRLF )                            ; 7.1.2
//! ```
//!
//! The body `hello world` in two chunks, as it crosses the wire:
//!
//! ```text
//! 5;note="first"\r\n     chunk-size 5 with one extension (ignored)
//! hello\r\n              5 octets of chunk-data, then CRLF
//! 6\r\n                  chunk-size 6
//!  world\r\n             6 octets of chunk-data, then CRLF
//! 0\r\n                  last-chunk
//! \r\n                   empty trailer section, then the final CRLF
//! ```
//!
//! # How strict, and why
//!
//! A chunked body ends where the decoder says it ends, and the bytes after it
//! are the next request on the connection. If a proxy in front of us and this
//! decoder disagreed about where that is, an attacker could hide a request
//! inside another ("request smuggling", RFC 9112 section 11.2). So this
//! decoder accepts only the grammar above, and nothing "close enough":
//!
//! * `chunk-size` is hex digits only: no sign, no `0x`, no spaces before it;
//!   a value that does not fit in 64 bits is [`ChunkedError::SizeOverflow`].
//! * Every line ends in CRLF. A bare LF, or a CR followed by anything but
//!   LF, is [`ChunkedError::MissingCrlf`].
//! * Extensions are parsed (and then ignored, as 7.1.1 allows) but a
//!   chunk-size line may be at most [`MAX_SIZE_LINE`] bytes.
//! * The trailer section is read and discarded, at most [`MAX_TRAILER`]
//!   bytes of it.
//! * The decoded body may be at most `max_body` bytes; a chunk-size that
//!   would go past it fails at once, before its data arrives.
//!
//! The decoder is a byte-at-a-time state machine (`State`) except for
//! chunk-data, which is copied in bulk. It never looks back at bytes it has
//! already consumed, so input may be cut anywhere.

use std::fmt;

use super::Status;

/// The longest chunk-size line accepted, extensions and CRLF included.
pub const MAX_SIZE_LINE: usize = 4 * 1024;

/// The longest trailer section accepted, its final CRLF included.
pub const MAX_TRAILER: usize = 16 * 1024;

/// Why a chunked body was rejected. Each variant is one rule of the grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkedError {
    /// chunk-size is not `1*HEXDIG` (empty, signed, spaced, `0x`...).
    InvalidSize,
    /// chunk-size does not fit in 64 bits.
    SizeOverflow,
    /// A line did not end in CRLF, or chunk-data was longer than announced.
    MissingCrlf,
    /// A chunk-ext does not follow 7.1.1, or the line is too long.
    InvalidExtension,
    /// The trailer section is longer than [`MAX_TRAILER`].
    TrailerTooLarge,
    /// The decoded body would be longer than the decoder's `max_body`.
    BodyTooLarge,
}

impl fmt::Display for ChunkedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sentence = match self {
            ChunkedError::InvalidSize => "the chunk size is not a hexadecimal number",
            ChunkedError::SizeOverflow => "the chunk size is too large to represent",
            ChunkedError::MissingCrlf => "a line of the chunked body does not end in CRLF",
            ChunkedError::InvalidExtension => "a chunk extension is malformed or too long",
            ChunkedError::TrailerTooLarge => "the trailer section of the chunked body is too large",
            ChunkedError::BodyTooLarge => "the chunked body is larger than allowed",
        };
        f.write_str(sentence)
    }
}

impl std::error::Error for ChunkedError {}

/// Where the decoder is in the grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading the hex digits of chunk-size; `seen_digit` once one arrived.
    Size { seen_digit: bool },
    /// Whitespace right after the digits (BWS); only more of it or `;` may
    /// follow, since BWS in chunk-ext always comes before a `;`.
    SizeBws,
    /// Inside the chunk-ext, at the given point of its grammar.
    Ext(Ext),
    /// The CR ending the chunk-size line was seen; LF must come next.
    SizeLf,
    /// Copying chunk-data; `ChunkedDecoder::size` octets are still to come.
    Data,
    /// chunk-data is complete; the CR of its CRLF must come next.
    DataCr,
    /// The CR after chunk-data was seen; LF must come next.
    DataLf,
    /// At the start of a trailer line, or of the final CRLF.
    TrailerStart,
    /// Inside a trailer field-line (discarded).
    TrailerLine,
    /// The CR ending a field-line was seen; LF must come next.
    TrailerLf,
    /// The CR of the final CRLF was seen; LF must come next.
    EndLf,
    /// The whole chunked body has been decoded.
    Done,
    /// An error was returned; every later call returns it again.
    Failed(ChunkedError),
}

/// Points inside `chunk-ext` (RFC 9112 section 7.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ext {
    /// After `;`: BWS, then the first tchar of a name.
    Semi,
    /// Inside chunk-ext-name.
    Name,
    /// BWS after a name: `=` or `;` may follow.
    NameBws,
    /// After `=`: BWS, then a token or a quoted-string.
    Equals,
    /// Inside a token value.
    Token,
    /// Inside a quoted-string value.
    Quoted,
    /// After a `\` inside a quoted-string.
    QuotedPair,
    /// Right after the closing `"` of a quoted-string.
    AfterQuoted,
    /// BWS after a value: only `;` may follow.
    ValueBws,
}

/// A streaming decoder for one chunked body.
///
/// Feed it the bytes that follow the request head with [`decode`], in as
/// many pieces as they arrive. Create a new decoder for each body.
///
/// [`decode`]: ChunkedDecoder::decode
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
    /// The most body bytes this decoder will produce.
    max_body: usize,
    /// Body bytes produced so far.
    decoded: usize,
    /// The chunk-size being read; while in `State::Data`, what is left of it.
    size: u64,
    /// Bytes of the current chunk-size line so far.
    line_len: usize,
    /// Bytes of the trailer section so far.
    trailer_len: usize,
}

impl ChunkedDecoder {
    /// A decoder that fails with [`ChunkedError::BodyTooLarge`] once the
    /// decoded body would exceed `max_body` bytes.
    pub fn new(max_body: usize) -> Self {
        ChunkedDecoder {
            state: State::Size { seen_digit: false },
            max_body,
            decoded: 0,
            size: 0,
            line_len: 0,
            trailer_len: 0,
        }
    }

    /// Decode `input`, appending chunk data to `body`.
    ///
    /// * `Ok(Status::Partial)`: every byte of `input` was absorbed and the
    ///   body is not finished; call again with the next bytes.
    /// * `Ok(Status::Complete(n))`: the body (its last-chunk and trailer
    ///   section included; trailers are discarded) ended after the first `n`
    ///   bytes of `input`. Bytes after `n` belong to whatever follows the
    ///   body, usually the next request. Calling again returns
    ///   `Complete(0)`.
    /// * `Err(e)`: the body is malformed; the connection cannot be trusted
    ///   any more. Calling again returns the same error.
    pub fn decode(
        &mut self,
        input: &[u8],
        body: &mut Vec<u8>,
    ) -> Result<Status<usize>, ChunkedError> {
        let mut pos = 0;
        loop {
            match self.state {
                State::Done => return Ok(Status::Complete(pos)),
                State::Failed(e) => return Err(e),
                State::Data => {
                    let rest = input.get(pos..).unwrap_or_default();
                    if rest.is_empty() {
                        return Ok(Status::Partial);
                    }
                    // Copy as much chunk-data as this input holds, in bulk.
                    let take = usize::try_from(self.size)
                        .unwrap_or(usize::MAX)
                        .min(rest.len());
                    let (data, _) = rest.split_at(take);
                    body.extend_from_slice(data);
                    self.decoded += take;
                    self.size -= take as u64;
                    pos += take;
                    if self.size == 0 {
                        self.state = State::DataCr;
                    }
                }
                _ => {
                    let Some(&byte) = input.get(pos) else {
                        return Ok(Status::Partial);
                    };
                    pos += 1;
                    if let Err(e) = self.step(byte) {
                        self.state = State::Failed(e);
                        return Err(e);
                    }
                }
            }
        }
    }

    /// Advance the state machine by one byte outside chunk-data.
    fn step(&mut self, byte: u8) -> Result<(), ChunkedError> {
        if self.in_size_line() {
            self.line_len += 1;
            if self.line_len > MAX_SIZE_LINE {
                return Err(match self.state {
                    State::Size { .. } => ChunkedError::InvalidSize,
                    _ => ChunkedError::InvalidExtension,
                });
            }
        }
        if self.in_trailer() {
            self.trailer_len += 1;
            if self.trailer_len > MAX_TRAILER {
                return Err(ChunkedError::TrailerTooLarge);
            }
        }

        self.state = match (self.state, byte) {
            // chunk-size = 1*HEXDIG (7.1)
            (State::Size { .. }, _) if byte.is_ascii_hexdigit() => {
                let digit = u64::from(hex_value(byte));
                self.size = self
                    .size
                    .checked_mul(16)
                    .and_then(|s| s.checked_add(digit))
                    .ok_or(ChunkedError::SizeOverflow)?;
                State::Size { seen_digit: true }
            }
            (State::Size { seen_digit: false }, _) => return Err(ChunkedError::InvalidSize),
            (State::Size { seen_digit: true }, _) => {
                // The digits are over: the size is known, so the body limit
                // can be checked now, before any of the data arrives.
                self.check_body_limit()?;
                match byte {
                    b';' => State::Ext(Ext::Semi),
                    b' ' | b'\t' => State::SizeBws,
                    b'\r' => State::SizeLf,
                    b'\n' => return Err(ChunkedError::MissingCrlf),
                    _ => return Err(ChunkedError::InvalidSize),
                }
            }
            (State::SizeBws, b' ' | b'\t') => State::SizeBws,
            (State::SizeBws, b';') => State::Ext(Ext::Semi),
            (State::SizeBws, b'\n') => return Err(ChunkedError::MissingCrlf),
            (State::SizeBws, _) => return Err(ChunkedError::InvalidSize),

            (State::Ext(ext), _) => step_ext(ext, byte)?,

            // ... CRLF after chunk-size [ chunk-ext ] (7.1)
            (State::SizeLf, b'\n') => {
                self.line_len = 0;
                if self.size == 0 {
                    // last-chunk = 1*("0") [ chunk-ext ] CRLF (7.1)
                    State::TrailerStart
                } else {
                    State::Data
                }
            }
            (State::SizeLf, _) => return Err(ChunkedError::MissingCrlf),

            // chunk-data CRLF (7.1): anything but CR here means the data
            // ran longer than its chunk-size said.
            (State::DataCr, b'\r') => State::DataLf,
            (State::DataCr, _) => return Err(ChunkedError::MissingCrlf),
            (State::DataLf, b'\n') => {
                self.size = 0;
                State::Size { seen_digit: false }
            }
            (State::DataLf, _) => return Err(ChunkedError::MissingCrlf),

            // trailer-section = *( field-line CRLF ), then CRLF (7.1.2)
            (State::TrailerStart, b'\r') => State::EndLf,
            (State::TrailerStart | State::TrailerLine, b'\n') => {
                return Err(ChunkedError::MissingCrlf)
            }
            (State::TrailerLine, b'\r') => State::TrailerLf,
            (State::TrailerStart | State::TrailerLine, _) => State::TrailerLine,
            (State::TrailerLf, b'\n') => State::TrailerStart,
            (State::TrailerLf, _) => return Err(ChunkedError::MissingCrlf),
            (State::EndLf, b'\n') => State::Done,
            (State::EndLf, _) => return Err(ChunkedError::MissingCrlf),

            // `decode` handles these states itself and never calls `step`
            // in them; staying put keeps this total anyway.
            (State::Data | State::Done | State::Failed(_), _) => self.state,
        };
        Ok(())
    }

    /// Fail if a chunk of `self.size` octets would take the body past its
    /// limit.
    fn check_body_limit(&self) -> Result<(), ChunkedError> {
        let room = self.max_body.saturating_sub(self.decoded);
        if self.size > room as u64 {
            return Err(ChunkedError::BodyTooLarge);
        }
        Ok(())
    }

    fn in_size_line(&self) -> bool {
        matches!(
            self.state,
            State::Size { .. } | State::SizeBws | State::Ext(_) | State::SizeLf
        )
    }

    fn in_trailer(&self) -> bool {
        matches!(
            self.state,
            State::TrailerStart | State::TrailerLine | State::TrailerLf | State::EndLf
        )
    }
}

/// One byte of chunk-ext (RFC 9112 section 7.1.1):
///
/// ```text
/// chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
/// ```
fn step_ext(ext: Ext, byte: u8) -> Result<State, ChunkedError> {
    let next = match (ext, byte) {
        // A bare LF ends no line, whatever the extension looks like.
        (_, b'\n') => return Err(ChunkedError::MissingCrlf),

        (Ext::Semi, b' ' | b'\t') => Ext::Semi,
        (Ext::Semi, _) if is_tchar(byte) => Ext::Name,

        (Ext::Name, _) if is_tchar(byte) => Ext::Name,
        (Ext::Name | Ext::NameBws, b' ' | b'\t') => Ext::NameBws,
        (Ext::Name | Ext::NameBws, b'=') => Ext::Equals,
        (Ext::Name | Ext::NameBws, b';') => Ext::Semi,
        (Ext::Name, b'\r') => return Ok(State::SizeLf),

        (Ext::Equals, b' ' | b'\t') => Ext::Equals,
        (Ext::Equals, b'"') => Ext::Quoted,
        (Ext::Equals, _) if is_tchar(byte) => Ext::Token,

        (Ext::Token, _) if is_tchar(byte) => Ext::Token,

        // quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE
        // (RFC 9110 section 5.6.4)
        (Ext::Quoted, b'"') => Ext::AfterQuoted,
        (Ext::Quoted, b'\\') => Ext::QuotedPair,
        (Ext::Quoted, _) if is_qdtext(byte) => Ext::Quoted,
        // quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text )
        (Ext::QuotedPair, b'\t' | b' ' | 0x21..=0x7E | 0x80..=0xFF) => Ext::Quoted,

        // After a whole value: BWS then `;`, or the end of the line.
        (Ext::Token | Ext::AfterQuoted | Ext::ValueBws, b' ' | b'\t') => Ext::ValueBws,
        (Ext::Token | Ext::AfterQuoted | Ext::ValueBws, b';') => Ext::Semi,
        (Ext::Token | Ext::AfterQuoted, b'\r') => return Ok(State::SizeLf),

        _ => return Err(ChunkedError::InvalidExtension),
    };
    Ok(State::Ext(next))
}

/// The value of an ASCII hex digit (the caller has checked it is one).
fn hex_value(byte: u8) -> u8 {
    match byte {
        b'0'..=b'9' => byte - b'0',
        b'a'..=b'f' => byte - b'a' + 10,
        b'A'..=b'F' => byte - b'A' + 10,
        _ => 0,
    }
}

/// tchar (RFC 9110 section 5.6.2): the characters of a token.
fn is_tchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

/// qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text
/// (RFC 9110 section 5.6.4)
fn is_qdtext(byte: u8) -> bool {
    matches!(byte, b'\t' | b' ' | 0x21 | 0x23..=0x5B | 0x5D..=0x7E | 0x80..=0xFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decode `input` in one call: the body and how much input it used.
    fn decode(input: &[u8], max_body: usize) -> Result<(Vec<u8>, Status<usize>), ChunkedError> {
        let mut decoder = ChunkedDecoder::new(max_body);
        let mut body = Vec::new();
        let status = decoder.decode(input, &mut body)?;
        Ok((body, status))
    }

    /// Decode `input` fed in the given pieces; the outcome is reported the
    /// same way as a single call over the whole input would.
    fn decode_pieces(
        pieces: &[&[u8]],
        max_body: usize,
    ) -> Result<(Vec<u8>, Status<usize>), ChunkedError> {
        let mut decoder = ChunkedDecoder::new(max_body);
        let mut body = Vec::new();
        let mut offset = 0;
        for piece in pieces {
            match decoder.decode(piece, &mut body)? {
                Status::Complete(n) => return Ok((body, Status::Complete(offset + n))),
                Status::Partial => offset += piece.len(),
            }
        }
        Ok((body, Status::Partial))
    }

    fn err(input: &[u8]) -> ChunkedError {
        decode(input, 1 << 20).unwrap_err()
    }

    fn complete(input: &[u8]) -> (Vec<u8>, usize) {
        match decode(input, 1 << 20) {
            Ok((body, Status::Complete(n))) => (body, n),
            other => panic!("expected a complete body, got {other:?}"),
        }
    }

    // --- well-formed bodies ---

    #[test]
    fn two_chunks() {
        let input = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
        assert_eq!(complete(input), (b"hello world".to_vec(), input.len()));
    }

    #[test]
    fn empty_body() {
        assert_eq!(complete(b"0\r\n\r\n"), (Vec::new(), 5));
    }

    #[test]
    fn hex_sizes_either_case() {
        let data = [b'x'; 0xAB];
        let mut input = b"aB\r\n".to_vec();
        input.extend_from_slice(&data);
        input.extend_from_slice(b"\r\n0\r\n\r\n");
        assert_eq!(complete(&input).0, data.to_vec());
    }

    #[test]
    fn leading_zeros() {
        assert_eq!(complete(b"0003\r\nabc\r\n000\r\n\r\n").0, b"abc");
    }

    #[test]
    fn token_extension() {
        assert_eq!(complete(b"3;foo=bar\r\nabc\r\n0\r\n\r\n").0, b"abc");
    }

    #[test]
    fn quoted_extension_with_escapes() {
        let input = b"3;a=\"x; \\\"y\\\"\"\r\nabc\r\n0\r\n\r\n";
        assert_eq!(complete(input).0, b"abc");
    }

    #[test]
    fn extension_without_value_and_several() {
        assert_eq!(complete(b"3;a;b=1;c\r\nabc\r\n0;z\r\n\r\n").0, b"abc");
    }

    #[test]
    fn extension_with_bws() {
        let input = b"3 ; a = 1 ; b = \"2\" ;c\r\nabc\r\n0\r\n\r\n";
        assert_eq!(complete(input).0, b"abc");
    }

    #[test]
    fn trailers_are_discarded() {
        let input = b"3\r\nabc\r\n0\r\nX-Sum: 1\r\nX-Other: 2\r\n\r\n";
        assert_eq!(complete(input), (b"abc".to_vec(), input.len()));
    }

    #[test]
    fn complete_reports_where_the_body_ended() {
        let input = b"3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n";
        assert_eq!(complete(input), (b"abc".to_vec(), 13));
    }

    #[test]
    fn decoding_after_complete_uses_nothing() {
        let mut decoder = ChunkedDecoder::new(100);
        let mut body = Vec::new();
        let first = decoder.decode(b"0\r\n\r\n", &mut body);
        assert_eq!(first, Ok(Status::Complete(5)));
        assert_eq!(decoder.decode(b"more", &mut body), Ok(Status::Complete(0)));
    }

    #[test]
    fn partial_until_final_crlf() {
        assert_eq!(
            decode(b"3\r\nabc\r\n0\r\n", 100),
            Ok((b"abc".to_vec(), Status::Partial))
        );
        assert_eq!(
            decode(b"3\r\nabc\r\n0\r\n\r", 100),
            Ok((b"abc".to_vec(), Status::Partial))
        );
    }

    #[test]
    fn body_exactly_at_limit() {
        let input = b"5\r\nhello\r\n0\r\n\r\n";
        assert_eq!(
            decode(input, 5),
            Ok((b"hello".to_vec(), Status::Complete(input.len())))
        );
    }

    #[test]
    fn largest_size_fits_then_is_too_large() {
        assert_eq!(err(b"ffffffffffffffff\r\n"), ChunkedError::BodyTooLarge);
    }

    // --- malformed: chunk-size ---

    #[test]
    fn empty_size_line() {
        assert_eq!(err(b"\r\n"), ChunkedError::InvalidSize);
    }

    #[test]
    fn negative_size() {
        assert_eq!(err(b"-5\r\n"), ChunkedError::InvalidSize);
    }

    #[test]
    fn plus_sign() {
        assert_eq!(err(b"+5\r\n"), ChunkedError::InvalidSize);
    }

    #[test]
    fn leading_space() {
        assert_eq!(err(b" 5\r\n"), ChunkedError::InvalidSize);
    }

    #[test]
    fn trailing_space_without_extension() {
        assert_eq!(err(b"5 \r\nhello\r\n"), ChunkedError::InvalidSize);
    }

    #[test]
    fn hex_prefix() {
        assert_eq!(err(b"0x5\r\n"), ChunkedError::InvalidSize);
    }

    #[test]
    fn non_hex_digit() {
        assert_eq!(err(b"5g\r\n"), ChunkedError::InvalidSize);
    }

    #[test]
    fn size_overflow() {
        assert_eq!(err(b"10000000000000000\r\n"), ChunkedError::SizeOverflow);
    }

    #[test]
    fn endless_leading_zeros() {
        let input = vec![b'0'; MAX_SIZE_LINE + 1];
        assert_eq!(err(&input), ChunkedError::InvalidSize);
    }

    // --- malformed: line endings ---

    #[test]
    fn bare_lf_after_size() {
        assert_eq!(err(b"5\nhello\r\n0\r\n\r\n"), ChunkedError::MissingCrlf);
    }

    #[test]
    fn cr_without_lf_after_size() {
        assert_eq!(err(b"5\rhello"), ChunkedError::MissingCrlf);
    }

    #[test]
    fn bare_lf_after_extension() {
        assert_eq!(err(b"5;a=b\nhello"), ChunkedError::MissingCrlf);
    }

    #[test]
    fn bare_lf_after_data() {
        assert_eq!(err(b"5\r\nhello\n0\r\n\r\n"), ChunkedError::MissingCrlf);
    }

    #[test]
    fn data_longer_than_size() {
        assert_eq!(err(b"5\r\nhello!\r\n"), ChunkedError::MissingCrlf);
    }

    #[test]
    fn cr_without_lf_after_data() {
        assert_eq!(err(b"5\r\nhello\rX"), ChunkedError::MissingCrlf);
    }

    #[test]
    fn bare_lf_ending_the_body() {
        assert_eq!(err(b"0\r\n\n"), ChunkedError::MissingCrlf);
    }

    #[test]
    fn bare_lf_in_trailer() {
        assert_eq!(err(b"0\r\nX-A: 1\n\r\n"), ChunkedError::MissingCrlf);
    }

    #[test]
    fn cr_without_lf_in_trailer() {
        assert_eq!(err(b"0\r\nX-A: 1\rX"), ChunkedError::MissingCrlf);
    }

    #[test]
    fn cr_without_lf_at_end() {
        assert_eq!(err(b"0\r\n\rX"), ChunkedError::MissingCrlf);
    }

    // --- malformed: chunk-ext ---

    #[test]
    fn extension_without_name() {
        assert_eq!(err(b"5;\r\n"), ChunkedError::InvalidExtension);
    }

    #[test]
    fn extension_empty_name_with_value() {
        assert_eq!(err(b"5;=x\r\n"), ChunkedError::InvalidExtension);
    }

    #[test]
    fn extension_missing_value() {
        assert_eq!(err(b"5;a=\r\n"), ChunkedError::InvalidExtension);
    }

    #[test]
    fn extension_unterminated_quote() {
        assert_eq!(err(b"5;a=\"x\r\n"), ChunkedError::InvalidExtension);
    }

    #[test]
    fn extension_two_words() {
        assert_eq!(err(b"5;a b\r\n"), ChunkedError::InvalidExtension);
    }

    #[test]
    fn extension_trailing_space() {
        assert_eq!(err(b"5;a=b \r\n"), ChunkedError::InvalidExtension);
    }

    #[test]
    fn extension_bad_name_char() {
        assert_eq!(err(b"5;a@b\r\n"), ChunkedError::InvalidExtension);
    }

    #[test]
    fn extension_control_char_in_quotes() {
        assert_eq!(err(b"5;a=\"\x01\"\r\n"), ChunkedError::InvalidExtension);
    }

    #[test]
    fn extension_too_long() {
        let mut input = b"5;a=".to_vec();
        input.extend_from_slice(&[b'x'; MAX_SIZE_LINE]);
        input.extend_from_slice(b"\r\n");
        assert_eq!(err(&input), ChunkedError::InvalidExtension);
    }

    // --- limits ---

    #[test]
    fn trailer_too_large() {
        let mut input = b"0\r\n".to_vec();
        for _ in 0..MAX_TRAILER / 16 + 1 {
            input.extend_from_slice(b"X-Padding: 1234\r\n");
        }
        input.extend_from_slice(b"\r\n");
        assert_eq!(err(&input), ChunkedError::TrailerTooLarge);
    }

    #[test]
    fn body_too_large_before_data_arrives() {
        // The size line alone (not even its LF) is enough to refuse.
        assert_eq!(decode(b"6\r", 5), Err(ChunkedError::BodyTooLarge));
    }

    #[test]
    fn body_too_large_across_chunks() {
        let input = b"5\r\nhello\r\n4\r\n";
        assert_eq!(decode(input, 8), Err(ChunkedError::BodyTooLarge));
    }

    #[test]
    fn errors_are_sticky() {
        let mut decoder = ChunkedDecoder::new(100);
        let mut body = Vec::new();
        assert_eq!(
            decoder.decode(b"x", &mut body),
            Err(ChunkedError::InvalidSize)
        );
        assert_eq!(
            decoder.decode(b"0\r\n\r\n", &mut body),
            Err(ChunkedError::InvalidSize)
        );
    }

    #[test]
    fn display_is_a_sentence() {
        assert_eq!(
            ChunkedError::MissingCrlf.to_string(),
            "a line of the chunked body does not end in CRLF"
        );
    }

    // --- split points ---

    /// Fixtures, good and bad, with the limit to decode them under.
    const FIXTURES: &[(&[u8], usize)] = &[
        (b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", 100),
        (b"0\r\n\r\n", 100),
        (
            b"3;a=\"q;\\\"\" ; b\r\nabc\r\n0;x=y\r\nT: 1\r\nU: 2\r\n\r\nnext",
            100,
        ),
        (
            b"1\r\na\r\n1\r\nb\r\n10\r\n0123456789abcdef\r\n0\r\n\r\nGET",
            100,
        ),
        (b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", 8),
        (b"5\nhello\r\n0\r\n\r\n", 100),
        (b"5\r\nhello!\r\n", 100),
        (b"5;a b\r\nhello\r\n", 100),
        (b"-1\r\n", 100),
        (b"10000000000000000\r\n", 100),
        (b"3\r\nabc\r\n0\r\n", 100),
        (b"3\r\nab", 100),
    ];

    #[test]
    fn split_at_every_offset() {
        for &(input, max) in FIXTURES {
            let whole = decode(input, max);
            for cut in 0..=input.len() {
                let (a, b) = input.split_at(cut);
                assert_eq!(
                    decode_pieces(&[a, b], max),
                    whole,
                    "cut at {cut} of {input:?}"
                );
            }
        }
    }

    #[test]
    fn one_byte_at_a_time() {
        for &(input, max) in FIXTURES {
            let pieces: Vec<&[u8]> = input.chunks(1).collect();
            assert_eq!(decode_pieces(&pieces, max), decode(input, max), "{input:?}");
        }
    }
}
