//! The `text/event-stream` format of Server-Sent Events (WHATWG HTML
//! section 9.2.5 "Parsing an event stream" and 9.2.6 "Interpreting an event
//! stream").
//!
//! An event stream is UTF-8 text made of lines; a blank line ends an event.
//! The grammar (9.2.5):
//!
//! ```text
//! stream      = [ bom ] *event
//! event       = *( comment / field ) end-of-line
//! comment     = colon *any-char end-of-line
//! field       = 1*name-char [ colon [ space ] *any-char ] end-of-line
//! end-of-line = ( cr lf / cr / lf )
//! ```
//!
//! What the server writes for one event, and what a browser makes of it:
//!
//! ```text
//! event: price\n          event type "price" (else "message")
//! id: 42\n                last event ID "42", sent back on reconnect
//! data: first line\n      data lines are joined with LF:
//! data: second line\n         "first line\nsecond line"
//! \n                      blank line: dispatch
//! : keep-alive\n\n        a comment, ignored (keeps proxies from timing out)
//! retry: 3000\n\n         reconnect after 3 s
//! ```
//!
//! This file has both directions. The emit side is what pushwire's SSE
//! endpoint writes. The parse side, [`EventStreamParser`], follows the
//! interpretation algorithm of 9.2.6 step by step; it is what tests, the
//! fuzzer and the load generator use to read the stream back as a browser
//! would.

use std::borrow::Cow;

// ---------------------------------------------------------------------------
// Emit
// ---------------------------------------------------------------------------

/// Appends one event: an optional `event: NAME` line, an optional `id: N`
/// line, one `data:` line for each line of `data`, then the blank line.
///
/// CR, LF and CRLF each end a line of `data` (9.2.6), so a browser gets the
/// lines back joined by LF. An empty message is one `data:` line with an
/// empty value. A CR or LF in `event` is written as a space: it would end
/// the field and start another.
pub fn write_event(out: &mut Vec<u8>, event: Option<&str>, id: Option<u64>, data: &str) {
    if let Some(name) = event {
        out.extend_from_slice(b"event: ");
        push_one_line(out, name);
        out.push(b'\n');
    }
    if let Some(id) = id {
        out.extend_from_slice(b"id: ");
        push_decimal(out, id);
        out.push(b'\n');
    }
    for line in lines(data) {
        // One space after the colon, which the parser removes; so a line
        // that itself starts with a space keeps it.
        if line.is_empty() {
            out.extend_from_slice(b"data:\n");
        } else {
            out.extend_from_slice(b"data: ");
            out.extend_from_slice(line.as_bytes());
            out.push(b'\n');
        }
    }
    out.push(b'\n');
}

/// Appends a comment, `: TEXT` and a blank line. A CR or LF in `text` is
/// written as a space.
pub fn write_comment(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(b": ");
    push_one_line(out, text);
    out.extend_from_slice(b"\n\n");
}

/// Appends `retry: MS` and a blank line: the client should wait `ms`
/// milliseconds before reconnecting.
pub fn write_retry(out: &mut Vec<u8>, ms: u64) {
    out.extend_from_slice(b"retry: ");
    push_decimal(out, ms);
    out.extend_from_slice(b"\n\n");
}

/// The lines of `s`, each ended by CRLF, CR or LF (the last one by the end
/// of `s`). `""` is one empty line; `"a\n"` is `"a"` and `""`.
fn lines(s: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(s);
    std::iter::from_fn(move || {
        let current = rest?;
        // A byte scan, not `str::find` with a char pattern, which decodes
        // every character: this runs over every byte of every message (a
        // megabyte of SSE data took ~150 ms in a debug build that way).
        match current.bytes().position(|b| b == b'\r' || b == b'\n') {
            None => {
                rest = None;
                Some(current)
            }
            Some(end) => {
                // `end` is the index of an ASCII byte: a char boundary.
                let (line, ending) = current.split_at(end);
                let after = ending
                    .strip_prefix("\r\n")
                    .or_else(|| ending.get(1..))
                    .unwrap_or("");
                rest = Some(after);
                Some(line)
            }
        }
    })
}

/// Appends `s` with every CR and LF turned into a space.
fn push_one_line(out: &mut Vec<u8>, s: &str) {
    out.extend(s.bytes().map(|b| match b {
        b'\r' | b'\n' => b' ',
        _ => b,
    }));
}

/// Appends `n` in decimal, without allocating.
fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20]; // u64::MAX has 20 digits
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(digits.get(start..).unwrap_or_default());
}

// ---------------------------------------------------------------------------
// Parse
// ---------------------------------------------------------------------------

/// One dispatched event, as a browser's `MessageEvent` would carry it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The event type: the last `event` field, or `"message"`.
    pub event: String,
    /// The `data` lines joined by LF.
    pub data: String,
    /// The last event ID string at the time of dispatch (9.2.6 step 1).
    pub last_event_id: String,
}

/// The UTF-8 byte order mark, stripped once from the start of the stream.
const BOM: [u8; 3] = [0xEF, 0xBB, 0xBF];

/// Reads an event stream fed in arbitrary pieces (WHATWG HTML 9.2.6).
#[derive(Debug, Default)]
pub struct EventStreamParser {
    /// How many bytes of a BOM the stream started with, while undecided.
    bom_matched: u8,
    /// The start of the stream (and any BOM) is behind us.
    past_bom: bool,
    /// Bytes of the line being received; decoded when it ends.
    line: Vec<u8>,
    /// The last line ended with a CR at the very end of a feed: an LF at
    /// the start of the next feed belongs to that line ending.
    after_cr: bool,
    /// The "data" buffer.
    data: String,
    /// The "event type" buffer.
    event_type: String,
    /// The "last event ID" buffer.
    last_event_id_buffer: String,
    /// The event source's "last event ID string".
    last_event_id: String,
    /// The reconnection time set by the last valid `retry` field.
    retry: Option<u64>,
}

impl EventStreamParser {
    /// A parser at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses the next bytes of the stream, pushing every event they
    /// complete onto `events`.
    pub fn feed(&mut self, mut bytes: &[u8], events: &mut Vec<Event>) {
        // "The UTF-8 decode algorithm strips one leading UTF-8 Byte Order
        // Mark (BOM), if any." (9.2.6) It may arrive cut in pieces too.
        while !self.past_bom {
            let Some((&b, rest)) = bytes.split_first() else {
                return;
            };
            let matched = usize::from(self.bom_matched);
            if BOM.get(matched) == Some(&b) {
                bytes = rest;
                self.bom_matched += 1;
                self.past_bom = usize::from(self.bom_matched) == BOM.len();
            } else {
                // Not a BOM after all: what looked like one is text.
                self.past_bom = true;
                let text = BOM.get(..matched).unwrap_or_default();
                self.feed_lines(text, events);
            }
        }
        self.feed_lines(bytes, events);
    }

    /// The reconnection time in milliseconds, if a `retry` field set one.
    pub fn retry(&self) -> Option<u64> {
        self.retry
    }

    /// The last event ID string (what a browser would send back in
    /// `Last-Event-ID` when reconnecting).
    pub fn last_event_id(&self) -> &str {
        &self.last_event_id
    }

    /// Splits bytes into lines: "a U+000D CARRIAGE RETURN U+000A LINE FEED
    /// (CRLF) character pair, a single U+000A LINE FEED (LF) character not
    /// preceded by a U+000D CARRIAGE RETURN (CR) character, and a single
    /// U+000D CARRIAGE RETURN (CR) character not followed by a U+000A LINE
    /// FEED (LF) character" (9.2.6).
    fn feed_lines(&mut self, mut bytes: &[u8], events: &mut Vec<Event>) {
        if self.after_cr && !bytes.is_empty() {
            self.after_cr = false;
            if let Some(rest) = bytes.strip_prefix(b"\n") {
                bytes = rest;
            }
        }
        while let Some(end) = bytes.iter().position(|&b| b == b'\r' || b == b'\n') {
            let (line, ending) = bytes.split_at(end);
            self.line.extend_from_slice(line);
            bytes = match ending {
                [b'\r', b'\n', rest @ ..] => rest,
                [b'\r'] => {
                    // A CR at the end of this feed: if the next feed starts
                    // with LF, that LF is part of this line ending.
                    self.after_cr = true;
                    &[]
                }
                [_, rest @ ..] => rest,
                [] => &[],
            };
            self.end_line(events);
        }
        self.line.extend_from_slice(bytes);
    }

    /// A whole line has arrived: decode it and process it.
    fn end_line(&mut self, events: &mut Vec<Event>) {
        let raw = std::mem::take(&mut self.line);
        // "Streams must be decoded using the UTF-8 decode algorithm": bad
        // bytes become U+FFFD. CR and LF are ASCII and never inside a
        // multi-byte sequence, so decoding line by line gives the same text
        // as decoding the whole stream.
        let line: Cow<'_, str> = String::from_utf8_lossy(&raw);
        self.process_line(&line, events);
        // Keep the allocation for the next line.
        let mut raw = raw;
        raw.clear();
        self.line = raw;
    }

    /// 9.2.6: "Lines must be processed, in the order they are received, as
    /// follows".
    fn process_line(&mut self, line: &str, events: &mut Vec<Event>) {
        if line.is_empty() {
            // "If the line is empty (a blank line): Dispatch the event"
            self.dispatch(events);
        } else if line.starts_with(':') {
            // "If the line starts with a U+003A COLON character (:):
            // Ignore the line."
        } else if let Some((field, value)) = line.split_once(':') {
            // "If value starts with a U+0020 SPACE character, remove it"
            let value = value.strip_prefix(' ').unwrap_or(value);
            self.process_field(field, value);
        } else {
            // No colon: the whole line is the field name, the value empty.
            self.process_field(line, "");
        }
    }

    /// 9.2.6 "process the field". Names are compared literally, with no
    /// case folding.
    fn process_field(&mut self, name: &str, value: &str) {
        match name {
            "event" => {
                self.event_type.clear();
                self.event_type.push_str(value);
            }
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
            }
            // "If the field value does not contain U+0000 NULL, then set the
            // last event ID buffer to the field value. Otherwise, ignore."
            "id" if !value.contains('\0') => {
                self.last_event_id_buffer.clear();
                self.last_event_id_buffer.push_str(value);
            }
            // "If the field value consists of only ASCII digits, then
            // interpret the field value as an integer in base ten".
            // An empty value, and one too large for u64, are ignored.
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                if let Ok(ms) = value.parse() {
                    self.retry = Some(ms);
                }
            }
            // "Otherwise: The field is ignored."
            _ => {}
        }
    }

    /// 9.2.6 "dispatch the event", the steps for web browsers.
    fn dispatch(&mut self, events: &mut Vec<Event>) {
        // 1. The last event ID string takes the buffer's value (the buffer
        //    is not reset).
        self.last_event_id.clone_from(&self.last_event_id_buffer);
        // 2. An empty data buffer: reset the buffers, no event.
        if self.data.is_empty() {
            self.event_type.clear();
            return;
        }
        // 3. Remove one trailing LF.
        if self.data.ends_with('\n') {
            self.data.pop();
        }
        // 4.-6. The event: type "message" unless the event type buffer
        //       says otherwise.
        let event = if self.event_type.is_empty() {
            String::from("message")
        } else {
            std::mem::take(&mut self.event_type)
        };
        // 7. Reset the data and event type buffers.
        let data = std::mem::take(&mut self.data);
        self.event_type.clear();
        // 8. Queue it.
        events.push(Event {
            event,
            data,
            last_event_id: self.last_event_id.clone(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(stream: &[u8]) -> Vec<Event> {
        let mut parser = EventStreamParser::new();
        let mut events = Vec::new();
        parser.feed(stream, &mut events);
        events
    }

    fn ev(event: &str, data: &str, id: &str) -> Event {
        Event {
            event: event.into(),
            data: data.into(),
            last_event_id: id.into(),
        }
    }

    fn emitted(event: Option<&str>, id: Option<u64>, data: &str) -> Vec<u8> {
        let mut out = Vec::new();
        write_event(&mut out, event, id, data);
        out
    }

    // --- emit ---

    #[test]
    fn write_simple_event() {
        assert_eq!(emitted(None, None, "hi"), b"data: hi\n\n");
    }

    #[test]
    fn write_event_with_name_and_id() {
        assert_eq!(
            emitted(Some("price"), Some(42), "1.5"),
            b"event: price\nid: 42\ndata: 1.5\n\n"
        );
    }

    #[test]
    fn write_multiline_data() {
        assert_eq!(
            emitted(None, None, "a\nb\r\nc\rd"),
            b"data: a\ndata: b\ndata: c\ndata: d\n\n"
        );
    }

    #[test]
    fn write_empty_data() {
        assert_eq!(emitted(None, None, ""), b"data:\n\n");
    }

    #[test]
    fn write_trailing_newline() {
        assert_eq!(emitted(None, None, "a\n"), b"data: a\ndata:\n\n");
    }

    #[test]
    fn write_id_extremes() {
        assert_eq!(emitted(None, Some(0), "x"), b"id: 0\ndata: x\n\n");
        assert_eq!(
            emitted(None, Some(u64::MAX), "x"),
            b"id: 18446744073709551615\ndata: x\n\n"
        );
    }

    #[test]
    fn write_event_name_newlines_become_spaces() {
        assert_eq!(
            emitted(Some("a\r\ndata: evil"), None, "x"),
            b"event: a  data: evil\ndata: x\n\n"
        );
    }

    #[test]
    fn write_comment_plain() {
        let mut out = Vec::new();
        write_comment(&mut out, "keep-alive");
        assert_eq!(out, b": keep-alive\n\n");
    }

    #[test]
    fn write_comment_newlines_become_spaces() {
        let mut out = Vec::new();
        write_comment(&mut out, "a\nb\rc");
        assert_eq!(out, b": a b c\n\n");
    }

    #[test]
    fn write_retry_line() {
        let mut out = Vec::new();
        write_retry(&mut out, 3000);
        assert_eq!(out, b"retry: 3000\n\n");
    }

    #[test]
    fn emitted_comment_and_retry_parse() {
        let mut out = Vec::new();
        write_comment(&mut out, "hello\nthere");
        write_retry(&mut out, 2500);
        let mut parser = EventStreamParser::new();
        let mut events = Vec::new();
        parser.feed(&out, &mut events);
        assert!(events.is_empty());
        assert_eq!(parser.retry(), Some(2500));
    }

    // --- round trip ---

    /// What a browser hands back for `message`: every CRLF and CR as LF.
    fn normalized(message: &str) -> String {
        message.replace("\r\n", "\n").replace('\r', "\n")
    }

    #[test]
    fn round_trip() {
        let messages = [
            "plain",
            "",
            "a\nb",
            "a\rb",
            "a\r\nb",
            "a\r\n\r\nb\n\rc\r\rd",
            "\n",
            "\r\n",
            "\n\n\n",
            "trailing\n",
            "\nleading",
            " leading space",
            "  two spaces",
            ":colon first",
            "data: inside",
            "tab\there",
            "nul\0byte",
            "caf\u{e9} \u{65e5}\u{672c} \u{1f600} \u{2028}",
            "\u{feff}bom-like",
        ];
        for message in messages {
            for (name, expected_type) in [(None, "message"), (Some("upd"), "upd")] {
                let stream = emitted(name, Some(7), message);
                let expected = vec![ev(expected_type, &normalized(message), "7")];
                assert_eq!(parse(&stream), expected, "{message:?}");
            }
        }
    }

    #[test]
    fn round_trip_many_events() {
        let mut stream = Vec::new();
        write_comment(&mut stream, "start");
        write_event(&mut stream, Some("a"), Some(1), "one\ntwo");
        write_event(&mut stream, None, None, "three");
        write_retry(&mut stream, 10);
        write_event(&mut stream, Some("b"), Some(2), "");
        assert_eq!(
            parse(&stream),
            vec![
                ev("a", "one\ntwo", "1"),
                ev("message", "three", "1"),
                ev("b", "", "2"),
            ]
        );
    }

    // --- the examples of WHATWG HTML 9.2.6 ---

    #[test]
    fn spec_example_stock_ticker() {
        let stream = b"data: YHOO\ndata: +2\ndata: 10\n\n";
        assert_eq!(parse(stream), vec![ev("message", "YHOO\n+2\n10", "")]);
    }

    #[test]
    fn spec_example_four_blocks() {
        let stream = b": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n\n";
        let mut parser = EventStreamParser::new();
        let mut events = Vec::new();
        parser.feed(stream, &mut events);
        assert_eq!(
            events,
            vec![
                ev("message", "first event", "1"),
                ev("message", "second event", ""),
                ev("message", " third event", ""),
            ]
        );
        assert_eq!(parser.last_event_id(), "");
    }

    #[test]
    fn spec_example_end_of_stream_is_not_a_blank_line() {
        let stream = b"data: first\n\ndata:  third event";
        assert_eq!(parse(stream), vec![ev("message", "first", "")]);
    }

    #[test]
    fn spec_example_two_events() {
        let stream = b"data\n\ndata\ndata\n\ndata:";
        assert_eq!(
            parse(stream),
            vec![ev("message", "", ""), ev("message", "\n", "")]
        );
    }

    #[test]
    fn spec_example_two_identical_events() {
        let stream = b"data:test\n\ndata: test\n\n";
        assert_eq!(
            parse(stream),
            vec![ev("message", "test", ""), ev("message", "test", "")]
        );
    }

    // --- parsing rules, one per test ---

    #[test]
    fn crlf_cr_and_lf_all_end_lines() {
        let stream = b"data: a\r\ndata: b\rdata: c\n\r\n";
        assert_eq!(parse(stream), vec![ev("message", "a\nb\nc", "")]);
    }

    #[test]
    fn cr_cr_is_two_line_endings() {
        assert_eq!(parse(b"data: a\r\r"), vec![ev("message", "a", "")]);
    }

    #[test]
    fn lf_cr_is_two_line_endings() {
        assert_eq!(parse(b"data: a\n\r"), vec![ev("message", "a", "")]);
    }

    #[test]
    fn cr_at_end_of_feed_then_lf_is_one_line_ending() {
        let mut parser = EventStreamParser::new();
        let mut events = Vec::new();
        parser.feed(b"data: a\r", &mut events);
        parser.feed(b"\ndata: b\r\n", &mut events);
        assert!(
            events.is_empty(),
            "CR then LF across feeds is not a blank line"
        );
        parser.feed(b"\r\n", &mut events);
        assert_eq!(events, vec![ev("message", "a\nb", "")]);
    }

    #[test]
    fn cr_then_empty_feed_then_lf() {
        let mut parser = EventStreamParser::new();
        let mut events = Vec::new();
        parser.feed(b"data: a\r", &mut events);
        parser.feed(b"", &mut events);
        parser.feed(b"\n", &mut events);
        assert!(events.is_empty());
        parser.feed(b"\n", &mut events);
        assert_eq!(events, vec![ev("message", "a", "")]);
    }

    #[test]
    fn bom_is_stripped() {
        assert_eq!(
            parse(b"\xEF\xBB\xBFdata: x\n\n"),
            vec![ev("message", "x", "")]
        );
    }

    #[test]
    fn only_one_bom_is_stripped() {
        // The second BOM is part of the first line's field name.
        assert_eq!(parse(b"\xEF\xBB\xBF\xEF\xBB\xBFdata: x\n\n"), vec![]);
    }

    #[test]
    fn bom_split_across_feeds() {
        let mut parser = EventStreamParser::new();
        let mut events = Vec::new();
        for piece in [&b"\xEF"[..], b"\xBB", b"\xBFdata: x\n", b"\n"] {
            parser.feed(piece, &mut events);
        }
        assert_eq!(events, vec![ev("message", "x", "")]);
    }

    #[test]
    fn partial_bom_is_text() {
        // EF BB then 'd' is not a BOM: EF BB decodes to U+FFFD, so the
        // field name is "\u{fffd}data" and is ignored.
        assert_eq!(
            parse(b"\xEF\xBBdata: x\n\ndata: y\n\n"),
            vec![ev("message", "y", "")]
        );
    }

    #[test]
    fn bom_later_in_stream_is_not_stripped() {
        assert_eq!(
            parse(b"data: a\n\xEF\xBB\xBFdata: b\n\n"),
            vec![ev("message", "a", "")]
        );
    }

    #[test]
    fn comments_are_ignored() {
        assert_eq!(parse(b": hi\ndata: x\n:\n\n"), vec![ev("message", "x", "")]);
    }

    #[test]
    fn only_one_leading_space_is_stripped() {
        assert_eq!(parse(b"data:   x\n\n"), vec![ev("message", "  x", "")]);
    }

    #[test]
    fn tab_is_not_stripped() {
        assert_eq!(parse(b"data:\tx\n\n"), vec![ev("message", "\tx", "")]);
    }

    #[test]
    fn value_may_contain_colons() {
        assert_eq!(
            parse(b"data: a: b:c\n\n"),
            vec![ev("message", "a: b:c", "")]
        );
    }

    #[test]
    fn field_without_colon() {
        assert_eq!(parse(b"data\ndata\n\n"), vec![ev("message", "\n", "")]);
    }

    #[test]
    fn field_names_are_case_sensitive() {
        assert_eq!(parse(b"Data: x\nDATA: y\n\n"), vec![]);
    }

    #[test]
    fn space_before_colon_makes_another_field() {
        assert_eq!(parse(b"data : x\n\n"), vec![]);
    }

    #[test]
    fn unknown_fields_are_ignored() {
        assert_eq!(
            parse(b"foo: bar\ndata: x\n\n"),
            vec![ev("message", "x", "")]
        );
    }

    #[test]
    fn event_type_is_reset_after_dispatch() {
        assert_eq!(
            parse(b"event: a\ndata: 1\n\ndata: 2\n\n"),
            vec![ev("a", "1", ""), ev("message", "2", "")]
        );
    }

    #[test]
    fn event_type_is_reset_even_without_data() {
        assert_eq!(
            parse(b"event: a\n\ndata: 2\n\n"),
            vec![ev("message", "2", "")]
        );
    }

    #[test]
    fn empty_event_field_means_message() {
        assert_eq!(parse(b"event:\ndata: x\n\n"), vec![ev("message", "x", "")]);
    }

    #[test]
    fn last_event_id_persists() {
        assert_eq!(
            parse(b"id: 5\ndata: a\n\ndata: b\n\n"),
            vec![ev("message", "a", "5"), ev("message", "b", "5")]
        );
    }

    #[test]
    fn id_is_set_even_without_data() {
        let mut parser = EventStreamParser::new();
        let mut events = Vec::new();
        parser.feed(b"id: 9\n\n", &mut events);
        assert!(events.is_empty());
        assert_eq!(parser.last_event_id(), "9");
    }

    #[test]
    fn id_takes_effect_at_dispatch() {
        // The id field after data still applies to that event.
        assert_eq!(parse(b"data: a\nid: 3\n\n"), vec![ev("message", "a", "3")]);
    }

    #[test]
    fn id_with_nul_is_ignored() {
        assert_eq!(
            parse(b"id: 1\ndata: a\n\nid: 2\0x\ndata: b\n\n"),
            vec![ev("message", "a", "1"), ev("message", "b", "1")]
        );
    }

    #[test]
    fn retry_sets_reconnection_time() {
        let mut parser = EventStreamParser::new();
        let mut events = Vec::new();
        parser.feed(b"retry: 10000\n", &mut events);
        assert_eq!(parser.retry(), Some(10000));
    }

    #[test]
    fn retry_not_digits_is_ignored() {
        for line in [
            &b"retry: one thousand\n"[..],
            b"retry: 1.5\n",
            b"retry: -1\n",
            b"retry:  10\n",
            b"retry: 10 \n",
            b"retry\n",
            b"retry:\n",
            b"retry: 99999999999999999999999\n",
        ] {
            let mut parser = EventStreamParser::new();
            let mut events = Vec::new();
            parser.feed(b"retry: 5\n", &mut events);
            parser.feed(line, &mut events);
            assert_eq!(parser.retry(), Some(5), "{line:?}");
        }
    }

    #[test]
    fn invalid_utf8_becomes_replacement() {
        assert_eq!(
            parse(b"data: a\xFFb\xE2\x82\n\n"),
            vec![ev("message", "a\u{fffd}b\u{fffd}", "")]
        );
    }

    #[test]
    fn incomplete_event_is_not_dispatched() {
        assert_eq!(parse(b"data: a\n"), vec![]);
    }

    // --- split points ---

    const STREAMS: &[&[u8]] = &[
        b"\xEF\xBB\xBF: c\r\nevent: e\r\nid: 1\r\ndata: a\r\ndata:  b\r\n\r\nretry: 7\r\rdata\n\n",
        b"data: x\r\rdata: y\r\n\r\ndata: z\n\r",
        b"\xEF\xBBx\ndata: \xF0\x9F\x98\x80\xFF\n\n",
        b"id: a\0b\ndata\n\nid\ndata: q\r\n\r",
        b": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n\n",
    ];

    fn parse_pieces(pieces: &[&[u8]]) -> (Vec<Event>, Option<u64>, String) {
        let mut parser = EventStreamParser::new();
        let mut events = Vec::new();
        for piece in pieces {
            parser.feed(piece, &mut events);
        }
        let id = parser.last_event_id().to_owned();
        (events, parser.retry(), id)
    }

    #[test]
    fn split_at_every_offset() {
        for stream in STREAMS {
            let whole = parse_pieces(&[stream]);
            assert!(!whole.0.is_empty());
            for cut in 0..=stream.len() {
                let (a, b) = stream.split_at(cut);
                assert_eq!(parse_pieces(&[a, b]), whole, "cut at {cut} of {stream:?}");
            }
            for i in 0..=stream.len() {
                for j in i..=stream.len() {
                    let pieces = [&stream[..i], &stream[i..j], &stream[j..]];
                    assert_eq!(parse_pieces(&pieces), whole, "cuts {i} {j} of {stream:?}");
                }
            }
        }
    }

    #[test]
    fn one_byte_at_a_time() {
        for stream in STREAMS {
            let pieces: Vec<&[u8]> = stream.chunks(1).collect();
            assert_eq!(parse_pieces(&pieces), parse_pieces(&[stream]), "{stream:?}");
        }
    }
}
