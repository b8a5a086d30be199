//! DNS names (docs/api.md sections 4 and 7): a `--redis` host and a webhook host
//! named by DNS are resolved off the event loop, and a slow or dead lookup
//! never stalls anyone else.
//!
//! The names are the test's own, under `.test` (RFC 6761: never a real
//! domain), written into `/etc/hosts` (the tests run as root, as CI does)
//! or answered by a small DNS server the test runs on `127.0.0.1:53`, which
//! `/etc/resolv.conf` points at for the slow-lookup test. [`EtcGuard`] puts
//! both files back as they were when the test ends, even when it fails,
//! and one lock keeps the tests of this file from editing them at once.
//! (Other suites run as other test binaries, one after the other, and
//! resolve no names.)

mod common;

use common::json::{json, num};
use common::{wait_for, JsonValue, RedisServer, Server};
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// /etc/hosts and /etc/resolv.conf, restored whatever happens
// ---------------------------------------------------------------------------

static ETC: Mutex<()> = Mutex::new(());

const HOSTS: &str = "/etc/hosts";
const RESOLV: &str = "/etc/resolv.conf";

/// Holds the lock on the two files and their original text; writes the
/// text back on drop (a panicking test included).
struct EtcGuard {
    hosts: String,
    resolv: String,
    _lock: MutexGuard<'static, ()>,
}

impl EtcGuard {
    fn take() -> EtcGuard {
        // A test that panicked while holding the lock poisoned it; its
        // guard restored the files all the same.
        let lock = ETC.lock().unwrap_or_else(|p| p.into_inner());
        let read =
            |p: &str| std::fs::read_to_string(p).unwrap_or_else(|e| panic!("cannot read {p}: {e}"));
        EtcGuard {
            hosts: read(HOSTS),
            resolv: read(RESOLV),
            _lock: lock,
        }
    }

    /// Appends `127.0.0.1 NAME` lines to /etc/hosts.
    fn add_hosts(&self, names: &[&str]) {
        let mut text = self.hosts.clone();
        if !text.ends_with('\n') {
            text.push('\n');
        }
        for n in names {
            text.push_str(&format!("127.0.0.1 {n}\n"));
        }
        write_etc(HOSTS, &text);
    }

    /// Sends every DNS query to `127.0.0.1` (`SlowDns`), one try of 5 s.
    fn resolve_locally(&self) {
        write_etc(
            RESOLV,
            "nameserver 127.0.0.1\noptions timeout:5 attempts:1\n",
        );
    }
}

impl Drop for EtcGuard {
    fn drop(&mut self) {
        write_etc(HOSTS, &self.hosts);
        write_etc(RESOLV, &self.resolv);
    }
}

/// Rewrites the file in place (it may be a bind mount, which a rename
/// could not replace).
fn write_etc(path: &str, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| {
        panic!("cannot write {path} ({e}): the DNS tests edit it and must run as root")
    });
}

// ---------------------------------------------------------------------------
// A DNS server that answers slowly, or never
// ---------------------------------------------------------------------------

/// Answers A queries on `127.0.0.1:53` with 127.0.0.1 after `delay`
/// (other types: no records), and never answers a name that starts with
/// `blackhole.`. Only what glibc's stub resolver needs: RFC 1035 section
/// 4.1, one question, a compressed name pointer in the answer.
struct SlowDns {
    stop: Arc<AtomicBool>,
}

impl SlowDns {
    fn start(delay: Duration) -> SlowDns {
        let sock = UdpSocket::bind("127.0.0.1:53")
            .unwrap_or_else(|e| panic!("bind 127.0.0.1:53 for the test's DNS server: {e}"));
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let done = stop.clone();
        std::thread::spawn(move || {
            let sock = Arc::new(sock);
            let mut buf = [0u8; 512];
            while !done.load(Ordering::SeqCst) {
                let (n, from) = match sock.recv_from(&mut buf) {
                    Ok(x) => x,
                    Err(_) => continue,
                };
                let Some((answer, name)) = dns_answer(&buf[..n]) else {
                    continue;
                };
                if name.starts_with("blackhole.") {
                    continue;
                }
                let sock = sock.clone();
                std::thread::spawn(move || {
                    std::thread::sleep(delay);
                    let _ = sock.send_to(&answer, from);
                });
            }
        });
        SlowDns { stop }
    }
}

impl Drop for SlowDns {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(100)); // the socket closes
    }
}

/// The response to a query, and the name asked for.
fn dns_answer(q: &[u8]) -> Option<(Vec<u8>, String)> {
    // Header (12 bytes), then QNAME as labels, QTYPE, QCLASS.
    let mut i = 12;
    let mut name = Vec::new();
    loop {
        let len = *q.get(i)? as usize;
        if len == 0 {
            break;
        }
        name.push(String::from_utf8_lossy(q.get(i + 1..i + 1 + len)?).into_owned());
        i += 1 + len;
    }
    let question = q.get(12..i + 5)?;
    let qtype = u16::from_be_bytes([*q.get(i + 1)?, *q.get(i + 2)?]);
    let a = qtype == 1;
    let mut out = Vec::new();
    out.extend_from_slice(&q[..2]); // the id
    out.extend_from_slice(&[0x81, 0x80]); // a response, recursion available
    out.extend_from_slice(&[0, 1, 0, u8::from(a), 0, 0, 0, 0]);
    out.extend_from_slice(question);
    if a {
        // Name: a pointer to the question's (offset 12); A, IN, TTL 60.
        out.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 1]);
    }
    Some((out, name.join(".")))
}

// ---------------------------------------------------------------------------
// A webhook receiver
// ---------------------------------------------------------------------------

/// Records the head of every request it gets (and when it came), and
/// answers 200.
struct Receiver {
    port: u16,
    hits: mpsc::Receiver<(Instant, String)>,
}

impl Receiver {
    fn start() -> Receiver {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind the receiver");
        let port = l.local_addr().unwrap().port();
        let (tx, hits) = mpsc::channel();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { continue };
                let tx = tx.clone();
                std::thread::spawn(move || {
                    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut chunk) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let _ = tx.send((Instant::now(), String::from_utf8_lossy(&buf).into_owned()));
                    let _ = s.write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                });
            }
        });
        Receiver { port, hits }
    }

    fn next(&self, timeout: Duration) -> Option<(Instant, String)> {
        self.hits.recv_timeout(timeout).ok()
    }
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn enc(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `POST /webhooks`: the status and body.
fn register(server: &Server, url: &str, events: &str) -> (u16, String) {
    let form = format!("url={}&events={}", enc(url), enc(events));
    let r = server.request(
        "POST",
        "/webhooks",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        form.as_bytes(),
    );
    (r.status, r.text())
}

fn publish(server: &Server, ch: &str, data: &str) {
    let r = server.post(&format!("/channels/{ch}"), data.as_bytes());
    assert_eq!(r.status, 201, "publish: {:?}", r.text());
}

/// The webhook's recorded attempts.
fn deliveries(server: &Server, id: &str) -> Vec<JsonValue> {
    let r = server.get(&format!("/webhooks/{id}/deliveries"));
    assert_eq!(r.status, 200, "{:?}", r.text());
    match json(&r).get("deliveries") {
        Some(JsonValue::Arr(a)) => a.clone(),
        other => panic!("no deliveries array: {other:?}"),
    }
}

/// Waits until the webhook has a recorded attempt; returns the first.
fn first_attempt(server: &Server, id: &str, timeout: Duration) -> JsonValue {
    wait_for(timeout, || deliveries(server, id).into_iter().next())
        .unwrap_or_else(|| panic!("no attempt of {id} recorded within {timeout:?}"))
}

fn backplane(server: &Server) -> JsonValue {
    json(&server.get("/stats"))
        .get("backplane")
        .cloned()
        .expect("a backplane object in /stats")
}

fn text_of(v: &JsonValue, key: &str) -> String {
    v.get(key)
        .and_then(JsonValue::as_str)
        .unwrap_or_else(|| panic!("no string {key} in {v:?}"))
        .to_string()
}

fn read_log(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

// ---------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------

#[test]
fn a_redis_named_by_dns_is_looked_up_at_start_and_again_at_each_reconnect() {
    let etc = EtcGuard::take();
    etc.add_hosts(&["redis.pushwire.test"]);
    let password = "dns-test-pw";
    let redis = RedisServer::start_with(&[], Some(password));
    let port = redis.port;
    let log = redis.dir.join("node-stderr.txt");
    let url = format!("redis://:{password}@redis.pushwire.test:{port}");
    let s = Server::start_logged(&["--redis", &url, "--trace"], &log);

    let up = |s: &Server| {
        wait_for(Duration::from_secs(10), || {
            let bp = backplane(s);
            (bp.get("up").and_then(JsonValue::as_bool) == Some(true)).then_some(bp)
        })
        .unwrap_or_else(|| panic!("the backplane never came up: {:?}", backplane(s)))
    };
    let bp = up(&s);
    assert_eq!(text_of(&bp, "addr"), format!("127.0.0.1:{port}"), "{bp:?}");
    assert_eq!(
        text_of(&bp, "url"),
        format!("redis://:***@redis.pushwire.test:{port}/0")
    );
    publish(&s, "n", "by name");

    // Cut the node's subscriber connection: it reconnects, and looks the
    // name up again first (a failed-over Redis moves its name).
    let killed = redis.command(&["CLIENT", "KILL", "TYPE", "pubsub"]);
    assert!(
        killed.as_deref().is_some_and(|r| r.starts_with(b":")),
        "{killed:?}"
    );
    let lookups = || {
        read_log(&log)
            .lines()
            .filter(|l| l.starts_with(&format!("redis.pushwire.test:{port} .. dns: asked")))
            .count()
    };
    let again = wait_for(Duration::from_secs(10), || (lookups() >= 2).then_some(()));
    assert!(
        again.is_some(),
        "no second lookup after the reconnect:\n{}",
        read_log(&log)
    );
    up(&s);
    publish(&s, "n", "by name, again");

    // --trace narrates the lookup like any wire event; the password is
    // nowhere in it.
    let trace = read_log(&log);
    for want in [
        format!("redis.pushwire.test:{port} .. dns: answered 127.0.0.1:{port}"),
        format!("redis.pushwire.test:{port} .. dns: using 127.0.0.1:{port} for Redis"),
    ] {
        assert!(trace.contains(&want), "no {want:?} in the trace:\n{trace}");
    }
    assert!(!trace.contains(password), "the password is in the trace");
    drop(etc);
}

#[test]
fn a_webhook_host_named_by_dns_is_delivered_to_only_when_allowed_and_not_to_itself() {
    let etc = EtcGuard::take();
    etc.add_hosts(&["hooks.pushwire.test", "unlisted.pushwire.test"]);
    let receiver = Receiver::start();
    let r = receiver.port;
    let s = Server::start(&["--webhook-allow", "hooks.pushwire.test"]);

    // The SSRF rule: a name is allowed only because --webhook-allow names
    // it, whatever it resolves to (here loopback too).
    let (status, body) = register(
        &s,
        &format!("http://unlisted.pushwire.test:{r}/in"),
        "channel.n",
    );
    assert_eq!(status, 400, "an unlisted name was accepted: {body}");

    let (status, body) = register(
        &s,
        &format!("http://hooks.pushwire.test:{r}/in"),
        "channel.n",
    );
    assert_eq!(status, 201, "{body}");
    publish(&s, "n", "to a name");
    let (_, head) = receiver
        .next(Duration::from_secs(10))
        .expect("the delivery to hooks.pushwire.test within 10 s");
    assert!(head.starts_with("POST /in HTTP/1.1\r\n"), "{head}");
    assert!(
        head.contains(&format!("\r\nHost: hooks.pushwire.test:{r}\r\n")),
        "the Host header names the name: {head}"
    );
    assert!(head.contains("X-Pushwire-Event: message"), "{head}");

    // A name that resolves to this server's own address and port is
    // refused at delivery (it cannot be known at registration).
    let own = s.addr.port();
    let (status, body) = register(
        &s,
        &format!("http://hooks.pushwire.test:{own}/channels/loop"),
        "channel.o",
    );
    assert_eq!(status, 201, "{body}");
    let id = text_of(&json_text(&body), "id");
    publish(&s, "o", "would call itself");
    let attempt = first_attempt(&s, &id, Duration::from_secs(10));
    let error = text_of(&attempt, "error");
    assert!(error.contains("this server itself"), "{attempt:?}");
    assert_eq!(
        attempt.get("final").and_then(JsonValue::as_bool),
        Some(true),
        "{attempt:?}"
    );

    // /metrics counts both by outcome.
    let wants = [
        "pushwire_webhook_deliveries_total{outcome=\"delivered\"} 1\n",
        "pushwire_webhook_deliveries_total{outcome=\"failed\"} 1\n",
    ];
    let counted = wait_for(Duration::from_secs(5), || {
        let metrics = s.get("/metrics").text();
        wants.iter().all(|w| metrics.contains(w)).then_some(())
    });
    assert!(
        counted.is_some(),
        "not {wants:?} in:\n{}",
        s.get("/metrics").text()
    );
    drop(etc);
}

fn json_text(body: &str) -> JsonValue {
    common::parse_json(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body:?}"))
}

#[test]
fn a_slow_or_dead_lookup_never_stalls_other_connections() {
    const SLOW: Duration = Duration::from_secs(2);
    let etc = EtcGuard::take();
    let dns = SlowDns::start(SLOW);
    etc.resolve_locally();
    let receiver = Receiver::start();
    let r = receiver.port;
    let dir = std::env::temp_dir().join(format!("pushwire-dns-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("slow-stderr.txt");
    let s = Server::start_logged(
        &[
            "--webhook-allow",
            "slow.pushwire.test",
            "--webhook-allow",
            "blackhole.pushwire.test",
            "--trace",
        ],
        &log,
    );
    let (status, body) = register(
        &s,
        &format!("http://slow.pushwire.test:{r}/in"),
        "channel.n",
    );
    assert_eq!(status, 201, "{body}");
    let (status, body) = register(
        &s,
        &format!("http://blackhole.pushwire.test:{r}/in"),
        "channel.n",
    );
    assert_eq!(status, 201, "{body}");
    let dead = text_of(&json_text(&body), "id");

    // A subscriber, then the publish that sends both webhooks looking up
    // their names: one answer takes 2 s, the other never comes.
    let mut sub = s.connect();
    sub.write_all(b"GET /channels/n/poll?after=0&timeout=30 HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let published = Instant::now();
    publish(&s, "n", "while DNS is slow");

    // The long poll is answered at once.
    sub.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("while DNS is slow") {
        match sub.read(&mut chunk) {
            Ok(0) => panic!("the subscriber was closed"),
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("the subscriber got nothing within 1 s of the publish")
            }
            Err(e) => panic!("{e}"),
        }
    }

    // A canary is served throughout: a request every 20 ms until the dead
    // lookup has timed out (5 s), none slower than 1 s (a lookup on the
    // loop would stall it for 2 s, or 5).
    let mut worst = Duration::ZERO;
    let mut served = 0;
    let mut delivered = None;
    let until = published + Duration::from_secs(6);
    while Instant::now() < until {
        let t = Instant::now();
        let mut c = TcpStream::connect(s.addr).expect("canary connect");
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.write_all(b"GET /stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut answer = Vec::new();
        let _ = c.read_to_end(&mut answer);
        assert!(answer.starts_with(b"HTTP/1.1 "), "canary: {answer:?}");
        worst = worst.max(t.elapsed());
        served += 1;
        if delivered.is_none() {
            delivered = receiver.next(Duration::ZERO).map(|(at, _)| at);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        worst < Duration::from_secs(1),
        "a canary request took {worst:?}"
    );
    assert!(served > 50, "only {served} canary requests were served");

    // The slow name's delivery came once its answer did, not before.
    let delivered = delivered
        .or_else(|| receiver.next(Duration::from_secs(2)).map(|(at, _)| at))
        .expect("the delivery to slow.pushwire.test");
    let took = delivered - published;
    eprintln!(
        "slow lookup: delivered after {took:?}; {served} canary requests, the slowest {worst:?}"
    );
    assert!(
        took >= SLOW - Duration::from_millis(200),
        "delivered after {took:?}: was the lookup slow at all?"
    );

    // The dead name's attempt failed after the lookup's 5 s, recorded.
    let attempt = first_attempt(&s, &dead, Duration::from_secs(5));
    let error = text_of(&attempt, "error");
    assert!(
        error.contains("blackhole.pushwire.test") && error.contains("within 5 s"),
        "{attempt:?}"
    );
    assert_eq!(num(&attempt, "attempt"), 1);

    // --trace: asked, answered with the address, which one was used, and
    // the timeout.
    let trace = read_log(&log);
    for want in [
        format!("slow.pushwire.test:{r} .. dns: asked"),
        format!("slow.pushwire.test:{r} .. dns: answered 127.0.0.1:{r}"),
        format!("slow.pushwire.test:{r} .. dns: using 127.0.0.1:{r} for webhook delivery"),
        format!("blackhole.pushwire.test:{r} .. dns: timed out"),
    ] {
        assert!(trace.contains(&want), "no {want:?} in the trace:\n{trace}");
    }
    drop(s);
    drop(dns);
    drop(etc);
    let _ = std::fs::remove_dir_all(&dir);
}
