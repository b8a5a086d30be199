//! Name lookups for the application: a `--redis` host or a webhook host
//! that is a DNS name is resolved off the event loop (`net::resolve`, a few
//! threads calling the C library's blocking resolver), and each answer is
//! handed to whoever asked when the loop's waker fires.
//!
//! ```text
//!  ask(For::Redis | For::Webhook, host, port)
//!   ├─► Resolver: cache hit, or a thread runs getaddrinfo ─► Waker::wake
//!   └─► Timer::Lookup(id) at +5 s                                │
//!                                                                ▼
//!  timed_out(id): still asked? cancel it,          woken (net::App::woken):
//!  answer "no answer within 5 s"                   take_answers ─► answered
//!                      │                                          │
//!                      └───────────► redis_conn::resolved ◄───────┤
//!                                    webhook_client::resolved ◄───┘
//! ```
//!
//! The resolver (and its threads) is started on the first lookup: a server
//! that names no host by DNS runs no resolver thread. Every step shows in
//! `--trace` (`Trace::lookup`): asked, answered with which addresses, timed
//! out; the asker traces which address it used.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use super::{redis_conn, webhook_client, App, Io, Timer};
use crate::net::resolve::{self, Answer, Resolver};

/// Who asked, and so who gets the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum For {
    /// The backplane's host, at start and at each reconnect.
    Redis,
    /// A webhook delivery's attempt, which must be done by `deadline` (its
    /// 10 s, the lookup included).
    Webhook { seq: u64, deadline: Instant },
}

/// A lookup waiting for its answer.
#[derive(Debug)]
struct Asked {
    host: String,
    port: u16,
    asker: For,
}

/// The application's lookups: the resolver, once started, and what each
/// id in flight is for.
#[derive(Default)]
pub struct Lookups {
    resolver: Option<Resolver>,
    asked: HashMap<u64, Asked>,
    next_id: u64,
    /// Answers taken from the resolver, kept to reuse its capacity.
    scratch: Vec<Answer>,
}

impl Lookups {
    /// Webhook deliveries whose attempt waits for a lookup (they count as
    /// on the wire: deleting their webhook must not drop them mid-attempt).
    pub fn webhook_deliveries(&self) -> impl Iterator<Item = u64> + '_ {
        self.asked.values().filter_map(|a| match a.asker {
            For::Webhook { seq, .. } => Some(seq),
            For::Redis => None,
        })
    }

    /// Lookups waiting for an answer.
    pub fn len(&self) -> usize {
        self.asked.len()
    }

    pub fn is_empty(&self) -> bool {
        self.asked.is_empty()
    }
}

/// Looks `host` up for `asker`. `fresh` skips the cache (a reconnect:
/// the old address may be why the connection failed). The answer comes
/// to the asker's `resolved` once the waker fires, or as a timeout after
/// `resolve::TIMEOUT`. `Err` (a sentence) when the lookup cannot even be
/// queued: the caller treats it as a failed lookup.
pub fn ask(
    app: &mut App,
    io: &mut Io,
    asker: For,
    host: &str,
    port: u16,
    fresh: bool,
) -> Result<u64, String> {
    let l = &mut app.lookups;
    if l.resolver.is_none() {
        let resolver = Resolver::new(io.waker())
            .map_err(|e| format!("cannot start the name resolver: {e}"))?;
        l.resolver = Some(resolver);
    }
    let Some(resolver) = l.resolver.as_ref() else {
        return Err("no name resolver".into());
    };
    l.next_id += 1;
    let id = l.next_id;
    let queued = if fresh {
        resolver.ask_fresh(id, host, port)
    } else {
        resolver.ask(id, host, port)
    };
    queued.map_err(|e| e.to_string())?;
    l.asked.insert(
        id,
        Asked {
            host: host.to_string(),
            port,
            asker,
        },
    );
    io.push_timer(io.now() + resolve::TIMEOUT, Timer::Lookup(id));
    app.trace.lookup(
        host,
        port,
        format_args!(
            "asked (lookup {id}{})",
            if fresh { ", not from the cache" } else { "" }
        ),
    );
    Ok(id)
}

/// The waker fired: hand every answer that arrived to its asker.
pub fn woken(app: &mut App, io: &mut Io) {
    let Some(resolver) = app.lookups.resolver.as_ref() else {
        return;
    };
    let mut answers = std::mem::take(&mut app.lookups.scratch);
    resolver.take_answers(&mut answers);
    for (id, result) in answers.drain(..) {
        // Gone: it timed out already (and was cancelled, so this is rare).
        let Some(asked) = app.lookups.asked.remove(&id) else {
            continue;
        };
        match &result {
            Ok(addrs) => app.trace.lookup(
                &asked.host,
                asked.port,
                format_args!("answered {}", list(addrs)),
            ),
            Err(e) => app
                .trace
                .lookup(&asked.host, asked.port, format_args!("failed: {e}")),
        }
        answered(app, io, asked, result);
    }
    app.lookups.scratch = answers;
}

/// A lookup's `resolve::TIMEOUT` passed (a late `Timer::Lookup` for one
/// already answered finds nothing).
pub fn timed_out(app: &mut App, io: &mut Io, id: u64) {
    let Some(asked) = app.lookups.asked.remove(&id) else {
        return;
    };
    if let Some(r) = app.lookups.resolver.as_ref() {
        r.cancel(id);
    }
    let secs = resolve::TIMEOUT.as_secs();
    app.trace.lookup(
        &asked.host,
        asked.port,
        format_args!("timed out: no answer within {secs} s"),
    );
    let e = io::Error::new(
        io::ErrorKind::TimedOut,
        format!("no answer from the resolver within {secs} s"),
    );
    answered(app, io, asked, Err(e));
}

fn answered(app: &mut App, io: &mut Io, asked: Asked, result: io::Result<Vec<SocketAddr>>) {
    match asked.asker {
        For::Redis => redis_conn::resolved(app, io, &asked.host, result),
        For::Webhook { seq, deadline } => {
            webhook_client::resolved(app, io, seq, deadline, &asked.host, result)
        }
    }
}

/// `10.0.0.5:6379, [2001:db8::5]:6379`, for the trace.
pub fn list(addrs: &[SocketAddr]) -> String {
    let mut s = String::new();
    for (i, a) in addrs.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        s.push_str(&a.to_string());
    }
    s
}
