//! `GET /stats` (API.md section 5): counters the loop keeps as it goes.

use crate::net::conn::Kind;
use crate::net::Server;

#[derive(Debug, Default)]
pub struct Closed {
    pub timeout: u64,
    pub limit: u64,
    pub protocol: u64,
    pub slow: u64,
}

#[derive(Debug, Default)]
pub struct Stats {
    pub accepted: u64,
    pub requests: u64,
    pub delivered: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub closed: Closed,
}

impl Server {
    /// The `/stats` body. Open connections are counted by what each is now
    /// (a parked long poll is `longpoll`), so the numbers cannot drift.
    pub(crate) fn stats_json(&self) -> String {
        let (mut http, mut longpoll, mut sse, mut ws, mut webhook) = (0, 0, 0, 0, 0);
        for (_, c) in self.conns.iter() {
            match c.kind {
                Kind::Http(_) => http += 1,
                Kind::LongPoll(_) => longpoll += 1,
                Kind::Sse(_) => sse += 1,
                Kind::Ws(_) => ws += 1,
                Kind::Client(_) => webhook += 1,
                Kind::Redis(_) => {}
            }
        }
        let s = &self.stats;
        format!(
            "{{\"connections\":{{\"open\":{{\"http\":{http},\"longpoll\":{longpoll},\"sse\":{sse},\"ws\":{ws},\"webhook\":{webhook}}},\
             \"accepted\":{}}},\"requests\":{},\"messages\":{{\"published\":{},\"delivered\":{}}},\
             \"bytes\":{{\"in\":{},\"out\":{}}},\
             \"closed\":{{\"timeout\":{},\"limit\":{},\"protocol\":{},\"slow\":{}}},\
             \"channels\":{},\"jobs\":{},\"timers\":{},\"backplane\":{}}}",
            s.accepted,
            s.requests,
            self.hub.published,
            s.delivered,
            s.bytes_in,
            s.bytes_out,
            s.closed.timeout,
            s.closed.limit,
            s.closed.protocol,
            s.closed.slow,
            self.hub.len(),
            self.jobs.len(),
            self.timers.len(),
            self.backplane_json(),
        )
    }
}
