//! The two RESP connections to Redis (`--redis`), on pushwire's own loop:
//! one for commands, pipelined, their replies matched in order; one in
//! SUBSCRIBE mode, which can carry nothing else (RESP2). What the commands
//! mean for channels is `redis.rs`.
//!
//! ```text
//!  connect (non-blocking) ─► connected ─┬─ commands: ready
//!                                       └─ subscriber: SUBSCRIBE ─► "subscribe" reply: ready
//!  both ready ─► up: sync every channel in use
//!  every 5 s on each: PING; the last one unanswered ─► down
//!  any error, EOF, a reply not within 5 s ─► down: close both, fail what
//!  waits on a reply, keep subscribers, reconnect after 0.1 s, 0.2 s, ... 5 s
//! ```
//!
//! Both are background connections: they do not count against
//! `--max-conns` and do not keep a graceful shutdown waiting.

use std::time::Duration;

use super::conn::{Kind, RedisConn, RedisRole, Session, Wait};
use super::redis::{self, Pending, PUBSUB, REPLY_TIMEOUT};
use super::{set_wait, App, Io, Timer};
use crate::net::{CloseReason, ConnId, Slot, Step};
use crate::wire::resp::{self, Value};
use crate::wire::Status;

/// How often each Redis connection is checked with a PING.
const PING_EVERY: Duration = Duration::from_secs(5);

/// Reconnect backoff: from the first to the largest wait, doubling.
pub const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Opens both connections (non-blocking).
pub fn connect(app: &mut App, io: &mut Io) {
    let Some(addr) = app.redis.as_ref().map(|r| r.addr) else {
        return;
    };
    for role in [RedisRole::Commands, RedisRole::Subscriber] {
        let state = Session {
            kind: Kind::Redis(RedisConn {
                role,
                connected: false,
                awaiting_pong: false,
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
        set_wait(io, id, Wait::Backplane, Some(REPLY_TIMEOUT));
    }
}

/// The connect's outcome.
pub fn connected(app: &mut App, io: &mut Io, id: ConnId, outcome: std::io::Result<()>) {
    if let Err(e) = outcome {
        return down(app, io, &format!("connect failed: {e}"));
    }
    let Some(Kind::Redis(rc)) = io.state_mut(id).map(|s| &mut s.kind) else {
        return;
    };
    rc.connected = true;
    let role = rc.role;
    app.trace.event(
        io.peer(id),
        format_args!("redis {role:?} connection established"),
    );
    io.set_deadline_in(id, Slot::Tick, Some(PING_EVERY));
    match role {
        RedisRole::Commands => {
            set_wait(io, id, Wait::None, None);
            if let Some(r) = app.redis.as_mut() {
                r.cmd_ready = true;
            }
            maybe_up(app, io);
        }
        RedisRole::Subscriber => send(app, io, id, &[b"SUBSCRIBE", PUBSUB.as_bytes()]),
    }
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
    log::info!("redis backplane at {} is up", r.addr);
    redis::up(app, io);
}

fn send(app: &mut App, io: &mut Io, id: ConnId, args: &[&[u8]]) {
    let trace = app.trace;
    let peer = io.peer(id);
    let Some(output) = io.output(id) else { return };
    let mut out = output.owned_tail();
    let start = out.len();
    resp::write_command(&mut out, args);
    if trace.on {
        // The command as it goes on the wire, decoded back (long arguments,
        // like a script's text, are cut by `describe`).
        if let Ok(Status::Complete((v, _))) = resp::parse(&out[start..], &resp::Limits::default()) {
            trace.event(peer, format_args!("redis <- {}", resp::describe(&v)));
        }
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

/// Reads replies (command connection) or messages (subscriber).
pub fn reply_step(app: &mut App, io: &mut Io, id: ConnId, buf: &mut [u8]) -> Step {
    let Some(Kind::Redis(rc)) = io.state(id).map(|s| &s.kind) else {
        return Step::NeedMore;
    };
    let role = rc.role;
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
        RedisRole::Subscriber => subscriber_message(app, io, id, value),
        RedisRole::Commands => command_reply(app, io, id, value),
    }
    Step::Consumed(n)
}

fn subscriber_message(app: &mut App, io: &mut Io, id: ConnId, v: Value) {
    let Value::Array(parts) = v else { return };
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
    let Some(r) = app.redis.as_mut() else { return };
    let (cmd, sub) = (r.cmd.take(), r.sub.take());
    let was_up = r.is_up();
    r.cmd_ready = false;
    r.sub_ready = false;
    r.failures += 1;
    r.last_error = Some(why.to_string());
    let wait = r.backoff;
    r.backoff = (r.backoff * 2).min(BACKOFF_MAX);
    let pending = std::mem::take(&mut r.pending);
    if was_up || cmd.is_some() || sub.is_some() {
        log::warn!(
            "redis backplane down ({why}); reconnecting in {} ms",
            wait.as_millis()
        );
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
