//! `wire::ws_deflate`: `negotiate`, `Agreed::{write_response, window_bits}`.
//!
//! Input: `Sec-WebSocket-Extensions` field values, one per line (split at
//! LF), as the handshake hands them over.
//!
//! Properties:
//! * `negotiate` never panics; an agreement's `server_max_window_bits` is
//!   none or 8..=15, and its compression window 9..=15;
//! * the response value is visible ASCII (no CR/LF, so it cannot split the
//!   head) that, offered back by itself or before the input, negotiates to
//!   the same agreement;
//! * the first acceptable offer wins: lines added after the input do not
//!   change an agreement already found;
//! * letter case does not matter (names are matched ASCII
//!   case-insensitively, window values are digits);
//! * without double quotes in the input, several field lines are the same
//!   list as one line joined with commas (RFC 6455 section 9.1).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pushwire::wire::ws_deflate::{negotiate, Agreed};

fn lines(data: &[u8]) -> Vec<&[u8]> {
    data.split(|&b| b == b'\n').collect()
}

fn response(a: &Agreed) -> Vec<u8> {
    let mut out = Vec::new();
    a.write_response(&mut out);
    out
}

fuzz_target!(|data: &[u8]| {
    let values = lines(data);
    let got = negotiate(values.iter().copied());

    if let Some(a) = got {
        if let Some(n) = a.server_max_window_bits() {
            assert!((8..=15).contains(&n), "{a:?}");
        }
        assert!((9..=15).contains(&a.window_bits()), "{a:?}");

        let r = response(&a);
        assert!(r.iter().all(|&b| (0x20..0x7f).contains(&b)), "{r:?}");
        assert!(r.starts_with(b"permessage-deflate"));
        assert_eq!(
            negotiate([&r[..]]),
            Some(a),
            "{}",
            String::from_utf8_lossy(&r)
        );
        let mut first = vec![&r[..]];
        first.extend(values.iter().copied());
        assert_eq!(negotiate(first), Some(a));

        let mut more = values.clone();
        more.push(b"permessage-deflate; server_max_window_bits=9");
        more.push(b"permessage-deflate");
        assert_eq!(negotiate(more), Some(a));
    }

    let upper = data.to_ascii_uppercase();
    assert_eq!(negotiate(lines(&upper)), got, "upper case");

    if !data.contains(&b'"') {
        let joined = values.join(&b","[..]);
        assert_eq!(negotiate([&joined[..]]), got, "joined with commas");
    }
});
