//! `wire::chunked::ChunkedDecoder`: the result must not depend on how the
//! body was cut into reads.
//!
//! Input: 1 byte picks `max_body`, then a split plan (see `Input::plan`),
//! then the bytes that follow a request head.
//!
//! Properties:
//! * whole and in pieces give the same body and the same outcome
//!   (`Complete` at the same offset of the whole input, `Partial`, or the
//!   same error);
//! * `Complete(n)`: `n <= input length`; the body is at most `max_body`;
//! * errors are sticky, and after `Complete` the decoder takes nothing more.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pushwire::wire::chunked::{ChunkedDecoder, ChunkedError};
use pushwire::wire::Status;
use pushwire_fuzz::Input;

#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    body: Vec<u8>,
    /// `Ok(Some(n))`: complete after `n` bytes of the whole input.
    end: Result<Option<usize>, ChunkedError>,
}

fn decode(pieces: &[&[u8]], max: usize) -> Outcome {
    let mut decoder = ChunkedDecoder::new(max);
    let mut body = Vec::new();
    let mut offset = 0;
    let mut end = Ok(None);
    for piece in pieces {
        match decoder.decode(piece, &mut body) {
            Ok(Status::Partial) => offset += piece.len(),
            Ok(Status::Complete(n)) => {
                assert!(
                    n <= piece.len(),
                    "Complete({n}) of a {}-byte piece",
                    piece.len()
                );
                end = Ok(Some(offset + n));
                // Done: nothing more is taken, whatever follows.
                let mut more = Vec::new();
                assert_eq!(
                    decoder.decode(b"0\r\n\r\n", &mut more),
                    Ok(Status::Complete(0))
                );
                assert!(more.is_empty());
                break;
            }
            Err(e) => {
                end = Err(e);
                // Sticky.
                let mut more = Vec::new();
                assert_eq!(decoder.decode(b"0\r\n\r\n", &mut more), Err(e));
                assert!(more.is_empty());
                break;
            }
        }
    }
    assert!(
        body.len() <= max,
        "{} body bytes under a limit of {max}",
        body.len()
    );
    Outcome { body, end }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let max = input.pick(&[0usize, 1, 5, 16, 100, 4096, 1 << 20, usize::MAX]);
    let plan = input.plan();
    let body = input.rest();

    let whole = decode(&[body], max);
    if let Ok(Some(n)) = whole.end {
        assert!(n <= body.len());
    }
    let split = decode(&plan.pieces(body), max);
    assert_eq!(
        split,
        whole,
        "cut at {:?} of {} bytes (max_body {max})",
        plan.cuts(body.len()),
        body.len()
    );
});
