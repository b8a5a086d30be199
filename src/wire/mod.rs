//! The wire: pure functions from bytes to values and back.
//!
//! Nothing in this module touches a socket, a clock or a global. Each file is
//! one format, named for it, with its byte layout drawn in the doc comment and
//! the RFC section cited next to the check that enforces it. That is what
//! makes these codecs easy to read, to test byte by byte and to fuzz
//! (`fuzz/` has one target per parser).
//!
//! | file            | format                                              |
//! |-----------------|-----------------------------------------------------|
//! | `date`          | HTTP-date and RFC 3339 timestamps                   |
//! | `http1`         | HTTP/1.1 request heads, body framing, response heads (RFC 9112) |
//! | `chunked`       | the chunked transfer coding (RFC 9112 section 7.1)  |
//! | `query`         | query strings and percent-decoding (RFC 3986)       |
//! | `hmac`          | HMAC-SHA1 webhook signatures (RFC 2104)             |
//! | `json`          | JSON string escaping (RFC 8259 section 7)           |
//! | `url`           | webhook URLs and where we may send (RFC 3986)       |
//! | `utf8`          | incremental, fail-fast UTF-8 validation (RFC 3629)  |
//! | `ws_handshake`  | the WebSocket opening handshake (RFC 6455 section 4)|
//! | `ws_frame`      | WebSocket frames (RFC 6455 section 5)               |
//! | `ws_close`      | close frame payloads and codes (RFC 6455 section 7) |
//! | `sse`           | the `text/event-stream` format (WHATWG HTML 9.2)    |

pub mod bearer;
pub mod chunked;
pub mod date;
pub mod hmac;
pub mod http1;
pub mod json;
pub mod json_read;
pub mod jwt;
pub mod prometheus;
pub mod query;
pub mod redis_url;
pub mod resp;
pub mod sse;
pub mod url;
pub mod utf8;
pub mod ws_close;
pub mod ws_deflate;
pub mod ws_frame;
pub mod ws_handshake;

/// The result of feeding a streaming parser the bytes received so far.
///
/// Bytes arrive from TCP in arbitrary pieces, so every parser here can be
/// asked "is there a whole unit yet?" and answer `Partial` without losing
/// anything: the caller keeps the bytes and asks again when more arrive
/// (the same shape as `httparse::Status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status<T> {
    /// A whole unit was parsed; `T` usually carries how many bytes it used.
    Complete(T),
    /// More bytes are needed before anything can be decided.
    Partial,
}
