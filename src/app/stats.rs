//! `GET /stats` (API.md section 5): counters kept as things happen (bytes
//! and accepts by the loop, `net::NetStats`; the rest here).

use super::conn::Kind;
use super::{redis, App, Io};

#[derive(Debug, Default)]
pub struct Closed {
    pub timeout: u64,
    pub limit: u64,
    pub protocol: u64,
    pub slow: u64,
}

#[derive(Debug, Default)]
pub struct Stats {
    pub requests: u64,
    pub delivered: u64,
    pub closed: Closed,
}

/// The `/stats` body. Open connections are counted by what each is now (a
/// parked long poll is `longpoll`), so the numbers cannot drift.
pub fn json(app: &App, io: &Io) -> String {
    let (mut http, mut longpoll, mut sse, mut ws, mut webhook) = (0, 0, 0, 0, 0);
    for c in io.iter() {
        match c.state.kind {
            Kind::Http(_) => http += 1,
            Kind::LongPoll(_) => longpoll += 1,
            Kind::Sse(_) => sse += 1,
            Kind::Ws(_) => ws += 1,
            Kind::Client(_) => webhook += 1,
            Kind::Redis(_) => {}
        }
    }
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
