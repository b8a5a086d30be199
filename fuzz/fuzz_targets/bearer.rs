//! `wire::bearer`: `parse_authorization`, `credential`, `redact_target`,
//! `redact_authorization`.
//!
//! Input: text (lossily made UTF-8), cut at the first NUL into an
//! `Authorization` value and a request target.
//!
//! Properties:
//! * `parse_authorization` equals RFC 6750 section 2.1 restated here
//!   (`Bearer`, any case, 1*SP, a b64token; spaces and tabs around the
//!   value ignored);
//! * `credential` follows docs/api.md section 8: a Bearer header wins,
//!   otherwise the first decoded `access_token` query parameter;
//! * `redact_authorization` shows only `Bearer …` or `…`;
//! * `redact_target` leaves the path and every other query piece exactly
//!   as they were, puts `name=…` in place of every piece whose decoded
//!   name is `access_token`, borrows exactly when there was none, and
//!   the output no longer contains a token value found nowhere else.
#![no_main]

use std::borrow::Cow;

use libfuzzer_sys::fuzz_target;
use pushwire::wire::bearer::{
    credential, is_bearer_scheme, parse_authorization, redact_authorization, redact_target,
    Credential,
};
use pushwire::wire::query::{self, percent_decode};

fn is_b64token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~+/".contains(&b)
}

/// RFC 6750 section 2.1, byte by byte.
fn model_bearer(value: &str) -> Option<&str> {
    let v = value.trim_matches(|c| c == ' ' || c == '\t');
    let b = v.as_bytes();
    if b.len() < 8 || !b[..6].eq_ignore_ascii_case(b"bearer") || b[6] != b' ' {
        return None;
    }
    let mut i = 6;
    while b.get(i) == Some(&b' ') {
        i += 1;
    }
    let token = &b[i..];
    let body = token.iter().position(|&c| c == b'=').unwrap_or(token.len());
    let ok = body > 0
        && token[..body].iter().all(|&c| is_b64token_char(c))
        && token[body..].iter().all(|&c| c == b'=');
    // Everything before `i` is ASCII, so `i` is a char boundary.
    ok.then(|| &v[i..])
}

fn name_of(piece: &str) -> &str {
    piece.split_once('=').map_or(piece, |(name, _)| name)
}

fn is_token_piece(piece: &str) -> bool {
    percent_decode(name_of(piece), true).is_ok_and(|n| n == "access_token")
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (authorization, target) = text.split_once('\0').unwrap_or((&text, ""));

    // Authorization.
    let parsed = parse_authorization(authorization);
    assert_eq!(parsed, model_bearer(authorization), "{authorization:?}");
    // Whatever the value, what is shown is one of two constants, so it
    // cannot carry the token.
    let shown = redact_authorization(authorization);
    if is_bearer_scheme(authorization) {
        assert_eq!(shown, "Bearer …");
    } else {
        assert!(parsed.is_none());
        assert_eq!(shown, "…");
    }

    // Which credential counts.
    let query = target.split_once('?').map(|(_, q)| q);
    let expected = if is_bearer_scheme(authorization) {
        match parsed {
            Some(token) => Credential::Token(Cow::Borrowed(token)),
            None => Credential::Malformed,
        }
    } else {
        match query.map(|q| query::get(q, "access_token")) {
            Some(Ok(Some(token))) => Credential::Token(token),
            Some(Err(_)) => Credential::Malformed,
            Some(Ok(None)) | None => Credential::Absent,
        }
    };
    assert_eq!(credential(Some(authorization), query), expected);

    // Redaction.
    let redacted = redact_target(target);
    let Some((path, query)) = target.split_once('?') else {
        assert!(matches!(redacted, Cow::Borrowed(t) if t == target));
        return;
    };
    let pieces: Vec<&str> = query.split('&').collect();
    let any_token = pieces.iter().any(|p| is_token_piece(p));
    assert_eq!(matches!(redacted, Cow::Borrowed(_)), !any_token);
    let (out_path, out_query) = redacted.split_once('?').expect("the ? stays");
    assert_eq!(out_path, path);
    let out_pieces: Vec<&str> = out_query.split('&').collect();
    assert_eq!(out_pieces.len(), pieces.len(), "{target:?} -> {redacted:?}");
    for (before, after) in pieces.iter().zip(&out_pieces) {
        if is_token_piece(before) {
            assert_eq!(*after, format!("{}=…", name_of(before)));
        } else {
            assert_eq!(after, before);
        }
    }
    if let Ok(Some(value)) = query::get(out_query, "access_token") {
        assert_eq!(value, "…");
    }
    // A token-looking value (b64token characters and a dot, as a JWT has)
    // that occurs nowhere else in the target is gone from the output.
    for piece in pieces.iter().filter(|p| is_token_piece(p)) {
        let Some((_, value)) = piece.split_once('=') else {
            continue;
        };
        let looks_like_a_token =
            value.contains('.') && value.bytes().all(|b| is_b64token_char(b) || b == b'=');
        let elsewhere = path.contains(value)
            || pieces
                .iter()
                .any(|p| !is_token_piece(p) && p.contains(value));
        if looks_like_a_token && !elsewhere {
            assert!(!redacted.contains(value), "{value:?} in {redacted:?}");
        }
    }
});
