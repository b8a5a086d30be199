//! The WebSocket opening handshake (RFC 6455 section 4).
//!
//! The client asks, in an ordinary HTTP/1.1 GET:
//!
//! ```text
//! GET /chat HTTP/1.1
//! Host: server.example.com
//! Upgrade: websocket                         <- section 4.2.1 item 3
//! Connection: Upgrade                        <- item 4 (a token in a list)
//! Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==  <- item 5: base64 of 16 random bytes
//! Sec-WebSocket-Version: 13                  <- item 6
//! Origin: http://example.com                 <- item 7 (browsers only)
//! ```
//!
//! and the server answers (section 4.2.2 item 5) with the one status that
//! switches the connection from HTTP to WebSocket frames:
//!
//! ```text
//! HTTP/1.1 101 Switching Protocols
//! Upgrade: websocket
//! Connection: Upgrade
//! Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=
//! ```
//!
//! `Sec-WebSocket-Accept` = base64(SHA-1(key + GUID)). It proves the server
//! read this very request as a WebSocket handshake (a cache or a plain HTTP
//! server would not compute it), not that anyone is who they claim.

use base64::Engine as _;
use sha1::{Digest, Sha1};

use super::http1::{write_header, write_status_line, Head};
use super::ws_deflate::{self, Agreed};

/// The GUID every WebSocket server appends to the key (section 1.3).
pub const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The only protocol version there is (section 4.1, registry in 11.6).
pub const VERSION: &str = "13";

/// Why an upgrade request was refused; each maps to one HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeError {
    /// 426: not a WebSocket upgrade at all (no `Upgrade: websocket`, no
    /// `Connection: upgrade`, not HTTP/1.1): the client must upgrade.
    NotAnUpgrade,
    /// 426: `Sec-WebSocket-Version` missing or not 13. Section 4.4: answer
    /// with the versions we speak in `Sec-WebSocket-Version`.
    UnsupportedVersion,
    /// 400: `Sec-WebSocket-Key` missing, or not base64 of 16 bytes
    /// (section 4.2.1 item 5).
    BadKey,
}

impl HandshakeError {
    pub fn status(self) -> u16 {
        match self {
            HandshakeError::NotAnUpgrade | HandshakeError::UnsupportedVersion => 426,
            HandshakeError::BadKey => 400,
        }
    }

    pub fn sentence(self) -> &'static str {
        match self {
            HandshakeError::NotAnUpgrade => {
                "this is a WebSocket endpoint: send an HTTP/1.1 GET with Upgrade: websocket and Connection: Upgrade"
            }
            HandshakeError::UnsupportedVersion => "only Sec-WebSocket-Version 13 is supported",
            HandshakeError::BadKey => "Sec-WebSocket-Key must be the base64 encoding of 16 bytes",
        }
    }
}

/// Does the request ask to upgrade to WebSocket? (Used to route an upgrade
/// on `/` to the chat rather than to the demo page.)
pub fn wants_websocket(head: &Head<'_, '_>) -> bool {
    head.has_token("upgrade", "websocket")
}

/// Checks a GET request against section 4.2.1 and returns the key to answer.
pub fn validate<'b>(head: &Head<'_, 'b>) -> Result<&'b str, HandshakeError> {
    // Item 1: "An HTTP/1.1 or higher GET request". The method is checked by
    // the router (405); the version here.
    if head.minor_version < 1 {
        return Err(HandshakeError::NotAnUpgrade);
    }
    // Item 3: an `Upgrade` header field containing "websocket"
    // (case-insensitive); item 4: a `Connection` header field that includes
    // the token "Upgrade" (case-insensitive, possibly in a list such as
    // `keep-alive, Upgrade`, as Firefox sends).
    if !head.has_token("upgrade", "websocket") || !head.has_token("connection", "upgrade") {
        return Err(HandshakeError::NotAnUpgrade);
    }
    // Item 6: `Sec-WebSocket-Version` "MUST be 13". Two field lines mean
    // a list (RFC 9110 section 5.3), as `13, 8` on one line does: either is
    // not the single version we speak.
    if head.values("sec-websocket-version").count() != 1
        || head.header("sec-websocket-version") != Some(VERSION)
    {
        return Err(HandshakeError::UnsupportedVersion);
    }
    // Item 5: "a base64-encoded value that, when decoded, is 16 bytes in
    // length". 16 bytes are always 24 characters with `==` padding. Section
    // 11.3.1: the field "MUST NOT appear more than once in an HTTP request".
    if head.values("sec-websocket-key").count() != 1 {
        return Err(HandshakeError::BadKey);
    }
    let key = head
        .header("sec-websocket-key")
        .ok_or(HandshakeError::BadKey)?;
    if !is_valid_key(key) {
        return Err(HandshakeError::BadKey);
    }
    Ok(key)
}

/// Is `key` the base64 of exactly 16 bytes?
pub fn is_valid_key(key: &str) -> bool {
    let mut decoded = [0u8; 18];
    key.len() == 24
        && matches!(
            base64::engine::general_purpose::STANDARD.decode_slice(key, &mut decoded),
            Ok(16)
        )
}

/// `Sec-WebSocket-Accept` for `key` (section 4.2.2 item 5.4): the base64
/// of the SHA-1 of the key's text followed by the GUID.
pub fn accept_key(key: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(key.as_bytes());
    sha.update(GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

/// Appends the whole `101 Switching Protocols` answer (section 4.2.2 item 5).
/// After its last CRLF the connection speaks frames.
pub fn write_101(out: &mut Vec<u8>, key: &str) {
    write_101_with_extensions(out, key, None);
}

/// The compression the request offers that the server accepts, if any:
/// every `Sec-WebSocket-Extensions` line, in order (RFC 7692 section 5; see
/// `ws_deflate::negotiate`). `None` means an uncompressed connection, never
/// a failed handshake.
pub fn deflate_offer(head: &Head<'_, '_>) -> Option<Agreed> {
    ws_deflate::negotiate(head.values("sec-websocket-extensions"))
}

/// [`write_101`], plus `Sec-WebSocket-Extensions` naming the accepted
/// `permessage-deflate` parameters when `deflate` is given (section 4.2.2
/// item 5: the server lists the extensions it accepts, section 9.1; RFC 7692
/// section 5: one element for the accepted offer). Without it the bytes are
/// exactly `write_101`'s.
pub fn write_101_with_extensions(out: &mut Vec<u8>, key: &str, deflate: Option<&Agreed>) {
    write_status_line(out, 101);
    write_header(out, "Upgrade", b"websocket");
    write_header(out, "Connection", b"Upgrade");
    write_header(out, "Sec-WebSocket-Accept", accept_key(key).as_bytes());
    if let Some(agreed) = deflate {
        // Written in place rather than through `write_header`: the value is
        // built from constants and one digit pair, never from the request.
        out.extend_from_slice(b"Sec-WebSocket-Extensions: ");
        agreed.write_response(out);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::http1::{parse_head, MAX_HEADERS};
    use crate::wire::Status;

    fn check(req: &str) -> Result<String, HandshakeError> {
        let mut h = [httparse::EMPTY_HEADER; MAX_HEADERS];
        match parse_head(req.as_bytes(), &mut h, 4096) {
            Ok(Status::Complete((head, _))) => validate(&head).map(str::to_string),
            other => panic!("{other:?}"),
        }
    }

    const GOOD: &str = "GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

    // RFC 6455 section 1.3's worked example.
    #[test]
    fn rfc_accept_example() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn good_request_and_101() {
        let key = check(GOOD).unwrap();
        let mut out = Vec::new();
        write_101(&mut out, &key);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
        );
    }

    fn head_of(req: &str) -> Option<Agreed> {
        let mut h = [httparse::EMPTY_HEADER; MAX_HEADERS];
        match parse_head(req.as_bytes(), &mut h, 4096) {
            Ok(Status::Complete((head, _))) => deflate_offer(&head),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn without_extensions_the_101_is_write_101s() {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        write_101(&mut a, "dGhlIHNhbXBsZSBub25jZQ==");
        write_101_with_extensions(&mut b, "dGhlIHNhbXBsZSBub25jZQ==", None);
        assert_eq!(a, b);
    }

    #[test]
    fn deflate_offer_over_two_lines_and_its_101() {
        let req = GOOD.replace(
            "Sec-WebSocket-Version: 13\r\n",
            "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Extensions: x-foo; a=1\r\n\
             sec-websocket-extensions: permessage-deflate; server_max_window_bits=10\r\n",
        );
        let agreed = head_of(&req).unwrap();
        let key = check(&req).unwrap();
        let mut out = Vec::new();
        write_101_with_extensions(&mut out, &key, Some(&agreed));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
             Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; \
             client_no_context_takeover; server_max_window_bits=10\r\n\r\n"
        );
    }

    #[test]
    fn no_or_unusable_offer_means_no_compression() {
        assert_eq!(head_of(GOOD), None);
        let req = GOOD.replace(
            "Sec-WebSocket-Version: 13\r\n",
            "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Extensions: permessage-deflate; foo\r\n",
        );
        assert_eq!(head_of(&req), None);
        assert!(check(&req).is_ok());
    }

    #[test]
    fn connection_token_in_a_list_any_case() {
        let req = GOOD
            .replace("Connection: Upgrade", "Connection: keep-alive, upgrade")
            .replace("Upgrade: websocket", "Upgrade: WebSocket");
        assert!(check(&req).is_ok());
    }

    #[test]
    fn missing_upgrade_is_426() {
        let req = GOOD.replace("Upgrade: websocket\r\n", "");
        assert_eq!(check(&req).unwrap_err().status(), 426);
    }

    #[test]
    fn missing_connection_upgrade_is_426() {
        let req = GOOD.replace("Connection: Upgrade", "Connection: keep-alive");
        assert_eq!(check(&req), Err(HandshakeError::NotAnUpgrade));
    }

    #[test]
    fn http_1_0_is_426() {
        let req = GOOD.replace("HTTP/1.1", "HTTP/1.0");
        assert_eq!(check(&req), Err(HandshakeError::NotAnUpgrade));
    }

    #[test]
    fn other_or_missing_version_is_426() {
        let req = GOOD.replace("Version: 13", "Version: 8");
        assert_eq!(check(&req), Err(HandshakeError::UnsupportedVersion));
        let req = GOOD.replace("Sec-WebSocket-Version: 13\r\n", "");
        assert_eq!(check(&req), Err(HandshakeError::UnsupportedVersion));
    }

    #[test]
    fn repeated_key_or_version_lines_are_refused() {
        let two_keys = GOOD.replace(
            "Sec-WebSocket-Version: 13\r\n",
            "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: AAECAwQFBgcICQoLDA0ODw==\r\n",
        );
        assert_eq!(check(&two_keys), Err(HandshakeError::BadKey));
        let two_versions = GOOD.replace(
            "Sec-WebSocket-Version: 13\r\n",
            "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Version: 8\r\n",
        );
        assert_eq!(
            check(&two_versions),
            Err(HandshakeError::UnsupportedVersion)
        );
    }

    #[test]
    fn bad_keys_are_400() {
        for key in [
            "abc",
            "",
            "dGhlIHNhbXBsZSBub25j",
            "AAAAAAAAAAAAAAAAAAAAAA==AA",
            "!!!!!!!!!!!!!!!!!!!!!!==",
        ] {
            let req = GOOD.replace("dGhlIHNhbXBsZSBub25jZQ==", key);
            assert_eq!(check(&req), Err(HandshakeError::BadKey), "{key:?}");
        }
        // base64 of 15 and 17 bytes.
        assert!(!is_valid_key("AAAAAAAAAAAAAAAAAAAA"));
        assert!(!is_valid_key("AAAAAAAAAAAAAAAAAAAAAAA="));
        let req = GOOD.replace("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", "");
        assert_eq!(check(&req), Err(HandshakeError::BadKey));
    }
}
