//! Several nodes as one service: channels shared through Redis (docs/api.md
//! section 7), spoken in RESP (`wire::resp`) on pushwire's own loop.
//!
//! ```text
//!  node A                         Redis                           node B
//!  POST /channels/news "hi"
//!   └─ EVAL publish ───────────►  INCR   pushwire:{news}:seq  → 8
//!                                 XADD   pushwire:{news}:log  8-1 d "hi" (MAXLEN --history)
//!                                 PUBLISH pushwire:messages "news\n8\nhi"
//!   ◄──────────────── :8 ────────     │
//!  201 {"id":8}                       ├──► SUBSCRIBE connection of A ─► A's subscribers
//!                                     └──► SUBSCRIBE connection of B ─► B's subscribers
//! ```
//!
//! Each node keeps a mirror of every channel it uses: its last id and its
//! kept messages (`hub.rs`). Ids come from Redis alone (one atomic script),
//! so they are 1, 2, 3, ... per channel across all nodes, and every node
//! applies messages strictly in id order. Anything that could leave the
//! mirror behind (first use of a channel on this node, a gap in the ids,
//! a reconnect) triggers a sync: one script returns the channel's id and
//! its whole kept stream, and whatever the mirror lacked is delivered then.
//! Requests that need an unsynced channel are held (their bytes stay in the
//! connection's buffer) and run again once it is synced: every reading path
//! stays the same synchronous code as without Redis.
//!
//! The two RESP connections themselves (name lookup, connect, login,
//! PING, replies matched to commands, outages) are `redis_conn.rs`.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::conn::{Kind, ParkedOn, Wait};
use super::http::{self, Ctx};
use super::{channels, longpoll, redis_conn, set_wait, App, Io};
use crate::hub::Stored;
use crate::net::{CloseReason, ConnId};
use crate::wire::redis_url::RedisUrl;
use crate::wire::resp::{self, Value};

/// The one pub/sub channel every node subscribes to.
pub const PUBSUB: &str = "pushwire:messages";

/// Appends a message atomically: the next id, the stream entry (trimmed
/// to --history), the notification. KEYS: seq, log. ARGV: data, history,
/// pub/sub channel, channel name, quiet ("1": published by a webhook
/// delivery, fires no webhook on any node; "0" otherwise).
const PUBLISH_SCRIPT: &str = "local id = redis.call('INCR', KEYS[1]) \
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[2], id .. '-1', 'd', ARGV[1], 'q', ARGV[5]) \
redis.call('PUBLISH', ARGV[3], ARGV[4] .. '\\n' .. id .. '\\n' .. ARGV[5] .. '\\n' .. ARGV[1]) \
return id";

/// A channel's state in one round trip: its last id and its kept stream.
/// ARGV[1] is the last id this node has seen: if Redis lost its data (a
/// restart without persistence), its counter is raised to that, so an id
/// is never given to two different messages.
const SYNC_SCRIPT: &str = "local seen = tonumber(ARGV[1]) \
local cur = tonumber(redis.call('GET', KEYS[1]) or '0') \
if cur < seen then redis.call('SET', KEYS[1], seen) cur = seen end \
return {tostring(cur), redis.call('XRANGE', KEYS[2], '-', '+')}";

/// A command with no reply within this long means Redis is unusable.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// A request held for an unsynced channel gives up after this long (503).
pub const SYNC_WAIT: Duration = Duration::from_secs(5);

/// What a command's reply is for, in the order the commands were sent.
#[derive(Debug)]
pub enum Pending {
    /// A publish; the waiter is `Some` when an HTTP request waits for the
    /// id. `accepted`: when this node read the publish (what
    /// `pushwire_delivery_seconds` measures from).
    Publish {
        ch: usize,
        data: Arc<str>,
        quiet: bool,
        waiter: Option<ConnId>,
        accepted: Instant,
    },
    /// A keep-alive PING on the command connection.
    Ping,
    Sync(usize),
}

/// The backplane's state.
#[derive(Debug)]
pub struct Redis {
    /// `--redis`, password included (its `Debug` shows `***`; print it
    /// with `display_redacted`).
    pub url: RedisUrl,
    /// The address connected to (or last connected to): the URL's literal,
    /// or what its name resolved to at the last (re)connect.
    pub addr: Option<SocketAddr>,
    /// The lookup of the URL's name under way (`lookup.rs`), if any.
    pub lookup: Option<u64>,
    pub cmd: Option<ConnId>,
    pub sub: Option<ConnId>,
    /// Logged in (`AUTH`, `SELECT`) and ready for commands.
    pub cmd_ready: bool,
    /// Logged in and subscribed.
    pub sub_ready: bool,
    pub pending: VecDeque<Pending>,
    pub backoff: Duration,
    pub failures: u64,
    pub last_error: Option<String>,
    /// Redis refused the credentials (or demands some the URL lacks) on
    /// the last try; cleared once the backplane is up again.
    pub auth_failed: bool,
}

impl Redis {
    pub fn new(url: RedisUrl) -> Self {
        Redis {
            addr: url.socket_addr(),
            url,
            lookup: None,
            cmd: None,
            sub: None,
            cmd_ready: false,
            sub_ready: false,
            pending: VecDeque::new(),
            backoff: redis_conn::BACKOFF_FIRST,
            failures: 0,
            last_error: None,
            auth_failed: false,
        }
    }

    pub fn is_up(&self) -> bool {
        self.cmd_ready && self.sub_ready
    }
}

/// What `/stats` ("state") and `/metrics` (`pushwire_backplane_state`)
/// say the backplane is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// No `--redis`: channels live in this process.
    Memory,
    /// Connected, logged in and subscribed.
    Up,
    /// Looking up the Redis host's name.
    Resolving,
    /// Connecting and logging in.
    Connecting,
    /// Waiting for the next attempt after a failure.
    Down,
    /// Redis refused the credentials of `--redis` (or wants some it lacks):
    /// shown until a login succeeds, even while the next attempt runs, so
    /// the operator sees why rather than "connecting".
    AuthFailed,
}

impl State {
    pub const ALL: [State; 6] = [
        State::Memory,
        State::Up,
        State::Resolving,
        State::Connecting,
        State::Down,
        State::AuthFailed,
    ];

    pub fn name(self) -> &'static str {
        match self {
            State::Memory => "memory",
            State::Up => "up",
            State::Resolving => "resolving",
            State::Connecting => "connecting",
            State::Down => "down",
            State::AuthFailed => "auth_failed",
        }
    }

    /// Can channels be used?
    pub fn is_up(self) -> bool {
        matches!(self, State::Memory | State::Up)
    }
}

/// The backplane's state now.
pub fn state(app: &App) -> State {
    match &app.redis {
        None => State::Memory,
        Some(r) if r.is_up() => State::Up,
        Some(r) if r.auth_failed => State::AuthFailed,
        Some(r) if r.lookup.is_some() => State::Resolving,
        Some(r) if r.cmd.is_some() || r.sub.is_some() => State::Connecting,
        Some(_) => State::Down,
    }
}

/// What a reply to the sync script holds: the last id and the kept log.
fn parse_sync_reply(v: &Value) -> Option<(u64, Vec<Stored>)> {
    let Value::Array(parts) = v else { return None };
    let [seq, log] = parts.as_slice() else {
        return None;
    };
    let last_id = match seq {
        Value::Bulk(b) => std::str::from_utf8(b).ok()?.parse().ok()?,
        Value::Null => 0,
        _ => return None,
    };
    let Value::Array(entries) = log else {
        return None;
    };
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        // [ "8-1", [ "d", "<data>", "q", "0" ] ] (no "q": not quiet)
        let Value::Array(pair) = e else { return None };
        let [Value::Bulk(id), Value::Array(fields)] = pair.as_slice() else {
            return None;
        };
        let id: u64 = std::str::from_utf8(id)
            .ok()?
            .split('-')
            .next()?
            .parse()
            .ok()?;
        let (data, quiet) = match fields.as_slice() {
            [Value::Bulk(_), Value::Bulk(d)] => (d, false),
            [Value::Bulk(_), Value::Bulk(d), Value::Bulk(_), Value::Bulk(q)] => {
                (d, q.as_slice() == b"1")
            }
            _ => return None,
        };
        out.push(Stored {
            id,
            data: Arc::from(std::str::from_utf8(data).ok()?),
            quiet,
        });
    }
    Some((last_id, out))
}

/// `news\n8\n0\nhi` → ("news", 8, not quiet, "hi").
fn parse_announcement(payload: &[u8]) -> Option<(&str, u64, bool, &str)> {
    let text = std::str::from_utf8(payload).ok()?;
    let (name, rest) = text.split_once('\n')?;
    let (id, rest) = rest.split_once('\n')?;
    let (quiet, data) = rest.split_once('\n')?;
    let quiet = match quiet {
        "0" => false,
        "1" => true,
        _ => return None,
    };
    Some((name, id.parse().ok()?, quiet, data))
}

fn seq_key(name: &str) -> String {
    // The braces are a Redis Cluster hash tag: both keys of a channel land
    // on the same shard, so the script may touch both.
    format!("pushwire:{{{name}}}:seq")
}

fn log_key(name: &str) -> String {
    format!("pushwire:{{{name}}}:log")
}

/// Is a channel ready to be read? See `channel_ready`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    /// The request was answered (503: the backplane is down).
    Answered,
    /// The request waits for the channel's sync and runs again after it.
    Held,
}

/// Both connections work: catch every channel in use up with the stream.
pub fn up(app: &mut App, io: &mut Io) {
    for ch in app.hub.indices() {
        let c = app.hub.get(ch);
        if c.synced || !c.waiting.is_empty() || !c.subscribers.is_empty() {
            sync(app, io, ch);
        }
    }
}

/// Publishes through Redis. `Err` when Redis is unreachable.
pub fn publish(
    app: &mut App,
    io: &mut Io,
    ch: usize,
    data: &str,
    quiet: bool,
    waiter: Option<ConnId>,
) -> Result<(), ()> {
    let name = app.hub.get(ch).name.clone();
    let (seq, log) = (seq_key(&name), log_key(&name));
    let history = app.cfg.history.to_string();
    let args: [&[u8]; 10] = [
        b"EVAL",
        PUBLISH_SCRIPT.as_bytes(),
        b"2",
        seq.as_bytes(),
        log.as_bytes(),
        data.as_bytes(),
        history.as_bytes(),
        PUBSUB.as_bytes(),
        name.as_bytes(),
        if quiet { b"1" } else { b"0" },
    ];
    let pending = Pending::Publish {
        ch,
        data: Arc::from(data),
        quiet,
        waiter,
        accepted: io.now(),
    };
    if redis_conn::command(app, io, &args, pending) {
        // The channel's slot stays while the reply is awaited.
        app.hub.get_mut(ch).pending += 1;
        Ok(())
    } else {
        Err(())
    }
}

/// Asks for a channel's whole state; `apply_sync` handles the answer.
pub fn sync(app: &mut App, io: &mut Io, ch: usize) {
    if app.hub.get(ch).syncing {
        return;
    }
    let name = app.hub.get(ch).name.clone();
    let (seq, log) = (seq_key(&name), log_key(&name));
    let seen = app.hub.get(ch).last_id.to_string();
    let args: [&[u8]; 6] = [
        b"EVAL",
        SYNC_SCRIPT.as_bytes(),
        b"2",
        seq.as_bytes(),
        log.as_bytes(),
        seen.as_bytes(),
    ];
    if redis_conn::command(app, io, &args, Pending::Sync(ch)) {
        let c = app.hub.get_mut(ch);
        c.syncing = true;
        c.seen_while_syncing = 0;
    }
}

/// Is channel `ch` ready to be read from `cursor` on? If not, the request
/// on `id` is held until it is, or answered 503 when Redis is down.
///
/// With several nodes, a cursor beyond this node's last id is usually not
/// "from the future": it was learned from another node (or from a publish
/// answered before its announcement arrived here). So it is decided only
/// after a sync; if it is still ahead then, it really is from before a
/// restart of Redis, and the answer says truncated.
pub fn channel_ready(
    app: &mut App,
    io: &mut Io,
    id: ConnId,
    ctx: Ctx<'_>,
    ch: usize,
    cursor: Option<u64>,
) -> Readiness {
    let c = app.hub.get(ch);
    let ahead = app.hub.is_mirrored() && cursor.is_some_and(|n| n > c.last_id);
    let held_before = match io.state(id).map(|s| &s.kind) {
        Some(Kind::Http(st)) => st.synced_once,
        _ => false,
    };
    if c.synced && (!ahead || held_before) {
        return Readiness::Ready;
    }
    // Connecting (at start, or reconnecting): hold the request; the channel
    // is synced as soon as both connections are up. Down (waiting for the
    // next attempt): answer now.
    let usable = app
        .redis
        .as_ref()
        .is_some_and(|r| r.is_up() || r.cmd.is_some() || r.sub.is_some());
    if !usable {
        let sentence = "the backplane (Redis) is unreachable; try again";
        http::respond_error(app, io, id, ctx, 503, sentence);
        return Readiness::Answered;
    }
    let c = app.hub.get_mut(ch);
    if !c.waiting.contains(&id) {
        c.waiting.push(id);
    }
    sync(app, io, ch);
    app.trace.event(
        io.peer(id),
        format_args!(
            "request held until channel {} is synced with Redis",
            app.hub.get(ch).name
        ),
    );
    if let Some(Kind::Http(st)) = io.state_mut(id).map(|s| &mut s.kind) {
        st.synced_once = true;
    }
    set_wait(io, id, Wait::Backplane, Some(SYNC_WAIT));
    Readiness::Held
}

/// An announcement on the subscriber connection: `news\n8\nhi`.
pub fn announced(app: &mut App, io: &mut Io, payload: &[u8]) {
    let Some((name, id, quiet, data)) = parse_announcement(payload) else {
        return;
    };
    // A channel nobody here has used: nothing to keep in step.
    let Some(ch) = app.hub.lookup(name) else {
        return;
    };
    let c = app.hub.get_mut(ch);
    if c.syncing {
        c.seen_while_syncing = c.seen_while_syncing.max(id);
        return;
    }
    if !c.synced {
        return;
    }
    let last = c.last_id;
    match app.hub.append_with_id(ch, id, Arc::from(data), quiet) {
        Some(m) => channels::deliver(app, io, ch, m, io.now()),
        // A gap: something was missed (a reconnect, a race with a sync);
        // the stream has it.
        None if id > last + 1 => sync(app, io, ch),
        None => {} // already applied
    }
}

/// The reply to a command, matched with what it was for.
pub fn replied(app: &mut App, io: &mut Io, pending: Pending, v: Value) {
    match pending {
        Pending::Ping => {}
        Pending::Publish {
            ch,
            data,
            quiet,
            waiter,
            accepted,
        } => {
            let c = app.hub.get_mut(ch);
            c.pending = c.pending.saturating_sub(1);
            let answer = match v {
                Value::Integer(id) => Ok(id),
                Value::Error(e) => Err(e),
                other => Err(format!("unexpected reply {}", resp::describe(&other))),
            };
            match &answer {
                // This node learns its own message from the reply, so the
                // publisher's next read here already sees it (the
                // announcement that follows is then a duplicate).
                Ok(id) => {
                    let c = app.hub.get(ch);
                    if c.synced && !c.syncing {
                        if let Some(m) = app.hub.append_with_id(ch, *id as u64, data, quiet) {
                            channels::deliver(app, io, ch, m, accepted);
                        }
                    }
                }
                Err(e) => log::warn!("redis publish failed: {e}"),
            }
            if let Some(waiter) = waiter {
                finish_held_publish(app, io, waiter, answer.ok());
            }
            app.hub.release_if_unused(ch);
        }
        Pending::Sync(ch) => apply_sync(app, io, ch, &v),
    }
}

/// A command's reply will never come (the connection failed).
pub fn abandoned(app: &mut App, io: &mut Io, pending: Pending) {
    match pending {
        Pending::Publish { ch, waiter, .. } => {
            let c = app.hub.get_mut(ch);
            c.pending = c.pending.saturating_sub(1);
            if let Some(waiter) = waiter {
                finish_held_publish(app, io, waiter, None);
            }
            app.hub.release_if_unused(ch);
        }
        Pending::Ping => {}
        Pending::Sync(ch) => {
            app.hub.get_mut(ch).syncing = false;
            app.hub.release_if_unused(ch);
        }
    }
}

fn apply_sync(app: &mut App, io: &mut Io, ch: usize, v: &Value) {
    app.hub.get_mut(ch).syncing = false;
    let Some((last_id, log)) = parse_sync_reply(v) else {
        log::warn!(
            "redis sync of channel {} failed: {}",
            app.hub.get(ch).name,
            resp::describe(v)
        );
        app.hub.release_if_unused(ch);
        return;
    };
    let fresh = app.hub.sync_from(ch, last_id, log);
    let now = io.now();
    for m in fresh {
        channels::deliver(app, io, ch, m, now);
    }
    let mut resumed = false;
    for id in std::mem::take(&mut app.hub.get_mut(ch).waiting) {
        if io.get(id).is_some() {
            set_wait(io, id, Wait::KeepAlive, Some(app.cfg.idle_timeout));
            io.resume(id);
            resumed = true;
        }
    }
    let c = app.hub.get(ch);
    if c.seen_while_syncing > c.last_id {
        sync(app, io, ch);
    }
    // The requests resumed above run again and find the channel synced;
    // released now, it would be made anew, unsynced, and held again.
    if !resumed {
        app.hub.release_if_unused(ch);
    }
}

/// Answers an HTTP publish held for Redis's reply.
fn finish_held_publish(app: &mut App, io: &mut Io, id: ConnId, result: Option<i64>) {
    if longpoll::parked_on(io, id) != Some(ParkedOn::Publish) {
        return;
    }
    longpoll::unpark(app, io, id, |app, io, id, ctx| match result {
        Some(mid) => http::respond_json(app, io, id, ctx, 201, &format!("{{\"id\":{mid}}}")),
        None => http::respond_error(
            app,
            io,
            id,
            ctx,
            503,
            "the backplane (Redis) did not take the message",
        ),
    });
}

/// A `Wait::Backplane` deadline: Redis did not answer a command in time, or
/// a request held for a sync waited too long.
pub fn backplane_deadline(app: &mut App, io: &mut Io, id: ConnId) {
    match io.state(id).map(|s| &s.kind) {
        Some(Kind::Redis(_)) => redis_conn::down(app, io, "Redis did not answer within 5 s"),
        Some(_) => http::respond_error_and_close(
            app,
            io,
            id,
            503,
            "the backplane (Redis) did not answer in time",
            CloseReason::Normal,
        ),
        None => {}
    }
}

/// The backplane's part of `/stats`: in memory `{"kind":"memory",
/// "up":true}` as always; with `--redis` also `url` with the password as
/// `***`, `addr` the address in use (a name's last answer), `state` one
/// of `State`'s names, `last_error` the operator's sentence.
pub fn stats_json(app: &App) -> String {
    let state = state(app).name();
    match &app.redis {
        None => "{\"kind\":\"memory\",\"up\":true}".into(),
        Some(r) => {
            let mut s = String::from("{\"kind\":\"redis\",\"url\":");
            crate::wire::json::push_str(&mut s, &r.url.display_redacted());
            s.push_str(",\"addr\":");
            match r.addr {
                Some(a) => crate::wire::json::push_str(&mut s, &a.to_string()),
                None => s.push_str("null"),
            }
            let _ = write!(
                s,
                ",\"up\":{},\"state\":\"{state}\",\"pending\":{},\"failures\":{},\"last_error\":",
                r.is_up(),
                r.pending.len(),
                r.failures
            );
            match &r.last_error {
                Some(e) => crate::wire::json::push_str(&mut s, e),
                None => s.push_str("null"),
            }
            s.push('}');
            s
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcements() {
        assert_eq!(
            parse_announcement(b"news\n8\n0\nhi\nthere"),
            Some(("news", 8, false, "hi\nthere"))
        );
        assert_eq!(
            parse_announcement(b"news\n8\n1\n"),
            Some(("news", 8, true, ""))
        );
        assert_eq!(parse_announcement(b"news\n8\n2\nhi"), None);
        assert_eq!(parse_announcement(b"news\nx\n0\nhi"), None);
        assert_eq!(parse_announcement(b"news"), None);
    }

    #[test]
    fn sync_replies() {
        let entry = |id: &str, d: &str| {
            Value::Array(vec![
                Value::Bulk(id.into()),
                Value::Array(vec![Value::Bulk(b"d".to_vec()), Value::Bulk(d.into())]),
            ])
        };
        let v = Value::Array(vec![
            Value::Bulk(b"9".to_vec()),
            Value::Array(vec![entry("8-1", "a"), entry("9-1", "b")]),
        ]);
        let (last, log) = parse_sync_reply(&v).unwrap();
        assert_eq!((last, log.len(), log[1].id, &*log[1].data), (9, 2, 9, "b"));
        let empty = Value::Array(vec![Value::Null, Value::Array(vec![])]);
        assert_eq!(
            parse_sync_reply(&empty).map(|(l, v)| (l, v.len())),
            Some((0, 0))
        );
        assert!(parse_sync_reply(&Value::Integer(3)).is_none());
    }
}
