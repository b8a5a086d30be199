//! The application: what the server does with the bytes the loop hands it.
//!
//! [`App`] owns everything that is not sockets and time: the channels, the
//! jobs, the webhooks, the backplane, the counters. The loop (`crate::net`)
//! calls it through the `net::App` trait, and this file is the one place
//! that decides what each kind of connection does with each event; the
//! work itself is done by the module named for the protocol:
//!
//! | module           | what it does                                              |
//! |------------------|-----------------------------------------------------------|
//! | `http`           | HTTP/1.1 requests in, routed, answered                    |
//! | `access`         | tokens: who may publish, subscribe, administer            |
//! | `routes`         | the path table                                            |
//! | `jobs`           | `POST /submit`, `GET /checkstatus` (short polling)        |
//! | `longpoll`       | park, release, expire: every held request                 |
//! | `channels`       | publish, and one message fanned out to every transport    |
//! | `sse`            | event streams: the head, heartbeats, the `/sse` clock     |
//! | `websocket`      | the upgrade, frames in and out, pings, closes             |
//! | `chat`           | the chat room on `/`                                      |
//! | `webhooks`       | registration, the receiver, which events go where         |
//! | `webhook_client` | the HTTP client that delivers them                        |
//! | `redis`          | several nodes through Redis: publish, sync, mirror        |
//! | `redis_conn`     | the two RESP connections to Redis                         |
//! | `lookup`         | DNS names resolved off the loop, answers to their askers  |
//! | `stats`          | `/stats`, and the counters behind it                      |
//! | `metrics`        | `/metrics`: the same counters for Prometheus              |
//! | `shutdown`       | what each connection is owed on SIGTERM                   |
//!
//! Functions in these modules take the application and the loop's `Io`
//! explicitly (`channels::publish(app, io, ...)`), so a call names the file
//! that defines it.

pub mod access;
pub mod channels;
pub mod chat;
pub mod conn;
pub mod http;
pub mod jobs;
pub mod longpoll;
pub mod lookup;
pub mod metrics;
pub mod redis;
pub mod redis_conn;
pub mod routes;
pub mod shutdown;
pub mod sse;
pub mod stats;
pub mod webhook_client;
pub mod webhooks;
pub mod websocket;

use crate::config::Config;
use crate::hub::Hub;
use crate::jobs::Jobs;
use crate::net::{self, CloseReason, ConnId, Slot, Step};
use crate::trace::Trace;
use crate::webhooks::Webhooks;
use conn::{Kind, Session, Wait};

/// The loop's side, as this application sees it.
pub type Io = net::Io<App>;

/// The demo page, served from the binary (no CDN, no build step).
pub(crate) const DEMO_PAGE: &str = include_str!("demo.html");

/// The browser client library (docs/api.md section 3), an ES module read as it
/// is written: no build step, no minifier.
pub(crate) const CLIENT_LIBRARY: &str = include_str!("pushwire.js");

/// The application's own timers (connection deadlines are the loop's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Timer {
    /// A job reaches 100%: release its long polls, send its webhooks.
    JobDone(u64),
    /// A webhook delivery's backoff passed: try again.
    WebhookRetry(u64),
    /// Connect to Redis again.
    RedisReconnect,
    /// A name lookup's time is up (`lookup::timed_out`).
    Lookup(u64),
}

/// Work handed to the loop from other threads (`crate::Handle`).
#[derive(Debug)]
pub enum Command {
    Publish { channel: String, data: String },
    Stop,
}

/// Everything the server knows besides its sockets.
pub struct App {
    pub cfg: Config,
    pub trace: Trace,
    pub stats: stats::Stats,
    pub jobs: Jobs,
    pub hub: Hub,
    pub webhooks: Webhooks,
    /// The Redis backplane (`--redis`), if any.
    pub redis: Option<redis::Redis>,
    /// DNS names being resolved off the loop (`lookup.rs`).
    pub lookups: lookup::Lookups,
    /// Chat members and their TCP source ports, in join order.
    pub chat: Vec<(ConnId, u16)>,
    /// `Date` and `Server` header lines, rebuilt once a second.
    pub date: http::DateLines,
    /// A graceful shutdown began: answers close their connections.
    pub draining: bool,
    /// The loop's one compressor and one decompressor for every
    /// WebSocket that agreed `permessage-deflate`, and their buffers.
    pub compression: websocket::Compression,
    /// `GET /webhook-receiver`'s body, built once per change and shared.
    pub receiver_answer: Option<std::sync::Arc<[u8]>>,
}

impl App {
    pub fn new(cfg: Config) -> Self {
        App {
            trace: Trace::new(cfg.trace),
            stats: stats::Stats::default(),
            jobs: Jobs::new(cfg.max_jobs),
            hub: {
                let limits = crate::hub::Limits {
                    messages: cfg.history,
                    bytes: cfg.history_bytes,
                    total_bytes: cfg.max_history_bytes,
                    channels: cfg.max_channels,
                };
                match cfg.redis {
                    Some(_) => Hub::mirrored(limits),
                    None => Hub::new(limits),
                }
            },
            webhooks: Webhooks::new(),
            redis: cfg.redis.clone().map(redis::Redis::new),
            lookups: lookup::Lookups::default(),
            chat: Vec::new(),
            date: http::DateLines::default(),
            draining: false,
            compression: websocket::Compression::new(),
            receiver_answer: None,
            cfg,
        }
    }

    /// What the loop runs first: the backplane's connections.
    pub fn start(&mut self, io: &mut Io) {
        redis_conn::connect(self, io);
    }
}

fn kind(io: &Io, id: ConnId) -> Option<&Kind> {
    io.state(id).map(|s| &s.kind)
}

/// The one place that decides what each kind of connection does with each
/// event.
impl net::App for App {
    type State = Session;
    type Timer = Timer;
    type Command = Command;

    fn new_state(&mut self) -> Session {
        Session::http()
    }

    fn accepted(&mut self, io: &mut Io, id: ConnId) {
        http::accepted(self, io, id);
    }

    fn input(&mut self, io: &mut Io, id: ConnId, buf: &mut [u8]) -> Step {
        match kind(io, id) {
            Some(Kind::Http(_)) => http::request_step(self, io, id, buf),
            Some(Kind::Ws(_)) => websocket::frame_step(self, io, id, buf),
            // An event stream's client has nothing more to say; input is
            // dropped rather than buffered without bound.
            Some(Kind::Sse(_)) => Step::Consumed(buf.len()),
            // A held request: later pipelined requests wait their turn.
            Some(Kind::LongPoll(_)) => Step::Hold(0),
            Some(Kind::Client(_)) => webhook_client::response_step(self, io, id, buf),
            Some(Kind::Redis(_)) => redis_conn::reply_step(self, io, id, buf),
            None => Step::NeedMore,
        }
    }

    fn connected(&mut self, io: &mut Io, id: ConnId, outcome: std::io::Result<()>) {
        match kind(io, id) {
            Some(Kind::Client(_)) => webhook_client::connected(self, io, id, outcome),
            Some(Kind::Redis(_)) => redis_conn::connected(self, io, id, outcome),
            _ => {}
        }
    }

    fn eof(&mut self, io: &mut Io, id: ConnId) {
        match kind(io, id) {
            Some(Kind::Client(_)) => webhook_client::eof(self, io, id),
            Some(Kind::Redis(_)) => redis_conn::down(self, io, "Redis closed the connection"),
            // Half-close after a request: answer what was asked, then close
            // (RFC 9112 section 9.6 allows a client to half-close).
            Some(Kind::Http(_)) if io.backlog(id) > 0 => io.finish(id, CloseReason::Normal),
            _ => io.close_now(id, CloseReason::Normal),
        }
    }

    fn deadline(&mut self, io: &mut Io, id: ConnId, slot: Slot) {
        let Some(s) = io.state(id) else { return };
        if slot == Slot::Tick {
            return match s.kind {
                Kind::Ws(_) => websocket::ping_tick(self, io, id),
                Kind::Sse(_) => sse::tick(self, io, id),
                Kind::Redis(_) => redis_conn::tick(self, io, id),
                _ => {}
            };
        }
        match s.wait {
            Wait::FirstByte | Wait::KeepAlive => {
                self.trace
                    .event(io.peer(id), "idle timeout, closing silently");
                io.close_now(id, CloseReason::Timeout);
            }
            Wait::RequestHead => http::respond_error_and_close(
                self,
                io,
                id,
                408,
                "the request was not complete within the header timeout",
                CloseReason::Timeout,
            ),
            Wait::LongPoll => longpoll::expired(self, io, id),
            Wait::CloseHandshake => {
                self.trace
                    .event(io.peer(id), "peer never answered our close");
                io.close_now(id, CloseReason::Timeout);
            }
            Wait::Client => webhook_client::timed_out(self, io, id),
            Wait::Backplane => redis::backplane_deadline(self, io, id),
            Wait::TokenExpiry => access::expired(self, io, id),
            Wait::None => {}
        }
    }

    fn overflow(&mut self, io: &mut Io, id: ConnId) {
        websocket::cut_slow(self, io, id);
    }

    fn drained(&mut self, io: &mut Io, id: ConnId) {
        channels::replay(self, io, id);
    }

    fn stopped(&mut self, io: &mut Io, id: ConnId) {
        if let Some(s) = io.state(id) {
            let groups = Membership::of(&s.kind);
            leave(self, io, id, groups);
        }
    }

    fn closed(&mut self, io: &mut Io, id: ConnId, state: Session, reason: CloseReason) {
        match reason {
            CloseReason::Timeout => self.stats.closed.timeout += 1,
            CloseReason::Limit => self.stats.closed.limit += 1,
            CloseReason::Protocol => self.stats.closed.protocol += 1,
            CloseReason::Slow => self.stats.closed.slow += 1,
            CloseReason::Normal => self.stats.closed.normal += 1,
            CloseReason::Error => self.stats.closed.error += 1,
        }
        // A connection that was closing left its groups then (`stopped`);
        // one closed while active leaves them now. Leaving twice is
        // harmless.
        leave(self, io, id, Membership::of(&state.kind));
        match state.kind {
            Kind::Client(cc) if !cc.done => webhook_client::closed(self, io, cc.delivery),
            Kind::Redis(_) => redis_conn::closed(self, io, id),
            _ => {}
        }
    }

    fn timer(&mut self, io: &mut Io, t: Timer) {
        match t {
            Timer::JobDone(job) => jobs::job_done(self, io, job),
            Timer::WebhookRetry(seq) => webhook_client::retry(self, io, seq),
            Timer::RedisReconnect => redis_conn::connect(self, io),
            Timer::Lookup(id) => lookup::timed_out(self, io, id),
        }
    }

    fn command(&mut self, io: &mut Io, cmd: Command) {
        match cmd {
            Command::Publish { channel, data } => {
                if let Err(e) = channels::publish_str(self, io, &channel, &data) {
                    log::warn!("publish from a handle to {channel:?} refused: {e}");
                }
            }
            Command::Stop => shutdown::begin(self, io),
        }
    }

    fn woken(&mut self, io: &mut Io) {
        lookup::woken(self, io);
    }

    /// A message's bytes reached a subscriber's socket (`channels::deliver`
    /// stamped them with the moment the message was accepted).
    fn stamp_written(&mut self, at: std::time::Instant, now: std::time::Instant) {
        self.stats
            .delivery
            .observe(now.saturating_duration_since(at));
    }
}

/// The group a connection belongs to, if any: what it must leave when it
/// ends.
#[derive(Debug, Clone, Copy)]
enum Membership {
    Chat,
    Channel(usize),
    JobWaiter(u64),
    None,
}

impl Membership {
    fn of(kind: &Kind) -> Self {
        use conn::{ParkedOn, SseSource, WsRole};
        match kind {
            Kind::Ws(ws) => match ws.role {
                WsRole::Chat => Membership::Chat,
                WsRole::Channel(ch) => Membership::Channel(ch),
                WsRole::Echo => Membership::None,
            },
            Kind::Sse(s) => match s.source {
                SseSource::Channel(ch) => Membership::Channel(ch),
                SseSource::Clock { .. } => Membership::None,
            },
            Kind::LongPoll(p) => match p.on {
                ParkedOn::Channel { channel, .. } => Membership::Channel(channel),
                ParkedOn::Job(job) => Membership::JobWaiter(job),
                ParkedOn::Publish => Membership::None,
            },
            Kind::Http(_) | Kind::Client(_) | Kind::Redis(_) => Membership::None,
        }
    }
}

/// Removes the connection from the group it belongs to.
fn leave(app: &mut App, io: &mut Io, id: ConnId, groups: Membership) {
    match groups {
        Membership::Chat => chat::leave(app, io, id),
        Membership::Channel(ch) => {
            app.hub.unsubscribe(ch, id);
            app.hub.release_if_unused(ch);
        }
        Membership::JobWaiter(job) => {
            if let Some(j) = app.jobs.get_mut(job) {
                j.waiters.retain(|&w| w != id);
            }
        }
        Membership::None => {}
    }
}

/// Sets what the connection's deadline means and when it is (`None`: no
/// deadline).
pub fn set_wait(io: &mut Io, id: ConnId, wait: Wait, after: Option<std::time::Duration>) {
    if let Some(s) = io.state_mut(id) {
        s.wait = wait;
    }
    io.set_deadline_in(id, Slot::Deadline, after);
}

#[cfg(test)]
mod tests {
    //! Every list of the application that keeps connection handles past a
    //! call ignores a stale one, even when its slab slot now holds another
    //! connection (`net` tests the loop's own lists).

    use super::conn::{Parked, ParkedOn, Reply, WsRole, WsSession};
    use super::*;
    use crate::net::Reactor;
    use crate::proto::ws::{CloseState, MessageReader};
    use std::sync::Arc;
    use std::time::Duration;

    fn reactor() -> (Reactor<App>, std::net::TcpListener) {
        let cfg = Config {
            addr: "127.0.0.1:0".parse().unwrap(),
            ..Config::default()
        };
        let opts = net::Options {
            addr: cfg.addr,
            listen_backlog: 16,
            send_buffer_bytes: cfg.send_buffer_bytes,
            max_held_input: 1024,
            linger: Duration::from_millis(10),
            inbox_capacity: 16,
            trace: false,
        };
        let peer = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        (Reactor::bind(opts, App::new(cfg)).unwrap(), peer)
    }

    fn ws(role: WsRole) -> Session {
        Session {
            kind: Kind::Ws(WsSession {
                reader: MessageReader::new(1024),
                close: CloseState::Open,
                role,
                awaiting_pong: false,
                may_publish: true,
                replay: None,
                deflate: None,
            }),
            wait: Wait::None,
        }
    }

    fn parked(on: ParkedOn) -> Session {
        let reply = Reply {
            head_only: false,
            http10: false,
            keep_alive: true,
            cors: None,
        };
        Session {
            kind: Kind::LongPoll(Parked { reply, on }),
            wait: Wait::LongPoll,
        }
    }

    /// Opens `first`, closes it without telling the application (as if a
    /// leave had been missed), and opens `second` in the same slot.
    fn reuse(
        r: &mut Reactor<App>,
        peer: &std::net::TcpListener,
        first: Session,
        second: Session,
    ) -> (ConnId, ConnId) {
        let addr = peer.local_addr().unwrap();
        let old = r.io.connect(addr, first, false).unwrap();
        r.io.close_now(old, CloseReason::Normal);
        let new = r.io.connect(addr, second, false).unwrap();
        assert_eq!(new.key, old.key);
        (old, new)
    }

    #[test]
    fn a_stale_channel_subscriber_gets_nothing() {
        let (mut r, peer) = reactor();
        let news = r.app.hub.channel("news").unwrap();
        let (old, new) = reuse(&mut r, &peer, ws(WsRole::Channel(news)), ws(WsRole::Echo));
        let (app, io) = (&mut r.app, &mut r.io);
        app.hub.subscribe(news, old);
        channels::publish_str(app, io, "news", "hi").unwrap();
        assert_eq!(
            io.backlog(new),
            0,
            "the newcomer got the stale subscriber's message"
        );
        assert!(
            app.hub.get(news).subscribers.is_empty(),
            "the stale entry is dropped"
        );
    }

    #[test]
    fn a_stale_job_waiter_is_not_answered() {
        let (mut r, peer) = reactor();
        let now = r.io.now();
        let one = r.app.jobs.submit(now, Duration::ZERO).unwrap();
        let two = r.app.jobs.submit(now, Duration::from_secs(60)).unwrap();
        let (old, new) = reuse(
            &mut r,
            &peer,
            parked(ParkedOn::Job(one)),
            parked(ParkedOn::Job(two)),
        );
        let (app, io) = (&mut r.app, &mut r.io);
        app.jobs.get_mut(one).unwrap().waiters.push(old);
        jobs::job_done(app, io, one);
        assert_eq!(longpoll::parked_on(io, new), Some(ParkedOn::Job(two)));
        assert_eq!(io.backlog(new), 0);
    }

    #[test]
    fn a_stale_chat_member_hears_nothing() {
        let (mut r, peer) = reactor();
        let (old, new) = reuse(&mut r, &peer, ws(WsRole::Chat), ws(WsRole::Echo));
        let joiner =
            r.io.connect(peer.local_addr().unwrap(), ws(WsRole::Chat), false)
                .unwrap();
        let (app, io) = (&mut r.app, &mut r.io);
        app.chat.push((old, 1));
        chat::join(app, io, joiner);
        assert_eq!(io.backlog(new), 0, "the newcomer heard the chat");
        assert!(io.backlog(joiner) > 0, "the joiner hears its own join");
    }

    #[test]
    fn a_stale_held_publish_is_not_answered() {
        let (mut r, peer) = reactor();
        let (old, new) = reuse(
            &mut r,
            &peer,
            parked(ParkedOn::Publish),
            parked(ParkedOn::Job(7)),
        );
        let (app, io) = (&mut r.app, &mut r.io);
        let pending = redis::Pending::Publish {
            ch: app.hub.channel("x").unwrap(),
            data: Arc::from("d"),
            quiet: false,
            waiter: Some(old),
            accepted: io.now(),
        };
        redis::abandoned(app, io, pending);
        assert_eq!(longpoll::parked_on(io, new), Some(ParkedOn::Job(7)));
        assert_eq!(io.backlog(new), 0);
    }

    #[test]
    fn own_address_is_our_port_on_loopback_or_our_bound_address() {
        let (r, _peer) = reactor();
        let port = r.io.local_addr().port();
        let own = |text: String| webhooks::is_own_address(&r.io, text.parse().unwrap());
        assert!(own(format!("127.0.0.1:{port}")));
        assert!(own(format!("127.3.4.5:{port}")), "all of 127/8 is loopback");
        assert!(own(format!("[::1]:{port}")));
        assert!(own(format!("[::ffff:127.0.0.1]:{port}")), "IPv4-mapped");
        assert!(
            own(format!("0.0.0.0:{port}")),
            "connecting there reaches us"
        );
        assert!(!own(format!("127.0.0.1:{}", port.wrapping_add(1).max(1))));
        assert!(!own(format!("192.0.2.1:{port}")), "another host");
    }

    #[test]
    fn only_the_receiver_path_may_be_our_own() {
        assert!(webhooks::is_receiver_path("/webhook-receiver"));
        assert!(webhooks::is_receiver_path("/webhook-receiver?x=1"));
        assert!(!webhooks::is_receiver_path("/webhook-receiver/x"));
        assert!(!webhooks::is_receiver_path("/channels/loop"));
    }
}
