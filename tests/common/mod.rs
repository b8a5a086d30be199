//! The harness every integration suite shares: start the real `pushwire`
//! binary on port 0, learn its address from the first stdout line (the
//! contract of docs/api.md "Running it"), talk to it over plain `std::net`
//! sockets, and kill it when the test ends.
#![allow(dead_code)]

pub mod json;
pub mod poll;
pub mod sse;
pub mod ws;

/// Re-exported: most suites parse bodies; not every suite names both.
#[allow(unused_imports)]
pub use json::{parse_json, JsonValue};

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running server process; killed on drop.
pub struct Server {
    pub addr: SocketAddr,
    child: Child,
}

impl Server {
    /// Starts the server with `args` appended to `--addr 127.0.0.1:0`.
    pub fn start(args: &[&str]) -> Server {
        Server::spawn(args, Stdio::inherit())
    }

    /// `start`, with the server's stderr (its log, `--trace`) written to
    /// the file `stderr` for the test to read.
    pub fn start_logged(args: &[&str], stderr: &std::path::Path) -> Server {
        let file = std::fs::File::create(stderr).expect("create the stderr file");
        Server::spawn(args, Stdio::from(file))
    }

    fn spawn(args: &[&str], stderr: Stdio) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_pushwire"))
            .arg("--addr")
            .arg("127.0.0.1:0")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn pushwire");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read first line");
        let url = line
            .trim()
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"));
        let addr = url.parse().expect("address in first line");
        Server { addr, child }
    }

    /// A new TCP connection with a read timeout, so a hung server fails the
    /// test instead of hanging it.
    pub fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.set_nodelay(true).unwrap();
        s
    }

    /// `ws://` URL for `path`.
    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }

    /// Sends one request on a fresh connection and reads one response.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        let mut s = self.connect();
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.addr);
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        if !body.is_empty() || method == "POST" {
            req.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes()).unwrap();
        s.write_all(body).unwrap();
        read_response(&mut s, method == "HEAD").expect("a response")
    }

    pub fn get(&self, path: &str) -> Response {
        self.request("GET", path, &[], b"")
    }

    pub fn post(&self, path: &str, body: &[u8]) -> Response {
        self.request("POST", path, &[], body)
    }

    /// The process id, for reading /proc.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A parsed HTTP response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Reads one response from `s`: the head, then a body framed by
/// Content-Length or chunked (no body when `head_only`). Independent of the
/// server's own codecs on purpose. `None` when the peer closed first.
pub fn read_response(s: &mut TcpStream, head_only: bool) -> Option<Response> {
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buf[..head_end].to_vec()).expect("ASCII head");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status: u16 = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (k, v) = l.split_once(':').expect("header colon");
            (k.to_string(), v.trim().to_string())
        })
        .collect();
    let mut rest = buf[head_end..].to_vec();
    let hdr = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.clone())
    };
    let mut fill = |rest: &mut Vec<u8>, want: usize| -> bool {
        while rest.len() < want {
            let mut chunk = [0u8; 65536];
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => return false,
                Ok(n) => rest.extend_from_slice(&chunk[..n]),
            }
        }
        true
    };
    let body = if head_only || status == 204 || status == 304 || status == 101 {
        Vec::new()
    } else if let Some(len) = hdr("content-length") {
        let len: usize = len.parse().unwrap();
        assert!(fill(&mut rest, len), "body shorter than Content-Length");
        rest.truncate(len);
        rest
    } else if hdr("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
        let mut body = Vec::new();
        let mut pos = 0;
        loop {
            while find(&rest[pos..], b"\r\n").is_none() {
                let want = rest.len() + 1;
                assert!(fill(&mut rest, want), "truncated chunk size");
            }
            let eol = pos + find(&rest[pos..], b"\r\n").unwrap();
            let size_txt = std::str::from_utf8(&rest[pos..eol]).unwrap();
            let size =
                usize::from_str_radix(size_txt.split(';').next().unwrap().trim(), 16).unwrap();
            pos = eol + 2;
            if size == 0 {
                break;
            }
            assert!(fill(&mut rest, pos + size + 2), "truncated chunk");
            body.extend_from_slice(&rest[pos..pos + size]);
            pos += size + 2;
        }
        body
    } else {
        // Close-delimited.
        let mut body = rest;
        let _ = s.read_to_end(&mut body);
        body
    };
    Some(Response {
        status,
        headers,
        body,
    })
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Polls `f` until it returns `Some` or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

impl Server {
    /// Waits up to `timeout` for the process to exit by itself (after a
    /// signal, say) and returns its exit status; `None` if it is still
    /// running then (it is killed on drop as usual).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let end = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Runs the binary with `args` (no `--addr` added) and waits up to `limit`
/// for it to exit by itself. Returns its exit status (`None`: it was still
/// running, and has been killed) and its stdout followed by its stderr.
pub fn run_to_exit(args: &[&str], limit: Duration) -> (Option<std::process::ExitStatus>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pushwire"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn pushwire");
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = r.read_to_end(&mut s);
            s
        })
    };
    let t_out = drain(Box::new(child.stdout.take().unwrap()));
    let t_err = drain(Box::new(child.stderr.take().unwrap()));
    let status = wait_for(limit, || child.try_wait().ok().flatten());
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let mut text = String::from_utf8_lossy(&t_out.join().unwrap()).into_owned();
    text.push_str(&String::from_utf8_lossy(&t_err.join().unwrap()));
    (status, text)
}

/// A throwaway `redis-server` (Debian's package) on a free loopback port,
/// persisting to its own temporary directory with an append-only file, so
/// that `restart()` (same port, same directory) finds its data again.
/// Killed and its directory removed on drop.
pub struct RedisServer {
    pub port: u16,
    pub dir: std::path::PathBuf,
    child: Option<Child>,
    /// Extra configuration lines given as `--name value ...` arguments.
    extra: Vec<String>,
    /// The `default` user's password (`--requirepass`), if any.
    password: Option<String>,
}

impl RedisServer {
    /// Starts one and waits until it answers `PING`. Panics with a clear
    /// message when `redis-server` is not installed.
    pub fn start() -> RedisServer {
        RedisServer::start_with(&[], None)
    }

    /// `start` with extra `redis-server` arguments (configuration lines,
    /// e.g. `["--user", "alice", "on", ">pw", "~*", "&*", "+@all"]`), and
    /// with `password` required of the `default` user (`--requirepass`).
    pub fn start_with(extra: &[&str], password: Option<&str>) -> RedisServer {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("pick a free port")
            .port();
        let dir = std::env::temp_dir().join(format!(
            "pushwire-redis-{}-{}-{port}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).expect("create the Redis data directory");
        let mut r = RedisServer {
            port,
            dir,
            child: None,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            password: password.map(str::to_string),
        };
        r.spawn();
        r
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the process (its data stays in the directory).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port with the same data directory.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    fn binary() -> String {
        for p in ["/usr/bin/redis-server", "/usr/local/bin/redis-server"] {
            if std::path::Path::new(p).exists() {
                return p.to_string();
            }
        }
        match Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
        {
            Ok(_) => "redis-server".to_string(),
            Err(e) => panic!(
                "redis-server is not installed ({e}): the Redis backplane tests need it \
                 (Debian: apt-get install redis-server; tests/all.sh installs it)"
            ),
        }
    }

    fn spawn(&mut self) {
        let log = self.dir.join("redis.log");
        let child = Command::new(Self::binary())
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "yes"])
            .args(["--appendfsync", "always"])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(&log)
            .args(["--daemonize", "no"])
            .args(
                self.password
                    .iter()
                    .flat_map(|p| ["--requirepass".to_string(), p.clone()]),
            )
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start redis-server: {e}"));
        self.child = Some(child);
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            if self.ping() {
                return;
            }
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() > end {
                panic!(
                    "redis-server on port {} did not come up ({exited:?}); its log:\n{}",
                    self.port,
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// True when the server answers `PING` with `+PONG` (not `-LOADING`).
    pub fn ping(&self) -> bool {
        self.command(&["PING"])
            .is_some_and(|reply| reply.starts_with(b"+PONG"))
    }

    /// Sends one command (after `AUTH` with the default user's password,
    /// when there is one) on a fresh connection and returns the raw bytes
    /// of its reply (one read: enough for the short replies tests need).
    pub fn command(&self, args: &[&str]) -> Option<Vec<u8>> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        let mut buf = [0u8; 4096];
        if let Some(pw) = &self.password {
            s.write_all(&resp_command(&["AUTH", pw])).ok()?;
            let n = s.read(&mut buf).ok()?;
            if !buf[..n].starts_with(b"+OK") {
                return None;
            }
        }
        s.write_all(&resp_command(args)).ok()?;
        // Until the reply is complete: one line, or a bulk string's length
        // line and that many bytes (arrays are not needed by the tests).
        let mut reply = Vec::new();
        loop {
            let n = s.read(&mut buf).ok()?;
            if n == 0 {
                return Some(reply);
            }
            reply.extend_from_slice(&buf[..n]);
            let Some(eol) = find(&reply, b"\r\n") else {
                continue;
            };
            if reply[0] != b'$' {
                return Some(reply);
            }
            let len: i64 = std::str::from_utf8(&reply[1..eol]).ok()?.parse().ok()?;
            if len < 0 || reply.len() >= eol + 2 + len as usize + 2 {
                return Some(reply);
            }
        }
    }

    /// A value of `INFO`: e.g. `info("total_connections_received")`.
    pub fn info(&self, field: &str) -> Option<String> {
        let reply = self.command(&["INFO", "everything"])?;
        let text = String::from_utf8_lossy(&reply).into_owned();
        text.lines().find_map(|l| {
            l.strip_prefix(&format!("{field}:"))
                .map(|v| v.trim().to_string())
        })
    }
}

/// A command as a RESP array of bulk strings.
pub fn resp_command(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
    }
    out
}

impl RedisServer {
    /// `redis://:PASSWORD@127.0.0.1:PORT` (or `url()` without a password).
    pub fn url_with_password(&self) -> String {
        match &self.password {
            Some(pw) => format!("redis://:{pw}@127.0.0.1:{}", self.port),
            None => self.url(),
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
