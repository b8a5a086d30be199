//! `wire::ws_frame`: `parse_header`, `write_header`, `apply_mask`.
//!
//! Input: bytes received at the start of a frame. The bytes after the
//! header double as a payload for the masking checks; the first of them
//! also pick cut points there.
//!
//! Properties:
//! * a Complete header uses `n <= input length` bytes, `n` is what its
//!   length form and mask say, and every shorter prefix is `Partial`;
//! * a prefix's answer is `Partial` or the whole input's answer (an error
//!   does not go away, nor change, with more bytes);
//! * re-encoding with `write_header` (shortest length form) parses back to
//!   the same header, in `header_len` bytes, no more than the original; the
//!   same bytes exactly when the original was already minimal;
//! * `apply_mask` in pieces, at the right offsets, equals one call, equals
//!   XOR with `key[i % 4]`, and applying it twice gives the input back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pushwire::wire::ws_frame::{self, apply_mask, header_len, parse_header, write_header};
use pushwire::wire::Status;
use pushwire_fuzz::Input;

fuzz_target!(|data: &[u8]| {
    let whole = parse_header(data);

    // Prefixes: Partial, or the same answer as the whole input.
    for k in 0..data.len().min(15) {
        let p = parse_header(&data[..k]);
        assert!(
            p == Ok(Status::Partial) || p == whole,
            "{k} bytes: {p:?}, all: {whole:?}"
        );
    }

    let payload_start = match whole {
        Ok(Status::Complete((h, n))) => {
            assert!(n <= data.len());
            let ext = match data[1] & 0x7F {
                126 => 2,
                127 => 8,
                _ => 0,
            };
            assert_eq!(n, 2 + ext + if h.mask.is_some() { 4 } else { 0 });
            for k in 0..n {
                assert_eq!(parse_header(&data[..k]), Ok(Status::Partial));
            }
            assert_eq!(h.rsv, 0);
            assert!(h.payload_len < 1 << 63);
            if ws_frame::opcode::is_control(h.opcode) {
                assert!(h.fin && h.payload_len <= ws_frame::MAX_CONTROL_PAYLOAD);
            }
            // The trace line must not panic, whatever the header.
            let _ = ws_frame::describe(&h, n);

            let mut out = Vec::new();
            write_header(&mut out, h.fin, h.opcode, h.mask, h.payload_len);
            assert_eq!(out.len(), header_len(h.payload_len, h.mask.is_some()));
            assert!(out.len() <= n, "{} bytes re-encoded as {}", n, out.len());
            assert_eq!(parse_header(&out), Ok(Status::Complete((h, out.len()))));
            let minimal = match ext {
                0 => true,
                2 => h.payload_len > 125,
                _ => h.payload_len > 0xFFFF,
            };
            assert_eq!(
                out == data[..n],
                minimal,
                "{:02x?} vs {:02x?}",
                out,
                &data[..n]
            );
            n
        }
        Ok(Status::Partial) => {
            assert!(data.len() < 14);
            0
        }
        Err(_) => 0,
    };

    // Masking: key from the first bytes, payload the rest, cuts from Input.
    let mut input = Input::new(&data[payload_start..]);
    let key = [input.byte(), input.byte(), input.byte(), input.byte()];
    let plan = input.plan();
    let payload = input.rest();

    let mut once = payload.to_vec();
    apply_mask(&mut once, key, 0);
    for (i, (m, p)) in once.iter().zip(payload).enumerate() {
        assert_eq!(*m, p ^ key[i % 4], "byte {i}");
    }
    let mut pieces = payload.to_vec();
    let mut start = 0;
    for cut in plan.cuts(payload.len()).into_iter().chain([payload.len()]) {
        apply_mask(&mut pieces[start..cut], key, start);
        start = cut;
    }
    assert_eq!(pieces, once, "cuts {:?}", plan.cuts(payload.len()));
    apply_mask(&mut pieces, key, 0);
    assert_eq!(pieces, payload);
});
