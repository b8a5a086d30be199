//! `wire::ws_deflate`: `Inflater::inflate`, `Deflater::compress`.
//!
//! Input: 1 mode byte (bit 0: round trip instead of raw inflate; bits 1-3:
//! window bits 8 + n; bits 4-5: compression level 0, 1, 6 or 9), 1 byte
//! picking the size limit, then the data: a compressed message payload
//! (raw mode) or a message to compress (round-trip mode).
//!
//! Properties, raw mode:
//! * `inflate` never panics; `Ok` adds at most `limit` bytes to `out`, an
//!   error leaves `out` exactly as it was;
//! * no state leaks between messages (no context takeover): a fresh
//!   `Inflater` and one that just inflated another message give the same
//!   answer and bytes;
//! * the limit is exact: when `Ok` gave `n` bytes, a limit of `n` gives
//!   the same bytes and a limit of `n - 1` gives `TooBig`.
//!
//! Properties, round-trip mode:
//! * `compress` then `inflate` gives the message back, with a limit of
//!   exactly its length; one byte less is `TooBig`;
//! * compressing the same message twice with the same `Deflater` (another
//!   message in between) gives the same bytes: each starts from a fresh
//!   window;
//! * the compressed form is never longer than fixed-Huffman coding
//!   would make it (9 bits a byte at worst, plus a few bytes a block).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pushwire::wire::ws_deflate::{Deflater, InflateError, Inflater};
use pushwire_fuzz::Input;

const LIMITS: [usize; 8] = [0, 1, 5, 100, 1000, 20_000, 300_000, 1 << 20];
const LEVELS: [u32; 4] = [0, 1, 6, 9];

/// A short message inflated first, to dirty the Inflater's state.
const HELLO: [u8; 7] = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];

fn raw(compressed: &[u8], limit: usize) {
    let mut fresh = Inflater::new();
    let mut out = b"before".to_vec();
    let got = fresh.inflate(compressed, limit, &mut out);
    match got {
        Ok(()) => assert!(out.len() - 6 <= limit, "{} > {limit}", out.len() - 6),
        Err(_) => assert_eq!(out, b"before"),
    }
    assert_eq!(&out[..6], b"before");

    let mut used = Inflater::new();
    let mut hello = Vec::new();
    used.inflate(&HELLO, 5, &mut hello).unwrap();
    assert_eq!(hello, b"Hello");
    let mut again = b"before".to_vec();
    assert_eq!(used.inflate(compressed, limit, &mut again), got);
    assert_eq!(again, out);

    if got.is_ok() {
        let n = out.len() - 6;
        let mut exact = Vec::new();
        assert_eq!(used.inflate(compressed, n, &mut exact), Ok(()));
        assert_eq!(exact, out[6..]);
        if n > 0 {
            let mut short = Vec::new();
            assert_eq!(
                used.inflate(compressed, n - 1, &mut short),
                Err(InflateError::TooBig)
            );
            assert!(short.is_empty());
        }
    }
}

fn round_trip(message: &[u8], bits: u8, level: u32) {
    let mut d = Deflater::new(level);
    let mut c = Vec::new();
    assert!(d.compress(message, bits, &mut c));
    // Never worse than fixed-Huffman blocks: at most 9 bits a byte, plus a
    // header and an end code per block of at least 16 KiB, plus the byte
    // the flush leaves. (Stored blocks, 5 bytes per block, are better
    // still, but only possible while the block is in the window.)
    assert!(
        c.len() <= message.len() + message.len() / 8 + 8 * (message.len() / 16_384 + 2),
        "{} bytes from {}",
        c.len(),
        message.len()
    );

    let mut i = Inflater::new();
    let mut back = Vec::new();
    i.inflate(&c, message.len(), &mut back).unwrap();
    assert_eq!(back, message);
    if !message.is_empty() {
        let mut short = Vec::new();
        assert_eq!(
            i.inflate(&c, message.len() - 1, &mut short),
            Err(InflateError::TooBig)
        );
    }

    let mut other = Vec::new();
    assert!(d.compress(b"another message, another message", bits, &mut other));
    let mut c2 = Vec::new();
    assert!(d.compress(message, bits, &mut c2));
    assert_eq!(c2, c);
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let mode = input.byte();
    let limit = input.pick(&LIMITS);
    let rest = input.rest();
    if mode & 1 == 0 {
        raw(rest, limit);
    } else {
        let bits = 8 + ((mode >> 1) & 7);
        let level = LEVELS[usize::from((mode >> 4) & 3)];
        round_trip(rest, bits, level);
    }
});
