//! The long-poll answer of `GET /channels/{ch}/poll` (docs/api.md), checked and
//! taken apart with the suites' own JSON parser.

use super::json::{assert_json_type, json, num};
use super::{JsonValue, Response};

/// A long-poll answer: its messages, `last` and `truncated`.
#[derive(Debug)]
pub struct PollAnswer {
    /// The messages as (id, data), in answer order.
    pub messages: Vec<(u64, String)>,
    pub last: u64,
    /// `truncated` (`false` when absent).
    pub truncated: bool,
    /// The whole body, for failure messages.
    pub raw: String,
}

/// Checks a long-poll answer (`200`, JSON, a `messages` array, `last`, an
/// optional boolean `truncated`) and takes it apart. With `exact_shape`,
/// every message must also be exactly `{"id","data"}`, in that order.
pub fn parse_poll(r: &Response, exact_shape: bool) -> PollAnswer {
    assert_eq!(r.status, 200, "poll: {:?}", r.text());
    assert_json_type(r);
    let j = json(r);
    let Some(JsonValue::Arr(ms)) = j.get("messages") else {
        panic!("no messages array in {:?}", r.text());
    };
    let messages = ms
        .iter()
        .map(|m| {
            if exact_shape {
                assert_eq!(
                    m.keys(),
                    vec!["id", "data"],
                    "message shape in {:?}",
                    r.text()
                );
            }
            let data = m.get("data").and_then(|d| d.as_str()).expect("data string");
            (num(m, "id"), data.to_string())
        })
        .collect();
    let truncated = match j.get("truncated") {
        None => false,
        Some(JsonValue::Bool(b)) => *b,
        Some(other) => panic!("truncated is {other:?}"),
    };
    PollAnswer {
        messages,
        last: num(&j, "last"),
        truncated,
        raw: r.text(),
    }
}
