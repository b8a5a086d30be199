//! `wire::sse`: `write_event` read back by `EventStreamParser`, and the
//! parser on arbitrary streams.
//!
//! Input: 8 bytes of event id, a split plan (see `Input::plan`), then the
//! message text (lossily made UTF-8, as `write_event` takes `&str`).
//!
//! Properties:
//! * one event written with `write_event(None, Some(id), msg)` and parsed
//!   in pieces comes back as exactly one `message` event whose data is
//!   `msg` with every CRLF and lone CR turned into LF, and whose last event
//!   ID is `id` in decimal;
//! * the same with an event name (CR/LF in it become spaces), and after a
//!   comment and a `retry` field;
//! * on arbitrary bytes (the raw input, not made UTF-8), the events, the
//!   last event ID and the retry time do not depend on the pieces.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pushwire::wire::sse::{write_comment, write_event, write_retry, Event, EventStreamParser};
use pushwire_fuzz::{Input, Plan};

/// What a browser makes of a stream fed in these pieces.
fn parse(stream: &[u8], plan: &Plan) -> (Vec<Event>, String, Option<u64>) {
    let mut parser = EventStreamParser::new();
    let mut events = Vec::new();
    for piece in plan.pieces(stream) {
        parser.feed(piece, &mut events);
    }
    (events, parser.last_event_id().to_string(), parser.retry())
}

fn whole(stream: &[u8]) -> (Vec<Event>, String, Option<u64>) {
    let mut parser = EventStreamParser::new();
    let mut events = Vec::new();
    parser.feed(stream, &mut events);
    (events, parser.last_event_id().to_string(), parser.retry())
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let id_bytes = input.take(8);
    let mut id = [0u8; 8];
    id[..id_bytes.len()].copy_from_slice(id_bytes);
    let id = u64::from_le_bytes(id);
    let plan = input.plan();
    let raw = input.rest();
    let msg = String::from_utf8_lossy(raw);
    let expected = msg.replace("\r\n", "\n").replace('\r', "\n");

    // The round trip.
    let mut out = Vec::new();
    write_event(&mut out, None, Some(id), &msg);
    let (events, last_id, _) = parse(&out, &plan);
    assert_eq!(
        events,
        vec![Event {
            event: "message".into(),
            data: expected.clone(),
            last_event_id: id.to_string(),
        }],
        "stream {:?}",
        String::from_utf8_lossy(&out)
    );
    assert_eq!(last_id, id.to_string());

    // With a name made of the same text, after a comment and a retry.
    let mut out = Vec::new();
    write_comment(&mut out, &msg);
    write_retry(&mut out, id);
    write_event(&mut out, Some(&msg), None, &msg);
    let (events, last_id, retry) = parse(&out, &plan);
    let name = msg.replace(['\r', '\n'], " ");
    assert_eq!(
        events,
        vec![Event {
            event: if name.is_empty() {
                "message".into()
            } else {
                name
            },
            data: expected,
            last_event_id: String::new(),
        }],
        "stream {:?}",
        String::from_utf8_lossy(&out)
    );
    assert_eq!((last_id.as_str(), retry), ("", Some(id)));

    // Arbitrary bytes: whole versus pieces.
    assert_eq!(
        parse(raw, &plan),
        whole(raw),
        "cuts {:?}",
        plan.cuts(raw.len())
    );
});
