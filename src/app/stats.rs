//! `GET /stats` (docs/api.md section 5): counters kept as things happen (bytes
//! and accepts by the loop, `net::NetStats`; the rest here).

use super::conn::Kind;
use super::{redis, App, Io};
use crate::wire::prometheus::Histogram;

/// Closed connections by `net::CloseReason`. `/stats` shows the four the
/// contract names; `/metrics` shows all six.
#[derive(Debug, Default)]
pub struct Closed {
    pub timeout: u64,
    pub limit: u64,
    pub protocol: u64,
    pub slow: u64,
    pub normal: u64,
    pub error: u64,
}

/// How webhook deliveries ended, counted where each attempt is recorded
/// (`webhook_client::finished`).
#[derive(Debug, Default)]
pub struct WebhookOutcomes {
    /// A 2xx answer ended the delivery.
    pub delivered: u64,
    /// Its last attempt failed (or it could not even be queued).
    pub failed: u64,
    /// Failed attempts that another attempt follows.
    pub retried: u64,
}

#[derive(Debug, Default)]
pub struct Stats {
    pub requests: u64,
    pub delivered: u64,
    pub closed: Closed,
    pub webhooks: WebhookOutcomes,
    /// Publish-to-socket latency, one observation per message per
    /// subscriber whose bytes were written (see `channels::deliver`).
    pub delivery: Histogram,
}

/// Open connections by what each is now, counted when asked (a parked
/// long poll is `longpoll`), so the numbers cannot drift. The backplane's
/// own connections are not counted (it has its own state).
#[derive(Debug, Default, Clone, Copy)]
pub struct Open {
    pub http: u64,
    pub longpoll: u64,
    pub sse: u64,
    pub ws: u64,
    pub webhook: u64,
}

pub fn open(io: &Io) -> Open {
    let mut o = Open::default();
    for c in io.iter() {
        match c.state.kind {
            Kind::Http(_) => o.http += 1,
            Kind::LongPoll(_) => o.longpoll += 1,
            Kind::Sse(_) => o.sse += 1,
            Kind::Ws(_) => o.ws += 1,
            Kind::Client(_) => o.webhook += 1,
            Kind::Redis(_) => {}
        }
    }
    o
}

/// The `/stats` body.
pub fn json(app: &App, io: &Io) -> String {
    let Open {
        http,
        longpoll,
        sse,
        ws,
        webhook,
    } = open(io);
    let s = &app.stats;
    let net = io.stats;
    format!(
        "{{\"connections\":{{\"open\":{{\"http\":{http},\"longpoll\":{longpoll},\"sse\":{sse},\"ws\":{ws},\"webhook\":{webhook}}},\
         \"accepted\":{}}},\"requests\":{},\"messages\":{{\"published\":{},\"delivered\":{}}},\
         \"bytes\":{{\"in\":{},\"out\":{}}},\
         \"closed\":{{\"timeout\":{},\"limit\":{},\"protocol\":{},\"slow\":{}}},\
         \"channels\":{},\"history_bytes\":{},\"jobs\":{},\"timers\":{},\"backplane\":{}}}",
        net.accepted,
        s.requests,
        app.hub.published,
        s.delivered,
        net.bytes_in,
        net.bytes_out,
        s.closed.timeout,
        s.closed.limit,
        s.closed.protocol,
        s.closed.slow,
        app.hub.len(),
        app.hub.history_bytes(),
        app.jobs.len(),
        io.timers_len(),
        redis::stats_json(app),
    )
}
