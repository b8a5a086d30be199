//! `wire::utf8::Utf8Validator` against `std::str::from_utf8`.
//!
//! Input: a split plan (see `Input::plan`), then the bytes of a stream.
//!
//! Properties, feeding the pieces in order:
//! * every `feed` succeeds and then `finish` is Ok exactly when the whole
//!   stream is valid UTF-8 (and `is_complete` agrees with `finish`);
//! * fail-fast: the first `feed` that fails is the one holding the first
//!   byte after which no continuation could be valid UTF-8, found with
//!   `from_utf8` on prefixes; every `feed` after a failure fails too;
//! * `reset` forgets the failure.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pushwire::wire::utf8::Utf8Validator;
use pushwire_fuzz::Input;

/// Could `b` still become valid UTF-8 with more bytes?
fn is_prefix(b: &[u8]) -> bool {
    match std::str::from_utf8(b) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none(),
    }
}

/// The index of the first byte that makes the stream invalid for good.
fn first_bad_byte(b: &[u8]) -> Option<usize> {
    match std::str::from_utf8(b) {
        Ok(_) => None,
        Err(e) => {
            let start = e.valid_up_to();
            (start..b.len()).find(|&i| !is_prefix(&b[..=i]))
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let plan = input.plan();
    let stream = input.rest();

    let bad = first_bad_byte(stream);
    let mut v = Utf8Validator::new();
    let mut start = 0;
    let mut failed_at = None;
    for piece in plan.pieces(stream) {
        let end = start + piece.len();
        let r = v.feed(piece);
        match failed_at {
            Some(_) => assert!(r.is_err(), "a feed after a failure succeeded"),
            None if r.is_err() => failed_at = Some((start, end)),
            None => {}
        }
        start = end;
    }
    match (bad, failed_at) {
        (None, None) => {}
        (Some(i), Some((s, e))) => assert!(
            s <= i && i < e,
            "byte {i} is the first bad one, but the piece {s}..{e} failed"
        ),
        (bad, failed) => panic!("first bad byte {bad:?}, failing piece {failed:?}"),
    }
    let valid = std::str::from_utf8(stream).is_ok();
    assert_eq!(v.finish().is_ok(), valid);
    assert_eq!(v.is_complete(), valid);

    v.reset();
    assert!(v.is_complete());
    assert!(v.feed(b"ok").is_ok());
    assert!(v.finish().is_ok());
});
