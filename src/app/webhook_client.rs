//! The HTTP/1.1 client that delivers webhooks: its connections are entries
//! of the same slab as every server connection, and nothing it does blocks.
//!
//! ```text
//!  pushwire                                   receiver
//!     │ connect() (non-blocking; EINPROGRESS)     │
//!     │ ... writable event: connected ...         │
//!     │ POST /hook HTTP/1.1                       │
//!     │ X-Pushwire-Event: job.done                │
//!     │ X-Pushwire-Delivery: 3f2a9c1e-7           │   the same id on every retry
//!     │ X-Pushwire-Signature: sha1=<HMAC>         │
//!     │ {"event":"job.done","jobId":"job:4"} ────►│
//!     │◄──────────────── HTTP/1.1 200 OK ...      │
//!     │ (2xx: done; else retry in 1, 2, 4, 8, 16 s; 10 s without an answer: failed attempt)
//! ```
//!
//! At most `--max-deliveries` attempts are on the wire at once; more wait in
//! a queue (100 times that, then they fail at once, recorded). The 10 s
//! limit of an attempt is a deadline of the loop.
//!
//! A host that is a DNS name (allowed only because `--webhook-allow` names
//! it) is looked up before each attempt, off the loop (`lookup.rs`; an
//! answer is reused for `net::resolve::CACHE_TTL`, 10 s). The attempt waits
//! for the answer (at most 5 s), then connects to the first address that
//! is not this server's own, within what is left of its 10 s:
//!
//! ```text
//!  attempt ─┬─ IP literal / localhost ───────────────────────► connect
//!           └─ DNS name ─► lookup ─► answered: drop own addresses ─► connect
//!                           └─ failed / timed out (5 s): a failed attempt, retried
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::conn::{ClientBody, ClientConn, Kind, Session, Wait};
use super::{lookup, set_wait, webhooks, App, Io, Timer};
use crate::net::{CloseReason, ConnId, Step};
use crate::webhooks::{Attempt, BACKOFF_S};
use crate::wire::chunked::ChunkedDecoder;
use crate::wire::http1::{self, ResponseBody, MAX_HEADERS};
use crate::wire::{date, hmac, Status};

/// How long one attempt may take, connect to last byte (docs/api.md: 10 s).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// A response head larger than this is a failed attempt.
const MAX_RESPONSE_HEAD: usize = 16 * 1024;

/// Queues a delivery of `body` for webhook `hook`.
pub fn deliver(app: &mut App, io: &mut Io, hook: u64, event: &'static str, body: Arc<[u8]>) {
    let seq = app.webhooks.new_delivery(hook, event, body);
    // A bounded queue: beyond it the delivery fails at once, recorded,
    // rather than memory growing without limit.
    if app.webhooks.queue.len() >= app.cfg.max_deliveries.saturating_mul(100) {
        app.webhooks.in_flight += 1;
        finished(
            app,
            io,
            seq,
            Err("too many deliveries queued".into()),
            0,
            true,
        );
        return;
    }
    app.webhooks.queue.push_back(seq);
    pump(app, io);
}

/// Starts queued deliveries while fewer than `--max-deliveries` are on the
/// wire.
fn pump(app: &mut App, io: &mut Io) {
    while app.webhooks.in_flight < app.cfg.max_deliveries {
        let Some(seq) = app.webhooks.queue.pop_front() else {
            return;
        };
        start_attempt(app, io, seq);
    }
}

/// A retry's backoff passed.
pub fn retry(app: &mut App, io: &mut Io, seq: u64) {
    if app.webhooks.deliveries.contains_key(&seq) {
        app.webhooks.queue.push_back(seq);
        pump(app, io);
    }
}

/// The deliveries whose attempt is under way now: on the wire, or waiting
/// for the lookup of its host.
pub fn deliveries_in_flight(app: &App, io: &Io) -> Vec<u64> {
    io.iter()
        .filter_map(|c| match &c.state.kind {
            Kind::Client(cc) => Some(cc.delivery),
            _ => None,
        })
        .chain(app.lookups.webhook_deliveries())
        .collect()
}

/// Starts an attempt: checks that it may be sent, then connects, at once
/// for an address, after a lookup for a DNS name (`resolved`).
fn start_attempt(app: &mut App, io: &mut Io, seq: u64) {
    let Some(d) = app.webhooks.deliveries.get(&seq) else {
        return;
    };
    let Some(h) = app.webhooks.hooks.get(&d.webhook) else {
        app.webhooks.deliveries.remove(&seq);
        return;
    };
    app.webhooks.in_flight += 1;
    // The SSRF rule again at send time, whatever was true at registration.
    if !h.url.is_allowed(&app.cfg.webhook_allow) {
        let error = Err("the destination is not allowed".into());
        return finished(app, io, seq, error, 0, true);
    }
    let deadline = io.now() + ATTEMPT_TIMEOUT;
    if let Some(addr) = h.url.socket_addr() {
        return connect_attempt(app, io, seq, addr, deadline);
    }
    let (host, port) = (h.url.host.clone(), h.url.port);
    let asker = lookup::For::Webhook { seq, deadline };
    if let Err(e) = lookup::ask(app, io, asker, &host, port, false) {
        let error = Err(format!("cannot look up {host}: {e}"));
        finished(app, io, seq, error, 0, false);
    }
}

/// The answer to the lookup of a webhook's host: connect to the first
/// address that is not this server's own (docs/api.md section 4), or record the
/// attempt as failed (a failed lookup is retried like a refused connect).
pub fn resolved(
    app: &mut App,
    io: &mut Io,
    seq: u64,
    deadline: Instant,
    host: &str,
    result: std::io::Result<Vec<SocketAddr>>,
) {
    let addrs = match result {
        Ok(addrs) => addrs,
        Err(e) => {
            let error = Err(format!("could not resolve {host}: {e}"));
            return finished(app, io, seq, error, 0, false);
        }
    };
    // An address that is not this server's own, if the name has one;
    // otherwise `connect_attempt` refuses the first (unless the target is
    // the built-in receiver).
    let own = |a: &SocketAddr| webhooks::is_own_address(io, *a);
    let Some(&addr) = addrs.iter().find(|a| !own(a)).or(addrs.first()) else {
        let error = Err(format!("{host} has no addresses"));
        return finished(app, io, seq, error, 0, false);
    };
    app.trace.lookup(
        host,
        addr.port(),
        format_args!("using {addr} for webhook delivery {seq}"),
    );
    connect_attempt(app, io, seq, addr, deadline);
}

/// Connects to `addr` and queues the request; the attempt must be done by
/// `deadline`. The delivery may have gone while its host was looked up
/// (its webhook deleted): then the attempt just ends.
fn connect_attempt(app: &mut App, io: &mut Io, seq: u64, addr: SocketAddr, deadline: Instant) {
    let Some(d) = app.webhooks.deliveries.get(&seq) else {
        return finished(
            app,
            io,
            seq,
            Err("the delivery was cancelled".into()),
            0,
            true,
        );
    };
    let Some(h) = app.webhooks.hooks.get(&d.webhook) else {
        return finished(app, io, seq, Err("the webhook was deleted".into()), 0, true);
    };
    let mut request = Vec::with_capacity(d.body.len() + 512);
    let host = if h.url.port == 80 {
        h.url.host.clone()
    } else {
        format!("{}:{}", h.url.host, h.url.port)
    };
    let webhook_id = format!("wh:{}", h.id);
    let signature = hmac::signature(&h.secret, &d.body);
    let length = d.body.len().to_string();
    http1::write_request_head(
        &mut request,
        "POST",
        &h.url.target,
        &host,
        &[
            ("User-Agent", b"pushwire"),
            ("Content-Type", b"application/json"),
            ("Content-Length", length.as_bytes()),
            ("X-Pushwire-Event", d.event.as_bytes()),
            ("X-Pushwire-Webhook", webhook_id.as_bytes()),
            ("X-Pushwire-Delivery", d.uid.as_bytes()),
            ("X-Pushwire-Signature", signature.as_bytes()),
            ("Connection", b"close"),
        ],
    );
    let head_len = request.len();
    request.extend_from_slice(&d.body);
    // Never this server itself (docs/api.md section 4), but for its built-in
    // receiver: a delivery there publishes nothing, so it cannot loop.
    if webhooks::is_own_address(io, addr) && !webhooks::is_receiver_path(&h.url.target) {
        let error = Err("the destination is this server itself".into());
        return finished(app, io, seq, error, 0, true);
    }
    // Non-blocking connect: returns at once; `connected` gets the outcome.
    let state = Session {
        kind: Kind::Client(ClientConn {
            delivery: seq,
            status: None,
            body: None,
            done: false,
        }),
        wait: Wait::None,
    };
    let id = match io.connect(addr, state, false) {
        Ok(id) => id,
        Err(e) => {
            let error = Err(format!("connect failed: {e}"));
            return finished(app, io, seq, error, 0, false);
        }
    };
    io.send(id, &request);
    app.trace.http_head(io.peer(id), "<-", &request[..head_len]);
    let left = deadline.saturating_duration_since(io.now());
    set_wait(io, id, Wait::Client, Some(left));
}

/// The connect finished: the request (already queued) leaves now.
pub fn connected(app: &mut App, io: &mut Io, id: ConnId, outcome: std::io::Result<()>) {
    match outcome {
        Ok(()) => app
            .trace
            .event(io.peer(id), "webhook connection established"),
        Err(e) => failed(app, io, id, format!("connect failed: {e}")),
    }
}

/// Reads the response: head, then the body by its framing.
pub fn response_step(app: &mut App, io: &mut Io, id: ConnId, buf: &mut [u8]) -> Step {
    let Some(Kind::Client(cc)) = io.state_mut(id).map(|s| &mut s.kind) else {
        return Step::NeedMore;
    };
    if cc.status.is_none() {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let (status, framing, n) =
            match http1::parse_response_head(buf, &mut headers, MAX_RESPONSE_HEAD) {
                Ok(Status::Partial) => return Step::NeedMore,
                Err(e) => {
                    failed(app, io, id, format!("bad response: {}", e.sentence()));
                    return Step::Consumed(buf.len());
                }
                Ok(Status::Complete((head, n))) => {
                    (head.status, http1::response_body(&head, false), n)
                }
            };
        if (100..200).contains(&status) {
            // An interim answer (100 Continue); the real one follows.
            return Step::Consumed(n);
        }
        app.trace.http_head(io.peer(id), "->", &buf[..n]);
        let body = match framing {
            Ok(ResponseBody::None) | Ok(ResponseBody::Length(0)) => None,
            Ok(ResponseBody::Length(len)) => Some(ClientBody::Length(len)),
            Ok(ResponseBody::Chunked) => Some(ClientBody::Chunked(ChunkedDecoder::new(usize::MAX))),
            Ok(ResponseBody::UntilClose) => Some(ClientBody::UntilClose),
            Err(e) => {
                failed(app, io, id, format!("bad response: {}", e.sentence()));
                return Step::Consumed(buf.len());
            }
        };
        let Some(Kind::Client(cc)) = io.state_mut(id).map(|s| &mut s.kind) else {
            return Step::Consumed(n);
        };
        cc.status = Some(status);
        cc.body = body;
        if cc.body.is_none() {
            done(app, io, id);
        }
        return Step::Consumed(n);
    }
    // The body is read and dropped: only its end matters.
    let done_at = match &mut cc.body {
        Some(ClientBody::Length(left)) => {
            let take = (*left).min(buf.len() as u64);
            *left -= take;
            (*left == 0).then_some(take as usize).ok_or(take as usize)
        }
        Some(ClientBody::Chunked(dec)) => {
            let mut sink = Vec::new();
            match dec.decode(buf, &mut sink) {
                Ok(Status::Complete(n)) => Ok(n),
                Ok(Status::Partial) => Err(buf.len()),
                Err(e) => {
                    failed(app, io, id, format!("bad chunked response body: {e}"));
                    return Step::Consumed(buf.len());
                }
            }
        }
        Some(ClientBody::UntilClose) | None => Err(buf.len()),
    };
    match done_at {
        Ok(n) => {
            done(app, io, id);
            Step::Consumed(n)
        }
        Err(n) => Step::Consumed(n),
    }
}

/// The receiver closed its side.
pub fn eof(app: &mut App, io: &mut Io, id: ConnId) {
    match io.state(id).map(|s| &s.kind) {
        Some(Kind::Client(cc))
            if cc.status.is_some() && matches!(cc.body, Some(ClientBody::UntilClose)) =>
        {
            done(app, io, id)
        }
        Some(Kind::Client(_)) => failed(
            app,
            io,
            id,
            "the connection closed before a complete response".into(),
        ),
        _ => {}
    }
}

/// The attempt's 10 s passed.
pub fn timed_out(app: &mut App, io: &mut Io, id: ConnId) {
    failed(app, io, id, "no complete response within 10 s".into());
}

/// A complete response: 2xx is success, anything else a failed attempt
/// that is retried.
fn done(app: &mut App, io: &mut Io, id: ConnId) {
    let Some((seq, status)) = take(io, id) else {
        return;
    };
    let status = status.unwrap_or(0);
    let outcome = if (200..300).contains(&status) {
        Ok(status)
    } else {
        Err(format!("HTTP {status}"))
    };
    finished(app, io, seq, outcome, status, false);
}

fn failed(app: &mut App, io: &mut Io, id: ConnId, error: String) {
    app.trace
        .event(io.peer(id), format_args!("webhook attempt failed: {error}"));
    let Some((seq, _)) = take(io, id) else {
        return;
    };
    finished(app, io, seq, Err(error), 0, false);
}

/// Marks the attempt's outcome as recorded and closes its connection (so
/// the close itself records no second one). Any bytes the receiver sent
/// past its response die with the connection: nothing reaches another.
fn take(io: &mut Io, id: ConnId) -> Option<(u64, Option<u16>)> {
    let Some(Kind::Client(cc)) = io.state_mut(id).map(|s| &mut s.kind) else {
        return None;
    };
    if cc.done {
        return None;
    }
    cc.done = true;
    let outcome = (cc.delivery, cc.status);
    io.close_now(id, CloseReason::Normal);
    Some(outcome)
}

/// A client connection closed without an outcome (a socket error).
pub fn closed(app: &mut App, io: &mut Io, seq: u64) {
    finished(app, io, seq, Err("the connection failed".into()), 0, false);
}

/// Records the attempt (`status` 0: no answer came), then retries after the
/// backoff or ends the delivery. `no_retry`: this attempt is final whatever
/// its outcome.
fn finished(
    app: &mut App,
    io: &mut Io,
    seq: u64,
    outcome: Result<u16, String>,
    status: u16,
    no_retry: bool,
) {
    app.webhooks.in_flight = app.webhooks.in_flight.saturating_sub(1);
    let Some(d) = app.webhooks.deliveries.get_mut(&seq) else {
        return pump(app, io);
    };
    let last_try = d.attempt as usize > BACKOFF_S.len();
    let is_final = no_retry || outcome.is_ok() || last_try;
    let (hook, attempt) = (d.webhook, d.attempt);
    // `/metrics`: pushwire_webhook_deliveries_total{outcome} and
    // pushwire_webhook_retries_total.
    let counts = &mut app.stats.webhooks;
    match (is_final, outcome.is_ok()) {
        (true, true) => counts.delivered += 1,
        (true, false) => counts.failed += 1,
        (false, _) => counts.retried += 1,
    }
    let record = Attempt {
        delivery: d.uid.clone(),
        event: d.event,
        attempt,
        status: (status != 0).then_some(status),
        // docs/api.md: `error` is a sentence only when no answer came; an
        // answer's status says what happened.
        error: if status != 0 { None } else { outcome.err() },
        at_ms: date::unix_millis_now(),
        is_final,
    };
    if is_final {
        app.webhooks.deliveries.remove(&seq);
        // docs/api.md: a job's callback is listed until its delivery succeeded
        // or finally failed; its attempts stay readable afterwards.
        let one_shot = app.webhooks.hooks.get(&hook).is_some_and(|h| h.one_shot);
        if one_shot {
            app.webhooks.record(hook, record);
            app.webhooks.retire(hook);
            return pump(app, io);
        }
    } else {
        d.attempt += 1;
        let wait = Duration::from_secs(BACKOFF_S[(attempt - 1) as usize]);
        io.push_timer(io.now() + wait, Timer::WebhookRetry(seq));
    }
    app.webhooks.record(hook, record);
    pump(app, io);
}
