//! `wire::query`: `percent_decode`, `pairs`, `get`, `parse_decimal`.
//!
//! Input: 1 mode byte, then text (lossily made UTF-8, as a request target
//! always is by the time it reaches these functions).
//!
//! Properties:
//! * `percent_decode` equals a byte-at-a-time reference decoder (result and
//!   error kind), and borrows exactly when there is nothing to decode;
//! * percent-encoding any string (several encoders) and decoding it gives
//!   the string back;
//! * `pairs` yields what splitting on `&` and `=` and decoding gives, and
//!   `get` finds the first pair with that decoded name;
//! * `parse_decimal(s) == Some(n)` exactly when `s` is 1 to 19 ASCII digits,
//!   and then `n` printed is `s` without its leading zeros.
#![no_main]

use std::borrow::Cow;

use libfuzzer_sys::fuzz_target;
use pushwire::wire::query::{get, pairs, parse_decimal, percent_decode, DecodeError};
use pushwire_fuzz::Input;

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// RFC 3986 section 2.1, one byte at a time.
fn reference_decode(s: &str, plus: bool) -> Result<String, DecodeError> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hi = b.get(i + 1).copied().and_then(hex);
                let lo = b.get(i + 2).copied().and_then(hex);
                match (hi, lo) {
                    (Some(hi), Some(lo)) => out.push(hi * 16 + lo),
                    _ => return Err(DecodeError::BadPercent),
                }
                i += 3;
            }
            b'+' if plus => {
                out.push(b' ');
                i += 1;
            }
            other => {
                out.push(other);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| DecodeError::NotUtf8)
}

fn check_decode(s: &str, plus: bool) {
    let got = percent_decode(s, plus);
    let want = reference_decode(s, plus);
    assert_eq!(
        got.as_deref().map_err(|e| *e),
        want.as_deref().map_err(|e| *e),
        "{s:?}"
    );
    if let Ok(cow) = got {
        let special = s.contains('%') || (plus && s.contains('+'));
        assert_eq!(matches!(cow, Cow::Borrowed(_)), !special, "{s:?}");
    }
}

/// Percent-encodes `s`: `style` 0 encodes every byte, 1 all but RFC 3986
/// unreserved (lower-case hex), 2 as a form does (space as `+`).
fn encode(s: &str, style: u8) -> String {
    const UPPER: &[u8; 16] = b"0123456789ABCDEF";
    const LOWER: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(s.len() * 3);
    let pct = |out: &mut String, b: u8, digits: &[u8; 16]| {
        out.push('%');
        out.push(digits[usize::from(b >> 4)] as char);
        out.push(digits[usize::from(b & 15)] as char);
    };
    for b in s.bytes() {
        let unreserved = b.is_ascii_alphanumeric() || b"-._~".contains(&b);
        match style {
            0 => pct(&mut out, b, UPPER),
            1 if unreserved => out.push(b as char),
            1 => pct(&mut out, b, LOWER),
            _ if b == b' ' => out.push('+'),
            _ if unreserved => out.push(b as char),
            _ => pct(&mut out, b, UPPER),
        }
    }
    out
}

fn check_pairs(s: &str) {
    let got: Vec<_> = pairs(s).collect();
    let want: Vec<_> = s
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (n, v) = p.split_once('=').unwrap_or((p, ""));
            Ok((reference_decode(n, true)?, reference_decode(v, true)?))
        })
        .collect();
    let got_owned: Vec<Result<(String, String), DecodeError>> = got
        .into_iter()
        .map(|r| r.map(|(n, v)| (n.into_owned(), v.into_owned())))
        .collect();
    assert_eq!(got_owned, want, "{s:?}");
}

fn check_get(s: &str, key: &str) {
    // The first piece whose name decodes to `key`; a name that fails to
    // decode before it is an error.
    let mut want = Ok(None);
    for piece in s.split('&').filter(|p| !p.is_empty()) {
        let (n, v) = piece.split_once('=').unwrap_or((piece, ""));
        match reference_decode(n, true) {
            Err(e) => {
                want = Err(e);
                break;
            }
            Ok(name) if name == key => {
                want = reference_decode(v, true).map(Some);
                break;
            }
            Ok(_) => {}
        }
    }
    let got = get(s, key).map(|o| o.map(Cow::into_owned));
    assert_eq!(got, want, "get({s:?}, {key:?})");
}

fn check_decimal(s: &str) {
    let digits = !s.is_empty() && s.len() <= 19 && s.bytes().all(|b| b.is_ascii_digit());
    match parse_decimal(s) {
        Some(n) => {
            assert!(digits, "{s:?} gave {n}");
            let trimmed = s.trim_start_matches('0');
            let expect = if trimmed.is_empty() { "0" } else { trimmed };
            assert_eq!(n.to_string(), expect);
        }
        None => assert!(!digits, "{s:?} is 1 to 19 digits yet refused"),
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let mode = input.byte();
    let text = String::from_utf8_lossy(input.rest());
    let s: &str = &text;

    check_decode(s, false);
    check_decode(s, true);

    // Round trips of arbitrary text through three encoders.
    for style in 0..3 {
        let encoded = encode(s, style);
        assert_eq!(
            percent_decode(&encoded, style == 2).as_deref(),
            Ok(s),
            "style {style}: {encoded:?}"
        );
    }

    check_pairs(s);
    // A key from the text itself (the first pair's raw name, decoded when
    // it can be) so that `get` often finds something, and one literal.
    let first = s.split('&').find(|p| !p.is_empty()).unwrap_or("");
    let raw_name = first.split_once('=').map_or(first, |(n, _)| n);
    let key = reference_decode(raw_name, true).unwrap_or_else(|_| raw_name.to_string());
    check_get(s, &key);
    check_get(s, if mode & 1 == 0 { "channel" } else { "" });

    check_decimal(s);
    // Short pieces too, since most of the input is longer than 19 bytes.
    for piece in s.split(['&', '=']) {
        check_decimal(piece);
    }
});
