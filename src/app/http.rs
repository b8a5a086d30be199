//! HTTP/1.1 on a connection: take requests off the buffer one by one (keep-
//! alive and pipelining fall out of that: answers are queued in request
//! order), check them, route them, answer them.

use crate::app::routes::{self, ChannelOp, Route, RouteError};
use crate::net::conn::{ChunkedBody, Kind, Reply, Wait};
use crate::net::{Server, Step};
use crate::wire::chunked::{ChunkedDecoder, ChunkedError};
use crate::wire::http1::{self, BodyFraming, Head, MAX_HEADERS};
use crate::wire::{json, Status};

/// How a request is to be answered.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ctx<'a> {
    /// A HEAD request: the same head as GET, no body.
    pub head_only: bool,
    pub keep_alive: bool,
    /// An HTTP/1.0 client: it must be told when the connection stays open.
    pub http10: bool,
    /// The allowed `Origin` to echo in `Access-Control-Allow-Origin`.
    pub cors: Option<&'a str>,
}

impl Ctx<'_> {
    /// Keeps what a held answer needs beyond the request buffer's life.
    pub(crate) fn to_reply(self) -> Reply {
        Reply {
            head_only: self.head_only,
            http10: self.http10,
            keep_alive: self.keep_alive,
            cors: self.cors.map(str::to_string),
        }
    }
}

impl Reply {
    pub(crate) fn ctx(&self) -> Ctx<'_> {
        Ctx {
            head_only: self.head_only,
            http10: self.http10,
            keep_alive: self.keep_alive,
            cors: self.cors.as_deref(),
        }
    }
}

impl Server {
    /// Takes one request off `buf[pos..]` if it is complete, and answers it.
    pub(crate) fn http_step(&mut self, key: usize, buf: &mut [u8], pos: usize) -> Step {
        let data = &buf[pos..];
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let (head, head_len) =
            match http1::parse_head(data, &mut headers, self.cfg.max_header_bytes) {
                Ok(Status::Complete(x)) => x,
                Ok(Status::Partial) => {
                    self.request_begun(key);
                    return Step::NeedMore;
                }
                Err(e) => {
                    self.stats.closed.protocol += 1;
                    self.respond_error_and_close(key, None, e.status(), e.sentence());
                    return Step::Consumed(data.len());
                }
            };
        if let Err(e) = http1::check_host(&head) {
            self.stats.closed.protocol += 1;
            self.respond_error_and_close(key, None, e.status(), e.sentence());
            return Step::Consumed(data.len());
        }
        let framing = match http1::body_framing(&head) {
            Ok(f) => f,
            Err(e) => {
                // RFC 9112 section 6.3: we cannot tell where this request
                // ends, so nothing after it can be trusted: answer, close.
                self.stats.closed.protocol += 1;
                self.respond_error_and_close(key, None, e.status(), e.sentence());
                return Step::Consumed(data.len());
            }
        };
        let max_body = self.cfg.max_body_bytes;
        let (body, used): (std::borrow::Cow<'_, [u8]>, usize) = match framing {
            BodyFraming::Empty => (std::borrow::Cow::Borrowed(&[]), head_len),
            BodyFraming::Length(n) => {
                if n > max_body as u64 {
                    self.stats.closed.protocol += 1;
                    self.respond_error_and_close(
                        key,
                        None,
                        413,
                        "the request body is larger than the server accepts",
                    );
                    return Step::Consumed(data.len());
                }
                let end = head_len + n as usize;
                if data.len() < end {
                    self.request_begun(key);
                    self.send_continue(key, &head);
                    return Step::NeedMore;
                }
                (std::borrow::Cow::Borrowed(&data[head_len..end]), end)
            }
            BodyFraming::Chunked => match self.chunked_body(key, &data[head_len..]) {
                Ok(Some((body, raw))) => (std::borrow::Cow::Owned(body), head_len + raw),
                Ok(None) => {
                    self.request_begun(key);
                    self.send_continue(key, &head);
                    return Step::NeedMore;
                }
                Err(e) => {
                    self.stats.closed.protocol += 1;
                    let status = if e == ChunkedError::BodyTooLarge {
                        413
                    } else {
                        400
                    };
                    self.respond_error_and_close(
                        key,
                        None,
                        status,
                        &format!("bad chunked body: {e}"),
                    );
                    return Step::Consumed(data.len());
                }
            },
        };
        crate::trace::http_head(self, key, "->", &data[..head_len]);
        self.stats.requests += 1;
        if let Some(Kind::Http(st)) = self.conns.get_mut(key).map(|c| &mut c.kind) {
            st.continue_sent = false;
        }
        self.dispatch(key, &head, &body);
        if std::mem::take(&mut self.defer_request) {
            // Held for the backplane: the request stays in the buffer and
            // runs again once its channel is synced.
            return Step::NeedMore;
        }
        if let Some(Kind::Http(st)) = self.conns.get_mut(key).map(|c| &mut c.kind) {
            st.synced_once = false;
        }
        // Back to waiting for the next request, unless the connection became
        // something else (a WebSocket, a stream, a held poll) or is closing.
        if let Some(c) = self.conns.get(key) {
            if matches!(c.kind, Kind::Http(_)) && c.phase == crate::net::conn::Phase::Active {
                self.set_wait(key, Wait::KeepAlive, Some(self.cfg.idle_timeout));
            }
        }
        Step::Consumed(used)
    }

    /// RFC 9110 section 10.1.1: a client that sent `Expect: 100-continue`
    /// waits for an interim `100 Continue` before its body. It is sent once
    /// the head passed every check, so a refused request (413, 4xx) is
    /// answered before the body is sent at all.
    fn send_continue(&mut self, key: usize, head: &Head<'_, '_>) {
        if !http1::expects_continue(head) {
            return;
        }
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        let Kind::Http(st) = &mut c.kind else { return };
        if !st.continue_sent {
            st.continue_sent = true;
            c.out.push_bytes(b"HTTP/1.1 100 Continue\r\n\r\n");
            crate::trace::http_head(self, key, "<-", b"HTTP/1.1 100 Continue");
            self.mark_dirty(key);
        }
    }

    /// A request has started arriving: from now on it has the header
    /// timeout to complete (408 otherwise), whatever the idle timeout was.
    fn request_begun(&mut self, key: usize) {
        let waiting = self.conns.get(key).map(|c| c.wait);
        if matches!(waiting, Some(Wait::FirstByte | Wait::KeepAlive)) {
            self.set_wait(key, Wait::RequestHead, Some(self.cfg.header_timeout));
        }
    }

    /// Decodes a chunked body from the raw bytes after the head, resuming
    /// where the last call stopped. `Some((body, raw bytes used))` once the
    /// last chunk and the trailers are in.
    fn chunked_body(
        &mut self,
        key: usize,
        raw: &[u8],
    ) -> Result<Option<(Vec<u8>, usize)>, ChunkedError> {
        let max = self.cfg.max_body_bytes;
        let Some(c) = self.conns.get_mut(key) else {
            return Ok(None);
        };
        let Kind::Http(state) = &mut c.kind else {
            return Ok(None);
        };
        let st = state.chunked.get_or_insert_with(|| ChunkedBody {
            decoder: ChunkedDecoder::new(max),
            body: Vec::new(),
            raw_taken: 0,
        });
        match st.decoder.decode(&raw[st.raw_taken..], &mut st.body)? {
            Status::Partial => {
                st.raw_taken = raw.len();
                Ok(None)
            }
            Status::Complete(n) => {
                let used = st.raw_taken + n;
                let done = state.chunked.take().map(|s| s.body).unwrap_or_default();
                Ok(Some((done, used)))
            }
        }
    }

    /// Routes one complete request.
    fn dispatch(&mut self, key: usize, head: &Head<'_, '_>, body: &[u8]) {
        let mut ctx = Ctx {
            head_only: head.method == "HEAD",
            http10: head.minor_version == 0,
            keep_alive: head.keep_alive() && !self.draining(),
            cors: None,
        };
        // API.md: with --allow-origin, every request that carries an Origin
        // outside the list is refused (browsers send Origin on cross-site
        // requests and on every WebSocket handshake; a WebSocket has no
        // same-origin policy of its own, so this check is its only guard).
        if let Some(origin) = head.header("origin") {
            if !self.origin_allowed(origin, head.header("host")) {
                return self.respond_error(key, ctx, 403, "this Origin is not allowed");
            }
            ctx.cors = Some(origin);
        }
        let route = match routes::resolve(head.path) {
            Ok(r) => r,
            Err(RouteError::NotFound) => return self.respond_error(key, ctx, 404, "no such path"),
            Err(RouteError::BadSegment(s)) => return self.respond_error(key, ctx, 400, s),
        };
        if head.method == "OPTIONS" {
            // A CORS preflight (Fetch standard) or a plain capability query.
            let allow = route.allow();
            let headers = [
                ("Allow", allow.as_str()),
                ("Access-Control-Allow-Methods", allow.as_str()),
                (
                    "Access-Control-Allow-Headers",
                    "Content-Type, Last-Event-ID",
                ),
                ("Access-Control-Max-Age", "600"),
            ];
            return self.respond_full(key, ctx, 204, None, &headers, b"");
        }
        if !route.methods().contains(&head.method) {
            let allow = route.allow();
            let sentence = format!(
                "{} is not allowed here; use {}",
                head.method,
                route.methods().join(" or ")
            );
            return self.respond_full(
                key,
                ctx,
                405,
                Some(JSON),
                &[("Allow", &allow)],
                error_body(&sentence).as_bytes(),
            );
        }
        match route {
            Route::Index => self.index(key, ctx, head),
            Route::Submit => self.submit(key, ctx, head, body),
            Route::CheckStatus => self.check_status(key, ctx, head),
            Route::Channel(name, ChannelOp::Publish) => self.publish_http(key, ctx, &name, body),
            Route::Channel(name, ChannelOp::Poll) => self.channel_poll(key, ctx, head, &name),
            Route::Channel(name, ChannelOp::Events) => self.channel_events(key, ctx, head, &name),
            Route::Channel(name, ChannelOp::Ws) => self.channel_ws(key, ctx, head, &name),
            Route::Sse => self.clock(key, ctx, head),
            Route::Echo => {
                self.upgrade(key, ctx, head, crate::net::conn::WsRole::Echo);
            }
            Route::Stats => {
                let body = self.stats_json();
                self.respond_json(key, ctx, 200, &body)
            }
            Route::Webhooks if head.method == "POST" => self.webhook_register(key, ctx, body),
            Route::Webhooks => self.webhook_list(key, ctx),
            Route::Webhook(id) => self.webhook_delete(key, ctx, &id),
            Route::WebhookDeliveries(id) => self.webhook_deliveries(key, ctx, &id),
            Route::WebhookReceiver if head.method == "POST" => {
                self.receiver_post(key, ctx, head, body)
            }
            Route::WebhookReceiver => self.receiver_get(key, ctx),
        }
    }

    /// API.md: no list = any origin; a listed origin (case-insensitive);
    /// the server's own origin (`http://` + Host), so the demo page works.
    fn origin_allowed(&self, origin: &str, host: Option<&str>) -> bool {
        if self.cfg.allow_origins.is_empty() {
            return true;
        }
        let own = match (origin.get(..7), origin.get(7..), host) {
            (Some(scheme), Some(rest), Some(host)) => {
                scheme.eq_ignore_ascii_case("http://") && rest.eq_ignore_ascii_case(host)
            }
            _ => false,
        };
        if own {
            return true;
        }
        self.cfg
            .allow_origins
            .iter()
            .any(|o| o.eq_ignore_ascii_case(origin))
    }

    // ----- answering -------------------------------------------------------

    /// Writes a whole response (head, and body unless HEAD); closes after
    /// it unless the connection is kept alive.
    pub(crate) fn respond_full(
        &mut self,
        key: usize,
        ctx: Ctx<'_>,
        status: u16,
        content_type: Option<&str>,
        extra: &[(&str, &str)],
        body: &[u8],
    ) {
        if self
            .write_head(key, ctx, status, content_type, extra, Some(body.len()))
            .is_none()
        {
            return;
        }
        if !ctx.head_only {
            self.conns[key].out.push_bytes(body);
        }
        if !ctx.keep_alive {
            self.finish(key);
        }
        self.mark_dirty(key);
    }

    /// Writes a response head. `length: None` for a body without a length
    /// (an event stream, delimited by the connection's close). Returns None
    /// when the connection is gone.
    pub(crate) fn write_head(
        &mut self,
        key: usize,
        ctx: Ctx<'_>,
        status: u16,
        content_type: Option<&str>,
        extra: &[(&str, &str)],
        length: Option<usize>,
    ) -> Option<()> {
        self.refresh_date();
        let date = &self.date.1;
        let c = self.conns.get_mut(key)?;
        let trace = self.cfg.trace;
        let mut out = c.out.owned_tail();
        let start = out.len();
        http1::write_status_line(&mut out, status);
        // `Date` and `Server`, formatted once a second (see refresh_date).
        out.extend_from_slice(date.as_bytes());
        if let Some(ct) = content_type {
            http1::write_header(&mut out, "Content-Type", ct.as_bytes());
        }
        // RFC 9110 section 8.6: no Content-Length in a 204 or 1xx.
        if let Some(len) = length.filter(|_| status != 204 && status >= 200) {
            out.extend_from_slice(b"Content-Length: ");
            http1::push_decimal(&mut out, len as u64);
            out.extend_from_slice(b"\r\n");
        }
        if let Some(origin) = ctx.cors {
            http1::write_header(&mut out, "Access-Control-Allow-Origin", origin.as_bytes());
            http1::write_header(&mut out, "Vary", b"Origin");
        }
        for (k, v) in extra {
            http1::write_header(&mut out, k, v.as_bytes());
        }
        if !ctx.keep_alive || length.is_none() {
            http1::write_header(&mut out, "Connection", b"close");
        } else if ctx.http10 {
            // HTTP/1.0 closes by default; a client that asked for
            // keep-alive learns it was granted only from this header.
            http1::write_header(&mut out, "Connection", b"keep-alive");
        }
        out.extend_from_slice(b"\r\n");
        if trace {
            let head = out[start..].to_vec();
            drop(out);
            crate::trace::http_head(self, key, "<-", &head);
        }
        Some(())
    }

    pub(crate) fn respond_json(&mut self, key: usize, ctx: Ctx<'_>, status: u16, body: &str) {
        self.respond_full(key, ctx, status, Some(JSON), &[], body.as_bytes())
    }

    /// `{"error":"<sentence>"}` with `status` (API.md "Errors").
    pub(crate) fn respond_error(&mut self, key: usize, ctx: Ctx<'_>, status: u16, sentence: &str) {
        self.respond_json(key, ctx, status, &error_body(sentence))
    }

    /// An error after which the connection cannot go on (framing errors,
    /// timeouts, refusals): answer with `Connection: close`, then close.
    pub(crate) fn respond_error_and_close(
        &mut self,
        key: usize,
        cors: Option<&str>,
        status: u16,
        sentence: &str,
    ) {
        let ctx = Ctx {
            head_only: false,
            http10: false,
            keep_alive: false,
            cors,
        };
        self.respond_error(key, ctx, status, sentence);
    }
}

pub(crate) const JSON: &str = "application/json";

/// A query parameter that must be a non-negative whole number when present
/// (ids, cursors, timeouts: API.md answers 400 for negative, fractional or
/// non-numbers, and for malformed percent-encoding). `Err` means 400.
pub(crate) fn decimal_param(query: &str, name: &str) -> Result<Option<u64>, ()> {
    match crate::wire::query::get(query, name) {
        Ok(None) => Ok(None),
        Ok(Some(v)) => crate::wire::query::parse_decimal(&v).map(Some).ok_or(()),
        Err(_) => Err(()),
    }
}

/// `{"error":"..."}` with the sentence escaped.
pub(crate) fn error_body(sentence: &str) -> String {
    let mut s = String::with_capacity(sentence.len() + 12);
    s.push_str("{\"error\":");
    json::push_str(&mut s, sentence);
    s.push('}');
    s
}
