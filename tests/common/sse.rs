//! An event-stream (Server-Sent Events) client written from WHATWG HTML
//! section 9.2.6 ("Interpreting an event stream"), over a raw socket, with
//! its own chunked-body decoder: independent of the server's code on
//! purpose, so the suites check the wire format and not themselves.

use super::{find, Server};
use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// A dispatched event.
#[derive(Debug, Clone)]
pub struct SseEvent {
    /// The event type (`message` when no `event:` field was given).
    pub event: String,
    pub data: String,
    /// The `id:` field of this event's own block, if it had one.
    pub id_field: Option<String>,
    /// The stream's last event ID buffer when this event was dispatched
    /// (what `MessageEvent.lastEventId` shows).
    pub last_event_id: String,
    /// When the reader dispatched it.
    pub at: Instant,
}

impl SseEvent {
    /// The numeric `id:` field of the event's block (panics without one).
    pub fn id(&self) -> u64 {
        self.id_field
            .as_deref()
            .unwrap_or_else(|| panic!("event without id: {self:?}"))
            .parse()
            .unwrap_or_else(|_| panic!("non-numeric id: {self:?}"))
    }
}

/// What the reader yields, in stream order.
#[derive(Debug)]
pub enum SseItem {
    /// A dispatched event.
    Event(SseEvent),
    /// A comment line, whole (e.g. `": ping"`), and when it arrived.
    Comment(String, Instant),
    /// A `retry:` field (the reconnection time, in ms).
    Retry(#[allow(dead_code)] u64),
}

/// Where the chunked-body decoder stands.
#[derive(Debug)]
enum ChunkState {
    Size,
    Data(usize),
    DataEnd,
    Done,
}

/// The WHATWG event-stream interpretation: bytes in, items out.
#[derive(Default)]
pub struct SseParser {
    bom_checked: bool,
    pending_start: Vec<u8>,
    line: Vec<u8>,
    skip_lf: bool,
    data: String,
    event_type: String,
    block_id: Option<String>,
    last_event_id: String,
    /// Items parsed and not yet taken.
    pub items: VecDeque<SseItem>,
}

impl SseParser {
    /// The body as a stream of bytes: strip one leading BOM, split lines on
    /// CRLF, LF or CR (a CR at the end of one read may pair with an LF at
    /// the start of the next).
    pub fn feed(&mut self, bytes: &[u8]) {
        let mut bytes = bytes.to_vec();
        if !self.bom_checked {
            self.pending_start.extend_from_slice(&bytes);
            const BOM: &[u8] = b"\xEF\xBB\xBF";
            let p = &self.pending_start;
            if p.len() < 3 && BOM.starts_with(p) {
                return;
            }
            self.bom_checked = true;
            bytes = std::mem::take(&mut self.pending_start);
            if bytes.starts_with(BOM) {
                bytes.drain(..3);
            }
        }
        for b in bytes {
            if self.skip_lf {
                self.skip_lf = false;
                if b == b'\n' {
                    continue;
                }
            }
            match b {
                b'\r' => {
                    self.skip_lf = true;
                    self.end_line();
                }
                b'\n' => self.end_line(),
                _ => self.line.push(b),
            }
        }
    }

    fn end_line(&mut self) {
        let raw = std::mem::take(&mut self.line);
        let line = String::from_utf8_lossy(&raw).into_owned();
        if line.is_empty() {
            self.dispatch();
            return;
        }
        if line.starts_with(':') {
            self.items.push_back(SseItem::Comment(line, Instant::now()));
            return;
        }
        let (field, value) = match line.find(':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(' ').unwrap_or(v))
            }
            None => (line.as_str(), ""),
        };
        match field {
            "event" => self.event_type = value.to_string(),
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
            }
            // An id containing NUL is ignored.
            "id" if !value.contains('\0') => {
                self.last_event_id = value.to_string();
                self.block_id = Some(value.to_string());
            }
            // A retry that is not all ASCII digits is ignored.
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                self.items.push_back(SseItem::Retry(value.parse().unwrap()));
            }
            _ => {}
        }
    }

    fn dispatch(&mut self) {
        let id_field = self.block_id.take();
        if self.data.is_empty() {
            self.event_type.clear();
            return;
        }
        let mut data = std::mem::take(&mut self.data);
        if data.ends_with('\n') {
            data.pop();
        }
        let event = match std::mem::take(&mut self.event_type) {
            t if t.is_empty() => "message".to_string(),
            t => t,
        };
        self.items.push_back(SseItem::Event(SseEvent {
            event,
            data,
            id_field,
            last_event_id: self.last_event_id.clone(),
            at: Instant::now(),
        }));
    }
}

/// An event-stream subscription over a raw socket.
pub struct Sse {
    s: TcpStream,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// Transfer-Encoding: chunked (decoded here), else close-delimited.
    chunked: bool,
    chunk_raw: Vec<u8>,
    chunk_state: ChunkState,
    /// Every decoded body byte so far, for checks of the exact framing.
    pub body: Vec<u8>,
    /// The stream ended (last chunk, EOF or a read error).
    pub closed: bool,
    p: SseParser,
}

impl Sse {
    /// `GET path` with `headers`; reads the response head.
    pub fn open(server: &Server, path: &str, headers: &[(&str, &str)]) -> Sse {
        let mut s = server.connect();
        let mut req = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n",
            server.addr
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes()).unwrap();
        let mut buf = Vec::new();
        let head_end = loop {
            if let Some(i) = find(&buf, b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            let n = s.read(&mut chunk).expect("read the event stream's head");
            assert!(n > 0, "connection closed before the head: {buf:?}");
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8(buf[..head_end].to_vec()).expect("ASCII head");
        let mut lines = head.split("\r\n");
        let status: u16 = lines
            .next()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let headers: Vec<(String, String)> = lines
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (k, v) = l.split_once(':').expect("header colon");
                (k.to_string(), v.trim().to_string())
            })
            .collect();
        let chunked = headers.iter().any(|(k, v)| {
            k.eq_ignore_ascii_case("transfer-encoding")
                && v.to_ascii_lowercase().contains("chunked")
        });
        let mut sse = Sse {
            s,
            status,
            headers,
            chunked,
            chunk_raw: Vec::new(),
            chunk_state: ChunkState::Size,
            body: Vec::new(),
            closed: false,
            p: SseParser::default(),
        };
        let rest = buf[head_end..].to_vec();
        sse.feed_transport(&rest);
        sse
    }

    /// [`Sse::open`], asserting that the answer is `200` with a
    /// `text/event-stream` Content-Type.
    pub fn open_ok(server: &Server, path: &str, headers: &[(&str, &str)]) -> Sse {
        let sse = Sse::open(server, path, headers);
        assert_eq!(
            sse.status, 200,
            "event stream {path} on {}: {:?}",
            server.addr, sse.headers
        );
        let ct = sse.header("content-type").unwrap_or("");
        assert!(
            ct.to_ascii_lowercase().starts_with("text/event-stream"),
            "event stream {path}: Content-Type {ct:?}"
        );
        sse
    }

    /// The first response header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The stream's last event ID buffer (what a reconnect would send).
    pub fn last_event_id(&self) -> &str {
        &self.p.last_event_id
    }

    fn feed_body(&mut self, bytes: &[u8]) {
        self.body.extend_from_slice(bytes);
        self.p.feed(bytes);
    }

    fn feed_transport(&mut self, bytes: &[u8]) {
        if !self.chunked {
            self.feed_body(bytes);
            return;
        }
        self.chunk_raw.extend_from_slice(bytes);
        loop {
            match self.chunk_state {
                ChunkState::Size => {
                    let Some(eol) = find(&self.chunk_raw, b"\r\n") else {
                        return;
                    };
                    let txt = String::from_utf8_lossy(&self.chunk_raw[..eol]).to_string();
                    let size = usize::from_str_radix(txt.split(';').next().unwrap().trim(), 16)
                        .unwrap_or_else(|_| panic!("bad chunk size {txt:?}"));
                    self.chunk_raw.drain(..eol + 2);
                    self.chunk_state = if size == 0 {
                        ChunkState::Done
                    } else {
                        ChunkState::Data(size)
                    };
                }
                ChunkState::Data(left) => {
                    if self.chunk_raw.is_empty() {
                        return;
                    }
                    let take = left.min(self.chunk_raw.len());
                    let part: Vec<u8> = self.chunk_raw.drain(..take).collect();
                    self.feed_body(&part);
                    self.chunk_state = if take == left {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(left - take)
                    };
                }
                ChunkState::DataEnd => {
                    if self.chunk_raw.len() < 2 {
                        return;
                    }
                    assert_eq!(&self.chunk_raw[..2], b"\r\n", "chunk not ended by CRLF");
                    self.chunk_raw.drain(..2);
                    self.chunk_state = ChunkState::Size;
                }
                ChunkState::Done => {
                    self.closed = true;
                    return;
                }
            }
        }
    }

    /// The next item within `timeout`; `None` on timeout or end of stream.
    pub fn next_item(&mut self, timeout: Duration) -> Option<SseItem> {
        let end = Instant::now() + timeout;
        loop {
            if let Some(i) = self.p.items.pop_front() {
                return Some(i);
            }
            if self.closed {
                return None;
            }
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.s
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .unwrap();
            let mut chunk = [0u8; 65536];
            match self.s.read(&mut chunk) {
                Ok(0) => self.closed = true,
                Ok(n) => self.feed_transport(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return None
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => self.closed = true,
            }
        }
    }

    /// The next dispatched event within `timeout` (comments skipped).
    pub fn try_event(&mut self, timeout: Duration) -> Option<SseEvent> {
        let end = Instant::now() + timeout;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            if let SseItem::Event(e) = self.next_item(left)? {
                return Some(e);
            }
        }
    }

    /// The next event within 10 s; panics otherwise.
    pub fn event(&mut self) -> SseEvent {
        self.try_event(Duration::from_secs(10)).unwrap_or_else(|| {
            panic!(
                "no event within 10 s; body so far {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The next event, which must be a message with this id and data.
    pub fn expect_message(&mut self, id: u64, data: &str) {
        let e = self.event();
        assert_eq!(e.event, "message", "{e:?}");
        assert_eq!(e.id(), id, "{e:?}");
        assert_eq!(e.data, data, "{e:?}");
    }

    /// The next event, which must be a `message`, as (id, data).
    pub fn message(&mut self) -> (u64, String) {
        let e = self.event();
        assert_eq!(e.event, "message", "{e:?}");
        (e.id(), e.data)
    }

    /// The next `n` messages as (id, data).
    pub fn messages(&mut self, n: usize) -> Vec<(u64, String)> {
        (0..n).map(|_| self.message()).collect()
    }

    /// No further event for `wait`, and the stream still open.
    pub fn assert_quiet(&mut self, wait: Duration) {
        if let Some(e) = self.try_event(wait) {
            panic!("unexpected extra SSE event {e:?}");
        }
        assert!(!self.closed, "the event stream was closed");
    }
}

/// Parses a whole stream body with the same rules (for curl's output).
pub fn parse_sse_text(bytes: &[u8]) -> Vec<SseEvent> {
    let mut p = SseParser::default();
    p.feed(bytes);
    p.items
        .into_iter()
        .filter_map(|i| match i {
            SseItem::Event(e) => Some(e),
            _ => None,
        })
        .collect()
}
