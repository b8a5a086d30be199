//! The two RESP connections to Redis (`--redis`), on pushwire's own loop:
//! one for commands, pipelined, their replies matched in order; one in
//! SUBSCRIBE mode, which can carry nothing else (RESP2). What the commands
//! mean for channels is `redis.rs`.
//!
//! ```text
//!  a DNS name? ─► lookup (off the loop, fresh at every (re)connect) ─► first address
//!  connect (non-blocking) ─► connected ─► AUTH [user] pass, SELECT db (as the URL asks)
//!     ├─ commands:   +OK to each ─► ready
//!     └─ subscriber: +OK to each, SUBSCRIBE ─► "subscribe" reply ─► ready
//!  both ready ─► up: sync every channel in use
//!  every 5 s on each: PING; the last one unanswered ─► down
//!  any error, EOF, a reply not within 5 s ─► down: close both, fail what
//!  waits on a reply, keep subscribers, reconnect after 0.1 s, 0.2 s, ... 5 s
//!  AUTH refused (or NOAUTH) ─► the same, with state auth_failed, logged once
//! ```
//!
//! The password leaves the process only inside `AUTH`: `--trace` shows
//! that command as `AUTH ***`, logs and `/stats` show the URL redacted.
//!
//! Both are background connections: they do not count against
//! `--max-conns` and do not keep a graceful shutdown waiting.

use std::net::SocketAddr;
use std::time::Duration;

use super::conn::{Kind, RedisConn, RedisRole, Session, Wait};
use super::redis::{self, Pending, PUBSUB, REPLY_TIMEOUT};
use super::{lookup, set_wait, App, Io, Timer};
use crate::net::{CloseReason, ConnId, Slot, Step};
use crate::wire::redis_url::explain_error;
use crate::wire::resp::{self, Value};
use crate::wire::Status;

/// How often each Redis connection is checked with a PING.
const PING_EVERY: Duration = Duration::from_secs(5);

/// Reconnect backoff: from the first to the largest wait, doubling. A
/// refused password waits the same way: it is only fixed by an operator,
/// so trying faster would only fill Redis' log.
pub const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Starts a (re)connect: straight to the URL's address, or first a fresh
/// lookup of its name (`resolved` continues).
pub fn connect(app: &mut App, io: &mut Io) {
    let Some(r) = app.redis.as_ref() else {
        return;
    };
    if r.lookup.is_some() || r.cmd.is_some() || r.sub.is_some() {
        return; // one attempt at a time
    }
    if let Some(addr) = r.url.socket_addr() {
        return open(app, io, addr);
    }
    let (host, port) = (r.url.host.clone(), r.url.port);
    // Fresh: a managed Redis that failed over moved its name to a new
    // address, and the cached one may be why the last connection failed.
    match lookup::ask(app, io, lookup::For::Redis, &host, port, true) {
        Ok(id) => {
            if let Some(r) = app.redis.as_mut() {
                r.lookup = Some(id);
            }
        }
        Err(e) => down(app, io, &format!("cannot look up {host}: {e}")),
    }
}

/// The answer to the lookup of the Redis host: connect to its first
/// address (RFC 6724 order, as `getaddrinfo` sorts them). Another address
/// is tried only through the next lookup, after the backoff.
pub fn resolved(app: &mut App, io: &mut Io, host: &str, result: std::io::Result<Vec<SocketAddr>>) {
    let Some(r) = app.redis.as_mut() else { return };
    r.lookup = None;
    if io.shutting_down() {
        return; // no new connections: the loop is ending
    }
    let port = r.url.port;
    match result.as_deref().map(|a| a.first().copied()) {
        Ok(Some(addr)) => {
            r.addr = Some(addr);
            app.trace
                .lookup(host, port, format_args!("using {addr} for Redis"));
            open(app, io, addr);
        }
        Ok(None) => down(app, io, &format!("{host} has no addresses")),
        Err(e) => down(app, io, &format!("could not resolve {host}: {e}")),
    }
}

/// Opens both connections to `addr` (non-blocking).
fn open(app: &mut App, io: &mut Io, addr: SocketAddr) {
    for role in [RedisRole::Commands, RedisRole::Subscriber] {
        let state = Session {
            kind: Kind::Redis(RedisConn {
                role,
                connected: false,
                awaiting_pong: false,
                handshake: 0,
            }),
            wait: Wait::None,
        };
        let id = match io.connect(addr, state, true) {
            Ok(id) => id,
            Err(e) => return down(app, io, &format!("connect to {addr} failed: {e}")),
        };
        if let Some(r) = app.redis.as_mut() {
            match role {
                RedisRole::Commands => r.cmd = Some(id),
                RedisRole::Subscriber => r.sub = Some(id),
            }
        }
        // Connect, log in and (the subscriber) subscribe within this.
        set_wait(io, id, Wait::Backplane, Some(REPLY_TIMEOUT));
    }
}

/// The connect's outcome: log in first (`AUTH`, `SELECT`, as the URL
/// asks), pipelined with the subscriber's `SUBSCRIBE`; a connection is
/// ready only once every login reply was `+OK`.
pub fn connected(app: &mut App, io: &mut Io, id: ConnId, outcome: std::io::Result<()>) {
    if let Err(e) = outcome {
        return down(app, io, &format!("connect failed: {e}"));
    }
    let Some(Kind::Redis(rc)) = io.state(id).map(|s| &s.kind) else {
        return;
    };
    let role = rc.role;
    app.trace.event(
        io.peer(id),
        format_args!("redis {role:?} connection established"),
    );
    io.set_deadline_in(id, Slot::Tick, Some(PING_EVERY));
    let replies = login(app, io, id);
    if let Some(Kind::Redis(rc)) = io.state_mut(id).map(|s| &mut s.kind) {
        rc.connected = true;
        rc.handshake = replies;
    }
    match role {
        RedisRole::Commands if replies == 0 => commands_ready(app, io, id),
        RedisRole::Commands => {} // ready at the last +OK (`login_reply`)
        RedisRole::Subscriber => send(app, io, id, &[b"SUBSCRIBE", PUBSUB.as_bytes()]),
    }
}

/// Queues the URL's `AUTH` and `SELECT` on `id`; returns how many replies
/// they will get.
fn login(app: &mut App, io: &mut Io, id: ConnId) -> usize {
    let Some(r) = app.redis.as_ref() else {
        return 0;
    };
    let trace = app.trace;
    let peer = io.peer(id);
    let Some(output) = io.output(id) else {
        return 0;
    };
    let mut out = output.owned_tail();
    let start = out.len();
    let replies = r.url.write_handshake(&mut out);
    trace_sent(trace, peer, &out[start..]);
    replies
}

/// The command connection is logged in: ready; up if the subscriber is.
fn commands_ready(app: &mut App, io: &mut Io, id: ConnId) {
    set_wait(io, id, Wait::None, None);
    if let Some(r) = app.redis.as_mut() {
        r.cmd_ready = true;
    }
    maybe_up(app, io);
}

/// Every `PING_EVERY` on each connection: a PING, or, if the last one is
/// still unanswered, the link is dead even though TCP did not say so (a
/// silent network, a stuck Redis).
pub fn tick(app: &mut App, io: &mut Io, id: ConnId) {
    let Some(Kind::Redis(rc)) = io.state_mut(id).map(|s| &mut s.kind) else {
        return;
    };
    if !rc.connected {
        return;
    }
    if rc.awaiting_pong {
        return down(app, io, "no answer to PING");
    }
    rc.awaiting_pong = true;
    let role = rc.role;
    io.set_deadline_in(id, Slot::Tick, Some(PING_EVERY));
    match role {
        RedisRole::Commands => {
            command(app, io, &[b"PING"], Pending::Ping);
        }
        // RESP2 allows PING in SUBSCRIBE mode; it answers ["pong", ""].
        RedisRole::Subscriber => send(app, io, id, &[b"PING"]),
    }
}

fn pong(io: &mut Io, id: ConnId) {
    if let Some(Kind::Redis(rc)) = io.state_mut(id).map(|s| &mut s.kind) {
        rc.awaiting_pong = false;
    }
}

/// Both connections work: reset the backoff and catch every channel in use
/// up with the stream.
fn maybe_up(app: &mut App, io: &mut Io) {
    let Some(r) = app.redis.as_mut() else { return };
    if !r.is_up() {
        return;
    }
    r.backoff = BACKOFF_FIRST;
    r.auth_failed = false;
    let at = r.addr.map(|a| format!(" ({a})")).unwrap_or_default();
    log::info!("redis backplane {}{at} is up", r.url.display_redacted());
    redis::up(app, io);
}

fn send(app: &mut App, io: &mut Io, id: ConnId, args: &[&[u8]]) {
    let trace = app.trace;
    let peer = io.peer(id);
    let Some(output) = io.output(id) else { return };
    let mut out = output.owned_tail();
    let start = out.len();
    resp::write_command(&mut out, args);
    trace_sent(trace, peer, &out[start..]);
}

/// `--trace` for commands as they go on the wire, decoded back (long
/// arguments, like a script's text, are cut by `describe`). An `AUTH`'s
/// password is shown as `***` (its length too is hidden).
fn trace_sent(trace: crate::trace::Trace, peer: Option<SocketAddr>, mut bytes: &[u8]) {
    if !trace.on {
        return;
    }
    while let Ok(Status::Complete((v, n))) = resp::parse(bytes, &resp::Limits::default()) {
        trace.event(
            peer,
            format_args!("redis <- {}", resp::describe(&redacted(v))),
        );
        bytes = &bytes[n..];
    }
}

/// An `AUTH` command with its last argument (the password) replaced.
fn redacted(v: Value) -> Value {
    match v {
        Value::Array(mut args) if matches!(args.first(), Some(Value::Bulk(c)) if c.eq_ignore_ascii_case(b"AUTH")) =>
        {
            if args.len() > 1 {
                if let Some(last) = args.last_mut() {
                    *last = Value::Bulk(b"***".to_vec());
                }
            }
            Value::Array(args)
        }
        other => other,
    }
}

/// Sends a command on the command connection and remembers what its reply
/// is for. `false` when the backplane is not up.
pub fn command(app: &mut App, io: &mut Io, args: &[&[u8]], pending: Pending) -> bool {
    let Some(id) = app.redis.as_ref().and_then(|r| r.cmd.filter(|_| r.is_up())) else {
        return false;
    };
    let was_idle = app.redis.as_ref().is_some_and(|r| r.pending.is_empty());
    if let Some(r) = app.redis.as_mut() {
        r.pending.push_back(pending);
    }
    send(app, io, id, args);
    if was_idle {
        set_wait(io, id, Wait::Backplane, Some(REPLY_TIMEOUT));
    }
    true
}

/// Reads replies (command connection) or messages (subscriber); the first
/// replies on either are the login's.
pub fn reply_step(app: &mut App, io: &mut Io, id: ConnId, buf: &mut [u8]) -> Step {
    let Some(Kind::Redis(rc)) = io.state(id).map(|s| &s.kind) else {
        return Step::NeedMore;
    };
    let (role, logging_in) = (rc.role, rc.handshake > 0);
    let (value, n) = match resp::parse(buf, &resp::Limits::default()) {
        Ok(Status::Partial) => return Step::NeedMore,
        Ok(Status::Complete(x)) => x,
        Err(e) => {
            down(app, io, &format!("bad reply from Redis: {e}"));
            return Step::Consumed(buf.len());
        }
    };
    app.trace.event(
        io.peer(id),
        format_args!("redis -> {}", resp::describe(&value)),
    );
    match role {
        _ if logging_in => login_reply(app, io, id, value),
        RedisRole::Subscriber => subscriber_message(app, io, id, value),
        RedisRole::Commands => command_reply(app, io, id, value),
    }
    Step::Consumed(n)
}

/// A reply to `AUTH` or `SELECT`: `+OK`, or the login failed.
fn login_reply(app: &mut App, io: &mut Io, id: ConnId, v: Value) {
    match v {
        Value::Simple(ok) if ok == "OK" => {
            let Some(Kind::Redis(rc)) = io.state_mut(id).map(|s| &mut s.kind) else {
                return;
            };
            rc.handshake -= 1;
            if rc.handshake == 0 && rc.role == RedisRole::Commands {
                commands_ready(app, io, id);
            }
        }
        Value::Error(e) => refused(app, io, &e),
        other => down(
            app,
            io,
            &format!(
                "unexpected reply to AUTH or SELECT: {}",
                resp::describe(&other)
            ),
        ),
    }
}

fn subscriber_message(app: &mut App, io: &mut Io, id: ConnId, v: Value) {
    let parts = match v {
        Value::Array(parts) => parts,
        // SUBSCRIBE refused: NOAUTH (Redis wants a password the URL does
        // not give), NOPERM (an ACL user without the channel), ...
        Value::Error(e) => return refused(app, io, &e),
        _ => return,
    };
    match parts.as_slice() {
        [Value::Bulk(kind), _, Value::Integer(_)] if kind.as_slice() == b"subscribe" => {
            if let Some(r) = app.redis.as_mut() {
                r.sub_ready = true;
            }
            // Subscribed: the connect's deadline is over (the PING tick
            // watches the link from now on). Left armed, it cut every
            // node's link 5 s after each connect.
            set_wait(io, id, Wait::None, None);
            maybe_up(app, io);
        }
        [Value::Bulk(kind), _] if kind.as_slice() == b"pong" => pong(io, id),
        [Value::Bulk(kind), _, Value::Bulk(payload)] if kind.as_slice() == b"message" => {
            redis::announced(app, io, payload)
        }
        _ => {}
    }
}

fn command_reply(app: &mut App, io: &mut Io, id: ConnId, v: Value) {
    // Not logged in (NOAUTH) or not allowed (NOPERM): no command will
    // work, so this is the backplane's failure, not one command's.
    if let Value::Error(e) = &v {
        if e.starts_with("NOAUTH") || e.starts_with("NOPERM") {
            let e = e.clone();
            return refused(app, io, &e);
        }
    }
    let Some(r) = app.redis.as_mut() else { return };
    let Some(pending) = r.pending.pop_front() else {
        return down(app, io, "a reply nobody asked for");
    };
    let more = !r.pending.is_empty();
    set_wait(
        io,
        id,
        if more { Wait::Backplane } else { Wait::None },
        more.then_some(REPLY_TIMEOUT),
    );
    if let Pending::Ping = pending {
        pong(io, id);
    }
    redis::replied(app, io, pending, v);
}

/// Redis refused the login (or a command for want of one): a credentials
/// problem only an operator can fix. Logged once, clearly (again only when
/// the reason changes), shown in `/stats` (`"state":"auth_failed"`,
/// `last_error`) and `/metrics`, and retried with the same capped backoff
/// as any failure, in case the operator fixes it on the Redis side.
fn refused(app: &mut App, io: &mut Io, reply: &str) {
    let sentence = match explain_error(reply) {
        Some(s) => format!("{s} (Redis said: {reply})"),
        None => format!("Redis refused the login: {reply}"),
    };
    fail(app, io, &sentence, true);
}

/// A Redis connection left the slab (after `down` closed it, or on a socket
/// error).
pub fn closed(app: &mut App, io: &mut Io, id: ConnId) {
    let ours = app
        .redis
        .as_ref()
        .is_some_and(|r| r.cmd == Some(id) || r.sub == Some(id));
    if ours {
        down(app, io, "the connection to Redis failed");
    }
}

/// A connection to Redis failed: close both, fail what waits on a reply,
/// keep subscribers, reconnect after the backoff.
pub fn down(app: &mut App, io: &mut Io, why: &str) {
    fail(app, io, why, false);
}

/// `down`, for a login refused (`auth`) or anything else. A failure is
/// logged when it is news (the link was up, or the reason changed); the
/// same failure again, every backoff, is logged at debug level only and
/// counted in `/stats` (`failures`), so a Redis that stays away neither
/// floods the log nor fails silently.
fn fail(app: &mut App, io: &mut Io, why: &str, auth: bool) {
    let Some(r) = app.redis.as_mut() else { return };
    let (cmd, sub) = (r.cmd.take(), r.sub.take());
    let was_up = r.is_up();
    r.cmd_ready = false;
    r.sub_ready = false;
    r.failures += 1;
    let news = was_up || r.last_error.as_deref() != Some(why);
    r.last_error = Some(why.to_string());
    r.auth_failed = auth;
    let wait = r.backoff;
    r.backoff = (r.backoff * 2).min(BACKOFF_MAX);
    let pending = std::mem::take(&mut r.pending);
    let url = r.url.display_redacted();
    let ms = wait.as_millis();
    match (news, auth) {
        (true, true) => log::error!(
            "redis backplane {url}: {why}; channels are unavailable until it accepts the \
             login; retrying in {ms} ms, then at most every {} s",
            BACKOFF_MAX.as_secs()
        ),
        (true, false) => log::warn!("redis backplane {url} down ({why}); reconnecting in {ms} ms"),
        (false, _) => log::debug!("redis backplane {url} still down ({why}); retrying in {ms} ms"),
    }
    for id in [cmd, sub].into_iter().flatten() {
        io.close_now(id, CloseReason::Error);
    }
    for p in pending {
        redis::abandoned(app, io, p);
    }
    if !io.shutting_down() {
        io.push_timer(io.now() + wait, Timer::RedisReconnect);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::Bulk(s.as_bytes().to_vec())
    }

    #[test]
    fn auth_is_traced_without_its_password() {
        let v = Value::Array(vec![bulk("AUTH"), bulk("alice"), bulk("s3cret")]);
        let shown = resp::describe(&redacted(v));
        assert!(!shown.contains("s3cret"), "{shown}");
        assert_eq!(shown, r#"*3 [$4 "AUTH", $5 "alice", $3 "***"]"#);
        let v = Value::Array(vec![bulk("auth"), bulk("pw")]);
        assert_eq!(resp::describe(&redacted(v)), r#"*2 [$4 "auth", $3 "***"]"#);
    }

    #[test]
    fn other_commands_are_traced_as_they_are() {
        let v = Value::Array(vec![bulk("SELECT"), bulk("2")]);
        assert_eq!(resp::describe(&redacted(v)), r#"*2 [$6 "SELECT", $1 "2"]"#);
    }
}
