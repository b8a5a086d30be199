//! Webhooks: registrations, deliveries and their attempts, the built-in
//! receiver's log (docs/api.md section 4). Pure bookkeeping; the sending is done
//! by `app::webhooks` on the event loop.
//!
//! ```text
//!  event (job.done, message on channel.news)
//!    └─► one Delivery per matching webhook: a body, a unique delivery id,
//!        a signature ─► attempt 1 ─✗─ 1 s ─► attempt 2 ─✗─ 2 s ─► ... 16 s ─► attempt 6
//!                         └─ 2xx: done                      (final either way)
//! ```

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::Read;
use std::sync::Arc;

use crate::hub::is_valid_name;
use crate::wire::url::Url;

/// Seconds to wait before each retry (docs/api.md: 1, 2, 4, 8, 16 s), so a
/// delivery gets at most `BACKOFF.len() + 1` attempts.
pub const BACKOFF_S: [u64; 5] = [1, 2, 4, 8, 16];

/// Attempt records kept per webhook (the oldest go first).
pub const MAX_RECORDS: usize = 200;

/// Finished one-shot (job callback) webhooks whose attempts stay readable
/// after they are gone (the oldest are forgotten first).
pub const FINISHED_KEEP: usize = 1000;

/// Deliveries the built-in receiver remembers (docs/api.md: the last 100).
pub const RECEIVER_KEEP: usize = 100;

/// The built-in receiver keeps at most this much of each body (docs/api.md
/// section 4), marking it `body_truncated`.
pub const RECEIVER_BODY_KEEP: usize = 64 * 1024;

/// What a webhook listens to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventFilter {
    /// Every job's completion, or (for a job's one-shot callback) one job's.
    JobDone { only: Option<u64> },
    /// Every message published on this channel.
    Channel(String),
}

impl EventFilter {
    pub fn name(&self) -> String {
        match self {
            EventFilter::JobDone { .. } => "job.done".into(),
            EventFilter::Channel(c) => format!("channel.{c}"),
        }
    }
}

/// One attempt of one delivery, as `GET /webhooks/{id}/deliveries` shows it.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub delivery: String,
    pub event: &'static str,
    pub attempt: u32,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub at_ms: u64,
    /// No retry follows this attempt.
    pub is_final: bool,
}

#[derive(Debug)]
pub struct Webhook {
    pub id: u64,
    pub url_text: String,
    pub url: Url,
    pub events: Vec<EventFilter>,
    /// 32 lowercase hex characters; the HMAC key is this text's bytes.
    pub secret: String,
    /// Made for one job's `callback=`; listed until its delivery ends,
    /// then retired (`Webhooks::retire`).
    pub one_shot: bool,
    pub records: VecDeque<Attempt>,
}

/// An event on its way to one webhook.
#[derive(Debug)]
pub struct Delivery {
    /// The same on every retry, so receivers can de-duplicate.
    pub uid: String,
    pub webhook: u64,
    pub event: &'static str,
    pub body: Arc<[u8]>,
    /// The number of the attempt under way or next (1-based).
    pub attempt: u32,
}

/// A request the built-in receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub at_ms: u64,
    pub event: Option<String>,
    pub delivery: Option<String>,
    pub verified: Option<bool>,
    /// At most `RECEIVER_BODY_KEEP` bytes of it (cut at a character
    /// boundary).
    pub body: String,
    pub body_truncated: bool,
}

#[derive(Debug)]
pub struct Webhooks {
    next_id: u64,
    next_delivery: u64,
    /// A random prefix, so delivery ids differ across restarts.
    prefix: String,
    pub hooks: BTreeMap<u64, Webhook>,
    pub deliveries: HashMap<u64, Delivery>,
    /// Deliveries waiting for a free slot (at most `--max-deliveries` are in
    /// flight).
    pub queue: VecDeque<u64>,
    pub in_flight: usize,
    pub received: VecDeque<Received>,
    /// Attempts of retired one-shot webhooks, by id.
    pub finished: BTreeMap<u64, VecDeque<Attempt>>,
}

impl Default for Webhooks {
    fn default() -> Self {
        Self::new()
    }
}

impl Webhooks {
    pub fn new() -> Self {
        Webhooks {
            next_id: 1,
            next_delivery: 1,
            prefix: random_hex(4),
            hooks: BTreeMap::new(),
            deliveries: HashMap::new(),
            queue: VecDeque::new(),
            in_flight: 0,
            received: VecDeque::new(),
            finished: BTreeMap::new(),
        }
    }

    /// Registers a webhook; returns its id.
    pub fn register(
        &mut self,
        url_text: &str,
        url: Url,
        events: Vec<EventFilter>,
        one_shot: bool,
    ) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.hooks.insert(
            id,
            Webhook {
                id,
                url_text: url_text.to_string(),
                url,
                events,
                secret: random_hex(16),
                one_shot,
                records: VecDeque::new(),
            },
        );
        id
    }

    /// Webhooks that want `event`, by id.
    pub fn matching(&self, wants: impl Fn(&EventFilter) -> bool) -> Vec<u64> {
        self.hooks
            .values()
            .filter(|h| h.events.iter().any(&wants))
            .map(|h| h.id)
            .collect()
    }

    /// Creates a delivery of `body` to webhook `hook`; returns its key.
    pub fn new_delivery(&mut self, hook: u64, event: &'static str, body: Arc<[u8]>) -> u64 {
        let seq = self.next_delivery;
        self.next_delivery += 1;
        let uid = format!("{}-{seq}", self.prefix);
        self.deliveries.insert(
            seq,
            Delivery {
                uid,
                webhook: hook,
                event,
                body,
                attempt: 1,
            },
        );
        seq
    }

    /// Records an attempt on its webhook.
    pub fn record(&mut self, hook: u64, a: Attempt) {
        let records = match self.hooks.get_mut(&hook) {
            Some(h) => &mut h.records,
            None => match self.finished.get_mut(&hook) {
                Some(r) => r,
                None => return,
            },
        };
        if records.len() >= MAX_RECORDS {
            records.pop_front();
        }
        records.push_back(a);
    }

    /// Deletes a webhook and every delivery of it that is not on the wire
    /// right now (its pending retries).
    pub fn delete(&mut self, id: u64, in_flight: &[u64]) -> bool {
        if self.hooks.remove(&id).is_none() {
            return false;
        }
        self.deliveries
            .retain(|seq, d| d.webhook != id || in_flight.contains(seq));
        let deliveries = &self.deliveries;
        self.queue.retain(|seq| deliveries.contains_key(seq));
        true
    }

    /// A one-shot webhook's delivery ended: it stops being listed or sent
    /// to, and only its attempts stay readable (`records_of`).
    pub fn retire(&mut self, id: u64) {
        if let Some(h) = self.hooks.remove(&id) {
            if self.finished.len() >= FINISHED_KEEP {
                self.finished.pop_first();
            }
            self.finished.insert(id, h.records);
        }
    }

    /// The attempts of webhook `id`, registered or retired.
    pub fn records_of(&self, id: u64) -> Option<&VecDeque<Attempt>> {
        match self.hooks.get(&id) {
            Some(h) => Some(&h.records),
            None => self.finished.get(&id),
        }
    }

    pub fn remember_received(&mut self, r: Received) {
        if self.received.len() >= RECEIVER_KEEP {
            self.received.pop_front();
        }
        self.received.push_back(r);
    }
}

/// `events=job.done,channel.news` → filters; `Err` names the bad one.
pub fn parse_events(list: &str) -> Result<Vec<EventFilter>, String> {
    let mut out = Vec::new();
    for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let f = if name == "job.done" {
            EventFilter::JobDone { only: None }
        } else if let Some(ch) = name.strip_prefix("channel.").filter(|c| is_valid_name(c)) {
            EventFilter::Channel(ch.to_string())
        } else {
            return Err(format!(
                "unknown event {name:?}: use job.done or channel.<name>"
            ));
        };
        if !out.contains(&f) {
            out.push(f);
        }
    }
    if out.is_empty() {
        return Err("events is required: job.done and/or channel.<name>, comma-separated".into());
    }
    Ok(out)
}

/// `wh:N` → N.
pub fn parse_webhook_id(s: &str) -> Option<u64> {
    crate::wire::query::parse_decimal(s.strip_prefix("wh:")?)
}

/// `n` random bytes as lowercase hex, from the kernel's generator.
/// (`/dev/urandom` never blocks once the system is up; the fallback mixes
/// std's per-process random hash keys with the clock.)
pub fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    let ok = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if ok.is_err() {
        use std::hash::{BuildHasher, Hasher};
        for (i, chunk) in bytes.chunks_mut(8).enumerate() {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(crate::wire::date::unix_millis_now() ^ i as u64);
            let v = h.finish().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
    crate::wire::hmac::hex(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events() {
        assert_eq!(
            parse_events("job.done, channel.news").unwrap(),
            [
                EventFilter::JobDone { only: None },
                EventFilter::Channel("news".into())
            ]
        );
        assert!(parse_events("").is_err());
        assert!(parse_events("job.started").is_err());
        assert!(parse_events("channel.").is_err());
        assert!(parse_events("channel.a b").is_err());
    }

    #[test]
    fn ids_and_secrets() {
        assert_eq!(parse_webhook_id("wh:3"), Some(3));
        assert_eq!(parse_webhook_id("wh:x"), None);
        let s = random_hex(16);
        assert_eq!(s.len(), 32);
        assert!(s
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_ne!(s, random_hex(16));
    }

    #[test]
    fn delete_cancels_pending_but_not_in_flight() {
        let mut w = Webhooks::new();
        let url = crate::wire::url::parse("http://127.0.0.1:1/").unwrap();
        let id = w.register(
            "http://127.0.0.1:1/",
            url,
            vec![EventFilter::JobDone { only: None }],
            false,
        );
        let a = w.new_delivery(id, "job.done", Arc::from(&b"{}"[..]));
        let b = w.new_delivery(id, "job.done", Arc::from(&b"{}"[..]));
        w.queue.push_back(b);
        assert!(w.delete(id, &[a]));
        assert!(w.deliveries.contains_key(&a) && !w.deliveries.contains_key(&b));
        assert!(w.queue.is_empty());
        assert!(!w.delete(id, &[]));
    }
}
