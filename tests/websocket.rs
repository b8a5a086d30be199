//! WebSocket integration tests (RFC 6455) against the real `pushwire`
//! binary, written against docs/api.md ("HTTP, errors and limits", section 3
//! "The seeds' own demos", section 5 "Observability").
//!
//! Two independent clients are used, neither sharing code with the server:
//! - `tungstenite` (a conforming client) for the happy paths;
//! - a hand-written raw client below (`Raw`, `frame`, ...) over plain
//!   `std::net::TcpStream` for handshake details and protocol violations that
//!   a conforming client refuses to send.

mod common;

use common::ws::{
    close_payload, deflate_message, frame, inflate_message, json_text, raw_frame, MASK, OP_BINARY,
    OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, RFC_ACCEPT, RFC_KEY,
};
use common::{find, wait_for, Server};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use tungstenite::{Message, WebSocket};

// ---------------------------------------------------------------------------
// Raw client: frames built and parsed by hand.
// ---------------------------------------------------------------------------

/// The same frame without the mask bit (a protocol error from a client).
fn unmasked_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126);
    let mut f = vec![if fin { 0x80 } else { 0 } | opcode, payload.len() as u8];
    f.extend_from_slice(payload);
    f
}

/// A frame as the server sent it.
#[derive(Debug)]
struct Frame {
    fin: bool,
    rsv: u8,
    opcode: u8,
    payload: Vec<u8>,
}

impl Frame {
    /// The close code of a close frame (`None` for an empty close).
    fn close_code(&self) -> Option<u16> {
        assert_eq!(self.opcode, OP_CLOSE, "not a close frame: {self:?}");
        assert_ne!(self.payload.len(), 1, "server sent a 1-byte close payload");
        if self.payload.len() >= 2 {
            assert!(
                std::str::from_utf8(&self.payload[2..]).is_ok(),
                "server close reason is not UTF-8: {:?}",
                self.payload
            );
            Some(u16::from_be_bytes([self.payload[0], self.payload[1]]))
        } else {
            None
        }
    }
}

/// The head of an HTTP response, read byte-exactly so that WebSocket bytes
/// that follow the head stay available.
#[derive(Debug)]
struct Head {
    status_line: String,
    status: u16,
    headers: Vec<(String, String)>,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    /// Whether a comma-separated header contains `token` (case-insensitive).
    fn has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }
}

/// Reads a response head; returns it and any bytes after it.
fn read_head(s: &mut TcpStream) -> Option<(Head, Vec<u8>)> {
    let mut buf = Vec::new();
    let end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 4096];
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let text = String::from_utf8(buf[..end].to_vec()).expect("ASCII head");
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap().to_string();
    let status = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let headers = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (k, v) = l.split_once(':').expect("header colon");
            (k.to_string(), v.trim().to_string())
        })
        .collect();
    Some((
        Head {
            status_line,
            status,
            headers,
        },
        buf[end..].to_vec(),
    ))
}

/// An upgrade request for `path` with the usual headers; `headers` replaces
/// (by name) or adds headers, a value of `None` removes the header.
fn upgrade_request(
    server: &Server,
    method: &str,
    path: &str,
    headers: &[(&str, Option<&str>)],
) -> String {
    let host = server.addr.to_string();
    let mut all: Vec<(String, String)> = vec![
        ("Host".into(), host),
        ("Upgrade".into(), "websocket".into()),
        ("Connection".into(), "Upgrade".into()),
        ("Sec-WebSocket-Key".into(), RFC_KEY.into()),
        ("Sec-WebSocket-Version".into(), "13".into()),
    ];
    for (k, v) in headers {
        all.retain(|(n, _)| !n.eq_ignore_ascii_case(k));
        if let Some(v) = v {
            all.push((k.to_string(), v.to_string()));
        }
    }
    let mut req = format!("{method} {path} HTTP/1.1\r\n");
    for (k, v) in all {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if method == "POST" {
        req.push_str("Content-Length: 0\r\n");
    }
    req.push_str("\r\n");
    req
}

/// Sends an upgrade request on a fresh connection; returns the answer head
/// and the connection (for a 101: positioned at the first frame).
fn upgrade(
    server: &Server,
    method: &str,
    path: &str,
    headers: &[(&str, Option<&str>)],
) -> (Head, Raw) {
    let mut s = server.connect();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(upgrade_request(server, method, path, headers).as_bytes())
        .unwrap();
    let (head, rest) = read_head(&mut s).expect("an answer to the upgrade request");
    // RFC 7692: RSV1 may mark the server's compressed messages only when
    // the 101 accepted the extension.
    let deflate = head
        .header("sec-websocket-extensions")
        .is_some_and(|v| v.starts_with("permessage-deflate"));
    (
        head,
        Raw {
            s,
            buf: rest,
            deflate,
        },
    )
}

/// A raw WebSocket connection.
struct Raw {
    s: TcpStream,
    buf: Vec<u8>,
    /// The 101 accepted `permessage-deflate`.
    deflate: bool,
}

impl Raw {
    /// Opens a WebSocket on `path`, asserting the 101.
    fn open(server: &Server, path: &str) -> Raw {
        let (head, raw) = upgrade(server, "GET", path, &[]);
        assert_eq!(head.status, 101, "upgrade on {path}: {head:?}");
        raw
    }

    fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).expect("write to server");
    }

    /// Like `send`, but the peer may already have closed.
    fn try_send(&mut self, bytes: &[u8]) {
        let _ = self.s.write_all(bytes);
    }

    /// Reads until `buf` holds `n` bytes. `false` on EOF or reset; panics on
    /// the read timeout.
    fn fill(&mut self, n: usize) -> bool {
        while self.buf.len() < n {
            let mut chunk = vec![0u8; 65536];
            match self.s.read(&mut chunk) {
                Ok(0) => return false,
                Ok(k) => self.buf.extend_from_slice(&chunk[..k]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    panic!(
                        "timed out waiting for data from the server (have {} bytes)",
                        self.buf.len()
                    )
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return false, // reset / aborted
            }
        }
        true
    }

    /// The next frame, checked for what RFC 6455 requires of a server
    /// frame (no mask, minimal length encoding, RSV clear). `None` when the
    /// connection ended.
    fn next(&mut self) -> Option<Frame> {
        if !self.fill(2) {
            assert!(
                self.buf.is_empty(),
                "connection ended inside a frame header"
            );
            return None;
        }
        let (b0, b1) = (self.buf[0], self.buf[1]);
        assert_eq!(b1 & 0x80, 0, "server frame is masked (RFC 6455 5.1)");
        let mut hdr = 2;
        let len = match b1 & 0x7f {
            126 => {
                assert!(self.fill(4), "connection ended inside a frame header");
                let l = u16::from_be_bytes([self.buf[2], self.buf[3]]) as usize;
                assert!(l >= 126, "non-minimal 16-bit length {l}");
                hdr = 4;
                l
            }
            127 => {
                assert!(self.fill(10), "connection ended inside a frame header");
                let l = u64::from_be_bytes(self.buf[2..10].try_into().unwrap());
                assert!(l >> 63 == 0, "64-bit length with the top bit set");
                assert!(l > 0xFFFF, "non-minimal 64-bit length {l}");
                hdr = 10;
                l as usize
            }
            l => l as usize,
        };
        assert!(
            self.fill(hdr + len),
            "connection ended inside a frame payload"
        );
        let f = Frame {
            fin: b0 & 0x80 != 0,
            rsv: (b0 >> 4) & 7,
            opcode: b0 & 0x0f,
            payload: self.buf[hdr..hdr + len].to_vec(),
        };
        self.buf.drain(..hdr + len);
        // RFC 7692 section 6: RSV1 only with the extension, and only on the
        // first frame of a data message (which is all the server sends:
        // it never fragments).
        let compressed_data =
            self.deflate && f.rsv == 0b100 && matches!(f.opcode, OP_TEXT | OP_BINARY);
        assert!(
            f.rsv == 0 || compressed_data,
            "server frame with RSV bits: {f:?}"
        );
        if f.opcode >= 8 {
            assert!(
                f.fin && f.payload.len() <= 125,
                "bad server control frame {f:?}"
            );
        }
        Some(f)
    }

    fn expect_frame(&mut self) -> Frame {
        self.next().expect("a frame, but the connection ended")
    }

    /// Reads one complete data message (reassembling fragments, skipping
    /// server pings): (opcode, payload).
    fn read_message(&mut self) -> (u8, Vec<u8>) {
        let (op, data, _) = self.read_message_deflate();
        (op, data)
    }

    /// [`Self::read_message`], inflating a compressed message (RSV1 on its
    /// first frame, RFC 7692 section 7.2.2); the third value is its
    /// compressed size, `None` when it came uncompressed.
    fn read_message_deflate(&mut self) -> (u8, Vec<u8>, Option<usize>) {
        let mut op = None;
        let mut data = Vec::new();
        let mut compressed = false;
        loop {
            let f = self.expect_frame();
            match f.opcode {
                OP_PING | OP_PONG => continue,
                OP_CLOSE => panic!("expected a message, got close {:?}", f.close_code()),
                OP_CONT => assert!(op.is_some(), "server sent a continuation without a start"),
                o => {
                    assert!(
                        op.is_none(),
                        "server interleaved a new message into a fragmented one"
                    );
                    op = Some(o);
                    compressed = f.rsv == 0b100;
                }
            }
            data.extend_from_slice(&f.payload);
            if f.fin {
                if compressed {
                    let n = data.len();
                    return (op.unwrap(), inflate_message(&data), Some(n));
                }
                return (op.unwrap(), data, None);
            }
        }
    }

    /// Sends a text message and asserts it comes back.
    fn assert_echo(&mut self, text: &str) {
        self.send(&frame(true, OP_TEXT, text.as_bytes()));
        let (op, data) = self.read_message();
        assert_eq!(op, OP_TEXT);
        assert_eq!(String::from_utf8(data).unwrap(), text);
    }

    /// Reads until the server's close frame (skipping pings and pongs,
    /// failing on data); returns its code.
    fn read_close(&mut self) -> Option<u16> {
        loop {
            match self.next() {
                None => panic!("connection ended without a close frame"),
                Some(f) if f.opcode == OP_PING || f.opcode == OP_PONG => continue,
                Some(f) if f.opcode == OP_CLOSE => return f.close_code(),
                Some(f) => panic!("expected a close frame, got {f:?}"),
            }
        }
    }

    /// Asserts that the connection ends (EOF or reset) within a few seconds.
    fn expect_tcp_end(&mut self) {
        self.s
            .set_read_timeout(Some(Duration::from_secs(3)))
            .unwrap();
        loop {
            let mut chunk = [0u8; 4096];
            match self.s.read(&mut chunk) {
                Ok(0) => return,
                Ok(n) => panic!("data after the close frame: {:?}", &chunk[..n.min(32)]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    panic!("server did not close the TCP connection after the close handshake")
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    }

    /// The server must fail the connection: a close frame with one of
    /// `codes`, then (after our close reply) the end of the TCP connection.
    fn expect_fail(&mut self, codes: &[u16]) -> u16 {
        let code = self.read_close();
        assert!(
            code.is_some_and(|c| codes.contains(&c)),
            "close code {code:?}, expected one of {codes:?}"
        );
        self.try_send(&frame(true, OP_CLOSE, &close_payload(code.unwrap(), b"")));
        self.expect_tcp_end();
        code.unwrap()
    }
}

/// Opens a raw /echo connection, sends `bytes` and asserts the server fails
/// the connection with one of `codes`.
fn assert_fails(server: &Server, bytes: &[u8], codes: &[u16]) -> u16 {
    let mut raw = Raw::open(server, "/echo");
    raw.send(bytes);
    raw.expect_fail(codes)
}

// ---------------------------------------------------------------------------
// tungstenite helpers
// ---------------------------------------------------------------------------

type Ws = WebSocket<TcpStream>;

/// A tungstenite client on `path`, with the local (source) port of its TCP
/// connection.
fn ws_client(server: &Server, path: &str) -> (Ws, u16) {
    let s = server.connect();
    let port = s.local_addr().unwrap().port();
    let (ws, resp) = tungstenite::client::client(server.ws_url(path), s)
        .unwrap_or_else(|e| panic!("tungstenite handshake on {path}: {e}"));
    assert_eq!(resp.status().as_u16(), 101);
    (ws, port)
}

/// The next text message (skipping pings/pongs).
fn read_text(ws: &mut Ws) -> String {
    loop {
        match ws.read().expect("read a message") {
            Message::Text(t) => return t,
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected text, got {other:?}"),
        }
    }
}

/// The next data message (skipping pings/pongs).
fn read_data(ws: &mut Ws) -> Message {
    loop {
        match ws.read().expect("read a message") {
            Message::Ping(_) | Message::Pong(_) => continue,
            m => return m,
        }
    }
}

/// Closes a tungstenite client cleanly (close handshake, then EOF).
fn close_ws(mut ws: Ws) {
    let _ = ws.close(None);
    let end = Instant::now() + Duration::from_secs(3);
    while Instant::now() < end {
        if ws.read().is_err() {
            return;
        }
    }
    panic!("close handshake did not complete");
}

/// A fresh /echo connection works (used after every failure case).
fn assert_echo_works(server: &Server) {
    let (mut ws, _) = ws_client(server, "/echo");
    ws.send(Message::Text("still alive".into())).unwrap();
    assert_eq!(read_text(&mut ws), "still alive");
    close_ws(ws);
}

/// A number out of the /stats JSON: each key of `path` is searched after
/// the previous one (`["closed", "protocol"]`).
fn stat(server: &Server, path: &[&str]) -> u64 {
    let r = server.get("/stats");
    assert_eq!(r.status, 200);
    let json = r.text();
    let mut pos = 0;
    for key in path {
        let pat = format!("\"{key}\":");
        let i = json[pos..]
            .find(&pat)
            .unwrap_or_else(|| panic!("no {pat} in /stats: {json}"));
        pos += i + pat.len();
    }
    let digits: String = json[pos..]
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("no number at {path:?} in /stats: {json}"))
}

// ---------------------------------------------------------------------------
// Handshake (RFC 6455 section 4.2)
// ---------------------------------------------------------------------------

#[test]
fn handshake_rfc_example_key() {
    let server = Server::start(&[]);
    let (head, mut raw) = upgrade(&server, "GET", "/echo", &[]);
    assert_eq!(head.status_line, "HTTP/1.1 101 Switching Protocols");
    assert!(
        head.header("Upgrade")
            .is_some_and(|v| v.eq_ignore_ascii_case("websocket")),
        "Upgrade header: {head:?}"
    );
    assert!(
        head.has_token("Connection", "upgrade"),
        "Connection header: {head:?}"
    );
    assert_eq!(head.header("Sec-WebSocket-Accept"), Some(RFC_ACCEPT));
    // no extension or subprotocol was offered, so none may be selected
    assert_eq!(head.header("Sec-WebSocket-Extensions"), None);
    assert_eq!(head.header("Sec-WebSocket-Protocol"), None);
    // and the connection is a working WebSocket
    raw.assert_echo("after the handshake");
}

#[test]
fn handshake_connection_token_list_and_case() {
    let server = Server::start(&[]);
    let variants: &[&[(&str, Option<&str>)]] = &[
        &[("Connection", Some("keep-alive, Upgrade"))],
        &[("Connection", Some("upgrade"))],
        &[("Connection", Some("keep-alive,upgrade"))],
        &[
            ("Upgrade", Some("WebSocket")),
            ("Connection", Some("UPGRADE")),
        ],
        &[
            ("upgrade", Some("websocket")),
            ("connection", Some("upgrade")),
            ("sec-websocket-key", Some(RFC_KEY)),
            ("sec-websocket-version", Some("13")),
        ],
    ];
    for v in variants {
        let (head, mut raw) = upgrade(&server, "GET", "/echo", v);
        assert_eq!(head.status, 101, "headers {v:?}: {head:?}");
        assert_eq!(
            head.header("Sec-WebSocket-Accept"),
            Some(RFC_ACCEPT),
            "headers {v:?}"
        );
        raw.assert_echo("variant ok");
    }
}

fn assert_426(head: &Head, what: &str) {
    assert_eq!(head.status, 426, "{what}: {head:?}");
    assert_eq!(
        head.header("Sec-WebSocket-Version"),
        Some("13"),
        "{what}: {head:?}"
    );
    assert!(
        head.header("Upgrade")
            .is_some_and(|v| v.eq_ignore_ascii_case("websocket")),
        "{what}: Upgrade header missing: {head:?}"
    );
}

#[test]
fn handshake_missing_or_wrong_version_is_426() {
    let server = Server::start(&[]);
    // (what, header overrides: name and value, None to leave it out)
    type Case<'a> = (&'a str, &'a [(&'a str, Option<&'a str>)]);
    let cases: &[Case] = &[
        ("missing version", &[("Sec-WebSocket-Version", None)]),
        ("version 8", &[("Sec-WebSocket-Version", Some("8"))]),
        ("version 14", &[("Sec-WebSocket-Version", Some("14"))]),
    ];
    for (what, h) in cases {
        let (head, _raw) = upgrade(&server, "GET", "/echo", h);
        assert_426(&head, what);
        assert_echo_works(&server);
    }
    // the same on the chat endpoint
    let (head, _raw) = upgrade(&server, "GET", "/", &[("Sec-WebSocket-Version", Some("8"))]);
    assert_426(&head, "version 8 on /");
    assert_echo_works(&server);
}

#[test]
fn handshake_bad_key_is_400() {
    let server = Server::start(&[]);
    for key in [
        "abc",                      // not 16 bytes
        "AAECAwQFBgcICQoLDA0O",     // base64 of 15 bytes
        "AAECAwQFBgcICQoLDA0ODxA=", // base64 of 17 bytes
        "!!!!!!!!!!!!!!!!!!!!!!==", // right length, not base64
    ] {
        let r = server.request(
            "GET",
            "/echo",
            &[
                ("Upgrade", "websocket"),
                ("Connection", "Upgrade"),
                ("Sec-WebSocket-Key", key),
                ("Sec-WebSocket-Version", "13"),
            ],
            b"",
        );
        assert_eq!(r.status, 400, "key {key:?}: {r:?}");
        assert!(
            r.text().contains("\"error\""),
            "key {key:?}: body {:?}",
            r.text()
        );
        assert_echo_works(&server);
    }
    // no key at all: not a valid upgrade (400, or 426 "without a valid upgrade")
    let (head, _raw) = upgrade(&server, "GET", "/echo", &[("Sec-WebSocket-Key", None)]);
    assert!(matches!(head.status, 400 | 426), "missing key: {head:?}");
    assert_echo_works(&server);
}

#[test]
fn handshake_post_is_not_upgraded() {
    let server = Server::start(&[]);
    let (head, _raw) = upgrade(&server, "POST", "/echo", &[]);
    assert_ne!(head.status, 101, "POST was upgraded: {head:?}");
    assert!((400..500).contains(&head.status), "POST upgrade: {head:?}");
    assert_echo_works(&server);
}

#[test]
fn handshake_unknown_path_is_404() {
    let server = Server::start(&[]);
    let (head, _raw) = upgrade(&server, "GET", "/nope", &[]);
    assert_eq!(head.status, 404, "{head:?}");
    assert_echo_works(&server);
}

#[test]
fn handshake_duplicate_key_or_version_lines_are_refused() {
    // RFC 6455 section 11.3.1 / 11.3.5: Sec-WebSocket-Key and
    // Sec-WebSocket-Version MUST NOT appear more than once in a request;
    // section 4.2.1: a handshake that does not match is answered with an
    // error (400). Two different keys make the accept value ambiguous, and
    // two version lines are the list "13, 8" (RFC 9110 section 5.3), which
    // the server refuses in its one-line form.
    let server = Server::start(&[]);
    let two_keys = format!(
        "GET /echo HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {RFC_KEY}\r\nSec-WebSocket-Key: AAECAwQFBgcICQoLDA0ODw==\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n",
        server.addr
    );
    let mut s = server.connect();
    s.write_all(two_keys.as_bytes()).unwrap();
    let (head, _) = read_head(&mut s).expect("an answer");
    assert_eq!(
        head.status, 400,
        "two different Sec-WebSocket-Key lines: {head:?}"
    );

    // the list form in one line is refused ...
    let (head, _raw) = upgrade(
        &server,
        "GET",
        "/echo",
        &[("Sec-WebSocket-Version", Some("13, 8"))],
    );
    assert!(
        matches!(head.status, 400 | 426),
        "version \"13, 8\": {head:?}"
    );
    // ... and so must be the same list in two lines
    let two_versions = format!(
        "GET /echo HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {RFC_KEY}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Version: 8\r\n\r\n",
        server.addr
    );
    let mut s = server.connect();
    s.write_all(two_versions.as_bytes()).unwrap();
    let (head, _) = read_head(&mut s).expect("an answer");
    assert!(
        matches!(head.status, 400 | 426),
        "two Sec-WebSocket-Version lines (13, 8): {head:?}"
    );
    assert_echo_works(&server);
}

#[test]
fn http_1_0_upgrade_is_refused() {
    // RFC 6455 section 4.2.1: the opening handshake is an HTTP/1.1 (or
    // higher) GET request
    let server = Server::start(&[]);
    let mut s = server.connect();
    let req = upgrade_request(&server, "GET", "/echo", &[]).replacen("HTTP/1.1", "HTTP/1.0", 1);
    s.write_all(req.as_bytes()).unwrap();
    let (head, _) = read_head(&mut s).expect("an answer");
    assert_ne!(head.status, 101, "HTTP/1.0 request was upgraded: {head:?}");
    assert!((400..500).contains(&head.status), "{head:?}");
    assert_echo_works(&server);
}

#[test]
fn plain_get_on_echo_is_426() {
    let server = Server::start(&[]);
    let r = server.get("/echo");
    assert_eq!(r.status, 426, "{r:?}");
    assert_eq!(r.header("Sec-WebSocket-Version"), Some("13"), "{r:?}");
    assert!(
        r.header("Upgrade")
            .is_some_and(|v| v.eq_ignore_ascii_case("websocket")),
        "{r:?}"
    );
    assert!(r.text().contains("\"error\""), "body {:?}", r.text());
    assert_echo_works(&server);
    // Upgrade header present, but no `upgrade` token in Connection
    let (head, _raw) = upgrade(
        &server,
        "GET",
        "/echo",
        &[("Connection", Some("keep-alive"))],
    );
    assert!(
        matches!(head.status, 400 | 426),
        "Connection without upgrade: {head:?}"
    );
    assert_echo_works(&server);
}

#[test]
fn handshake_origin_allow_list() {
    let server = Server::start(&["--allow-origin", "http://a.example"]);
    let own = format!("http://{}", server.addr);
    let cases: &[(&str, u16)] = &[
        ("http://evil.example", 403),
        ("http://a.example", 101),
        ("HTTP://A.EXAMPLE", 101),
        ("http://a.example:80", 403),
        ("null", 403),
        (&own, 101),
    ];
    for (origin, want) in cases {
        let (head, mut raw) = upgrade(&server, "GET", "/echo", &[("Origin", Some(origin))]);
        assert_eq!(head.status, *want, "Origin {origin}: {head:?}");
        if *want == 101 {
            raw.assert_echo("origin ok");
        } else {
            assert_echo_works(&server);
        }
    }
    // a client without Origin is always allowed
    let (head, _raw) = upgrade(&server, "GET", "/echo", &[]);
    assert_eq!(head.status, 101);
}

// ---------------------------------------------------------------------------
// Echo
// ---------------------------------------------------------------------------

#[test]
fn echo_text_binary_and_empty() {
    let server = Server::start(&[]);
    let (mut ws, _) = ws_client(&server, "/echo");
    let msgs = [
        Message::Text("hello".into()),
        Message::Text("Hello-µ@ßöäüàá-UTF-8!! κόσμε 🎉".into()),
        Message::Binary(vec![0, 1, 2, 0xfe, 0xff]),
        Message::Text(String::new()),
        Message::Binary(Vec::new()),
    ];
    for m in msgs {
        ws.send(m.clone()).unwrap();
        assert_eq!(read_data(&mut ws), m);
    }
    close_ws(ws);
}

#[test]
fn echo_payload_sizes_and_length_encoding() {
    // default --max-message-bytes is 1048576: exactly 1 MiB is allowed
    let server = Server::start(&[]);
    let mut raw = Raw::open(&server, "/echo");
    for (i, size) in [0usize, 1, 125, 126, 127, 65535, 65536, 1 << 20]
        .into_iter()
        .enumerate()
    {
        let payload: Vec<u8> = (0..size).map(|j| (j * 7 + i) as u8).collect();
        raw.send(&frame(true, OP_BINARY, &payload));
        // `next` asserts the shortest length encoding on every frame
        let (op, data) = raw.read_message();
        assert_eq!(op, OP_BINARY, "size {size}");
        assert!(
            data == payload,
            "size {size}: echo differs (got {} bytes)",
            data.len()
        );
    }
    // text of the same boundary sizes through tungstenite
    let (mut ws, _) = ws_client(&server, "/echo");
    for size in [125usize, 126, 65535, 65536, 1 << 20] {
        let t = "x".repeat(size);
        ws.send(Message::Text(t.clone())).unwrap();
        assert_eq!(read_text(&mut ws).len(), size);
    }
    close_ws(ws);
}

#[test]
fn echo_4_mib_with_raised_limit() {
    let server = Server::start(&["--max-message-bytes", "16777216"]);
    let (mut ws, _) = ws_client(&server, "/echo");
    let payload: Vec<u8> = (0..4 << 20).map(|j: usize| (j % 251) as u8).collect();
    ws.send(Message::Binary(payload.clone())).unwrap();
    match read_data(&mut ws) {
        Message::Binary(b) => assert!(b == payload, "4 MiB echo differs ({} bytes)", b.len()),
        other => panic!("expected binary, got {other:?}"),
    }
    close_ws(ws);
}

#[test]
fn echo_fragmented_with_interleaved_ping() {
    let server = Server::start(&[]);
    let mut raw = Raw::open(&server, "/echo");
    raw.send(&frame(false, OP_TEXT, b"Hel"));
    raw.send(&frame(true, OP_PING, b"mid"));
    raw.send(&frame(true, OP_CONT, b"lo"));
    // the pong answers the ping at once; the message is complete only after
    let f = raw.expect_frame();
    assert_eq!(f.opcode, OP_PONG, "expected the pong first, got {f:?}");
    assert_eq!(f.payload, b"mid");
    let (op, data) = raw.read_message();
    assert_eq!(op, OP_TEXT);
    assert_eq!(data, b"Hello");
    // a fragmented binary message, with an empty fragment, sent in one write
    let mut w = frame(false, OP_BINARY, &[1, 2]);
    w.extend(frame(false, OP_CONT, b""));
    w.extend(frame(true, OP_CONT, &[3]));
    raw.send(&w);
    assert_eq!(raw.read_message(), (OP_BINARY, vec![1, 2, 3]));
    // a UTF-8 character split across fragments is fine
    let euro = "€".as_bytes();
    raw.send(&frame(false, OP_TEXT, &euro[..1]));
    raw.send(&frame(true, OP_CONT, &euro[1..]));
    assert_eq!(raw.read_message(), (OP_TEXT, euro.to_vec()));
}

#[test]
fn echo_many_messages_pipelined_in_one_write() {
    let server = Server::start(&[]);
    let mut raw = Raw::open(&server, "/echo");
    let n = 500;
    let mut w = Vec::new();
    for i in 0..n {
        if i % 2 == 0 {
            w.extend(frame(true, OP_TEXT, format!("message {i}").as_bytes()));
        } else {
            w.extend(frame(true, OP_BINARY, &vec![i as u8; i % 300]));
        }
    }
    raw.send(&w);
    for i in 0..n {
        let (op, data) = raw.read_message();
        if i % 2 == 0 {
            assert_eq!(
                (op, data),
                (OP_TEXT, format!("message {i}").into_bytes()),
                "message {i}"
            );
        } else {
            assert_eq!(
                (op, data),
                (OP_BINARY, vec![i as u8; i % 300]),
                "message {i}"
            );
        }
    }
}

#[test]
fn echo_frame_trickled_byte_by_byte() {
    let server = Server::start(&[]);
    let mut raw = Raw::open(&server, "/echo");
    let text = "t".repeat(200); // a 16-bit length header
    let mut w = frame(false, OP_TEXT, &text.as_bytes()[..100]);
    w.extend(frame(true, OP_PING, b"pp"));
    w.extend(frame(true, OP_CONT, &text.as_bytes()[100..]));
    for b in &w {
        raw.send(std::slice::from_ref(b));
        std::thread::sleep(Duration::from_micros(300));
    }
    let f = raw.expect_frame();
    assert_eq!(
        (f.opcode, f.payload.as_slice()),
        (OP_PONG, &b"pp"[..]),
        "{f:?}"
    );
    assert_eq!(raw.read_message(), (OP_TEXT, text.into_bytes()));
}

#[test]
fn idle_timeout_does_not_apply_to_websockets() {
    let server = Server::start(&["--idle-timeout-ms", "300", "--header-timeout-ms", "300"]);
    let (mut ws, _) = ws_client(&server, "/echo");
    std::thread::sleep(Duration::from_millis(1000));
    ws.send(Message::Text("after idling".into())).unwrap();
    assert_eq!(read_text(&mut ws), "after idling");
    close_ws(ws);
}

// ---------------------------------------------------------------------------
// Chat on /
// ---------------------------------------------------------------------------

#[test]
fn chat_join_message_leave() {
    let server = Server::start(&[]);
    let (mut a, pa) = ws_client(&server, "/");
    assert_eq!(read_text(&mut a), format!("User{pa} joined"));
    let (mut b, pb) = ws_client(&server, "/");
    assert_eq!(read_text(&mut b), format!("User{pb} joined"));
    assert_eq!(read_text(&mut a), format!("User{pb} joined"));
    let (mut c, pc) = ws_client(&server, "/");
    for ws in [&mut c, &mut a, &mut b] {
        assert_eq!(read_text(ws), format!("User{pc} joined"));
    }

    a.send(Message::Text("Hello! I'm client".into())).unwrap();
    for ws in [&mut a, &mut b, &mut c] {
        assert_eq!(read_text(ws), format!("User{pa}: Hello! I'm client"));
    }
    c.send(Message::Text("from c".into())).unwrap();
    for ws in [&mut a, &mut b, &mut c] {
        assert_eq!(read_text(ws), format!("User{pc}: from c"));
    }

    // a clean close
    close_ws(c);
    for ws in [&mut a, &mut b] {
        assert_eq!(read_text(ws), format!("User{pc} left"));
    }
    // an abrupt disconnect (TCP closed without a close frame)
    drop(b);
    assert_eq!(read_text(&mut a), format!("User{pb} left"));
    close_ws(a);
}

#[test]
fn chat_binary_message_closes_1003() {
    let server = Server::start(&[]);
    let (mut ws, p) = ws_client(&server, "/");
    assert_eq!(read_text(&mut ws), format!("User{p} joined"));
    ws.send(Message::Binary(vec![1, 2, 3])).unwrap();
    loop {
        match ws.read() {
            Ok(Message::Close(Some(cf))) => {
                assert_eq!(u16::from(cf.code), 1003, "close {cf:?}");
                break;
            }
            Ok(Message::Close(None)) => panic!("empty close, expected 1003"),
            Ok(Message::Text(t)) => assert!(!t.contains(": "), "binary was relayed as {t:?}"),
            Ok(_) => {}
            Err(e) => panic!("connection ended without close 1003: {e}"),
        }
    }
}

#[test]
fn chat_fragmented_message_and_failed_member_leaves() {
    let server = Server::start(&[]);
    let (mut a, pa) = ws_client(&server, "/");
    assert_eq!(read_text(&mut a), format!("User{pa} joined"));
    let mut raw = Raw::open(&server, "/");
    let pr = raw.s.local_addr().unwrap().port();
    let (op, data) = raw.read_message();
    assert_eq!(
        (op, String::from_utf8(data).unwrap()),
        (OP_TEXT, format!("User{pr} joined"))
    );
    assert_eq!(read_text(&mut a), format!("User{pr} joined"));
    // one message in two fragments is relayed once, whole
    raw.send(&frame(false, OP_TEXT, b"Hel"));
    raw.send(&frame(true, OP_CONT, b"lo"));
    assert_eq!(read_text(&mut a), format!("User{pr}: Hello"));
    let (_, data) = raw.read_message();
    assert_eq!(String::from_utf8(data).unwrap(), format!("User{pr}: Hello"));
    // invalid UTF-8 from a member: 1007 for it, "left" for the others,
    // and nothing of the bad message is relayed
    raw.send(&frame(true, OP_TEXT, BAD_UTF8));
    raw.expect_fail(&[1007]);
    assert_eq!(read_text(&mut a), format!("User{pr} left"));
    // the room still works
    a.send(Message::Text("anyone?".into())).unwrap();
    assert_eq!(read_text(&mut a), format!("User{pa}: anyone?"));
    close_ws(a);
}

#[test]
fn many_concurrent_echo_clients() {
    let server = Server::start(&[]);
    let addr_url = server.ws_url("/echo");
    let threads: Vec<_> = (0..16)
        .map(|t| {
            let url = addr_url.clone();
            std::thread::spawn(move || {
                let s = TcpStream::connect(
                    url.strip_prefix("ws://")
                        .unwrap()
                        .split('/')
                        .next()
                        .unwrap(),
                )
                .unwrap();
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let (mut ws, _) =
                    tungstenite::client::client(url, s).unwrap_or_else(|e| panic!("{e}"));
                for i in 0..50 {
                    let m = format!("client {t} message {i} {}", "z".repeat(i * 37));
                    ws.send(Message::Text(m.clone())).unwrap();
                    assert_eq!(read_text(&mut ws), m);
                }
                close_ws(ws);
            })
        })
        .collect();
    for t in threads {
        t.join().expect("client thread");
    }
}

// ---------------------------------------------------------------------------
// Protocol errors: the server fails the connection with the right code
// ---------------------------------------------------------------------------

#[test]
fn unmasked_client_frame_is_1002() {
    let server = Server::start(&[]);
    assert_fails(&server, &unmasked_frame(true, OP_TEXT, b"hello"), &[1002]);
    assert_echo_works(&server);
}

#[test]
fn rsv_bits_are_1002() {
    let server = Server::start(&[]);
    for rsv in [0x40u8, 0x20, 0x10] {
        assert_fails(&server, &raw_frame(0x80 | rsv | OP_TEXT, b"hello"), &[1002]);
        // on a control frame too
        assert_fails(&server, &raw_frame(0x80 | rsv | OP_PING, b""), &[1002]);
    }
    assert_echo_works(&server);
}

#[test]
fn reserved_opcodes_are_1002() {
    let server = Server::start(&[]);
    for op in [3u8, 4, 7, 0xB, 0xF] {
        assert_fails(&server, &frame(true, op, b"x"), &[1002]);
    }
    // also after a valid message on the same connection
    let mut raw = Raw::open(&server, "/echo");
    raw.assert_echo("first");
    raw.send(&frame(true, 0xB, b""));
    raw.expect_fail(&[1002]);
    assert_echo_works(&server);
}

#[test]
fn oversized_ping_is_1002() {
    let server = Server::start(&[]);
    assert_fails(&server, &frame(true, OP_PING, &[b'p'; 126]), &[1002]);
    assert_echo_works(&server);
}

#[test]
fn fragmented_ping_is_1002() {
    let server = Server::start(&[]);
    assert_fails(&server, &frame(false, OP_PING, b"frag"), &[1002]);
    assert_echo_works(&server);
}

#[test]
fn continuation_without_start_is_1002() {
    let server = Server::start(&[]);
    assert_fails(&server, &frame(true, OP_CONT, b"orphan"), &[1002]);
    assert_fails(&server, &frame(false, OP_CONT, b"orphan"), &[1002]);
    // after a complete message, a continuation is an orphan too
    let mut raw = Raw::open(&server, "/echo");
    raw.assert_echo("complete");
    raw.send(&frame(true, OP_CONT, b"late"));
    raw.expect_fail(&[1002]);
}

#[test]
fn new_message_inside_fragmented_one_is_1002() {
    let server = Server::start(&[]);
    let mut w = frame(false, OP_TEXT, b"Hel");
    w.extend(frame(true, OP_TEXT, b"lo"));
    assert_fails(&server, &w, &[1002]);
    let mut w = frame(false, OP_BINARY, b"Hel");
    w.extend(frame(false, OP_TEXT, b"lo"));
    assert_fails(&server, &w, &[1002]);
    assert_echo_works(&server);
}

/// "κόσμε" + an encoded surrogate (ED A0 80) + "edited" (Autobahn 6.x style).
const BAD_UTF8: &[u8] = &[
    0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5, 0xed, 0xa0, 0x80, 0x65, 0x64,
    0x69, 0x74, 0x65, 0x64,
];

#[test]
fn invalid_utf8_text_is_1007() {
    let server = Server::start(&[]);
    assert_fails(&server, &frame(true, OP_TEXT, BAD_UTF8), &[1007]);
    for bad in [
        &[0xffu8][..],
        &[0xc0, 0x80],
        &[0xf4, 0x90, 0x80, 0x80],
        &[b'a', 0xe2, 0x82],
    ] {
        assert_fails(&server, &frame(true, OP_TEXT, bad), &[1007]);
    }
    // invalid across fragments, each fragment on its own plausible
    let mut w = frame(false, OP_TEXT, &[0xce]);
    w.extend(frame(true, OP_CONT, &[0x41]));
    assert_fails(&server, &w, &[1007]);
    // a message ending inside a character
    let mut w = frame(false, OP_TEXT, b"ok");
    w.extend(frame(true, OP_CONT, &[0xe2, 0x82]));
    assert_fails(&server, &w, &[1007]);
    // binary messages are not UTF-8 checked
    let mut raw = Raw::open(&server, "/echo");
    raw.send(&frame(true, OP_BINARY, BAD_UTF8));
    assert_eq!(raw.read_message(), (OP_BINARY, BAD_UTF8.to_vec()));
}

#[test]
fn invalid_utf8_fails_fast_before_the_frame_is_complete() {
    let server = Server::start(&[]);
    let mut raw = Raw::open(&server, "/echo");
    // a text frame that announces 20 bytes ...
    let payload: Vec<u8> = [0xce, 0xba, 0xe1, 0xbd, 0xc0] // invalid at byte 5
        .into_iter()
        .chain(std::iter::repeat_n(b'a', 15))
        .collect();
    let whole = frame(true, OP_TEXT, &payload);
    let header_len = 2 + 4;
    // ... of which only the header and the first 5 bytes are sent
    raw.send(&whole[..header_len + 5]);
    raw.s
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let t = Instant::now();
    let code = raw.read_close();
    assert_eq!(code, Some(1007), "fail-fast close code");
    assert!(t.elapsed() < Duration::from_secs(2));
    raw.try_send(&whole[header_len + 5..]);

    // the same inside a continuation frame of a fragmented message
    let mut raw = Raw::open(&server, "/echo");
    raw.send(&frame(false, OP_TEXT, b"fine so far"));
    let cont = frame(true, OP_CONT, &payload);
    raw.send(&cont[..header_len + 5]);
    raw.s
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    assert_eq!(raw.read_close(), Some(1007), "fail-fast in a continuation");
}

#[test]
fn message_over_limit_is_1009() {
    let server = Server::start(&["--max-message-bytes", "1000"]);
    // at the limit: fine
    let mut raw = Raw::open(&server, "/echo");
    raw.send(&frame(true, OP_BINARY, &[7; 1000]));
    assert_eq!(raw.read_message(), (OP_BINARY, vec![7; 1000]));
    let mut w = frame(false, OP_TEXT, &[b'a'; 500]);
    w.extend(frame(true, OP_CONT, &[b'b'; 500]));
    raw.send(&w);
    assert_eq!(raw.read_message().1.len(), 1000);

    // one frame over the limit
    assert_fails(&server, &frame(true, OP_BINARY, &[7; 1001]), &[1009]);
    assert_fails(&server, &frame(true, OP_TEXT, &[b'a'; 1001]), &[1009]);
    // fragments that are each small but together over the limit
    let mut w = frame(false, OP_TEXT, &[b'a'; 400]);
    w.extend(frame(false, OP_CONT, &[b'b'; 400]));
    w.extend(frame(true, OP_CONT, &[b'c'; 400]));
    assert_fails(&server, &w, &[1009]);
    // a header that announces a huge payload is refused from the header
    // alone (nothing of the payload is sent)
    let mut raw = Raw::open(&server, "/echo");
    let mut h = vec![0x82u8, 0x80 | 127];
    h.extend_from_slice(&(1u64 << 40).to_be_bytes());
    h.extend_from_slice(&MASK);
    raw.send(&h);
    raw.s
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    assert_eq!(raw.read_close(), Some(1009));
    // a 64-bit length with the most significant bit set is invalid framing
    let mut raw = Raw::open(&server, "/echo");
    let mut h = vec![0x82u8, 0x80 | 127];
    h.extend_from_slice(&(1u64 << 63 | 5).to_be_bytes());
    h.extend_from_slice(&MASK);
    h.extend_from_slice(&[0; 5]);
    raw.send(&h);
    let code = raw.read_close();
    assert!(
        matches!(code, Some(1002 | 1009)),
        "MSB-set length: close {code:?}"
    );
    assert_echo_works(&server);
}

#[test]
fn failed_connection_is_closed_even_without_close_reply() {
    let server = Server::start(&[]);
    let mut raw = Raw::open(&server, "/echo");
    raw.send(&frame(true, 0x3, b""));
    assert_eq!(raw.read_close(), Some(1002));
    // we never answer the close: the server must still end the connection
    raw.expect_tcp_end();
}

#[test]
fn close_with_one_byte_payload_is_1002() {
    let server = Server::start(&[]);
    assert_fails(&server, &frame(true, OP_CLOSE, &[0x03]), &[1002]);
}

#[test]
fn close_with_invalid_code_is_1002() {
    let server = Server::start(&[]);
    for code in [
        0u16, 999, 1004, 1005, 1006, 1012, 1013, 1014, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
    ] {
        let mut raw = Raw::open(&server, "/echo");
        raw.send(&frame(true, OP_CLOSE, &close_payload(code, b"")));
        let got = raw.read_close();
        // 1012-1014 are registered by IANA since; an echo is acceptable there
        if (1012..=1014).contains(&code) && got == Some(code) {
            continue;
        }
        assert_eq!(got, Some(1002), "close code {code} answered with {got:?}");
    }
}

#[test]
fn close_with_invalid_utf8_reason_is_1007() {
    let server = Server::start(&[]);
    let code = assert_fails(
        &server,
        &frame(
            true,
            OP_CLOSE,
            &close_payload(1000, &[b'o', b'k', 0xff, 0xfe]),
        ),
        &[1007, 1002],
    );
    assert!(code == 1007 || code == 1002);
}

#[test]
fn valid_close_is_echoed_then_tcp_closed() {
    let server = Server::start(&[]);
    let mut raw = Raw::open(&server, "/echo");
    raw.send(&frame(true, OP_CLOSE, &close_payload(1000, b"bye")));
    assert_eq!(raw.read_close(), Some(1000));
    // the server closes TCP after the close handshake
    raw.s
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let mut b = [0u8; 16];
    match raw.s.read(&mut b) {
        Ok(0) => {}
        other => panic!("expected EOF after the close handshake, got {other:?}"),
    }
}

#[test]
fn valid_close_codes_are_echoed() {
    let server = Server::start(&[]);
    for code in [
        1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999,
    ] {
        let mut raw = Raw::open(&server, "/echo");
        raw.send(&frame(
            true,
            OP_CLOSE,
            &close_payload(code, "réason".as_bytes()),
        ));
        assert_eq!(raw.read_close(), Some(code), "close {code} echoed");
        raw.expect_tcp_end();
    }
}

#[test]
fn empty_close_is_echoed_empty() {
    let server = Server::start(&[]);
    let mut raw = Raw::open(&server, "/echo");
    raw.send(&frame(true, OP_CLOSE, b""));
    let f = raw.expect_frame();
    assert_eq!(f.opcode, OP_CLOSE, "{f:?}");
    assert!(
        f.payload.is_empty(),
        "empty close answered with {:?}",
        f.payload
    );
    raw.expect_tcp_end();
}

#[test]
fn data_after_close_is_ignored() {
    let server = Server::start(&[]);
    let mut raw = Raw::open(&server, "/echo");
    let mut w = frame(true, OP_CLOSE, &close_payload(1000, b""));
    w.extend(frame(true, OP_TEXT, b"too late"));
    raw.send(&w);
    assert_eq!(raw.read_close(), Some(1000));
    raw.expect_tcp_end();
}

// ---------------------------------------------------------------------------
// Ping / pong
// ---------------------------------------------------------------------------

#[test]
fn ping_is_answered_with_same_payload() {
    let server = Server::start(&[]);
    let mut raw = Raw::open(&server, "/echo");
    for payload in [&b"abc"[..], b"", &[0xffu8; 125]] {
        raw.send(&frame(true, OP_PING, payload));
        let f = raw.expect_frame();
        assert_eq!(f.opcode, OP_PONG, "{f:?}");
        assert_eq!(f.payload, payload);
    }
    raw.assert_echo("after pings");
}

#[test]
fn unsolicited_pong_is_ignored() {
    let server = Server::start(&[]);
    let mut raw = Raw::open(&server, "/echo");
    raw.send(&frame(true, OP_PONG, b"unsolicited"));
    raw.send(&frame(true, OP_PONG, b""));
    // the next thing we get is the echo, not a close
    raw.send(&frame(true, OP_TEXT, b"still here"));
    let f = raw.expect_frame();
    assert_eq!(
        (f.opcode, f.payload.as_slice()),
        (OP_TEXT, &b"still here"[..]),
        "{f:?}"
    );
}

#[test]
fn server_pings_and_a_pong_answering_client_stays() {
    let server = Server::start(&["--ws-ping-ms", "200"]);
    let (mut ws, _) = ws_client(&server, "/echo");
    let start = Instant::now();
    let mut pings = 0;
    // tungstenite answers each ping with a pong by itself; keep reading for
    // several intervals
    ws.get_mut()
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    while start.elapsed() < Duration::from_millis(1100) {
        match ws.read() {
            Ok(Message::Ping(_)) => pings += 1,
            Ok(m) => panic!("unexpected {m:?}"),
            Err(tungstenite::Error::Io(e))
                if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => panic!("connection ended although pongs were sent: {e}"),
        }
    }
    assert!(
        pings >= 2,
        "saw {pings} pings in 1.1 s with --ws-ping-ms 200"
    );
    ws.get_mut()
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    ws.send(Message::Text("alive".into())).unwrap();
    assert_eq!(read_text(&mut ws), "alive");
    close_ws(ws);
}

#[test]
fn peer_that_never_pongs_is_closed_1001() {
    let server = Server::start(&["--ws-ping-ms", "200"]);
    let timeouts_before = stat(&server, &["closed", "timeout"]);
    let mut raw = Raw::open(&server, "/echo");
    let start = Instant::now();
    let mut pings = 0;
    let code = loop {
        let f = raw.next().expect("closed without a close frame");
        match f.opcode {
            OP_PING => pings += 1,
            OP_CLOSE => break f.close_code(),
            _ => panic!("unexpected {f:?}"),
        }
    };
    let elapsed = start.elapsed();
    assert_eq!(code, Some(1001), "ping timeout close code");
    assert!(pings >= 1, "closed before any ping");
    assert!(
        elapsed >= Duration::from_millis(150),
        "closed too early: {elapsed:?}"
    );
    assert!(
        elapsed <= Duration::from_millis(1500),
        "closed too late: {elapsed:?}"
    );
    raw.try_send(&frame(true, OP_CLOSE, &close_payload(1001, b"")));
    raw.expect_tcp_end();
    // counted as a timeout
    let after = wait_for(Duration::from_secs(3), || {
        let n = stat(&server, &["closed", "timeout"]);
        (n > timeouts_before).then_some(n)
    });
    assert!(after.is_some(), "closed.timeout did not increase");
}

// ---------------------------------------------------------------------------
// Isolation and observability
// ---------------------------------------------------------------------------

#[test]
fn bad_connection_does_not_disturb_others() {
    let server = Server::start(&[]);
    let (mut good, _) = ws_client(&server, "/echo");
    good.send(Message::Text("one".into())).unwrap();
    assert_eq!(read_text(&mut good), "one");

    // a connection stalled in the middle of a frame
    let mut stalled = Raw::open(&server, "/echo");
    let half = frame(true, OP_TEXT, b"0123456789");
    stalled.send(&half[..8]);

    // a connection that breaks the protocol
    let mut bad = Raw::open(&server, "/echo");
    bad.send(&unmasked_frame(true, OP_TEXT, b"bad"));
    bad.expect_fail(&[1002]);

    good.send(Message::Text("two".into())).unwrap();
    assert_eq!(read_text(&mut good), "two");
    stalled.send(&half[8..]);
    assert_eq!(stalled.read_message(), (OP_TEXT, b"0123456789".to_vec()));

    // another failure while the good one is mid-conversation
    let mut bad = Raw::open(&server, "/echo");
    bad.send(&frame(true, 0xB, b""));
    good.send(Message::Binary(vec![9; 70000])).unwrap();
    bad.expect_fail(&[1002]);
    assert_eq!(read_data(&mut good), Message::Binary(vec![9; 70000]));
    close_ws(good);
}

#[test]
fn stats_count_protocol_closes_and_open_ws() {
    let server = Server::start(&[]);
    let before = stat(&server, &["closed", "protocol"]);
    assert_fails(&server, &unmasked_frame(true, OP_TEXT, b"x"), &[1002]);
    assert_fails(&server, &raw_frame(0x80 | 0x40 | OP_TEXT, b"x"), &[1002]);
    assert_fails(&server, &frame(true, OP_TEXT, BAD_UTF8), &[1007]);
    let mut chat = Raw::open(&server, "/");
    chat.read_message(); // joined
    chat.send(&frame(true, OP_BINARY, b"x"));
    chat.expect_fail(&[1003]);
    drop(chat); // the server may linger until our FIN; don't keep it waiting
    let got = wait_for(Duration::from_secs(3), || {
        let n = stat(&server, &["closed", "protocol"]);
        (n >= before + 4).then_some(n)
    });
    assert!(
        got.is_some(),
        "closed.protocol went from {before} to {}, expected +4 (1002, 1002, 1007, 1003)",
        stat(&server, &["closed", "protocol"])
    );

    // open WebSockets are counted as ws
    let (ws, _) = ws_client(&server, "/echo");
    let seen = wait_for(Duration::from_secs(3), || {
        (stat(&server, &["connections", "open", "ws"]) == 1).then_some(())
    });
    assert!(
        seen.is_some(),
        "connections.open.ws is not 1 with one WebSocket open"
    );
    close_ws(ws);
    let gone = wait_for(Duration::from_secs(3), || {
        (stat(&server, &["connections", "open", "ws"]) == 0).then_some(())
    });
    assert!(
        gone.is_some(),
        "connections.open.ws is not 0 after the close"
    );
}

/// `--close-timeout-ms`: a close the server starts as an ordinary close
/// (chat refuses binary messages with 1003) waits that long for the peer's
/// close frame; a peer that never answers is then cut.
#[test]
fn close_timeout_flag_bounds_the_wait_for_the_peers_close() {
    for (ms, lo, hi) in [(300u64, 250u128, 1_200u128), (1_200, 1_100, 2_400)] {
        let server = Server::start(&["--close-timeout-ms", &ms.to_string()]);
        let mut ws = Raw::open(&server, "/");
        ws.send(&frame(true, OP_BINARY, b"not for chat"));
        // Skip the chat's own lines ("User<port> joined") to the close.
        let code = loop {
            let f = ws.next().expect("a close frame before the end");
            if f.opcode == OP_CLOSE {
                break f.close_code();
            }
        };
        assert_eq!(code, Some(1003));
        let start = Instant::now();
        ws.expect_tcp_end();
        let waited = start.elapsed().as_millis();
        assert!(
            (lo..hi).contains(&waited),
            "--close-timeout-ms {ms}: TCP ended after {waited} ms"
        );
    }
}

// ---------------------------------------------------------------------------
// Compression: permessage-deflate (RFC 7692), docs/api.md section 2
// ---------------------------------------------------------------------------

/// What Chrome and Firefox offer.
const BROWSER_OFFER: &str = "permessage-deflate; client_max_window_bits";
/// What the server always answers (both sides without context takeover).
const ANSWER: &str = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

/// A masked client frame with RSV1 set (a compressed message's first
/// frame).
fn rsv1_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    raw_frame(if fin { 0x80 } else { 0 } | 0x40 | opcode, payload)
}

/// Opens `path` offering `permessage-deflate` as browsers do, asserting
/// the server accepted it.
fn open_deflate(server: &Server, path: &str) -> Raw {
    let (head, raw) = upgrade(
        server,
        "GET",
        path,
        &[("Sec-WebSocket-Extensions", Some(BROWSER_OFFER))],
    );
    assert_eq!(head.status, 101, "{head:?}");
    assert_eq!(head.header("sec-websocket-extensions"), Some(ANSWER));
    raw
}

/// The `VmHWM` (peak resident memory) of a process, in kB.
fn peak_rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn deflate_offer_is_answered_in_the_101() {
    let server = Server::start(&[]);
    for path in ["/echo", "/", "/channels/news/ws"] {
        let (head, _) = upgrade(
            &server,
            "GET",
            path,
            &[("Sec-WebSocket-Extensions", Some(BROWSER_OFFER))],
        );
        assert_eq!(head.status, 101, "{path}");
        assert_eq!(
            head.header("sec-websocket-extensions"),
            Some(ANSWER),
            "{path}"
        );
    }
    // An offer that limits our window is accepted by echoing the limit
    // (RFC 7692 section 7.1.2.1).
    let (head, _) = upgrade(
        &server,
        "GET",
        "/echo",
        &[(
            "Sec-WebSocket-Extensions",
            Some("permessage-deflate; server_max_window_bits=10"),
        )],
    );
    assert_eq!(
        head.header("sec-websocket-extensions"),
        Some(format!("{ANSWER}; server_max_window_bits=10").as_str())
    );
    // No offer: no extension.
    let (head, _) = upgrade(&server, "GET", "/echo", &[]);
    assert_eq!(head.status, 101);
    assert_eq!(head.header("sec-websocket-extensions"), None);
}

#[test]
fn deflate_malformed_offer_declines_the_extension_not_the_upgrade() {
    let server = Server::start(&[]);
    for offer in [
        "permessage-deflate; server_max_window_bits=7",
        "permessage-deflate; client_max_window_bits=16",
        "permessage-deflate; no_such_param",
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "x-webkit-deflate-frame",
    ] {
        let (head, mut raw) = upgrade(
            &server,
            "GET",
            "/echo",
            &[("Sec-WebSocket-Extensions", Some(offer))],
        );
        assert_eq!(head.status, 101, "{offer}");
        assert_eq!(head.header("sec-websocket-extensions"), None, "{offer}");
        raw.assert_echo("plain, then");
    }
}

#[test]
fn deflate_off_names_no_extension_and_rsv1_is_1002() {
    let server = Server::start(&["--deflate", "off"]);
    let (head, mut raw) = upgrade(
        &server,
        "GET",
        "/echo",
        &[("Sec-WebSocket-Extensions", Some(BROWSER_OFFER))],
    );
    assert_eq!(head.status, 101);
    assert_eq!(head.header("sec-websocket-extensions"), None);
    // RSV1 without the extension (RFC 6455 section 5.2).
    raw.send(&rsv1_frame(true, OP_TEXT, &deflate_message(b"Hello")));
    raw.expect_fail(&[1002]);
}

#[test]
fn deflate_echo_compresses_both_ways() {
    let server = Server::start(&[]);
    let mut raw = open_deflate(&server, "/echo");
    let text = json_text(1024);
    // RFC 7692 section 7.2.3.1: "Hello" as 7 compressed bytes.
    raw.send(&rsv1_frame(
        true,
        OP_TEXT,
        &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00],
    ));
    // Short: echoed uncompressed (below the server's threshold).
    assert_eq!(
        raw.read_message_deflate(),
        (OP_TEXT, b"Hello".to_vec(), None)
    );
    // 1 KiB of JSON, compressed: echoed compressed, and smaller.
    let z = deflate_message(text.as_bytes());
    raw.send(&rsv1_frame(true, OP_TEXT, &z));
    let (op, data, compressed) = raw.read_message_deflate();
    assert_eq!(
        (op, String::from_utf8(data).unwrap()),
        (OP_TEXT, text.clone())
    );
    let n = compressed.expect("a 1 KiB JSON echo comes back compressed");
    assert!(
        n < text.len() / 2,
        "{n} compressed bytes for {}",
        text.len()
    );
    // Uncompressed from the client on a compressed connection: a plain
    // message (RSV1 is per message), answered compressed.
    raw.send(&frame(true, OP_TEXT, text.as_bytes()));
    let (_, data, compressed) = raw.read_message_deflate();
    assert_eq!(data, text.as_bytes());
    assert!(compressed.is_some());
    // Binary too; incompressible bytes go back uncompressed.
    let mut x = 0x9e3779b97f4a7c15u64;
    let noise: Vec<u8> = (0..2000)
        .map(|_| {
            // xorshift64: bytes deflate cannot shrink
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    raw.send(&rsv1_frame(true, OP_BINARY, &deflate_message(&noise)));
    let (op, data, compressed) = raw.read_message_deflate();
    assert_eq!((op, data.len(), compressed), (OP_BINARY, noise.len(), None));
    assert_eq!(data, noise);
    // An empty compressed message (RFC 7692 section 7.2.3.6: one 0x00).
    raw.send(&rsv1_frame(true, OP_TEXT, &[0x00]));
    assert_eq!(raw.read_message(), (OP_TEXT, Vec::new()));
    // Control frames stay uncompressed both ways.
    raw.send(&frame(true, OP_PING, &[b'p'; 100]));
    let f = raw.expect_frame();
    assert_eq!((f.opcode, f.rsv, f.payload.len()), (OP_PONG, 0, 100));
}

#[test]
fn deflate_echo_with_a_limited_server_window() {
    let server = Server::start(&[]);
    for bits in [8u8, 9, 12, 15] {
        let offer = format!("permessage-deflate; server_max_window_bits={bits}");
        let (head, mut raw) = upgrade(
            &server,
            "GET",
            "/echo",
            &[("Sec-WebSocket-Extensions", Some(offer.as_str()))],
        );
        assert_eq!(head.status, 101);
        assert!(head
            .header("sec-websocket-extensions")
            .unwrap()
            .ends_with(&format!("server_max_window_bits={bits}")));
        let text = json_text(5000);
        raw.send(&rsv1_frame(
            true,
            OP_TEXT,
            &deflate_message(text.as_bytes()),
        ));
        let (_, data, compressed) = raw.read_message_deflate();
        assert!(compressed.is_some(), "{bits} bits");
        assert_eq!(data, text.as_bytes(), "{bits} bits");
    }
}

#[test]
fn deflate_fragmented_message_with_a_ping_between() {
    let server = Server::start(&[]);
    let mut raw = open_deflate(&server, "/echo");
    let text = json_text(3000);
    let z = deflate_message(text.as_bytes());
    let (a, rest) = z.split_at(z.len() / 3);
    let (b, c) = rest.split_at(rest.len() / 2);
    // RSV1 on the first frame only (RFC 7692 section 6.1).
    let mut w = rsv1_frame(false, OP_TEXT, a);
    w.extend(frame(false, OP_CONT, b));
    w.extend(frame(true, OP_PING, b"between"));
    w.extend(frame(true, OP_CONT, c));
    // Byte by byte, as a slow network would deliver it.
    for chunk in w.chunks(7) {
        raw.send(chunk);
    }
    let f = raw.expect_frame();
    assert_eq!((f.opcode, f.payload.as_slice()), (OP_PONG, &b"between"[..]));
    assert_eq!(raw.read_message().1, text.as_bytes());
}

#[test]
fn deflate_bomb_is_1009_before_the_memory_is_spent() {
    let server = Server::start(&["--max-message-bytes", "1048576"]);
    let mut raw = open_deflate(&server, "/echo");
    raw.assert_echo("warm");
    let before = peak_rss_kb(server.pid());
    // 64 MiB of zeros: about 64 kB compressed, 64 times the limit inflated.
    let bomb = deflate_message(&vec![0u8; 64 << 20]);
    assert!(bomb.len() < 100_000, "{} bytes", bomb.len());
    raw.send(&rsv1_frame(true, OP_BINARY, &bomb));
    raw.expect_fail(&[1009]);
    let after = peak_rss_kb(server.pid());
    assert!(
        after < before + 8 * 1024,
        "peak RSS went from {before} kB to {after} kB inflating a bomb"
    );
    // A few kB that pass the limit: the same.
    let mut raw = open_deflate(&server, "/echo");
    let small = deflate_message(&vec![b'a'; 4 << 20]);
    assert!(small.len() < 8192, "{} bytes", small.len());
    raw.send(&rsv1_frame(true, OP_TEXT, &small));
    raw.expect_fail(&[1009]);
    assert_echo_works(&server);
}

#[test]
fn deflate_rsv1_on_a_continuation_frame_is_1002() {
    let server = Server::start(&[]);
    let mut raw = open_deflate(&server, "/echo");
    let z = deflate_message(json_text(500).as_bytes());
    let mut w = rsv1_frame(false, OP_TEXT, &z[..10]);
    w.extend(rsv1_frame(true, OP_CONT, &z[10..]));
    raw.send(&w);
    raw.expect_fail(&[1002]);
}

#[test]
fn deflate_rsv1_on_a_control_frame_is_1002() {
    let server = Server::start(&[]);
    for op in [OP_PING, OP_PONG, OP_CLOSE] {
        let mut raw = open_deflate(&server, "/echo");
        raw.send(&rsv1_frame(true, op, b""));
        raw.expect_fail(&[1002]);
    }
}

#[test]
fn deflate_rsv2_and_rsv3_are_still_1002() {
    let server = Server::start(&[]);
    for rsv in [0x20u8, 0x10, 0x60] {
        let mut raw = open_deflate(&server, "/echo");
        raw.send(&raw_frame(0x80 | rsv | OP_TEXT, b"hello"));
        raw.expect_fail(&[1002]);
    }
}

#[test]
fn deflate_corrupt_data_is_1002_and_bad_utf8_inside_is_1007() {
    let server = Server::start(&[]);
    let mut raw = open_deflate(&server, "/echo");
    // 0xff: a final block of the reserved type 3.
    raw.send(&rsv1_frame(true, OP_BINARY, &[0xff, 0xff, 0xff, 0xff]));
    raw.expect_fail(&[1002]);
    let mut raw = open_deflate(&server, "/echo");
    raw.send(&rsv1_frame(
        true,
        OP_TEXT,
        &deflate_message(b"ok \xc0\xaf not UTF-8"),
    ));
    raw.expect_fail(&[1007]);
    assert_echo_works(&server);
}

#[test]
fn deflate_channel_subscribers_each_get_their_form_of_the_same_message() {
    let server = Server::start(&[]);
    let mut z1 = open_deflate(&server, "/channels/feed/ws");
    let mut z2 = open_deflate(&server, "/channels/feed/ws");
    let mut plain = Raw::open(&server, "/channels/feed/ws");
    let data = json_text(1024);
    assert_eq!(server.post("/channels/feed", data.as_bytes()).status, 201);
    let (_, p, none) = plain.read_message_deflate();
    assert_eq!(none, None);
    let expect = String::from_utf8(p).unwrap();
    assert!(
        expect.starts_with("{\"id\":1,\"data\":\"[{\\\"user\\\""),
        "{expect}"
    );
    for sub in [&mut z1, &mut z2] {
        let (op, got, compressed) = sub.read_message_deflate();
        assert_eq!(op, OP_TEXT);
        assert!(compressed.is_some(), "a 1 KiB message comes compressed");
        assert_eq!(String::from_utf8(got).unwrap(), expect);
    }
    // A compressed subscriber's own message is published to everyone.
    z1.send(&rsv1_frame(
        true,
        OP_TEXT,
        &deflate_message(data.as_bytes()),
    ));
    for sub in [&mut z1, &mut z2, &mut plain] {
        let (_, got, _) = sub.read_message_deflate();
        assert!(String::from_utf8(got).unwrap().starts_with("{\"id\":2,"));
    }
    // A short message travels uncompressed.
    assert_eq!(server.post("/channels/feed", b"hi").status, 201);
    assert_eq!(
        z2.read_message_deflate(),
        (OP_TEXT, b"{\"id\":3,\"data\":\"hi\"}".to_vec(), None)
    );
    // A replay on a compressed connection is compressed too.
    let mut late = open_deflate(&server, "/channels/feed/ws?after=0");
    let (_, first, compressed) = late.read_message_deflate();
    assert!(compressed.is_some());
    assert_eq!(String::from_utf8(first).unwrap(), expect);
}

#[test]
fn deflate_chat_members_receive_compressed_lines() {
    let server = Server::start(&[]);
    let mut a = open_deflate(&server, "/");
    let port_a = a.s.local_addr().unwrap().port();
    assert_eq!(
        a.read_message().1,
        format!("User{port_a} joined").as_bytes()
    );
    let mut b = Raw::open(&server, "/");
    a.read_message(); // b joined
    b.read_message();
    let text = json_text(600);
    a.send(&rsv1_frame(
        true,
        OP_TEXT,
        &deflate_message(text.as_bytes()),
    ));
    let line = format!("User{port_a}: {text}");
    let (_, got, compressed) = a.read_message_deflate();
    assert!(compressed.is_some());
    assert_eq!(String::from_utf8(got).unwrap(), line);
    let (_, got, compressed) = b.read_message_deflate();
    assert_eq!(compressed, None, "b did not offer compression");
    assert_eq!(String::from_utf8(got).unwrap(), line);
}

#[test]
fn deflate_trace_shows_rsv1_and_both_sizes() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_pushwire"))
        .args(["--addr", "127.0.0.1:0", "--trace"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr: std::net::SocketAddr = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap()
        .parse()
        .unwrap();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let req = format!(
        "GET /echo HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {RFC_KEY}\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Extensions: {BROWSER_OFFER}\r\n\r\n"
    );
    s.write_all(req.as_bytes()).unwrap();
    let (head, rest) = read_head(&mut s).unwrap();
    assert_eq!(head.status, 101);
    let mut raw = Raw {
        s,
        buf: rest,
        deflate: true,
    };
    let text = json_text(1024);
    let z = deflate_message(text.as_bytes());
    raw.send(&rsv1_frame(true, OP_TEXT, &z));
    let (_, _, back) = raw.read_message_deflate();
    let back = back.unwrap();
    // A 5-byte message sent in the 16-bit length form (legal, not minimal).
    let mut odd = vec![0x81u8, 0x80 | 126, 0, 5];
    odd.extend_from_slice(&MASK);
    odd.extend(b"Hello".iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    raw.send(&odd);
    raw.read_message();
    std::thread::sleep(Duration::from_millis(200));
    let _ = child.kill();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let _ = child.wait();
    let sizes_in = format!("deflate {} B, inflated {} B", z.len(), text.len());
    let sizes_out = format!("deflate {back} B, inflated {} B", text.len());
    assert!(
        err.contains("Sec-WebSocket-Extensions: permessage-deflate"),
        "{err}"
    );
    assert!(
        err.lines()
            .any(|l| l.contains("-> frame FIN=1 RSV=100 op=text") && l.contains(&sizes_in)),
        "no incoming compressed frame with '{sizes_in}' in:\n{err}"
    );
    assert!(
        err.lines()
            .any(|l| l.contains("<- frame FIN=1 RSV=100 op=text") && l.contains(&sizes_out)),
        "no outgoing compressed frame with '{sizes_out}' in:\n{err}"
    );
    assert!(
        err.contains("len=5 (16-bit)"),
        "the length form on the wire is not shown:\n{err}"
    );
}
