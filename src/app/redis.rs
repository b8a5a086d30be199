//! Several nodes as one service: channels shared through Redis (API.md
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
//! Two connections: one for commands, pipelined, replies matched in order;
//! one in SUBSCRIBE mode, which can carry nothing else (RESP2).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::http::Ctx;
use crate::hub::Stored;
use crate::net::conn::{Kind, Parked, ParkedOn, RedisConn, RedisRole, Wait};
use crate::net::timer::{Slot, TimerKey};
use crate::net::{CloseReason, Server, Step};
use crate::wire::resp::{self, Value};
use crate::wire::Status;

/// The one pub/sub channel every node subscribes to.
const PUBSUB: &str = "pushwire:messages";

/// Appends a message atomically: the next id, the stream entry (trimmed
/// to --history), the notification. KEYS: seq, log. ARGV: data, history,
/// pub/sub channel, channel name.
const PUBLISH_SCRIPT: &str = "local id = redis.call('INCR', KEYS[1]) \
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[2], id .. '-1', 'd', ARGV[1]) \
redis.call('PUBLISH', ARGV[3], ARGV[4] .. '\\n' .. id .. '\\n' .. ARGV[1]) \
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
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// How often each Redis connection is checked with a PING.
const PING_EVERY: Duration = Duration::from_secs(5);

/// Reconnect backoff: from the first to the largest wait, doubling.
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// A request held for an unsynced channel gives up after this long (503).
pub const SYNC_WAIT: Duration = Duration::from_secs(5);

/// What a command's reply is for, in the order the commands were sent.
#[derive(Debug)]
pub enum Pending {
    /// A publish; the waiter is `Some` when an HTTP request waits for
    /// the id.
    Publish {
        ch: usize,
        data: Arc<str>,
        waiter: Option<(usize, u64)>,
    },
    /// A keep-alive PING on the command connection.
    Ping,
    Sync(usize),
}

/// The backplane's state.
#[derive(Debug)]
pub struct Redis {
    pub addr: SocketAddr,
    pub cmd: Option<(usize, u64)>,
    pub sub: Option<(usize, u64)>,
    pub cmd_ready: bool,
    pub sub_ready: bool,
    pub pending: VecDeque<Pending>,
    backoff: Duration,
    pub failures: u64,
    pub last_error: Option<String>,
}

impl Redis {
    pub fn new(addr: SocketAddr) -> Self {
        Redis {
            addr,
            cmd: None,
            sub: None,
            cmd_ready: false,
            sub_ready: false,
            pending: VecDeque::new(),
            backoff: BACKOFF_FIRST,
            failures: 0,
            last_error: None,
        }
    }

    pub fn is_up(&self) -> bool {
        self.cmd_ready && self.sub_ready
    }
}

/// `redis://HOST:PORT` (HOST an IP literal or localhost: no DNS on the loop).
pub fn parse_redis_url(s: &str) -> Result<SocketAddr, String> {
    let rest = s
        .strip_prefix("redis://")
        .ok_or_else(|| format!("--redis takes redis://HOST:PORT, not {s:?}"))?;
    let rest = rest.trim_end_matches('/');
    let with_scheme = format!("http://{rest}");
    let u = crate::wire::url::parse(&with_scheme).map_err(|e| format!("--redis: {e}"))?;
    let port = if rest.contains("]:") || (!rest.starts_with('[') && rest.contains(':')) {
        u.port
    } else {
        6379
    };
    if u.target != "/" {
        return Err("--redis takes redis://HOST:PORT without a path".into());
    }
    Ok(SocketAddr::new(u.ip, port))
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
        // [ "8-1", [ "d", "<data>" ] ]
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
        let data = match fields.as_slice() {
            [Value::Bulk(_), Value::Bulk(d)] => std::str::from_utf8(d).ok()?,
            _ => return None,
        };
        out.push(Stored {
            id,
            data: Arc::from(data),
        });
    }
    Some((last_id, out))
}

/// `news\n8\nhi` → ("news", 8, "hi").
fn parse_announcement(payload: &[u8]) -> Option<(&str, u64, &str)> {
    let text = std::str::from_utf8(payload).ok()?;
    let (name, rest) = text.split_once('\n')?;
    let (id, data) = rest.split_once('\n')?;
    Some((name, id.parse().ok()?, data))
}

fn seq_key(name: &str) -> String {
    // The braces are a Redis Cluster hash tag: both keys of a channel land
    // on the same shard, so the script may touch both.
    format!("pushwire:{{{name}}}:seq")
}

fn log_key(name: &str) -> String {
    format!("pushwire:{{{name}}}:log")
}

impl Server {
    /// Opens both connections (non-blocking).
    pub(crate) fn redis_connect(&mut self) {
        let Some(addr) = self.redis.as_ref().map(|r| r.addr) else {
            return;
        };
        for role in [RedisRole::Commands, RedisRole::Subscriber] {
            let conn = Kind::Redis(RedisConn {
                role,
                connected: false,
                awaiting_pong: false,
            });
            let (key, id) = match self.connect_out(addr, conn) {
                Ok(x) => x,
                Err(e) => return self.redis_down(&format!("connect to {addr} failed: {e}")),
            };
            if let Some(r) = self.redis.as_mut() {
                match role {
                    RedisRole::Commands => r.cmd = Some((key, id)),
                    RedisRole::Subscriber => r.sub = Some((key, id)),
                }
            }
            self.set_wait(key, Wait::Backplane, Some(REPLY_TIMEOUT));
        }
    }

    /// A writable event on a Redis connection: the connect's outcome.
    pub(crate) fn redis_writable(&mut self, key: usize) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        let Kind::Redis(rc) = &mut c.kind else { return };
        if rc.connected {
            return self.flush(key);
        }
        match crate::net::connect_outcome(&c.stream) {
            Ok(false) => return,
            Ok(true) => rc.connected = true,
            Err(e) => return self.redis_down(&format!("connect failed: {e}")),
        }
        let role = rc.role;
        crate::trace::event(
            self,
            key,
            format_args!("redis {role:?} connection established"),
        );
        let next = self.now + PING_EVERY;
        self.set_deadline(key, Slot::Tick, Some(next));
        match role {
            RedisRole::Commands => {
                self.set_wait(key, Wait::None, None);
                if let Some(r) = self.redis.as_mut() {
                    r.cmd_ready = true;
                }
                self.redis_maybe_up();
            }
            RedisRole::Subscriber => {
                self.redis_send(key, &[b"SUBSCRIBE", PUBSUB.as_bytes()]);
            }
        }
        self.flush(key);
    }

    /// Every `PING_EVERY` on each connection: a PING, or, if the last one
    /// is still unanswered, the link is dead even though TCP did not say so
    /// (a silent network, a stuck Redis).
    pub(crate) fn redis_tick(&mut self, key: usize) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        let Kind::Redis(rc) = &mut c.kind else { return };
        if !rc.connected {
            return;
        }
        if rc.awaiting_pong {
            return self.redis_down("no answer to PING");
        }
        rc.awaiting_pong = true;
        let role = rc.role;
        let next = self.now + PING_EVERY;
        self.set_deadline(key, Slot::Tick, Some(next));
        match role {
            RedisRole::Commands => {
                self.redis_command(&[b"PING"], Pending::Ping);
            }
            // RESP2 allows PING in SUBSCRIBE mode; it answers ["pong", ""].
            RedisRole::Subscriber => self.redis_send(key, &[b"PING"]),
        }
    }

    fn redis_pong(&mut self, key: usize) {
        if let Some(Kind::Redis(rc)) = self.conns.get_mut(key).map(|c| &mut c.kind) {
            rc.awaiting_pong = false;
        }
    }

    /// Both connections work: reset the backoff and catch every channel
    /// in use up with the stream.
    fn redis_maybe_up(&mut self) {
        let Some(r) = self.redis.as_mut() else { return };
        if !r.is_up() {
            return;
        }
        r.backoff = BACKOFF_FIRST;
        log::info!("redis backplane at {} is up", r.addr);
        for ch in self.hub.indices() {
            let c = self.hub.get(ch);
            if c.synced || !c.waiting.is_empty() || !c.subscribers.is_empty() {
                self.redis_sync(ch);
            }
        }
    }

    fn redis_send(&mut self, key: usize, args: &[&[u8]]) {
        if let Some(c) = self.conns.get_mut(key) {
            let mut out = c.out.owned_tail();
            let start = out.len();
            resp::write_command(&mut out, args);
            if self.cfg.trace {
                // The command as it goes on the wire, decoded back (long
                // arguments, like a script's text, are cut by `describe`).
                let sent = out[start..].to_vec();
                drop(out);
                if let Ok(Status::Complete((v, _))) = resp::parse(&sent, &resp::Limits::default()) {
                    crate::trace::event(self, key, format_args!("redis <- {}", resp::describe(&v)));
                }
            }
        }
        self.mark_dirty(key);
    }

    /// Sends a command on the command connection and remembers what its
    /// reply is for.
    fn redis_command(&mut self, args: &[&[u8]], pending: Pending) -> bool {
        let Some((key, _)) = self
            .redis
            .as_ref()
            .and_then(|r| r.cmd.filter(|_| r.is_up()))
        else {
            return false;
        };
        let was_idle = self.redis.as_ref().is_some_and(|r| r.pending.is_empty());
        if let Some(r) = self.redis.as_mut() {
            r.pending.push_back(pending);
        }
        self.redis_send(key, args);
        if was_idle {
            self.set_wait(key, Wait::Backplane, Some(REPLY_TIMEOUT));
        }
        true
    }

    /// Publishes through Redis. `Err` when Redis is unreachable.
    pub(crate) fn redis_publish(
        &mut self,
        ch: usize,
        data: &str,
        waiter: Option<(usize, u64)>,
    ) -> Result<(), ()> {
        let name = self.hub.get(ch).name.clone();
        let (seq, log) = (seq_key(&name), log_key(&name));
        let history = self.cfg.history.to_string();
        let args: [&[u8]; 9] = [
            b"EVAL",
            PUBLISH_SCRIPT.as_bytes(),
            b"2",
            seq.as_bytes(),
            log.as_bytes(),
            data.as_bytes(),
            history.as_bytes(),
            PUBSUB.as_bytes(),
            name.as_bytes(),
        ];
        let pending = Pending::Publish {
            ch,
            data: Arc::from(data),
            waiter,
        };
        if self.redis_command(&args, pending) {
            Ok(())
        } else {
            Err(())
        }
    }

    /// Asks for a channel's whole state; `apply_sync` handles the answer.
    pub(crate) fn redis_sync(&mut self, ch: usize) {
        if self.hub.get(ch).syncing {
            return;
        }
        let name = self.hub.get(ch).name.clone();
        let (seq, log) = (seq_key(&name), log_key(&name));
        let seen = self.hub.get(ch).last_id.to_string();
        let args: [&[u8]; 6] = [
            b"EVAL",
            SYNC_SCRIPT.as_bytes(),
            b"2",
            seq.as_bytes(),
            log.as_bytes(),
            seen.as_bytes(),
        ];
        if self.redis_command(&args, Pending::Sync(ch)) {
            let c = self.hub.get_mut(ch);
            c.syncing = true;
            c.seen_while_syncing = 0;
        }
    }

    /// Is channel `ch` ready to be read from `cursor` on? If not, the
    /// request on `key` is held until it is (see `http_step`'s deferral) or
    /// answered 503 when Redis is down.
    ///
    /// With several nodes, a cursor beyond this node's last id is usually
    /// not "from the future": it was learned from another node (or from a
    /// publish answered before its announcement arrived here). So it is
    /// decided only after a sync; if it is still ahead then, it really is
    /// from before a restart of Redis, and the answer says truncated.
    pub(crate) fn channel_ready(
        &mut self,
        key: usize,
        ctx: Ctx<'_>,
        ch: usize,
        cursor: Option<u64>,
    ) -> bool {
        let c = self.hub.get(ch);
        let ahead = self.hub.is_mirrored() && cursor.is_some_and(|n| n > c.last_id);
        let held_before = match self.conns.get(key).map(|c| &c.kind) {
            Some(Kind::Http(st)) => st.synced_once,
            _ => false,
        };
        if c.synced && (!ahead || held_before) {
            return true;
        }
        // Connecting (at start, or reconnecting): hold the request; the
        // channel is synced as soon as both connections are up. Down
        // (waiting for the next attempt): answer now.
        let usable = self
            .redis
            .as_ref()
            .is_some_and(|r| r.is_up() || r.cmd.is_some() || r.sub.is_some());
        if !usable {
            self.respond_error(
                key,
                ctx,
                503,
                "the backplane (Redis) is unreachable; try again",
            );
            return false;
        }
        let conn_id = self.conns[key].id;
        let c = self.hub.get_mut(ch);
        if !c.waiting.contains(&(key, conn_id)) {
            c.waiting.push((key, conn_id));
        }
        self.redis_sync(ch);
        crate::trace::event(
            self,
            key,
            format_args!(
                "request held until channel {} is synced with Redis",
                self.hub.get(ch).name
            ),
        );
        self.defer_request = true;
        if let Some(Kind::Http(st)) = self.conns.get_mut(key).map(|c| &mut c.kind) {
            st.synced_once = true;
        }
        self.set_wait(key, Wait::Backplane, Some(SYNC_WAIT));
        false
    }

    /// Reads replies (command connection) or messages (subscriber).
    pub(crate) fn redis_step(&mut self, key: usize, buf: &mut [u8]) -> Step {
        let Some(Kind::Redis(rc)) = self.conns.get(key).map(|c| &c.kind) else {
            return Step::NeedMore;
        };
        let role = rc.role;
        let (value, n) = match resp::parse(buf, &resp::Limits::default()) {
            Ok(Status::Partial) => return Step::NeedMore,
            Ok(Status::Complete(x)) => x,
            Err(e) => {
                self.redis_down(&format!("bad reply from Redis: {e}"));
                return Step::Consumed(buf.len());
            }
        };
        if self.cfg.trace {
            crate::trace::event(
                self,
                key,
                format_args!("redis -> {}", resp::describe(&value)),
            );
        }
        match role {
            RedisRole::Subscriber => self.redis_message(value),
            RedisRole::Commands => self.redis_reply(key, value),
        }
        Step::Consumed(n)
    }

    fn redis_message(&mut self, v: Value) {
        let Value::Array(parts) = v else { return };
        match parts.as_slice() {
            [Value::Bulk(kind), _, Value::Integer(_)] if kind.as_slice() == b"subscribe" => {
                if let Some(r) = self.redis.as_mut() {
                    r.sub_ready = true;
                }
                // Subscribed: the connect's deadline is over (the PING
                // tick watches the link from now on). Left armed, it cut
                // every node's link 5 s after each connect.
                if let Some((key, _)) = self.redis.as_ref().and_then(|r| r.sub) {
                    self.set_wait(key, Wait::None, None);
                }
                self.redis_maybe_up();
            }
            [Value::Bulk(kind), _] if kind.as_slice() == b"pong" => {
                if let Some((key, _)) = self.redis.as_ref().and_then(|r| r.sub) {
                    self.redis_pong(key);
                }
            }
            [Value::Bulk(kind), _, Value::Bulk(payload)] if kind.as_slice() == b"message" => {
                let Some((name, id, data)) = parse_announcement(payload) else {
                    return;
                };
                // A channel nobody here has used: nothing to keep in step.
                let Some(ch) = self.hub.lookup(name) else {
                    return;
                };
                let c = self.hub.get_mut(ch);
                if c.syncing {
                    c.seen_while_syncing = c.seen_while_syncing.max(id);
                    return;
                }
                if !c.synced {
                    return;
                }
                let last = c.last_id;
                match self.hub.append_with_id(ch, id, Arc::from(data)) {
                    Some(m) => self.deliver(ch, m),
                    // A gap: something was missed (a reconnect, a race with
                    // a sync); the stream has it.
                    None if id > last + 1 => self.redis_sync(ch),
                    None => {} // already applied
                }
            }
            _ => {}
        }
    }

    fn redis_reply(&mut self, key: usize, v: Value) {
        let Some(r) = self.redis.as_mut() else { return };
        let Some(pending) = r.pending.pop_front() else {
            return self.redis_down("a reply nobody asked for");
        };
        let more = !r.pending.is_empty();
        self.set_wait(
            key,
            if more { Wait::Backplane } else { Wait::None },
            more.then_some(REPLY_TIMEOUT),
        );
        match pending {
            Pending::Ping => self.redis_pong(key),
            Pending::Publish { ch, data, waiter } => {
                let answer = match v {
                    Value::Integer(id) => Ok(id),
                    Value::Error(e) => Err(e),
                    other => Err(format!("unexpected reply {}", resp::describe(&other))),
                };
                match &answer {
                    // This node learns its own message from the reply, so
                    // the publisher's next read here already sees it (the
                    // announcement that follows is then a duplicate).
                    Ok(id) => {
                        let c = self.hub.get(ch);
                        if c.synced && !c.syncing {
                            if let Some(m) = self.hub.append_with_id(ch, *id as u64, data) {
                                self.deliver(ch, m);
                            }
                        }
                    }
                    Err(e) => log::warn!("redis publish failed: {e}"),
                }
                if let Some((wkey, wid)) = waiter {
                    self.finish_held_publish(wkey, wid, answer.ok());
                }
            }
            Pending::Sync(ch) => self.apply_sync(ch, &v),
        }
    }

    fn apply_sync(&mut self, ch: usize, v: &Value) {
        self.hub.get_mut(ch).syncing = false;
        let Some((last_id, log)) = parse_sync_reply(v) else {
            log::warn!(
                "redis sync of channel {} failed: {}",
                self.hub.get(ch).name,
                resp::describe(v)
            );
            return;
        };
        let fresh = self.hub.sync_from(ch, last_id, log);
        for m in fresh {
            self.deliver(ch, m);
        }
        for (key, id) in std::mem::take(&mut self.hub.get_mut(ch).waiting) {
            if self.conns.get(key).is_some_and(|c| c.id == id) {
                self.set_wait(key, Wait::KeepAlive, Some(self.cfg.idle_timeout));
                self.resume_later(key);
            }
        }
        let c = self.hub.get(ch);
        if c.seen_while_syncing > c.last_id {
            self.redis_sync(ch);
        }
    }

    /// Answers an HTTP publish held for Redis's reply.
    fn finish_held_publish(&mut self, key: usize, id: u64, result: Option<i64>) {
        if !self.conns.get(key).is_some_and(|c| {
            c.id == id
                && matches!(
                    c.kind,
                    Kind::LongPoll(Parked {
                        on: ParkedOn::Publish,
                        ..
                    })
                )
        }) {
            return;
        }
        self.unpark(key, |s, key, ctx| match result {
            Some(id) => s.respond_json(key, ctx, 201, &format!("{{\"id\":{id}}}")),
            None => s.respond_error(
                key,
                ctx,
                503,
                "the backplane (Redis) did not take the message",
            ),
        });
    }

    /// Holds an HTTP publish until Redis answers with its id.
    pub(crate) fn hold_publish(&mut self, key: usize, ctx: Ctx<'_>) {
        self.conns[key].kind = Kind::LongPoll(Parked {
            reply: ctx.to_reply(),
            on: ParkedOn::Publish,
        });
        self.set_wait(
            key,
            Wait::LongPoll,
            Some(REPLY_TIMEOUT + Duration::from_secs(1)),
        );
    }

    /// A connection to Redis failed: close both, fail what waits on a
    /// reply, keep subscribers, reconnect after the backoff.
    pub(crate) fn redis_down(&mut self, why: &str) {
        let Some(r) = self.redis.as_mut() else { return };
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
        for (key, id) in [cmd, sub].into_iter().flatten() {
            if self.conns.get(key).is_some_and(|c| c.id == id) {
                self.conns[key].kind = Kind::Http(Default::default());
                self.close_now(key, CloseReason::Error);
            }
        }
        for p in pending {
            match p {
                Pending::Publish {
                    waiter: Some((key, id)),
                    ..
                } => self.finish_held_publish(key, id, None),
                Pending::Publish { waiter: None, .. } | Pending::Ping => {}
                Pending::Sync(ch) => self.hub.get_mut(ch).syncing = false,
            }
        }
        self.timers.push(self.now + wait, TimerKey::RedisReconnect);
    }

    /// A `Wait::Backplane` deadline: Redis did not answer a command in
    /// time, or a request held for a sync waited too long.
    pub(crate) fn backplane_deadline(&mut self, key: usize) {
        match self.conns.get(key).map(|c| &c.kind) {
            Some(Kind::Redis(_)) => self.redis_down("Redis did not answer within 5 s"),
            Some(_) => self.respond_error_and_close(
                key,
                None,
                503,
                "the backplane (Redis) did not answer in time",
            ),
            None => {}
        }
    }

    /// The backplane's part of `/stats`.
    pub(crate) fn backplane_json(&self) -> String {
        match &self.redis {
            None => "{\"kind\":\"memory\",\"up\":true}".into(),
            Some(r) => {
                let mut s = format!(
                    "{{\"kind\":\"redis\",\"addr\":\"{}\",\"up\":{},\"pending\":{},\"failures\":{},\"last_error\":",
                    r.addr,
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_urls() {
        assert_eq!(
            parse_redis_url("redis://127.0.0.1:6380"),
            Ok("127.0.0.1:6380".parse().unwrap())
        );
        assert_eq!(
            parse_redis_url("redis://localhost"),
            Ok("127.0.0.1:6379".parse().unwrap())
        );
        assert_eq!(
            parse_redis_url("redis://[::1]:7000/"),
            Ok("[::1]:7000".parse().unwrap())
        );
        assert!(parse_redis_url("http://127.0.0.1:6379").is_err());
        assert!(parse_redis_url("redis://cache.internal:6379").is_err());
        assert!(parse_redis_url("redis://127.0.0.1:6379/2").is_err());
    }

    #[test]
    fn announcements() {
        assert_eq!(
            parse_announcement(b"news\n8\nhi\nthere"),
            Some(("news", 8, "hi\nthere"))
        );
        assert_eq!(parse_announcement(b"news\n8\n"), Some(("news", 8, "")));
        assert_eq!(parse_announcement(b"news\nx\nhi"), None);
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
