//! docs/api.md section 8, "Access control", from the outside, over every
//! transport.
//!
//! Tokens are made independently of the server's code: by Python's
//! standard library (`hmac`, `hashlib`, `base64`, `json`), following RFC
//! 7515 section 3.1 (compact serialization) and RFC 7518 section 3.2
//! (HS256) by hand; only a few come from `pushwire token`, whose own
//! output is checked against that independent verifier. The WebSocket
//! client is `tungstenite`; the SSE reader is the one in `tests/common`.

mod common;

use common::json::{assert_error, json, num};
use common::sse::Sse;
use common::{JsonValue, Response, Server};
use std::io::{BufRead, BufReader, Read};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::Message;

const SECRET: &str = "0123456789abcdef0123456789abcdef-test";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A compact JWS signed by Python's hmac over `header.payload`, the
/// header and claims given as JSON text (so a test can make any `alg`).
fn py_token(header: &str, claims: &str, secret: &str) -> String {
    let script = r#"
import base64, hashlib, hmac, sys
def b64(b): return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
header, claims, secret, alg = sys.argv[1:5]
signing_input = b64(header.encode()) + "." + b64(claims.encode())
digest = {"HS256": hashlib.sha256, "HS512": hashlib.sha512}.get(alg)
sig = b64(hmac.new(secret.encode(), signing_input.encode(), digest).digest()) if digest else ""
print(signing_input + "." + sig)
"#;
    let alg = if header.contains("HS512") {
        "HS512"
    } else if header.contains("none") {
        "none"
    } else {
        "HS256"
    };
    let out = Command::new("python3")
        .args(["-c", script, header, claims, secret, alg])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Verifies a token with Python's hmac: true when its HS256 signature is
/// right for `secret`.
fn py_verifies(token: &str, secret: &str) -> bool {
    let script = r#"
import base64, hashlib, hmac, sys
token, secret = sys.argv[1:3]
h, p, s = token.split(".")
want = base64.urlsafe_b64encode(hmac.new(secret.encode(), (h + "." + p).encode(), hashlib.sha256).digest()).rstrip(b"=").decode()
print("yes" if hmac.compare_digest(want, s) else "no")
"#;
    let out = Command::new("python3")
        .args(["-c", script, token, secret])
        .output()
        .expect("python3");
    String::from_utf8_lossy(&out.stdout).trim() == "yes"
}

const HS256: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

/// A token with these channel patterns, expiring in `ttl` seconds.
fn token(subscribe: &[&str], publish: &[&str], admin: bool, ttl: u64) -> String {
    let list = |v: &[&str]| {
        let items: Vec<String> = v.iter().map(|p| format!("\"{p}\"")).collect();
        format!("[{}]", items.join(","))
    };
    let claims = format!(
        r#"{{"sub":"tester","exp":{},"pushwire":{{"subscribe":{},"publish":{},"admin":{admin}}}}}"#,
        now() + ttl,
        list(subscribe),
        list(publish)
    );
    py_token(HS256, &claims, SECRET)
}

fn start() -> Server {
    Server::start(&["--token-secret", SECRET])
}

fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

fn get_with(server: &Server, path: &str, token: &str) -> Response {
    server.request("GET", path, &[("Authorization", &bearer(token))], b"")
}

fn publish_with(server: &Server, ch: &str, data: &str, token: &str) -> Response {
    server.request(
        "POST",
        &format!("/channels/{ch}"),
        &[("Authorization", &bearer(token))],
        data.as_bytes(),
    )
}

fn assert_challenge(r: &Response, status: u16, error: Option<&str>) {
    assert_eq!(r.status, status, "{:?}", r.text());
    let want = match error {
        None => "Bearer realm=\"pushwire\"".to_string(),
        Some(e) => format!("Bearer realm=\"pushwire\", error=\"{e}\""),
    };
    assert_eq!(
        r.header("WWW-Authenticate"),
        Some(want.as_str()),
        "{:?}",
        r.headers
    );
    assert_error(r, status, "access control");
}

type Ws = tungstenite::WebSocket<TcpStream>;

fn ws(server: &Server, path: &str) -> Result<Ws, tungstenite::Error> {
    let s = TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    match tungstenite::client::client(server.ws_url(path), s) {
        Ok((ws, _)) => Ok(ws),
        Err(tungstenite::HandshakeError::Failure(e)) => Err(e),
        Err(tungstenite::HandshakeError::Interrupted(_)) => panic!("a blocking handshake"),
    }
}

fn next_text(ws: &mut Ws) -> String {
    loop {
        match ws.read().expect("a message") {
            Message::Text(t) => return t.to_string(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected text, got {other:?}"),
        }
    }
}

/// Reads until the server's close frame; returns its code and reason.
fn close_frame(ws: &mut Ws) -> (CloseCode, String) {
    loop {
        match ws.read() {
            Ok(Message::Close(Some(f))) => return (f.code, f.reason.to_string()),
            Ok(Message::Close(None)) => panic!("a close without a code"),
            Ok(_) => continue,
            Err(e) => panic!("no close frame: {e}"),
        }
    }
}

#[test]
fn the_secret_must_be_at_least_32_bytes() {
    let (status, err) = common::run_to_exit(&["--token-secret", "short"], Duration::from_secs(10));
    assert_eq!(status.and_then(|s| s.code()), Some(2));
    assert!(err.contains("at least 32 bytes"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_pushwire"))
        .args(["--addr", "127.0.0.1:0"])
        .env("PUSHWIRE_TOKEN_SECRET", "short")
        .stdout(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 32 bytes"));
}

#[test]
fn without_a_token_channels_webhooks_and_stats_answer_401_and_the_demos_stay_open() {
    let server = start();
    for (method, path) in [
        ("GET", "/channels/news/poll?timeout=0"),
        ("GET", "/channels/news/events"),
        ("GET", "/channels/news/ws"),
        ("POST", "/channels/news"),
        ("GET", "/webhooks"),
        ("POST", "/webhooks"),
        ("GET", "/webhooks/wh:1/deliveries"),
        ("DELETE", "/webhooks/wh:1"),
        ("GET", "/stats"),
        ("GET", "/metrics"),
    ] {
        let r = server.request(method, path, &[], b"x");
        assert_challenge(&r, 401, None);
    }
    // A WebSocket upgrade is checked before the 101.
    match ws(&server, "/channels/news/ws") {
        Err(tungstenite::Error::Http(resp)) => assert_eq!(resp.status().as_u16(), 401),
        other => panic!(
            "expected a 401 before the upgrade, got {:?}",
            other.map(|_| ())
        ),
    }
    // The demos and the preflight need nothing.
    assert_eq!(server.get("/").status, 200);
    assert_eq!(server.post("/submit?duration_ms=0", b"").status, 202);
    assert_eq!(server.get("/webhook-receiver").status, 200);
    let r = server.request(
        "OPTIONS",
        "/channels/news",
        &[
            ("Origin", "http://a.example"),
            ("Access-Control-Request-Method", "POST"),
        ],
        b"",
    );
    assert_eq!(r.status, 204);
    assert!(r
        .header("Access-Control-Allow-Headers")
        .is_some_and(|h| h.contains("Authorization")));
    let mut echo = ws(&server, "/echo").expect("/echo is open");
    echo.send(Message::text("hi")).unwrap();
    assert_eq!(next_text(&mut echo), "hi");
}

#[test]
fn scopes_decide_what_a_valid_token_may_do() {
    let server = start();
    let reader = token(&["news", "chat.*"], &[], false, 600);
    let writer = token(&[], &["news"], false, 600);
    let admin = token(&[], &[], true, 600);

    // Subscribe patterns: an exact name and a prefix.
    assert_eq!(
        get_with(&server, "/channels/news/poll?timeout=0", &reader).status,
        200
    );
    assert_eq!(
        get_with(&server, "/channels/chat.room/poll?timeout=0", &reader).status,
        200
    );
    for other in ["sports", "chatroom", "newsroom"] {
        let r = get_with(
            &server,
            &format!("/channels/{other}/poll?timeout=0"),
            &reader,
        );
        assert_challenge(&r, 403, Some("insufficient_scope"));
    }
    // Reading is not publishing, and the other way round.
    assert_challenge(
        &publish_with(&server, "news", "x", &reader),
        403,
        Some("insufficient_scope"),
    );
    let r = publish_with(&server, "news", "hello", &writer);
    assert_eq!(r.status, 201, "{:?}", r.text());
    assert_challenge(
        &get_with(&server, "/channels/news/poll?timeout=0", &writer),
        403,
        Some("insufficient_scope"),
    );
    // Admin only for the admin endpoints.
    assert_challenge(
        &get_with(&server, "/stats", &reader),
        403,
        Some("insufficient_scope"),
    );
    assert_challenge(
        &get_with(&server, "/metrics", &reader),
        403,
        Some("insufficient_scope"),
    );
    assert_eq!(get_with(&server, "/metrics", &admin).status, 200);
    let r = get_with(&server, "/stats", &admin);
    assert_eq!(r.status, 200);
    assert_eq!(num(&json(&r), "requests") > 0, true);
    assert_eq!(get_with(&server, "/webhooks", &admin).status, 200);

    // The query parameter works where headers cannot be set, and the header
    // wins when both are present.
    let r = server.get(&format!(
        "/channels/news/poll?after=0&timeout=0&access_token={reader}"
    ));
    assert_eq!(r.status, 200);
    let msgs = json(&r);
    assert_eq!(
        msgs.get("messages")
            .map(|m| format!("{m:?}"))
            .unwrap_or_default()
            .contains("hello"),
        true,
        "{msgs:?}"
    );
    let r = server.request(
        "GET",
        &format!("/channels/news/poll?timeout=0&access_token={reader}"),
        &[("Authorization", &bearer(&writer))],
        b"",
    );
    assert_challenge(&r, 403, Some("insufficient_scope"));
}

#[test]
fn refused_algorithms_bad_signatures_and_times_outside_nbf_exp_answer_401() {
    let server = start();
    let claims = format!(
        r#"{{"exp":{},"pushwire":{{"subscribe":["*"]}}}}"#,
        now() + 600
    );
    let good = py_token(HS256, &claims, SECRET);
    assert_eq!(
        get_with(&server, "/channels/a/poll?timeout=0", &good).status,
        200
    );
    let bad = [
        // alg none, no signature: the classic.
        py_token(r#"{"alg":"none","typ":"JWT"}"#, &claims, SECRET),
        // Re-signed with the same key under another algorithm.
        py_token(r#"{"alg":"HS512","typ":"JWT"}"#, &claims, SECRET),
        // No alg at all.
        py_token(r#"{"typ":"JWT"}"#, &claims, SECRET),
        // Another key.
        py_token(HS256, &claims, "another secret of at least 32 bytes!!"),
        // Expired, and not yet valid.
        py_token(
            HS256,
            &format!(
                r#"{{"exp":{},"pushwire":{{"subscribe":["*"]}}}}"#,
                now() - 5
            ),
            SECRET,
        ),
        py_token(
            HS256,
            &format!(
                r#"{{"nbf":{},"pushwire":{{"subscribe":["*"]}}}}"#,
                now() + 600
            ),
            SECRET,
        ),
        // Not a token.
        "not.a.token".to_string(),
    ];
    for t in &bad {
        let r = get_with(&server, "/channels/a/poll?timeout=0", t);
        assert_challenge(&r, 401, Some("invalid_token"));
        let r = server.get(&format!("/channels/a/poll?timeout=0&access_token={t}"));
        assert_challenge(&r, 401, Some("invalid_token"));
    }
    // A tampered payload with the old signature.
    let parts: Vec<&str> = good.split('.').collect();
    let other = py_token(
        HS256,
        &format!(
            r#"{{"exp":{},"pushwire":{{"subscribe":["*"],"admin":true}}}}"#,
            now() + 600
        ),
        SECRET,
    );
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        other.split('.').nth(1).unwrap(),
        parts[2]
    );
    assert_challenge(
        &get_with(&server, "/stats", &forged),
        401,
        Some("invalid_token"),
    );
}

#[test]
fn pushwire_token_prints_what_an_independent_verifier_accepts() {
    let out = Command::new(env!("CARGO_BIN_EXE_pushwire"))
        .args([
            "token",
            "--sub",
            "ops",
            "--subscribe",
            "news,chat.*",
            "--admin",
            "--ttl",
            "60",
        ])
        .env("PUSHWIRE_TOKEN_SECRET", SECRET)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(py_verifies(&t, SECRET), "{t}");
    let server = start();
    assert_eq!(get_with(&server, "/stats", &t).status, 200);
    assert_eq!(
        get_with(&server, "/channels/chat.x/poll?timeout=0", &t).status,
        200
    );
    // Without a secret it says why and fails.
    let out = Command::new(env!("CARGO_BIN_EXE_pushwire"))
        .args(["token", "--subscribe", "news"])
        .env_remove("PUSHWIRE_TOKEN_SECRET")
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("secret"));
}

#[test]
fn a_websocket_subscriber_without_the_publish_right_is_closed_1008_when_it_publishes() {
    let server = start();
    let reader = token(&["room"], &[], false, 600);
    let both = token(&["room"], &["room"], false, 600);
    let mut ro = ws(&server, &format!("/channels/room/ws?access_token={reader}")).unwrap();
    let mut rw = ws(&server, &format!("/channels/room/ws?access_token={both}")).unwrap();
    rw.send(Message::text("from rw")).unwrap();
    assert!(next_text(&mut rw).contains("from rw"));
    assert!(next_text(&mut ro).contains("from rw"));
    ro.send(Message::text("from ro")).unwrap();
    let (code, _) = close_frame(&mut ro);
    assert_eq!(code, CloseCode::Policy);
    // Nothing was published.
    let r = server.get(&format!(
        "/channels/room/poll?after=0&timeout=0&access_token={reader}"
    ));
    assert_eq!(num(&json(&r), "last"), 1, "{:?}", r.text());
}

#[test]
fn streams_end_at_their_tokens_exp_and_resume_with_a_fresh_token_losing_nothing() {
    let server = start();
    let writer = token(&[], &["feed"], false, 600);
    // Tokens that expire in 2 s (exp is a whole second).
    let exp = now() + 2;
    let short = token(&["feed"], &[], false, 2);
    let mut sse = Sse::open_ok(
        &server,
        &format!("/channels/feed/events?access_token={short}"),
        &[],
    );
    let mut sock = ws(&server, &format!("/channels/feed/ws?access_token={short}")).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    for i in 1..=3 {
        assert_eq!(
            publish_with(&server, "feed", &format!("m{i}"), &writer).status,
            201
        );
    }
    assert_eq!(
        sse.messages(3),
        vec![(1, "m1".into()), (2, "m2".into()), (3, "m3".into())]
    );
    for i in 1..=3 {
        assert!(next_text(&mut sock).contains(&format!("\"m{i}\"")));
    }
    // The WebSocket is closed 1008 "token expired" at exp.
    let (code, reason) = close_frame(&mut sock);
    assert_eq!(
        (code, reason.as_str()),
        (CloseCode::Policy, "token expired")
    );
    let at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        at >= exp as f64 - 0.05 && at < exp as f64 + 1.5,
        "closed at {at}, the token's exp is {exp}"
    );
    // The event stream ends.
    let deadline = Instant::now() + Duration::from_secs(4);
    while !sse.closed && Instant::now() < deadline {
        let _ = sse.try_event(Duration::from_millis(200));
    }
    assert!(sse.closed, "the event stream outlived its token");
    // Published while both were away.
    for i in 4..=5 {
        assert_eq!(
            publish_with(&server, "feed", &format!("m{i}"), &writer).status,
            201
        );
    }
    // An expired token cannot reconnect; a fresh one resumes from the last id.
    let r = server.get(&format!(
        "/channels/feed/poll?timeout=0&access_token={short}"
    ));
    assert_challenge(&r, 401, Some("invalid_token"));
    let fresh = token(&["feed"], &[], false, 600);
    let mut sse = Sse::open_ok(
        &server,
        &format!("/channels/feed/events?access_token={fresh}"),
        &[("Last-Event-ID", "3")],
    );
    assert_eq!(sse.messages(2), vec![(4, "m4".into()), (5, "m5".into())]);
    let mut sock = ws(
        &server,
        &format!("/channels/feed/ws?after=3&access_token={fresh}"),
    )
    .unwrap();
    assert!(next_text(&mut sock).contains("\"m4\""));
    assert!(next_text(&mut sock).contains("\"m5\""));
}

#[test]
fn tokens_never_appear_in_the_trace() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pushwire"))
        .args(["--addr", "127.0.0.1:0", "--trace", "--token-secret", SECRET])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap()
        .to_string();
    let server_addr: std::net::SocketAddr = addr.parse().unwrap();
    let t = token(&["news"], &["news"], false, 600);
    let send = |req: String| {
        let mut s = TcpStream::connect(server_addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        std::io::Write::write_all(&mut s, req.as_bytes()).unwrap();
        let _ = common::read_response(&mut s, false);
    };
    send(format!(
        "GET /channels/news/poll?timeout=0&access_token={t} HTTP/1.1\r\nHost: x\r\n\r\n"
    ));
    send(format!(
        "POST /channels/news HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {t}\r\nContent-Length: 2\r\n\r\nhi"
    ));
    send(
        "GET /channels/news/poll?timeout=0&access_token=not.valid.x HTTP/1.1\r\nHost: x\r\n\r\n"
            .into(),
    );
    std::thread::sleep(Duration::from_millis(300));
    let _ = child.kill();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let _ = child.wait();
    assert!(err.contains("access_token=…"), "{err}");
    assert!(err.contains("Authorization: Bearer …"), "{err}");
    let signature = t.rsplit('.').next().unwrap();
    assert!(
        !err.contains(signature),
        "a token's signature is in the trace:\n{err}"
    );
    assert!(!err.contains(&t[..20]), "a token is in the trace:\n{err}");
    assert!(!err.contains("not.valid.x"), "{err}");
}

#[test]
fn without_a_secret_everything_stays_open() {
    let server = Server::start(&[]);
    assert_eq!(server.post("/channels/news", b"hi").status, 201);
    assert_eq!(
        server.get("/channels/news/poll?after=0&timeout=0").status,
        200
    );
    assert_eq!(server.get("/stats").status, 200);
    let _ = JsonValue::Null;
}

/// A keep-alive connection verifies its token once and keeps it (a poller
/// sends the same token with every request); what it keeps must never
/// stand in for other bytes, and its time still runs.
#[test]
fn a_kept_token_is_checked_again_for_other_bytes_and_for_its_time() {
    let server = start();
    let exp = now() + 2;
    let short = token(&["kept"], &[], false, 2);
    let mut s = server.connect();
    let ask = |s: &mut TcpStream, token: &str| -> u16 {
        let req = format!(
            "GET /channels/kept/poll?timeout=0 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n"
        );
        std::io::Write::write_all(s, req.as_bytes()).unwrap();
        common::read_response(s, false).expect("an answer").status
    };
    assert_eq!(ask(&mut s, &short), 200);
    assert_eq!(
        ask(&mut s, &short),
        200,
        "the same token again, on the same connection"
    );
    // One byte of the signature changed: refused, although the connection
    // verified a token with all the other bytes.
    let mut forged = short.clone().into_bytes();
    let last = forged.len() - 1;
    forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    assert_eq!(ask(&mut s, &forged), 401);
    assert_eq!(ask(&mut s, &short), 200);
    // Past its exp, the kept token is refused like any other.
    while now() < exp {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(ask(&mut s, &short), 401);
}
