//! Webhooks on the loop (API.md section 4): the registration endpoints, the
//! built-in receiver, and the sender, an HTTP/1.1 client whose connections
//! are entries of the same slab as every server connection.
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
//! Nothing here blocks: the connect is non-blocking, the host is an IP
//! literal or localhost (no DNS), and the 10 s limit is a loop deadline.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use super::http::Ctx;
use crate::net::conn::{ClientBody, ClientConn, Kind, Wait};
use crate::net::timer::TimerKey;
use crate::net::{CloseReason, Server, Step};
use crate::webhooks::{parse_events, parse_webhook_id, Attempt, EventFilter, Received, BACKOFF_S};
use crate::wire::chunked::ChunkedDecoder;
use crate::wire::http1::{self, ResponseBody, MAX_HEADERS};
use crate::wire::{date, hmac, json, query, url, Status};

/// How long one attempt may take, connect to last byte (API.md: 10 s).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// A response head larger than this is a failed attempt.
const MAX_RESPONSE_HEAD: usize = 16 * 1024;

impl Server {
    // ----- registration -----------------------------------------------------

    /// `POST /webhooks` with `url=...&events=...` (form-encoded).
    pub(crate) fn webhook_register(&mut self, key: usize, ctx: Ctx<'_>, body: &[u8]) {
        let Ok(form) = std::str::from_utf8(body) else {
            return self.respond_error(key, ctx, 400, "the form body must be UTF-8");
        };
        let (url_text, events) = match (query::get(form, "url"), query::get(form, "events")) {
            (Ok(u), Ok(e)) => (u, e),
            _ => {
                return self.respond_error(
                    key,
                    ctx,
                    400,
                    "the form body is not valid percent-encoding",
                )
            }
        };
        let Some(url_text) = url_text else {
            return self.respond_error(key, ctx, 400, "url is required");
        };
        let events = match parse_events(events.as_deref().unwrap_or("")) {
            Ok(e) => e,
            Err(sentence) => return self.respond_error(key, ctx, 400, &sentence),
        };
        let url = match self.checked_url(&url_text) {
            Ok(u) => u,
            Err(sentence) => return self.respond_error(key, ctx, 400, &sentence),
        };
        let id = self.webhooks.register(&url_text, url, events, false);
        let secret = &self.webhooks.hooks[&id].secret;
        let body = format!("{{\"id\":\"wh:{id}\",\"secret\":\"{secret}\"}}");
        self.respond_json(key, ctx, 201, &body);
    }

    /// Parses a webhook URL and applies the SSRF rule (loopback or
    /// `--webhook-allow`).
    pub(crate) fn checked_url(&self, text: &str) -> Result<url::Url, String> {
        let u = url::parse(text).map_err(|e| e.to_string())?;
        if !u.is_allowed(&self.cfg.webhook_allow) {
            return Err(format!(
                "{} is not an allowed webhook destination: only loopback and --webhook-allow hosts",
                u.host
            ));
        }
        Ok(u)
    }

    /// `POST /submit?callback=URL`: a one-shot webhook for one job.
    pub(crate) fn webhook_for_job(
        &mut self,
        url_text: &str,
        url: url::Url,
        job: u64,
    ) -> (u64, String) {
        let filter = EventFilter::JobDone { only: Some(job) };
        let id = self.webhooks.register(url_text, url, vec![filter], true);
        (id, self.webhooks.hooks[&id].secret.clone())
    }

    /// `GET /webhooks`: the active webhooks, without their secrets.
    pub(crate) fn webhook_list(&mut self, key: usize, ctx: Ctx<'_>) {
        let mut out = String::from("{\"webhooks\":[");
        for (i, h) in self
            .webhooks
            .hooks
            .values()
            .filter(|h| h.active)
            .enumerate()
        {
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
        self.respond_json(key, ctx, 200, &out);
    }

    /// `DELETE /webhooks/{id}` → 204; pending retries are cancelled.
    pub(crate) fn webhook_delete(&mut self, key: usize, ctx: Ctx<'_>, id: &str) {
        let Some(id) = parse_webhook_id(id) else {
            return self.respond_error(key, ctx, 400, "a webhook id is wh: followed by a number");
        };
        let in_flight = self.deliveries_in_flight();
        if self.webhooks.delete(id, &in_flight) {
            self.respond_full(key, ctx, 204, None, &[], b"");
        } else {
            self.respond_error(key, ctx, 404, "no such webhook");
        }
    }

    fn deliveries_in_flight(&self) -> Vec<u64> {
        self.conns
            .iter()
            .filter_map(|(_, c)| match &c.kind {
                Kind::Client(cc) => Some(cc.delivery),
                _ => None,
            })
            .collect()
    }

    /// `GET /webhooks/{id}/deliveries`: every attempt, oldest first.
    pub(crate) fn webhook_deliveries(&mut self, key: usize, ctx: Ctx<'_>, id: &str) {
        let Some(id) = parse_webhook_id(id) else {
            return self.respond_error(key, ctx, 400, "a webhook id is wh: followed by a number");
        };
        let Some(h) = self.webhooks.hooks.get(&id) else {
            return self.respond_error(key, ctx, 404, "no such webhook");
        };
        let mut out = String::from("{\"deliveries\":[");
        for (i, a) in h.records.iter().enumerate() {
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
        self.respond_json(key, ctx, 200, &out);
    }

    // ----- the built-in receiver --------------------------------------------

    /// `POST /webhook-receiver`: record, verifying the signature when the
    /// named webhook is ours.
    pub(crate) fn receiver_post(
        &mut self,
        key: usize,
        ctx: Ctx<'_>,
        head: &http1::Head<'_, '_>,
        body: &[u8],
    ) {
        let verified = head
            .header("x-pushwire-webhook")
            .and_then(parse_webhook_id)
            .and_then(|id| self.webhooks.hooks.get(&id))
            .map(|h| {
                head.header("x-pushwire-signature")
                    .is_some_and(|sig| hmac::verify(&h.secret, body, sig))
            });
        self.webhooks.remember_received(Received {
            at_ms: date::unix_millis_now(),
            event: head.header("x-pushwire-event").map(str::to_string),
            delivery: head.header("x-pushwire-delivery").map(str::to_string),
            verified,
            body: String::from_utf8_lossy(body).into_owned(),
        });
        self.respond_json(key, ctx, 200, "{\"ok\":true}");
    }

    /// `GET /webhook-receiver`: the last 100, oldest first.
    pub(crate) fn receiver_get(&mut self, key: usize, ctx: Ctx<'_>) {
        let mut out = String::from("{\"received\":[");
        for (i, r) in self.webhooks.received.iter().enumerate() {
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
            out.push('}');
        }
        out.push_str("]}");
        self.respond_json(key, ctx, 200, &out);
    }

    // ----- events -----------------------------------------------------------

    /// A job finished: deliver `job.done` to every webhook that wants it.
    pub(crate) fn webhooks_job_done(&mut self, job: u64) {
        if self.webhooks.hooks.is_empty() {
            return;
        }
        let hooks = self.webhooks.matching(|f| match f {
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
            self.webhook_deliver(h, "job.done", body.clone());
        }
    }

    /// A message was published: deliver it to `channel.<name>` webhooks.
    pub(crate) fn webhooks_message(&mut self, channel: &str, id: u64, data: &str) {
        if self.webhooks.hooks.is_empty() {
            return;
        }
        let hooks = self
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
            self.webhook_deliver(h, "message", body.clone());
        }
    }

    fn webhook_deliver(&mut self, hook: u64, event: &'static str, body: Arc<[u8]>) {
        let seq = self.webhooks.new_delivery(hook, event, body);
        // A bounded queue: beyond it the delivery fails at once, recorded,
        // rather than memory growing without limit.
        if self.webhooks.queue.len() >= self.cfg.max_deliveries.saturating_mul(100) {
            self.attempt_finished(seq, Err("too many deliveries queued".into()), true);
            return;
        }
        self.webhooks.queue.push_back(seq);
        self.pump_deliveries();
    }

    /// Starts queued deliveries while fewer than `--max-deliveries` are on
    /// the wire.
    fn pump_deliveries(&mut self) {
        while self.webhooks.in_flight < self.cfg.max_deliveries {
            let Some(seq) = self.webhooks.queue.pop_front() else {
                return;
            };
            self.start_attempt(seq);
        }
    }

    /// A retry's backoff passed.
    pub(crate) fn webhook_retry(&mut self, seq: u64) {
        if self.webhooks.deliveries.contains_key(&seq) {
            self.webhooks.queue.push_back(seq);
            self.pump_deliveries();
        }
    }

    // ----- the client -------------------------------------------------------

    fn start_attempt(&mut self, seq: u64) {
        let Some(d) = self.webhooks.deliveries.get(&seq) else {
            return;
        };
        let Some(h) = self.webhooks.hooks.get(&d.webhook) else {
            self.webhooks.deliveries.remove(&seq);
            return;
        };
        // The SSRF rule again at send time, whatever was true at
        // registration.
        if !h.url.is_allowed(&self.cfg.webhook_allow) {
            self.webhooks.in_flight += 1;
            return self.attempt_finished(seq, Err("the destination is not allowed".into()), true);
        }
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
        request.extend_from_slice(&d.body);
        let addr = h.url.socket_addr();
        self.webhooks.in_flight += 1;
        // Non-blocking connect: returns at once; the outcome arrives as a
        // writable event (or an error on it).
        let client = Kind::Client(ClientConn {
            delivery: seq,
            connected: false,
            status: None,
            body: None,
        });
        let key = match self.connect_out(addr, client) {
            Ok((key, _)) => key,
            Err(e) => {
                return self.attempt_finished(seq, Err(format!("connect failed: {e}")), false)
            }
        };
        self.conns[key].out.push_bytes(&request);
        if self.cfg.trace {
            crate::trace::http_head(
                self,
                key,
                "<-",
                &request[..request.len() - self.webhooks.deliveries[&seq].body.len()],
            );
        }
        self.set_wait(key, Wait::Client, Some(ATTEMPT_TIMEOUT));
    }

    /// A writable event on a connecting client: did the connect succeed?
    pub(crate) fn client_writable(&mut self, key: usize) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        let Kind::Client(cc) = &mut c.kind else {
            return;
        };
        if !cc.connected {
            match crate::net::connect_outcome(&c.stream) {
                Ok(true) => cc.connected = true,
                Ok(false) => return,
                Err(e) => return self.client_failed(key, format!("connect failed: {e}")),
            }
            crate::trace::event(self, key, "webhook connection established");
        }
        self.flush(key);
    }

    /// Reads the response: head, then the body by its framing.
    pub(crate) fn client_step(&mut self, key: usize, buf: &mut [u8]) -> Step {
        let Some(Kind::Client(cc)) = self.conns.get_mut(key).map(|c| &mut c.kind) else {
            return Step::NeedMore;
        };
        if cc.status.is_none() {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let (status, framing, n) =
                match http1::parse_response_head(buf, &mut headers, MAX_RESPONSE_HEAD) {
                    Ok(Status::Partial) => return Step::NeedMore,
                    Err(e) => {
                        self.client_failed(key, format!("bad response: {}", e.sentence()));
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
            crate::trace::http_head(self, key, "->", &buf[..n]);
            let body = match framing {
                Ok(ResponseBody::None) | Ok(ResponseBody::Length(0)) => None,
                Ok(ResponseBody::Length(len)) => Some(ClientBody::Length(len)),
                Ok(ResponseBody::Chunked) => {
                    Some(ClientBody::Chunked(ChunkedDecoder::new(usize::MAX)))
                }
                Ok(ResponseBody::UntilClose) => Some(ClientBody::UntilClose),
                Err(e) => {
                    self.client_failed(key, format!("bad response: {}", e.sentence()));
                    return Step::Consumed(buf.len());
                }
            };
            let Some(Kind::Client(cc)) = self.conns.get_mut(key).map(|c| &mut c.kind) else {
                return Step::Consumed(n);
            };
            cc.status = Some(status);
            cc.body = body;
            if cc.body.is_none() {
                self.client_done(key);
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
                        self.client_failed(key, format!("bad chunked response body: {e}"));
                        return Step::Consumed(buf.len());
                    }
                }
            }
            Some(ClientBody::UntilClose) | None => Err(buf.len()),
        };
        match done_at {
            Ok(n) => {
                self.client_done(key);
                Step::Consumed(n)
            }
            Err(n) => Step::Consumed(n),
        }
    }

    /// The receiver closed its side.
    pub(crate) fn client_eof(&mut self, key: usize) {
        match self.conns.get(key).map(|c| &c.kind) {
            Some(Kind::Client(cc))
                if cc.status.is_some() && matches!(cc.body, Some(ClientBody::UntilClose)) =>
            {
                self.client_done(key)
            }
            Some(Kind::Client(_)) => self.client_failed(
                key,
                "the connection closed before a complete response".into(),
            ),
            _ => {}
        }
    }

    /// The attempt's 10 s passed.
    pub(crate) fn client_timed_out(&mut self, key: usize) {
        self.client_failed(key, "no complete response within 10 s".into());
    }

    fn client_done(&mut self, key: usize) {
        let Some(Kind::Client(cc)) = self.conns.get(key).map(|c| &c.kind) else {
            return;
        };
        let (seq, status) = (cc.delivery, cc.status.unwrap_or(0));
        self.take_client(key);
        let outcome = if (200..300).contains(&status) {
            Ok(status)
        } else {
            Err(format!("HTTP {status}"))
        };
        self.attempt_finished_with_status(seq, outcome, status);
    }

    fn client_failed(&mut self, key: usize, error: String) {
        let Some(Kind::Client(cc)) = self.conns.get(key).map(|c| &c.kind) else {
            return;
        };
        let seq = cc.delivery;
        crate::trace::event(self, key, format_args!("webhook attempt failed: {error}"));
        self.take_client(key);
        self.attempt_finished(seq, Err(error), false);
    }

    /// Closes a client connection whose outcome is being recorded (so the
    /// close itself does not record a second one).
    fn take_client(&mut self, key: usize) {
        if let Some(c) = self.conns.get_mut(key) {
            c.kind = Kind::Http(Default::default());
        }
        self.close_now(key, CloseReason::Normal);
    }

    /// A client connection is closing without an outcome (a socket error).
    pub(crate) fn client_closed(&mut self, seq: u64) {
        self.attempt_finished(seq, Err("the connection failed".into()), false);
    }

    fn attempt_finished(&mut self, seq: u64, outcome: Result<u16, String>, no_retry: bool) {
        let status = match &outcome {
            Ok(s) => *s,
            Err(_) => 0,
        };
        if no_retry {
            self.record_attempt(seq, outcome, status, true);
        } else {
            self.attempt_finished_with_status(seq, outcome, status);
        }
    }

    fn attempt_finished_with_status(
        &mut self,
        seq: u64,
        outcome: Result<u16, String>,
        status: u16,
    ) {
        let Some(d) = self.webhooks.deliveries.get(&seq) else {
            self.webhooks.in_flight = self.webhooks.in_flight.saturating_sub(1);
            return self.pump_deliveries();
        };
        let last_try = d.attempt as usize > BACKOFF_S.len();
        let is_final = outcome.is_ok() || last_try;
        self.record_attempt(seq, outcome, status, is_final);
    }

    /// Records the attempt, then retries after the backoff or ends the
    /// delivery.
    fn record_attempt(
        &mut self,
        seq: u64,
        outcome: Result<u16, String>,
        status: u16,
        is_final: bool,
    ) {
        self.webhooks.in_flight = self.webhooks.in_flight.saturating_sub(1);
        let Some(d) = self.webhooks.deliveries.get_mut(&seq) else {
            return self.pump_deliveries();
        };
        let (hook, attempt) = (d.webhook, d.attempt);
        let record = Attempt {
            delivery: d.uid.clone(),
            event: d.event,
            attempt,
            status: (status != 0).then_some(status),
            // API.md: `error` is a sentence only when no answer came; an
            // answer's status says what happened.
            error: if status != 0 { None } else { outcome.err() },
            at_ms: date::unix_millis_now(),
            is_final,
        };
        if is_final {
            self.webhooks.deliveries.remove(&seq);
            if let Some(h) = self.webhooks.hooks.get_mut(&hook) {
                if h.one_shot {
                    // API.md: listed until its delivery succeeded or finally failed.
                    h.active = false;
                }
            }
        } else {
            d.attempt += 1;
            let wait = Duration::from_secs(BACKOFF_S[(attempt - 1) as usize]);
            self.timers
                .push(self.now + wait, TimerKey::WebhookRetry(seq));
        }
        self.webhooks.record(hook, record);
        self.pump_deliveries();
    }
}

fn opt_str(out: &mut String, s: Option<&str>) {
    match s {
        Some(s) => json::push_str(out, s),
        None => out.push_str("null"),
    }
}
