//! Every knob of the server, its default, and the command-line flags that set
//! it (docs/api.md "Running it"). `--help` prints this table from the same source
//! the parser uses, so the two can never disagree.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use crate::wire::redis_url::{self, RedisUrl};
use crate::wire::url;

/// The server's configuration. `Config::default()` is what `cargo run`
/// serves with.
#[derive(Debug, Clone)]
pub struct Config {
    pub addr: SocketAddr,
    pub max_conns: usize,
    pub max_header_bytes: usize,
    pub max_body_bytes: usize,
    pub max_message_bytes: usize,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub ws_ping: Duration,
    pub sse_heartbeat: Duration,
    pub close_timeout: Duration,
    pub linger: Duration,
    pub shutdown_timeout: Duration,
    pub history: usize,
    pub send_buffer_bytes: usize,
    pub max_jobs: usize,
    pub max_channels: usize,
    pub max_deliveries: usize,
    pub listen_backlog: u32,
    /// Empty: every origin is allowed.
    pub allow_origins: Vec<String>,
    pub webhook_allow: Vec<String>,
    pub trace: bool,
    /// `--redis`: the backplane shared by several nodes, and how to log
    /// in to it (its `Debug` shows the password as `***`).
    pub redis: Option<RedisUrl>,
    /// `--history-bytes`: message data kept per channel.
    pub history_bytes: usize,
    /// `--max-history-bytes`: message data kept by all channels together.
    pub max_history_bytes: usize,
    /// `--max-webhooks`: webhooks that may exist at once (job callbacks
    /// included).
    pub max_webhooks: usize,
    /// `--deflate`: accept permessage-deflate (RFC 7692).
    pub deflate: bool,
    /// `--token-secret` / `PUSHWIRE_TOKEN_SECRET`: with it, channels,
    /// webhooks, `/stats` and `/metrics` need a token.
    pub token_secret: Option<TokenSecret>,
}

/// The key that signs access tokens. It never prints (`Debug` shows
/// `***`), so a logged `Config` cannot leak it.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenSecret(Vec<u8>);

impl TokenSecret {
    /// A secret of at least `wire::jwt::MIN_SECRET_BYTES` (32) bytes: HS256
    /// keys shorter than the hash (RFC 7518 section 3.2) are refused.
    pub fn new(bytes: &[u8]) -> Result<Self, ArgError> {
        if bytes.len() < crate::wire::jwt::MIN_SECRET_BYTES {
            return Err(ArgError(format!(
                "the token secret must be at least {} bytes (RFC 7518 section 3.2: an HS256 key \
                 as long as the hash); this one has {}",
                crate::wire::jwt::MIN_SECRET_BYTES,
                bytes.len()
            )));
        }
        Ok(TokenSecret(bytes.to_vec()))
    }

    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_conns: 10_000,
            max_header_bytes: 16_384,
            max_body_bytes: 1_048_576,
            max_message_bytes: 1_048_576,
            header_timeout: Duration::from_millis(10_000),
            idle_timeout: Duration::from_millis(60_000),
            ws_ping: Duration::from_millis(30_000),
            sse_heartbeat: Duration::from_millis(15_000),
            close_timeout: Duration::from_millis(5_000),
            linger: Duration::from_millis(2_000),
            shutdown_timeout: Duration::from_millis(5_000),
            history: 1000,
            send_buffer_bytes: 1_048_576,
            max_jobs: 100_000,
            max_channels: 100_000,
            max_deliveries: 64,
            listen_backlog: 1024,
            allow_origins: Vec::new(),
            webhook_allow: Vec::new(),
            trace: false,
            redis: None,
            history_bytes: 1_048_576,
            max_history_bytes: 268_435_456,
            max_webhooks: 1000,
            deflate: true,
            token_secret: None,
        }
    }
}

/// What `parse_args` decided.
#[derive(Debug)]
pub enum Cli {
    Run(Box<Config>),
    Help,
    /// `pushwire token ...`: print a token and exit.
    Token(TokenRequest),
}

/// `pushwire token [--sub NAME] [--subscribe PATTERNS] [--publish
/// PATTERNS] [--admin] [--ttl SECONDS] [--token-secret SECRET]`.
#[derive(Debug, Default)]
pub struct TokenRequest {
    pub sub: Option<String>,
    pub subscribe: Vec<String>,
    pub publish: Vec<String>,
    pub admin: bool,
    /// Seconds until `exp`; 0: no `exp`.
    pub ttl: u64,
    pub secret: Option<TokenSecret>,
}

/// A flag we could not accept, with a sentence for the user.
#[derive(Debug)]
pub struct ArgError(pub String);

impl fmt::Display for ArgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ArgError {}

/// One row of the flag table: name, value placeholder, help text.
const FLAGS: &[(&str, &str, &str)] = &[
    (
        "--addr",
        "HOST:PORT",
        "address to listen on; port 0 picks a free port",
    ),
    (
        "--listen-backlog",
        "N",
        "connections the kernel queues before accept (capped by net.core.somaxconn)",
    ),
    (
        "--max-conns",
        "N",
        "open connections of any kind; past it: 503 and close",
    ),
    (
        "--max-header-bytes",
        "N",
        "request line (else 414) and header section (else 431)",
    ),
    ("--max-body-bytes", "N", "request body (else 413)"),
    (
        "--max-message-bytes",
        "N",
        "WebSocket message, all fragments (else close 1009)",
    ),
    (
        "--header-timeout-ms",
        "MS",
        "a request (head and body) must be complete this long after its first byte (else 408)",
    ),
    (
        "--idle-timeout-ms",
        "MS",
        "keep-alive connection idle between requests is closed",
    ),
    (
        "--ws-ping-ms",
        "MS",
        "WebSocket ping interval; no pong by the next ping: close 1001",
    ),
    (
        "--sse-heartbeat-ms",
        "MS",
        "`: ping` comment interval on event streams",
    ),
    (
        "--close-timeout-ms",
        "MS",
        "a WebSocket close we start waits this long for the peer's close",
    ),
    (
        "--linger-ms",
        "MS",
        "a closing connection drains unread input this long before the socket closes",
    ),
    (
        "--shutdown-timeout-ms",
        "MS",
        "a graceful shutdown (SIGINT, SIGTERM) ends after this long at most",
    ),
    ("--history", "N", "messages kept per channel for resume"),
    (
        "--send-buffer-bytes",
        "N",
        "unsent output per subscriber before it is cut as slow",
    ),
    (
        "--max-jobs",
        "N",
        "jobs remembered; the oldest finished job is forgotten first",
    ),
    (
        "--max-channels",
        "N",
        "channels that may exist (created on first use); past it: 503",
    ),
    (
        "--max-deliveries",
        "N",
        "webhook deliveries on the wire at once; up to 100x more wait in a queue",
    ),
    (
        "--allow-origin",
        "ORIGIN",
        "allowed Origin (repeatable); none given = any origin",
    ),
    (
        "--webhook-allow",
        "HOST[:PORT]",
        "allowed webhook host besides loopback (repeatable); HOST an IP or a DNS name, \
         resolved off the event loop before each delivery",
    ),
    (
        "--redis",
        "redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]",
        "share channels with other nodes through Redis (HOST: an IP, localhost or a DNS name; \
         AUTH and SELECT on every connection)",
    ),
    (
        "--history-bytes",
        "N",
        "message data kept per channel for resume (oldest evicted first)",
    ),
    (
        "--max-history-bytes",
        "N",
        "message data kept by all channels together (the process's oldest evicted first)",
    ),
    (
        "--max-webhooks",
        "N",
        "webhooks that may exist at once, job callbacks included; past it: 503",
    ),
    (
        "--deflate",
        "on|off",
        "accept WebSocket compression (permessage-deflate, RFC 7692)",
    ),
    (
        "--token-secret",
        "SECRET",
        "require signed tokens (HS256, >= 32 bytes) for channels, webhooks, /stats, /metrics; \
         or PUSHWIRE_TOKEN_SECRET",
    ),
    ("--trace", "", "narrate every protocol unit on stderr"),
    ("--help", "", "print this help"),
];

/// The `--help` text, with each flag's default.
pub fn help_text() -> String {
    let d = Config::default();
    let default_of = |flag: &str| -> String {
        match flag {
            "--addr" => d.addr.to_string(),
            "--max-conns" => d.max_conns.to_string(),
            "--max-header-bytes" => d.max_header_bytes.to_string(),
            "--max-body-bytes" => d.max_body_bytes.to_string(),
            "--max-message-bytes" => d.max_message_bytes.to_string(),
            "--header-timeout-ms" => d.header_timeout.as_millis().to_string(),
            "--idle-timeout-ms" => d.idle_timeout.as_millis().to_string(),
            "--ws-ping-ms" => d.ws_ping.as_millis().to_string(),
            "--sse-heartbeat-ms" => d.sse_heartbeat.as_millis().to_string(),
            "--close-timeout-ms" => d.close_timeout.as_millis().to_string(),
            "--linger-ms" => d.linger.as_millis().to_string(),
            "--shutdown-timeout-ms" => d.shutdown_timeout.as_millis().to_string(),
            "--history" => d.history.to_string(),
            "--send-buffer-bytes" => d.send_buffer_bytes.to_string(),
            "--max-jobs" => d.max_jobs.to_string(),
            "--max-channels" => d.max_channels.to_string(),
            "--max-deliveries" => d.max_deliveries.to_string(),
            "--listen-backlog" => d.listen_backlog.to_string(),
            "--allow-origin" => "none: any origin".into(),
            "--webhook-allow" => "none: loopback only".into(),
            "--trace" => "off".into(),
            "--redis" => "none: channels stay in this process".into(),
            "--history-bytes" => d.history_bytes.to_string(),
            "--max-history-bytes" => d.max_history_bytes.to_string(),
            "--max-webhooks" => d.max_webhooks.to_string(),
            "--deflate" => "on".into(),
            "--token-secret" => "none: every client may publish and subscribe".into(),
            _ => String::new(),
        }
    };
    let mut s = String::from(
        "pushwire: short polling, long polling, Server-Sent Events, WebSocket and webhooks\n\n\
         Usage: pushwire [FLAGS]\n       pushwire token [--sub NAME] [--subscribe PATTERNS] [--publish PATTERNS] \
         [--admin] [--ttl SECONDS] [--token-secret SECRET]\n\
         \x20                      prints an access token (HS256) signed with the secret \
         (or PUSHWIRE_TOKEN_SECRET); PATTERNS comma-separated; --ttl defaults to 3600, 0: no exp\n\nFlags:\n",
    );
    for (flag, value, help) in FLAGS {
        let left = format!("  {flag} {value}");
        let def = default_of(flag);
        if def.is_empty() {
            s.push_str(&format!("{left:<34} {help}\n"));
        } else {
            s.push_str(&format!("{left:<34} {help} [default: {def}]\n"));
        }
    }
    s.push_str(
        "\nEnvironment: RUST_LOG sets log levels (e.g. RUST_LOG=debug); PUSHWIRE_TOKEN_SECRET \
         is the token secret when --token-secret is not given.\n",
    );
    s
}

/// Parses the command line (without the program name).
pub fn parse_args<I: IntoIterator<Item = String>>(args: I) -> Result<Cli, ArgError> {
    let mut c = Config::default();
    let mut it = args.into_iter().peekable();
    if it.peek().map(String::as_str) == Some("token") {
        it.next();
        return parse_token_args(it);
    }
    while let Some(arg) = it.next() {
        // Accept both `--flag value` and `--flag=value`.
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        if flag == "--help" || flag == "-h" {
            return Ok(Cli::Help);
        }
        if flag == "--trace" {
            c.trace = true;
            continue;
        }
        if !FLAGS.iter().any(|(f, _, _)| *f == flag) {
            return Err(ArgError(format!("unknown flag {arg:?}; see --help")));
        }
        let value = match inline.or_else(|| it.next()) {
            Some(v) => v,
            None => return Err(ArgError(format!("{flag} needs a value; see --help"))),
        };
        let num = || -> Result<u64, ArgError> {
            value
                .parse::<u64>()
                .map_err(|_| ArgError(format!("{flag} takes a whole number, not {value:?}")))
        };
        let ms = || num().map(Duration::from_millis);
        match flag.as_str() {
            "--addr" => {
                // Resolved once, here, before the event loop exists (so a
                // name like `localhost:8080` is fine: nothing is blocked).
                use std::net::ToSocketAddrs;
                c.addr = value
                    .to_socket_addrs()
                    .ok()
                    .and_then(|mut a| a.next())
                    .ok_or_else(|| ArgError(format!("--addr takes HOST:PORT, not {value:?}")))?
            }
            "--max-conns" => c.max_conns = num()? as usize,
            "--max-header-bytes" => c.max_header_bytes = num()? as usize,
            "--max-body-bytes" => c.max_body_bytes = num()? as usize,
            "--max-message-bytes" => c.max_message_bytes = num()? as usize,
            "--header-timeout-ms" => c.header_timeout = ms()?,
            "--idle-timeout-ms" => c.idle_timeout = ms()?,
            "--ws-ping-ms" => c.ws_ping = ms()?,
            "--sse-heartbeat-ms" => c.sse_heartbeat = ms()?,
            "--close-timeout-ms" => c.close_timeout = ms()?,
            "--linger-ms" => c.linger = ms()?,
            "--shutdown-timeout-ms" => c.shutdown_timeout = ms()?,
            "--history" => c.history = num()? as usize,
            "--send-buffer-bytes" => c.send_buffer_bytes = num()? as usize,
            "--max-jobs" => c.max_jobs = (num()? as usize).max(1),
            "--max-channels" => c.max_channels = num()? as usize,
            "--max-deliveries" => c.max_deliveries = (num()? as usize).max(1),
            "--listen-backlog" => c.listen_backlog = num()?.clamp(1, i32::MAX as u64) as u32,
            "--allow-origin" => c.allow_origins.push(value),
            "--webhook-allow" => c.webhook_allow.push(parse_webhook_allow(&value)?),
            "--redis" => {
                let u = redis_url::parse(&value).map_err(|e| ArgError(format!("--redis: {e}")))?;
                c.redis = Some(u);
            }
            "--history-bytes" => c.history_bytes = num()? as usize,
            "--max-history-bytes" => c.max_history_bytes = num()? as usize,
            "--max-webhooks" => c.max_webhooks = num()? as usize,
            "--deflate" => {
                c.deflate = match value.as_str() {
                    "on" => true,
                    "off" => false,
                    _ => {
                        return Err(ArgError(format!(
                            "--deflate takes on or off, not {value:?}"
                        )))
                    }
                }
            }
            "--token-secret" => c.token_secret = Some(TokenSecret::new(value.as_bytes())?),
            _ => return Err(ArgError(format!("unknown flag {arg:?}; see --help"))),
        }
    }
    if c.ws_ping.is_zero() || c.sse_heartbeat.is_zero() {
        return Err(ArgError("intervals must be at least 1 ms".into()));
    }
    Ok(Cli::Run(Box::new(c)))
}

/// The flags of `pushwire token` (docs/api.md section 8).
fn parse_token_args(mut it: impl Iterator<Item = String>) -> Result<Cli, ArgError> {
    let mut t = TokenRequest {
        ttl: 3600,
        ..TokenRequest::default()
    };
    let patterns = |flag: &str, v: &str| -> Result<Vec<String>, ArgError> {
        let list: Vec<String> = v
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect();
        match list.iter().find(|p| !crate::wire::jwt::is_valid_pattern(p)) {
            Some(bad) => Err(ArgError(format!(
                "{flag}: {bad:?} is not a channel pattern (a name, a prefix ending in *, or *)"
            ))),
            None => Ok(list),
        }
    };
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        if flag == "--admin" {
            t.admin = true;
            continue;
        }
        if flag == "--help" || flag == "-h" {
            return Ok(Cli::Help);
        }
        let value = match inline.or_else(|| it.next()) {
            Some(v) => v,
            None => return Err(ArgError(format!("token {flag} needs a value; see --help"))),
        };
        match flag.as_str() {
            "--sub" => t.sub = Some(value),
            "--subscribe" => t.subscribe = patterns("--subscribe", &value)?,
            "--publish" => t.publish = patterns("--publish", &value)?,
            "--ttl" => {
                t.ttl = value.parse().map_err(|_| {
                    ArgError(format!(
                        "--ttl takes a whole number of seconds, not {value:?}"
                    ))
                })?
            }
            "--token-secret" => t.secret = Some(TokenSecret::new(value.as_bytes())?),
            _ => return Err(ArgError(format!("unknown token flag {arg:?}; see --help"))),
        }
    }
    Ok(Cli::Token(t))
}

/// A `--webhook-allow` entry: `HOST[:PORT]`, HOST an IP literal (IPv6 in
/// brackets), `localhost` or a DNS name (`wire::url`'s rules, so an entry
/// can only be written in forms a webhook URL can match). Checked at start
/// so that a typo is an error, not an entry that silently allows nothing.
fn parse_webhook_allow(entry: &str) -> Result<String, ArgError> {
    let bad = |why: String| ArgError(format!("--webhook-allow {entry:?}: {why}"));
    let (host, port) = url::split_host_port(entry).map_err(|e| bad(e.to_string()))?;
    url::parse_host(host).map_err(|e| bad(e.to_string()))?;
    if let Some(p) = port {
        url::parse_port(p).ok_or_else(|| bad(url::UrlError::BadPort.to_string()))?;
    }
    Ok(entry.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, ArgError> {
        parse_args(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn defaults_match_the_contract() {
        let c = Config::default();
        assert_eq!(c.addr.to_string(), "127.0.0.1:8080");
        assert_eq!(c.max_conns, 10_000);
        assert_eq!(c.max_header_bytes, 16_384);
        assert_eq!(c.history, 1000);
    }

    #[test]
    fn flags_in_both_forms() {
        let Cli::Run(c) = parse(&["--max-conns", "5", "--history=7", "--trace"]).unwrap() else {
            panic!("not run")
        };
        assert_eq!(c.max_conns, 5);
        assert_eq!(c.history, 7);
        assert!(c.trace);
    }

    #[test]
    fn bad_flags_are_errors() {
        assert!(parse(&["--nope"]).is_err());
        assert!(parse(&["--max-conns"]).is_err());
        assert!(parse(&["--max-conns", "-1"]).is_err());
        assert!(parse(&["--addr", "localhost"]).is_err());
        let Cli::Run(c) = parse(&["--addr", "localhost:0"]).unwrap() else {
            panic!("not run")
        };
        assert!(c.addr.ip().is_loopback());
    }

    #[test]
    fn redis_takes_a_url_with_credentials_and_a_name() {
        let Cli::Run(c) =
            parse(&["--redis", "redis://alice:s%40cret@cache.example:6380/2"]).unwrap()
        else {
            panic!("not run")
        };
        let u = c.redis.as_ref().unwrap();
        assert_eq!((u.host.as_str(), u.port, u.db), ("cache.example", 6380, 2));
        assert_eq!(u.password.as_ref().map(|p| p.expose()), Some("s@cret"));
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("s@cret") && !shown.contains("s%40cret"),
            "{shown}"
        );
        assert!(parse(&["--redis", "rediss://h"]).is_err());
        assert!(parse(&["--redis", "redis://word@h"]).is_err());
    }

    #[test]
    fn webhook_allow_entries_are_checked() {
        for good in ["hooks.example", "hooks.example:8080", "10.0.0.1", "[::1]:9"] {
            assert!(parse(&["--webhook-allow", good]).is_ok(), "{good}");
        }
        for bad in ["hooks.example:0", "a_b.example", "", "127.1", "[::1"] {
            assert!(parse(&["--webhook-allow", bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn help_names_every_flag() {
        let h = help_text();
        for (flag, _, _) in FLAGS {
            assert!(h.contains(flag), "{flag} missing");
        }
        assert!(h.contains("[default: 16384]"));
    }
}
