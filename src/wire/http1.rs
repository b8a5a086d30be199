//! HTTP/1.1 messages (RFC 9112): request heads in, response heads out.
//!
//! ```text
//! request-line   = method SP request-target SP HTTP-version CRLF   (section 3)
//! field-line     = field-name ":" OWS field-value OWS CRLF          (section 5)
//! head           = request-line *( field-line ) CRLF
//! body           = decided by section 6.3 (see `body_framing`)
//!
//! GET /checkstatus?jobId=job:1&wait=5 HTTP/1.1\r\n
//! Host: 127.0.0.1:8080\r\n
//! \r\n
//! ```
//!
//! The tokenizing is `httparse`'s (zero-copy: every `&str` and `&[u8]` here
//! borrows the caller's buffer). This file adds what a server must decide on
//! top of the tokens: the size limits (414/431), the versions it speaks
//! (505), the request-target forms it accepts, and above all the body-length
//! rules, because a server and a proxy that disagree on where a body ends
//! are how request smuggling starts.

use super::Status;

/// How many header fields a request may carry (more: 431).
pub const MAX_HEADERS: usize = 64;

/// A parsed request head. Borrowed from the read buffer.
#[derive(Debug)]
pub struct Head<'h, 'b> {
    pub method: &'b str,
    /// Path of the request target (origin-form), before any `?`.
    pub path: &'b str,
    /// Query string after `?`, without it; empty when there is none.
    pub query: &'b str,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    pub headers: &'h [httparse::Header<'b>],
}

/// Why a request head was refused. Each maps to one status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadError {
    /// 400: not HTTP/1.x syntax; the sentence says what.
    Malformed(&'static str),
    /// 414: the request line is longer than the limit.
    UriTooLong,
    /// 431: the header section is longer than the limit, or has too many fields.
    HeadersTooLarge,
    /// 505: a well-formed version other than 1.0 and 1.1.
    VersionNotSupported,
}

impl HeadError {
    pub fn status(self) -> u16 {
        match self {
            HeadError::Malformed(_) => 400,
            HeadError::UriTooLong => 414,
            HeadError::HeadersTooLarge => 431,
            HeadError::VersionNotSupported => 505,
        }
    }

    pub fn sentence(self) -> &'static str {
        match self {
            HeadError::Malformed(s) => s,
            HeadError::UriTooLong => "the request line is longer than the server accepts",
            HeadError::HeadersTooLarge => "the header section is larger than the server accepts",
            HeadError::VersionNotSupported => "only HTTP/1.0 and HTTP/1.1 are supported",
        }
    }
}

/// Parses a request head from the start of `buf`.
///
/// `Complete((head, n))`: the head is the first `n` bytes (body or the next
/// pipelined request follow). `Partial`: not all of it has arrived and the
/// limits are not exceeded yet, so read more.
///
/// `max` bounds the request line (else 414) and, separately, the header
/// section (else 431), as docs/api.md says.
pub fn parse_head<'h, 'b>(
    buf: &'b [u8],
    headers: &'h mut [httparse::Header<'b>; MAX_HEADERS],
    max: usize,
) -> Result<Status<(Head<'h, 'b>, usize)>, HeadError> {
    // RFC 9112 section 2.2: a server SHOULD ignore at least one empty line
    // received before the request-line (httparse skips them too; we measure
    // the limits from the real request-line).
    let skipped = buf
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count();
    let line_end = buf[skipped..].iter().position(|&b| b == b'\n');
    match line_end {
        None if buf.len() - skipped > max => return Err(HeadError::UriTooLong),
        Some(i) if i > max => return Err(HeadError::UriTooLong),
        _ => {}
    }
    let mut req = httparse::Request::new(headers);
    let n = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            if let Some(i) = line_end {
                if section_too_large(buf.len() - skipped, i, max) {
                    return Err(HeadError::HeadersTooLarge);
                }
            }
            return Ok(Status::Partial);
        }
        Err(e) => return Err(classify(e, &buf[skipped..])),
    };
    if let Some(i) = line_end {
        if section_too_large(n - skipped, i, max) {
            return Err(HeadError::HeadersTooLarge);
        }
    }
    // All three are Some on Complete (httparse's contract); treat a missing
    // one as malformed rather than trusting that with an unwrap.
    let (Some(method), Some(target), Some(minor_version)) = (req.method, req.path, req.version)
    else {
        return Err(HeadError::Malformed("incomplete request line"));
    };
    let target = origin_form(target)?;
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    Ok(Status::Complete((
        Head {
            method,
            path,
            query,
            minor_version,
            headers: req.headers,
        },
        n,
    )))
}

/// Is the header section (what follows the request line, the final blank
/// line not counted) longer than `max`? `len` is the bytes of the head seen
/// so far, `line_end` the index of the request line's LF. One rule for a
/// complete head and for one still arriving, so the answer never depends
/// on where a read happened to end (found by fuzzing).
fn section_too_large(len: usize, line_end: usize, max: usize) -> bool {
    len.saturating_sub(line_end + 1) > max.saturating_add(2)
}

/// RFC 9112 section 3.2: a server must accept the origin-form (`/path?q`),
/// the absolute-form (`http://host/path`, sent to proxies, and servers MUST
/// accept it) and, for OPTIONS, the asterisk-form. We reduce all of them to
/// the origin-form.
fn origin_form(target: &str) -> Result<&str, HeadError> {
    if target.starts_with('/') || target == "*" {
        return Ok(target);
    }
    // Compared as bytes: slicing the `str` at a fixed index could cut a
    // multi-byte character in two and panic (found by fuzzing).
    let lower_starts = |p: &str| {
        target
            .as_bytes()
            .get(..p.len())
            .is_some_and(|t| t.eq_ignore_ascii_case(p.as_bytes()))
    };
    for scheme in ["http://", "https://"] {
        if lower_starts(scheme) {
            let rest = &target[scheme.len()..];
            return Ok(match rest.find('/') {
                Some(i) => &rest[i..],
                None => "/",
            });
        }
    }
    Err(HeadError::Malformed("the request target is not a path"))
}

/// Turns an httparse error into our answer. httparse reports a version it
/// does not know (`HTTP/2.0`, `HTTP/1.2`) the same way as garbage, but RFC
/// 9110 section 15.6.6 gives the well-formed-but-unsupported case its own
/// status, 505.
fn classify(e: httparse::Error, buf: &[u8]) -> HeadError {
    match e {
        httparse::Error::Version => {
            let line = buf.split(|&b| b == b'\n').next().unwrap_or(&[]);
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let version = line.rsplit(|&b| b == b' ').next().unwrap_or(&[]);
            // HTTP-version = "HTTP/" DIGIT "." DIGIT (RFC 9112 section 2.3)
            let well_formed = version.len() == 8
                && version.starts_with(b"HTTP/")
                && version[5].is_ascii_digit()
                && version[6] == b'.'
                && version[7].is_ascii_digit();
            if well_formed {
                HeadError::VersionNotSupported
            } else {
                HeadError::Malformed("the request line is not HTTP/1.x")
            }
        }
        // RFC 9112 section 5.1: no whitespace is allowed between the field
        // name and the colon; a server MUST reject such a message with 400.
        httparse::Error::HeaderName => HeadError::Malformed(
            "a header line is invalid (no space may precede the colon, and lines may not be folded)",
        ),
        httparse::Error::HeaderValue => HeadError::Malformed("a header value has invalid bytes"),
        httparse::Error::TooManyHeaders => HeadError::HeadersTooLarge,
        httparse::Error::Token => {
            HeadError::Malformed("the request line is malformed (expected METHOD SP target SP HTTP/1.1)")
        }
        httparse::Error::NewLine => HeadError::Malformed("a line ending is invalid"),
        httparse::Error::Status => HeadError::Malformed("the request line is invalid"),
    }
}

impl<'h, 'b> Head<'h, 'b> {
    /// All values of the header `name` (case-insensitive), in order.
    pub fn values(&self, name: &'static str) -> impl Iterator<Item = &'b [u8]> + '_ {
        self.headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    }

    /// The first value of header `name` as text (trimmed); None if absent or
    /// not visible ASCII.
    pub fn header(&self, name: &'static str) -> Option<&'b str> {
        let v = self.values(name).next()?;
        std::str::from_utf8(v).ok().map(str::trim)
    }

    /// Does a comma-separated header (like `Connection`) hold `token`?
    /// Tokens are case-insensitive (RFC 9110 section 7.6.1).
    pub fn has_token(&self, name: &'static str, token: &str) -> bool {
        self.values(name)
            .flat_map(|v| v.split(|&b| b == b','))
            .any(|t| trim_ows(t).eq_ignore_ascii_case(token.as_bytes()))
    }

    /// RFC 9112 section 9.3: HTTP/1.1 is persistent unless `Connection:
    /// close`; HTTP/1.0 only with `Connection: keep-alive`.
    pub fn keep_alive(&self) -> bool {
        if self.has_token("connection", "close") {
            return false;
        }
        self.minor_version == 1 || self.has_token("connection", "keep-alive")
    }
}

/// RFC 9112 section 3.2: "A server MUST respond with a 400 (Bad Request)
/// status code to any HTTP/1.1 request message that lacks a Host header
/// field and to any request message that contains more than one Host header
/// field line". (HTTP/1.0 predates Host, so one is optional there.)
pub fn check_host(head: &Head<'_, '_>) -> Result<(), HeadError> {
    match head.values("host").count() {
        0 if head.minor_version == 1 => Err(HeadError::Malformed(
            "an HTTP/1.1 request needs a Host header",
        )),
        0 | 1 => Ok(()),
        _ => Err(HeadError::Malformed(
            "a request may carry only one Host header",
        )),
    }
}

/// Does the client wait for `100 Continue` before sending its body
/// (RFC 9110 section 10.1.1)?
pub fn expects_continue(head: &Head<'_, '_>) -> bool {
    head.minor_version == 1 && head.has_token("expect", "100-continue")
}

/// Trims optional whitespace (SP / HTAB, RFC 9110 section 5.6.3).
pub fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Where a request body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body at all.
    Empty,
    /// Exactly this many bytes follow the head.
    Length(u64),
    /// The chunked transfer coding follows (see `chunked.rs`).
    Chunked,
}

/// Why the body length could not be decided. The connection must be closed
/// after the answer: we cannot know where the next request would start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FramingError {
    /// 400: ambiguous or invalid framing.
    Ambiguous(&'static str),
    /// 501: a transfer coding we do not implement (e.g. `gzip, chunked`).
    UnsupportedCoding,
}

impl FramingError {
    pub fn status(self) -> u16 {
        match self {
            FramingError::Ambiguous(_) => 400,
            FramingError::UnsupportedCoding => 501,
        }
    }

    pub fn sentence(self) -> &'static str {
        match self {
            FramingError::Ambiguous(s) => s,
            FramingError::UnsupportedCoding => {
                "only the chunked transfer coding is supported (no gzip, deflate or compress)"
            }
        }
    }
}

/// RFC 9112 section 6.3, "Message Body Length", as it applies to requests.
/// The numbered rules are the RFC's; rules 1 to 3 are about responses.
pub fn body_framing(head: &Head<'_, '_>) -> Result<BodyFraming, FramingError> {
    let has_te = head.values("transfer-encoding").next().is_some();
    let has_cl = head.values("content-length").next().is_some();

    // Rule 4 and section 6.1: a request with both is a smuggling attempt or
    // a broken client; "a server MAY reject ... with 400 and then close".
    // We always do.
    if has_te && has_cl {
        return Err(FramingError::Ambiguous(
            "both Content-Length and Transfer-Encoding were sent",
        ));
    }
    if has_te {
        // Section 6.1: HTTP/1.0 has no transfer codings; such a message
        // "MUST" be treated as having faulty framing.
        if head.minor_version == 0 {
            return Err(FramingError::Ambiguous(
                "Transfer-Encoding is not allowed in HTTP/1.0",
            ));
        }
        // The codings of every Transfer-Encoding field line, in order.
        let mut codings = head
            .values("transfer-encoding")
            .flat_map(|v| v.split(|&b| b == b','))
            .map(trim_ows);
        let mut count = 0usize;
        let mut chunked_seen = false;
        let mut last_is_chunked = false;
        for c in codings.by_ref() {
            if c.is_empty() {
                continue;
            }
            count += 1;
            last_is_chunked = c.eq_ignore_ascii_case(b"chunked");
            if last_is_chunked {
                // Section 7: "A sender MUST NOT apply the chunked transfer
                // coding more than once to a message body."
                if chunked_seen {
                    return Err(FramingError::Ambiguous(
                        "chunked was applied more than once",
                    ));
                }
                chunked_seen = true;
            }
        }
        // Rule 4: "If a Transfer-Encoding header field is present in a
        // request and the chunked transfer coding is not the final
        // encoding, the message body length cannot be determined reliably;
        // the server MUST respond with the 400 (Bad Request) status code and
        // then close the connection."
        if !last_is_chunked {
            return Err(FramingError::Ambiguous(
                "the final transfer coding is not chunked, so the body length is unknown",
            ));
        }
        // Chunked is final but something precedes it (gzip, chunked): the
        // framing is clear but we cannot decode the content (section 6.1:
        // 501 for a coding the server does not understand).
        if count > 1 {
            return Err(FramingError::UnsupportedCoding);
        }
        return Ok(BodyFraming::Chunked);
    }
    if has_cl {
        // Rule 5: several Content-Length values (several lines, or a list
        // like `5, 6`) that differ are unrecoverable; identical ones
        // (`5, 5`) may be taken as one.
        let mut length: Option<u64> = None;
        for v in head.values("content-length") {
            for part in v.split(|&b| b == b',') {
                let n = parse_content_length(trim_ows(part)).ok_or(FramingError::Ambiguous(
                    "Content-Length is not a non-negative decimal number",
                ))?;
                match length {
                    Some(prev) if prev != n => {
                        return Err(FramingError::Ambiguous(
                            "several different Content-Length values were sent",
                        ))
                    }
                    _ => length = Some(n),
                }
            }
        }
        return Ok(match length {
            Some(0) | None => BodyFraming::Empty,
            Some(n) => BodyFraming::Length(n),
        });
    }
    // Rule 7: "If this is a request message and none of the above are true,
    // then the message body length is zero."
    Ok(BodyFraming::Empty)
}

/// `Content-Length = 1*DIGIT` (RFC 9110 section 8.6), bounded to u64.
fn parse_content_length(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    s.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

// ----- the client side: responses in, requests out --------------------------
//
// The webhook sender is an HTTP client on the same loop. It writes a request
// and reads back one response:
//
//   status-line = HTTP-version SP status-code SP [ reason-phrase ] CRLF   (section 4)

/// A parsed response head, borrowed from the read buffer.
#[derive(Debug)]
pub struct ResponseHead<'h, 'b> {
    pub status: u16,
    pub headers: &'h [httparse::Header<'b>],
}

/// Parses a response head from the start of `buf` (at most `max` bytes).
pub fn parse_response_head<'h, 'b>(
    buf: &'b [u8],
    headers: &'h mut [httparse::Header<'b>; MAX_HEADERS],
    max: usize,
) -> Result<Status<(ResponseHead<'h, 'b>, usize)>, HeadError> {
    let mut res = httparse::Response::new(headers);
    match res.parse(buf) {
        // The limit applies to a complete head as to one still arriving,
        // so the answer does not depend on how the bytes were split.
        Ok(httparse::Status::Complete(n)) if n > max => Err(HeadError::HeadersTooLarge),
        Ok(httparse::Status::Complete(n)) => match res.code {
            Some(status) => Ok(Status::Complete((
                ResponseHead {
                    status,
                    headers: res.headers,
                },
                n,
            ))),
            None => Err(HeadError::Malformed("the status line is incomplete")),
        },
        Ok(httparse::Status::Partial) if buf.len() > max => Err(HeadError::HeadersTooLarge),
        Ok(httparse::Status::Partial) => Ok(Status::Partial),
        Err(httparse::Error::TooManyHeaders) => Err(HeadError::HeadersTooLarge),
        Err(_) => Err(HeadError::Malformed("the response is not HTTP/1.x")),
    }
}

/// Where a response body ends: RFC 9112 section 6.3 as it applies to
/// responses, plus rule 8 (read until the connection closes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseBody {
    /// Rules 1 and 2: no body (1xx, 204, 304, or an answer to HEAD).
    None,
    Length(u64),
    Chunked,
    /// Rule 8: the body ends when the server closes the connection.
    UntilClose,
}

/// Decides how a response's body is framed.
pub fn response_body(
    head: &ResponseHead<'_, '_>,
    request_was_head: bool,
) -> Result<ResponseBody, FramingError> {
    // Rule 1: HEAD answers, 1xx, 204 and 304 never have a body.
    if request_was_head || head.status < 200 || head.status == 204 || head.status == 304 {
        return Ok(ResponseBody::None);
    }
    let values = |name: &'static str| {
        head.headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    };
    // Rule 3: Transfer-Encoding overrides Content-Length; chunked must be
    // final, or the body runs until close.
    if values("transfer-encoding").next().is_some() {
        let last = values("transfer-encoding")
            .flat_map(|v| v.split(|&b| b == b','))
            .map(trim_ows)
            .rfind(|c| !c.is_empty());
        return match last {
            Some(c) if c.eq_ignore_ascii_case(b"chunked") => Ok(ResponseBody::Chunked),
            Some(_) => Ok(ResponseBody::UntilClose),
            // Present but naming no coding: it still overrides
            // Content-Length, so the length cannot be known (found by
            // fuzzing; a request like this is refused the same way).
            None => Err(FramingError::Ambiguous("Transfer-Encoding names no coding")),
        };
    }
    // Rules 5 and 6.
    let mut length = None;
    for part in values("content-length").flat_map(|v| v.split(|&b| b == b',')) {
        let n = parse_content_length(trim_ows(part))
            .ok_or(FramingError::Ambiguous("Content-Length is not a number"))?;
        if length.is_some_and(|l| l != n) {
            return Err(FramingError::Ambiguous(
                "several different Content-Length values",
            ));
        }
        length = Some(n);
    }
    Ok(length.map_or(ResponseBody::UntilClose, ResponseBody::Length))
}

/// Appends a request head: `METHOD target HTTP/1.1`, `Host`, the given
/// fields, then the blank line.
pub fn write_request_head(
    out: &mut Vec<u8>,
    method: &str,
    target: &str,
    host: &str,
    fields: &[(&str, &[u8])],
) {
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    write_header(out, "Host", host.as_bytes());
    for (name, value) in fields {
        write_header(out, name, value);
    }
    out.extend_from_slice(b"\r\n");
}

/// The reason phrase we send with each status (RFC 9110 section 15).
pub fn reason(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        414 => "URI Too Long",
        426 => "Upgrade Required",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// Appends `HTTP/1.1 <status> <reason>\r\n` (RFC 9112 section 4).
pub fn write_status_line(out: &mut Vec<u8>, status: u16) {
    out.extend_from_slice(b"HTTP/1.1 ");
    push_decimal(out, u64::from(status));
    out.push(b' ');
    out.extend_from_slice(reason(status).as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Appends `name: value\r\n`. The server only writes values it built; a CR
/// or LF in one would split the head (response splitting), so they are
/// replaced by spaces as a last line of defence.
pub fn write_header(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    let start = out.len();
    out.extend_from_slice(value);
    for b in &mut out[start..] {
        if *b == b'\r' || *b == b'\n' {
            *b = b' ';
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// Appends a decimal number without allocating.
pub fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(buf: &[u8]) -> Result<Status<usize>, HeadError> {
        let mut h = [httparse::EMPTY_HEADER; MAX_HEADERS];
        parse_head(buf, &mut h, 1024).map(|s| match s {
            Status::Complete((_, n)) => Status::Complete(n),
            Status::Partial => Status::Partial,
        })
    }

    fn framing(buf: &[u8]) -> Result<BodyFraming, FramingError> {
        let mut h = [httparse::EMPTY_HEADER; MAX_HEADERS];
        match parse_head(buf, &mut h, 1024) {
            Ok(Status::Complete((head, _))) => body_framing(&head),
            other => panic!("head did not parse: {other:?}"),
        }
    }

    #[test]
    fn simple_get() {
        let buf = b"GET /checkstatus?jobId=job:1 HTTP/1.1\r\nHost: x\r\n\r\nNEXT";
        let mut h = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let Ok(Status::Complete((head, n))) = parse_head(buf, &mut h, 1024) else {
            panic!()
        };
        assert_eq!(n, buf.len() - 4);
        assert_eq!(head.method, "GET");
        assert_eq!(head.path, "/checkstatus");
        assert_eq!(head.query, "jobId=job:1");
        assert_eq!(head.minor_version, 1);
        assert_eq!(head.header("HOST"), Some("x"));
        assert!(head.keep_alive());
    }

    #[test]
    fn partial_until_blank_line() {
        let full = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        for cut in 0..full.len() {
            assert_eq!(parse(&full[..cut]), Ok(Status::Partial), "cut at {cut}");
        }
        assert_eq!(parse(full), Ok(Status::Complete(full.len())));
    }

    #[test]
    fn leading_empty_line_is_ignored() {
        assert!(matches!(
            parse(b"\r\nGET / HTTP/1.1\r\n\r\n"),
            Ok(Status::Complete(_))
        ));
    }

    #[test]
    fn space_before_colon_is_400() {
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\nHost : x\r\n\r\n")
                .unwrap_err()
                .status(),
            400
        );
    }

    #[test]
    fn http2_and_1_2_are_505() {
        assert_eq!(parse(b"GET / HTTP/2.0\r\n\r\n").unwrap_err().status(), 505);
        assert_eq!(parse(b"GET / HTTP/1.2\r\n\r\n").unwrap_err().status(), 505);
    }

    #[test]
    fn garbage_version_is_400() {
        assert_eq!(parse(b"GET / FOO\r\n\r\n").unwrap_err().status(), 400);
        assert_eq!(parse(b"GET / HTTP/1.10\r\n\r\n").unwrap_err().status(), 400);
    }

    #[test]
    fn long_request_line_is_414_even_before_it_ends() {
        let mut buf = b"GET /".to_vec();
        buf.resize(2000, b'a');
        assert_eq!(parse(&buf).unwrap_err(), HeadError::UriTooLong);
        buf.extend_from_slice(b" HTTP/1.1\r\n\r\n");
        assert_eq!(parse(&buf).unwrap_err(), HeadError::UriTooLong);
    }

    #[test]
    fn long_header_section_is_431() {
        let mut buf = b"GET / HTTP/1.1\r\nX: ".to_vec();
        buf.resize(2000, b'a');
        assert_eq!(parse(&buf).unwrap_err(), HeadError::HeadersTooLarge);
        buf.extend_from_slice(b"\r\n\r\n");
        assert_eq!(parse(&buf).unwrap_err(), HeadError::HeadersTooLarge);
    }

    #[test]
    fn too_many_headers_is_431() {
        let mut buf = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..(MAX_HEADERS + 1) {
            buf.extend_from_slice(format!("X{i}: y\r\n").as_bytes());
        }
        buf.extend_from_slice(b"\r\n");
        let mut h = [httparse::EMPTY_HEADER; MAX_HEADERS];
        assert_eq!(
            parse_head(&buf, &mut h, 4096).unwrap_err(),
            HeadError::HeadersTooLarge
        );
    }

    // Regression (fuzz/regressions/http_head): a target whose 7th byte is
    // inside a multi-byte character made the scheme check slice a str at a
    // non-boundary and panic, taking the whole server down.
    #[test]
    fn non_ascii_target_not_starting_with_slash_is_400_not_a_panic() {
        let e = parse("GET abcdefé HTTP/1.1\r\n\r\n".as_bytes()).unwrap_err();
        assert_eq!(e.status(), 400);
        let e = parse("GET https:/é/x HTTP/1.1\r\n\r\n".as_bytes()).unwrap_err();
        assert_eq!(e.status(), 400);
    }

    // Regression (fuzz/regressions/http_head): the 431 limit gave a different
    // answer when a read ended between the final CR and LF.
    #[test]
    fn header_section_limit_does_not_depend_on_the_split() {
        let full = b"GET / HTTP/1.1\r\nX: 0123456789\r\n\r\n";
        for max in 10..24 {
            let whole = {
                let mut h = [httparse::EMPTY_HEADER; MAX_HEADERS];
                parse_head(full, &mut h, max).map(|s| matches!(s, Status::Complete(_)))
            };
            for cut in 0..full.len() {
                let mut h = [httparse::EMPTY_HEADER; MAX_HEADERS];
                if let Err(e) = parse_head(&full[..cut], &mut h, max) {
                    assert_eq!(whole, Err(e), "max {max}, cut {cut}");
                }
            }
        }
    }

    #[test]
    fn absolute_form_is_reduced_to_a_path() {
        let buf = b"GET http://example.com/submit?x=1 HTTP/1.1\r\n\r\n";
        let mut h = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let Ok(Status::Complete((head, _))) = parse_head(buf, &mut h, 1024) else {
            panic!()
        };
        assert_eq!((head.path, head.query), ("/submit", "x=1"));
    }

    #[test]
    fn keep_alive_rules() {
        let ka = |b: &[u8]| {
            let mut h = [httparse::EMPTY_HEADER; MAX_HEADERS];
            match parse_head(b, &mut h, 1024) {
                Ok(Status::Complete((head, _))) => head.keep_alive(),
                _ => panic!(),
            }
        };
        assert!(ka(b"GET / HTTP/1.1\r\n\r\n"));
        assert!(!ka(b"GET / HTTP/1.1\r\nConnection: Close\r\n\r\n"));
        assert!(!ka(b"GET / HTTP/1.0\r\n\r\n"));
        assert!(ka(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
    }

    #[test]
    fn no_length_headers_means_empty_body() {
        assert_eq!(framing(b"POST / HTTP/1.1\r\n\r\n"), Ok(BodyFraming::Empty));
    }

    #[test]
    fn content_length() {
        assert_eq!(
            framing(b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n"),
            Ok(BodyFraming::Length(5))
        );
        assert_eq!(
            framing(b"POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n"),
            Ok(BodyFraming::Length(5))
        );
    }

    #[test]
    fn content_length_list_that_differs_is_400() {
        let e = framing(b"POST / HTTP/1.1\r\nContent-Length: 5, 6\r\n\r\n").unwrap_err();
        assert_eq!(e.status(), 400);
    }

    #[test]
    fn two_different_content_length_lines_are_400() {
        let e = framing(b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n");
        assert_eq!(e.unwrap_err().status(), 400);
    }

    #[test]
    fn content_length_not_a_number_is_400() {
        for v in ["-1", "+5", "0x10", "1.5", "", "99999999999999999999"] {
            let req = format!("POST / HTTP/1.1\r\nContent-Length: {v}\r\n\r\n");
            assert_eq!(framing(req.as_bytes()).unwrap_err().status(), 400, "{v:?}");
        }
    }

    #[test]
    fn both_length_and_chunked_is_400() {
        let e =
            framing(b"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(e.unwrap_err().status(), 400);
    }

    #[test]
    fn chunked() {
        assert_eq!(
            framing(b"POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n"),
            Ok(BodyFraming::Chunked)
        );
    }

    #[test]
    fn final_coding_not_chunked_is_400() {
        let e = framing(b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n");
        assert_eq!(e.unwrap_err().status(), 400);
        let e = framing(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n");
        assert_eq!(e.unwrap_err().status(), 400);
    }

    #[test]
    fn coding_before_chunked_is_501() {
        let e = framing(b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
        assert_eq!(e.unwrap_err().status(), 501);
        let e = framing(
            b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n",
        );
        assert_eq!(e.unwrap_err().status(), 501);
    }

    #[test]
    fn chunked_twice_is_400() {
        let e = framing(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n");
        assert_eq!(e.unwrap_err().status(), 400);
    }

    #[test]
    fn transfer_encoding_in_http_1_0_is_400() {
        let e = framing(b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(e.unwrap_err().status(), 400);
    }

    #[test]
    fn host_rules() {
        let check = |b: &[u8]| {
            let mut h = [httparse::EMPTY_HEADER; MAX_HEADERS];
            match parse_head(b, &mut h, 1024) {
                Ok(Status::Complete((head, _))) => check_host(&head),
                _ => panic!(),
            }
        };
        assert!(check(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").is_ok());
        assert!(check(b"GET / HTTP/1.0\r\n\r\n").is_ok());
        assert_eq!(check(b"GET / HTTP/1.1\r\n\r\n").unwrap_err().status(), 400);
        assert_eq!(
            check(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
                .unwrap_err()
                .status(),
            400
        );
    }

    #[test]
    fn status_line_and_headers() {
        let mut out = Vec::new();
        write_status_line(&mut out, 404);
        write_header(&mut out, "X", b"a\r\nb");
        assert_eq!(out, b"HTTP/1.1 404 Not Found\r\nX: a  b\r\n");
    }

    fn response(buf: &[u8], head_req: bool) -> (u16, Result<ResponseBody, FramingError>) {
        let mut h = [httparse::EMPTY_HEADER; MAX_HEADERS];
        match parse_response_head(buf, &mut h, 4096) {
            Ok(Status::Complete((head, _))) => (head.status, response_body(&head, head_req)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn response_framing() {
        assert_eq!(
            response(b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n", false),
            (200, Ok(ResponseBody::Length(7)))
        );
        assert_eq!(
            response(b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n", true).1,
            Ok(ResponseBody::None)
        );
        assert_eq!(
            response(b"HTTP/1.1 204 No Content\r\n\r\n", false).1,
            Ok(ResponseBody::None)
        );
        assert_eq!(
            response(b"HTTP/1.0 500 X\r\n\r\n", false),
            (500, Ok(ResponseBody::UntilClose))
        );
        assert_eq!(
            response(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
                false
            )
            .1,
            Ok(ResponseBody::Chunked)
        );
        assert!(
            response(b"HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n", false)
                .1
                .is_err()
        );
    }

    // Regression (fuzz/regressions/http_response): an empty Transfer-Encoding
    // fell through to Content-Length; it overrides it, so the length of the
    // body cannot be known.
    #[test]
    fn empty_transfer_encoding_in_a_response_is_an_error() {
        let (_, framing) = response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: \nContent-Length: 3\r\n\r\n",
            false,
        );
        assert!(framing.is_err());
    }

    #[test]
    fn response_head_partial_and_garbage() {
        let mut h = [httparse::EMPTY_HEADER; MAX_HEADERS];
        assert!(matches!(
            parse_response_head(b"HTTP/1.1 200 OK\r\n", &mut h, 4096),
            Ok(Status::Partial)
        ));
        let mut h = [httparse::EMPTY_HEADER; MAX_HEADERS];
        assert!(parse_response_head(b"SSH-2.0-OpenSSH\r\n\r\n", &mut h, 4096).is_err());
    }

    #[test]
    fn request_head_for_the_client() {
        let mut out = Vec::new();
        write_request_head(
            &mut out,
            "POST",
            "/hook",
            "127.0.0.1:9",
            &[("Content-Length", b"2")],
        );
        assert_eq!(
            out,
            b"POST /hook HTTP/1.1\r\nHost: 127.0.0.1:9\r\nContent-Length: 2\r\n\r\n"
        );
    }

    #[test]
    fn decimal() {
        let mut out = Vec::new();
        for n in [0, 7, 10, 12345, u64::MAX] {
            out.clear();
            push_decimal(&mut out, n);
            assert_eq!(out, n.to_string().as_bytes());
        }
    }

    #[test]
    fn every_status_we_send_has_its_reason_phrase() {
        // RFC 9110 section 15: 401 is "Unauthorized" (access control,
        // docs/api.md section 8), not a status of unknown meaning.
        for status in [
            101, 200, 201, 202, 204, 400, 401, 403, 404, 405, 408, 413, 414, 426, 431, 500, 501,
            503, 505,
        ] {
            assert_ne!(reason(status), "Unknown", "{status}");
        }
        assert_eq!(reason(401), "Unauthorized");
    }
}
