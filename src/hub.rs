//! The pub/sub core: channels, their message ids, their history, their
//! subscribers (API.md section 2). Pure bookkeeping: the event loop does the
//! delivering.
//!
//! ```text
//!  channel "news": last_id = 9, history (--history 4):  [6][7][8][9]
//!                                                        ▲ oldest kept
//!  resume after 7 → 8, 9                  (complete)
//!  resume after 3 → 6, 7, 8, 9            truncated: after 3, oldest 6
//!  resume after 12 → 6, 7, 8, 9           truncated: a cursor from the future
//! ```
//!
//! Subscribers of every transport (WebSocket, SSE, parked long polls) are
//! entries of the same connection slab; a channel only lists their handles
//! (`net::ConnId`, which cannot be mistaken for a later connection in the
//! same slot).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::net::ConnId;

/// A published message as history keeps it.
#[derive(Debug, Clone)]
pub struct Stored {
    pub id: u64,
    pub data: Arc<str>,
}

#[derive(Debug, Default)]
pub struct Channel {
    pub name: String,
    pub last_id: u64,
    pub history: VecDeque<Stored>,
    /// Every subscriber, any transport.
    pub subscribers: Vec<ConnId>,
    /// With a shared backplane (Redis): this mirror matches the shared
    /// stream. Always true in process.
    pub synced: bool,
    /// A sync with the backplane is under way.
    pub syncing: bool,
    /// The highest id announced while a sync was under way (a message
    /// announced then may not be in the sync's answer; if so, sync again).
    pub seen_while_syncing: u64,
    /// Requests held until the first sync completes.
    pub waiting: Vec<ConnId>,
}

impl Channel {
    /// The id of the oldest kept message, or of the next message when none
    /// is kept.
    pub fn oldest(&self) -> u64 {
        self.history.front().map_or(self.last_id + 1, |m| m.id)
    }

    /// What a client resuming after `after` gets: where the answer starts,
    /// and whether the history no longer reaches back to `after` (a gap the
    /// client must be told about).
    pub fn resume(&self, after: u64) -> Resume {
        let oldest = self.oldest();
        // Evicted messages lie between `after` and the oldest kept one, or
        // the cursor is beyond anything this channel issued (a restart).
        let truncated = oldest > after.saturating_add(1) || after > self.last_id;
        let from = if truncated { oldest } else { after + 1 };
        Resume {
            truncated,
            oldest,
            start: self.history.partition_point(|m| m.id < from),
        }
    }
}

/// See `Channel::resume`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resume {
    pub truncated: bool,
    /// The first id that follows (API.md's `oldest`).
    pub oldest: u64,
    /// Index into `history` of the first message to send.
    pub start: usize,
}

/// Why a channel name was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HubError {
    /// Not `[A-Za-z0-9_.-]{1,64}`.
    BadName,
    /// `--max-channels` channels exist already.
    Full,
}

impl std::fmt::Display for HubError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            HubError::BadName => {
                "a channel name is 1 to 64 characters of A-Z, a-z, 0-9, '_', '.' and '-'"
            }
            HubError::Full => "too many channels exist",
        })
    }
}

impl std::error::Error for HubError {}

/// Every channel, by index; indices are stable for the process's life.
#[derive(Debug)]
pub struct Hub {
    channels: Vec<Channel>,
    by_name: HashMap<String, usize>,
    history: usize,
    max_channels: usize,
    /// Channels start unsynced: their state lives in a shared backplane.
    mirrored: bool,
    pub published: u64,
}

/// API.md section 2: a channel name matches `[A-Za-z0-9_.-]{1,64}`.
pub fn is_valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

impl Hub {
    pub fn new(history: usize, max_channels: usize) -> Self {
        Hub {
            channels: Vec::new(),
            by_name: HashMap::new(),
            history,
            max_channels,
            mirrored: false,
            published: 0,
        }
    }

    /// A hub whose channels mirror a shared backplane (see `app::redis`):
    /// each channel must be synced before it is read.
    pub fn mirrored(history: usize, max_channels: usize) -> Self {
        Hub {
            mirrored: true,
            ..Hub::new(history, max_channels)
        }
    }

    pub fn is_mirrored(&self) -> bool {
        self.mirrored
    }

    /// Indices of every channel.
    pub fn indices(&self) -> std::ops::Range<usize> {
        0..self.channels.len()
    }

    /// The channel's index, creating it on first use.
    pub fn channel(&mut self, name: &str) -> Result<usize, HubError> {
        if !is_valid_name(name) {
            return Err(HubError::BadName);
        }
        if let Some(&i) = self.by_name.get(name) {
            return Ok(i);
        }
        if self.channels.len() >= self.max_channels {
            return Err(HubError::Full);
        }
        let i = self.channels.len();
        self.channels.push(Channel {
            name: name.to_string(),
            synced: !self.mirrored,
            ..Channel::default()
        });
        self.by_name.insert(name.to_string(), i);
        Ok(i)
    }

    /// The channel's index if it exists (never creates it).
    pub fn lookup(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    pub fn get(&self, ch: usize) -> &Channel {
        &self.channels[ch]
    }

    pub fn get_mut(&mut self, ch: usize) -> &mut Channel {
        &mut self.channels[ch]
    }

    pub fn len(&self) -> usize {
        self.channels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.channels.is_empty()
    }

    /// Appends a message, gives it the channel's next id, evicts beyond
    /// `--history`.
    pub fn append(&mut self, ch: usize, data: Arc<str>) -> Stored {
        let c = &mut self.channels[ch];
        c.last_id += 1;
        let m = Stored {
            id: c.last_id,
            data,
        };
        self.keep(ch, &m);
        self.published += 1;
        m
    }

    fn keep(&mut self, ch: usize, m: &Stored) {
        let c = &mut self.channels[ch];
        if self.history > 0 {
            if c.history.len() >= self.history {
                c.history.pop_front();
            }
            c.history.push_back(m.clone());
        }
    }

    /// A message the backplane announced with its id: appended if it is
    /// the next one. `None` when it is old (a duplicate) or leaves a gap
    /// (something was missed: the caller syncs).
    pub fn append_with_id(&mut self, ch: usize, id: u64, data: Arc<str>) -> Option<Stored> {
        if id != self.channels[ch].last_id + 1 {
            return None;
        }
        self.channels[ch].last_id = id;
        let m = Stored { id, data };
        self.keep(ch, &m);
        self.published += 1;
        Some(m)
    }

    /// Replaces the mirror with the backplane's state (`last_id` and the
    /// kept messages, oldest first); returns the messages newer than what
    /// the mirror had, for delivery.
    pub fn sync_from(&mut self, ch: usize, last_id: u64, log: Vec<Stored>) -> Vec<Stored> {
        let before = self.channels[ch].last_id;
        let fresh: Vec<Stored> = log.iter().filter(|m| m.id > before).cloned().collect();
        let c = &mut self.channels[ch];
        let skip = log.len().saturating_sub(self.history);
        c.history = log.into_iter().skip(skip).collect();
        c.last_id = before
            .max(last_id)
            .max(c.history.back().map_or(0, |m| m.id));
        c.synced = true;
        self.published += fresh.len() as u64;
        fresh
    }

    pub fn subscribe(&mut self, ch: usize, id: ConnId) {
        self.channels[ch].subscribers.push(id);
    }

    pub fn unsubscribe(&mut self, ch: usize, id: ConnId) {
        if let Some(c) = self.channels.get_mut(ch) {
            if let Some(i) = c.subscribers.iter().position(|&s| s == id) {
                // Order among subscribers carries no meaning.
                c.subscribers.swap_remove(i);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub_with(history: usize, n: u64) -> (Hub, usize) {
        let mut h = Hub::new(history, 10);
        let ch = h.channel("news").unwrap();
        for i in 1..=n {
            h.append(ch, Arc::from(format!("m{i}")));
        }
        (h, ch)
    }

    #[test]
    fn ids_count_from_one_and_history_evicts_the_oldest() {
        let (h, ch) = hub_with(4, 9);
        let c = h.get(ch);
        assert_eq!(c.last_id, 9);
        let ids: Vec<u64> = c.history.iter().map(|m| m.id).collect();
        assert_eq!(ids, [6, 7, 8, 9]);
    }

    #[test]
    fn resume_within_history_is_complete() {
        let (h, ch) = hub_with(4, 9);
        let r = h.get(ch).resume(7);
        assert_eq!((r.truncated, r.start), (false, 2));
        let r = h.get(ch).resume(5);
        assert_eq!((r.truncated, r.start), (false, 0));
        let r = h.get(ch).resume(9);
        assert_eq!((r.truncated, r.start), (false, 4));
    }

    #[test]
    fn resume_before_history_is_truncated() {
        let (h, ch) = hub_with(4, 9);
        let r = h.get(ch).resume(3);
        assert_eq!((r.truncated, r.oldest, r.start), (true, 6, 0));
    }

    #[test]
    fn cursor_from_the_future_is_truncated() {
        let (h, ch) = hub_with(4, 9);
        let r = h.get(ch).resume(12);
        assert_eq!((r.truncated, r.oldest, r.start), (true, 6, 0));
    }

    #[test]
    fn empty_channel() {
        let (h, ch) = hub_with(4, 0);
        assert_eq!(
            h.get(ch).resume(0),
            Resume {
                truncated: false,
                oldest: 1,
                start: 0
            }
        );
        let r = h.get(ch).resume(5);
        assert_eq!((r.truncated, r.oldest), (true, 1));
        // --history 0 keeps nothing: any earlier cursor is a gap.
        let (h, ch) = hub_with(0, 3);
        let r = h.get(ch).resume(1);
        assert_eq!((r.truncated, r.oldest, r.start), (true, 4, 0));
        assert!(!h.get(ch).resume(3).truncated);
    }

    #[test]
    fn names() {
        assert!(is_valid_name("a-b_c.9"));
        assert!(is_valid_name(&"x".repeat(64)));
        for bad in ["", "a b", "a/b", "é", &"x".repeat(65)] {
            assert!(!is_valid_name(bad), "{bad:?}");
        }
        let mut h = Hub::new(1, 1);
        assert_eq!(h.channel("a b"), Err(HubError::BadName));
        assert_eq!(h.channel("a"), Ok(0));
        assert_eq!(h.channel("a"), Ok(0));
        assert_eq!(h.channel("b"), Err(HubError::Full));
    }

    #[test]
    fn mirror_appends_only_the_next_id() {
        let mut h = Hub::mirrored(3, 10);
        let ch = h.channel("news").unwrap();
        assert!(!h.get(ch).synced);
        assert!(h.append_with_id(ch, 1, Arc::from("a")).is_some());
        assert!(
            h.append_with_id(ch, 1, Arc::from("a")).is_none(),
            "duplicate"
        );
        assert!(h.append_with_id(ch, 3, Arc::from("c")).is_none(), "gap");
        let log = (1..=5)
            .map(|id| Stored {
                id,
                data: Arc::from(format!("m{id}")),
            })
            .collect();
        let fresh = h.sync_from(ch, 5, log);
        assert_eq!(fresh.iter().map(|m| m.id).collect::<Vec<_>>(), [2, 3, 4, 5]);
        let c = h.get(ch);
        assert_eq!(
            (c.last_id, c.synced, c.history.len(), c.oldest()),
            (5, true, 3, 3)
        );
    }

    #[test]
    fn unsubscribe_removes_only_that_connection() {
        let (mut h, ch) = hub_with(1, 0);
        let id = |key, serial| ConnId { key, serial };
        h.subscribe(ch, id(1, 10));
        h.subscribe(ch, id(2, 20));
        h.unsubscribe(ch, id(1, 11)); // same key, another connection: kept
        h.unsubscribe(ch, id(1, 10));
        assert_eq!(h.get(ch).subscribers, [id(2, 20)]);
    }
}
