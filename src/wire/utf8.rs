//! Incremental, fail-fast UTF-8 validation (RFC 3629 section 4).
//!
//! A WebSocket text message must be UTF-8 (RFC 6455 section 8.1), but it
//! arrives in frames, and frames in TCP reads, so a code point can be cut
//! anywhere. RFC 6455 section 8.1 also asks an endpoint to fail the
//! connection as soon as the bytes can no longer be valid, not at the end
//! of the message. [`Utf8Validator`] does both: it carries the bytes of an
//! unfinished code point from one call to the next, and rejects a byte the
//! moment no continuation could make the stream valid.
//!
//! The grammar, from RFC 3629 section 4. Note the second byte of the
//! three- and four-byte forms: its range depends on the first byte, which
//! is how overlong forms, surrogates (U+D800..U+DFFF) and code points past
//! U+10FFFF are excluded.
//!
//! ```text
//! UTF8-char = UTF8-1 / UTF8-2 / UTF8-3 / UTF8-4
//! UTF8-1    = %x00-7F
//! UTF8-2    = %xC2-DF UTF8-tail
//! UTF8-3    = %xE0 %xA0-BF UTF8-tail        ; no overlongs
//!           / %xE1-EC 2( UTF8-tail )
//!           / %xED %x80-9F UTF8-tail        ; no surrogates
//!           / %xEE-EF 2( UTF8-tail )
//! UTF8-4    = %xF0 %x90-BF 2( UTF8-tail )   ; no overlongs
//!           / %xF1-F3 3( UTF8-tail )
//!           / %xF4 %x80-8F 2( UTF8-tail )   ; nothing past U+10FFFF
//! UTF8-tail = %x80-BF
//! ```
//!
//! So `C0`, `C1` and `F5`..`FF` can never appear, and `E0 80`, `ED A0`,
//! `F0 80`, `F4 90` are already wrong at their second byte.
//!
//! The bulk of each call is checked by `std::str::from_utf8`; only the
//! (at most three) bytes of a code point cut at a call boundary go through
//! the byte-at-a-time check here.

use std::fmt;

/// The bytes seen so far cannot be the start of valid UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utf8Error;

impl fmt::Display for Utf8Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid UTF-8")
    }
}

impl std::error::Error for Utf8Error {}

/// Validates a UTF-8 stream fed in arbitrary pieces.
#[derive(Debug, Clone, Default)]
pub struct Utf8Validator {
    /// The bytes of a code point begun but not finished; the first `len`
    /// of them count.
    pending: [u8; 3],
    len: u8,
    /// An error was found; every later call fails too, until `reset`.
    failed: bool,
}

impl Utf8Validator {
    /// A validator at the start of a stream.
    pub const fn new() -> Self {
        Utf8Validator {
            pending: [0; 3],
            len: 0,
            failed: false,
        }
    }

    /// Validates the next bytes of the stream.
    ///
    /// Fails as soon as the bytes seen so far, across all calls, can no
    /// longer be a prefix of valid UTF-8.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Result<(), Utf8Error> {
        if self.failed {
            return Err(Utf8Error);
        }
        // 1. Finish a code point that an earlier call left incomplete.
        while self.len > 0 {
            let Some((&b, rest)) = bytes.split_first() else {
                return Ok(());
            };
            self.push(b)?;
            bytes = rest;
        }
        // 2. Check the bulk with the standard library.
        match std::str::from_utf8(bytes) {
            Ok(_) => Ok(()),
            // An invalid sequence inside this input.
            Err(e) if e.error_len().is_some() => self.fail(),
            // Valid up to a tail of 1 to 3 bytes that end mid code point:
            // check them as a prefix here and keep them for the next call.
            Err(e) => {
                let tail = bytes.get(e.valid_up_to()..).unwrap_or_default();
                tail.iter().try_for_each(|&b| self.push(b))
            }
        }
    }

    /// True when no code point is left incomplete (and nothing was
    /// invalid): the stream may end here.
    pub fn is_complete(&self) -> bool {
        !self.failed && self.len == 0
    }

    /// The stream ends here: fails if a code point is incomplete (or an
    /// error was found earlier).
    pub fn finish(&self) -> Result<(), Utf8Error> {
        if self.is_complete() {
            Ok(())
        } else {
            Err(Utf8Error)
        }
    }

    /// Forgets everything: ready for a new stream.
    pub fn reset(&mut self) {
        *self = Self::new();
    }

    /// Takes one byte, with the RFC 3629 table above.
    fn push(&mut self, b: u8) -> Result<(), Utf8Error> {
        if self.len == 0 {
            // At a code point boundary: what may start one?
            return match sequence_len(b) {
                Some(1) => Ok(()),
                Some(_) => {
                    self.pending[0] = b;
                    self.len = 1;
                    Ok(())
                }
                None => self.fail(),
            };
        }
        let lead = self.pending[0];
        // Inside a code point: the second byte's range depends on the
        // lead; the others are plain UTF8-tail.
        let allowed = if self.len == 1 {
            second_byte_range(lead)
        } else {
            0x80..=0xBF
        };
        if !allowed.contains(&b) {
            return self.fail();
        }
        let needed = sequence_len(lead).unwrap_or(0);
        if self.len + 1 == needed {
            self.len = 0;
        } else if let Some(slot) = self.pending.get_mut(usize::from(self.len)) {
            *slot = b;
            self.len += 1;
        } else {
            // Cannot happen: `len` never reaches 3 for a sequence of at
            // most 4 bytes. Refuse rather than panic.
            return self.fail();
        }
        Ok(())
    }

    fn fail(&mut self) -> Result<(), Utf8Error> {
        self.failed = true;
        Err(Utf8Error)
    }
}

/// How many bytes a sequence starting with `lead` has; `None` if no valid
/// sequence starts with it (a UTF8-tail, `C0`, `C1`, `F5`..`FF`).
fn sequence_len(lead: u8) -> Option<u8> {
    match lead {
        0x00..=0x7F => Some(1),
        0xC2..=0xDF => Some(2),
        0xE0..=0xEF => Some(3),
        0xF0..=0xF4 => Some(4),
        _ => None,
    }
}

/// The range of the byte after `lead` (RFC 3629 section 4).
fn second_byte_range(lead: u8) -> std::ops::RangeInclusive<u8> {
    match lead {
        0xE0 => 0xA0..=0xBF, // below is an overlong 3-byte form
        0xED => 0x80..=0x9F, // above is a surrogate
        0xF0 => 0x90..=0xBF, // below is an overlong 4-byte form
        0xF4 => 0x80..=0x8F, // above is past U+10FFFF
        _ => 0x80..=0xBF,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `bytes` one at a time; the index of the byte that failed.
    fn failing_byte(bytes: &[u8]) -> Option<usize> {
        let mut v = Utf8Validator::new();
        bytes
            .iter()
            .position(|b| v.feed(std::slice::from_ref(b)).is_err())
    }

    fn complete(pieces: &[&[u8]]) -> bool {
        let mut v = Utf8Validator::new();
        pieces.iter().all(|piece| v.feed(piece).is_ok()) && v.is_complete()
    }

    // --- fail-fast, byte by byte ---

    #[test]
    fn f4_90_is_past_max() {
        assert_eq!(failing_byte(&[0xF4, 0x90, 0x80, 0x80]), Some(1));
    }

    #[test]
    fn ed_a0_is_a_surrogate() {
        assert_eq!(failing_byte(&[0xED, 0xA0, 0x80]), Some(1));
    }

    #[test]
    fn e0_80_is_overlong() {
        assert_eq!(failing_byte(&[0xE0, 0x80, 0x80]), Some(1));
    }

    #[test]
    fn f0_80_is_overlong() {
        assert_eq!(failing_byte(&[0xF0, 0x80, 0x80, 0x80]), Some(1));
    }

    #[test]
    fn c0_fails_at_once() {
        assert_eq!(failing_byte(&[b'a', 0xC0, 0x80]), Some(1));
    }

    #[test]
    fn c1_fails_at_once() {
        assert_eq!(failing_byte(&[0xC1]), Some(0));
    }

    #[test]
    fn f5_to_ff_fail_at_once() {
        for b in 0xF5..=0xFF {
            assert_eq!(failing_byte(&[b]), Some(0), "{b:#x}");
        }
    }

    #[test]
    fn lone_continuation_byte() {
        assert_eq!(failing_byte(&[b'a', 0x80]), Some(1));
    }

    #[test]
    fn lead_then_ascii() {
        assert_eq!(failing_byte(&[0xC3, b'A']), Some(1));
    }

    #[test]
    fn three_byte_broken_at_third() {
        assert_eq!(failing_byte(&[0xE1, 0x80, b'A']), Some(2));
    }

    #[test]
    fn four_byte_broken_at_fourth() {
        assert_eq!(failing_byte(&[0xF1, 0x80, 0x80, 0xC0]), Some(3));
    }

    #[test]
    fn fail_fast_in_one_call() {
        let mut v = Utf8Validator::new();
        assert_eq!(v.feed(&[b'o', b'k', 0xED, 0xA0]), Err(Utf8Error));
    }

    #[test]
    fn fail_fast_across_calls() {
        let mut v = Utf8Validator::new();
        assert_eq!(v.feed(b"ok\xF4"), Ok(()));
        assert_eq!(v.feed(b"\x90"), Err(Utf8Error));
    }

    // --- boundaries that are valid ---

    #[test]
    fn edges_of_the_table() {
        for s in [
            &[0x7F][..],
            &[0xC2, 0x80],
            &[0xDF, 0xBF],
            &[0xE0, 0xA0, 0x80],
            &[0xED, 0x9F, 0xBF],
            &[0xEE, 0x80, 0x80],
            &[0xF0, 0x90, 0x80, 0x80],
            &[0xF4, 0x8F, 0xBF, 0xBF],
        ] {
            assert_eq!(failing_byte(s), None, "{s:x?}");
            assert!(complete(&[s]), "{s:x?}");
        }
    }

    #[test]
    fn code_point_split_in_every_way() {
        let s = "a€😀b".as_bytes();
        for i in 0..=s.len() {
            for j in i..=s.len() {
                assert!(complete(&[&s[..i], &s[i..j], &s[j..]]), "{i} {j}");
            }
        }
    }

    #[test]
    fn empty_feeds_change_nothing() {
        let mut v = Utf8Validator::new();
        assert_eq!(v.feed(b""), Ok(()));
        assert_eq!(v.feed(b"\xE2"), Ok(()));
        assert_eq!(v.feed(b""), Ok(()));
        assert!(!v.is_complete());
        assert_eq!(v.feed(b"\x82\xAC"), Ok(()));
        assert!(v.is_complete());
    }

    // --- finish, stickiness, reset ---

    #[test]
    fn finish_on_truncated_code_point() {
        let mut v = Utf8Validator::new();
        v.feed(&[0xF0, 0x9F, 0x98]).unwrap();
        assert!(!v.is_complete());
        assert_eq!(v.finish(), Err(Utf8Error));
    }

    #[test]
    fn finish_on_complete_stream() {
        let mut v = Utf8Validator::new();
        v.feed("héllo".as_bytes()).unwrap();
        assert_eq!(v.finish(), Ok(()));
    }

    #[test]
    fn errors_are_sticky() {
        let mut v = Utf8Validator::new();
        assert_eq!(v.feed(&[0xFF]), Err(Utf8Error));
        assert_eq!(v.feed(b"fine"), Err(Utf8Error));
        assert!(!v.is_complete());
        assert_eq!(v.finish(), Err(Utf8Error));
    }

    #[test]
    fn reset_forgets() {
        let mut v = Utf8Validator::new();
        assert_eq!(v.feed(&[0xE2]), Ok(()));
        v.reset();
        assert!(v.is_complete());
        assert_eq!(v.feed(b"a"), Ok(()));
        let _ = v.feed(&[0xFF]);
        v.reset();
        assert_eq!(v.feed(b"a"), Ok(()));
    }

    #[test]
    fn display() {
        assert_eq!(Utf8Error.to_string(), "invalid UTF-8");
    }

    // --- differential test against std::str::from_utf8 ---

    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// Bytes that are mostly near-valid: whole characters of every length,
    /// bytes at the edges of the table, cut-off sequences, noise.
    fn generate(rng: &mut XorShift) -> Vec<u8> {
        const EDGES: &[u8] = &[
            0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF, 0xE0,
            0xE1, 0xEC, 0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xFF,
        ];
        let mut out = Vec::new();
        let items = rng.below(10);
        for _ in 0..items {
            match rng.below(4) {
                0 | 1 => {
                    let c = match rng.below(4) {
                        0 => rng.below(0x80) as u32,
                        1 => 0x80 + rng.below(0x800 - 0x80) as u32,
                        2 => 0x800 + rng.below(0x10000 - 0x800) as u32,
                        _ => 0x10000 + rng.below(0x110000 - 0x10000) as u32,
                    };
                    if let Some(c) = char::from_u32(c) {
                        let mut buf = [0; 4];
                        let encoded = c.encode_utf8(&mut buf).as_bytes();
                        // Sometimes only the start of it.
                        let keep = if rng.below(5) == 0 {
                            rng.below(encoded.len() as u64) as usize
                        } else {
                            encoded.len()
                        };
                        out.extend_from_slice(&encoded[..keep]);
                    }
                }
                2 => out.push(EDGES[rng.below(EDGES.len() as u64) as usize]),
                _ => out.push(rng.next() as u8),
            }
        }
        out
    }

    /// The index of the first byte after which the prefix can no longer
    /// be valid UTF-8, according to the standard library.
    fn first_bad_byte(bytes: &[u8]) -> Option<usize> {
        (0..bytes.len()).find(
            |&p| matches!(std::str::from_utf8(&bytes[..=p]), Err(e) if e.error_len().is_some()),
        )
    }

    /// Feeds `pieces` and checks the validator against `from_utf8`: the
    /// piece holding the first bad byte fails, no piece before it does,
    /// and at the end the stream is complete exactly when it is valid.
    fn check(input: &[u8], pieces: &[&[u8]]) {
        let bad = first_bad_byte(input);
        let mut v = Utf8Validator::new();
        let mut offset = 0;
        for piece in pieces {
            let end = offset + piece.len();
            let result = v.feed(piece);
            match bad {
                Some(p) if p < end => {
                    assert_eq!(result, Err(Utf8Error), "{input:x?} / {pieces:x?}");
                    return;
                }
                _ => assert_eq!(result, Ok(()), "{input:x?} / {pieces:x?}"),
            }
            offset = end;
        }
        let valid = std::str::from_utf8(input).is_ok();
        assert_eq!(v.is_complete(), valid, "{input:x?} / {pieces:x?}");
        assert_eq!(v.finish().is_ok(), valid);
    }

    #[test]
    fn differential_against_std() {
        let mut rng = XorShift(0x2545_F491_4F6C_DD1D);
        for _ in 0..10_000 {
            let input = generate(&mut rng);
            // Whole, cut once at every offset, and one byte at a time.
            check(&input, &[&input]);
            for cut in 0..=input.len() {
                let (a, b) = input.split_at(cut);
                check(&input, &[a, b]);
            }
            let bytes: Vec<&[u8]> = input.chunks(1).collect();
            check(&input, &bytes);
            // And cut at three random places.
            let mut cuts: Vec<usize> = (0..3)
                .map(|_| rng.below(input.len() as u64 + 1) as usize)
                .collect();
            cuts.sort_unstable();
            let pieces = [
                &input[..cuts[0]],
                &input[cuts[0]..cuts[1]],
                &input[cuts[1]..cuts[2]],
                &input[cuts[2]..],
            ];
            check(&input, &pieces);
        }
    }
}
