//! docs/api.md section 7, "Several nodes": two (or more) `pushwire` processes
//! sharing channels through a real `redis-server` (`--redis`), checked
//! against the section 2 contract from the outside.
//!
//! Every test starts its own `redis-server` (`common::RedisServer`: a free
//! loopback port, an append-only file in a temporary directory so that a
//! restart keeps the data) and its own nodes on port 0. When
//! `redis-server` is not installed these tests FAIL, saying so.
//!
//! Clients are independent of the server's code: raw HTTP/1.1 over
//! `std::net` for publishing and long polling, `Sse` below (the WHATWG HTML
//! "event stream interpretation" rules, on a raw socket) for Server-Sent
//! Events, and `tungstenite` for WebSocket. `Proxy` (a loopback TCP proxy
//! whose link can be cut or silenced) puts one node out of Redis's reach
//! while the other keeps working.

mod common;

use common::json::{assert_json_type, json, num};
use common::poll::{parse_poll, PollAnswer};
use common::sse::{Sse, SseItem};
use common::{parse_json, run_to_exit, wait_for, JsonValue, RedisServer, Response, Server};
use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tungstenite::{Message, WebSocket};

// ---------------------------------------------------------------------------
// Nodes, publishing, long polling, /stats
// ---------------------------------------------------------------------------

/// A node on `redis` with `extra` flags; waits until its backplane is up.
fn node(redis: &RedisServer, extra: &[&str]) -> Server {
    let url = redis.url();
    let mut args = vec!["--redis", url.as_str()];
    args.extend_from_slice(extra);
    let s = Server::start(&args);
    wait_backplane(&s, true, Duration::from_secs(10));
    s
}

/// A node whose `--redis` is `url` (e.g. through a `Proxy`).
fn node_at(url: &str, extra: &[&str]) -> Server {
    let mut args = vec!["--redis", url];
    args.extend_from_slice(extra);
    let s = Server::start(&args);
    wait_backplane(&s, true, Duration::from_secs(10));
    s
}

/// `POST /channels/{ch}` → 201 `{"id":N}`; returns N.
fn publish(server: &Server, ch: &str, data: &str) -> u64 {
    let r = server.post(&format!("/channels/{ch}"), data.as_bytes());
    assert_eq!(
        r.status,
        201,
        "publish {data:?} to {ch} on {}: {:?}",
        server.addr,
        r.text()
    );
    assert_json_type(&r);
    num(&json(&r), "id")
}

/// A publish that must be refused with 503 and the JSON error shape.
fn publish_refused(server: &Server, ch: &str, data: &str) {
    let r = server.post(&format!("/channels/{ch}"), data.as_bytes());
    assert_eq!(
        r.status,
        503,
        "publish while Redis is down on {}: {:?}",
        server.addr,
        r.text()
    );
    assert_json_type(&r);
    let msg = json(&r)
        .get("error")
        .and_then(|e| e.as_str())
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no error string in {:?}", r.text()));
    assert!(msg.chars().any(char::is_alphabetic), "error {msg:?}");
}

/// `GET /channels/{ch}/poll?{query}` (the answer must come within 10 s).
fn poll(server: &Server, ch: &str, query: &str) -> PollAnswer {
    poll_at(server.addr, ch, query)
}

fn poll_at(addr: std::net::SocketAddr, ch: &str, query: &str) -> PollAnswer {
    parse_poll(
        &http_at(addr, "GET", &format!("/channels/{ch}/poll?{query}"), b""),
        false,
    )
}

/// A long poll sent now and read later.
struct PendingPoll {
    s: TcpStream,
}

impl PendingPoll {
    fn send(server: &Server, ch: &str, query: &str, read_timeout: Duration) -> PendingPoll {
        let mut s = server.connect();
        s.set_read_timeout(Some(read_timeout)).unwrap();
        let req = format!(
            "GET /channels/{ch}/poll?{query} HTTP/1.1\r\nHost: {}\r\n\r\n",
            server.addr
        );
        s.write_all(req.as_bytes()).unwrap();
        PendingPoll { s }
    }

    fn answer(mut self) -> Option<PollAnswer> {
        common::read_response(&mut self.s, false).map(|r| parse_poll(&r, false))
    }
}

/// The `backplane` object of `/stats`.
fn backplane(server: &Server) -> JsonValue {
    let r = server.get("/stats");
    assert_eq!(r.status, 200, "/stats: {:?}", r.text());
    json(&r)
        .get("backplane")
        .cloned()
        .unwrap_or_else(|| panic!("/stats has no backplane: {:?}", r.text()))
}

/// Waits until the backplane's `up` is `want`; returns the object.
fn wait_backplane(server: &Server, want: bool, timeout: Duration) -> JsonValue {
    let got = wait_for(timeout, || {
        let b = backplane(server);
        (b.get("up").and_then(JsonValue::as_bool) == Some(want)).then_some(b)
    });
    got.unwrap_or_else(|| {
        panic!(
            "backplane of {} never became up:{want} within {timeout:?}: {:?}",
            server.addr,
            backplane(server)
        )
    })
}

/// Checks a run of messages after `cursor`: ids cursor+1, cursor+2, ...
fn assert_contiguous(what: &str, cursor: u64, ms: &[(u64, String)]) {
    for (i, (id, _)) in ms.iter().enumerate() {
        assert_eq!(
            *id,
            cursor + 1 + i as u64,
            "{what}: after {cursor} got ids {:?}",
            ms.iter().map(|m| m.0).collect::<Vec<_>>()
        );
    }
}

/// Long polls `server` from `after` until `want` messages came (each
/// answer contiguous, never truncated), within 20 s.
fn poll_until(
    addr: std::net::SocketAddr,
    ch: &str,
    mut after: u64,
    want: usize,
) -> Vec<(u64, String)> {
    let end = Instant::now() + Duration::from_secs(20);
    let mut got = Vec::new();
    while got.len() < want {
        assert!(
            Instant::now() < end,
            "long poller on {addr} got only {got:?}"
        );
        let a = poll_at(addr, ch, &format!("after={after}&timeout=5"));
        assert!(!a.truncated, "unexpected truncation: {}", a.raw);
        assert_contiguous("long poll", after, &a.messages);
        if let Some(m) = a.messages.last() {
            assert_eq!(a.last, m.0, "last in {}", a.raw);
        } else {
            assert_eq!(a.last, after, "last of an empty answer: {}", a.raw);
        }
        after = a.last;
        got.extend(a.messages);
    }
    got
}

fn expected(ids: &BTreeMap<u64, String>) -> Vec<(u64, String)> {
    ids.iter().map(|(k, v)| (*k, v.clone())).collect()
}

// ---------------------------------------------------------------------------
// WebSocket
// ---------------------------------------------------------------------------

type Ws = WebSocket<TcpStream>;

fn ws_connect(server: &Server, path: &str) -> Ws {
    let s = server.connect();
    let (ws, resp) = tungstenite::client::client(server.ws_url(path), s)
        .unwrap_or_else(|e| panic!("WebSocket handshake on {path} at {}: {e}", server.addr));
    assert_eq!(resp.status().as_u16(), 101);
    ws
}

/// The next text message within `timeout` (pings and pongs skipped);
/// `None` on timeout. Panics when the connection ends.
fn ws_try_text(ws: &mut Ws, timeout: Duration) -> Option<String> {
    ws.get_mut().set_read_timeout(Some(timeout)).unwrap();
    loop {
        match ws.read() {
            Ok(Message::Text(t)) => return Some(t),
            Ok(Message::Ping(_)) | Ok(Message::Pong(_)) => continue,
            Ok(other) => panic!("expected a text message, got {other:?}"),
            Err(tungstenite::Error::Io(e))
                if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
            {
                return None
            }
            Err(e) => panic!("the WebSocket ended: {e}"),
        }
    }
}

/// The next `{"id":N,"data":"..."}` frame.
fn ws_message(ws: &mut Ws) -> (u64, String) {
    let t = ws_try_text(ws, Duration::from_secs(10)).expect("a WebSocket message within 10 s");
    let j = parse_json(&t).unwrap_or_else(|e| panic!("frame is not JSON ({e}): {t:?}"));
    assert_eq!(j.keys(), vec!["id", "data"], "frame {t:?}");
    let data = j.get("data").and_then(|d| d.as_str()).expect("data");
    (num(&j, "id"), data.to_string())
}

fn ws_messages(ws: &mut Ws, n: usize) -> Vec<(u64, String)> {
    (0..n).map(|_| ws_message(ws)).collect()
}

fn ws_assert_quiet(ws: &mut Ws, wait: Duration) {
    if let Some(t) = ws_try_text(ws, wait) {
        panic!("unexpected extra WebSocket message {t:?}");
    }
}

/// The connection is alive: a ping gets its pong.
fn ws_assert_alive(ws: &mut Ws) {
    ws.send(Message::Ping(b"alive?".to_vec()))
        .expect("send a ping on the WebSocket");
    ws.get_mut()
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    loop {
        match ws.read() {
            Ok(Message::Pong(p)) if p == b"alive?" => return,
            Ok(Message::Ping(_)) | Ok(Message::Pong(_)) => {}
            Ok(other) => panic!("expected the pong, got {other:?}"),
            Err(e) => panic!("the WebSocket is not alive: {e}"),
        }
    }
}

// ---------------------------------------------------------------------------
// 1. Every transport on both nodes, in order, exactly once
// ---------------------------------------------------------------------------

#[test]
fn publishes_on_both_nodes_reach_every_transport_on_both_nodes_in_order_exactly_once() {
    let redis = RedisServer::start();
    let a = node(&redis, &[]);
    let b = node(&redis, &[]);
    const N: usize = 25;

    // Live subscribers on both nodes, subscribed before anything is
    // published (a 101 or an event-stream head means subscribed).
    let mut ws_a = ws_connect(&a, "/channels/c/ws");
    let mut ws_b = ws_connect(&b, "/channels/c/ws");
    let mut sse_a = Sse::open_ok(&a, "/channels/c/events", &[]);
    let mut sse_b = Sse::open_ok(&b, "/channels/c/events", &[]);
    let pollers: Vec<_> = [a.addr, b.addr]
        .into_iter()
        .map(|addr| std::thread::spawn(move || poll_until(addr, "c", 0, N)))
        .collect();

    // 20 on A and 5 on B, interleaved, one at a time; one of B's is a
    // text message from B's WebSocket subscriber, one has line breaks.
    let mut sent = BTreeMap::new();
    let mut order = Vec::new();
    let mut ws_b_got = Vec::new();
    for i in 0..N {
        let (node, name) = if i % 5 == 4 { (&b, "B") } else { (&a, "A") };
        let data = match i {
            7 => format!("{name}{i} two\nlines"),
            _ => format!("{name}{i} \u{e9}"),
        };
        let id = if i == 14 {
            // Published from B's WebSocket: no id comes back; the sender
            // receives it like everyone, and it takes the next id.
            ws_b.send(Message::Text(data.clone()))
                .expect("send a text message");
            ws_b_got = ws_messages(&mut ws_b, i + 1);
            ws_b_got.last().unwrap().0
        } else {
            publish(node, "c", &data)
        };
        assert!(
            sent.insert(id, data).is_none(),
            "id {id} given twice (ids so far {order:?})"
        );
        order.push(id);
    }
    let contiguous: Vec<u64> = (1..=N as u64).collect();
    assert_eq!(
        order, contiguous,
        "the ids across both nodes must be 1..{N} in publish order"
    );
    let want = expected(&sent);
    ws_b_got.extend(ws_messages(&mut ws_b, N - ws_b_got.len()));
    assert_eq!(ws_b_got, want, "WebSocket on B");

    assert_eq!(ws_messages(&mut ws_a, N), want, "WebSocket on A");
    assert_eq!(sse_a.messages(N), want, "SSE on A");
    assert_eq!(sse_b.messages(N), want, "SSE on B");
    for (p, name) in pollers.into_iter().zip(["A", "B"]) {
        assert_eq!(p.join().expect("long poller"), want, "long poll on {name}");
    }

    // Exactly once: nothing more arrives.
    std::thread::sleep(Duration::from_millis(300));
    ws_assert_quiet(&mut ws_a, Duration::from_millis(50));
    ws_assert_quiet(&mut ws_b, Duration::from_millis(50));
    sse_a.assert_quiet(Duration::from_millis(50));
    sse_b.assert_quiet(Duration::from_millis(50));
    for s in [&a, &b] {
        let p = poll(s, "c", &format!("after={N}&timeout=0"));
        assert!(p.messages.is_empty() && !p.truncated, "{}", p.raw);
        assert_eq!(p.last, N as u64, "{}", p.raw);
    }
}

// ---------------------------------------------------------------------------
// 2. A long poller alternating between nodes
// ---------------------------------------------------------------------------

#[test]
fn long_poller_alternating_between_nodes_gets_every_message_exactly_once() {
    let redis = RedisServer::start();
    let a = node(&redis, &[]);
    let b = node(&redis, &[]);
    const N: usize = 40;

    let (addr_a, addr_b) = (a.addr, b.addr);
    let publisher = std::thread::spawn(move || {
        let mut sent = Vec::new();
        for i in 0..N {
            let addr = if i % 2 == 0 { addr_a } else { addr_b };
            let data = format!("m{i}");
            let r = http_at(addr, "POST", "/channels/alt", data.as_bytes());
            assert_eq!(r.status, 201, "publish {i}: {:?}", r.text());
            sent.push((num(&json(&r), "id"), data));
            std::thread::sleep(Duration::from_millis(3 + (i % 4) as u64));
        }
        sent
    });

    let nodes = [&a, &b];
    let mut cursor = 0;
    let mut got: Vec<(u64, String)> = Vec::new();
    let mut turn = 0;
    let end = Instant::now() + Duration::from_secs(20);
    while got.len() < N {
        assert!(Instant::now() < end, "only got {got:?}");
        let n = nodes[turn % 2];
        turn += 1;
        let p = poll(n, "alt", &format!("after={cursor}&timeout=5"));
        assert!(
            !p.truncated,
            "poll #{turn} on node {} after={cursor}: an unexpected truncation: {}",
            if turn % 2 == 1 { "A" } else { "B" },
            p.raw
        );
        assert_contiguous(&format!("poll #{turn}"), cursor, &p.messages);
        match p.messages.last() {
            Some(m) => assert_eq!(p.last, m.0, "{}", p.raw),
            None => assert_eq!(p.last, cursor, "{}", p.raw),
        }
        cursor = p.last;
        got.extend(p.messages);
    }
    let mut sent = publisher.join().expect("publisher");
    sent.sort();
    let ids: Vec<u64> = sent.iter().map(|m| m.0).collect();
    assert_eq!(ids, (1..=N as u64).collect::<Vec<_>>(), "201 ids");
    assert_eq!(got, sent, "what the alternating poller received");
    assert!(
        turn >= 4,
        "the poller should have used both nodes several times"
    );
}

/// One HTTP request to `addr` on a fresh connection (for threads).
fn http_at(addr: std::net::SocketAddr, method: &str, path: &str, body: &[u8]) -> Response {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\n");
    if method == "POST" {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    s.write_all(&bytes).unwrap();
    common::read_response(&mut s, false).expect("a response")
}

// ---------------------------------------------------------------------------
// 3. Resuming on the other node
// ---------------------------------------------------------------------------

#[test]
fn sse_and_websocket_resume_on_the_other_node_without_gap_or_duplicate() {
    let redis = RedisServer::start();
    let a = node(&redis, &[]);
    let b = node(&redis, &[]);

    // SSE: read 1..4 from A, go away, 5..8 published on B meanwhile,
    // come back to B with Last-Event-ID.
    let mut sse = Sse::open_ok(&a, "/channels/s/events", &[]);
    let mut sent = BTreeMap::new();
    for i in 1..=4 {
        let d = format!("s{i}");
        sent.insert(publish(&a, "s", &d), d);
    }
    assert_eq!(sse.messages(4), expected(&sent), "SSE on A");
    let last_seen = sse.last_event_id().to_string();
    assert_eq!(last_seen, "4");
    drop(sse);
    for i in 5..=8 {
        let d = format!("s{i}");
        sent.insert(publish(&b, "s", &d), d);
    }
    let mut sse = Sse::open_ok(&b, "/channels/s/events", &[("Last-Event-ID", &last_seen)]);
    let gap = sse.messages(4);
    assert_eq!(gap, expected(&sent)[4..], "the gap replayed by B");
    let d = "s9".to_string();
    sent.insert(publish(&a, "s", &d), d);
    assert_eq!(
        sse.message(),
        (9, "s9".to_string()),
        "live after the replay"
    );
    sse.assert_quiet(Duration::from_millis(200));

    // WebSocket: the same with ?after=.
    let mut ws = ws_connect(&b, "/channels/w/ws");
    let mut sent = BTreeMap::new();
    for i in 1..=3 {
        let d = format!("w{i}");
        sent.insert(publish(if i == 2 { &a } else { &b }, "w", &d), d);
    }
    let seen = ws_messages(&mut ws, 3);
    assert_eq!(seen, expected(&sent), "WebSocket on B");
    let _ = ws.close(None);
    drop(ws);
    for i in 4..=7 {
        let d = format!("w{i}");
        sent.insert(publish(if i % 2 == 0 { &b } else { &a }, "w", &d), d);
    }
    let mut ws = ws_connect(&a, &format!("/channels/w/ws?after={}", seen[2].0));
    assert_eq!(
        ws_messages(&mut ws, 4),
        expected(&sent)[3..],
        "the gap replayed by A"
    );
    assert_eq!(publish(&b, "w", "w8"), 8);
    assert_eq!(
        ws_message(&mut ws),
        (8, "w8".to_string()),
        "live after replay"
    );
    ws_assert_quiet(&mut ws, Duration::from_millis(200));
}

// ---------------------------------------------------------------------------
// 4. Truncation through the shared stream
// ---------------------------------------------------------------------------

#[test]
fn truncation_comes_from_the_shared_stream() {
    let redis = RedisServer::start();
    let a = node(&redis, &["--history", "5"]);
    let b = node(&redis, &["--history", "5"]);
    for i in 1..=10 {
        assert_eq!(publish(&a, "t", &format!("t{i}")), i);
    }
    let want: Vec<(u64, String)> = (6..=10).map(|i| (i, format!("t{i}"))).collect();

    // B never used the channel: its first answer comes from Redis.
    let p = poll(&b, "t", "after=2&timeout=0");
    assert!(p.truncated, "B after=2 must say truncated: {}", p.raw);
    assert_eq!(p.messages, want, "{}", p.raw);
    assert_eq!(p.last, 10, "{}", p.raw);

    // Also on SSE and WebSocket, on B.
    let mut sse = Sse::open_ok(&b, "/channels/t/events", &[("Last-Event-ID", "2")]);
    let e = sse
        .try_event(Duration::from_secs(10))
        .expect("a truncated event");
    assert_eq!(e.event, "truncated", "{e:?}");
    assert_eq!(e.id_field, None, "a truncated event has no id: line");
    let j = parse_json(&e.data).expect("truncated data is JSON");
    assert_eq!((num(&j, "after"), num(&j, "oldest")), (2, 6), "{}", e.data);
    assert_eq!(sse.messages(5), want, "SSE replay on B");

    let mut ws = ws_connect(&b, "/channels/t/ws?after=2");
    let t = ws_try_text(&mut ws, Duration::from_secs(10)).expect("a truncated frame");
    let j = parse_json(&t).expect("JSON frame");
    assert_eq!(
        j.get("truncated").and_then(JsonValue::as_bool),
        Some(true),
        "{t}"
    );
    assert_eq!((num(&j, "after"), num(&j, "oldest")), (2, 6), "{t}");
    assert_eq!(ws_messages(&mut ws, 5), want, "WebSocket replay on B");

    // And no truncation from within the kept window.
    let p = poll(&b, "t", "after=5&timeout=0");
    assert!(!p.truncated, "{}", p.raw);
    assert_eq!(p.messages, want, "{}", p.raw);
}

// ---------------------------------------------------------------------------
// 5. Redis down, then back
// ---------------------------------------------------------------------------

#[test]
fn redis_outage_refuses_publishes_keeps_subscribers_and_recovers_without_loss() {
    let mut redis = RedisServer::start();
    let flags = ["--sse-heartbeat-ms", "300"];
    let a = node(&redis, &flags);
    let b = node(&redis, &flags);

    let mut ws_b = ws_connect(&b, "/channels/o/ws?after=0");
    let mut sse_a = Sse::open_ok(&a, "/channels/o/events", &[("Last-Event-ID", "0")]);
    let mut sent = BTreeMap::new();
    for (i, n) in [&a, &b, &b].into_iter().enumerate() {
        let d = format!("before{i}");
        sent.insert(publish(n, "o", &d), d);
    }
    assert_eq!(ws_messages(&mut ws_b, 3), expected(&sent));
    assert_eq!(sse_a.messages(3), expected(&sent));
    // A long poll parked on B across the outage.
    let parked = PendingPoll::send(&b, "o", "after=3&timeout=30", Duration::from_secs(30));

    redis.stop();
    for (n, name) in [(&a, "A"), (&b, "B")] {
        let bp = wait_backplane(n, false, Duration::from_secs(5));
        assert_eq!(
            bp.get("kind").and_then(JsonValue::as_str),
            Some("redis"),
            "{name}: {bp:?}"
        );
        assert_eq!(bp.get("up").and_then(JsonValue::as_bool), Some(false));
        publish_refused(n, "o", "during");
        publish_refused(n, "other", "during");
    }
    // Subscribers stay connected: the WebSocket answers a ping, the event
    // stream keeps its heartbeat. A text message from the WebSocket cannot
    // be published now: it may be told so, but must stay connected (and
    // the message must never show up with an id: see the ids below).
    ws_b.send(Message::Text("from ws during".into()))
        .expect("send");
    if let Some(t) = ws_try_text(&mut ws_b, Duration::from_millis(300)) {
        let j = parse_json(&t).unwrap_or_else(|e| panic!("frame is not JSON ({e}): {t:?}"));
        assert!(
            j.get("error").and_then(JsonValue::as_str).is_some(),
            "only an error may come while Redis is down: {t:?}"
        );
    }
    ws_assert_alive(&mut ws_b);
    let mut pinged = false;
    let end = Instant::now() + Duration::from_secs(3);
    while Instant::now() < end && !pinged {
        match sse_a.next_item(Duration::from_millis(500)) {
            Some(SseItem::Comment(c, _)) => pinged = c == ": ping",
            Some(SseItem::Event(e)) => panic!("an event while Redis is down: {e:?}"),
            Some(SseItem::Retry(_)) => {}
            None => assert!(
                !sse_a.closed,
                "the event stream was closed while Redis was down"
            ),
        }
    }
    assert!(
        pinged,
        "no heartbeat on the event stream while Redis was down"
    );
    std::thread::sleep(Duration::from_millis(500));
    for (n, name) in [(&a, "A"), (&b, "B")] {
        let bp = backplane(n);
        assert_eq!(
            bp.get("up").and_then(JsonValue::as_bool),
            Some(false),
            "{name}: {bp:?}"
        );
        assert!(
            bp.get("last_error").and_then(JsonValue::as_str).is_some(),
            "{name}: no last_error while down: {bp:?}"
        );
    }

    redis.restart();
    // Publish as soon as A is back (B may still be reconnecting: its
    // subscribers must get the message anyway).
    wait_backplane(&a, true, Duration::from_secs(8));
    let d = "after0".to_string();
    let id = publish(&a, "o", &d);
    assert_eq!(id, 4, "ids continue after the restart (no reuse)");
    sent.insert(id, d);
    wait_backplane(&b, true, Duration::from_secs(8));
    let d = "after1".to_string();
    let id = publish(&b, "o", &d);
    assert_eq!(id, 5);
    sent.insert(id, d);

    let want = expected(&sent);
    assert_eq!(
        ws_messages(&mut ws_b, 2),
        want[3..],
        "WebSocket on B after the outage"
    );
    assert_eq!(sse_a.messages(2), want[3..], "SSE on A after the outage");
    let p = parked
        .answer()
        .expect("the long poll parked on B across the outage was dropped");
    assert!(!p.truncated, "{}", p.raw);
    assert_eq!(p.messages.first(), Some(&want[3]), "parked poll: {}", p.raw);
    ws_assert_quiet(&mut ws_b, Duration::from_millis(200));
    sse_a.assert_quiet(Duration::from_millis(50));
    for n in [&a, &b] {
        let p = poll(n, "o", "after=0&timeout=0");
        assert!(!p.truncated, "{}", p.raw);
        assert_eq!(p.messages, want, "everything is kept: {}", p.raw);
    }
    // A channel nobody had used yet works too.
    assert_eq!(publish(&b, "other", "x"), 1);
}

// ---------------------------------------------------------------------------
// 6. A node restarts
// ---------------------------------------------------------------------------

#[test]
fn restarted_node_loses_nothing_and_ids_continue() {
    let redis = RedisServer::start();
    let a = node(&redis, &[]);
    let b = node(&redis, &[]);

    let mut sse = Sse::open_ok(&a, "/channels/r/events", &[]);
    let mut ws = ws_connect(&a, "/channels/r/ws");
    let mut sent = BTreeMap::new();
    for i in 1..=5 {
        let d = format!("r{i}");
        sent.insert(publish(if i % 2 == 0 { &b } else { &a }, "r", &d), d);
    }
    let want = expected(&sent);
    assert_eq!(sse.messages(5), want);
    assert_eq!(ws_messages(&mut ws, 5), want);
    let poll_cursor = poll(&a, "r", "after=0&timeout=0").last;
    assert_eq!(poll_cursor, 5);
    let parked = PendingPoll::send(&a, "r", "after=5&timeout=20", Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(100));
    let sse_cursor = sse.last_event_id().to_string();
    let ws_cursor = 5;

    // A dies; its clients see their connections end.
    drop(a);
    assert!(
        parked.answer().is_none(),
        "the parked poll outlived its node"
    );
    assert!(sse.try_event(Duration::from_secs(3)).is_none() && sse.closed);
    assert!(
        ws_try_text_or_end(&mut ws),
        "the WebSocket outlived its node"
    );

    for i in 6..=8 {
        let d = format!("r{i}");
        sent.insert(publish(&b, "r", &d), d);
    }
    let a2 = node(&redis, &[]);
    let want = expected(&sent);

    // Each client resumes with its cursor, on B or on the new A.
    let mut sse = Sse::open_ok(&b, "/channels/r/events", &[("Last-Event-ID", &sse_cursor)]);
    assert_eq!(sse.messages(3), want[5..], "SSE resumed on B");
    let mut ws = ws_connect(&a2, &format!("/channels/r/ws?after={ws_cursor}"));
    assert_eq!(
        ws_messages(&mut ws, 3),
        want[5..],
        "WebSocket resumed on new A"
    );
    let p = poll(&a2, "r", &format!("after={poll_cursor}&timeout=5"));
    assert!(!p.truncated, "{}", p.raw);
    assert_eq!(
        p.messages,
        want[5..],
        "long poll resumed on new A: {}",
        p.raw
    );

    // The new A knows the channel's whole state: ids continue.
    let p = poll(&a2, "r", "after=0&timeout=0");
    assert_eq!(p.messages, want, "{}", p.raw);
    assert_eq!(publish(&a2, "r", "r9"), 9, "ids continue on the new A");
    assert_eq!(sse.message(), (9, "r9".to_string()));
    assert_eq!(ws_message(&mut ws), (9, "r9".to_string()));
    assert_eq!(publish(&b, "r", "r10"), 10);
    assert_eq!(ws_message(&mut ws), (10, "r10".to_string()));
}

/// True when the WebSocket ends (close, reset or EOF) within 3 s.
fn ws_try_text_or_end(ws: &mut Ws) -> bool {
    ws.get_mut()
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    loop {
        match ws.read() {
            Ok(Message::Text(t)) => panic!("unexpected message {t:?}"),
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
}

// ---------------------------------------------------------------------------
// 7. Without --redis
// ---------------------------------------------------------------------------

#[test]
fn without_redis_the_backplane_is_memory_and_channels_work() {
    let s = Server::start(&[]);
    let bp = backplane(&s);
    assert_eq!(
        bp.get("kind").and_then(JsonValue::as_str),
        Some("memory"),
        "{bp:?}"
    );
    assert_eq!(
        bp.get("up").and_then(JsonValue::as_bool),
        Some(true),
        "{bp:?}"
    );
    assert_eq!(publish(&s, "m", "one"), 1);
    assert_eq!(publish(&s, "m", "two"), 2);
    let p = poll(&s, "m", "after=0&timeout=0");
    assert_eq!(
        p.messages,
        vec![(1, "one".to_string()), (2, "two".to_string())],
        "{}",
        p.raw
    );
}

// ---------------------------------------------------------------------------
// 8. --redis validation, and a Redis that is not there
// ---------------------------------------------------------------------------

#[test]
fn redis_flag_is_validated_and_an_unreachable_redis_answers_503() {
    // (A DNS name and a database number are accepted now: tests/dns.rs
    // and the credentials tests below.)
    for bad in [
        "http://x",
        "rediss://127.0.0.1:6379",
        "redis://127.0.0.1:6379/x",
        "redis://word@127.0.0.1:6379",
    ] {
        let (status, text) = run_to_exit(
            &["--addr", "127.0.0.1:0", "--redis", bad],
            Duration::from_secs(5),
        );
        let status = status.unwrap_or_else(|| panic!("--redis {bad}: still running after 5 s"));
        assert!(
            !status.success(),
            "--redis {bad}: exit {status:?}, output {text:?}"
        );
        assert!(
            text.contains("--redis") || text.to_ascii_lowercase().contains("redis"),
            "--redis {bad}: no message naming the flag: {text:?}"
        );
        assert!(
            !text.contains("listening on"),
            "--redis {bad}: it listened: {text:?}"
        );
    }

    // Nothing listens on port 1: the node runs, refuses publishes, says why.
    let s = Server::start(&["--redis", "redis://127.0.0.1:1"]);
    publish_refused(&s, "c", "hi");
    let bp = wait_for(Duration::from_secs(5), || {
        let b = backplane(&s);
        b.get("last_error")
            .and_then(JsonValue::as_str)
            .is_some()
            .then_some(b)
    })
    .unwrap_or_else(|| panic!("no last_error: {:?}", backplane(&s)));
    assert_eq!(
        bp.get("kind").and_then(JsonValue::as_str),
        Some("redis"),
        "{bp:?}"
    );
    assert_eq!(
        bp.get("up").and_then(JsonValue::as_bool),
        Some(false),
        "{bp:?}"
    );
    let err = bp.get("last_error").and_then(JsonValue::as_str).unwrap();
    assert!(!err.is_empty(), "{bp:?}");
    publish_refused(&s, "c", "again");
    // Reading a channel needs the backplane too: refused, not hung.
    let r = s.get("/channels/c/poll?after=0&timeout=0");
    assert_eq!(r.status, 503, "poll without Redis: {:?}", r.text());
    // The rest of the server works.
    assert_eq!(s.get("/stats").status, 200);
}

// ---------------------------------------------------------------------------
// Read your writes: a cursor learned anywhere is good everywhere
// ---------------------------------------------------------------------------

#[test]
fn a_cursor_learned_on_one_node_is_valid_at_once_on_every_node() {
    let redis = RedisServer::start();
    let a = node(&redis, &[]);
    let b = node(&redis, &[]);
    for n in [&a, &b] {
        let p = poll(n, "k", "after=0&timeout=0");
        assert_eq!((p.last, p.truncated), (0, false), "{}", p.raw);
    }
    // The id a 201 returns is the channel's last id: polling after it, on
    // the publishing node or the other one, is not "a cursor from the
    // future" (no truncation, no replay of older messages).
    let mut wrong = Vec::new();
    let rounds = 200u64;
    for i in 1..=rounds {
        let (from, to, f, t) = if i % 2 == 0 {
            (&a, &b, "A", "B")
        } else {
            (&b, &a, "B", "A")
        };
        let id = publish(from, "k", &format!("k{i}"));
        assert_eq!(id, i);
        for (n, name) in [(from, f), (to, t)] {
            let p = poll(n, "k", &format!("after={id}&timeout=0"));
            if p.truncated || !p.messages.is_empty() || p.last != id {
                wrong.push(format!(
                    "POST on {f} -> 201 {{\"id\":{id}}}, then GET /channels/k/poll?after={id}&timeout=0 on {name} -> {}",
                    p.raw
                ));
            }
        }
    }
    // The same on the streaming transports, against the other node.
    for i in 1..=30u64 {
        let id = publish(&a, "k", &format!("s{i}"));
        let mut sse = Sse::open_ok(
            &b,
            "/channels/k/events",
            &[("Last-Event-ID", &id.to_string())],
        );
        let mut ws = ws_connect(&b, &format!("/channels/k/ws?after={id}"));
        assert_eq!(publish(&a, "k", "next"), id + 1);
        let e = sse
            .try_event(Duration::from_secs(10))
            .expect("an SSE event");
        if e.event != "message" || e.id_field != Some((id + 1).to_string()) {
            wrong.push(format!(
                "POST on A -> {id}, then SSE on B with Last-Event-ID: {id}: first event {e:?}"
            ));
        }
        let t = ws_try_text(&mut ws, Duration::from_secs(10)).expect("a WebSocket frame");
        if !t.starts_with(&format!("{{\"id\":{}", id + 1)) {
            wrong.push(format!(
                "POST on A -> {id}, then WebSocket on B with ?after={id}: first frame {t}"
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} reads with a cursor just returned by a 201 were wrong; the first ones:\n{}",
        wrong.len(),
        wrong.iter().take(6).cloned().collect::<Vec<_>>().join("\n")
    );
}

// ---------------------------------------------------------------------------
// Large messages
// ---------------------------------------------------------------------------

#[test]
fn a_large_message_crosses_nodes_intact() {
    let redis = RedisServer::start();
    let a = node(&redis, &[]);
    let b = node(&redis, &[]);
    let mut ws = ws_connect(&b, "/channels/big/ws");
    let mut sse = Sse::open_ok(&b, "/channels/big/events", &[]);
    let big: String = (0..300_000u32)
        .map(|i| match i % 1000 {
            999 => '\u{1F600}',
            _ => char::from(b'a' + (i % 26) as u8),
        })
        .collect();
    assert_eq!(publish(&a, "big", &big), 1);
    assert_eq!(publish(&a, "big", "small"), 2);
    let (id, data) = ws_message(&mut ws);
    assert_eq!((id, data.len()), (1, big.len()));
    assert!(data == big, "the WebSocket copy differs");
    assert_eq!(ws_message(&mut ws), (2, "small".to_string()));
    let (id, data) = sse.message();
    assert_eq!((id, data.len()), (1, big.len()));
    assert!(data == big, "the SSE copy differs");
    assert_eq!(sse.message(), (2, "small".to_string()));
    // A node that never saw the channel gets it from Redis's stream.
    let c = node(&redis, &[]);
    let p = poll(&c, "big", "after=0&timeout=0");
    assert_eq!(p.messages.len(), 2, "a new node's first read");
    assert!(p.messages[0] == (1, big), "the replayed copy differs");
}

// ---------------------------------------------------------------------------
// One node loses its link to Redis (a TCP proxy in between)
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Debug)]
enum Link {
    /// Bytes flow both ways.
    Forward,
    /// Every connection is closed; new ones are accepted and closed.
    Refuse,
    /// Connections stay open but nothing gets through (a silent network).
    Blackhole,
}

/// A loopback TCP proxy to Redis whose link can be cut.
struct Proxy {
    port: u16,
    shared: Arc<ProxyShared>,
}

struct ProxyShared {
    mode: Mutex<Link>,
    conns: Mutex<Vec<TcpStream>>,
    stop: AtomicBool,
}

impl Proxy {
    fn start(upstream: u16) -> Proxy {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let port = l.local_addr().unwrap().port();
        l.set_nonblocking(true).unwrap();
        let shared = Arc::new(ProxyShared {
            mode: Mutex::new(Link::Forward),
            conns: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        });
        let sh = shared.clone();
        std::thread::spawn(move || {
            while !sh.stop.load(Ordering::SeqCst) {
                let c = match l.accept() {
                    Ok((c, _)) => c,
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                };
                let mode = *sh.mode.lock().unwrap();
                if mode == Link::Refuse {
                    drop(c);
                    continue;
                }
                c.set_nonblocking(false).unwrap();
                let Ok(up) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                {
                    let mut conns = sh.conns.lock().unwrap();
                    conns.push(c.try_clone().unwrap());
                    conns.push(up.try_clone().unwrap());
                }
                for (src, dst) in [(c.try_clone().unwrap(), up.try_clone().unwrap()), (up, c)] {
                    let sh = sh.clone();
                    std::thread::spawn(move || pipe(src, dst, &sh));
                }
            }
        });
        Proxy { port, shared }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Changes the link; leaving `Blackhole` or entering `Refuse` closes
    /// every open connection (the partition ends with resets).
    fn set(&self, m: Link) {
        let mut mode = self.shared.mode.lock().unwrap();
        if m != Link::Blackhole {
            for c in self.shared.conns.lock().unwrap().drain(..) {
                let _ = c.shutdown(std::net::Shutdown::Both);
            }
        }
        *mode = m;
    }
}

fn pipe(mut src: TcpStream, mut dst: TcpStream, sh: &ProxyShared) {
    src.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut buf = [0u8; 65536];
    while !sh.stop.load(Ordering::SeqCst) {
        match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if *sh.mode.lock().unwrap() == Link::Forward && dst.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    let _ = src.shutdown(std::net::Shutdown::Both);
    let _ = dst.shutdown(std::net::Shutdown::Both);
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for c in self.shared.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
    }
}

#[test]
fn a_node_cut_off_from_redis_catches_up_when_the_link_is_back() {
    let redis = RedisServer::start();
    let proxy = Proxy::start(redis.port);
    let a = node(&redis, &[]);
    let b = node_at(&proxy.url(), &[]);

    let mut ws_b = ws_connect(&b, "/channels/cut/ws?after=0");
    let mut sse_b = Sse::open_ok(&b, "/channels/cut/events", &[("Last-Event-ID", "0")]);
    assert_eq!(publish(&b, "cut", "one"), 1);
    assert_eq!(ws_message(&mut ws_b), (1, "one".to_string()));
    assert_eq!(sse_b.message(), (1, "one".to_string()));
    let parked = PendingPoll::send(&b, "cut", "after=1&timeout=20", Duration::from_secs(20));

    proxy.set(Link::Refuse);
    let bp = wait_backplane(&b, false, Duration::from_secs(5));
    assert!(
        bp.get("last_error").and_then(JsonValue::as_str).is_some(),
        "{bp:?}"
    );
    assert_eq!(
        backplane(&a).get("up").and_then(JsonValue::as_bool),
        Some(true)
    );
    publish_refused(&b, "cut", "refused");
    // A keeps publishing while B is cut off.
    for (i, d) in ["two", "three", "four"].iter().enumerate() {
        assert_eq!(publish(&a, "cut", d), i as u64 + 2);
    }
    ws_assert_alive(&mut ws_b);

    proxy.set(Link::Forward);
    wait_backplane(&b, true, Duration::from_secs(8));
    // B's subscribers get what they missed, in order, once.
    let missed: Vec<(u64, String)> = vec![
        (2, "two".to_string()),
        (3, "three".to_string()),
        (4, "four".to_string()),
    ];
    assert_eq!(ws_messages(&mut ws_b, 3), missed, "WebSocket on B");
    assert_eq!(sse_b.messages(3), missed, "SSE on B");
    let p = parked
        .answer()
        .expect("the long poll parked on B was dropped");
    assert!(!p.truncated, "{}", p.raw);
    assert!(!p.messages.is_empty(), "{}", p.raw);
    assert_contiguous("parked poll", 1, &p.messages);
    assert_eq!(p.messages[..], missed[..p.messages.len()], "{}", p.raw);

    assert_eq!(publish(&b, "cut", "five"), 5);
    assert_eq!(ws_message(&mut ws_b), (5, "five".to_string()));
    assert_eq!(sse_b.message(), (5, "five".to_string()));
    ws_assert_quiet(&mut ws_b, Duration::from_millis(200));
    sse_b.assert_quiet(Duration::from_millis(50));
}

#[test]
fn a_node_whose_redis_link_goes_silent_refuses_publishes_in_time_and_recovers() {
    let redis = RedisServer::start();
    let proxy = Proxy::start(redis.port);
    let a = node(&redis, &[]);
    let b = node_at(&proxy.url(), &[]);
    let mut ws_b = ws_connect(&b, "/channels/silent/ws");
    assert_eq!(publish(&a, "silent", "one"), 1);
    assert_eq!(ws_message(&mut ws_b), (1, "one".to_string()));

    proxy.set(Link::Blackhole);
    assert_eq!(publish(&a, "silent", "two"), 2);
    // B's publish gets no reply: it must be refused, not hang (docs/api.md:
    // publishing answers 503 while Redis is unreachable).
    let t0 = Instant::now();
    let mut s = b.connect();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let req = format!(
        "POST /channels/silent HTTP/1.1\r\nHost: {}\r\nContent-Length: 4\r\n\r\nlost",
        b.addr
    );
    s.write_all(req.as_bytes()).unwrap();
    let r = common::read_response(&mut s, false).expect("an answer to the publish");
    let waited = t0.elapsed();
    assert_eq!(r.status, 503, "publish over a silent link: {:?}", r.text());
    assert_json_type(&r);
    assert!(waited < Duration::from_secs(8), "answered after {waited:?}");
    assert_eq!(
        backplane(&b).get("up").and_then(JsonValue::as_bool),
        Some(false),
        "B after its Redis stopped answering"
    );
    ws_assert_alive(&mut ws_b);

    proxy.set(Link::Forward);
    wait_backplane(&b, true, Duration::from_secs(8));
    assert_eq!(
        ws_message(&mut ws_b),
        (2, "two".to_string()),
        "missed while silent"
    );
    assert_eq!(publish(&b, "silent", "three"), 3);
    assert_eq!(ws_message(&mut ws_b), (3, "three".to_string()));
    ws_assert_quiet(&mut ws_b, Duration::from_millis(200));
}

/// Regression: the subscriber connection's connect deadline (5 s) stayed
/// armed after SUBSCRIBE was confirmed, so every node dropped its Redis
/// link 5 s after each connect and refused publishes while it reconnected
/// (found by benches/run.sh: 2.5% of a two-node fan-out lost). A healthy
/// link must stay up, with no failure counted, well past that deadline,
/// and requests arriving while a node is still connecting are held, not
/// refused.
#[test]
fn a_healthy_link_stays_up_past_the_connect_deadline() {
    let redis = RedisServer::start();
    let url = redis.url();
    // No waiting for the backplane: the first request may arrive while the
    // node is still connecting to Redis.
    let a = Server::start(&["--redis", url.as_str()]);
    let r = a.get("/channels/early/poll?timeout=0");
    assert_eq!(
        r.status,
        200,
        "a request during the connect is held, not refused: {:?}",
        r.text()
    );
    let b = node(&redis, &[]);
    let deadline = Instant::now() + Duration::from_millis(7500);
    let mut id = 0;
    while Instant::now() < deadline {
        id = publish(&a, "steady", "tick");
        for n in [&a, &b] {
            let bp = backplane(n);
            assert_eq!(
                bp.get("up").and_then(JsonValue::as_bool),
                Some(true),
                "{:?}",
                bp
            );
            assert_eq!(num(&bp, "failures"), 0, "the link dropped: {:?}", bp);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(id >= 20, "publishes kept working: last id {id}");
}

// ---------------------------------------------------------------------------
// 9. A Redis with a password (docs/api.md section 7): AUTH and SELECT on every
//    connection, a wrong password a clear error, never a loop
// ---------------------------------------------------------------------------

/// The `default` user's password of `redis_with_password`.
const PASSWORD: &str = "s3cret-default-pw";
/// The ACL user `alice`'s password.
const ALICE_PW: &str = "alice-pw-7f3a";

/// A `redis-server` that requires `PASSWORD` of the default user and knows
/// an ACL user `alice` (password `ALICE_PW`) with every right.
fn redis_with_password() -> RedisServer {
    let alice = format!(">{ALICE_PW}");
    RedisServer::start_with(
        &["--user", "alice", "on", &alice, "~*", "&*", "+@all"],
        Some(PASSWORD),
    )
}

/// A `/metrics` line's value, e.g. `metric(&s, "pushwire_backplane_up")`.
fn metric(server: &Server, series: &str) -> Option<f64> {
    let r = server.get("/metrics");
    assert_eq!(r.status, 200, "/metrics: {:?}", r.text());
    r.text().lines().find_map(|l| {
        l.strip_prefix(series)
            .and_then(|rest| rest.strip_prefix(' '))
            .and_then(|v| v.parse().ok())
    })
}

/// A string field of the backplane object.
fn bp_str(bp: &JsonValue, key: &str) -> String {
    bp.get(key)
        .and_then(JsonValue::as_str)
        .unwrap_or_else(|| panic!("backplane has no string {key}: {bp:?}"))
        .to_string()
}

#[test]
fn a_password_protected_redis_carries_two_nodes_one_logged_in_as_an_acl_user() {
    let redis = redis_with_password();
    let port = redis.port;
    // Node A logs in as the default user, node B as alice; both use
    // database 2.
    let a = node_at(&format!("redis://:{PASSWORD}@127.0.0.1:{port}/2"), &[]);
    let b = node_at(&format!("redis://alice:{ALICE_PW}@127.0.0.1:{port}/2"), &[]);

    for (s, pw, shown) in [
        (&a, PASSWORD, format!("redis://:***@127.0.0.1:{port}/2")),
        (
            &b,
            ALICE_PW,
            format!("redis://alice:***@127.0.0.1:{port}/2"),
        ),
    ] {
        let stats = s.get("/stats").text();
        assert!(!stats.contains(pw), "/stats shows the password: {stats}");
        let bp = backplane(s);
        assert_eq!(bp_str(&bp, "url"), shown, "{bp:?}");
        assert_eq!(bp_str(&bp, "state"), "up", "{bp:?}");
        assert_eq!(bp_str(&bp, "addr"), format!("127.0.0.1:{port}"), "{bp:?}");
        let metrics = s.get("/metrics").text();
        assert!(!metrics.contains(pw), "/metrics shows the password");
        assert_eq!(metric(s, "pushwire_backplane_up"), Some(1.0));
        assert_eq!(
            metric(s, "pushwire_backplane_state{state=\"up\"}"),
            Some(1.0)
        );
    }

    // Publish on one node, subscribers on the other get it (the
    // subscriber connections logged in too).
    let mut ws = ws_connect(&b, "/channels/news/ws");
    let mut sse = Sse::open_ok(&b, "/channels/news/events", &[]);
    let id = publish(&a, "news", "through a password");
    assert_eq!(ws_message(&mut ws), (id, "through a password".to_string()));
    sse.expect_message(id, "through a password");
    let back = publish(&b, "news", "and back");
    assert_eq!(back, id + 1);
    let answer = poll(&a, "news", &format!("after={id}&timeout=5"));
    assert_eq!(answer.messages, vec![(back, "and back".to_string())]);

    // SELECT 2 took effect: the channel's keys are in database 2 only.
    let keyspace = redis.info("db2").unwrap_or_default();
    assert!(keyspace.starts_with("keys=2"), "db2: {keyspace:?}");
    assert_eq!(redis.info("db0"), None, "keys landed in database 0");
}

#[test]
fn a_wrong_password_is_a_clear_error_at_start_and_is_retried_with_backoff_not_in_a_loop() {
    let redis = redis_with_password();
    let port = redis.port;
    let wrong = "not-the-password-93e1";
    let log = redis.dir.join("node-stderr.txt");
    let s = Server::start_logged(
        &[
            "--redis",
            &format!("redis://:{wrong}@127.0.0.1:{port}"),
            "--trace",
        ],
        &log,
    );
    // Redis has no password it would refuse in the URL of this one: it
    // says that one is required.
    let none = Server::start(&["--redis", &redis.url()]);

    let failed = |s: &Server| {
        wait_for(Duration::from_secs(5), || {
            let bp = backplane(s);
            (bp.get("state").and_then(JsonValue::as_str) == Some("auth_failed")).then_some(bp)
        })
        .unwrap_or_else(|| panic!("never auth_failed: {:?}", backplane(s)))
    };
    let bp = failed(&s);
    assert_eq!(bp.get("up").and_then(JsonValue::as_bool), Some(false));
    let error = bp_str(&bp, "last_error");
    assert!(
        error.contains("refused") && error.contains("--redis"),
        "not a clear sentence: {error:?}"
    );
    let error = bp_str(&failed(&none), "last_error");
    assert!(error.contains("requires a password"), "{error:?}");
    publish_refused(&s, "c", "hi");
    assert_eq!(metric(&s, "pushwire_backplane_up"), Some(0.0));
    assert_eq!(
        metric(&s, "pushwire_backplane_state{state=\"auth_failed\"}"),
        Some(1.0)
    );

    // Retried with a backoff (0.1 s, 0.2 s, ... capped at 5 s): a handful
    // of attempts in 3 s, each two connections, not a loop of hundreds.
    let count = || -> (u64, u64) {
        let conns = redis
            .info("total_connections_received")
            .and_then(|v| v.parse().ok())
            .expect("INFO total_connections_received");
        (conns, num(&backplane(&s), "failures"))
    };
    let (conns0, failures0) = count();
    std::thread::sleep(Duration::from_secs(3));
    let (conns1, failures1) = count();
    let (attempts, conns) = (failures1 - failures0, conns1 - conns0);
    assert!(
        (1..=8).contains(&attempts),
        "{attempts} failed attempts in 3 s"
    );
    // Both nodes together, two connections per attempt, and this test's own
    // INFO and /stats calls.
    assert!(conns <= 40, "{conns} connections to Redis in 3 s");

    // The password is nowhere: /stats, /metrics, the log, --trace (where
    // AUTH shows as ***).
    for text in [s.get("/stats").text(), s.get("/metrics").text()] {
        assert!(!text.contains(wrong), "the password shows: {text}");
    }
    let err = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(!err.contains(wrong), "the password is in the log or trace");
    assert!(
        err.contains(r#"$4 "AUTH", $3 "***""#),
        "--trace does not show the AUTH: {err}"
    );
    // Logged once at error level, clearly, whatever the number of tries.
    let errors = err
        .lines()
        .filter(|l| l.contains("ERROR") && l.contains("refused the user name or password"))
        .count();
    assert_eq!(errors, 1, "logged {errors} times:\n{err}");

    // An operator who fixes it on the Redis side sees the node log in by
    // itself at the next try (at most 5 s later).
    let fixed = redis.command(&["CONFIG", "SET", "requirepass", wrong]);
    assert_eq!(fixed.as_deref(), Some(&b"+OK\r\n"[..]));
    let bp = wait_backplane(&s, true, Duration::from_secs(10));
    assert_eq!(bp_str(&bp, "state"), "up", "{bp:?}");
    publish(&s, "c", "now it works");
}
