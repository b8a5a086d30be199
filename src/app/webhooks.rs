//! Webhooks on the loop (docs/api.md section 4): the registration endpoints, the
//! built-in receiver, and which events go to which webhook. The deliveries
//! themselves are sent by `webhook_client.rs`.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::Arc;

use super::http::{self, Ctx};
use super::{webhook_client, App, Io};
use crate::net::ConnId;
use crate::webhooks::{parse_events, parse_webhook_id, EventFilter, Received, RECEIVER_BODY_KEEP};
use crate::wire::http1;
use crate::wire::{date, hmac, json, query, url};

/// May this request make the server call out? docs/api.md section 4: a request
/// whose `Origin` is neither the server's own nor listed in
/// `--allow-origin` may not register or delete a webhook (nor a job's
/// callback), with or without a list: a web page open in a browser must
/// not turn the server into its client (a form POST needs no preflight).
/// A request without `Origin` is not from a browser page.
pub fn origin_may_call_out(app: &App, head: &http1::Head<'_, '_>) -> bool {
    match head.header("origin") {
        None => true,
        Some(origin) => http::origin_is_own_or_listed(app, origin, head.header("host")),
    }
}

/// May this request make a webhook (`POST /webhooks`, or a job's
/// `callback=`)? `Err` is the status and sentence to answer: 403 for a page
/// of another origin (`origin_may_call_out`), 503 past `--max-webhooks`.
pub fn may_register(app: &App, head: &http1::Head<'_, '_>) -> Result<(), (u16, &'static str)> {
    if !origin_may_call_out(app, head) {
        return Err((
            403,
            "a web page of another origin may not make this server call out (webhooks, callbacks)",
        ));
    }
    if app.webhooks.hooks.len() >= app.cfg.max_webhooks {
        return Err((503, "too many webhooks exist (--max-webhooks)"));
    }
    Ok(())
}

/// `POST /webhooks` with `url=...&events=...` (form-encoded).
pub fn register(
    app: &mut App,
    io: &mut Io,
    id: ConnId,
    ctx: Ctx<'_>,
    head: &http1::Head<'_, '_>,
    body: &[u8],
) {
    if let Err((status, sentence)) = may_register(app, head) {
        return http::respond_error(app, io, id, ctx, status, sentence);
    }
    let Ok(form) = std::str::from_utf8(body) else {
        return http::respond_error(app, io, id, ctx, 400, "the form body must be UTF-8");
    };
    let (url_text, events) = match (query::get(form, "url"), query::get(form, "events")) {
        (Ok(u), Ok(e)) => (u, e),
        _ => {
            return http::respond_error(
                app,
                io,
                id,
                ctx,
                400,
                "the form body is not valid percent-encoding",
            )
        }
    };
    let Some(url_text) = url_text else {
        return http::respond_error(app, io, id, ctx, 400, "url is required");
    };
    let events = match parse_events(events.as_deref().unwrap_or("")) {
        Ok(e) => e,
        Err(sentence) => return http::respond_error(app, io, id, ctx, 400, &sentence),
    };
    let url = match checked_url(app, io, &url_text) {
        Ok(u) => u,
        Err(sentence) => return http::respond_error(app, io, id, ctx, 400, &sentence),
    };
    let hook = app.webhooks.register(&url_text, url, events, false);
    let secret = &app.webhooks.hooks[&hook].secret;
    let body = format!("{{\"id\":\"wh:{hook}\",\"secret\":\"{secret}\"}}");
    http::respond_json(app, io, id, ctx, 201, &body);
}

/// Parses a webhook URL and applies the SSRF rules: loopback or
/// `--webhook-allow` only, and never this server itself (a webhook on one
/// of its own channels would publish to itself in a loop), except its
/// built-in receiver.
pub fn checked_url(app: &App, io: &Io, text: &str) -> Result<url::Url, String> {
    let u = url::parse(text).map_err(|e| e.to_string())?;
    if !u.is_allowed(&app.cfg.webhook_allow) {
        return Err(format!(
            "{} is not an allowed webhook destination: only loopback and --webhook-allow hosts",
            u.host
        ));
    }
    if u.socket_addr().is_some_and(|a| is_own_address(io, a)) && !is_receiver_path(&u.target) {
        return Err(format!(
            "{} is this server itself: a webhook may not call its own server",
            u.host
        ));
    }
    Ok(u)
}

/// The built-in receiver is the one target on this server a webhook may
/// name: a sink that publishes nothing and fires no event, which the demo
/// page uses as both ends of a delivery.
pub fn is_receiver_path(target: &str) -> bool {
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    path == "/webhook-receiver"
}

/// Is `addr` this server's own listening socket? docs/api.md section 4: a
/// webhook must not name the server itself (a delivery that publishes
/// would call the server again, and again). Own means its port, on a
/// loopback address or the address it is bound to; bound to every address
/// (`0.0.0.0`, `::`), its port on any address of this host, which the
/// kernel tells without sending anything (`is_local_ip`). `0.0.0.0` and
/// `::` themselves reach this host when connected to, so they count too.
///
/// Used at registration for literal URLs, and before each attempt for the
/// address connected to (a DNS name's answer included).
pub fn is_own_address(io: &Io, addr: SocketAddr) -> bool {
    let own = io.local_addr();
    if addr.port() != own.port() {
        return false;
    }
    let ip = canonical(addr.ip());
    let bound = canonical(own.ip());
    ip == bound
        || ip.is_loopback()
        || ip.is_unspecified()
        || (bound.is_unspecified() && is_local_ip(ip))
}

/// An IPv4-mapped IPv6 address (`::ffff:127.0.0.1`) as the IPv4 address it
/// reaches.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Is `ip` an address of this host? A UDP socket "connected" to it (which
/// sends nothing: it only picks a route) gets `ip` itself as its source
/// exactly when the route is the host's own (the `local` routing table).
/// Any error means "not known to be ours".
fn is_local_ip(ip: IpAddr) -> bool {
    let any: SocketAddr = match ip {
        IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        IpAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let Ok(sock) = UdpSocket::bind(any) else {
        return false;
    };
    sock.connect((ip, 9)).is_ok() && sock.local_addr().is_ok_and(|l| canonical(l.ip()) == ip)
}

/// `POST /submit?callback=URL`: a one-shot webhook for one job.
pub fn register_for_job(app: &mut App, url_text: &str, url: url::Url, job: u64) -> (u64, String) {
    let filter = EventFilter::JobDone { only: Some(job) };
    let id = app.webhooks.register(url_text, url, vec![filter], true);
    (id, app.webhooks.hooks[&id].secret.clone())
}

/// `GET /webhooks`: the active webhooks, without their secrets.
pub fn list(app: &mut App, io: &mut Io, id: ConnId, ctx: Ctx<'_>) {
    let mut out = String::from("{\"webhooks\":[");
    for (i, h) in app.webhooks.hooks.values().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{{\"id\":\"wh:{}\",\"url\":", h.id);
        json::push_str(&mut out, &h.url_text);
        out.push_str(",\"events\":[");
        for (j, e) in h.events.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            json::push_str(&mut out, &e.name());
        }
        out.push_str("]}");
    }
    out.push_str("]}");
    http::respond_json(app, io, id, ctx, 200, &out);
}

/// `DELETE /webhooks/{id}` → 204; pending retries are cancelled.
pub fn delete(
    app: &mut App,
    io: &mut Io,
    id: ConnId,
    ctx: Ctx<'_>,
    head: &http1::Head<'_, '_>,
    hook: &str,
) {
    if !origin_may_call_out(app, head) {
        let sentence =
            "a web page of another origin may not make this server call out (webhooks, callbacks)";
        return http::respond_error(app, io, id, ctx, 403, sentence);
    }
    let Some(hook) = parse_webhook_id(hook) else {
        return http::respond_error(
            app,
            io,
            id,
            ctx,
            400,
            "a webhook id is wh: followed by a number",
        );
    };
    let in_flight = webhook_client::deliveries_in_flight(app, io);
    if app.webhooks.delete(hook, &in_flight) {
        http::respond_full(app, io, id, ctx, 204, None, &[], b"");
    } else {
        http::respond_error(app, io, id, ctx, 404, "no such webhook");
    }
}

/// `GET /webhooks/{id}/deliveries`: every attempt, oldest first.
pub fn deliveries(app: &mut App, io: &mut Io, id: ConnId, ctx: Ctx<'_>, hook: &str) {
    let Some(hook) = parse_webhook_id(hook) else {
        return http::respond_error(
            app,
            io,
            id,
            ctx,
            400,
            "a webhook id is wh: followed by a number",
        );
    };
    let Some(records) = app.webhooks.records_of(hook) else {
        return http::respond_error(app, io, id, ctx, 404, "no such webhook");
    };
    let mut out = String::from("{\"deliveries\":[");
    for (i, a) in records.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(
            out,
            "{{\"delivery\":\"{}\",\"event\":\"{}\",\"attempt\":{},\"status\":{},\"error\":",
            a.delivery,
            a.event,
            a.attempt,
            a.status.map_or("null".to_string(), |s| s.to_string())
        );
        match &a.error {
            Some(e) => json::push_str(&mut out, e),
            None => out.push_str("null"),
        }
        let _ = write!(out, ",\"at\":\"{}\"", date::rfc3339(a.at_ms));
        if a.is_final {
            out.push_str(",\"final\":true");
        }
        out.push('}');
    }
    out.push_str("]}");
    http::respond_json(app, io, id, ctx, 200, &out);
}

// ----- the built-in receiver -------------------------------------------------

/// `POST /webhook-receiver`: record, verifying the signature when the named
/// webhook is ours.
pub fn receiver_post(
    app: &mut App,
    io: &mut Io,
    id: ConnId,
    ctx: Ctx<'_>,
    head: &http1::Head<'_, '_>,
    body: &[u8],
) {
    let verified = head
        .header("x-pushwire-webhook")
        .and_then(parse_webhook_id)
        .and_then(|hook| app.webhooks.hooks.get(&hook))
        .map(|h| {
            head.header("x-pushwire-signature")
                .is_some_and(|sig| hmac::verify(&h.secret, body, sig))
        });
    let kept = cut_at_char(body, RECEIVER_BODY_KEEP);
    app.webhooks.remember_received(Received {
        at_ms: date::unix_millis_now(),
        event: head.header("x-pushwire-event").map(str::to_string),
        delivery: head.header("x-pushwire-delivery").map(str::to_string),
        verified,
        body: String::from_utf8_lossy(kept).into_owned(),
        body_truncated: kept.len() < body.len(),
    });
    app.receiver_answer = None;
    http::respond_json(app, io, id, ctx, 200, "{\"ok\":true}");
}

/// `GET /webhook-receiver`: the last 100, oldest first. The answer is built
/// once per change and the same bytes are shared by every request (a
/// hundred 64 KiB bodies escaped can be megabytes: queued once, not once
/// per client that asks and then does not read).
pub fn receiver_get(app: &mut App, io: &mut Io, id: ConnId, ctx: Ctx<'_>) {
    let body = match &app.receiver_answer {
        Some(b) => b.clone(),
        None => {
            let b: Arc<[u8]> = receiver_json(app).into_bytes().into();
            app.receiver_answer = Some(b.clone());
            b
        }
    };
    http::respond_shared(app, io, id, ctx, 200, http::JSON, &body);
}

fn receiver_json(app: &App) -> String {
    let mut out = String::from("{\"received\":[");
    for (i, r) in app.webhooks.received.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{{\"at\":\"{}\",\"event\":", date::rfc3339(r.at_ms));
        opt_str(&mut out, r.event.as_deref());
        out.push_str(",\"delivery\":");
        opt_str(&mut out, r.delivery.as_deref());
        let verified = r
            .verified
            .map_or("null", |v| if v { "true" } else { "false" });
        let _ = write!(out, ",\"verified\":{verified},\"body\":");
        json::push_str(&mut out, &r.body);
        if r.body_truncated {
            out.push_str(",\"body_truncated\":true");
        }
        out.push('}');
    }
    out.push_str("]}");
    out
}

/// The longest prefix of `body` of at most `max` bytes that does not end
/// inside a UTF-8 character (so a cut text body stays text).
fn cut_at_char(body: &[u8], max: usize) -> &[u8] {
    if body.len() <= max {
        return body;
    }
    let mut end = max;
    // Back up over continuation bytes (10xxxxxx) to a character start.
    while end > 0 && end > max.saturating_sub(3) && body[end] & 0xC0 == 0x80 {
        end -= 1;
    }
    &body[..end]
}

// ----- events ----------------------------------------------------------------

/// A job finished: deliver `job.done` to every webhook that wants it.
pub fn job_done(app: &mut App, io: &mut Io, job: u64) {
    if app.webhooks.hooks.is_empty() {
        return;
    }
    let hooks = app.webhooks.matching(|f| match f {
        EventFilter::JobDone { only } => only.is_none_or(|j| j == job),
        _ => false,
    });
    if hooks.is_empty() {
        return;
    }
    let body: Arc<[u8]> = format!("{{\"event\":\"job.done\",\"jobId\":\"job:{job}\"}}")
        .into_bytes()
        .into();
    for h in hooks {
        webhook_client::deliver(app, io, h, "job.done", body.clone());
    }
}

/// A message was published: deliver it to `channel.<name>` webhooks.
pub fn message(app: &mut App, io: &mut Io, channel: &str, id: u64, data: &str) {
    if app.webhooks.hooks.is_empty() {
        return;
    }
    let hooks = app
        .webhooks
        .matching(|f| matches!(f, EventFilter::Channel(c) if c == channel));
    if hooks.is_empty() {
        return;
    }
    let mut body = String::from("{\"event\":\"message\",\"channel\":");
    json::push_str(&mut body, channel);
    let _ = write!(body, ",\"id\":{id},\"data\":");
    json::push_str(&mut body, data);
    body.push('}');
    let body: Arc<[u8]> = body.into_bytes().into();
    for h in hooks {
        webhook_client::deliver(app, io, h, "message", body.clone());
    }
}

fn opt_str(out: &mut String, s: Option<&str>) {
    match s {
        Some(s) => json::push_str(out, s),
        None => out.push_str("null"),
    }
}
