//! `wire::ws_close`: close frame payloads (RFC 6455 sections 5.5.1, 7.4).
//!
//! Input: a received close payload.
//!
//! Properties:
//! * `parse` is `Ok(None)` for an empty payload, `OneByte` for one byte,
//!   `InvalidCode(c)` exactly when `c` may not be sent (an independent
//!   table of section 7.4 and the IANA registry), `ReasonNotUtf8` exactly
//!   when the rest is not UTF-8, and otherwise the code and the reason;
//! * `Ok(Some((code, reason)))` implies `is_valid_code(code)`, and
//!   `write(code, reason)` parses back equal (when the payload fits in a
//!   control frame, 125 bytes; a longer reason is cut at a char boundary
//!   to 123 bytes);
//! * an error's close code is 1007 for a bad reason, else 1002.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pushwire::wire::ws_close::{self, is_valid_code, parse, write, CloseError, MAX_REASON};

/// RFC 6455 section 7.4.1 and 7.4.2, plus 1012-1014 from the IANA registry.
fn sendable(code: u16) -> bool {
    match code {
        0..=999 => false,
        1000..=1003 => true,
        1004..=1006 => false,
        1007..=1011 => true,
        1012..=1014 => true,
        1015 => false,
        1016..=2999 => false,
        3000..=4999 => true,
        _ => false,
    }
}

fuzz_target!(|payload: &[u8]| {
    let result = parse(payload);
    match payload {
        [] => assert_eq!(result, Ok(None)),
        [_] => assert_eq!(result, Err(CloseError::OneByte)),
        [hi, lo, rest @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            assert_eq!(is_valid_code(code), sendable(code), "code {code}");
            let want = if !sendable(code) {
                Err(CloseError::InvalidCode(code))
            } else {
                match std::str::from_utf8(rest) {
                    Ok(reason) => Ok(Some((code, reason))),
                    Err(_) => Err(CloseError::ReasonNotUtf8),
                }
            };
            assert_eq!(result, want);
        }
    }
    match result {
        Ok(Some((code, reason))) => {
            assert!(is_valid_code(code));
            let mut out = Vec::new();
            write(&mut out, code, reason);
            let back = parse(&out);
            if payload.len() <= 125 {
                assert_eq!(out, payload);
                assert_eq!(back, Ok(Some((code, reason))));
            } else {
                let Ok(Some((c, r))) = back else {
                    panic!("{back:?}");
                };
                assert_eq!(c, code);
                assert!(reason.starts_with(r));
                assert!(
                    r.len() <= MAX_REASON && r.len() + 4 > MAX_REASON,
                    "{}",
                    r.len()
                );
            }
            assert!(!ws_close::name(code).is_empty());
        }
        Ok(None) => {}
        Err(e) => {
            let want = if e == CloseError::ReasonNotUtf8 {
                1007
            } else {
                1002
            };
            assert_eq!(e.close_code(), want);
            assert!(!e.to_string().is_empty());
        }
    }
});
