//! docs/api.md section 4, "Webhooks", and section 1's `callback=`, from the
//! outside.
//!
//! Everything on the receiving end is independent of the server's code:
//! - `Receiver` below is a real HTTP/1.1 server written here on plain
//!   `std::net::TcpListener` (a thread per connection, the request head and
//!   its Content-Length body parsed by hand), answering each request with a
//!   scripted status (or never) and recording it with its arrival `Instant`;
//! - signatures are checked with an HMAC-SHA1 written here over the `sha1`
//!   crate (RFC 2104), itself checked against RFC 2202's test vectors.
//!
//! Each test starts its own `pushwire` process on port 0. The retry
//! schedule is 1, 2, 4, 8, 16 s, so a few tests take seconds; the longest
//! (six attempts to a closed port) takes ~33 s and runs in parallel with
//! the rest.

mod common;

use common::json::{assert_error, assert_json_type, json, num};
use common::{parse_json, wait_for, JsonValue, Response, Server};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// HMAC-SHA1 (RFC 2104), written here so the verifier shares nothing with the
// server
// ---------------------------------------------------------------------------

fn hmac_sha1(key: &[u8], msg: &[u8]) -> [u8; 20] {
    use sha1::{Digest, Sha1};
    const B: usize = 64;
    let mut k0 = [0u8; B];
    if key.len() > B {
        k0[..20].copy_from_slice(&Sha1::digest(key));
    } else {
        k0[..key.len()].copy_from_slice(key);
    }
    let ipad: Vec<u8> = k0.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = k0.iter().map(|b| b ^ 0x5c).collect();
    let mut inner = Sha1::new();
    inner.update(&ipad);
    inner.update(msg);
    let inner = inner.finalize();
    let mut outer = Sha1::new();
    outer.update(&opad);
    outer.update(inner);
    outer.finalize().into()
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The `X-Pushwire-Signature` a delivery of `body` must carry: keyed with
/// the secret's hex TEXT as bytes (docs/api.md section 4).
fn expected_signature(secret: &str, body: &[u8]) -> String {
    format!("sha1={}", to_hex(&hmac_sha1(secret.as_bytes(), body)))
}

#[test]
fn hmac_verifier_matches_rfc2202() {
    // RFC 2202 section 3, test case 2.
    assert_eq!(
        to_hex(&hmac_sha1(b"Jefe", b"what do ya want for nothing?")),
        "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
    );
    // Test case 1.
    assert_eq!(
        to_hex(&hmac_sha1(&[0x0b; 20], b"Hi There")),
        "b617318655057264e28bc0b6fb378c8ef146be00"
    );
    // Test case 6: a key longer than the block is hashed first.
    assert_eq!(
        to_hex(&hmac_sha1(
            &[0xaa; 80],
            b"Test Using Larger Than Block-Size Key - Hash Key First"
        )),
        "aa4ae5e15272d00e95705637ce8a3b55ed402112"
    );
}

// ---------------------------------------------------------------------------
// A real HTTP receiver on std::net
// ---------------------------------------------------------------------------

/// How the receiver answers one request.
#[derive(Clone, Copy, Debug)]
enum Reply {
    Status(u16),
    /// Read the request, then never answer (hold the connection until the
    /// peer closes it).
    Hang,
}

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Hit {
    /// When the whole request (head and body) had arrived.
    at: Instant,
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Hit {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn must(&self, name: &str) -> &str {
        self.header(name)
            .unwrap_or_else(|| panic!("no {name} header in {:?}", self.headers))
    }
    fn body_text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("UTF-8 delivery body")
    }
    fn json(&self) -> JsonValue {
        parse_json(&self.body_text())
            .unwrap_or_else(|e| panic!("delivery body is not JSON ({e}): {:?}", self.body_text()))
    }
}

struct Receiver {
    port: u16,
    hits: Arc<Mutex<Vec<Hit>>>,
}

impl Receiver {
    /// Answers the n-th request (0-based, in order of arrival) with
    /// `script[n]`, and every one after the script with `then`.
    fn start(script: &[Reply], then: Reply) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind receiver");
        let port = listener.local_addr().unwrap().port();
        let hits: Arc<Mutex<Vec<Hit>>> = Arc::default();
        let script = script.to_vec();
        let h = hits.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (h, script) = (h.clone(), script.clone());
                std::thread::spawn(move || serve(stream, h, &script, then));
            }
        });
        Receiver { port, hits }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    fn count(&self) -> usize {
        self.hits.lock().unwrap().len()
    }

    /// Waits until at least `n` requests arrived; panics after `timeout`.
    fn wait_hits(&self, n: usize, timeout: Duration) -> Vec<Hit> {
        wait_for(timeout, || {
            let h = self.hits();
            (h.len() >= n).then_some(h)
        })
        .unwrap_or_else(|| {
            panic!(
                "receiver got {} request(s), wanted {n} within {timeout:?}",
                self.count()
            )
        })
    }
}

/// One connection: read one request by hand, record it, answer it.
fn serve(mut s: TcpStream, hits: Arc<Mutex<Vec<Hit>>>, script: &[Reply], then: Reply) {
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or("").split(' ');
    let method = request_line.next().unwrap_or("").to_string();
    let target = request_line.next().unwrap_or("").to_string();
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    body.truncate(len);
    let at = Instant::now();
    let index = {
        let mut h = hits.lock().unwrap();
        h.push(Hit {
            at,
            method,
            target,
            headers,
            body,
        });
        h.len() - 1
    };
    match script.get(index).copied().unwrap_or(then) {
        Reply::Status(code) => {
            let answer = format!(
                "HTTP/1.1 {code} Scripted\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
            );
            let _ = s.write_all(answer.as_bytes());
            let _ = s.flush();
            let _ = s.shutdown(std::net::Shutdown::Write);
            // Let the peer read and close first.
            let _ = s.read(&mut chunk);
        }
        Reply::Hang => {
            // Hold the connection open until the peer gives up (or 30 s).
            while let Ok(n) = s.read(&mut chunk) {
                if n == 0 {
                    break;
                }
            }
        }
    }
}

/// A port with nothing listening on it: bound, noted, released.
fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    port
}

// ---------------------------------------------------------------------------
// Helpers for the server's side
// ---------------------------------------------------------------------------

fn str_of<'a>(v: &'a JsonValue, key: &str) -> &'a str {
    v.get(key)
        .and_then(|x| x.as_str())
        .unwrap_or_else(|| panic!("no string {key:?} in {v:?}"))
}

fn arr<'a>(v: &'a JsonValue, key: &str) -> &'a [JsonValue] {
    match v.get(key) {
        Some(JsonValue::Arr(a)) => a,
        _ => panic!("no array {key:?} in {v:?}"),
    }
}

/// `"final":true` on an attempt record (absent or false otherwise).
fn is_final(a: &JsonValue) -> bool {
    match a.get("final") {
        None | Some(JsonValue::Bool(false)) => false,
        Some(JsonValue::Bool(true)) => true,
        Some(other) => panic!("\"final\" is {other:?} in {a:?}"),
    }
}

/// An object has exactly these members with these values (in any order).
fn assert_obj(v: &JsonValue, want: &[(&str, JsonValue)], what: &str) {
    let mut keys = v.keys();
    keys.sort();
    let mut want_keys: Vec<&str> = want.iter().map(|(k, _)| *k).collect();
    want_keys.sort();
    assert_eq!(keys, want_keys, "{what}: members of {v:?}");
    for (k, val) in want {
        assert_eq!(v.get(k), Some(val), "{what}: {k:?} in {v:?}");
    }
}

fn s(x: &str) -> JsonValue {
    JsonValue::Str(x.to_string())
}

fn n(x: u64) -> JsonValue {
    JsonValue::Num(x as f64)
}

/// `YYYY-MM-DDTHH:MM:SS[.fff]` followed by `Z` or `±HH:MM` (RFC 3339 section 5.6).
fn is_rfc3339(t: &str) -> bool {
    let b = t.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| r.clone().all(|i| b.get(i).is_some_and(u8::is_ascii_digit));
    if !(digits(0..4)
        && b.get(4) == Some(&b'-')
        && digits(5..7)
        && b.get(7) == Some(&b'-')
        && digits(8..10)
        && matches!(b.get(10), Some(b'T' | b't'))
        && digits(11..13)
        && b.get(13) == Some(&b':')
        && digits(14..16)
        && b.get(16) == Some(&b':')
        && digits(17..19))
    {
        return false;
    }
    let mut i = 19;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return false;
        }
    }
    match b.get(i) {
        Some(b'Z' | b'z') => i + 1 == b.len(),
        Some(b'+' | b'-') => {
            i + 6 == b.len() && digits(i + 1..i + 3) && b[i + 3] == b':' && digits(i + 4..i + 6)
        }
        _ => false,
    }
}

/// Percent-encodes a form value (everything but RFC 3986 unreserved).
fn enc(v: &str) -> String {
    v.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn is_secret(secret: &str) -> bool {
    secret.len() == 32
        && secret
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn register_raw(server: &Server, form: &str) -> Response {
    server.request(
        "POST",
        "/webhooks",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        form.as_bytes(),
    )
}

/// `POST /webhooks` → 201 `{"id":"wh:N","secret":"<32 hex>"}`; returns both.
fn register(server: &Server, url: &str, events: &str) -> (String, String) {
    let r = register_raw(server, &format!("url={}&events={}", enc(url), enc(events)));
    assert_eq!(r.status, 201, "register {url} {events}: {:?}", r.text());
    assert_json_type(&r);
    let j = json(&r);
    let mut keys = j.keys();
    keys.sort();
    assert_eq!(keys, ["id", "secret"], "register answer {:?}", r.text());
    let id = str_of(&j, "id").to_string();
    let secret = str_of(&j, "secret").to_string();
    assert!(
        id.strip_prefix("wh:")
            .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit())),
        "webhook id {id:?}"
    );
    assert!(is_secret(&secret), "secret {secret:?}");
    (id, secret)
}

/// `GET /webhooks` → the listed webhooks.
fn list(server: &Server) -> Vec<JsonValue> {
    let r = server.get("/webhooks");
    assert_eq!(r.status, 200, "GET /webhooks: {:?}", r.text());
    assert_json_type(&r);
    let j = json(&r);
    assert_eq!(j.keys(), ["webhooks"], "GET /webhooks {:?}", r.text());
    arr(&j, "webhooks").to_vec()
}

fn listed(server: &Server, id: &str) -> Option<JsonValue> {
    list(server)
        .into_iter()
        .find(|w| w.get("id").and_then(|x| x.as_str()) == Some(id))
}

/// `GET /webhooks/{id}/deliveries` → the attempt records, oldest first.
fn deliveries(server: &Server, id: &str) -> Vec<JsonValue> {
    let r = server.get(&format!("/webhooks/{id}/deliveries"));
    assert_eq!(r.status, 200, "deliveries of {id}: {:?}", r.text());
    assert_json_type(&r);
    let j = json(&r);
    assert_eq!(j.keys(), ["deliveries"], "deliveries {:?}", r.text());
    arr(&j, "deliveries").to_vec()
}

/// Waits until `id` shows at least `count` attempt records.
fn wait_attempts(server: &Server, id: &str, count: usize, timeout: Duration) -> Vec<JsonValue> {
    wait_for(timeout, || {
        let d = deliveries(server, id);
        (d.len() >= count).then_some(d)
    })
    .unwrap_or_else(|| {
        panic!(
            "{id}: wanted {count} attempt record(s) within {timeout:?}, have {:?}",
            deliveries(server, id)
        )
    })
}

/// Checks the fields every attempt record has; returns its delivery id.
fn check_attempt(a: &JsonValue, event: &str, attempt: u64) -> String {
    assert_eq!(str_of(a, "event"), event, "event of {a:?}");
    assert_eq!(num(a, "attempt"), attempt, "attempt number of {a:?}");
    assert!(is_rfc3339(str_of(a, "at")), "at of {a:?}");
    for k in ["status", "error"] {
        assert!(a.get(k).is_some(), "no {k:?} member in {a:?}");
    }
    let d = str_of(a, "delivery").to_string();
    assert!(!d.is_empty(), "empty delivery id in {a:?}");
    d
}

/// An attempt that got no answer: `status` null and `error` a sentence.
fn assert_no_answer(a: &JsonValue) {
    assert_eq!(a.get("status"), Some(&JsonValue::Null), "status of {a:?}");
    let e = str_of(a, "error");
    assert!(
        e.chars().filter(|c| c.is_alphabetic()).count() >= 3,
        "error sentence {e:?}"
    );
}

fn publish(server: &Server, ch: &str, data: &str) -> u64 {
    let r = server.post(&format!("/channels/{ch}"), data.as_bytes());
    assert_eq!(r.status, 201, "publish {data:?} to {ch}: {:?}", r.text());
    num(&json(&r), "id")
}

/// Checks the delivery headers and signature of `hit`.
fn assert_delivery(hit: &Hit, event: &str, webhook: &str, secret: &str, path: &str) {
    assert_eq!(hit.method, "POST", "method of {hit:?}");
    assert_eq!(hit.target, path, "request target of {hit:?}");
    assert_eq!(hit.must("X-Pushwire-Event"), event);
    assert_eq!(hit.must("X-Pushwire-Webhook"), webhook);
    assert!(
        !hit.must("X-Pushwire-Delivery").trim().is_empty(),
        "empty X-Pushwire-Delivery"
    );
    let ct = hit.must("Content-Type").to_ascii_lowercase();
    assert!(ct.starts_with("application/json"), "Content-Type {ct:?}");
    let sig = hit.must("X-Pushwire-Signature");
    let want = expected_signature(secret, &hit.body);
    assert!(
        sig.eq_ignore_ascii_case(&want),
        "signature {sig:?}, want {want:?} (HMAC-SHA1 of {:?} keyed with {secret:?})",
        hit.body_text()
    );
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

// ---------------------------------------------------------------------------
// Registration
// ---------------------------------------------------------------------------

#[test]
fn register_list_and_delete() {
    let server = Server::start(&[]);
    let url = "http://127.0.0.1:9/hook?x=1";
    let (id, secret) = register(&server, url, "job.done,channel.news");

    let r = server.get("/webhooks");
    assert!(
        !r.text().contains(&secret) && !r.text().contains("secret"),
        "the list shows the secret: {:?}",
        r.text()
    );
    let w = listed(&server, &id).unwrap_or_else(|| panic!("{id} not listed: {:?}", r.text()));
    assert_eq!(str_of(&w, "url"), url);
    let mut events: Vec<&str> = arr(&w, "events")
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    events.sort();
    assert_eq!(events, ["channel.news", "job.done"]);

    // A second one, with the form not percent-encoded, gets another id and
    // another secret.
    let r = register_raw(&server, "url=http://localhost:9/&events=channel.demo");
    assert_eq!(r.status, 201, "{:?}", r.text());
    let j = json(&r);
    let id2 = str_of(&j, "id").to_string();
    assert_ne!(id2, id);
    assert!(is_secret(str_of(&j, "secret")));
    assert_ne!(str_of(&j, "secret"), secret);
    assert_eq!(list(&server).len(), 2);

    // A fresh webhook has no deliveries yet.
    assert!(deliveries(&server, &id).is_empty());

    let r = server.request("DELETE", &format!("/webhooks/{id}"), &[], b"");
    assert_eq!(r.status, 204, "delete: {:?}", r.text());
    assert!(r.body.is_empty());
    assert!(
        listed(&server, &id).is_none(),
        "{id} still listed after DELETE"
    );
    assert!(listed(&server, &id2).is_some());
    // Deleting it again: gone.
    assert_error(
        &server.request("DELETE", &format!("/webhooks/{id}"), &[], b""),
        404,
        "second delete",
    );
    assert_error(
        &server.request("DELETE", "/webhooks/wh:999", &[], b""),
        404,
        "DELETE unknown",
    );
    assert_error(
        &server.get("/webhooks/wh:999/deliveries"),
        404,
        "deliveries of unknown",
    );
}

#[test]
fn register_accepts_every_loopback_form() {
    let server = Server::start(&[]);
    for url in [
        "http://127.0.0.1:9/",
        "http://127.0.0.2:9/",
        "http://127.255.255.254/x",
        "http://localhost:9/",
        "http://[::1]:9/",
        "http://127.0.0.1",
    ] {
        register(&server, url, "job.done");
    }
    assert_eq!(list(&server).len(), 6);
}

#[test]
fn register_refuses_bad_urls_and_events() {
    let server = Server::start(&[]);
    let bad = |form: &str, what: &str| assert_error(&register_raw(&server, form), 400, what);
    for url in [
        "http://10.0.0.1/",
        "http://169.254.169.254/",
        "http://169.254.169.254/latest/meta-data/",
        "http://example.com/",
        "http://192.168.1.1:8080/",
        "http://0.0.0.0:9/",
        "https://127.0.0.1/",
        "ftp://127.0.0.1/",
        "127.0.0.1:9/",
        "",
    ] {
        bad(
            &format!("url={}&events=job.done", enc(url)),
            &format!("url {url:?}"),
        );
    }
    bad("events=job.done", "missing url");
    bad(
        &format!("url={}", enc("http://127.0.0.1:9/")),
        "missing events",
    );
    bad(
        &format!("url={}&events=", enc("http://127.0.0.1:9/")),
        "empty events",
    );
    for ev in [
        "job.started",
        "channel.",
        "channel.a b",
        "message",
        "job.done,nope",
    ] {
        bad(
            &format!("url={}&events={}", enc("http://127.0.0.1:9/"), enc(ev)),
            &format!("events {ev:?}"),
        );
    }
    bad("", "empty body");
    assert!(list(&server).is_empty(), "a refused registration was kept");
}

#[test]
fn webhook_allow_permits_one_host_and_port() {
    let server = Server::start(&["--webhook-allow", "10.9.8.7:9000"]);
    register(&server, "http://10.9.8.7:9000/", "job.done");
    for url in [
        "http://10.9.8.7:9001/",
        "http://10.9.8.7/",
        "http://10.9.8.8:9000/",
    ] {
        assert_error(
            &register_raw(&server, &format!("url={}&events=job.done", enc(url))),
            400,
            url,
        );
    }
    // Loopback stays allowed.
    register(&server, "http://127.0.0.1:9/", "job.done");
}

// ---------------------------------------------------------------------------
// Deliveries
// ---------------------------------------------------------------------------

#[test]
fn job_done_is_delivered_signed_and_promptly() {
    let server = Server::start(&[]);
    let rx = Receiver::start(&[], Reply::Status(200));
    let (id, secret) = register(&server, &rx.url("/hook"), "job.done");

    let sent = Instant::now();
    let r = server.post("/submit?duration_ms=300", b"");
    assert_eq!(r.status, 202, "{:?}", r.text());
    let job = str_of(&json(&r), "jobId").to_string();
    // Long poll: answers the moment the job is done.
    let lp = server.get(&format!("/checkstatus?jobId={job}&wait=5"));
    let done_seen = Instant::now();
    assert_eq!(
        json(&lp).get("done"),
        Some(&JsonValue::Bool(true)),
        "{:?}",
        lp.text()
    );

    let hits = rx.wait_hits(1, Duration::from_secs(3));
    let hit = &hits[0];
    assert_delivery(hit, "job.done", &id, &secret, "/hook");
    assert_obj(
        &hit.json(),
        &[("event", s("job.done")), ("jobId", s(&job))],
        "job.done body",
    );
    assert!(
        hit.at >= sent + Duration::from_millis(280),
        "delivered {:?} after submit, before the job's 300 ms",
        hit.at - sent
    );
    let gap = if hit.at > done_seen {
        hit.at - done_seen
    } else {
        done_seen - hit.at
    };
    assert!(
        gap < Duration::from_millis(500),
        "delivery {gap:?} away from the job's completion"
    );

    // Recorded as one successful, final attempt with that delivery id.
    let a = wait_attempts(&server, &id, 1, Duration::from_secs(2));
    assert_eq!(a.len(), 1, "{a:?}");
    let d = check_attempt(&a[0], "job.done", 1);
    assert_eq!(d, hit.must("X-Pushwire-Delivery"));
    assert_eq!(a[0].get("status"), Some(&n(200)));
    assert_eq!(a[0].get("error"), Some(&JsonValue::Null));
    assert!(is_final(&a[0]), "a 200 attempt is final: {:?}", a[0]);
    // A permanent webhook stays registered after a delivery.
    assert!(listed(&server, &id).is_some());

    // Another job: another delivery with another id.
    let r = server.post("/submit?duration_ms=0", b"");
    let job2 = str_of(&json(&r), "jobId").to_string();
    let hits = rx.wait_hits(2, Duration::from_secs(3));
    assert_eq!(str_of(&hits[1].json(), "jobId"), job2);
    assert_ne!(
        hits[1].must("X-Pushwire-Delivery"),
        hits[0].must("X-Pushwire-Delivery"),
        "two deliveries share an id"
    );
    assert_delivery(&hits[1], "job.done", &id, &secret, "/hook");
}

#[test]
fn job_callback_is_a_one_shot_webhook() {
    let server = Server::start(&[]);
    let rx = Receiver::start(&[], Reply::Status(200));

    let r = server.post(
        &format!("/submit?duration_ms=300&callback={}", rx.url("/hook")),
        b"",
    );
    assert_eq!(r.status, 202, "{:?}", r.text());
    assert_json_type(&r);
    let j = json(&r);
    let job = str_of(&j, "jobId").to_string();
    let wh = str_of(&j, "webhook").to_string();
    let secret = str_of(&j, "secret").to_string();
    assert!(wh.starts_with("wh:"), "webhook {wh:?}");
    assert!(is_secret(&secret), "secret {secret:?}");
    assert_eq!(
        r.header("location"),
        Some(format!("/checkstatus?jobId={job}").as_str())
    );

    // Listed while its delivery is pending.
    assert!(
        listed(&server, &wh).is_some(),
        "{wh} not listed before the job is done: {:?}",
        list(&server)
    );

    // A second job without a callback, done first: not for that webhook.
    let r = server.post("/submit?duration_ms=50", b"");
    assert_eq!(r.status, 202);
    let other = json(&r);
    assert!(other.get("webhook").is_none(), "{other:?}");
    assert!(other.get("secret").is_none(), "{other:?}");
    let other_job = str_of(&other, "jobId").to_string();

    let hits = rx.wait_hits(1, Duration::from_secs(3));
    assert_delivery(&hits[0], "job.done", &wh, &secret, "/hook");
    assert_obj(
        &hits[0].json(),
        &[("event", s("job.done")), ("jobId", s(&job))],
        "callback body",
    );
    std::thread::sleep(Duration::from_millis(400));
    let hits = rx.hits();
    assert_eq!(
        hits.len(),
        1,
        "the one-shot webhook got more than its job (other job {other_job}): {:?}",
        hits.iter().map(Hit::body_text).collect::<Vec<_>>()
    );

    // No longer listed once delivered; its deliveries stay readable.
    assert!(
        wait_for(Duration::from_secs(2), || listed(&server, &wh)
            .is_none()
            .then_some(()))
        .is_some(),
        "{wh} still listed after its delivery succeeded: {:?}",
        list(&server)
    );
    let a = deliveries(&server, &wh);
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!(
        check_attempt(&a[0], "job.done", 1),
        hits[0].must("X-Pushwire-Delivery")
    );
    assert_eq!(a[0].get("status"), Some(&n(200)));
    assert_eq!(a[0].get("error"), Some(&JsonValue::Null));
    assert!(is_final(&a[0]), "{:?}", a[0]);

    // Bad callback URLs.
    for cb in [
        "http://10.0.0.1/",
        "http://169.254.169.254/",
        "https://127.0.0.1/",
        "http://example.com/",
        "not-a-url",
    ] {
        assert_error(
            &server.post(&format!("/submit?duration_ms=0&callback={}", enc(cb)), b""),
            400,
            &format!("callback {cb:?}"),
        );
    }
}

#[test]
fn channel_messages_reach_channel_webhooks_only() {
    let server = Server::start(&[]);
    let rx = Receiver::start(&[], Reply::Status(200));
    let (id, secret) = register(&server, &rx.url("/news-hook"), "channel.news");

    publish(&server, "sports", "not for you");
    assert_eq!(publish(&server, "news", "hi"), 1);
    assert_eq!(publish(&server, "news", "line \"two\"\n"), 2);
    publish(&server, "newsroom", "nor this");

    let hits = rx.wait_hits(2, Duration::from_secs(3));
    let mut hits = hits;
    hits.sort_by_key(|h| num(&h.json(), "id"));
    for h in &hits {
        assert_delivery(h, "message", &id, &secret, "/news-hook");
    }
    assert_obj(
        &hits[0].json(),
        &[
            ("event", s("message")),
            ("channel", s("news")),
            ("id", n(1)),
            ("data", s("hi")),
        ],
        "message body",
    );
    assert_obj(
        &hits[1].json(),
        &[
            ("event", s("message")),
            ("channel", s("news")),
            ("id", n(2)),
            ("data", s("line \"two\"\n")),
        ],
        "message body with escapes",
    );
    assert_ne!(
        hits[0].must("X-Pushwire-Delivery"),
        hits[1].must("X-Pushwire-Delivery")
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        rx.count(),
        2,
        "messages of other channels were delivered: {:?}",
        rx.hits().iter().map(Hit::body_text).collect::<Vec<_>>()
    );
    let a = wait_attempts(&server, &id, 2, Duration::from_secs(2));
    for (i, x) in a.iter().enumerate() {
        check_attempt(x, "message", 1);
        assert_eq!(x.get("status"), Some(&n(200)), "{i}: {x:?}");
        assert!(is_final(x));
    }
}

#[test]
fn failed_answers_are_retried_after_1_then_2_seconds_with_the_same_delivery_id() {
    let server = Server::start(&[]);
    let rx = Receiver::start(
        &[Reply::Status(500), Reply::Status(500)],
        Reply::Status(200),
    );
    let (id, secret) = register(&server, &rx.url("/"), "channel.retry");
    publish(&server, "retry", "again");

    let hits = rx.wait_hits(3, Duration::from_secs(8));
    let delivery = hits[0].must("X-Pushwire-Delivery").to_string();
    for h in &hits {
        assert_delivery(h, "message", &id, &secret, "/");
        assert_eq!(
            h.must("X-Pushwire-Delivery"),
            delivery,
            "a retry changed the delivery id"
        );
        assert_eq!(h.body, hits[0].body, "a retry changed the body");
    }
    let gap1 = hits[1].at - hits[0].at;
    let gap2 = hits[2].at - hits[1].at;
    assert!(
        (0.8..=1.6).contains(&secs(gap1)),
        "first retry {gap1:?} after the first attempt (want ~1 s)"
    );
    assert!(
        (1.7..=2.8).contains(&secs(gap2)),
        "second retry {gap2:?} after the second attempt (want ~2 s)"
    );

    let a = wait_attempts(&server, &id, 3, Duration::from_secs(2));
    assert_eq!(a.len(), 3, "{a:?}");
    for (i, (x, status)) in a.iter().zip([500, 500, 200]).enumerate() {
        assert_eq!(check_attempt(x, "message", i as u64 + 1), delivery);
        assert_eq!(
            x.get("status"),
            Some(&n(status)),
            "attempt {}: {x:?}",
            i + 1
        );
        assert_eq!(is_final(x), i == 2, "final on attempt {}: {x:?}", i + 1);
    }
    // An answer came on every attempt; the contract's example shows
    // `"status":500,"error":null`. What the server puts in `error` for a
    // non-2xx answer is reported, not enforced (null or a sentence).
    for x in &a[..2] {
        match x.get("error") {
            Some(JsonValue::Null) => eprintln!("non-2xx attempt: error is null"),
            Some(JsonValue::Str(e)) => eprintln!("non-2xx attempt: error is {e:?}"),
            other => panic!("error of a 500 attempt is {other:?}"),
        }
    }
    assert_eq!(a[2].get("error"), Some(&JsonValue::Null), "{:?}", a[2]);
    // Done: no fourth attempt.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(rx.count(), 3);
    assert_eq!(deliveries(&server, &id).len(), 3);
}

#[test]
fn a_receiver_that_never_answers_fails_the_attempt_after_10_seconds() {
    let server = Server::start(&[]);
    let rx = Receiver::start(&[], Reply::Hang);
    let (id, secret) = register(&server, &rx.url("/slow"), "channel.slow");
    publish(&server, "slow", "wait for it");
    let hit = rx.wait_hits(1, Duration::from_secs(3)).remove(0);
    assert_delivery(&hit, "message", &id, &secret, "/slow");
    // Nothing recorded while the attempt is under way...
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        deliveries(&server, &id).is_empty(),
        "an attempt was recorded while the receiver was still silent: {:?}",
        deliveries(&server, &id)
    );
    // ...then a failed attempt after ~10 s.
    let a = wait_attempts(&server, &id, 1, Duration::from_secs(12));
    let failed_after = hit.at.elapsed();
    assert!(
        (9.0..=11.5).contains(&secs(failed_after)),
        "the attempt was recorded as failed {failed_after:?} after the request (want ~10 s)"
    );
    assert_eq!(
        check_attempt(&a[0], "message", 1),
        hit.must("X-Pushwire-Delivery")
    );
    assert_no_answer(&a[0]);
    assert!(!is_final(&a[0]), "a first timeout is retried: {:?}", a[0]);
}

#[test]
fn a_dead_receiver_does_not_delay_other_requests() {
    let server = Server::start(&[]);
    let rx = Receiver::start(&[], Reply::Hang);
    let (id, _) = register(&server, &rx.url("/"), "channel.busy,job.done");
    for i in 0..5 {
        publish(&server, "busy", &format!("m{i}"));
    }
    let r = server.post("/submit?duration_ms=0", b"");
    assert_eq!(r.status, 202);
    rx.wait_hits(6, Duration::from_secs(3));
    // Six deliveries hang in the receiver; the server answers at once.
    for (method, path, body) in [
        ("GET", "/webhooks", ""),
        ("GET", "/stats", ""),
        ("POST", "/channels/other", "x"),
        ("GET", "/channels/other/poll?after=0&timeout=0", ""),
        ("POST", "/submit?duration_ms=0", ""),
        ("GET", "/webhook-receiver", ""),
        ("GET", &format!("/webhooks/{id}/deliveries"), ""),
    ] {
        for _ in 0..3 {
            let t = Instant::now();
            let r = server.request(method, path, &[], body.as_bytes());
            let took = t.elapsed();
            assert!(
                r.status < 300,
                "{method} {path}: {} {:?}",
                r.status,
                r.text()
            );
            assert!(
                took < Duration::from_millis(200),
                "{method} {path} took {took:?} while deliveries hang"
            );
        }
    }
}

#[test]
fn connect_errors_are_retried_with_the_same_delivery_id() {
    let server = Server::start(&[]);
    let port = closed_port();
    let (id, _) = register(&server, &format!("http://127.0.0.1:{port}/"), "channel.x");
    publish(&server, "x", "knock");
    let first = wait_attempts(&server, &id, 1, Duration::from_secs(2));
    let t1 = Instant::now();
    let both = wait_attempts(&server, &id, 2, Duration::from_secs(3));
    let gap = t1.elapsed();
    assert!(
        (0.7..=1.6).contains(&secs(gap)),
        "second attempt recorded {gap:?} after the first (want ~1 s)"
    );
    let d1 = check_attempt(&first[0], "message", 1);
    assert_eq!(check_attempt(&both[1], "message", 2), d1);
    for a in &both[..2] {
        assert_no_answer(a);
        assert!(!is_final(a), "{a:?}");
    }
}

#[test]
fn closed_port_exhausts_six_attempts_with_backoff_1_2_4_8_16() {
    let server = Server::start(&[]);
    let port = closed_port();
    let (id, _) = register(
        &server,
        &format!("http://127.0.0.1:{port}/gone"),
        "job.done",
    );
    let r = server.post("/submit?duration_ms=0", b"");
    assert_eq!(r.status, 202);

    // The moment each attempt record first appears, polled every 20 ms.
    let start = Instant::now();
    let mut seen: Vec<Instant> = Vec::new();
    let mut records = Vec::new();
    while seen.len() < 6 && start.elapsed() < Duration::from_secs(40) {
        records = deliveries(&server, &id);
        while seen.len() < records.len() {
            seen.push(Instant::now());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(records.len(), 6, "attempts within 40 s: {records:?}");
    for (i, want) in [1.0, 2.0, 4.0, 8.0, 16.0].into_iter().enumerate() {
        let gap = secs(seen[i + 1] - seen[i]);
        assert!(
            gap >= want - 0.25 && gap <= want + 0.8,
            "attempt {} came {gap:.2} s after attempt {} (want ~{want} s)",
            i + 2,
            i + 1
        );
    }
    let delivery = check_attempt(&records[0], "job.done", 1);
    for (i, a) in records.iter().enumerate() {
        assert_eq!(check_attempt(a, "job.done", i as u64 + 1), delivery);
        assert_no_answer(a);
        assert_eq!(is_final(a), i == 5, "final on attempt {}: {a:?}", i + 1);
    }
    // No seventh attempt.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(deliveries(&server, &id).len(), 6);
    // A permanent webhook stays registered after a failed delivery.
    assert!(listed(&server, &id).is_some());
}

#[test]
fn delete_cancels_pending_retries() {
    let server = Server::start(&[]);
    let rx = Receiver::start(&[], Reply::Status(500));
    let (id, _) = register(&server, &rx.url("/"), "channel.doomed");
    publish(&server, "doomed", "x");
    rx.wait_hits(1, Duration::from_secs(3));
    // The first attempt is over (recorded), its retry pending.
    let a = wait_attempts(&server, &id, 1, Duration::from_secs(2));
    assert_eq!(a[0].get("status"), Some(&n(500)));
    assert!(!is_final(&a[0]));
    let r = server.request("DELETE", &format!("/webhooks/{id}"), &[], b"");
    assert_eq!(r.status, 204, "{:?}", r.text());
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(rx.count(), 1, "a deleted webhook's retry was still sent");
    assert!(listed(&server, &id).is_none());
    // Further events are not sent either.
    publish(&server, "doomed", "y");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(rx.count(), 1, "a deleted webhook still gets events");
}

// ---------------------------------------------------------------------------
// The built-in receiver
// ---------------------------------------------------------------------------

fn received(server: &Server) -> Vec<JsonValue> {
    let r = server.get("/webhook-receiver");
    assert_eq!(r.status, 200, "{:?}", r.text());
    assert_json_type(&r);
    let j = json(&r);
    assert_eq!(j.keys(), ["received"], "{:?}", r.text());
    arr(&j, "received").to_vec()
}

fn sink_post(server: &Server, headers: &[(&str, &str)], body: &str) {
    let r = server.request("POST", "/webhook-receiver", headers, body.as_bytes());
    assert_eq!(r.status, 200, "{:?}", r.text());
    assert_json_type(&r);
    assert_obj(&json(&r), &[("ok", JsonValue::Bool(true))], "sink answer");
}

#[test]
fn built_in_receiver_records_and_verifies() {
    let server = Server::start(&[]);
    let sink = format!("http://127.0.0.1:{}/webhook-receiver", server.addr.port());
    let (id, secret) = register(&server, &sink, "channel.demo");
    assert_eq!(publish(&server, "demo", "hello sink"), 1);

    let got = wait_for(Duration::from_secs(3), || {
        let r = received(&server);
        (!r.is_empty()).then_some(r)
    })
    .expect("the server's own delivery reached /webhook-receiver");
    let rec = &got[0];
    assert!(is_rfc3339(str_of(rec, "at")), "{rec:?}");
    assert_eq!(str_of(rec, "event"), "message");
    assert_eq!(rec.get("verified"), Some(&JsonValue::Bool(true)), "{rec:?}");
    let body = str_of(rec, "body");
    let b = parse_json(body).expect("recorded body is JSON");
    assert_obj(
        &b,
        &[
            ("event", s("message")),
            ("channel", s("demo")),
            ("id", n(1)),
            ("data", s("hello sink")),
        ],
        "recorded body",
    );
    let a = wait_attempts(&server, &id, 1, Duration::from_secs(2));
    assert_eq!(str_of(rec, "delivery"), check_attempt(&a[0], "message", 1));
    assert_eq!(a[0].get("status"), Some(&n(200)));

    // A delivery signed here with the secret's text verifies.
    let mine = r#"{"event":"message","channel":"demo","id":99,"data":"forged?"}"#;
    let good = expected_signature(&secret, mine.as_bytes());
    sink_post(
        &server,
        &[
            ("Content-Type", "application/json"),
            ("X-Pushwire-Event", "message"),
            ("X-Pushwire-Webhook", &id),
            ("X-Pushwire-Delivery", "mine-1"),
            ("X-Pushwire-Signature", &good),
        ],
        mine,
    );
    // The same with a wrong signature, and with none: false.
    let wrong = expected_signature("0123456789abcdef0123456789abcdef", mine.as_bytes());
    sink_post(
        &server,
        &[
            ("X-Pushwire-Webhook", &id),
            ("X-Pushwire-Delivery", "mine-2"),
            ("X-Pushwire-Signature", &wrong),
        ],
        mine,
    );
    sink_post(
        &server,
        &[
            ("X-Pushwire-Webhook", &id),
            ("X-Pushwire-Delivery", "mine-3"),
        ],
        mine,
    );
    // An unknown webhook and no webhook header: null.
    sink_post(
        &server,
        &[
            ("X-Pushwire-Webhook", "wh:999"),
            ("X-Pushwire-Delivery", "mine-4"),
            ("X-Pushwire-Signature", &good),
        ],
        mine,
    );
    sink_post(&server, &[("X-Pushwire-Delivery", "mine-5")], "plain");

    let got = received(&server);
    assert_eq!(got.len(), 6, "{got:?}");
    let want = [
        JsonValue::Bool(true),
        JsonValue::Bool(false),
        JsonValue::Bool(false),
        JsonValue::Null,
        JsonValue::Null,
    ];
    for (i, (rec, v)) in got[1..].iter().zip(want).enumerate() {
        assert_eq!(
            str_of(rec, "delivery"),
            format!("mine-{}", i + 1),
            "order: {rec:?}"
        );
        assert_eq!(
            rec.get("verified"),
            Some(&v),
            "verified of mine-{}: {rec:?}",
            i + 1
        );
        assert!(is_rfc3339(str_of(rec, "at")), "{rec:?}");
    }
    assert_eq!(str_of(&got[1], "event"), "message");
    assert_eq!(str_of(&got[1], "body"), mine);
    assert_eq!(str_of(&got[5], "body"), "plain");
}

#[test]
fn built_in_receiver_keeps_the_last_100() {
    let server = Server::start(&[]);
    for i in 0..105 {
        sink_post(&server, &[], &format!("n={i}"));
    }
    let got = received(&server);
    assert_eq!(got.len(), 100, "records kept");
    let bodies: Vec<&str> = got.iter().map(|r| str_of(r, "body")).collect();
    let want: Vec<String> = (5..105).map(|i| format!("n={i}")).collect();
    assert_eq!(bodies, want, "the oldest five dropped, oldest first");
    for r in &got {
        assert_eq!(r.get("verified"), Some(&JsonValue::Null));
    }
}

/// Issue 12's bug, pinned: a receiver that answers `204` with bytes after
/// its head (a 204 has no body, RFC 9110 section 15.3.5) used to have those
/// bytes handed to the next delivery's connection, which got the same slab
/// slot within the same read, and that delivery was then recorded with the
/// stray bytes' status. Connections are now named by handles that cannot be
/// mistaken for a later connection in the same slot.
#[test]
fn bytes_past_a_response_never_reach_the_next_delivery_in_the_same_slot() {
    let server = Server::start(&["--max-deliveries", "1"]);
    // A receiver whose answer is a 204 followed, in the same write, by what
    // looks like a second response.
    let rude = TcpListener::bind("127.0.0.1:0").expect("bind");
    let rude_port = rude.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in rude.incoming() {
            let Ok(mut s) = stream else { continue };
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                // The request body is small and follows at once.
                std::thread::sleep(Duration::from_millis(50));
                let _ = s.write_all(
                    b"HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 500 Stray\r\nContent-Length: 0\r\n\r\n",
                );
                std::thread::sleep(Duration::from_millis(500));
            });
        }
    });
    let polite = Receiver::start(&[], Reply::Status(200));
    let rude_url = format!("http://127.0.0.1:{rude_port}/rude");
    let (rude_id, _) = register(&server, &rude_url, "channel.x");
    let (polite_id, _) = register(&server, &polite.url("/polite"), "channel.x");
    for i in 0..5 {
        publish(&server, "x", &format!("m{i}"));
    }
    let a = wait_attempts(&server, &polite_id, 5, Duration::from_secs(10));
    for x in &a {
        assert_eq!(
            x.get("status"),
            Some(&n(200)),
            "the polite receiver's delivery got another connection's bytes: {a:?}"
        );
    }
    let r = wait_attempts(&server, &rude_id, 5, Duration::from_secs(10));
    for x in &r {
        assert_eq!(x.get("status"), Some(&n(204)), "{r:?}");
    }
}
