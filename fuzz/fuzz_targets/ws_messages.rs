//! `proto::ws::MessageReader`: the messages, and the error that ends them,
//! must not depend on how the bytes were cut into reads.
//!
//! Input: 1 mode byte, 1 byte picking `max_message`, a split plan (see
//! `Input::plan`), then the data:
//! * mode bit 0 clear: the data are the raw bytes a client sent;
//! * mode bit 0 set: the data describe frames (2 bytes of flags and
//!   length, a 4-byte key, the payload), which are encoded as a client
//!   would; that reaches fragmentation, interleaved control frames and
//!   UTF-8 cut across frames far more often than raw bytes do;
//! * mode bit 1 set: the connection agreed `permessage-deflate` (RFC
//!   7692), and in frame mode some frames get RSV1, a text or binary
//!   one's payload compressed first (so that messages inflate, and not
//!   only fail to).
//!
//! Properties:
//! * whole and in pieces give the same sequence of messages, the same
//!   error (and close code) if any, and leave the same bytes unread;
//! * every poll makes progress or asks for more; messages are at most
//!   `max_message` bytes;
//! * in frame mode, the messages and error equal those of a plain
//!   frame-at-a-time model of RFC 6455 sections 5.2-5.5 and 8.1 and RFC
//!   7692 section 6 (the inflating itself is `ws_deflate::Inflater`'s,
//!   fuzzed on its own in `ws_inflate`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pushwire::proto::ws::{Inflate, Message, MessageReader, Progress, WsError};
use pushwire::wire::ws_deflate::{Deflater, Inflater};
use pushwire::wire::ws_frame::{self, opcode, parse_header_with, RSV1};
use pushwire::wire::{ws_close, Status};
use pushwire_fuzz::Input;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<(u16, String)>),
    /// The error and its close code.
    Error(WsError, u16),
}

impl Event {
    fn from(m: Message<'_>) -> Self {
        match m {
            Message::Text(s) => Event::Text(s.to_string()),
            Message::Binary(b) => Event::Binary(b.to_vec()),
            Message::Ping(b) => Event::Ping(b.to_vec()),
            Message::Pong(b) => Event::Pong(b.to_vec()),
            Message::Close(c) => Event::Close(c.map(|(code, r)| (code, r.to_string()))),
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
struct Run {
    events: Vec<Event>,
    /// Bytes received but not consumed, when no error ended the run.
    unread: Vec<u8>,
    idle: bool,
}

/// Feeds `pieces` as successive reads, polling until `NeedMore` after each,
/// as the server's read loop does.
fn run(pieces: &[&[u8]], max: usize, deflate: bool) -> Run {
    let mut reader = match deflate {
        true => MessageReader::with_deflate(max),
        false => MessageReader::new(max),
    };
    let (mut inflate, mut inflated) = (Inflate::new(), Vec::new());
    let mut buf: Vec<u8> = Vec::new();
    let mut events = Vec::new();
    for piece in pieces {
        buf.extend_from_slice(piece);
        loop {
            let len = buf.len();
            match reader.poll(&mut buf, &mut inflate, &mut inflated) {
                Ok(Progress::NeedMore) => break,
                Ok(Progress::Consumed(n)) => {
                    assert!(n > 0 && n <= len, "Consumed({n}) of {len}");
                    buf.drain(..n);
                }
                Ok(Progress::Message(n, m)) => {
                    assert!(n > 0 && n <= len, "Message({n}) of {len}");
                    if let Message::Text(t) = m {
                        assert!(t.len() <= max);
                    }
                    if let Message::Binary(b) = m {
                        assert!(b.len() <= max);
                    }
                    events.push(Event::from(m));
                    buf.drain(..n);
                }
                Err(e) => {
                    events.push(Event::Error(e, e.close_code()));
                    return Run {
                        events,
                        unread: Vec::new(),
                        idle: false,
                    };
                }
            }
        }
    }
    Run {
        events,
        unread: buf,
        idle: reader.is_idle(),
    }
}

/// One frame as frame mode builds it.
struct Frame {
    bytes: Vec<u8>,
    /// The unmasked payload.
    payload: Vec<u8>,
}

/// Frame mode: turns the data into a client's frames (with `deflate`,
/// some of them compressed).
fn frames(data: &[u8], deflate: bool) -> Vec<Frame> {
    let mut input = Input::new(data);
    let mut out = Vec::new();
    let mut deflater = Deflater::new(6);
    while !input.is_empty() {
        let b0 = input.byte();
        let b1 = input.byte();
        // Mostly well-formed headers; bit 6 of the first byte asks for raw
        // RSV2/RSV3 bits and opcode instead.
        let mut rsv_op = if b0 & 0x40 != 0 {
            b0 & 0x3F
        } else {
            [0, 1, 2, 0, 1, 2, 8, 9, 10][usize::from(b0 & 0x0F) % 9]
        };
        // RSV1 (0x40 here) on a quarter of the well-formed frames.
        let rsv1 = deflate && b0 & 0x70 == 0x30;
        if rsv1 {
            rsv_op |= 0x40;
        }
        let fin = b0 & 0x80 != 0;
        let masked = b1 & 0x80 == 0;
        let key = [input.byte(), input.byte(), input.byte(), input.byte()];
        let mut payload = input.take(usize::from(b1 & 0x7F)).to_vec();
        if rsv1 && matches!(rsv_op & 0x0F, opcode::TEXT | opcode::BINARY) {
            let mut z = Vec::new();
            if deflater.compress(&payload, 15, &mut z) {
                payload = z;
            }
        }
        let mut bytes = Vec::new();
        write_header(
            &mut bytes,
            fin,
            rsv_op,
            masked.then_some(key),
            payload.len() as u64,
        );
        let start = bytes.len();
        bytes.extend_from_slice(&payload);
        if masked {
            ws_frame::apply_mask(&mut bytes[start..], key, 0);
        }
        out.push(Frame { bytes, payload });
    }
    out
}

/// `ws_frame::write_header`, but keeping the RSV bits of `rsv_op` too.
fn write_header(out: &mut Vec<u8>, fin: bool, rsv_op: u8, mask: Option<[u8; 4]>, len: u64) {
    ws_frame::write_header(out, fin, rsv_op & 0x0F, mask, len);
    out[0] |= rsv_op & 0x70;
}

/// Is `b` the start of some valid UTF-8?
fn utf8_prefix(b: &[u8]) -> bool {
    match std::str::from_utf8(b) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none(),
    }
}

/// RFC 6455 (and, with `deflate`, RFC 7692) frame by frame: what a server
/// must make of these frames.
fn model(frames: &[Frame], max: usize, deflate: bool) -> Vec<Event> {
    let mut events = Vec::new();
    let mut message: Option<u8> = None;
    let mut compressed_message = false;
    let mut buffer: Vec<u8> = Vec::new();
    let mut inflater = Inflater::new();
    let err = |events: &mut Vec<Event>, e: WsError| {
        events.push(Event::Error(e, e.close_code()));
    };
    let extension_rsv = if deflate { RSV1 } else { 0 };
    for f in frames {
        let h = match parse_header_with(&f.bytes, extension_rsv) {
            Ok(Status::Complete((h, _))) => h,
            Ok(Status::Partial) => unreachable!("a whole frame"),
            Err(e) => {
                err(&mut events, WsError::Frame(e));
                return events;
            }
        };
        if h.mask.is_none() {
            err(&mut events, WsError::UnmaskedFrame);
            return events;
        }
        let compressed = h.rsv & RSV1 != 0;
        // RFC 7692 section 6: never on a control frame.
        if compressed && opcode::is_control(h.opcode) {
            err(&mut events, WsError::CompressedControl);
            return events;
        }
        let p = &f.payload;
        match h.opcode {
            opcode::PING => events.push(Event::Ping(p.clone())),
            opcode::PONG => events.push(Event::Pong(p.clone())),
            opcode::CLOSE => match ws_close::parse(p) {
                Ok(c) => events.push(Event::Close(c.map(|(code, r)| (code, r.to_string())))),
                Err(e) => {
                    err(&mut events, WsError::BadClose(e));
                    return events;
                }
            },
            op => {
                match (op, message) {
                    (opcode::CONTINUATION, None) => {
                        err(&mut events, WsError::UnexpectedContinuation);
                        return events;
                    }
                    (opcode::TEXT | opcode::BINARY, Some(_)) => {
                        err(&mut events, WsError::MessageInterrupted);
                        return events;
                    }
                    _ => {}
                }
                // RFC 7692 section 6.1: only a message's first frame.
                if compressed && op == opcode::CONTINUATION {
                    err(&mut events, WsError::CompressedContinuation);
                    return events;
                }
                if buffer.len() + p.len() > max {
                    err(&mut events, WsError::MessageTooBig);
                    return events;
                }
                if message.is_none() {
                    compressed_message = compressed;
                }
                let kind = *message.get_or_insert(op);
                buffer.extend_from_slice(p);
                // Compressed text can only be judged once inflated.
                if kind == opcode::TEXT && !compressed_message && !utf8_prefix(&buffer) {
                    err(&mut events, WsError::InvalidUtf8);
                    return events;
                }
                if h.fin {
                    message = None;
                    let mut body = std::mem::take(&mut buffer);
                    if compressed_message {
                        let mut out = Vec::new();
                        if let Err(e) = inflater.inflate(&body, max, &mut out) {
                            err(&mut events, WsError::Inflate(e));
                            return events;
                        }
                        body = out;
                    }
                    if kind == opcode::TEXT {
                        match String::from_utf8(body) {
                            Ok(s) => events.push(Event::Text(s)),
                            Err(_) => {
                                err(&mut events, WsError::InvalidUtf8);
                                return events;
                            }
                        }
                    } else {
                        events.push(Event::Binary(body));
                    }
                }
            }
        }
    }
    events
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let mode = input.byte();
    let max = input.pick(&[0usize, 1, 3, 10, 125, 200, 1 << 20]);
    let plan = input.plan();
    let data = input.rest();

    let deflate = mode & 2 != 0;
    let (wire, frames) = if mode & 1 != 0 {
        let frames = frames(data, deflate);
        let wire: Vec<u8> = frames
            .iter()
            .flat_map(|f| f.bytes.iter().copied())
            .collect();
        (wire, Some(frames))
    } else {
        (data.to_vec(), None)
    };

    let whole = run(&[&wire], max, deflate);
    let split = run(&plan.pieces(&wire), max, deflate);
    assert_eq!(
        split,
        whole,
        "cut at {:?} of {} bytes (max_message {max})",
        plan.cuts(wire.len()),
        wire.len()
    );

    if let Some(frames) = frames {
        let want = model(&frames, max, deflate);
        assert_eq!(whole.events, want, "frame model (max_message {max})");
        if !matches!(want.last(), Some(Event::Error(..))) {
            assert!(whole.unread.is_empty());
        }
    }
});
