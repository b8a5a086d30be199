//! The HTTP layer, from the outside: framing, keep-alive, pipelining, limits,
//! timeouts, error answers and CORS, as docs/api.md "Running it" and "HTTP, errors
//! and limits" promise them.
//!
//! Every client here is a plain `std::net::TcpStream` writing hand-made bytes
//! (so that pipelining, malformed heads and byte-by-byte delivery are under
//! exact control), plus `curl` once to show a real client works.

mod common;

use common::{find, parse_json, wait_for, JsonValue, Server};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

// ---------------------------------------------------------------------------
// A buffered raw connection that can read several responses in a row.
// ---------------------------------------------------------------------------

/// One parsed response, with its status line.
#[derive(Debug)]
struct Resp {
    line: String,
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn header_count(&self, name: &str) -> usize {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .count()
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> JsonValue {
        parse_json(&self.text())
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.text()))
    }

    fn job_id(&self) -> String {
        self.json()
            .get("jobId")
            .and_then(|v| v.as_str())
            .unwrap_or_else(|| panic!("no jobId string in {:?}", self.text()))
            .to_string()
    }
}

/// A TCP connection plus the bytes received but not yet parsed, so that
/// pipelined answers that arrive in one segment are not lost.
struct Conn {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    fn open(server: &Server) -> Conn {
        Conn {
            s: server.connect(),
            buf: Vec::new(),
        }
    }

    fn send(&mut self, bytes: impl AsRef<[u8]>) {
        self.s.write_all(bytes.as_ref()).expect("write to server");
    }

    /// Writes `bytes` one at a time, each in its own `write` call.
    fn send_bytewise(&mut self, bytes: impl AsRef<[u8]>) {
        for b in bytes.as_ref() {
            self.s
                .write_all(std::slice::from_ref(b))
                .expect("write one byte");
            self.s.flush().unwrap();
            std::thread::sleep(Duration::from_micros(500));
        }
    }

    fn fill(&mut self) -> std::io::Result<usize> {
        let mut chunk = [0u8; 16384];
        let n = self.s.read(&mut chunk)?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    /// Makes sure `buf` holds at least `want` bytes.
    fn fill_to(&mut self, want: usize) -> Result<(), String> {
        while self.buf.len() < want {
            match self.fill() {
                Ok(0) => {
                    return Err(format!(
                        "connection closed mid-body; have {:?}",
                        String::from_utf8_lossy(&self.buf)
                    ))
                }
                Ok(_) => {}
                Err(e) => return Err(format!("read error mid-body: {e}")),
            }
        }
        Ok(())
    }

    fn read_resp(&mut self, head_only: bool) -> Resp {
        self.try_read_resp(head_only)
            .unwrap_or_else(|e| panic!("no response: {e}"))
    }

    fn try_read_resp(&mut self, head_only: bool) -> Result<Resp, String> {
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            match self.fill() {
                Ok(0) => {
                    return Err(format!(
                        "connection closed before a whole response head; got {:?}",
                        String::from_utf8_lossy(&self.buf)
                    ))
                }
                Ok(_) => {}
                Err(e) => {
                    return Err(format!(
                        "read error before a response head: {e}; got {:?}",
                        String::from_utf8_lossy(&self.buf)
                    ))
                }
            }
        };
        let head = String::from_utf8(self.buf[..head_end].to_vec())
            .map_err(|_| "head is not UTF-8".to_string())?;
        let mut lines = head.split("\r\n");
        let line = lines.next().unwrap().to_string();
        if !line.starts_with("HTTP/1.") {
            return Err(format!(
                "not a status line: {line:?} (stray body bytes before it?)"
            ));
        }
        let status: u16 = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad status line {line:?}"))?;
        let mut headers = Vec::new();
        for l in lines.filter(|l| !l.is_empty()) {
            let (k, v) = l
                .split_once(':')
                .ok_or_else(|| format!("header line without colon: {l:?}"))?;
            headers.push((k.to_string(), v.trim().to_string()));
        }
        self.buf.drain(..head_end);
        let mut r = Resp {
            line,
            status,
            headers,
            body: Vec::new(),
        };
        if head_only || status == 204 || status == 304 || (100..200).contains(&status) {
            return Ok(r);
        }
        if let Some(len) = r.header("content-length") {
            let len: usize = len
                .parse()
                .map_err(|_| format!("bad Content-Length {len:?}"))?;
            self.fill_to(len)?;
            r.body = self.buf.drain(..len).collect();
        } else if r
            .header("transfer-encoding")
            .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
        {
            loop {
                let eol = loop {
                    if let Some(i) = find(&self.buf, b"\r\n") {
                        break i;
                    }
                    let have = self.buf.len();
                    self.fill_to(have + 1)?;
                };
                let size_txt = String::from_utf8_lossy(&self.buf[..eol]).to_string();
                let size = usize::from_str_radix(size_txt.split(';').next().unwrap().trim(), 16)
                    .map_err(|_| format!("bad chunk size {size_txt:?}"))?;
                self.buf.drain(..eol + 2);
                if size == 0 {
                    // Trailer section up to the blank line.
                    loop {
                        let eol = loop {
                            if let Some(i) = find(&self.buf, b"\r\n") {
                                break i;
                            }
                            let have = self.buf.len();
                            self.fill_to(have + 1)?;
                        };
                        self.buf.drain(..eol + 2);
                        if eol == 0 {
                            break;
                        }
                    }
                    break;
                }
                self.fill_to(size + 2)?;
                r.body.extend(self.buf.drain(..size));
                self.buf.drain(..2);
            }
        } else {
            // Close-delimited.
            let mut rest = Vec::new();
            let _ = self.s.read_to_end(&mut rest);
            self.buf.extend_from_slice(&rest);
            r.body = std::mem::take(&mut self.buf);
        }
        Ok(r)
    }

    /// Asserts that the server closes this connection within `within`
    /// without sending any (further) byte; returns how long that took.
    fn expect_closed(&mut self, within: Duration) -> Duration {
        assert!(
            self.buf.is_empty(),
            "unexpected bytes after the last response: {:?}",
            String::from_utf8_lossy(&self.buf)
        );
        let t0 = Instant::now();
        self.s.set_read_timeout(Some(within)).unwrap();
        let mut chunk = [0u8; 4096];
        let r = self.s.read(&mut chunk);
        self.s
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        match r {
            Ok(0) => t0.elapsed(),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => t0.elapsed(),
            Ok(n) => panic!(
                "expected a close, got bytes: {:?}",
                String::from_utf8_lossy(&chunk[..n])
            ),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("connection still open after {within:?}")
            }
            Err(e) => panic!("unexpected read error while waiting for the close: {e}"),
        }
    }
}

// ---------------------------------------------------------------------------
// Small helpers.
// ---------------------------------------------------------------------------

const HOST: &str = "pushwire.test";

fn get(target: &str) -> String {
    format!("GET {target} HTTP/1.1\r\nHost: {HOST}\r\n\r\n")
}

fn post(target: &str, body: &str) -> String {
    format!(
        "POST {target} HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// Asserts the contract's error shape: `status`, JSON content type and a
/// body `{"error":"<human sentence>"}`.
fn assert_error(r: &Resp, status: u16) {
    assert_eq!(
        r.status,
        status,
        "status of {:?} (body {:?})",
        r.line,
        r.text()
    );
    let ct = r
        .header("content-type")
        .unwrap_or_else(|| panic!("{status} without Content-Type"));
    assert!(
        ct.to_ascii_lowercase().starts_with("application/json"),
        "{status} Content-Type is {ct:?}"
    );
    let j = r.json();
    assert_eq!(
        j.keys(),
        vec!["error"],
        "error body {:?} should be exactly {{\"error\":...}}",
        r.text()
    );
    let msg = j
        .get("error")
        .and_then(|e| e.as_str())
        .unwrap_or_else(|| panic!("error is not a string: {:?}", r.text()));
    assert!(
        msg.trim().len() >= 3 && msg.chars().any(|c| c.is_alphabetic()) && msg.trim().contains(' '),
        "error message {msg:?} is not a human sentence"
    );
}

/// A fresh connection still gets normal answers: submit a job and read it.
fn assert_still_serving(server: &Server) {
    let mut c = Conn::open(server);
    c.send(post("/submit?duration_ms=0", ""));
    let r = c.read_resp(false);
    assert_eq!(
        r.status,
        202,
        "server no longer serving: submit answered {:?} {:?}",
        r.line,
        r.text()
    );
    let id = r.job_id();
    c.send(get(&format!("/checkstatus?jobId={id}")));
    let r = c.read_resp(false);
    assert_eq!(
        r.status,
        200,
        "server no longer serving: checkstatus answered {:?} {:?}",
        r.line,
        r.text()
    );
    assert_eq!(r.job_id(), id);
}

/// Sends `req` on a fresh connection, expects an error `status`, then the
/// connection closed, then the server still serving others.
fn assert_framing_error(server: &Server, req: &[u8], status: u16) {
    let mut c = Conn::open(server);
    // The server may close while we are still writing; that is fine.
    let _ = c.s.write_all(req);
    let r = c.read_resp(false);
    assert_error(&r, status);
    c.expect_closed(Duration::from_secs(2));
    assert_still_serving(server);
}

/// Submits a job on a fresh connection and returns its id.
fn submit(server: &Server, duration_ms: u64) -> String {
    let mut c = Conn::open(server);
    c.send(post(&format!("/submit?duration_ms={duration_ms}"), ""));
    let r = c.read_resp(false);
    assert_eq!(r.status, 202, "submit: {:?} {:?}", r.line, r.text());
    r.job_id()
}

fn job_num(id: &str) -> u64 {
    id.strip_prefix("job:")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("bad job id {id:?}"))
}

/// Runs the binary with `args`, killing it after `limit`. Returns
/// (exit success, exit code, stdout + stderr).
fn run_binary(args: &[&str], limit: Duration) -> (bool, Option<i32>, String) {
    let (status, text) = common::run_to_exit(args, limit);
    let status = status.unwrap_or_else(|| {
        panic!(
            "`pushwire {}` did not exit within {limit:?}; output so far: {text:?}",
            args.join(" ")
        )
    });
    (status.success(), status.code(), text)
}

/// Parses an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) to Unix seconds.
fn parse_imf_fixdate(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 29 || !s.ends_with(" GMT") || &s[3..5] != ", " {
        return None;
    }
    let wd = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
        .iter()
        .position(|d| *d == &s[..3])?;
    let day: i64 = s[5..7].parse().ok()?;
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = months.iter().position(|m| *m == &s[8..11])? as i64 + 1;
    let year: i64 = s[12..16].parse().ok()?;
    let (h, mi, se): (i64, i64, i64) = (
        s[17..19].parse().ok()?,
        s[20..22].parse().ok()?,
        s[23..25].parse().ok()?,
    );
    if &s[16..17] != " " || &s[19..20] != ":" || &s[22..23] != ":" {
        return None;
    }
    // Days from civil (Howard Hinnant).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    // 1970-01-01 was a Thursday (index 3 with Monday = 0).
    if (days + 3).rem_euclid(7) as usize != wd {
        return None;
    }
    Some(days * 86400 + h * 3600 + mi * 60 + se)
}

fn tokens(list: &str) -> Vec<String> {
    let mut v: Vec<String> = list
        .split(',')
        .map(|t| t.trim().to_ascii_uppercase())
        .filter(|t| !t.is_empty())
        .collect();
    v.sort();
    v
}

// ---------------------------------------------------------------------------
// Startup and command line.
// ---------------------------------------------------------------------------

#[test]
fn startup_first_line_names_the_real_port() {
    let server = Server::start(&[]);
    assert_eq!(server.addr.ip().to_string(), "127.0.0.1");
    assert_ne!(
        server.addr.port(),
        0,
        "the first line must carry the bound port, not 0"
    );
    // And that port is really the server's.
    assert_still_serving(&server);
}

#[test]
fn help_lists_every_flag_with_its_default() {
    let (ok, code, text) = run_binary(&["--help"], Duration::from_secs(10));
    assert!(ok, "--help exited with {code:?}; output {text:?}");
    // Flag entries: a line whose first non-blank character is '-', plus
    // its continuation lines.
    let mut entries: Vec<String> = Vec::new();
    for line in text.lines() {
        if line.trim_start().starts_with('-') {
            entries.push(line.to_string());
        } else if let Some(last) = entries.last_mut() {
            last.push('\n');
            last.push_str(line);
        }
    }
    let names_flag = |first_line: &str, flag: &str| {
        first_line.match_indices(flag).any(|(i, _)| {
            let after = first_line[i + flag.len()..].chars().next();
            !after.is_some_and(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
    };
    let has_number = |entry: &str, n: &str| {
        entry.match_indices(n).any(|(i, _)| {
            let before = entry[..i].chars().next_back();
            let after = entry[i + n.len()..].chars().next();
            !before.is_some_and(|c| c.is_ascii_digit())
                && !after.is_some_and(|c| c.is_ascii_digit())
        })
    };
    let flags: &[(&str, Option<&str>)] = &[
        ("--max-conns", Some("10000")),
        ("--max-header-bytes", Some("16384")),
        ("--max-body-bytes", Some("1048576")),
        ("--max-message-bytes", Some("1048576")),
        ("--header-timeout-ms", Some("10000")),
        ("--idle-timeout-ms", Some("60000")),
        ("--ws-ping-ms", Some("30000")),
        ("--sse-heartbeat-ms", Some("15000")),
        ("--history", Some("1000")),
        ("--send-buffer-bytes", Some("1048576")),
        ("--allow-origin", None),
        ("--webhook-allow", None),
        ("--trace", None),
        ("--addr", Some("127.0.0.1:8080")),
    ];
    let mut problems = Vec::new();
    for (flag, default) in flags {
        let entry = entries
            .iter()
            .find(|e| names_flag(e.lines().next().unwrap_or(""), flag));
        match (entry, default) {
            (None, _) => problems.push(format!("{flag} is not listed")),
            (Some(e), Some(d)) if !has_number(e, d) => {
                problems.push(format!("{flag} does not show its default {d}: {e:?}"))
            }
            _ => {}
        }
    }
    assert!(
        problems.is_empty(),
        "--help problems: {problems:#?}\nfull output:\n{text}"
    );
}

#[test]
fn unknown_flag_exits_nonzero_with_a_message() {
    let (ok, code, text) = run_binary(
        &["--addr", "127.0.0.1:0", "--frobnicate"],
        Duration::from_secs(10),
    );
    assert!(
        !ok,
        "an unknown flag must fail; exit {code:?}, output {text:?}"
    );
    assert!(
        text.contains("frobnicate"),
        "the message should name the unknown flag: {text:?}"
    );
    assert!(
        !text.contains("listening on"),
        "must not start serving with an unknown flag: {text:?}"
    );
}

// ---------------------------------------------------------------------------
// Response basics.
// ---------------------------------------------------------------------------

#[test]
fn responses_carry_date_length_and_json_type() {
    let server = Server::start(&[]);
    let id = submit(&server, 0);
    let mut c = Conn::open(&server);
    let reqs: Vec<(String, u16)> = vec![
        (post("/submit?duration_ms=5000", ""), 202),
        (get(&format!("/checkstatus?jobId={id}")), 200),
        (get("/nope"), 404),
        (
            format!("DELETE /submit HTTP/1.1\r\nHost: {HOST}\r\n\r\n"),
            405,
        ),
        (get("/checkstatus?jobId=job:x"), 400),
        (get("/checkstatus?jobId=job:999999"), 404),
    ];
    for (req, want) in reqs {
        c.send(&req);
        let r = c.read_resp(false);
        let first = req.lines().next().unwrap();
        assert_eq!(r.status, want, "{first}: {:?} {:?}", r.line, r.text());
        assert!(
            r.line.starts_with("HTTP/1.1 "),
            "{first}: status line {:?}",
            r.line
        );
        // Date: one IMF-fixdate close to now.
        assert_eq!(
            r.header_count("date"),
            1,
            "{first}: exactly one Date header: {:?}",
            r.headers
        );
        let date = r.header("date").unwrap();
        let t = parse_imf_fixdate(date)
            .unwrap_or_else(|| panic!("{first}: Date {date:?} is not an IMF-fixdate"));
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        assert!(
            (t - now).abs() <= 5,
            "{first}: Date {date:?} is {}s away from now",
            t - now
        );
        // Content-Length: one, equal to the body length.
        assert_eq!(
            r.header_count("content-length"),
            1,
            "{first}: exactly one Content-Length: {:?}",
            r.headers
        );
        assert_eq!(
            r.header("content-length")
                .unwrap()
                .parse::<usize>()
                .unwrap(),
            r.body.len()
        );
        let ct = r
            .header("content-type")
            .unwrap_or_else(|| panic!("{first}: no Content-Type"));
        assert!(
            ct.to_ascii_lowercase().starts_with("application/json"),
            "{first}: Content-Type {ct:?}"
        );
        r.json();
        if want >= 400 {
            assert_error(&r, want);
        }
    }
}

// ---------------------------------------------------------------------------
// Connection management.
// ---------------------------------------------------------------------------

#[test]
fn keep_alive_serves_two_requests_on_one_connection() {
    let server = Server::start(&[]);
    let mut c = Conn::open(&server);
    c.send(post("/submit?duration_ms=0", ""));
    let r = c.read_resp(false);
    assert_eq!(r.status, 202);
    let id = r.job_id();
    c.send(get(&format!("/checkstatus?jobId={id}")));
    let r = c.read_resp(false);
    assert_eq!(
        r.status,
        200,
        "second request on the same connection: {:?}",
        r.text()
    );
    let j = r.json();
    assert_eq!(j.get("jobId").and_then(|v| v.as_str()), Some(id.as_str()));
    assert_eq!(j.get("done").and_then(|v| v.as_bool()), Some(true));
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let server = Server::start(&[]);
    let a = submit(&server, 100_000);
    let b = submit(&server, 100_000);
    let mut c = Conn::open(&server);
    let mut batch = String::new();
    batch.push_str(&post("/submit?duration_ms=100000", ""));
    batch.push_str(&post("/submit?duration_ms=100000", "xyz"));
    batch.push_str(&get(&format!("/checkstatus?jobId={a}")));
    batch.push_str(&get(&format!("/checkstatus?jobId={b}")));
    batch.push_str(&get(&format!("/checkstatus?jobId={a}")));
    batch.push_str(&get("/nope"));
    c.send(batch.as_bytes());
    let r1 = c.read_resp(false);
    let r2 = c.read_resp(false);
    assert_eq!(
        (r1.status, r2.status),
        (202, 202),
        "{:?} / {:?}",
        r1.text(),
        r2.text()
    );
    let (c1, c2) = (r1.job_id(), r2.job_id());
    assert!(
        job_num(&b) < job_num(&c1) && job_num(&c1) < job_num(&c2),
        "ids not increasing: {a} {b} {c1} {c2}"
    );
    for want in [&a, &b, &a] {
        let r = c.read_resp(false);
        assert_eq!(r.status, 200, "{:?}", r.text());
        assert_eq!(&r.job_id(), want, "pipelined answers out of order");
    }
    assert_error(&c.read_resp(false), 404);
}

#[test]
fn connection_close_closes_after_the_answer() {
    let server = Server::start(&[]);
    let id = submit(&server, 0);
    let mut c = Conn::open(&server);
    // A second, pipelined request after `Connection: close` must not be served.
    let req = format!(
        "GET /checkstatus?jobId={id} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n{}",
        get("/nope")
    );
    c.send(req);
    let r = c.read_resp(false);
    assert_eq!(r.status, 200);
    assert_eq!(r.job_id(), id);
    c.expect_closed(Duration::from_secs(2));
}

#[test]
fn http10_without_keep_alive_closes_after_the_answer() {
    let server = Server::start(&[]);
    let id = submit(&server, 0);
    let mut c = Conn::open(&server);
    c.send(format!("GET /checkstatus?jobId={id} HTTP/1.0\r\n\r\n"));
    let r = c.read_resp(false);
    assert_eq!(r.status, 200, "{:?} {:?}", r.line, r.text());
    assert!(r.line.starts_with("HTTP/1."), "{:?}", r.line);
    assert_eq!(r.job_id(), id);
    c.expect_closed(Duration::from_secs(2));
}

#[test]
fn http10_keep_alive_is_honoured() {
    // An HTTP/1.0 client asks for keep-alive explicitly and only knows it
    // was granted when the answer says `Connection: keep-alive` (RFC 2068
    // 19.7.1, RFC 9112 9.3 and Appendix C.2.2; what nginx and `ab -k` do).
    let server = Server::start(&[]);
    let id = submit(&server, 0);
    let mut c = Conn::open(&server);
    let req = format!("GET /checkstatus?jobId={id} HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    c.send(&req);
    let r = c.read_resp(false);
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-length").is_some(),
        "a kept-alive HTTP/1.0 answer needs Content-Length"
    );
    assert!(
        r.header("connection")
            .is_some_and(|v| v.to_ascii_lowercase().contains("keep-alive")),
        "an HTTP/1.0 keep-alive request was answered without `Connection: keep-alive`: {:?}",
        r.headers
    );
    c.send(&req);
    let r = c.read_resp(false);
    assert_eq!(
        r.status, 200,
        "second HTTP/1.0 request on the kept-alive connection"
    );
    assert_eq!(r.job_id(), id);
}

#[test]
fn http11_request_without_host_or_with_two_hosts_is_400() {
    // RFC 9112 3.2: "A server MUST respond with a 400 (Bad Request) status
    // code to any HTTP/1.1 request message that lacks a Host header field
    // and to any request message that contains more than one Host header
    // field line" (nginx does so too).
    let server = Server::start(&[]);
    assert_framing_error(
        &server,
        b"GET /checkstatus?jobId=job:1 HTTP/1.1\r\n\r\n",
        400,
    );
    assert_framing_error(
        &server,
        b"GET /checkstatus?jobId=job:1 HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        400,
    );
}

#[test]
fn expect_100_continue_gets_an_interim_answer() {
    // RFC 9110 10.1.1: a server that gets `Expect: 100-continue` with a
    // body to come sends 100 (Continue) at once or a final status; clients
    // that send it (curl for large uploads, .NET, many HTTP libraries)
    // otherwise stall until their own timeout before sending the body.
    let server = Server::start(&["--max-body-bytes", "100"]);
    let mut c = Conn::open(&server);
    c.send(format!(
        "POST /submit?duration_ms=0 HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
    ));
    c.s.set_read_timeout(Some(Duration::from_millis(800)))
        .unwrap();
    let interim = c.try_read_resp(true);
    c.s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let interim = interim.unwrap_or_else(|e| {
        panic!("no 100 Continue within 800 ms of an Expect: 100-continue head: {e}")
    });
    assert_eq!(interim.status, 100, "{:?}", interim.line);
    c.send("hello");
    let r = c.read_resp(false);
    assert_eq!(r.status, 202, "{:?}", r.text());
    // A body that is too large: the final status at once, no 100.
    let mut c = Conn::open(&server);
    c.send(format!(
        "POST /submit?duration_ms=0 HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 1000\r\nExpect: 100-continue\r\n\r\n"
    ));
    let r = c.read_resp(false);
    assert_error(&r, 413);
}

#[test]
fn long_pipeline_is_answered_completely_in_order() {
    let server = Server::start(&[]);
    let ids: Vec<String> = (0..3).map(|_| submit(&server, 0)).collect();
    let mut c = Conn::open(&server);
    let mut batch = String::new();
    for i in 0..200 {
        if i % 10 == 9 {
            batch.push_str(&get("/nope"));
        } else {
            batch.push_str(&get(&format!("/checkstatus?jobId={}", ids[i % 3])));
        }
    }
    c.send(batch.as_bytes());
    for i in 0..200 {
        let r = c.read_resp(false);
        if i % 10 == 9 {
            assert_eq!(r.status, 404, "answer {i}");
        } else {
            assert_eq!(r.status, 200, "answer {i}");
            assert_eq!(r.job_id(), ids[i % 3], "answer {i} out of order");
        }
    }
}

#[test]
fn head_matches_get_without_a_body() {
    let server = Server::start(&[]);
    let id = submit(&server, 0);
    let target = format!("/checkstatus?jobId={id}");
    let mut c = Conn::open(&server);
    c.send(format!(
        "HEAD {target} HTTP/1.1\r\nHost: {HOST}\r\n\r\n{}HEAD /nope HTTP/1.1\r\nHost: {HOST}\r\n\r\n{}",
        get(&target),
        get("/nope")
    ));
    // If HEAD sent body bytes, the next parse would hit them instead of a
    // status line and fail.
    let head = c.read_resp(true);
    let full = c.read_resp(false);
    assert_eq!(head.status, 200);
    assert_eq!(full.status, 200);
    for h in ["content-type", "content-length"] {
        assert_eq!(head.header(h), full.header(h), "HEAD and GET differ in {h}");
    }
    assert!(head.header("date").is_some(), "HEAD answer without Date");
    assert_eq!(full.job_id(), id);
    let head404 = c.read_resp(true);
    assert_eq!(head404.status, 404);
    let get404 = c.read_resp(false);
    assert_error(&get404, 404);
    assert_eq!(
        head404.header("content-length"),
        get404.header("content-length")
    );
}

// ---------------------------------------------------------------------------
// Error statuses.
// ---------------------------------------------------------------------------

#[test]
fn unknown_path_is_404() {
    let server = Server::start(&[]);
    let mut c = Conn::open(&server);
    for p in ["/nope", "/submitx", "/checkstatus/extra", "/SUBMIT"] {
        c.send(get(p));
        let r = c.read_resp(false);
        assert_error(&r, 404);
    }
}

#[test]
fn wrong_method_is_405_with_allow() {
    let server = Server::start(&[]);
    let mut c = Conn::open(&server);
    c.send(format!("DELETE /submit HTTP/1.1\r\nHost: {HOST}\r\n\r\n"));
    let r = c.read_resp(false);
    assert_error(&r, 405);
    let allow = r.header("allow").expect("405 without Allow");
    assert!(
        tokens(allow).contains(&"POST".to_string()),
        "Allow {allow:?} for /submit lacks POST"
    );
    assert!(
        !tokens(allow).contains(&"DELETE".to_string()),
        "Allow {allow:?} lists the refused method"
    );

    c.send(post("/checkstatus?jobId=job:1", ""));
    let r = c.read_resp(false);
    assert_error(&r, 405);
    let allow = tokens(r.header("allow").expect("405 without Allow"));
    assert!(
        allow.contains(&"GET".to_string()) && allow.contains(&"HEAD".to_string()),
        "Allow {allow:?} for /checkstatus"
    );

    c.send(format!(
        "PUT /checkstatus?jobId=job:1 HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 2\r\n\r\nhi"
    ));
    assert_error(&c.read_resp(false), 405);
    // A 405 is not a framing error: the connection stays usable.
    c.send(get("/nope"));
    assert_error(&c.read_resp(false), 404);
}

#[test]
fn space_before_colon_is_400_and_close() {
    let server = Server::start(&[]);
    assert_framing_error(
        &server,
        b"GET /checkstatus?jobId=job:1 HTTP/1.1\r\nHost : x\r\n\r\n",
        400,
    );
}

#[test]
fn garbage_request_line_is_400_and_close() {
    let server = Server::start(&[]);
    assert_framing_error(&server, b"HELLO\r\n\r\n", 400);
    assert_framing_error(&server, b"GET /nope HTTP/1.1 extra\r\nHost: x\r\n\r\n", 400);
}

#[test]
fn content_length_with_transfer_encoding_is_400_and_close() {
    let server = Server::start(&[]);
    assert_framing_error(
        &server,
        b"POST /submit?duration_ms=0 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    );
}

#[test]
fn conflicting_content_lengths_are_400_and_close() {
    let server = Server::start(&[]);
    assert_framing_error(
        &server,
        b"POST /submit?duration_ms=0 HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 6\r\n\r\nhello!",
        400,
    );
    assert_framing_error(
        &server,
        b"POST /submit?duration_ms=0 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        400,
    );
    assert_framing_error(
        &server,
        b"POST /submit?duration_ms=0 HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\nhello",
        400,
    );
}

#[test]
fn transfer_encoding_not_ending_in_chunked_is_400_and_close() {
    let server = Server::start(&[]);
    assert_framing_error(
        &server,
        b"POST /submit?duration_ms=0 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nabc",
        400,
    );
    assert_framing_error(
        &server,
        b"POST /submit?duration_ms=0 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
        400,
    );
}

#[test]
fn coding_before_chunked_is_501_and_close() {
    let server = Server::start(&[]);
    assert_framing_error(
        &server,
        b"POST /submit?duration_ms=0 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        501,
    );
}

#[test]
fn other_http_versions_are_505_and_close() {
    let server = Server::start(&[]);
    assert_framing_error(
        &server,
        b"GET /checkstatus?jobId=job:1 HTTP/2.0\r\nHost: x\r\n\r\n",
        505,
    );
    assert_framing_error(
        &server,
        b"GET /checkstatus?jobId=job:1 HTTP/1.2\r\nHost: x\r\n\r\n",
        505,
    );
}

#[test]
fn body_over_max_body_bytes_is_413_and_close() {
    let server = Server::start(&["--max-body-bytes", "100"]);
    // Exactly at the limit is fine, and keeps the connection.
    let mut c = Conn::open(&server);
    c.send(post("/submit?duration_ms=0", &"a".repeat(100)));
    assert_eq!(
        c.read_resp(false).status,
        202,
        "a body of exactly --max-body-bytes must be accepted"
    );
    c.send(get("/nope"));
    assert_eq!(c.read_resp(false).status, 404);
    // One byte over, announced by Content-Length.
    assert_framing_error(
        &server,
        post("/submit?duration_ms=0", &"a".repeat(101)).as_bytes(),
        413,
    );
    // Over the limit in chunks.
    let chunked = format!(
        "POST /submit?duration_ms=0 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n50\r\n{}\r\n50\r\n{}\r\n0\r\n\r\n",
        "b".repeat(0x50),
        "c".repeat(0x50)
    );
    assert_framing_error(&server, chunked.as_bytes(), 413);
}

#[test]
fn request_line_over_max_header_bytes_is_414_and_close() {
    let server = Server::start(&["--max-header-bytes", "1024"]);
    // Under the limit: an ordinary answer.
    let mut c = Conn::open(&server);
    c.send(get(&format!("/nope?pad={}", "a".repeat(800))));
    assert_error(&c.read_resp(false), 404);
    let req = format!(
        "GET /checkstatus?jobId=job:1&pad={} HTTP/1.1\r\nHost: x\r\n\r\n",
        "a".repeat(1500)
    );
    assert_framing_error(&server, req.as_bytes(), 414);
}

#[test]
fn header_section_over_max_header_bytes_is_431_and_close() {
    let server = Server::start(&["--max-header-bytes", "1024"]);
    let mut req = String::from("GET /checkstatus?jobId=job:1 HTTP/1.1\r\nHost: x\r\n");
    for i in 0..30 {
        req.push_str(&format!("X-Pad-{i:02}: {}\r\n", "b".repeat(50)));
    }
    req.push_str("\r\n");
    assert!(req.len() > 1500);
    assert_framing_error(&server, req.as_bytes(), 431);
}

// ---------------------------------------------------------------------------
// Timeouts and the connection limit.
// ---------------------------------------------------------------------------

#[test]
fn slowloris_gets_408_then_close() {
    let server = Server::start(&["--header-timeout-ms", "300", "--idle-timeout-ms", "5000"]);
    // A head that stops before its blank line.
    let mut c = Conn::open(&server);
    let t0 = Instant::now();
    c.send("GET /checkstatus?jobId=job:1 HTTP/1.1\r\nHost: x\r\n");
    let r = c.read_resp(false);
    let took = t0.elapsed();
    assert_error(&r, 408);
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_millis(1500),
        "408 after {took:?}, expected about 300 ms"
    );
    c.expect_closed(Duration::from_secs(1));

    // A head trickled one byte every 50 ms: the timer runs from the first
    // byte and is not reset by later ones.
    let mut c = Conn::open(&server);
    c.s.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let trickle = format!(
        "GET /nope HTTP/1.1\r\nHost: x\r\nX-Slow: {}\r\n\r\n",
        "z".repeat(100)
    );
    let t0 = Instant::now();
    let mut got_answer = false;
    for b in trickle.as_bytes() {
        if c.s.write_all(std::slice::from_ref(b)).is_err() {
            break;
        }
        match c.fill() {
            Ok(0) => break,
            Ok(_) if find(&c.buf, b"\r\n\r\n").is_some() => {
                got_answer = true;
                break;
            }
            _ => {}
        }
        if t0.elapsed() > Duration::from_secs(3) {
            break;
        }
    }
    let took = t0.elapsed();
    c.s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert!(
        got_answer || !c.buf.is_empty(),
        "no answer to a trickled head after {took:?}"
    );
    let r = c.read_resp(false);
    assert_error(&r, 408);
    assert!(
        took < Duration::from_millis(1500),
        "trickled head answered only after {took:?}"
    );
    c.expect_closed(Duration::from_secs(1));
    assert_still_serving(&server);
}

#[test]
fn silent_connection_is_closed_after_header_timeout() {
    let server = Server::start(&["--header-timeout-ms", "300", "--idle-timeout-ms", "5000"]);
    let mut c = Conn::open(&server);
    let took = c.expect_closed(Duration::from_secs(3));
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_millis(1500),
        "silent connection closed after {took:?}, expected about 300 ms"
    );
    assert_still_serving(&server);
}

#[test]
fn idle_keep_alive_connection_is_closed_after_idle_timeout() {
    let server = Server::start(&["--header-timeout-ms", "5000", "--idle-timeout-ms", "300"]);
    let mut c = Conn::open(&server);
    c.send(get("/nope"));
    assert_eq!(c.read_resp(false).status, 404);
    std::thread::sleep(Duration::from_millis(120));
    c.send(get("/nope"));
    assert_eq!(
        c.read_resp(false).status,
        404,
        "connection must live until the idle timeout"
    );
    let took = c.expect_closed(Duration::from_secs(3));
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_millis(1500),
        "idle connection closed after {took:?}, expected about 300 ms"
    );
    assert_still_serving(&server);
}

#[test]
fn max_conns_refuses_with_503_then_recovers() {
    let server = Server::start(&["--max-conns", "5"]);
    let mut conns: Vec<Conn> = (0..5)
        .map(|_| {
            let mut c = Conn::open(&server);
            c.send(get("/nope"));
            assert_eq!(c.read_resp(false).status, 404);
            c
        })
        .collect();
    // The sixth: a 503 (sent at once or as the answer to its request), then closed.
    let mut sixth = Conn::open(&server);
    sixth
        .s
        .set_read_timeout(Some(Duration::from_millis(1000)))
        .unwrap();
    match sixth.fill() {
        Ok(_) => {}
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            let _ = sixth.s.write_all(get("/nope").as_bytes());
        }
        Err(e) => panic!("sixth connection: {e}"),
    }
    sixth
        .s
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let r = sixth.read_resp(false);
    assert_error(&r, 503);
    sixth.expect_closed(Duration::from_secs(2));
    // The five are unaffected.
    for c in conns.iter_mut() {
        c.send(get("/nope"));
        assert_eq!(c.read_resp(false).status, 404);
    }
    // Free two slots: new connections are served again.
    conns.truncate(3);
    let served = wait_for(Duration::from_secs(3), || {
        let mut c = Conn::open(&server);
        c.send(get("/nope"));
        match c.try_read_resp(false) {
            Ok(r) if r.status == 404 => Some(()),
            _ => {
                std::thread::sleep(Duration::from_millis(50));
                None
            }
        }
    });
    assert!(
        served.is_some(),
        "after closing two of five connections, a new one is still refused"
    );
    for c in conns.iter_mut() {
        c.send(get("/nope"));
        assert_eq!(c.read_resp(false).status, 404);
    }
}

// ---------------------------------------------------------------------------
// Request bodies.
// ---------------------------------------------------------------------------

#[test]
fn chunked_request_bodies_are_accepted() {
    let server = Server::start(&[]);
    let mut c = Conn::open(&server);
    let head = format!("POST /submit?duration_ms=100 HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: chunked\r\n\r\n");
    c.send(format!(
        "{head}0\r\n\r\n{head}5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n{}",
        get("/nope")
    ));
    let r1 = c.read_resp(false);
    assert_eq!(r1.status, 202, "empty chunked body: {:?}", r1.text());
    let r2 = c.read_resp(false);
    assert_eq!(r2.status, 202, "two-chunk body: {:?}", r2.text());
    assert!(job_num(&r1.job_id()) < job_num(&r2.job_id()));
    // The pipelined request after the bodies proves they were consumed exactly.
    assert_error(&c.read_resp(false), 404);
}

#[test]
fn chunked_body_in_tiny_writes_is_accepted() {
    let server = Server::start(&[]);
    let mut c = Conn::open(&server);
    c.send(format!("POST /submit?duration_ms=100 HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: chunked\r\n\r\n"));
    c.send_bytewise("3\r\nabc\r\nA\r\n0123456789\r\n1\r\nz\r\n0\r\n\r\n");
    let r = c.read_resp(false);
    assert_eq!(r.status, 202, "{:?}", r.text());
    let id = r.job_id();
    c.send(get(&format!("/checkstatus?jobId={id}")));
    let r = c.read_resp(false);
    assert_eq!(r.status, 200);
    assert_eq!(r.job_id(), id);
}

#[test]
fn chunk_extensions_and_trailers_are_accepted() {
    // RFC 9112 7.1.1 (unknown chunk extensions are ignored) and 7.1.2
    // (a trailer section may follow the last chunk).
    let server = Server::start(&[]);
    let mut c = Conn::open(&server);
    c.send(format!(
        "POST /submit?duration_ms=0 HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: chunked\r\n\r\n5;name=value\r\nhello\r\n0\r\nX-Trailer: yes\r\n\r\n{}",
        get("/nope")
    ));
    let r = c.read_resp(false);
    assert_eq!(r.status, 202, "{:?}", r.text());
    assert_error(&c.read_resp(false), 404);
}

#[test]
fn malformed_chunked_body_is_400_and_close() {
    let server = Server::start(&[]);
    let head =
        "POST /submit?duration_ms=0 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_framing_error(
        &server,
        format!("{head}zz\r\nhello\r\n0\r\n\r\n").as_bytes(),
        400,
    );
    // Chunk data not followed by CRLF.
    assert_framing_error(
        &server,
        format!("{head}5\r\nhelloXY0\r\n\r\n").as_bytes(),
        400,
    );
}

#[test]
fn request_without_length_has_an_empty_body() {
    let server = Server::start(&[]);
    let mut c = Conn::open(&server);
    c.send(format!(
        "POST /submit?duration_ms=0 HTTP/1.1\r\nHost: {HOST}\r\n\r\n{}",
        get("/nope")
    ));
    let r = c.read_resp(false);
    assert_eq!(r.status, 202, "{:?}", r.text());
    r.job_id();
    assert_error(&c.read_resp(false), 404);
}

#[test]
fn request_written_one_byte_at_a_time_is_answered() {
    let server = Server::start(&[]);
    let mut c = Conn::open(&server);
    c.send_bytewise(post("/submit?duration_ms=0", "ab"));
    let r = c.read_resp(false);
    assert_eq!(r.status, 202, "{:?}", r.text());
    let id = r.job_id();
    c.send_bytewise(get(&format!("/checkstatus?jobId={id}")));
    let r = c.read_resp(false);
    assert_eq!(r.status, 200);
    assert_eq!(r.job_id(), id);
}

// ---------------------------------------------------------------------------
// CORS.
// ---------------------------------------------------------------------------

fn with_origin(method: &str, target: &str, host: &str, origin: Option<&str>) -> String {
    let mut s = format!("{method} {target} HTTP/1.1\r\nHost: {host}\r\n");
    if let Some(o) = origin {
        s.push_str(&format!("Origin: {o}\r\n"));
    }
    if method == "POST" {
        s.push_str("Content-Length: 0\r\n");
    }
    s.push_str("\r\n");
    s
}

#[test]
fn cors_allow_list_is_enforced() {
    let server = Server::start(&[
        "--allow-origin",
        "http://a.example",
        "--allow-origin",
        "http://c.example",
    ]);
    let id = submit(&server, 0);
    let check = format!("/checkstatus?jobId={id}");
    let mut c = Conn::open(&server);
    // Allowed origins get the header with their origin.
    for origin in ["http://a.example", "http://c.example"] {
        c.send(with_origin(
            "POST",
            "/submit?duration_ms=0",
            HOST,
            Some(origin),
        ));
        let r = c.read_resp(false);
        assert_eq!(r.status, 202, "Origin {origin}: {:?}", r.text());
        assert_eq!(r.header("access-control-allow-origin"), Some(origin));
        c.send(with_origin("GET", &check, HOST, Some(origin)));
        let r = c.read_resp(false);
        assert_eq!(r.status, 200, "Origin {origin}: {:?}", r.text());
        assert_eq!(r.header("access-control-allow-origin"), Some(origin));
    }
    // A preflight from a refused origin is refused too.
    let mut p = Conn::open(&server);
    p.send(format!("OPTIONS /submit HTTP/1.1\r\nHost: {HOST}\r\nOrigin: http://b.example\r\nAccess-Control-Request-Method: POST\r\n\r\n"));
    assert_error(&p.read_resp(false), 403);
    p.send(format!("OPTIONS /submit HTTP/1.1\r\nHost: {HOST}\r\nOrigin: http://a.example\r\nAccess-Control-Request-Method: POST\r\n\r\n"));
    let r = p.read_resp(false);
    assert_eq!(r.status, 204);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("http://a.example")
    );
    // Case-insensitive match.
    c.send(with_origin("GET", &check, HOST, Some("HTTP://A.Example")));
    assert_eq!(
        c.read_resp(false).status,
        200,
        "origin comparison must ignore case"
    );
    // Refused origins.
    for origin in [
        "http://b.example",
        "null",
        "http://a.example:80",
        "https://a.example",
    ] {
        let mut c = Conn::open(&server);
        c.send(with_origin("GET", &check, HOST, Some(origin)));
        let r = c.read_resp(false);
        assert_error(&r, 403);
        assert_ne!(
            r.header("access-control-allow-origin"),
            Some(origin),
            "refused origin echoed back"
        );
        c.send(with_origin(
            "POST",
            "/submit?duration_ms=0",
            HOST,
            Some(origin),
        ));
        assert_error(&c.read_resp(false), 403);
    }
    // No Origin: a non-browser client, allowed.
    let mut c = Conn::open(&server);
    c.send(with_origin("POST", "/submit?duration_ms=0", HOST, None));
    assert_eq!(c.read_resp(false).status, 202);
    // The server's own origin, from the Host header.
    let own_host = "pushwire.test:8080";
    c.send(with_origin(
        "GET",
        &check,
        own_host,
        Some(&format!("http://{own_host}")),
    ));
    let r = c.read_resp(false);
    assert_eq!(
        r.status,
        200,
        "the server's own origin must be allowed: {:?}",
        r.text()
    );
    let addr = server.addr.to_string();
    c.send(with_origin(
        "GET",
        &check,
        &addr,
        Some(&format!("http://{addr}")),
    ));
    assert_eq!(
        c.read_resp(false).status,
        200,
        "the server's own origin (real address) must be allowed"
    );
}

#[test]
fn without_allow_list_every_origin_is_allowed() {
    let server = Server::start(&[]);
    let id = submit(&server, 0);
    let mut c = Conn::open(&server);
    for origin in ["http://b.example", "http://evil.example:1234", "null"] {
        c.send(with_origin(
            "GET",
            &format!("/checkstatus?jobId={id}"),
            HOST,
            Some(origin),
        ));
        let r = c.read_resp(false);
        assert_eq!(r.status, 200, "Origin {origin}: {:?}", r.text());
        assert_eq!(r.header("access-control-allow-origin"), Some(origin));
        c.send(with_origin(
            "POST",
            "/submit?duration_ms=0",
            HOST,
            Some(origin),
        ));
        let r = c.read_resp(false);
        assert_eq!(r.status, 202, "Origin {origin}: {:?}", r.text());
        assert_eq!(r.header("access-control-allow-origin"), Some(origin));
    }
}

#[test]
fn options_answers_204_with_allowed_methods_and_headers() {
    let server = Server::start(&[]);
    let mut c = Conn::open(&server);
    let pre = |path: &str| {
        format!(
            "OPTIONS {path} HTTP/1.1\r\nHost: {HOST}\r\nOrigin: http://a.example\r\nAccess-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: content-type\r\n\r\n"
        )
    };
    // Pipelined, so that any stray body bytes after a 204 would break the
    // parse of the next answer.
    c.send(format!(
        "{}{}{}{}",
        pre("/submit"),
        pre("/checkstatus"),
        pre("/nope"),
        get("/nope")
    ));
    for (path, must) in [
        ("/submit", vec!["POST"]),
        ("/checkstatus", vec!["GET", "HEAD"]),
    ] {
        let r = c.read_resp(false);
        assert_eq!(r.status, 204, "OPTIONS {path}: {:?} {:?}", r.line, r.text());
        let allow = tokens(
            r.header("allow")
                .unwrap_or_else(|| panic!("OPTIONS {path} without Allow")),
        );
        for m in must {
            assert!(
                allow.contains(&m.to_string()),
                "OPTIONS {path}: Allow {allow:?} lacks {m}"
            );
        }
        let acam = tokens(
            r.header("access-control-allow-methods")
                .unwrap_or_else(|| panic!("OPTIONS {path} without Access-Control-Allow-Methods")),
        );
        assert_eq!(
            acam, allow,
            "OPTIONS {path}: Access-Control-Allow-Methods should list the same methods as Allow"
        );
        assert_eq!(
            r.header("access-control-allow-headers"),
            Some("Content-Type, Last-Event-ID, Authorization"),
            "OPTIONS {path}"
        );
        assert_eq!(
            r.header("access-control-allow-origin"),
            Some("http://a.example"),
            "OPTIONS {path}"
        );
        assert!(r.header("date").is_some(), "OPTIONS {path} without Date");
    }
    assert_error(&c.read_resp(false), 404);
    assert_error(&c.read_resp(false), 404);
}

// ---------------------------------------------------------------------------
// A real client.
// ---------------------------------------------------------------------------

#[test]
fn curl_submits_and_checks_a_job() {
    if !std::path::Path::new("/usr/bin/curl").exists() {
        eprintln!("note: /usr/bin/curl not found, skipping the curl check");
        return;
    }
    let server = Server::start(&[]);
    let base = format!("http://{}", server.addr);
    let out = Command::new("/usr/bin/curl")
        .args([
            "-sv",
            "--max-time",
            "10",
            "--data",
            "",
            &format!("{base}/submit?duration_ms=0"),
        ])
        .output()
        .expect("run curl");
    let body = String::from_utf8_lossy(&out.stdout).into_owned();
    let trace = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "curl failed: {trace}");
    assert!(trace.contains("< HTTP/1.1 202"), "curl saw no 202: {trace}");
    let lower = trace.to_ascii_lowercase();
    assert!(
        lower.contains("< location: /checkstatus?jobid=job:"),
        "curl saw no Location: {trace}"
    );
    let j = parse_json(&body).unwrap_or_else(|e| panic!("curl body {body:?}: {e}"));
    let id = j
        .get("jobId")
        .and_then(|v| v.as_str())
        .expect("jobId")
        .to_string();

    // Two URLs in one run: curl reuses the keep-alive connection.
    let out = Command::new("/usr/bin/curl")
        .args([
            "-sv",
            "--max-time",
            "10",
            &format!("{base}/checkstatus?jobId={id}"),
            &format!("{base}/nope"),
        ])
        .output()
        .expect("run curl");
    let body = String::from_utf8_lossy(&out.stdout).into_owned();
    let trace = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "curl failed: {trace}");
    assert!(trace.contains("< HTTP/1.1 200"), "{trace}");
    assert!(trace.contains("< HTTP/1.1 404"), "{trace}");
    assert!(
        trace.to_ascii_lowercase().contains("existing connection"),
        "curl did not reuse the connection: {trace}"
    );
    let first = parse_json(&body[..body.find('}').map_or(body.len(), |i| i + 1)])
        .unwrap_or_else(|e| panic!("curl body {body:?}: {e}"));
    assert_eq!(
        first.get("jobId").and_then(|v| v.as_str()),
        Some(id.as_str())
    );
    assert_eq!(first.get("done").and_then(|v| v.as_bool()), Some(true));
}

/// `--listen-backlog` reaches the kernel: `ss` shows a listening socket's
/// backlog in its Send-Q column. (mio and std listen with 128; a burst of
/// connects beyond that has SYNs dropped and waits 1 s retransmissions.)
#[test]
fn listen_backlog_flag_sets_the_kernel_backlog() {
    for (args, want) in [(&[][..], "1024"), (&["--listen-backlog", "50"][..], "50")] {
        let server = Server::start(args);
        let out = std::process::Command::new("ss")
            .args(["-ltn", &format!("sport = :{}", server.addr.port())])
            .output()
            .expect("ss (iproute2) runs");
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text
            .lines()
            .find(|l| l.starts_with("LISTEN"))
            .unwrap_or_else(|| panic!("no LISTEN line in {text:?}"));
        let send_q = line.split_whitespace().nth(2).unwrap();
        assert_eq!(send_q, want, "{line}");
    }
}

/// `--linger-ms`: after an answer that closes the connection, the server
/// shuts down its write side and keeps reading (and dropping) what the
/// client still sends, so its answer is not destroyed by a reset; the
/// socket is closed when the client closes or `--linger-ms` passes. A
/// lingering connection still counts as open in `/stats`.
#[test]
fn linger_flag_bounds_how_long_a_closing_connection_stays() {
    let open_http = |server: &Server| -> f64 {
        let stats = parse_json(&server.get("/stats").text()).expect("stats JSON");
        let open = stats
            .get("connections")
            .and_then(|c| c.get("open"))
            .expect("open");
        open.get("http")
            .and_then(JsonValue::as_f64)
            .expect("http count")
    };
    for (linger_ms, gone_after_500ms) in [(200, true), (5_000, false)] {
        let server = Server::start(&["--linger-ms", &linger_ms.to_string()]);
        let mut s = server.connect();
        s.write_all(b"GET /stats HTTP/1.1\r\nHost : x\r\n\r\n")
            .unwrap();
        let r = common::read_response(&mut s, false).expect("a 400");
        assert_eq!(r.status, 400);
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest); // the server's FIN: write side shut
                                          // The client keeps its socket open; the server lingers on it.
        assert_eq!(
            open_http(&server),
            2.0,
            "the lingering connection and /stats' own"
        );
        std::thread::sleep(Duration::from_millis(500));
        let want = if gone_after_500ms { 1.0 } else { 2.0 };
        assert_eq!(open_http(&server), want, "--linger-ms {linger_ms}");
        drop(s);
    }
}
