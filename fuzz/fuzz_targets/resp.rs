//! `wire::resp`: `parse`, `write_value`, `write_command`, `describe`.
//!
//! Input: 1 byte picks the limits, then a split plan (see `Input::plan`),
//! then the bytes a Redis server sends.
//!
//! Properties:
//! * `parse` never panics, whatever the bytes and the limits;
//! * received in pieces (a buffer that grows piece by piece, parsed after
//!   each), the first answer that is not `Partial` is the answer for the
//!   whole input: a reply does not depend on how it was cut, and an error
//!   neither goes away nor changes with more bytes;
//! * `Complete((v, n))`: `n <= input length`, the first `n` bytes alone
//!   give the same answer, and `n - 1` bytes are `Partial`;
//! * `write_value(v)` parses back to `v`, in exactly its length;
//! * `describe(v)` is one line, of a length bounded by the input's;
//! * `write_command` with the pieces as arguments parses back as an array
//!   of those bulk strings.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pushwire::wire::resp::{describe, parse, write_command, write_value, Limits, Value};
use pushwire::wire::Status;
use pushwire_fuzz::Input;

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let limits = match input.byte() % 4 {
        0 => Limits::default(),
        1 => Limits {
            max_bulk: 16,
            max_elements: 4,
            max_depth: 2,
        },
        2 => Limits {
            max_bulk: 0,
            max_elements: 0,
            max_depth: 0,
        },
        _ => Limits {
            max_bulk: usize::MAX,
            max_elements: usize::MAX,
            max_depth: usize::MAX,
        },
    };
    let plan = input.plan();
    let wire = input.rest();

    let whole = parse(wire, &limits);

    // As it would arrive: parse after every piece until there is an answer.
    let mut buf = Vec::with_capacity(wire.len());
    let mut first = Ok(Status::Partial);
    for piece in plan.pieces(wire) {
        buf.extend_from_slice(piece);
        first = parse(&buf, &limits);
        if first != Ok(Status::Partial) {
            break;
        }
    }
    assert_eq!(first, whole, "cut at {:?}", plan.cuts(wire.len()));

    // A command made of the pieces reads back as those bulk strings.
    let args = plan.pieces(wire);
    let mut command = Vec::new();
    write_command(&mut command, &args);
    let want = Value::Array(args.iter().map(|a| Value::Bulk(a.to_vec())).collect());
    assert_eq!(
        parse(&command, &Limits::default()),
        Ok(Status::Complete((want, command.len())))
    );

    let Ok(Status::Complete((value, n))) = whole else {
        return;
    };
    assert!(0 < n && n <= wire.len());
    assert_eq!(
        parse(&wire[..n], &limits),
        Ok(Status::Complete((value.clone(), n)))
    );
    assert_eq!(parse(&wire[..n - 1], &limits), Ok(Status::Partial));

    // Round trip. Text that was not UTF-8 comes back longer (one byte
    // becomes U+FFFD, three), so the re-read may not hold it to `max_bulk`.
    let mut out = Vec::new();
    write_value(&mut out, &value);
    let relaxed = Limits {
        max_bulk: usize::MAX,
        ..limits
    };
    assert_eq!(
        parse(&out, &relaxed),
        Ok(Status::Complete((value.clone(), out.len()))),
        "{out:?}"
    );

    let line = describe(&value);
    assert!(!line.contains(['\r', '\n']), "{line}");
    assert!(line.len() <= 512 + 8 * n, "{} bytes for {n}", line.len());
});
