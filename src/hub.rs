//! The pub/sub core: channels, their message ids, their history, their
//! subscribers (docs/api.md section 2). Pure bookkeeping: the event loop does the
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
//! Three limits bound what history keeps, whichever is reached first:
//! `--history` messages and `--history-bytes` of message data per channel,
//! and `--max-history-bytes` for all channels together, where the
//! process's oldest message goes first, whatever its channel (a global
//! queue in publish order). A resume that reaches back past what any of
//! them evicted is told so (`truncated`), never silently.
//!
//! A channel comes into being with its first message. Subscribing to a
//! name nobody published to makes an entry that lasts only as long as its
//! subscribers (`release_if_unused`), and `--max-channels` counts only
//! channels that have had a message: nobody can use up the channels by
//! asking for names.
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
    /// Published by a webhook delivery (a request carrying
    /// `X-Pushwire-Delivery`): it reaches subscribers but fires no webhook,
    /// so servers cannot call each other in a loop (docs/api.md section 4).
    pub quiet: bool,
}

#[derive(Debug, Default)]
pub struct Channel {
    pub name: String,
    pub last_id: u64,
    pub history: VecDeque<Stored>,
    /// Bytes of message data in `history`.
    pub bytes: usize,
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
    /// Publishes sent to the backplane and not answered yet.
    pub pending: u32,
    /// Counted in `Hub::with_messages`.
    counted: bool,
    /// This slot's generation: entries of the global eviction queue name
    /// it, so they cannot touch a later channel in the same slot.
    generation: u64,
}

impl Channel {
    /// The id of the oldest kept message, or of the next message when none
    /// is kept.
    pub fn oldest(&self) -> u64 {
        self.history.front().map_or(self.last_id + 1, |m| m.id)
    }

    /// Has this channel ever had a message (and so counts against
    /// `--max-channels`)?
    pub fn has_messages(&self) -> bool {
        self.last_id > 0
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
    /// The first id that follows (docs/api.md's `oldest`).
    pub oldest: u64,
    /// Index into `history` of the first message to send.
    pub start: usize,
}

/// Why a channel name was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HubError {
    /// Not `[A-Za-z0-9_.-]{1,64}`.
    BadName,
    /// `--max-channels` channels have had messages already.
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

/// What history may keep (see the module doc).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `--history`: messages per channel.
    pub messages: usize,
    /// `--history-bytes`: message data per channel.
    pub bytes: usize,
    /// `--max-history-bytes`: message data of all channels together.
    pub total_bytes: usize,
    /// `--max-channels`: channels that have had a message.
    pub channels: usize,
}

/// Every channel, by slot index. A slot keeps its index for as long as the
/// channel exists; a channel released without ever having a message frees
/// its slot for another.
#[derive(Debug)]
pub struct Hub {
    channels: Vec<Option<Channel>>,
    free: Vec<usize>,
    by_name: HashMap<String, usize>,
    limits: Limits,
    /// Channels that have had a message.
    with_messages: usize,
    /// Bytes of message data kept by all channels.
    total_bytes: usize,
    /// Every kept message once, in publish order: (slot, generation, id).
    order: VecDeque<(usize, u64, u64)>,
    /// Messages kept by all channels (to know when `order` holds mostly
    /// stale entries).
    kept: usize,
    next_generation: u64,
    /// Channels start unsynced: their state lives in a shared backplane.
    mirrored: bool,
    pub published: u64,
}

/// docs/api.md section 2: a channel name matches `[A-Za-z0-9_.-]{1,64}`.
pub fn is_valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

impl Hub {
    pub fn new(limits: Limits) -> Self {
        Hub {
            channels: Vec::new(),
            free: Vec::new(),
            by_name: HashMap::new(),
            limits,
            with_messages: 0,
            total_bytes: 0,
            order: VecDeque::new(),
            kept: 0,
            next_generation: 0,
            mirrored: false,
            published: 0,
        }
    }

    /// A hub whose channels mirror a shared backplane (see `app::redis`):
    /// each channel must be synced before it is read.
    pub fn mirrored(limits: Limits) -> Self {
        Hub {
            mirrored: true,
            ..Hub::new(limits)
        }
    }

    pub fn is_mirrored(&self) -> bool {
        self.mirrored
    }

    /// Indices of every channel.
    pub fn indices(&self) -> Vec<usize> {
        self.channels
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.as_ref().map(|_| i))
            .collect()
    }

    /// The channel's index, making an entry for it on first use. The entry
    /// lasts while someone uses it (`release_if_unused`); it counts as a
    /// channel once it has a message.
    pub fn channel(&mut self, name: &str) -> Result<usize, HubError> {
        if !is_valid_name(name) {
            return Err(HubError::BadName);
        }
        if let Some(&i) = self.by_name.get(name) {
            return Ok(i);
        }
        self.next_generation += 1;
        let c = Channel {
            name: name.to_string(),
            synced: !self.mirrored,
            generation: self.next_generation,
            ..Channel::default()
        };
        let i = match self.free.pop() {
            Some(i) => {
                self.channels[i] = Some(c);
                i
            }
            None => {
                self.channels.push(Some(c));
                self.channels.len() - 1
            }
        };
        self.by_name.insert(name.to_string(), i);
        Ok(i)
    }

    /// May a message be published to `ch`? Not when it would be a new
    /// channel past `--max-channels`.
    pub fn check_publish(&self, ch: usize) -> Result<(), HubError> {
        if self.get(ch).has_messages() || self.with_messages < self.limits.channels {
            Ok(())
        } else {
            Err(HubError::Full)
        }
    }

    /// Drops the entry of a channel that never had a message once nothing
    /// uses it (no subscriber, no held request, no sync or publish under
    /// way); its slot may then serve another name.
    pub fn release_if_unused(&mut self, ch: usize) {
        let Some(c) = self.channels.get(ch).and_then(Option::as_ref) else {
            return;
        };
        if c.counted
            || c.has_messages()
            || !c.subscribers.is_empty()
            || !c.waiting.is_empty()
            || c.syncing
            || c.pending > 0
            || !c.history.is_empty()
        {
            return;
        }
        self.by_name.remove(&c.name);
        self.channels[ch] = None;
        self.free.push(ch);
    }

    /// The channel's index if it exists (never creates it).
    pub fn lookup(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// The channel in slot `ch`. Callers hold only indices of channels that
    /// exist: a slot is freed only when nothing refers to it.
    pub fn get(&self, ch: usize) -> &Channel {
        match self.channels.get(ch) {
            Some(Some(c)) => c,
            _ => panic!("hub: no channel in slot {ch}"),
        }
    }

    pub fn get_mut(&mut self, ch: usize) -> &mut Channel {
        match self.channels.get_mut(ch) {
            Some(Some(c)) => c,
            _ => panic!("hub: no channel in slot {ch}"),
        }
    }

    /// Channels that have had a message (what `--max-channels` counts).
    pub fn len(&self) -> usize {
        self.with_messages
    }

    pub fn is_empty(&self) -> bool {
        self.with_messages == 0
    }

    /// Bytes of message data kept by all channels.
    pub fn history_bytes(&self) -> usize {
        self.total_bytes
    }

    /// Appends a message, gives it the channel's next id, evicts beyond the
    /// limits. Check `check_publish` first.
    pub fn append(&mut self, ch: usize, data: Arc<str>, quiet: bool) -> Stored {
        let c = self.get_mut(ch);
        c.last_id += 1;
        let m = Stored {
            id: c.last_id,
            data,
            quiet,
        };
        self.counted(ch);
        self.keep(ch, &m);
        self.published += 1;
        m
    }

    /// Counts `ch` as a channel once it has its first message.
    fn counted(&mut self, ch: usize) {
        let c = self.get_mut(ch);
        if c.last_id > 0 && !c.counted {
            c.counted = true;
            self.with_messages += 1;
        }
    }

    fn keep(&mut self, ch: usize, m: &Stored) {
        let limits = self.limits;
        let len = m.data.len();
        let c = self.get_mut(ch);
        if limits.messages == 0 || len > limits.bytes {
            // It cannot be kept, so nothing before it can be either: history
            // is always an unbroken run ending at `last_id`, or a resume
            // from before this message would miss it silently. It is
            // delivered live only; a later resume is told `truncated`.
            let freed = c.bytes;
            let dropped = c.history.len();
            c.history.clear();
            c.bytes = 0;
            self.total_bytes -= freed;
            self.kept -= dropped;
            return;
        }
        c.history.push_back(m.clone());
        c.bytes += len;
        let generation = c.generation;
        let mut freed = 0;
        let mut dropped = 0;
        while c.history.len() > limits.messages || c.bytes > limits.bytes {
            let Some(old) = c.history.pop_front() else {
                break;
            };
            c.bytes -= old.data.len();
            freed += old.data.len();
            dropped += 1;
        }
        self.total_bytes = self.total_bytes + len - freed;
        self.kept = self.kept + 1 - dropped;
        self.order.push_back((ch, generation, m.id));
        self.evict_process_oldest();
    }

    /// `--max-history-bytes`: the process's oldest messages go first,
    /// whatever their channel.
    fn evict_process_oldest(&mut self) {
        while self.total_bytes > self.limits.total_bytes {
            let Some((ch, generation, id)) = self.order.pop_front() else {
                break;
            };
            let Some(Some(c)) = self.channels.get_mut(ch) else {
                continue;
            };
            // Stale: that message already left (its channel's own limits),
            // or the slot holds another channel now.
            if c.generation != generation || c.history.front().is_none_or(|m| m.id != id) {
                continue;
            }
            if let Some(old) = c.history.pop_front() {
                c.bytes -= old.data.len();
                self.total_bytes -= old.data.len();
                self.kept -= 1;
            }
        }
        // Entries for messages that left by their channel's own limits stay
        // in the queue until they reach its front: compact when they are
        // most of it, so it stays proportional to what is kept.
        if self.order.len() > 2 * self.kept + 1024 {
            let channels = &self.channels;
            self.order.retain(|&(ch, generation, id)| {
                matches!(channels.get(ch), Some(Some(c)) if c.generation == generation
                    && c.history.front().is_some_and(|f| f.id <= id)
                    && c.history.back().is_some_and(|b| b.id >= id))
            });
        }
    }

    /// A message the backplane announced with its id: appended if it is
    /// the next one. `None` when it is old (a duplicate) or leaves a gap
    /// (something was missed: the caller syncs).
    pub fn append_with_id(
        &mut self,
        ch: usize,
        id: u64,
        data: Arc<str>,
        quiet: bool,
    ) -> Option<Stored> {
        if id != self.get(ch).last_id + 1 {
            return None;
        }
        self.get_mut(ch).last_id = id;
        let m = Stored { id, data, quiet };
        self.counted(ch);
        self.keep(ch, &m);
        self.published += 1;
        Some(m)
    }

    /// Replaces the mirror with the backplane's state (`last_id` and the
    /// kept messages, oldest first); returns the messages newer than what
    /// the mirror had, for delivery.
    pub fn sync_from(&mut self, ch: usize, last_id: u64, log: Vec<Stored>) -> Vec<Stored> {
        let before = self.get(ch).last_id;
        let fresh: Vec<Stored> = log.iter().filter(|m| m.id > before).cloned().collect();
        // Forget the mirror's history, then keep the log as if each message
        // were appended now (the same limits apply).
        let c = self.get_mut(ch);
        let old = std::mem::take(&mut c.history);
        let old_bytes = std::mem::replace(&mut c.bytes, 0);
        self.total_bytes -= old_bytes;
        self.kept -= old.len();
        for m in &log {
            self.keep(ch, m);
        }
        let c = self.get_mut(ch);
        c.last_id = before
            .max(last_id)
            .max(c.history.back().map_or(0, |m| m.id));
        c.synced = true;
        self.counted(ch);
        self.published += fresh.len() as u64;
        fresh
    }

    pub fn subscribe(&mut self, ch: usize, id: ConnId) {
        self.get_mut(ch).subscribers.push(id);
    }

    pub fn unsubscribe(&mut self, ch: usize, id: ConnId) {
        if let Some(Some(c)) = self.channels.get_mut(ch) {
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

    fn limits(messages: usize, channels: usize) -> Limits {
        Limits {
            messages,
            bytes: 1 << 20,
            total_bytes: 1 << 30,
            channels,
        }
    }

    fn hub_with(history: usize, n: u64) -> (Hub, usize) {
        let mut h = Hub::new(limits(history, 10));
        let ch = h.channel("news").unwrap();
        for i in 1..=n {
            h.append(ch, Arc::from(format!("m{i}")), false);
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
        let mut h = Hub::new(limits(1, 1));
        assert_eq!(h.channel("a b"), Err(HubError::BadName));
        assert_eq!(h.channel("a"), Ok(0));
        assert_eq!(h.channel("a"), Ok(0));
        // A name nobody published to is not a channel yet: any number may
        // be subscribed to, and each is dropped when unused.
        let b = h.channel("b").unwrap();
        assert_eq!(h.check_publish(b), Ok(()));
        h.append(b, Arc::from("x"), false);
        assert_eq!(h.len(), 1);
        assert_eq!(
            h.check_publish(0),
            Err(HubError::Full),
            "a second channel past --max-channels 1"
        );
        h.release_if_unused(0);
        assert_eq!(h.lookup("a"), None);
        h.release_if_unused(b);
        assert_eq!(h.lookup("b"), Some(b), "a channel with messages stays");
        // The freed slot serves the next name.
        assert_eq!(h.channel("c"), Ok(0));
    }

    #[test]
    fn mirror_appends_only_the_next_id() {
        let mut h = Hub::mirrored(limits(3, 10));
        let ch = h.channel("news").unwrap();
        assert!(!h.get(ch).synced);
        assert!(h.append_with_id(ch, 1, Arc::from("a"), false).is_some());
        assert!(
            h.append_with_id(ch, 1, Arc::from("a"), false).is_none(),
            "duplicate"
        );
        assert!(
            h.append_with_id(ch, 3, Arc::from("c"), false).is_none(),
            "gap"
        );
        let log = (1..=5)
            .map(|id| Stored {
                id,
                data: Arc::from(format!("m{id}")),
                quiet: false,
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

    #[test]
    fn history_bytes_per_channel_evict_the_oldest_and_refuse_what_cannot_fit() {
        let mut h = Hub::new(Limits {
            messages: 100,
            bytes: 10,
            total_bytes: 1 << 20,
            channels: 10,
        });
        let ch = h.channel("a").unwrap();
        for data in ["aaaa", "bbbb", "cccc"] {
            h.append(ch, Arc::from(data), false);
        }
        let ids: Vec<u64> = h.get(ch).history.iter().map(|m| m.id).collect();
        assert_eq!(ids, [2, 3]);
        assert_eq!((h.get(ch).bytes, h.history_bytes()), (8, 8));
        // A message larger than the budget is delivered, not kept.
        h.append(ch, Arc::from("x".repeat(11)), false);
        assert_eq!(h.get(ch).last_id, 4);
        assert!(h.get(ch).resume(3).truncated, "id 4 was never kept");
    }

    #[test]
    fn max_history_bytes_evicts_the_processes_oldest_message_first() {
        let mut h = Hub::new(Limits {
            messages: 100,
            bytes: 100,
            total_bytes: 10,
            channels: 10,
        });
        let a = h.channel("a").unwrap();
        let b = h.channel("b").unwrap();
        h.append(a, Arc::from("a1a1"), false); // oldest in the process
        h.append(b, Arc::from("b1b1"), false);
        h.append(a, Arc::from("a2a2"), false); // 12 bytes: a1 must go
        assert_eq!(h.history_bytes(), 8);
        assert_eq!(h.get(a).oldest(), 2);
        assert_eq!(h.get(b).oldest(), 1);
        let r = h.get(a).resume(0);
        assert_eq!((r.truncated, r.oldest), (true, 2), "the gap is announced");
        h.append(b, Arc::from("b2b2"), false); // b1 is now the oldest
        assert_eq!((h.get(b).oldest(), h.history_bytes()), (2, 8));
    }

    #[test]
    fn eviction_queue_ignores_a_later_channel_in_a_freed_slot() {
        let mut h = Hub::new(Limits {
            messages: 1,
            bytes: 100,
            total_bytes: 1 << 20,
            channels: 10,
        });
        let a = h.channel("a").unwrap();
        for i in 0..5000 {
            h.append(a, Arc::from(format!("{i}")), false);
        }
        // Entries of messages that left by --history are compacted away.
        assert!(h.order.len() <= 2 * h.kept + 1024, "{}", h.order.len());
        assert_eq!(h.get(a).history.len(), 1);
    }
}
