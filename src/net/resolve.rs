//! Name resolution off the event loop.
//!
//! The standard library resolves names with the C library's `getaddrinfo`,
//! which blocks for as long as DNS takes: milliseconds, or 5 s per try
//! against a server that does not answer (glibc's default `timeout:5`,
//! `attempts:2`). The loop must never wait on that, so lookups run on a
//! small pool of threads and their answers come back through the waker:
//!
//! ```text
//!   event loop                                   resolver threads (THREADS)
//!   ──────────                                   ─────────────────────────
//!   ask(id, host, port) ─┬─ cached? ──► ready ─┐
//!        │               └─► bounded queue ───────► resolve(host, port)
//!        │ Err(Full) when the queue is full    │        (blocks: getaddrinfo)
//!        ▼                                     │              │
//!   Poll::poll ◄──────────────── Waker::wake ◄─┼──────────────┤
//!   take_answers(&mut out) ◄──── answers ◄─────┴──────────────┘
//!      fills the cache, drops cancelled ids, hands (id, result) out
//! ```
//!
//! * `ask` never blocks: a cache hit is answered at once (through the same
//!   `take_answers`, after a wake), anything else is queued with
//!   `try_send`, and a full queue is [`Full`], a failed lookup to the caller.
//! * The timeout is the caller's: the loop keeps a deadline per id (it has
//!   timers) and gives up after [`TIMEOUT`]. A thread cannot interrupt
//!   `getaddrinfo`, so the lookup goes on; the loop calls
//!   [`Resolver::cancel`] and the late answer is dropped by id when it
//!   arrives (it still fills the cache, which helps the next try).
//! * Answers are cached for [`CACHE_TTL`] (see there why so short).
//! * Dropping the resolver stops the threads: idle ones are joined, one
//!   stuck in a lookup is detached and ends when its lookup returns (its
//!   answer has nowhere to go), so shutdown never waits on DNS.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use mio::Waker;

/// A lookup: what the threads call. [`system`] in the server; tests pass
/// their own (a slow one, one that counts its calls).
pub type ResolveFn = Arc<dyn Fn(&str, u16) -> io::Result<Vec<SocketAddr>> + Send + Sync>;

/// One answer: the id the loop asked with, and the addresses (in the
/// order `getaddrinfo` gives them, RFC 6724's preference order) or why not.
pub type Answer = (u64, io::Result<Vec<SocketAddr>>);

/// Threads in the pool. More than one so that a lookup stuck on a DNS
/// server that does not answer (up to `timeout` × `attempts`, 10 s with
/// glibc's defaults) does not hold up the others, e.g. a Redis reconnect
/// behind a webhook's name; few, because lookups are rare (a reconnect, a
/// delivery whose answer is no longer cached) and a flood of names must not
/// become a flood of threads: past these, requests wait in the queue.
pub const THREADS: usize = 4;

/// Requests waiting for a thread. Past this `ask` answers [`Full`]: the
/// caller treats it as a failed lookup (a webhook delivery is retried with
/// its backoff, a Redis reconnect tries again later), and memory stays
/// bounded whatever clients do.
pub const QUEUE: usize = 64;

/// How long the loop should wait for an answer before it gives up on the
/// id (the threads have no clock; see the module docs). One glibc `timeout`:
/// a lookup slower than that is already retrying a server that is not
/// answering.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// How long an answer is reused. `getaddrinfo` does not return the
/// records' TTL, so this is a guess, kept short: long enough that a burst
/// of webhook deliveries to one host (every message of a busy channel)
/// costs one lookup, short enough that a DNS change (a managed Redis
/// failing over, which moves its name to a new address with a TTL of
/// seconds) is followed within seconds. Failures are not cached.
pub const CACHE_TTL: Duration = Duration::from_secs(10);

/// At most this many names are cached (expired ones go first, then the
/// oldest).
pub const CACHE_ENTRIES: usize = 256;

/// How long `drop` waits for the idle threads to see the queue close.
const SHUTDOWN_WAIT: Duration = Duration::from_millis(100);

/// The knobs, for tests; [`Options::default`] is the constants above.
#[derive(Debug, Clone)]
pub struct Options {
    pub threads: usize,
    pub queue: usize,
    pub cache_ttl: Duration,
    pub cache_entries: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            threads: THREADS,
            queue: QUEUE,
            cache_ttl: CACHE_TTL,
            cache_entries: CACHE_ENTRIES,
        }
    }
}

/// `ask` refused: the queue is full (or the threads are gone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

impl std::fmt::Display for Full {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("too many name lookups in progress")
    }
}

impl std::error::Error for Full {}

/// The real lookup: `getaddrinfo` through `ToSocketAddrs`.
pub fn system() -> ResolveFn {
    Arc::new(|host: &str, port: u16| (host, port).to_socket_addrs().map(Iterator::collect))
}

struct Request {
    id: u64,
    host: String,
    port: u16,
}

/// What a thread sends back: the request, for the cache, and its result.
struct Done {
    id: u64,
    key: (String, u16),
    result: io::Result<Vec<SocketAddr>>,
}

struct Cached {
    addrs: Vec<SocketAddr>,
    expires: Instant,
}

/// The resolver, owned by the event loop (`&self` methods, not `Sync`).
pub struct Resolver {
    /// `None` once dropping: closing it is what stops the threads.
    requests: Option<SyncSender<Request>>,
    answers: Receiver<Done>,
    waker: Arc<Waker>,
    threads: Vec<JoinHandle<()>>,
    options: Options,
    /// Cache hits, handed out by the next `take_answers`.
    ready: RefCell<Vec<Answer>>,
    /// Ids asked of the threads and not answered yet.
    in_flight: RefCell<HashSet<u64>>,
    /// Ids the loop gave up on: their answers are dropped.
    cancelled: RefCell<HashSet<u64>>,
    /// By (lower-case host, port).
    cache: RefCell<HashMap<(String, u16), Cached>>,
}

impl Resolver {
    /// The server's resolver: `getaddrinfo` on [`THREADS`] threads.
    pub fn new(waker: Arc<Waker>) -> io::Result<Resolver> {
        Resolver::with(waker, Options::default(), system())
    }

    /// A resolver that looks names up with `resolve`.
    pub fn with(waker: Arc<Waker>, options: Options, resolve: ResolveFn) -> io::Result<Resolver> {
        let (requests, queue) = mpsc::sync_channel::<Request>(options.queue);
        let (done, answers) = mpsc::channel::<Done>();
        // One queue, several takers: whoever holds the lock waits in recv.
        let queue = Arc::new(Mutex::new(queue));
        let mut threads = Vec::with_capacity(options.threads);
        for i in 0..options.threads.max(1) {
            let (queue, done, waker, resolve) =
                (queue.clone(), done.clone(), waker.clone(), resolve.clone());
            threads.push(
                thread::Builder::new()
                    .name(format!("pushwire-resolve-{i}"))
                    .spawn(move || work(&queue, &done, &waker, &*resolve))?,
            );
        }
        Ok(Resolver {
            requests: Some(requests),
            answers,
            waker,
            threads,
            options,
            ready: RefCell::new(Vec::new()),
            in_flight: RefCell::new(HashSet::new()),
            cancelled: RefCell::new(HashSet::new()),
            cache: RefCell::new(HashMap::new()),
        })
    }

    /// Looks `host` up for `id` (unique among the ids in flight), from the
    /// cache when it holds a fresh answer. Never blocks. The answer comes
    /// out of [`Resolver::take_answers`] after the waker fires.
    pub fn ask(&self, id: u64, host: &str, port: u16) -> Result<(), Full> {
        let key = (host.to_ascii_lowercase(), port);
        if let Some(addrs) = self.cached(&key) {
            self.ready.borrow_mut().push((id, Ok(addrs)));
            // Spurious wake-ups are harmless; a failed wake only delays
            // the answer to the loop's next turn.
            let _ = self.waker.wake();
            return Ok(());
        }
        self.ask_fresh(id, host, port)
    }

    /// Like [`Resolver::ask`] but always asks DNS (the answer is cached
    /// all the same): for a Redis reconnect, where the old address may be
    /// the reason the connection failed.
    pub fn ask_fresh(&self, id: u64, host: &str, port: u16) -> Result<(), Full> {
        debug_assert!(
            !self.in_flight.borrow().contains(&id),
            "id {id} asked twice"
        );
        let requests = self.requests.as_ref().ok_or(Full)?;
        let request = Request {
            id,
            host: host.to_string(),
            port,
        };
        match requests.try_send(request) {
            Ok(()) => {
                self.in_flight.borrow_mut().insert(id);
                Ok(())
            }
            // Disconnected: every thread is gone (they only end when the
            // queue closes, so this does not happen while we live).
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => Err(Full),
        }
    }

    /// Gives up on `id` (the loop's timeout passed): its answer, whenever
    /// it comes, is dropped instead of handed out.
    pub fn cancel(&self, id: u64) {
        if self.in_flight.borrow_mut().remove(&id) {
            self.cancelled.borrow_mut().insert(id);
        }
        self.ready.borrow_mut().retain(|(ready, _)| *ready != id);
    }

    /// Appends every answer that has arrived. Call it when the waker fires.
    pub fn take_answers(&self, out: &mut Vec<Answer>) {
        out.append(&mut self.ready.borrow_mut());
        loop {
            let done = match self.answers.try_recv() {
                Ok(done) => done,
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => return,
            };
            if let Ok(addrs) = &done.result {
                self.remember(done.key, addrs.clone());
            }
            if self.cancelled.borrow_mut().remove(&done.id) {
                continue;
            }
            self.in_flight.borrow_mut().remove(&done.id);
            out.push((done.id, done.result));
        }
    }

    /// How many lookups the threads owe an answer (cancelled ones not
    /// counted).
    pub fn in_flight(&self) -> usize {
        self.in_flight.borrow().len()
    }

    fn cached(&self, key: &(String, u16)) -> Option<Vec<SocketAddr>> {
        let mut cache = self.cache.borrow_mut();
        match cache.get(key) {
            Some(c) if c.expires > Instant::now() => Some(c.addrs.clone()),
            Some(_) => {
                cache.remove(key);
                None
            }
            None => None,
        }
    }

    fn remember(&self, key: (String, u16), addrs: Vec<SocketAddr>) {
        let mut cache = self.cache.borrow_mut();
        let now = Instant::now();
        if cache.len() >= self.options.cache_entries && !cache.contains_key(&key) {
            cache.retain(|_, c| c.expires > now);
            if cache.len() >= self.options.cache_entries {
                let oldest = cache
                    .iter()
                    .min_by_key(|(_, c)| c.expires)
                    .map(|(k, _)| k.clone());
                if let Some(k) = oldest {
                    cache.remove(&k);
                }
            }
        }
        if self.options.cache_entries > 0 {
            let expires = now + self.options.cache_ttl;
            cache.insert(key, Cached { addrs, expires });
        }
    }
}

impl Drop for Resolver {
    fn drop(&mut self) {
        // Closing the queue ends every thread waiting on it.
        self.requests = None;
        let deadline = Instant::now() + SHUTDOWN_WAIT;
        for t in self.threads.drain(..) {
            while !t.is_finished() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(1));
            }
            if t.is_finished() {
                let _ = t.join();
            } else {
                // Inside getaddrinfo, which cannot be interrupted: detached,
                // it ends when the lookup returns and finds nobody to tell.
                log::debug!("resolver: a lookup is still running at shutdown; not waiting");
            }
        }
    }
}

/// One resolver thread: take a request, look it up, send the answer, wake
/// the loop; until the queue closes or the resolver is gone.
fn work(
    queue: &Mutex<Receiver<Request>>,
    done: &Sender<Done>,
    waker: &Waker,
    resolve: &(dyn Fn(&str, u16) -> io::Result<Vec<SocketAddr>> + Send + Sync),
) {
    loop {
        let request = {
            // A poisoned lock means another thread panicked while waiting
            // in recv, which cannot panic; take the queue anyway.
            let queue = queue
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            match queue.recv() {
                Ok(r) => r,
                Err(_) => return, // the resolver was dropped
            }
        };
        // A lookup function that panics must not take the thread with it.
        let result = catch_unwind(AssertUnwindSafe(|| resolve(&request.host, request.port)))
            .unwrap_or_else(|_| Err(io::Error::other("the name lookup panicked")));
        let result = match result {
            Ok(addrs) if addrs.is_empty() => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{} has no addresses", request.host),
            )),
            other => other,
        };
        let answer = Done {
            id: request.id,
            key: (request.host.to_ascii_lowercase(), request.port),
            result,
        };
        if done.send(answer).is_err() {
            return; // the resolver was dropped while we looked up
        }
        let _ = waker.wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mio::{Events, Poll, Token};
    use std::sync::atomic::{AtomicUsize, Ordering};

    const WAKE: Token = Token(7);

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, 1], port))
    }

    /// A lookup that answers 192.0.2.1 at once, or after `slow` for a host
    /// named "slow...", and counts its calls.
    fn fake(slow: Duration, calls: Arc<AtomicUsize>) -> ResolveFn {
        Arc::new(move |host: &str, port: u16| {
            calls.fetch_add(1, Ordering::SeqCst);
            if host.starts_with("slow") {
                thread::sleep(slow);
            }
            if host.starts_with("missing") {
                return Err(io::Error::new(io::ErrorKind::NotFound, "no such host"));
            }
            Ok(vec![addr(port)])
        })
    }

    fn setup(options: Options, resolve: ResolveFn) -> (Poll, Resolver) {
        let poll = Poll::new().unwrap();
        let waker = Arc::new(Waker::new(poll.registry(), WAKE).unwrap());
        let resolver = Resolver::with(waker, options, resolve).unwrap();
        (poll, resolver)
    }

    /// Polls (as the loop does) until `n` answers came or `limit` passed.
    fn wait_for(poll: &mut Poll, r: &Resolver, n: usize, limit: Duration) -> Vec<Answer> {
        let mut events = Events::with_capacity(8);
        let mut out = Vec::new();
        let end = Instant::now() + limit;
        while out.len() < n {
            let now = Instant::now();
            if now >= end {
                break;
            }
            poll.poll(&mut events, Some(end - now)).unwrap();
            if events.iter().any(|e| e.token() == WAKE) {
                r.take_answers(&mut out);
            }
        }
        out
    }

    fn ids(answers: &[Answer]) -> Vec<u64> {
        answers.iter().map(|(id, _)| *id).collect()
    }

    #[test]
    fn answer_arrives_through_the_waker() {
        let (mut poll, r) = setup(Options::default(), fake(Duration::ZERO, Arc::default()));
        r.ask(1, "a.test", 80).unwrap();
        let got = wait_for(&mut poll, &r, 1, Duration::from_secs(5));
        assert_eq!(ids(&got), [1]);
        assert_eq!(got[0].1.as_ref().unwrap(), &vec![addr(80)]);
        assert_eq!(r.in_flight(), 0);
    }

    #[test]
    fn slow_lookup_blocks_neither_ask_nor_other_lookups() {
        let slow = Duration::from_millis(1500);
        let (mut poll, r) = setup(Options::default(), fake(slow, Arc::default()));
        let start = Instant::now();
        r.ask(1, "slow.test", 80).unwrap();
        r.ask(2, "fast.test", 80).unwrap();
        assert!(start.elapsed() < Duration::from_millis(100), "ask blocked");
        let got = wait_for(&mut poll, &r, 1, Duration::from_secs(1));
        assert_eq!(ids(&got), [2], "the fast answer comes first");
        assert!(start.elapsed() < slow);
        let got = wait_for(&mut poll, &r, 1, Duration::from_secs(5));
        assert_eq!(ids(&got), [1]);
    }

    #[test]
    fn full_queue_refuses() {
        // One thread, held inside its lookup until released; room for two.
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let (started_tx, started_rx) = mpsc::channel::<()>();
        let release_rx = Mutex::new(release_rx);
        let started_tx = Mutex::new(started_tx);
        let resolve: ResolveFn = Arc::new(move |_: &str, port: u16| {
            let _ = started_tx.lock().unwrap().send(());
            let _ = release_rx.lock().unwrap().recv();
            Ok(vec![addr(port)])
        });
        let options = Options {
            threads: 1,
            queue: 2,
            ..Options::default()
        };
        let (mut poll, r) = setup(options, resolve);
        r.ask(1, "a.test", 1).unwrap();
        started_rx.recv_timeout(Duration::from_secs(5)).unwrap(); // the thread holds 1
        r.ask(2, "b.test", 2).unwrap();
        r.ask(3, "c.test", 3).unwrap();
        assert_eq!(r.ask(4, "d.test", 4), Err(Full));
        for _ in 0..3 {
            release_tx.send(()).unwrap();
        }
        let got = wait_for(&mut poll, &r, 3, Duration::from_secs(5));
        assert_eq!(ids(&got), [1, 2, 3]);
    }

    #[test]
    fn cache_answers_without_asking_again() {
        let calls = Arc::new(AtomicUsize::new(0));
        let (mut poll, r) = setup(Options::default(), fake(Duration::ZERO, calls.clone()));
        r.ask(1, "a.test", 80).unwrap();
        wait_for(&mut poll, &r, 1, Duration::from_secs(5));
        r.ask(2, "A.TEST", 80).unwrap(); // names are case-insensitive
        let got = wait_for(&mut poll, &r, 1, Duration::from_secs(5));
        assert_eq!(ids(&got), [2]);
        assert_eq!(got[0].1.as_ref().unwrap(), &vec![addr(80)]);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn cache_is_per_port() {
        let calls = Arc::new(AtomicUsize::new(0));
        let (mut poll, r) = setup(Options::default(), fake(Duration::ZERO, calls.clone()));
        r.ask(1, "a.test", 80).unwrap();
        wait_for(&mut poll, &r, 1, Duration::from_secs(5));
        r.ask(2, "a.test", 81).unwrap();
        let got = wait_for(&mut poll, &r, 1, Duration::from_secs(5));
        assert_eq!(got[0].1.as_ref().unwrap(), &vec![addr(81)]);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn ask_fresh_skips_the_cache() {
        let calls = Arc::new(AtomicUsize::new(0));
        let (mut poll, r) = setup(Options::default(), fake(Duration::ZERO, calls.clone()));
        r.ask(1, "a.test", 80).unwrap();
        wait_for(&mut poll, &r, 1, Duration::from_secs(5));
        r.ask_fresh(2, "a.test", 80).unwrap();
        wait_for(&mut poll, &r, 1, Duration::from_secs(5));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn cache_expires() {
        let calls = Arc::new(AtomicUsize::new(0));
        let options = Options {
            cache_ttl: Duration::from_millis(30),
            ..Options::default()
        };
        let (mut poll, r) = setup(options, fake(Duration::ZERO, calls.clone()));
        r.ask(1, "a.test", 80).unwrap();
        wait_for(&mut poll, &r, 1, Duration::from_secs(5));
        thread::sleep(Duration::from_millis(50));
        r.ask(2, "a.test", 80).unwrap();
        wait_for(&mut poll, &r, 1, Duration::from_secs(5));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn cache_stays_bounded() {
        let options = Options {
            cache_entries: 2,
            ..Options::default()
        };
        let (mut poll, r) = setup(options, fake(Duration::ZERO, Arc::default()));
        for (id, host) in [(1, "a.test"), (2, "b.test"), (3, "c.test")] {
            r.ask(id, host, 80).unwrap();
            wait_for(&mut poll, &r, 1, Duration::from_secs(5));
        }
        assert_eq!(r.cache.borrow().len(), 2);
        assert!(!r.cache.borrow().contains_key(&("a.test".to_string(), 80)));
    }

    #[test]
    fn failures_are_answered_and_not_cached() {
        let calls = Arc::new(AtomicUsize::new(0));
        let (mut poll, r) = setup(Options::default(), fake(Duration::ZERO, calls.clone()));
        r.ask(1, "missing.test", 80).unwrap();
        let got = wait_for(&mut poll, &r, 1, Duration::from_secs(5));
        assert_eq!(
            got[0].1.as_ref().unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        r.ask(2, "missing.test", 80).unwrap();
        wait_for(&mut poll, &r, 1, Duration::from_secs(5));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn no_addresses_is_an_error() {
        let resolve: ResolveFn = Arc::new(|_: &str, _: u16| Ok(Vec::new()));
        let (mut poll, r) = setup(Options::default(), resolve);
        r.ask(1, "a.test", 80).unwrap();
        let got = wait_for(&mut poll, &r, 1, Duration::from_secs(5));
        assert_eq!(
            got[0].1.as_ref().unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
    }

    #[test]
    fn a_panicking_lookup_is_an_error_and_the_thread_lives() {
        let resolve: ResolveFn = Arc::new(|host: &str, port: u16| {
            if host == "boom.test" {
                panic!("lookup exploded");
            }
            Ok(vec![addr(port)])
        });
        let options = Options {
            threads: 1,
            ..Options::default()
        };
        let (mut poll, r) = setup(options, resolve);
        r.ask(1, "boom.test", 80).unwrap();
        r.ask(2, "a.test", 80).unwrap();
        let got = wait_for(&mut poll, &r, 2, Duration::from_secs(5));
        assert_eq!(ids(&got), [1, 2]);
        assert!(got[0].1.is_err() && got[1].1.is_ok());
    }

    #[test]
    fn late_answer_to_a_cancelled_id_is_dropped_but_cached() {
        let calls = Arc::new(AtomicUsize::new(0));
        let slow = Duration::from_millis(200);
        let (mut poll, r) = setup(Options::default(), fake(slow, calls.clone()));
        r.ask(1, "slow.test", 80).unwrap();
        r.cancel(1); // the loop's timeout passed
        assert_eq!(r.in_flight(), 0);
        let got = wait_for(&mut poll, &r, 1, Duration::from_millis(600));
        assert!(got.is_empty(), "{:?}", ids(&got));
        r.ask(2, "slow.test", 80).unwrap();
        let got = wait_for(&mut poll, &r, 1, Duration::from_secs(5));
        assert_eq!(ids(&got), [2]);
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "the late answer was cached"
        );
    }

    #[test]
    fn cancelling_a_cache_hit_drops_it() {
        let (mut poll, r) = setup(Options::default(), fake(Duration::ZERO, Arc::default()));
        r.ask(1, "a.test", 80).unwrap();
        wait_for(&mut poll, &r, 1, Duration::from_secs(5));
        r.ask(2, "a.test", 80).unwrap();
        r.cancel(2);
        assert!(wait_for(&mut poll, &r, 1, Duration::from_millis(100)).is_empty());
    }

    #[test]
    fn drop_joins_idle_threads() {
        let marker = Arc::new(());
        let held = marker.clone();
        let resolve: ResolveFn = Arc::new(move |_: &str, port: u16| {
            let _ = &held;
            Ok(vec![addr(port)])
        });
        let (_poll, r) = setup(Options::default(), resolve);
        assert_eq!(Arc::strong_count(&marker), 2);
        let start = Instant::now();
        drop(r);
        assert!(start.elapsed() < SHUTDOWN_WAIT);
        // Every thread ended and dropped its handle on the lookup function.
        assert_eq!(Arc::strong_count(&marker), 1);
    }

    #[test]
    fn drop_does_not_wait_for_a_stuck_lookup() {
        let (started_tx, started_rx) = mpsc::channel::<()>();
        let started_tx = Mutex::new(started_tx);
        let resolve: ResolveFn = Arc::new(move |_: &str, port: u16| {
            let _ = started_tx.lock().unwrap().send(());
            thread::sleep(Duration::from_secs(3));
            Ok(vec![addr(port)])
        });
        let (_poll, r) = setup(Options::default(), resolve);
        r.ask(1, "a.test", 80).unwrap();
        started_rx.recv_timeout(Duration::from_secs(5)).unwrap();
        let start = Instant::now();
        drop(r);
        assert!(start.elapsed() < Duration::from_millis(500));
    }

    #[test]
    fn system_resolves_localhost() {
        // /etc/hosts, no DNS server needed.
        let got = system()("localhost", 9).unwrap();
        assert!(got.iter().all(|a| a.ip().is_loopback() && a.port() == 9));
    }
}
