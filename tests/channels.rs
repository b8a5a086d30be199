//! docs/api.md section 2, "Channels: one pub/sub model over every transport",
//! from the outside, plus section 3's "Slow consumers" and "Clock (SSE)"
//! and section 5 (`/stats`).
//!
//! Every client here is independent of the server's code:
//! - long polling and publishing: raw HTTP/1.1 over `std::net::TcpStream`
//!   (`common::read_response`);
//! - Server-Sent Events: `Sse` below, a `text/event-stream` reader that
//!   follows the WHATWG HTML "event stream interpretation" rules itself
//!   (BOM, CR/LF/CRLF line ends, fields, comments, dispatch), on a raw socket;
//!   and once `curl -sN`, a real client;
//! - WebSocket: `tungstenite`, and a hand-made handshake for a subscriber
//!   that never reads.
//!
//! Each test starts its own `pushwire` process on port 0.

mod common;

use common::json::{assert_error, assert_json_type, json, num};
use common::poll::{parse_poll, PollAnswer};
use common::sse::{parse_sse_text, Sse, SseEvent, SseItem, SseParser};
use common::ws::raw_frame;
use common::{find, parse_json, wait_for, JsonValue, Response, Server};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::{Message, WebSocket};

// ---------------------------------------------------------------------------
// HTTP helpers: publishing, long polling, /stats
// ---------------------------------------------------------------------------

/// `POST /channels/{ch}` → 201 `{"id":N}`; returns N.
fn publish(server: &Server, ch: &str, data: &str) -> u64 {
    let r = server.post(&format!("/channels/{ch}"), data.as_bytes());
    assert_eq!(r.status, 201, "publish {data:?} to {ch}: {:?}", r.text());
    assert_json_type(&r);
    let j = json(&r);
    assert_eq!(j.keys(), vec!["id"], "publish answer {:?}", r.text());
    num(&j, "id")
}

/// A keep-alive connection that publishes many messages quickly.
struct Publisher {
    s: TcpStream,
    host: String,
}

impl Publisher {
    fn new(server: &Server) -> Publisher {
        Publisher {
            s: server.connect(),
            host: server.addr.to_string(),
        }
    }

    fn publish(&mut self, ch: &str, data: &[u8]) -> Response {
        let req = format!(
            "POST /channels/{ch} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n\r\n",
            self.host,
            data.len()
        );
        let mut bytes = req.into_bytes();
        bytes.extend_from_slice(data);
        self.s.write_all(&bytes).expect("send a publish");
        common::read_response(&mut self.s, false).expect("a publish answer")
    }

    fn publish_ok(&mut self, ch: &str, data: &str) -> u64 {
        let r = self.publish(ch, data.as_bytes());
        assert_eq!(r.status, 201, "publish to {ch}: {:?}", r.text());
        num(&json(&r), "id")
    }
}

/// `GET /channels/{ch}/poll?{query}`, answered within 10 s.
fn poll(server: &Server, ch: &str, query: &str) -> PollAnswer {
    parse_poll(&server.get(&format!("/channels/{ch}/poll?{query}")), true)
}

/// A long poll sent now, read later (so many can be parked at once).
struct PendingPoll {
    s: TcpStream,
}

impl PendingPoll {
    fn send(server: &Server, ch: &str, query: &str) -> PendingPoll {
        let mut s = server.connect();
        let req = format!(
            "GET /channels/{ch}/poll?{query} HTTP/1.1\r\nHost: {}\r\n\r\n",
            server.addr
        );
        s.write_all(req.as_bytes()).unwrap();
        PendingPoll { s }
    }

    fn answer(mut self) -> PollAnswer {
        let r = common::read_response(&mut self.s, false).expect("a poll answer");
        parse_poll(&r, true)
    }
}

fn stats(server: &Server) -> JsonValue {
    let r = server.get("/stats");
    assert_eq!(r.status, 200, "/stats: {:?}", r.text());
    assert_json_type(&r);
    json(&r)
}

/// A number at a dotted path of `/stats`, e.g. `connections.open.sse`.
fn stat(v: &JsonValue, path: &str) -> u64 {
    let mut cur = v;
    let parts: Vec<&str> = path.split('.').collect();
    for p in &parts[..parts.len() - 1] {
        cur = cur
            .get(p)
            .unwrap_or_else(|| panic!("/stats has no {path:?}: {v:?}"));
    }
    num(cur, parts[parts.len() - 1])
}

/// Waits until `/stats` shows `path` == `want`.
fn wait_stat(server: &Server, path: &str, want: u64) {
    let got = wait_for(Duration::from_secs(10), || {
        (stat(&stats(server), path) == want).then_some(())
    });
    assert!(
        got.is_some(),
        "/stats {path} never became {want}: {:?}",
        stats(server)
    );
}

// ---------------------------------------------------------------------------
// WebSocket helpers
// ---------------------------------------------------------------------------

type Ws = WebSocket<TcpStream>;

fn ws_connect(server: &Server, path: &str) -> Ws {
    let s = server.connect();
    let (ws, resp) = tungstenite::client::client(server.ws_url(path), s)
        .unwrap_or_else(|e| panic!("WebSocket handshake on {path}: {e}"));
    assert_eq!(resp.status().as_u16(), 101);
    ws
}

/// The next text message (pings and pongs skipped).
fn ws_text(ws: &mut Ws) -> String {
    loop {
        match ws.read().expect("read a WebSocket message") {
            Message::Text(t) => return t,
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected a text message, got {other:?}"),
        }
    }
}

/// The next `{"id":N,"data":"..."}` frame.
fn ws_message(ws: &mut Ws) -> (u64, String) {
    let t = ws_text(ws);
    let j = parse_json(&t).unwrap_or_else(|e| panic!("frame is not JSON ({e}): {t:?}"));
    assert_eq!(j.keys(), vec!["id", "data"], "frame {t:?}");
    let data = j.get("data").and_then(|d| d.as_str()).expect("data");
    (num(&j, "id"), data.to_string())
}

fn ws_expect(ws: &mut Ws, id: u64, data: &str) {
    assert_eq!(ws_message(ws), (id, data.to_string()));
}

fn ws_close(mut ws: Ws) {
    let _ = ws.close(None);
    let end = Instant::now() + Duration::from_secs(3);
    while Instant::now() < end {
        if ws.read().is_err() {
            return;
        }
    }
}

/// A WebSocket opened by hand (for a subscriber that never reads).
fn raw_ws(server: &Server, path: &str) -> TcpStream {
    let mut s = server.connect();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        server.addr
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut head = Vec::new();
    while find(&head, b"\r\n\r\n").is_none() {
        let mut b = [0u8; 1];
        assert_eq!(s.read(&mut b).unwrap(), 1, "closed during the handshake");
        head.push(b[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    s
}

/// Reads and discards until the peer closes; true if it did within
/// `timeout` (a reset counts as closed). Also returns the bytes read.
fn drains_to_close(s: &mut TcpStream, timeout: Duration) -> (bool, Vec<u8>) {
    let end = Instant::now() + timeout;
    let mut all = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return (false, all);
        }
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut buf) {
            Ok(0) => return (true, all),
            Ok(n) => all.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return (false, all)
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return (true, all),
        }
    }
}

// ---------------------------------------------------------------------------
// Publishing
// ---------------------------------------------------------------------------

#[test]
fn publish_answers_201_with_ids_per_channel() {
    let server = Server::start(&[]);
    assert_eq!(publish(&server, "news", "one"), 1);
    assert_eq!(publish(&server, "news", "two"), 2);
    assert_eq!(publish(&server, "news", "three"), 3);
    // Another channel counts on its own.
    assert_eq!(publish(&server, "sport", "a"), 1);
    assert_eq!(publish(&server, "sport", "b"), 2);
    assert_eq!(publish(&server, "news", "four"), 4);
    // The exact body of the answer.
    let r = server.post("/channels/news", b"five");
    assert_eq!(r.status, 201);
    assert_eq!(r.text(), r#"{"id":5}"#);
    // What was published is what history holds.
    let a = poll(&server, "news", "after=0&timeout=0");
    let got: Vec<(u64, &str)> = a.messages.iter().map(|(i, d)| (*i, d.as_str())).collect();
    assert_eq!(
        got,
        vec![
            (1, "one"),
            (2, "two"),
            (3, "three"),
            (4, "four"),
            (5, "five")
        ]
    );
    assert_eq!(a.last, 5);
    assert!(!a.truncated);
}

#[test]
fn publish_refuses_empty_and_non_utf8_bodies() {
    let server = Server::start(&[]);
    assert_error(&server.post("/channels/news", b""), 400, "empty body");
    assert_error(
        &server.post("/channels/news", b"ab\xff\xfecd"),
        400,
        "invalid UTF-8",
    );
    // A truncated multi-byte sequence and an overlong encoding.
    assert_error(&server.post("/channels/news", b"caf\xc3"), 400, "cut UTF-8");
    assert_error(
        &server.post("/channels/news", b"\xc0\xaf"),
        400,
        "overlong UTF-8",
    );
    // Nothing was published by the refusals: the next id is 1.
    assert_eq!(publish(&server, "news", "ok ünïcödé 😀"), 1);
}

#[test]
fn invalid_channel_names_are_400_on_every_path() {
    let server = Server::start(&[]);
    let long = "a".repeat(65);
    for name in ["a%20b", long.as_str(), "a%2Fb", "sp%C3%A4m", "a!b", "%zz"] {
        assert_error(
            &server.post(&format!("/channels/{name}"), b"x"),
            400,
            &format!("publish to {name:?}"),
        );
        assert_error(
            &server.get(&format!("/channels/{name}/poll?timeout=0")),
            400,
            &format!("poll on {name:?}"),
        );
        assert_error(
            &server.get(&format!("/channels/{name}/events")),
            400,
            &format!("events on {name:?}"),
        );
    }
    // 64 characters of every allowed class is fine.
    let ok = format!("{}_.-09AZ", "b".repeat(57));
    assert_eq!(ok.len(), 64);
    assert_eq!(publish(&server, &ok, "x"), 1);
}

#[test]
fn percent_encoded_channel_name_is_the_decoded_name() {
    let server = Server::start(&[]);
    assert_eq!(publish(&server, "n%65ws", "via escape"), 1);
    assert_eq!(publish(&server, "news", "plain"), 2);
    assert_eq!(publish(&server, "%6E%65%77%73", "all escaped"), 3);
    let a = poll(&server, "news", "after=0&timeout=0");
    assert_eq!(a.messages.len(), 3, "{}", a.raw);
    let b = poll(&server, "n%65ws", "after=1&timeout=0");
    assert_eq!(b.messages[0], (2, "plain".to_string()));
}

#[test]
fn get_on_the_publish_path_is_405_with_allow() {
    let server = Server::start(&[]);
    let r = server.get("/channels/x");
    assert_error(&r, 405, "GET /channels/x");
    let allow = r.header("allow").expect("Allow header");
    let methods: Vec<String> = allow
        .split(',')
        .map(|m| m.trim().to_ascii_uppercase())
        .collect();
    assert!(methods.contains(&"POST".to_string()), "Allow: {allow}");
    assert!(!methods.contains(&"GET".to_string()), "Allow: {allow}");
    // And POST on a subscribe path is 405 too, allowing GET.
    let r = server.post("/channels/x/poll", b"x");
    assert_error(&r, 405, "POST /channels/x/poll");
    assert!(r.header("allow").expect("Allow").contains("GET"));
}

// ---------------------------------------------------------------------------
// Long polling
// ---------------------------------------------------------------------------

#[test]
fn long_poll_with_after_answers_at_once_with_newer_messages() {
    let server = Server::start(&[]);
    for m in ["m1", "m2", "m3", "m4"] {
        publish(&server, "c", m);
    }
    let t = Instant::now();
    let r = server.get("/channels/c/poll?after=2");
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "held {:?}",
        t.elapsed()
    );
    assert_eq!(
        r.text(),
        r#"{"messages":[{"id":3,"data":"m3"},{"id":4,"data":"m4"}],"last":4}"#
    );
    let a = parse_poll(&r, true);
    assert_eq!(a.last, 4);
    assert!(!a.truncated);
    // after=0: everything.
    let a = poll(&server, "c", "after=0");
    assert_eq!(
        a.messages.iter().map(|m| m.0).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
}

#[test]
fn long_poll_without_after_waits_for_the_next_message_only() {
    let server = Server::start(&[]);
    publish(&server, "c", "old1");
    publish(&server, "c", "old2");
    let p = PendingPoll::send(&server, "c", "timeout=10");
    wait_stat(&server, "connections.open.longpoll", 1);
    assert_eq!(publish(&server, "c", "new"), 3);
    let a = p.answer();
    assert_eq!(a.messages, vec![(3, "new".to_string())], "{}", a.raw);
    assert_eq!(a.last, 3);
    assert!(!a.truncated);
}

#[test]
fn long_poll_times_out_with_no_messages_and_the_cursor_unchanged() {
    let server = Server::start(&[]);
    publish(&server, "c", "a");
    publish(&server, "c", "b");
    let t = Instant::now();
    let r = server.get("/channels/c/poll?after=2&timeout=1");
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(2500),
        "timeout=1 answered after {took:?}"
    );
    assert_eq!(r.text(), r#"{"messages":[],"last":2}"#);
    // Without after: the cursor is the channel's last id at request time.
    let t = Instant::now();
    let a = poll(&server, "c", "timeout=1");
    assert!(t.elapsed() >= Duration::from_millis(900));
    assert!(a.messages.is_empty());
    assert_eq!(a.last, 2);
    // A channel nobody published to.
    let a = poll(&server, "empty", "timeout=1");
    assert!(a.messages.is_empty());
    assert_eq!(a.last, 0);
    assert!(!a.truncated);
}

#[test]
fn long_poll_timeout_zero_answers_at_once() {
    let server = Server::start(&[]);
    publish(&server, "c", "a");
    publish(&server, "c", "b");
    let t = Instant::now();
    let a = poll(&server, "c", "after=2&timeout=0");
    let b = poll(&server, "c", "timeout=0");
    let c = poll(&server, "fresh", "timeout=0");
    assert!(
        t.elapsed() < Duration::from_millis(900),
        "{:?}",
        t.elapsed()
    );
    assert!(
        a.messages.is_empty() && a.last == 2 && !a.truncated,
        "{}",
        a.raw
    );
    assert!(b.messages.is_empty() && b.last == 2, "{}", b.raw);
    assert!(c.messages.is_empty() && c.last == 0, "{}", c.raw);
    let d = poll(&server, "c", "after=1&timeout=0");
    assert_eq!(d.messages, vec![(2, "b".to_string())]);
}

#[test]
fn long_poll_refuses_bad_parameters() {
    let server = Server::start(&[]);
    publish(&server, "c", "a");
    for q in [
        "after=-1",
        "after=x",
        "after=1.5",
        "after=",
        "after=1e3",
        "timeout=121",
        "timeout=x",
        "timeout=-1",
        "timeout=0.5",
        "after=1&timeout=999999999999999999999999",
    ] {
        assert_error(
            &server.get(&format!("/channels/c/poll?{q}")),
            400,
            &format!("poll ?{q}"),
        );
    }
    // The edges of the range are fine.
    let a = poll(&server, "c", "after=0&timeout=120");
    assert_eq!(a.messages.len(), 1);
}

#[test]
fn long_poll_answers_at_most_100_and_last_continues() {
    let server = Server::start(&[]);
    let mut p = Publisher::new(&server);
    for i in 1..=150u64 {
        assert_eq!(p.publish_ok("bulk", &format!("m{i}")), i);
    }
    let mut seen = Vec::new();
    let mut cursor = 0;
    let mut answers = 0;
    loop {
        let a = poll(&server, "bulk", &format!("after={cursor}&timeout=0"));
        assert!(a.messages.len() <= 100, "{} messages", a.messages.len());
        if a.messages.is_empty() {
            assert_eq!(a.last, cursor);
            break;
        }
        answers += 1;
        assert_eq!(a.last, a.messages.last().unwrap().0);
        seen.extend(a.messages.iter().cloned());
        cursor = a.last;
        assert!(answers <= 2, "more than two answers for 150 messages");
    }
    assert_eq!(answers, 2);
    let want: Vec<(u64, String)> = (1..=150).map(|i| (i, format!("m{i}"))).collect();
    assert_eq!(seen, want);
}

#[test]
fn held_long_poll_is_released_promptly_by_a_publish() {
    let server = Server::start(&[]);
    let mut publisher = Publisher::new(&server);
    publisher.publish_ok("c", "warm-up");
    for round in 0..3 {
        let p = PendingPoll::send(&server, "c", "timeout=30");
        wait_stat(&server, "connections.open.longpoll", 1);
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let a = p.answer();
            tx.send(Instant::now()).unwrap();
            a
        });
        let sent = Instant::now();
        let id = publisher.publish_ok("c", &format!("r{round}"));
        let got = rx.recv_timeout(Duration::from_secs(5)).expect("released");
        let a = reader.join().unwrap();
        assert_eq!(a.messages, vec![(id, format!("r{round}"))]);
        let lag = got.saturating_duration_since(sent);
        // ~100 ms in the contract's spirit; a little slack for a shared
        // 2-core machine.
        assert!(
            lag < Duration::from_millis(150),
            "released {lag:?} after the publish"
        );
    }
}

// ---------------------------------------------------------------------------
// Truncation, on every transport
// ---------------------------------------------------------------------------

fn server_with_10_of_history_5() -> Server {
    let server = Server::start(&["--history", "5"]);
    let mut p = Publisher::new(&server);
    for i in 1..=10u64 {
        assert_eq!(p.publish_ok("c", &format!("m{i}")), i);
    }
    server
}

#[test]
fn truncation_long_poll() {
    let server = server_with_10_of_history_5();
    let a = poll(&server, "c", "after=2&timeout=0");
    assert!(a.truncated, "{}", a.raw);
    let want: Vec<(u64, String)> = (6..=10).map(|i| (i, format!("m{i}"))).collect();
    assert_eq!(a.messages, want);
    assert_eq!(a.last, 10);
    // after=5 is exactly the edge: nothing was lost.
    let a = poll(&server, "c", "after=5&timeout=0");
    assert!(!a.truncated, "{}", a.raw);
    assert_eq!(a.messages.len(), 5);
    // after=4: message 5 was evicted.
    let a = poll(&server, "c", "after=4&timeout=0");
    assert!(a.truncated, "{}", a.raw);
    assert_eq!(a.messages[0].0, 6);
    // A cursor from the future is truncated too, and answered at once.
    let t = Instant::now();
    let a = poll(&server, "c", "after=99");
    assert!(t.elapsed() < Duration::from_secs(1));
    assert!(a.truncated, "{}", a.raw);
    assert_eq!(a.messages, want);
    assert_eq!(a.last, 10);
}

#[test]
fn truncation_sse() {
    let server = server_with_10_of_history_5();
    let mut s = Sse::open(&server, "/channels/c/events", &[("Last-Event-ID", "2")]);
    assert_eq!(s.status, 200);
    let t = s.event();
    assert_eq!(t.event, "truncated", "{t:?}");
    assert_eq!(
        t.id_field, None,
        "the truncated event must carry no id: {t:?}"
    );
    let j = parse_json(&t.data).expect("truncated data is JSON");
    assert_eq!((num(&j, "after"), num(&j, "oldest")), (2, 6), "{}", t.data);
    for i in 6..=10 {
        s.expect_message(i, &format!("m{i}"));
    }
    // Live messages follow.
    publish(&server, "c", "m11");
    s.expect_message(11, "m11");

    // From the future.
    let mut s = Sse::open(&server, "/channels/c/events", &[("Last-Event-ID", "99")]);
    let t = s.event();
    assert_eq!(t.event, "truncated");
    assert_eq!(t.id_field, None);
    let j = parse_json(&t.data).unwrap();
    assert_eq!((num(&j, "after"), num(&j, "oldest")), (99, 7), "{}", t.data);
    for i in 7..=11 {
        s.expect_message(i, &format!("m{i}"));
    }
}

#[test]
fn truncation_websocket() {
    let server = server_with_10_of_history_5();
    let mut ws = ws_connect(&server, "/channels/c/ws?after=2");
    let first = ws_text(&mut ws);
    let j = parse_json(&first).expect("JSON");
    assert_eq!(j.get("truncated"), Some(&JsonValue::Bool(true)), "{first}");
    assert_eq!((num(&j, "after"), num(&j, "oldest")), (2, 6), "{first}");
    for i in 6..=10 {
        ws_expect(&mut ws, i, &format!("m{i}"));
    }
    publish(&server, "c", "m11");
    ws_expect(&mut ws, 11, "m11");
    ws_close(ws);

    let mut ws = ws_connect(&server, "/channels/c/ws?after=99");
    let j = parse_json(&ws_text(&mut ws)).unwrap();
    assert_eq!(j.get("truncated"), Some(&JsonValue::Bool(true)));
    assert_eq!((num(&j, "after"), num(&j, "oldest")), (99, 7));
    for i in 7..=11 {
        ws_expect(&mut ws, i, &format!("m{i}"));
    }
    ws_close(ws);

    // Not truncated: no notice, straight to the messages.
    let mut ws = ws_connect(&server, "/channels/c/ws?after=9");
    ws_expect(&mut ws, 10, "m10");
    ws_expect(&mut ws, 11, "m11");
}

#[test]
fn truncation_on_an_empty_channel() {
    let server = Server::start(&["--history", "5"]);
    let t = Instant::now();
    let a = poll(&server, "void", "after=5");
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "held {:?}",
        t.elapsed()
    );
    assert!(a.messages.is_empty(), "{}", a.raw);
    assert_eq!(a.last, 0, "{}", a.raw);
    assert!(a.truncated, "{}", a.raw);
    // The same on the streaming transports: oldest is the next id, 1.
    let mut s = Sse::open(&server, "/channels/void/events", &[("Last-Event-ID", "5")]);
    let e = s.event();
    assert_eq!(e.event, "truncated");
    let j = parse_json(&e.data).unwrap();
    assert_eq!((num(&j, "after"), num(&j, "oldest")), (5, 1), "{}", e.data);
    let mut ws = ws_connect(&server, "/channels/void/ws?after=5");
    let j = parse_json(&ws_text(&mut ws)).unwrap();
    assert_eq!(j.get("truncated"), Some(&JsonValue::Bool(true)));
    assert_eq!((num(&j, "after"), num(&j, "oldest")), (5, 1));
    publish(&server, "void", "first");
    s.expect_message(1, "first");
    ws_expect(&mut ws, 1, "first");
}

// ---------------------------------------------------------------------------
// Server-Sent Events
// ---------------------------------------------------------------------------

#[test]
fn sse_head_and_message_framing() {
    let server = Server::start(&[]);
    let mut s = Sse::open(&server, "/channels/c/events", &[]);
    assert_eq!(s.status, 200);
    let ct = s.header("content-type").expect("Content-Type");
    assert!(ct.starts_with("text/event-stream"), "Content-Type {ct:?}");
    assert_eq!(s.header("cache-control"), Some("no-cache"));
    assert!(s.header("content-length").is_none(), "{:?}", s.headers);
    wait_stat(&server, "connections.open.sse", 1);
    publish(&server, "c", "hello");
    publish(&server, "c", "two\nlines");
    s.expect_message(1, "hello");
    s.expect_message(2, "two\nlines");
    let body = String::from_utf8_lossy(&s.body).into_owned();
    assert!(body.contains("id: 1\ndata: hello\n\n"), "{body:?}");
    assert!(
        body.contains("id: 2\ndata: two\ndata: lines\n\n"),
        "{body:?}"
    );
    // The id is what a browser would resume from.
    publish(&server, "c", "three");
    let e = s.event();
    assert_eq!(e.last_event_id, "3");
}

#[test]
fn sse_line_endings_all_come_back_as_lf() {
    let server = Server::start(&[]);
    let mut s = Sse::open(&server, "/channels/c/events", &[]);
    wait_stat(&server, "connections.open.sse", 1);
    let cases = [
        ("a\nb\rc\r\nd", "a\nb\nc\nd"),
        ("x\n", "x\n"),
        ("\nlead", "\nlead"),
        (" space first", " space first"),
        ("colon: inside", "colon: inside"),
        ("data: looks like a field", "data: looks like a field"),
        ("\r\n\r\n", "\n\n"),
        (":not a comment", ":not a comment"),
    ];
    for (i, (sent, _)) in cases.iter().enumerate() {
        assert_eq!(publish(&server, "c", sent), i as u64 + 1);
    }
    for (i, (sent, want)) in cases.iter().enumerate() {
        let e = s.event();
        assert_eq!(e.id(), i as u64 + 1, "{e:?}");
        assert_eq!(
            e.data,
            *want,
            "sent {sent:?}; body so far {:?}",
            String::from_utf8_lossy(&s.body)
        );
    }
}

#[test]
fn sse_heartbeat_comments() {
    let server = Server::start(&["--sse-heartbeat-ms", "200"]);
    let mut s = Sse::open(&server, "/channels/c/events", &[]);
    let start = Instant::now();
    let mut pings = Vec::new();
    while start.elapsed() < Duration::from_millis(1300) {
        let left = Duration::from_millis(1300).saturating_sub(start.elapsed());
        match s.next_item(left) {
            Some(SseItem::Comment(c, at)) => {
                if c == ": ping" {
                    pings.push(at);
                }
            }
            Some(_) => {}
            None => {
                assert!(!s.closed, "stream closed");
            }
        }
    }
    assert!(
        (4..=8).contains(&pings.len()),
        "{} pings in 1.3 s at 200 ms; body {:?}",
        pings.len(),
        String::from_utf8_lossy(&s.body)
    );
    for w in pings.windows(2) {
        let gap = w[1] - w[0];
        assert!(
            gap > Duration::from_millis(100) && gap < Duration::from_millis(500),
            "gap between pings {gap:?}"
        );
    }
    // The pings are comment lines exactly `: ping`.
    let body = String::from_utf8_lossy(&s.body).into_owned();
    assert!(
        body.contains("\n: ping\n") || body.starts_with(": ping\n"),
        "{body:?}"
    );
    // The stream is still usable.
    publish(&server, "c", "after pings");
    s.expect_message(1, "after pings");
}

#[test]
fn sse_last_event_id_replays_then_goes_live() {
    let server = Server::start(&[]);
    for m in ["a", "b", "c"] {
        publish(&server, "ch", m);
    }
    let mut s = Sse::open(&server, "/channels/ch/events", &[("Last-Event-ID", "1")]);
    s.expect_message(2, "b");
    s.expect_message(3, "c");
    publish(&server, "ch", "d");
    s.expect_message(4, "d");
    // Last-Event-ID: 4 (up to date): nothing replayed, only live.
    let mut s2 = Sse::open(&server, "/channels/ch/events", &[("Last-Event-ID", "4")]);
    publish(&server, "ch", "e");
    s2.expect_message(5, "e");
    s.expect_message(5, "e");
    // Without any cursor: only live messages.
    let mut s3 = Sse::open(&server, "/channels/ch/events", &[]);
    wait_stat(&server, "connections.open.sse", 3);
    publish(&server, "ch", "f");
    s3.expect_message(6, "f");
}

#[test]
fn sse_last_event_id_query_and_header_wins() {
    let server = Server::start(&[]);
    for m in ["a", "b", "c", "d"] {
        publish(&server, "ch", m);
    }
    let mut q = Sse::open(&server, "/channels/ch/events?lastEventId=2", &[]);
    q.expect_message(3, "c");
    q.expect_message(4, "d");
    // Both: the header (3) wins over the query (0).
    let mut both = Sse::open(
        &server,
        "/channels/ch/events?lastEventId=0",
        &[("Last-Event-ID", "3")],
    );
    both.expect_message(4, "d");
    publish(&server, "ch", "e");
    both.expect_message(5, "e");
    q.expect_message(5, "e");
    // A bad query cursor is refused.
    assert_error(
        &server.get("/channels/ch/events?lastEventId=x"),
        400,
        "lastEventId=x",
    );
}

#[test]
fn sse_head_request_answers_the_head_and_closes() {
    let server = Server::start(&[]);
    let mut s = server.connect();
    let req = format!(
        "HEAD /channels/x/events HTTP/1.1\r\nHost: {}\r\n\r\n",
        server.addr
    );
    s.write_all(req.as_bytes()).unwrap();
    let (closed, all) = drains_to_close(&mut s, Duration::from_secs(5));
    let text = String::from_utf8_lossy(&all).into_owned();
    assert!(closed, "HEAD on an event stream did not close: {text:?}");
    assert!(text.starts_with("HTTP/1.1 200"), "{text:?}");
    assert!(
        text.to_ascii_lowercase()
            .contains("content-type: text/event-stream"),
        "{text:?}"
    );
    let end = text.find("\r\n\r\n").expect("complete head") + 4;
    assert_eq!(&text[end..], "", "HEAD answer carried a body");
}

#[test]
fn sse_works_with_curl() {
    let server = Server::start(&[]);
    publish(&server, "c", "before 1");
    publish(&server, "c", "before\n2");
    let url = format!("http://{}/channels/c/events", server.addr);
    let child = Command::new("/usr/bin/curl")
        .args(["-sN", "--max-time", "3", "-H", "Last-Event-ID: 0", &url])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run curl");
    wait_stat(&server, "connections.open.sse", 1);
    publish(&server, "c", "live 3");
    let out = child.wait_with_output().expect("curl output");
    let events = parse_sse_text(&out.stdout);
    let got: Vec<(u64, String)> = events.iter().map(|e| (e.id(), e.data.clone())).collect();
    assert_eq!(
        got,
        vec![
            (1, "before 1".to_string()),
            (2, "before\n2".to_string()),
            (3, "live 3".to_string())
        ],
        "curl got {:?}",
        String::from_utf8_lossy(&out.stdout)
    );
}

// ---------------------------------------------------------------------------
// WebSocket subscribers
// ---------------------------------------------------------------------------

#[test]
fn ws_messages_are_json_text_frames() {
    let server = Server::start(&[]);
    let mut ws = ws_connect(&server, "/channels/c/ws");
    let tricky = [
        "plain",
        r#"he said "hi""#,
        r"back\slash",
        "new\nline\r\ttab",
        "ünïcödé ✓ 😀",
        "\u{1}\u{1f}\u{7f}",
        "</script>",
    ];
    for (i, m) in tricky.iter().enumerate() {
        assert_eq!(publish(&server, "c", m), i as u64 + 1);
    }
    for (i, m) in tricky.iter().enumerate() {
        let t = ws_text(&mut ws);
        // Strict JSON (no raw control characters), exactly two members.
        let j = parse_json(&t).unwrap_or_else(|e| panic!("not JSON ({e}): {t:?}"));
        assert_eq!(j.keys(), vec!["id", "data"], "{t}");
        assert_eq!(num(&j, "id"), i as u64 + 1, "{t}");
        assert_eq!(j.get("data").and_then(|d| d.as_str()), Some(*m), "{t}");
    }
    // The simplest one byte for byte.
    publish(&server, "c", "hi");
    assert_eq!(ws_text(&mut ws), r#"{"id":8,"data":"hi"}"#);
}

#[test]
fn ws_client_text_is_published_to_everyone_in_id_order() {
    let server = Server::start(&[]);
    let mut a = ws_connect(&server, "/channels/c/ws");
    let mut b = ws_connect(&server, "/channels/c/ws");
    let mut s = Sse::open(&server, "/channels/c/events", &[]);
    wait_stat(&server, "connections.open.sse", 1);
    let want = [
        (1, "post-1"),
        (2, "ws-2"),
        (3, "post-3"),
        (4, "ws-4"),
        (5, "post-5"),
    ];
    for (id, data) in want {
        if data.starts_with("ws") {
            a.send(Message::Text(data.to_string())).unwrap();
        } else {
            assert_eq!(publish(&server, "c", data), id);
        }
        // The sender receives its own message too; waiting for it keeps
        // the order of the sends the order of the ids.
        ws_expect(&mut a, id, data);
    }
    for (id, data) in want {
        ws_expect(&mut b, id, data);
        s.expect_message(id, data);
    }
    let p = poll(&server, "c", "after=0&timeout=0");
    let got: Vec<(u64, &str)> = p.messages.iter().map(|(i, d)| (*i, d.as_str())).collect();
    assert_eq!(got, want.to_vec());
}

#[test]
fn ws_empty_text_is_not_published() {
    let server = Server::start(&[]);
    let mut ws = ws_connect(&server, "/channels/c/ws");
    ws.send(Message::Text(String::new())).unwrap();
    ws.send(Message::Text("x".into())).unwrap();
    ws_expect(&mut ws, 1, "x");
    let p = poll(&server, "c", "after=0&timeout=0");
    assert_eq!(p.messages, vec![(1, "x".to_string())]);
    assert_eq!(stat(&stats(&server), "messages.published"), 1);
}

#[test]
fn ws_binary_message_is_closed_with_1003() {
    let server = Server::start(&[]);
    let mut ws = ws_connect(&server, "/channels/c/ws");
    ws.send(Message::Binary(vec![1, 2, 3])).unwrap();
    let code = loop {
        match ws.read() {
            Ok(Message::Close(Some(f))) => break Some(f.code),
            Ok(Message::Close(None)) => break None,
            Ok(Message::Ping(_) | Message::Pong(_)) => continue,
            Ok(other) => panic!("expected a close, got {other:?}"),
            Err(e) => panic!("no close frame: {e}"),
        }
    };
    assert_eq!(code, Some(CloseCode::Unsupported));
    // Nothing was published.
    assert_eq!(stat(&stats(&server), "messages.published"), 0);
}

#[test]
fn ws_bad_after_is_400_before_any_upgrade() {
    let server = Server::start(&[]);
    let upgrade = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("Sec-WebSocket-Version", "13"),
    ];
    for q in ["after=-1", "after=x", "after=1.5", "after="] {
        let r = server.request("GET", &format!("/channels/c/ws?{q}"), &upgrade, b"");
        assert_error(&r, 400, &format!("ws ?{q}"));
        assert!(r.header("sec-websocket-accept").is_none());
    }
    // tungstenite sees the refusal as an HTTP error.
    let s = server.connect();
    match tungstenite::client::client(server.ws_url("/channels/c/ws?after=x"), s) {
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(r))) => {
            assert_eq!(r.status().as_u16(), 400)
        }
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("upgraded despite a bad after"),
    }
}

// ---------------------------------------------------------------------------
// Fan-out
// ---------------------------------------------------------------------------

#[test]
fn fan_out_reaches_every_subscriber_of_every_transport_exactly_once() {
    const N: usize = 100;
    const MORE: u64 = 20;
    let server = Server::start(&[]);
    let ch = "fan";
    let mut polls: Vec<PendingPoll> = (0..N)
        .map(|_| PendingPoll::send(&server, ch, "timeout=60"))
        .collect();
    let mut sses: Vec<Sse> = (0..N)
        .map(|_| Sse::open(&server, &format!("/channels/{ch}/events"), &[]))
        .collect();
    let mut wss: Vec<Ws> = (0..N)
        .map(|_| ws_connect(&server, &format!("/channels/{ch}/ws")))
        .collect();
    wait_stat(&server, "connections.open.longpoll", N as u64);
    wait_stat(&server, "connections.open.sse", N as u64);
    wait_stat(&server, "connections.open.ws", N as u64);

    assert_eq!(publish(&server, ch, "first"), 1);
    let mut cursors = Vec::with_capacity(N);
    for p in polls.drain(..) {
        let a = p.answer();
        assert_eq!(a.messages, vec![(1, "first".to_string())], "{}", a.raw);
        cursors.push(a.last);
    }
    for s in sses.iter_mut() {
        s.expect_message(1, "first");
    }
    for w in wss.iter_mut() {
        ws_expect(w, 1, "first");
    }

    // Long pollers ask again with their cursor; then 20 quick publishes.
    let mut polls: Vec<PendingPoll> = cursors
        .iter()
        .map(|c| PendingPoll::send(&server, ch, &format!("after={c}&timeout=60")))
        .collect();
    wait_stat(&server, "connections.open.longpoll", N as u64);
    let mut publisher = Publisher::new(&server);
    for i in 0..MORE {
        assert_eq!(publisher.publish_ok(ch, &format!("more {}", i + 2)), i + 2);
    }
    let last_id = MORE + 1;
    // A sentinel: what follows the last message must be exactly it.
    assert_eq!(publisher.publish_ok(ch, "sentinel"), last_id + 1);

    for (n, p) in polls.drain(..).enumerate() {
        let mut got = Vec::new();
        let mut a = p.answer();
        loop {
            got.extend(a.messages.iter().cloned());
            if a.last > last_id {
                break;
            }
            a = poll(&server, ch, &format!("after={}&timeout=10", a.last));
        }
        let want: Vec<(u64, String)> = (2..=last_id)
            .map(|i| (i, format!("more {i}")))
            .chain(std::iter::once((last_id + 1, "sentinel".to_string())))
            .collect();
        assert_eq!(got, want, "long poller {n}");
    }
    for (n, s) in sses.iter_mut().enumerate() {
        for i in 2..=last_id {
            let e = s.event();
            assert_eq!(
                (e.id(), e.data.as_str()),
                (i, format!("more {i}").as_str()),
                "SSE {n}"
            );
        }
        s.expect_message(last_id + 1, "sentinel");
    }
    for (n, w) in wss.iter_mut().enumerate() {
        for i in 2..=last_id {
            assert_eq!(ws_message(w), (i, format!("more {i}")), "WebSocket {n}");
        }
        ws_expect(w, last_id + 1, "sentinel");
    }
    let st = stats(&server);
    assert_eq!(stat(&st, "messages.published"), last_id + 1);
}

// ---------------------------------------------------------------------------
// Resume across a disconnect
// ---------------------------------------------------------------------------

#[test]
fn resume_websocket_after_a_disconnect() {
    let server = Server::start(&[]);
    let mut ws = ws_connect(&server, "/channels/r/ws");
    publish(&server, "r", "1");
    publish(&server, "r", "2");
    ws_expect(&mut ws, 1, "1");
    let (seen, _) = ws_message(&mut ws);
    assert_eq!(seen, 2);
    ws_close(ws);
    wait_stat(&server, "connections.open.ws", 0);
    for m in ["3", "4", "5"] {
        publish(&server, "r", m);
    }
    let mut ws = ws_connect(&server, &format!("/channels/r/ws?after={seen}"));
    for i in 3..=5 {
        ws_expect(&mut ws, i, &i.to_string());
    }
    publish(&server, "r", "6");
    ws_expect(&mut ws, 6, "6");
    publish(&server, "r", "7");
    ws_expect(&mut ws, 7, "7");
}

#[test]
fn resume_sse_after_a_disconnect() {
    let server = Server::start(&[]);
    let mut s = Sse::open(&server, "/channels/r/events", &[]);
    wait_stat(&server, "connections.open.sse", 1);
    publish(&server, "r", "1");
    publish(&server, "r", "2");
    s.expect_message(1, "1");
    s.expect_message(2, "2");
    let last = s.last_event_id().to_string();
    assert_eq!(last, "2");
    drop(s);
    wait_stat(&server, "connections.open.sse", 0);
    for m in ["3", "4", "5"] {
        publish(&server, "r", m);
    }
    let mut s = Sse::open(&server, "/channels/r/events", &[("Last-Event-ID", &last)]);
    for i in 3..=5 {
        s.expect_message(i, &i.to_string());
    }
    publish(&server, "r", "6");
    s.expect_message(6, "6");
    publish(&server, "r", "7");
    s.expect_message(7, "7");
}

#[test]
fn resume_long_poll_after_a_disconnect() {
    let server = Server::start(&[]);
    // A poller parks, then goes away while parked.
    let p = PendingPoll::send(&server, "r", "timeout=30");
    wait_stat(&server, "connections.open.longpoll", 1);
    publish(&server, "r", "1");
    publish(&server, "r", "2");
    let a = p.answer();
    assert_eq!(a.messages[0], (1, "1".to_string()));
    let mut cursor = a.last;
    // Catch up to 2.
    while cursor < 2 {
        cursor = poll(&server, "r", &format!("after={cursor}&timeout=5")).last;
    }
    let gone = PendingPoll::send(&server, "r", &format!("after={cursor}&timeout=30"));
    wait_stat(&server, "connections.open.longpoll", 1);
    drop(gone);
    wait_stat(&server, "connections.open.longpoll", 0);
    for m in ["3", "4", "5"] {
        publish(&server, "r", m);
    }
    let a = poll(&server, "r", &format!("after={cursor}"));
    let want: Vec<(u64, String)> = (3..=5).map(|i| (i, i.to_string())).collect();
    assert_eq!(a.messages, want);
    assert!(!a.truncated);
    let p = PendingPoll::send(&server, "r", &format!("after={}", a.last));
    wait_stat(&server, "connections.open.longpoll", 1);
    publish(&server, "r", "6");
    assert_eq!(p.answer().messages, vec![(6, "6".to_string())]);
}

// ---------------------------------------------------------------------------
// Slow consumers
// ---------------------------------------------------------------------------

#[test]
fn slow_consumers_are_cut_and_others_unaffected() {
    let server = Server::start(&["--send-buffer-bytes", "65536"]);
    let ch = "big";
    // Two subscribers that never read.
    let mut stuck_ws = raw_ws(&server, &format!("/channels/{ch}/ws"));
    let mut stuck_sse = server.connect();
    stuck_sse
        .write_all(
            format!(
                "GET /channels/{ch}/events HTTP/1.1\r\nHost: {}\r\n\r\n",
                server.addr
            )
            .as_bytes(),
        )
        .unwrap();
    // A normal subscriber that reads everything, on its own thread.
    let mut good = ws_connect(&server, &format!("/channels/{ch}/ws"));
    wait_stat(&server, "connections.open.ws", 2);
    wait_stat(&server, "connections.open.sse", 1);
    // It returns the ids it saw when the final short "end" message comes.
    let reader = std::thread::spawn(move || {
        let mut ids = Vec::new();
        loop {
            match good.read() {
                Ok(Message::Text(t)) => {
                    let j = parse_json(&t).expect("JSON frame");
                    let id = num(&j, "id");
                    let data = j.get("data").and_then(|d| d.as_str()).unwrap();
                    if data == "end" {
                        return Ok((ids, id));
                    }
                    if data.len() != 4096 || !data.starts_with(&format!("{id}:")) {
                        return Err(format!("frame {id} has the wrong data"));
                    }
                    ids.push(id);
                }
                Ok(Message::Ping(_) | Message::Pong(_)) => {}
                Ok(other) => return Err(format!("good subscriber got {other:?}")),
                Err(e) => {
                    return Err(format!(
                        "good subscriber lost after {} messages: {e}",
                        ids.len()
                    ))
                }
            }
        }
    });
    let mut publisher = Publisher::new(&server);
    let mut published = 0u64;
    let mut cut = false;
    // 200 x 4 KiB is past 64 KiB many times over, but the kernel's socket
    // buffers on loopback absorb a few MB first: publish until both stuck
    // subscribers are cut, up to 3000 x 4 KiB.
    while published < 3000 {
        published += 1;
        let prefix = format!("{published}:");
        let data = format!("{prefix}{}", "x".repeat(4096 - prefix.len()));
        let r = publisher.publish(ch, data.as_bytes());
        assert_eq!(
            r.status,
            201,
            "publisher got an error at {published}: {:?}",
            r.text()
        );
        assert_eq!(num(&json(&r), "id"), published);
        if published >= 200
            && published.is_multiple_of(50)
            && stat(&stats(&server), "closed.slow") >= 2
        {
            cut = true;
            break;
        }
    }
    // A few more after the cut, to see the survivors keep working.
    for _ in 0..10 {
        published += 1;
        let prefix = format!("{published}:");
        let data = format!("{prefix}{}", "y".repeat(4096 - prefix.len()));
        let r = publisher.publish(ch, data.as_bytes());
        assert_eq!(r.status, 201, "publisher got an error at {published}");
    }
    let st = stats(&server);
    eprintln!("stuck subscribers cut after {published} x 4 KiB");
    assert!(
        cut,
        "stuck subscribers not cut after {published} x 4 KiB: {st:?}"
    );
    assert!(stat(&st, "closed.slow") >= 2, "{st:?}");
    assert_eq!(stat(&st, "connections.open.sse"), 0, "{st:?}");
    assert_eq!(stat(&st, "connections.open.ws"), 1, "{st:?}");
    // The good subscriber got every message, in order, once.
    let end_id = publisher.publish_ok(ch, "end");
    assert_eq!(end_id, published + 1);
    let (ids, got_end) = reader.join().unwrap().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got_end, end_id);
    assert!(
        ids.iter().copied().eq(1..=published),
        "good subscriber got {} of {published}",
        ids.len()
    );
    // The stuck ones, when they finally read, find the end of the stream
    // (after whatever the kernel still held), never all the messages.
    let (closed, bytes) = drains_to_close(&mut stuck_ws, Duration::from_secs(10));
    assert!(
        closed,
        "stuck WebSocket still open after {} bytes",
        bytes.len()
    );
    assert!(
        bytes.len() < published as usize * 4096,
        "{} bytes",
        bytes.len()
    );
    let (closed, bytes) = drains_to_close(&mut stuck_sse, Duration::from_secs(10));
    assert!(
        closed,
        "stuck event stream still open after {} bytes",
        bytes.len()
    );
    assert!(bytes.len() < published as usize * 4096);
}

// ---------------------------------------------------------------------------
// The /sse clock
// ---------------------------------------------------------------------------

/// Milliseconds since the epoch of an RFC 3339 UTC timestamp
/// (`2024-05-01T12:34:56Z`, optional fraction, `Z` or `+00:00`).
fn parse_rfc3339_utc(s: &str) -> Option<i64> {
    let (main, rest) = s.split_at_checked(19)?;
    let b = main.as_bytes();
    let digits = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = main.get(r)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    if b[4] != b'-'
        || b[7] != b'-'
        || !(b[10] == b'T' || b[10] == b't')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (y, mo, d) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (h, mi, se) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut ms = 0i64;
    let mut rest = rest;
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        let f = &frac[..n];
        ms = format!("{:0<3}", &f[..n.min(3)]).parse().ok()?;
        rest = &frac[n..];
    }
    if !(rest == "Z" || rest == "z" || rest == "+00:00") {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    Some(((days * 86400) + h * 3600 + mi * 60 + se) * 1000 + ms)
}

#[test]
fn rfc3339_parser_self_check() {
    assert_eq!(parse_rfc3339_utc("1970-01-01T00:00:00Z"), Some(0));
    assert_eq!(
        parse_rfc3339_utc("2000-03-01T00:00:01.5Z"),
        Some(951868801500)
    );
    assert_eq!(
        parse_rfc3339_utc("2000-03-01T00:00:01+00:00"),
        Some(951868801000)
    );
    assert_eq!(parse_rfc3339_utc("2000-03-01 00:00:01Z"), None);
    assert_eq!(parse_rfc3339_utc("2000-03-01T00:00:01+01:00"), None);
    assert_eq!(parse_rfc3339_utc("Welcome"), None);
}

#[test]
fn sse_clock_welcomes_then_ticks_rfc3339_utc() {
    let server = Server::start(&[]);
    let mut s = Sse::open(&server, "/sse?interval_ms=200", &[]);
    assert_eq!(s.status, 200);
    assert!(s
        .header("content-type")
        .unwrap()
        .starts_with("text/event-stream"));
    let w = s.event();
    assert_eq!(w.data, "Welcome to Server sent event");
    let mut ticks = Vec::new();
    for _ in 0..5 {
        let e = s.event();
        let t = parse_rfc3339_utc(&e.data)
            .unwrap_or_else(|| panic!("not an RFC 3339 UTC timestamp: {:?}", e.data));
        ticks.push((t, e.at));
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let (last_t, _) = ticks[ticks.len() - 1];
    assert!(
        (now - last_t).abs() < 5000,
        "clock says {last_t}, we say {now}"
    );
    for w in ticks.windows(2) {
        let (t0, a0) = w[0];
        let (t1, a1) = w[1];
        let arrived = (a1 - a0).as_millis() as i64;
        assert!(
            (100..=500).contains(&arrived),
            "ticks arrived {arrived} ms apart"
        );
        let stamped = t1 - t0;
        // Second-resolution stamps may round to 0 or 1000 apart.
        assert!((0..=1000).contains(&stamped), "stamps {stamped} ms apart");
    }
    let total = (ticks[4].1 - ticks[0].1).as_millis();
    assert!((600..=1400).contains(&total), "4 intervals took {total} ms");
}

#[test]
fn sse_clock_refuses_bad_intervals() {
    let server = Server::start(&[]);
    for q in ["50", "99", "60001", "x", "-200", "1.5"] {
        assert_error(
            &server.get(&format!("/sse?interval_ms={q}")),
            400,
            &format!("interval_ms={q}"),
        );
    }
    let mut s = Sse::open(&server, "/sse?interval_ms=100", &[]);
    assert_eq!(s.event().data, "Welcome to Server sent event");
}

// ---------------------------------------------------------------------------
// /stats
// ---------------------------------------------------------------------------

#[test]
fn stats_has_the_contract_keys_and_counts_connection_kinds() {
    let server = Server::start(&[]);
    let st = stats(&server);
    for path in [
        "connections.open.http",
        "connections.open.longpoll",
        "connections.open.sse",
        "connections.open.ws",
        "connections.accepted",
        "requests",
        "messages.published",
        "messages.delivered",
        "bytes.in",
        "bytes.out",
        "closed.timeout",
        "closed.limit",
        "closed.protocol",
        "closed.slow",
    ] {
        stat(&st, path);
    }
    assert_eq!(stat(&st, "connections.open.sse"), 0);
    assert_eq!(stat(&st, "connections.open.longpoll"), 0);
    assert_eq!(stat(&st, "connections.open.ws"), 0);
    assert!(
        stat(&st, "connections.open.http") >= 1,
        "the /stats request itself"
    );
    let published0 = stat(&st, "messages.published");

    let s = Sse::open(&server, "/channels/c/events", &[]);
    wait_stat(&server, "connections.open.sse", 1);
    let p = PendingPoll::send(&server, "c", "timeout=30");
    wait_stat(&server, "connections.open.longpoll", 1);
    let ws = ws_connect(&server, "/channels/c/ws");
    wait_stat(&server, "connections.open.ws", 1);

    publish(&server, "c", "a");
    let a = p.answer();
    assert_eq!(a.messages.len(), 1);
    publish(&server, "c", "b");
    publish(&server, "other", "c");
    let st = stats(&server);
    assert_eq!(stat(&st, "messages.published"), published0 + 3, "{st:?}");
    // 2 channel messages to the SSE + WS subscribers, 1 poll answer.
    assert!(stat(&st, "messages.delivered") >= 5, "{st:?}");
    assert_eq!(stat(&st, "connections.open.longpoll"), 0, "{st:?}");
    assert!(stat(&st, "bytes.out") > 0 && stat(&st, "bytes.in") > 0);
    assert!(stat(&st, "requests") >= 5);
    assert!(stat(&st, "connections.accepted") >= 6);

    drop(s);
    wait_stat(&server, "connections.open.sse", 0);
    ws_close(ws);
    wait_stat(&server, "connections.open.ws", 0);
}

// ---------------------------------------------------------------------------
// More edges of section 2
// ---------------------------------------------------------------------------

#[test]
fn publish_with_a_chunked_body_and_escaped_names_up_to_64_decoded() {
    let server = Server::start(&[]);
    // A chunked body is a body like any other.
    let mut s = server.connect();
    write!(
        s,
        "POST /channels/c HTTP/1.1\r\nHost: {}\r\nTransfer-Encoding: chunked\r\n\r\n\
         5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
        server.addr
    )
    .unwrap();
    let r = common::read_response(&mut s, false).expect("answer");
    assert_eq!(r.status, 201, "{:?}", r.text());
    assert_eq!(r.text(), r#"{"id":1}"#);
    assert_eq!(
        poll(&server, "c", "after=0&timeout=0").messages,
        vec![(1, "hello world".to_string())]
    );
    // The length limit applies to the decoded name: 64 escaped letters
    // (192 characters in the path) are a valid name ...
    let escaped = "%61".repeat(64);
    assert_eq!(publish(&server, &escaped, "x"), 1);
    assert_eq!(publish(&server, &"a".repeat(64), "y"), 2);
    // ... 65 are not; lower-case escapes decode too; '+' is not a space
    // in a path and not a name character.
    assert_error(
        &server.post(&format!("/channels/{}", "%61".repeat(65)), b"x"),
        400,
        "65 escaped",
    );
    assert_eq!(publish(&server, "n%65%77s", "lower"), 1);
    assert_error(&server.post("/channels/a+b", b"x"), 400, "a+b");
}

#[test]
fn options_and_cors_on_channel_paths() {
    let server = Server::start(&[]);
    let r = server.request("OPTIONS", "/channels/c/events", &[], b"");
    assert_eq!(r.status, 204, "{:?}", r.text());
    assert!(r.header("allow").unwrap_or("").contains("GET"), "{r:?}");
    let acah = r
        .header("access-control-allow-headers")
        .unwrap_or_else(|| panic!("no Access-Control-Allow-Headers: {r:?}"));
    assert!(
        acah.to_ascii_lowercase().contains("last-event-id"),
        "{acah}"
    );
    let r = server.request("OPTIONS", "/channels/c", &[], b"");
    assert_eq!(r.status, 204);
    assert!(r.header("allow").unwrap_or("").contains("POST"), "{r:?}");
    // An event stream for a browser page of another origin carries
    // Access-Control-Allow-Origin (no --allow-origin: any origin).
    let s = Sse::open(
        &server,
        "/channels/c/events",
        &[("Origin", "http://a.example")],
    );
    assert_eq!(s.status, 200);
    assert_eq!(
        s.header("access-control-allow-origin"),
        Some("http://a.example")
    );
    let r = server.request(
        "POST",
        "/channels/c",
        &[("Origin", "http://a.example")],
        b"x",
    );
    assert_eq!(r.status, 201);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("http://a.example")
    );
}

#[test]
fn head_on_a_long_poll_answers_without_a_body() {
    let server = Server::start(&[]);
    publish(&server, "c", "a");
    let r = server.request("HEAD", "/channels/c/poll?after=0&timeout=0", &[], b"");
    assert_eq!(r.status, 200);
    assert_json_type(&r);
    let get = server.get("/channels/c/poll?after=0&timeout=0");
    assert_eq!(
        r.header("content-length"),
        Some(get.body.len().to_string().as_str()),
        "HEAD must announce the GET's length"
    );
}

#[test]
fn long_poll_truncation_with_more_than_100_kept() {
    let server = Server::start(&["--history", "150"]);
    let mut p = Publisher::new(&server);
    for i in 1..=250u64 {
        assert_eq!(p.publish_ok("c", &format!("m{i}")), i);
    }
    let a = poll(&server, "c", "after=0&timeout=0");
    assert!(a.truncated, "{}", &a.raw[a.raw.len().saturating_sub(80)..]);
    let ids: Vec<u64> = a.messages.iter().map(|m| m.0).collect();
    assert_eq!(ids, (101..=200).collect::<Vec<_>>());
    assert_eq!(a.last, 200);
    let b = poll(&server, "c", &format!("after={}&timeout=0", a.last));
    assert!(!b.truncated);
    let ids: Vec<u64> = b.messages.iter().map(|m| m.0).collect();
    assert_eq!(ids, (201..=250).collect::<Vec<_>>());
    assert_eq!(b.last, 250);
}

/// Reads one server frame: (opcode, payload).
fn server_frame(s: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut h = [0u8; 2];
    s.read_exact(&mut h).expect("a frame header");
    assert_eq!(h[1] & 0x80, 0, "server frames are not masked");
    let len = match h[1] & 0x7f {
        126 => {
            let mut b = [0u8; 2];
            s.read_exact(&mut b).unwrap();
            u16::from_be_bytes(b) as usize
        }
        127 => {
            let mut b = [0u8; 8];
            s.read_exact(&mut b).unwrap();
            u64::from_be_bytes(b) as usize
        }
        n => n as usize,
    };
    let mut p = vec![0u8; len];
    s.read_exact(&mut p).unwrap();
    (h[0] & 0x0f, p)
}

#[test]
fn ws_fragmented_text_is_one_message_and_invalid_utf8_closes_1007() {
    let server = Server::start(&[]);
    let mut raw = raw_ws(&server, "/channels/c/ws");
    // TEXT (not final) "hel" + CONTINUATION (final) "lo": one message.
    raw.write_all(&raw_frame(0x01, b"hel")).unwrap();
    raw.write_all(&raw_frame(0x80, b"lo")).unwrap();
    let (op, p) = server_frame(&mut raw);
    assert_eq!(op, 1);
    assert_eq!(String::from_utf8(p).unwrap(), r#"{"id":1,"data":"hello"}"#);
    // Invalid UTF-8 in a text message: close 1007, nothing published.
    raw.write_all(&raw_frame(0x81, b"ok\xff")).unwrap();
    let (op, p) = server_frame(&mut raw);
    assert_eq!(op, 8, "expected a close frame, got opcode {op}: {p:?}");
    assert!(p.len() >= 2);
    assert_eq!(u16::from_be_bytes([p[0], p[1]]), 1007);
    let a = poll(&server, "c", "after=0&timeout=0");
    assert_eq!(a.messages, vec![(1, "hello".to_string())]);
}

#[test]
fn sse_parser_self_check() {
    // The test's own reader against the WHATWG rules, byte by byte too.
    let stream: &[u8] = b"\xEF\xBB\xBFretry: 10\r\n\r\n: comment\n\
        data: a\r\ndata:b\rdata\n\n\
        id: 7\nevent: custom\ndata:  two spaces\n\n\
        id: x\0y\ndata: nul id ignored\n\n\
        id\ndata: empty id\n\n\
        event: lonely\n\n\
        data: unterminated";
    let whole = parse_sse_text(stream);
    let mut p = SseParser::default();
    for b in stream {
        p.feed(std::slice::from_ref(b));
    }
    let split: Vec<SseEvent> = p
        .items
        .into_iter()
        .filter_map(|i| match i {
            SseItem::Event(e) => Some(e),
            _ => None,
        })
        .collect();
    for events in [whole, split] {
        let got: Vec<(&str, &str, Option<&str>, &str)> = events
            .iter()
            .map(|e| {
                (
                    e.event.as_str(),
                    e.data.as_str(),
                    e.id_field.as_deref(),
                    e.last_event_id.as_str(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("message", "a\nb\n", None, ""),
                ("custom", " two spaces", Some("7"), "7"),
                ("message", "nul id ignored", None, "7"),
                ("message", "empty id", Some(""), ""),
            ]
        );
    }
}

// ---------------------------------------------------------------------------
// /metrics (docs/api.md section 5): the counters, in the Prometheus text format
// ---------------------------------------------------------------------------

/// Every sample of a `/metrics` body (`name{labels}` → value), checking
/// each line's shape on the way: `# HELP name text`, `# TYPE name type`,
/// or `name[{labels}] value` with a value Prometheus can read.
fn samples(body: &str) -> std::collections::BTreeMap<String, f64> {
    let mut out = std::collections::BTreeMap::new();
    assert!(body.ends_with('\n'), "the last line must end with LF");
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (kind, name) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            assert!(
                matches!(kind, "HELP" | "TYPE") && name.starts_with("pushwire_"),
                "comment {line:?}"
            );
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("sample without a value: {line:?}"));
        let value = match value {
            "+Inf" => f64::INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("value of {line:?} is not a number")),
        };
        assert!(series.starts_with("pushwire_"), "{line:?}");
        out.insert(series.to_string(), value);
    }
    out
}

#[test]
fn metrics_count_what_stats_counts_and_time_each_delivery_in_the_prometheus_format() {
    let server = Server::start(&[]);
    let mut sse = Sse::open_ok(&server, "/channels/m/events", &[]);
    let waiter = PendingPoll::send(&server, "m", "after=0&timeout=30");
    wait_stat(&server, "connections.open.longpoll", 1);
    let id = publish(&server, "m", "one");
    sse.expect_message(id, "one");
    assert_eq!(waiter.answer().messages, vec![(id, "one".to_string())]);

    // Two deliveries (the stream, the long poll), each timed when its
    // bytes were written.
    let get = || {
        let r = server.get("/metrics");
        assert_eq!(r.status, 200, "{:?}", r.text());
        assert_eq!(r.header("Content-Type"), Some("text/plain; version=0.0.4"));
        (r.text(), samples(&r.text()))
    };
    let (text, m) = wait_for(Duration::from_secs(5), || {
        let (text, m) = get();
        (m.get("pushwire_delivery_seconds_count") == Some(&2.0)).then_some((text, m))
    })
    .unwrap_or_else(|| panic!("two deliveries never timed:\n{}", get().0));
    let v = |series: &str| {
        *m.get(series)
            .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
    };
    assert_eq!(v("pushwire_messages_published_total"), 1.0);
    assert_eq!(v("pushwire_messages_delivered_total"), 2.0);
    assert_eq!(v("pushwire_delivery_seconds_bucket{le=\"+Inf\"}"), 2.0);
    assert!(v("pushwire_delivery_seconds_sum") < 1.0, "{text}");
    assert_eq!(v("pushwire_connections_open{kind=\"sse\"}"), 1.0);
    assert_eq!(v("pushwire_channels"), 1.0);
    assert_eq!(v("pushwire_history_bytes"), 3.0);
    assert_eq!(v("pushwire_backplane_up"), 1.0);
    assert_eq!(v("pushwire_backplane_state{state=\"memory\"}"), 1.0);
    assert!(v("pushwire_requests_total") >= 2.0);
    assert!(v("pushwire_connections_accepted_total") >= 3.0);
    for ty in [
        "# TYPE pushwire_delivery_seconds histogram\n",
        "# TYPE pushwire_connections_open gauge\n",
        "# TYPE pushwire_connections_closed_total counter\n",
        "# TYPE pushwire_webhook_deliveries_total counter\n",
    ] {
        assert!(text.contains(ty), "no {ty:?} in:\n{text}");
    }
    // Cumulative buckets never decrease.
    let buckets: Vec<f64> = text
        .lines()
        .filter(|l| l.starts_with("pushwire_delivery_seconds_bucket"))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse().ok())
        .collect();
    assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{buckets:?}");

    // HEAD works where GET does: the head, no body.
    let r = server.request("HEAD", "/metrics", &[], b"");
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    assert!(r
        .header("Content-Length")
        .is_some_and(|n| n.parse::<usize>().is_ok_and(|n| n > 0)));
}
