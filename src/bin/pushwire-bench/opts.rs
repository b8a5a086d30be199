//! Command-line flags: `pushwire-bench <scenario> [flags]`.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    WsEcho,
    WsFanout,
    SseFanout,
    LongpollFanout,
    HttpKeepalive,
    Idle,
    TcpEcho,
    ServeRawEcho,
    ServeCanned,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::WsEcho => "ws-echo",
            Scenario::WsFanout => "ws-fanout",
            Scenario::SseFanout => "sse-fanout",
            Scenario::LongpollFanout => "longpoll-fanout",
            Scenario::HttpKeepalive => "http-keepalive",
            Scenario::Idle => "idle",
            Scenario::TcpEcho => "tcp-echo",
            Scenario::ServeRawEcho => "serve-raw-echo",
            Scenario::ServeCanned => "serve-canned",
        }
    }

    fn parse(s: &str) -> Option<Scenario> {
        Some(match s {
            "ws-echo" => Scenario::WsEcho,
            "ws-fanout" => Scenario::WsFanout,
            "sse-fanout" => Scenario::SseFanout,
            "longpoll-fanout" => Scenario::LongpollFanout,
            "http-keepalive" => Scenario::HttpKeepalive,
            "idle" => Scenario::Idle,
            "tcp-echo" => Scenario::TcpEcho,
            "serve-raw-echo" => Scenario::ServeRawEcho,
            "serve-canned" => Scenario::ServeCanned,
            _ => return None,
        })
    }

    pub fn is_fanout(self) -> bool {
        matches!(
            self,
            Scenario::WsFanout | Scenario::SseFanout | Scenario::LongpollFanout
        )
    }

    pub fn is_server(self) -> bool {
        matches!(self, Scenario::ServeRawEcho | Scenario::ServeCanned)
    }
}

/// What the `idle` scenario holds open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleKind {
    /// WebSockets upgraded on `--path` (default `/echo`).
    Ws,
    /// Event streams on `/channels/{channel}/events`.
    Sse,
    /// Long polls parked on `/channels/{channel}/poll?timeout=120`.
    LongPoll,
}

#[derive(Debug, Clone)]
pub struct Opts {
    pub scenario: Scenario,
    pub target: SocketAddr,
    /// The `Host` header value.
    pub host: String,
    pub conns: usize,
    pub inflight: usize,
    pub size: usize,
    pub duration: Duration,
    pub warmup: Duration,
    pub drain: Duration,
    pub setup_timeout: Duration,
    pub rate: f64,
    pub channel: String,
    pub sources: u8,
    pub server_pid: Option<u32>,
    pub json: bool,
    pub path: Option<String>,
    /// `--token`: sent as `Authorization: Bearer` on every request and
    /// upgrade (a server with `--token-secret`).
    pub token: Option<String>,
    pub binary: bool,
    pub idle_kind: IdleKind,
    /// Server modes: how long to serve before exiting by itself.
    pub lifetime: Duration,
    /// Fan-out: publish to this node instead of `target` (several nodes
    /// sharing channels through Redis: the backplane's cost per message).
    pub publish_target: Option<SocketAddr>,
    /// WebSockets offer `permessage-deflate` (and require it accepted);
    /// echo messages go compressed, received ones are inflated.
    pub deflate: bool,
    /// What messages are made of: `x` repeated, or JSON records.
    pub payload: Payload,
}

/// The bytes of an echo message or a published body (after its timestamp).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload {
    /// `xxxx...`: the cheapest to make, absurdly compressible.
    Xs,
    /// JSON records (`[{"user":"u417","event":"click","x":312,...},...]`):
    /// what real messages look like, and compress like.
    Json,
}

pub const USAGE: &str = "\
pushwire-bench: a load generator for pushwire (loopback targets only)

usage: pushwire-bench <scenario> [flags]

scenarios (client side):
  ws-echo          N WebSockets on /echo, K messages of S bytes in flight each;
                   round-trip latency per message
  ws-fanout        N WebSocket subscribers on /channels/{ch}/ws; one HTTP
                   publisher POSTs at --rate; publish-to-delivery latency
  sse-fanout       the same with N event streams on /channels/{ch}/events
  longpoll-fanout  the same with N clients looping on /channels/{ch}/poll?after=
  http-keepalive   N keep-alive connections, K pipelined GETs of --path each
  idle             N connections held open (WebSocket on --path, default /echo,
                   or --idle-kind sse); with --server-pid, server RSS per connection
  tcp-echo         N raw TCP connections, K messages of S bytes in flight each
                   (against serve-raw-echo: the baseline for ws-echo)
server modes (baselines, single-threaded mio):
  serve-raw-echo   --addr A: echoes every byte back
  serve-canned     --addr A: answers every request head (counted by CRLFCRLF)
                   with one fixed 200 response (the baseline for http-keepalive)

flags [defaults]:
  --target HOST:PORT   server to load [127.0.0.1:8080]; must be loopback
  --conns N            connections / subscribers [100]
  --inflight K         messages or requests in flight per connection [1]
  --size S             message bytes (echo), publish body bytes (fan-out) [64]
  --duration SECS      measured window [10]
  --warmup SECS        traffic before the window, not measured [2]
  --drain SECS         fan-out: wait this long after the window for deliveries [2]
  --setup-timeout SECS give up connecting after this long [30]
  --rate R             fan-out publishes per second [100]
  --channel NAME       channel for fan-out and the default http path [bench]
  --path P             http-keepalive request target
                       [/channels/{channel}/poll?timeout=0]; idle WebSocket path [/echo]
  --token T            send Authorization: Bearer T on every request and upgrade
                       (a server with --token-secret)
  --binary             ws-echo: binary frames instead of text
  --deflate            WebSockets offer permessage-deflate (RFC 7692) and need it
                       accepted; echo messages are sent compressed, everything
                       received compressed is inflated
  --payload xs|json    message content: 'x' repeated, or JSON records [xs]
  --idle-kind ws|sse|longpoll   what idle holds open [ws]
  --sources N          spread client sockets over 127.0.0.1..127.0.0.N [1]
  --server-pid PID     read the server's CPU and RSS from /proc/PID
  --json               also print one JSON line with the result
  --addr HOST:PORT     server modes: where to listen [127.0.0.1:0]; loopback only
  --lifetime SECS      server modes: exit after this long [600]
  --publish-target H:P fan-out: publish to this node, subscribe on --target
                       (two nodes on one Redis: what the backplane costs) [--target]
";

fn secs(s: &str, flag: &str) -> Result<Duration, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("{flag} wants seconds, got {s:?}"))?;
    if !(0.0..=86_400.0).contains(&v) {
        return Err(format!("{flag} out of range: {s}"));
    }
    Ok(Duration::from_secs_f64(v))
}

fn num<T: std::str::FromStr>(s: &str, flag: &str) -> Result<T, String> {
    s.parse()
        .map_err(|_| format!("{flag} wants a number, got {s:?}"))
}

/// Resolves `s` and refuses anything that is not loopback (exit code 2 in
/// `main`): this tool only ever loads servers on this machine.
pub fn loopback_addr(s: &str, flag: &str) -> Result<SocketAddr, String> {
    let addrs: Vec<SocketAddr> = s
        .to_socket_addrs()
        .map_err(|e| format!("{flag} {s}: {e}"))?
        .collect();
    let Some(&first) = addrs.first() else {
        return Err(format!("{flag} {s}: no address"));
    };
    if let Some(bad) = addrs.iter().find(|a| !is_loopback(a.ip())) {
        return Err(format!(
            "refusing {flag} {s}: {} is not a loopback address (127.0.0.0/8 or ::1); \
             pushwire-bench only loads servers on this machine",
            bad.ip()
        ));
    }
    Ok(first)
}

pub fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.octets()[0] == 127,
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.octets()[0] == 127)
        }
    }
}

/// `Err((message, exit code))`.
pub fn parse(args: &[String]) -> Result<Opts, (String, u8)> {
    let usage = |m: String| (m, 2u8);
    let Some(first) = args.first() else {
        return Err(usage("no scenario given".into()));
    };
    if first == "--help" || first == "-h" || first == "help" {
        return Err((String::new(), 0));
    }
    let scenario =
        Scenario::parse(first).ok_or_else(|| usage(format!("unknown scenario {first:?}")))?;
    let mut target = "127.0.0.1:8080".to_string();
    let mut addr = "127.0.0.1:0".to_string();
    let mut o = Opts {
        scenario,
        target: "127.0.0.1:8080".parse().unwrap(),
        host: String::new(),
        conns: 100,
        inflight: 1,
        size: 64,
        duration: Duration::from_secs(10),
        warmup: Duration::from_secs(2),
        drain: Duration::from_secs(2),
        setup_timeout: Duration::from_secs(30),
        rate: 100.0,
        channel: "bench".into(),
        sources: 1,
        server_pid: None,
        json: false,
        path: None,
        token: None,
        binary: false,
        idle_kind: IdleKind::Ws,
        lifetime: Duration::from_secs(600),
        publish_target: None,
        deflate: false,
        payload: Payload::Xs,
    };
    let mut i = 1;
    while i < args.len() {
        let flag = args[i].as_str();
        let value = |i: usize| -> Result<&str, (String, u8)> {
            args.get(i + 1)
                .map(String::as_str)
                .ok_or_else(|| usage(format!("{flag} needs a value")))
        };
        let mut takes_value = true;
        match flag {
            "--target" => target = value(i)?.to_string(),
            "--addr" => addr = value(i)?.to_string(),
            "--conns" => o.conns = num(value(i)?, flag).map_err(usage)?,
            "--inflight" => o.inflight = num(value(i)?, flag).map_err(usage)?,
            "--size" => o.size = num(value(i)?, flag).map_err(usage)?,
            "--duration" => o.duration = secs(value(i)?, flag).map_err(usage)?,
            "--warmup" => o.warmup = secs(value(i)?, flag).map_err(usage)?,
            "--drain" => o.drain = secs(value(i)?, flag).map_err(usage)?,
            "--setup-timeout" => o.setup_timeout = secs(value(i)?, flag).map_err(usage)?,
            "--lifetime" => o.lifetime = secs(value(i)?, flag).map_err(usage)?,
            "--publish-target" => {
                let v = value(i)?.to_string();
                o.publish_target = Some(loopback_addr(&v, flag).map_err(|m| (m, 2))?);
            }
            "--rate" => o.rate = num(value(i)?, flag).map_err(usage)?,
            "--channel" => o.channel = value(i)?.to_string(),
            "--path" => o.path = Some(value(i)?.to_string()),
            "--token" => o.token = Some(value(i)?.to_string()),
            "--sources" => o.sources = num(value(i)?, flag).map_err(usage)?,
            "--server-pid" => o.server_pid = Some(num(value(i)?, flag).map_err(usage)?),
            "--idle-kind" => {
                o.idle_kind = match value(i)? {
                    "ws" => IdleKind::Ws,
                    "sse" => IdleKind::Sse,
                    "longpoll" => IdleKind::LongPoll,
                    v => {
                        return Err(usage(format!(
                            "--idle-kind is ws, sse or longpoll, not {v:?}"
                        )))
                    }
                }
            }
            "--json" => {
                o.json = true;
                takes_value = false;
            }
            "--binary" => {
                o.binary = true;
                takes_value = false;
            }
            "--deflate" => {
                o.deflate = true;
                takes_value = false;
            }
            "--payload" => {
                o.payload = match value(i)? {
                    "xs" => Payload::Xs,
                    "json" => Payload::Json,
                    v => return Err(usage(format!("--payload is xs or json, not {v:?}"))),
                }
            }
            "--help" | "-h" => return Err((String::new(), 0)),
            _ => return Err(usage(format!("unknown flag {flag:?}"))),
        }
        i += if takes_value { 2 } else { 1 };
    }
    // Checks that keep every run bounded and sane.
    if o.conns == 0 || o.conns > 1_000_000 {
        return Err(usage("--conns must be 1..=1000000".into()));
    }
    if o.inflight == 0 || o.inflight > 65_536 {
        return Err(usage("--inflight must be 1..=65536".into()));
    }
    if o.size == 0 || o.size > 16 << 20 {
        return Err(usage("--size must be 1..=16777216".into()));
    }
    if !(o.rate > 0.0 && o.rate <= 1_000_000.0) {
        return Err(usage("--rate must be in (0, 1000000]".into()));
    }
    if o.sources == 0 {
        return Err(usage("--sources must be 1..=255".into()));
    }
    if o.duration.is_zero() && !scenario.is_server() {
        return Err(usage("--duration must be more than 0".into()));
    }
    if o.channel.is_empty()
        || o.channel.len() > 64
        || !o
            .channel
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
    {
        return Err(usage("--channel must match [A-Za-z0-9_.-]{1,64}".into()));
    }
    if let Some(p) = &o.path {
        if !p.starts_with('/') || p.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(usage("--path must start with / and hold no spaces".into()));
        }
    }
    let (flag, s) = if scenario.is_server() {
        ("--addr", &addr)
    } else {
        ("--target", &target)
    };
    o.target = loopback_addr(s, flag).map_err(|m| (m, 2))?;
    if o.sources > 1 && !o.target.is_ipv4() {
        return Err(usage("--sources needs an IPv4 target (127.0.0.x)".into()));
    }
    o.host = o.target.to_string();
    Ok(o)
}
