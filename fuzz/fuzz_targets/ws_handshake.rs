//! `wire::ws_handshake`: `validate`, `is_valid_key`, `accept_key`,
//! `write_101`.
//!
//! Input: 1 flag byte choosing which of the usual upgrade headers the
//! request carries, 1 byte for the key's length, the key, then raw header
//! lines appended before the blank line. The head is parsed with
//! `http1::parse_head` as the server does.
//!
//! Properties:
//! * `is_valid_key` equals an independent check: 22 base64 characters, the
//!   last with its 4 low bits zero, then `==` (RFC 4648 canonical form of
//!   16 bytes);
//! * `validate` returns Ok(key) exactly when the request meets RFC 6455
//!   section 4.2.1 items 1, 3, 4, 5, 6 (and 11.3.1: one Key line, one
//!   Version line), with that request's key; each failure is the first
//!   rule broken, in the function's documented order;
//! * `accept_key` of a valid key is 28 base64 characters ending in `=`, and
//!   `write_101` is a well-formed `101` response carrying it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pushwire::wire::http1::{self, MAX_HEADERS};
use pushwire::wire::ws_handshake::{accept_key, is_valid_key, validate, write_101, HandshakeError};
use pushwire::wire::Status;
use pushwire_fuzz::Input;

const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn b64_value(c: u8) -> Option<usize> {
    B64.iter().position(|&x| x == c)
}

/// base64 (RFC 4648 section 4, padded, canonical) of exactly 16 bytes.
fn reference_key(key: &str) -> bool {
    let k = key.as_bytes();
    k.len() == 24
        && k[..21].iter().all(|&c| b64_value(c).is_some())
        && b64_value(k[21]).is_some_and(|v| v & 0x0F == 0)
        && &k[22..] == b"=="
}

fn check_accept(key: &str) {
    let accept = accept_key(key);
    assert_eq!(accept.len(), 28, "{accept:?}");
    assert!(accept.ends_with('=') && !accept.ends_with("=="));
    assert!(accept[..27].bytes().all(|c| b64_value(c).is_some()));

    let mut out = Vec::new();
    write_101(&mut out, key);
    let mut headers = [httparse::EMPTY_HEADER; 8];
    let mut response = httparse::Response::new(&mut headers);
    assert_eq!(
        response.parse(&out),
        Ok(httparse::Status::Complete(out.len()))
    );
    assert_eq!(response.code, Some(101));
    let sent = response
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("sec-websocket-accept"))
        .map(|h| h.value);
    assert_eq!(sent, Some(accept.as_bytes()));
}

/// A header value as `Head::header` gives it: trimmed text.
fn text(v: &[u8]) -> Option<&str> {
    std::str::from_utf8(v).ok().map(str::trim)
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let flags = input.byte();
    let key_len = usize::from(input.byte() % 40);
    let key = input.take(key_len);
    let extra = input.rest();

    if let Ok(k) = std::str::from_utf8(key) {
        assert_eq!(is_valid_key(k), reference_key(k), "{k:?}");
        if is_valid_key(k) {
            check_accept(k);
        }
    }

    let mut req = Vec::new();
    req.extend_from_slice(if flags & 1 != 0 {
        b"GET /chat HTTP/1.0\r\n"
    } else {
        b"GET /chat HTTP/1.1\r\n"
    });
    req.extend_from_slice(b"Host: x\r\n");
    if flags & 2 != 0 {
        req.extend_from_slice(b"Upgrade: websocket\r\n");
    }
    if flags & 4 != 0 {
        req.extend_from_slice(b"Connection: keep-alive, Upgrade\r\n");
    }
    if flags & 8 != 0 {
        req.extend_from_slice(b"Sec-WebSocket-Version: 13\r\n");
    }
    if flags & 16 != 0 {
        req.extend_from_slice(b"Sec-WebSocket-Key: ");
        req.extend_from_slice(key);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(extra);
    req.extend_from_slice(b"\r\n\r\n");

    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let Ok(Status::Complete((head, _))) = http1::parse_head(&req, &mut headers, 16_384) else {
        return;
    };

    // The rules, in validate's order, from the parsed fields.
    let upgrade = head.has_token("upgrade", "websocket");
    let connection = head.has_token("connection", "upgrade");
    // Section 11.3.1: Sec-WebSocket-Key and -Version may each appear once
    // (two Version lines are a list, which is not "13").
    let lines = |name: &str| {
        head.headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
            .collect::<Vec<_>>()
    };
    let versions = lines("sec-websocket-version");
    let keys = lines("sec-websocket-key");
    let want = if head.minor_version < 1 || !upgrade || !connection {
        Err(HandshakeError::NotAnUpgrade)
    } else if versions.len() != 1 || text(versions[0]) != Some("13") {
        Err(HandshakeError::UnsupportedVersion)
    } else {
        match keys.as_slice() {
            [k] => match text(k) {
                Some(k) if reference_key(k) => Ok(k),
                _ => Err(HandshakeError::BadKey),
            },
            _ => Err(HandshakeError::BadKey),
        }
    };
    let got = validate(&head);
    assert_eq!(got, want);
    if let Ok(k) = got {
        check_accept(k);
    }
    if let Err(e) = got {
        assert!(matches!(e.status(), 400 | 426));
    }
});
