//! `GET /metrics` (docs/api.md section 5): the counters of `/stats`, and a few
//! more, in the Prometheus text exposition format 0.0.4 (`wire::prometheus`
//! writes the format; this file decides what is in it).
//!
//! | metric                                   | type      | what                                            |
//! |------------------------------------------|-----------|-------------------------------------------------|
//! | `pushwire_connections_open{kind}`        | gauge     | open connections by what each is now            |
//! | `pushwire_connections_accepted_total`    | counter   | connections accepted                            |
//! | `pushwire_connections_closed_total{reason}` | counter | closes by reason (`net::CloseReason`)          |
//! | `pushwire_requests_total`                | counter   | HTTP requests answered                          |
//! | `pushwire_messages_published_total`      | counter   | messages published (given an id)                |
//! | `pushwire_messages_delivered_total`      | counter   | messages queued to a subscriber                 |
//! | `pushwire_received_bytes_total`          | counter   | bytes read from sockets                         |
//! | `pushwire_sent_bytes_total`              | counter   | bytes written to sockets                        |
//! | `pushwire_channels`                      | gauge     | channels that exist                             |
//! | `pushwire_history_bytes`                 | gauge     | message data kept by every channel's history    |
//! | `pushwire_jobs`                          | gauge     | jobs kept                                       |
//! | `pushwire_webhook_deliveries_total{outcome}` | counter | deliveries ended: `delivered` or `failed`     |
//! | `pushwire_webhook_retries_total`         | counter   | failed attempts another attempt follows         |
//! | `pushwire_webhook_deliveries_in_flight`  | gauge     | attempts on the wire (or resolving their host)  |
//! | `pushwire_webhook_deliveries_queued`     | gauge     | deliveries waiting for a free slot              |
//! | `pushwire_backplane_up`                  | gauge     | 1 when channels can be used (memory, or Redis up) |
//! | `pushwire_backplane_state{state}`        | gauge     | 1 for the backplane's current state, 0 for the others |
//! | `pushwire_backplane_failures_total`      | counter   | times the Redis link failed                     |
//! | `pushwire_backplane_pending_commands`    | gauge     | Redis commands waiting for their reply          |
//! | `pushwire_name_lookups_in_flight`        | gauge     | DNS lookups waiting for an answer               |
//! | `pushwire_delivery_seconds`              | histogram | publish to socket, per subscriber               |
//!
//! `pushwire_delivery_seconds` measures, for each message and each
//! subscriber (WebSocket, event stream, released long poll), from the
//! moment the message was accepted to the moment the write that handed its
//! last byte to that subscriber's socket returned. "Accepted" is the loop's
//! clock at the wake-up that read the publish (an HTTP or WebSocket
//! publish, a handle's command); with `--redis` it is that moment for a
//! message published on this node (so the Redis round trip is included),
//! and the wake-up that read it from Redis for a message published on
//! another node (its time there is not known here). A message a
//! subscriber never gets written (it disconnected, it was cut as slow) is
//! not observed, and neither is one that reaches a subscriber through a
//! history replay still under way (it is history by then, not news). The cost: the accept instant rides on the queued chunk
//! (`net::Io::stamp`; no allocation), one clock read per flush that
//! completes a stamped chunk, and one bucket increment.

use super::stats::{self, Open};
use super::{redis, App, Io};
use crate::wire::prometheus::{family, Type};

/// The `/metrics` body.
pub fn text(app: &App, io: &Io) -> String {
    let mut out = String::with_capacity(4096);
    let s = &app.stats;
    let net = io.stats;

    let Open {
        http,
        longpoll,
        sse,
        ws,
        webhook,
    } = stats::open(io);
    family(
        &mut out,
        "pushwire_connections_open",
        Type::Gauge,
        "Open connections by what each is now (a parked long poll is longpoll; webhook: \
         deliveries on the wire; the backplane's own are not counted).",
    )
    .sample(&[("kind", "http")], http)
    .sample(&[("kind", "longpoll")], longpoll)
    .sample(&[("kind", "sse")], sse)
    .sample(&[("kind", "ws")], ws)
    .sample(&[("kind", "webhook")], webhook);
    family(
        &mut out,
        "pushwire_connections_accepted_total",
        Type::Counter,
        "Connections accepted.",
    )
    .sample(&[], net.accepted);
    let c = &s.closed;
    family(
        &mut out,
        "pushwire_connections_closed_total",
        Type::Counter,
        "Connections closed, by reason: timeout (idle, header, ping), limit (--max-conns), \
         protocol (framing or protocol errors), slow (--send-buffer-bytes), error (socket \
         errors), normal (everything else).",
    )
    .sample(&[("reason", "normal")], c.normal)
    .sample(&[("reason", "timeout")], c.timeout)
    .sample(&[("reason", "limit")], c.limit)
    .sample(&[("reason", "protocol")], c.protocol)
    .sample(&[("reason", "slow")], c.slow)
    .sample(&[("reason", "error")], c.error);
    family(
        &mut out,
        "pushwire_requests_total",
        Type::Counter,
        "HTTP requests answered.",
    )
    .sample(&[], s.requests);
    family(
        &mut out,
        "pushwire_messages_published_total",
        Type::Counter,
        "Messages published on this node's channels (given an id).",
    )
    .sample(&[], app.hub.published);
    family(
        &mut out,
        "pushwire_messages_delivered_total",
        Type::Counter,
        "Messages queued to a subscriber (one per message per subscriber).",
    )
    .sample(&[], s.delivered);
    family(
        &mut out,
        "pushwire_received_bytes_total",
        Type::Counter,
        "Bytes read from sockets.",
    )
    .sample(&[], net.bytes_in);
    family(
        &mut out,
        "pushwire_sent_bytes_total",
        Type::Counter,
        "Bytes written to sockets.",
    )
    .sample(&[], net.bytes_out);
    family(
        &mut out,
        "pushwire_channels",
        Type::Gauge,
        "Channels that exist.",
    )
    .sample(&[], app.hub.len());
    family(
        &mut out,
        "pushwire_history_bytes",
        Type::Gauge,
        "Message data kept by the history of every channel together.",
    )
    .sample(&[], app.hub.history_bytes());
    family(&mut out, "pushwire_jobs", Type::Gauge, "Jobs kept.").sample(&[], app.jobs.len());

    let w = &s.webhooks;
    family(
        &mut out,
        "pushwire_webhook_deliveries_total",
        Type::Counter,
        "Webhook deliveries that ended: delivered (a 2xx answer) or failed (the last attempt \
         failed).",
    )
    .sample(&[("outcome", "delivered")], w.delivered)
    .sample(&[("outcome", "failed")], w.failed);
    family(
        &mut out,
        "pushwire_webhook_retries_total",
        Type::Counter,
        "Failed webhook attempts that another attempt follows.",
    )
    .sample(&[], w.retried);
    family(
        &mut out,
        "pushwire_webhook_deliveries_in_flight",
        Type::Gauge,
        "Webhook attempts under way (on the wire, or resolving their host).",
    )
    .sample(&[], app.webhooks.in_flight);
    family(
        &mut out,
        "pushwire_webhook_deliveries_queued",
        Type::Gauge,
        "Webhook deliveries waiting for one of --max-deliveries slots.",
    )
    .sample(&[], app.webhooks.queue.len());

    let state = redis::state(app);
    family(
        &mut out,
        "pushwire_backplane_up",
        Type::Gauge,
        "1 when channels can be used: in memory, or Redis connected and logged in.",
    )
    .sample(&[], u8::from(state.is_up()));
    let mut f = family(
        &mut out,
        "pushwire_backplane_state",
        Type::Gauge,
        "The backplane's state: 1 for the current one, 0 for the others.",
    );
    for each in redis::State::ALL {
        f.sample(&[("state", each.name())], u8::from(each == state));
    }
    let (failures, pending) = app
        .redis
        .as_ref()
        .map_or((0, 0), |r| (r.failures, r.pending.len()));
    family(
        &mut out,
        "pushwire_backplane_failures_total",
        Type::Counter,
        "Times the link to Redis failed (connect, login, lookup, a reply not in time).",
    )
    .sample(&[], failures);
    family(
        &mut out,
        "pushwire_backplane_pending_commands",
        Type::Gauge,
        "Redis commands sent and not answered yet.",
    )
    .sample(&[], pending);
    family(
        &mut out,
        "pushwire_name_lookups_in_flight",
        Type::Gauge,
        "DNS lookups (Redis and webhook hosts) waiting for an answer.",
    )
    .sample(&[], app.lookups.len());

    family(
        &mut out,
        "pushwire_delivery_seconds",
        Type::Histogram,
        "From a message's acceptance (its publish was read) to the write that handed its \
         last byte to a subscriber's socket, per subscriber.",
    )
    .histogram(&[], &s.delivery);
    out
}
