//! `wire::http1::parse_head` and what the server asks of a parsed head.
//!
//! Input: 1 byte picks the size limit, 2 bytes pick a cut point, the rest
//! is the bytes received on a connection.
//!
//! Properties (the server re-parses its growing read buffer after every
//! read, so the answer must not depend on where the reads were cut):
//! * `Complete((head, n))`: `n <= input length`, and the same head (same
//!   `n`, fields, headers) comes out when more bytes follow it;
//! * a prefix that is already an error stays an error with more bytes;
//! * the body framing and the head helpers agree with their definitions.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pushwire::wire::http1::{self, BodyFraming, Head, HeadError, MAX_HEADERS};
use pushwire::wire::Status;
use pushwire_fuzz::Input;

/// Everything a head says, owned, to compare two parses.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Summary {
    method: String,
    path: String,
    query: String,
    minor_version: u8,
    headers: Vec<(String, Vec<u8>)>,
    len: usize,
}

fn parse(buf: &[u8], max: usize) -> Result<Status<Summary>, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    Ok(match http1::parse_head(buf, &mut headers, max)? {
        Status::Partial => Status::Partial,
        Status::Complete((head, n)) => {
            assert!(n <= buf.len(), "consumed {n} of {} bytes", buf.len());
            check_head(&head);
            Status::Complete(Summary {
                method: head.method.to_string(),
                path: head.path.to_string(),
                query: head.query.to_string(),
                minor_version: head.minor_version,
                headers: head
                    .headers
                    .iter()
                    .map(|h| (h.name.to_string(), h.value.to_vec()))
                    .collect(),
                len: n,
            })
        }
    })
}

/// The helpers, against their definitions.
fn check_head(head: &Head<'_, '_>) {
    assert!(head.minor_version <= 1);
    assert!(
        head.path.starts_with('/') || head.path == "*",
        "{:?}",
        head.path
    );
    assert!(!head.path.contains('?'));

    // has_token: some comma-separated element, trimmed of SP/HTAB, equals
    // the token ignoring ASCII case.
    let has = |name: &'static str, token: &str| {
        head.headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .flat_map(|h| h.value.split(|&b| b == b','))
            .any(|t| {
                let t = http1::trim_ows(t);
                t.eq_ignore_ascii_case(token.as_bytes())
            })
    };
    for (name, token) in [
        ("connection", "close"),
        ("connection", "keep-alive"),
        ("connection", "upgrade"),
        ("upgrade", "websocket"),
    ] {
        assert_eq!(head.has_token(name, token), has(name, token));
    }
    let keep_alive =
        !has("connection", "close") && (head.minor_version == 1 || has("connection", "keep-alive"));
    assert_eq!(head.keep_alive(), keep_alive);

    // header: the first value of that name, as trimmed text.
    let first = head
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .map(|h| h.value);
    let text = head.header("content-length");
    match first {
        None => assert_eq!(text, None),
        Some(v) => match std::str::from_utf8(v) {
            Ok(s) => assert_eq!(text, Some(s.trim())),
            Err(_) => assert_eq!(text, None),
        },
    }

    // check_host: exactly one Host, or none in HTTP/1.0.
    let hosts = head
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("host"))
        .count();
    assert_eq!(
        http1::check_host(head).is_ok(),
        hosts == 1 || (hosts == 0 && head.minor_version == 0)
    );

    check_framing(head);
}

/// RFC 9112 section 6.3, restated.
fn check_framing(head: &Head<'_, '_>) {
    let values = |name: &str| -> Vec<&[u8]> {
        head.headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
            .collect()
    };
    let te = values("transfer-encoding");
    let cl = values("content-length");
    let framing = http1::body_framing(head);
    match framing {
        Ok(BodyFraming::Chunked) => {
            // Only with TE, no CL, HTTP/1.1, and TE is exactly `chunked`
            // (empty list elements aside).
            assert!(cl.is_empty() && head.minor_version == 1);
            let codings: Vec<&[u8]> = te
                .iter()
                .flat_map(|v| v.split(|&b| b == b','))
                .map(http1::trim_ows)
                .filter(|c| !c.is_empty())
                .collect();
            assert_eq!(codings.len(), 1);
            assert!(codings[0].eq_ignore_ascii_case(b"chunked"));
        }
        Ok(BodyFraming::Length(n)) => {
            assert!(te.is_empty() && n > 0);
            // Every element of every Content-Length line is n in decimal
            // (leading zeros allowed).
            for v in &cl {
                for part in v.split(|&b| b == b',') {
                    let part = http1::trim_ows(part);
                    assert!(!part.is_empty() && part.iter().all(u8::is_ascii_digit));
                    let digits = std::str::from_utf8(part).unwrap();
                    assert_eq!(digits.parse::<u64>().ok(), Some(n), "{digits:?}");
                }
            }
        }
        Ok(BodyFraming::Empty) => assert!(te.is_empty()),
        Err(e) => assert!(matches!(e.status(), 400 | 501)),
    }
    if !te.is_empty() && !cl.is_empty() {
        assert!(framing.is_err(), "TE and CL together must be refused");
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let max = input.pick(&[16usize, 40, 64, 128, 1024, 16_384]);
    let cut = usize::from(input.u16());
    let buf = input.rest();
    let cut = cut % (buf.len() + 1);

    let whole = parse(buf, max);
    let prefix = parse(&buf[..cut], max);
    match (&prefix, &whole) {
        (Ok(Status::Complete(p)), w) => assert_eq!(
            w,
            &Ok(Status::Complete(p.clone())),
            "a complete head changed when {} more bytes arrived",
            buf.len() - cut
        ),
        (Err(e), Ok(w)) => panic!(
            "the first {cut} bytes were refused ({e:?}) but all {} give {w:?} (limit {max})",
            buf.len()
        ),
        _ => {}
    }
});
