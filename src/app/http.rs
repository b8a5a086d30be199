//! HTTP/1.1 on a connection: take requests off the buffer one by one (keep-
//! alive and pipelining fall out of that: answers are queued in request
//! order), check them, route them, answer them.

use super::conn::{ChunkedBody, Kind, Reply, Wait, WsRole};
use super::routes::{self, ChannelOp, Route, RouteError};
use super::{access, channels, chat, jobs, set_wait, stats, webhooks, websocket, App, Io};
use crate::net::{CloseReason, ConnId, Step};
use crate::wire::chunked::{ChunkedDecoder, ChunkedError};
use crate::wire::http1::{self, BodyFraming, Head, MAX_HEADERS};
use crate::wire::{json, ws_handshake, Status};

/// What a handler did with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Answered (or turned into a WebSocket or an event stream).
    Done,
    /// The connection holds the request (a long poll, a publish waiting
    /// for the backplane): it is answered later, and the requests
    /// pipelined behind it wait until then.
    Parked,
    /// It cannot be handled yet (its channel is being synced with the
    /// backplane): it stays in the buffer and runs again on `Io::resume`.
    Retry,
}

/// The `Date` and `Server` header lines every response starts with,
/// formatted once a second rather than per response.
#[derive(Debug, Default)]
pub struct DateLines {
    second: u64,
    lines: String,
}

impl DateLines {
    /// The lines for the current second (RFC 9110 section 6.6.1).
    pub fn current(&mut self) -> &str {
        let secs = crate::wire::date::unix_millis_now() / 1000;
        if self.second != secs || self.lines.is_empty() {
            let date = crate::wire::date::imf_fixdate(secs);
            self.second = secs;
            self.lines = format!("Date: {date}\r\nServer: pushwire\r\n");
        }
        &self.lines
    }
}

/// How a request is to be answered.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
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
    pub fn to_reply(self) -> Reply {
        Reply {
            head_only: self.head_only,
            http10: self.http10,
            keep_alive: self.keep_alive,
            cors: self.cors.map(str::to_string),
        }
    }
}

impl Reply {
    pub fn ctx(&self) -> Ctx<'_> {
        Ctx {
            head_only: self.head_only,
            http10: self.http10,
            keep_alive: self.keep_alive,
            cors: self.cors.as_deref(),
        }
    }
}

/// A connection was accepted: past `--max-conns` it gets a 503 and is
/// closed; otherwise it has `--header-timeout-ms` to send something.
pub fn accepted(app: &mut App, io: &mut Io, id: ConnId) {
    if io.active_len() > app.cfg.max_conns {
        // docs/api.md: past --max-conns the refused connection gets a 503 and
        // is closed. It lingers like any closing connection so the 503 is
        // not lost to a reset; it does not count as active.
        respond_error_and_close(
            app,
            io,
            id,
            503,
            "the server is at its connection limit",
            CloseReason::Limit,
        );
        return;
    }
    set_wait(io, id, Wait::FirstByte, Some(app.cfg.header_timeout));
}

/// Takes one request off the front of `data` if it is complete, and
/// answers it.
pub fn request_step(app: &mut App, io: &mut Io, id: ConnId, data: &mut [u8]) -> Step {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let (head, head_len) = match http1::parse_head(data, &mut headers, app.cfg.max_header_bytes) {
        Ok(Status::Complete(x)) => x,
        Ok(Status::Partial) => {
            request_begun(app, io, id);
            return Step::NeedMore;
        }
        Err(e) => {
            framing_error(app, io, id, e.status(), e.sentence());
            return Step::Consumed(data.len());
        }
    };
    if let Err(e) = http1::check_host(&head) {
        framing_error(app, io, id, e.status(), e.sentence());
        return Step::Consumed(data.len());
    }
    let framing = match http1::body_framing(&head) {
        Ok(f) => f,
        Err(e) => {
            // RFC 9112 section 6.3: we cannot tell where this request ends,
            // so nothing after it can be trusted: answer, close.
            framing_error(app, io, id, e.status(), e.sentence());
            return Step::Consumed(data.len());
        }
    };
    let max_body = app.cfg.max_body_bytes;
    let (body, used): (std::borrow::Cow<'_, [u8]>, usize) = match framing {
        BodyFraming::Empty => (std::borrow::Cow::Borrowed(&[]), head_len),
        BodyFraming::Length(n) => {
            if n > max_body as u64 {
                framing_error(
                    app,
                    io,
                    id,
                    413,
                    "the request body is larger than the server accepts",
                );
                return Step::Consumed(data.len());
            }
            let end = head_len + n as usize;
            if data.len() < end {
                request_begun(app, io, id);
                send_continue(app, io, id, &head);
                return Step::NeedMore;
            }
            (std::borrow::Cow::Borrowed(&data[head_len..end]), end)
        }
        BodyFraming::Chunked => match chunked_body(app, io, id, &data[head_len..]) {
            Ok(Some((body, raw))) => (std::borrow::Cow::Owned(body), head_len + raw),
            Ok(None) => {
                request_begun(app, io, id);
                send_continue(app, io, id, &head);
                return Step::NeedMore;
            }
            Err(e) => {
                let status = if e == ChunkedError::BodyTooLarge {
                    413
                } else {
                    400
                };
                framing_error(app, io, id, status, &format!("bad chunked body: {e}"));
                return Step::Consumed(data.len());
            }
        },
    };
    app.trace.http_head(io.peer(id), "->", &data[..head_len]);
    app.stats.requests += 1;
    if let Some(Kind::Http(st)) = io.state_mut(id).map(|s| &mut s.kind) {
        st.continue_sent = false;
    }
    match dispatch(app, io, id, &head, &body) {
        // Held for the backplane: the request stays in the buffer and runs
        // again once its channel is synced.
        Flow::Retry => return Step::Hold(0),
        Flow::Parked => return Step::Hold(used),
        Flow::Done => {}
    }
    if let Some(Kind::Http(st)) = io.state_mut(id).map(|s| &mut s.kind) {
        st.synced_once = false;
    }
    // Back to waiting for the next request, unless the connection became
    // something else (a WebSocket, a stream) or is closing.
    if io.is_active(id) && matches!(io.state(id).map(|s| &s.kind), Some(Kind::Http(_))) {
        set_wait(io, id, Wait::KeepAlive, Some(app.cfg.idle_timeout));
    }
    Step::Consumed(used)
}

/// A request whose framing cannot be trusted: answer and close.
fn framing_error(app: &mut App, io: &mut Io, id: ConnId, status: u16, sentence: &str) {
    respond_error_and_close(app, io, id, status, sentence, CloseReason::Protocol);
}

/// RFC 9110 section 10.1.1: a client that sent `Expect: 100-continue`
/// waits for an interim `100 Continue` before its body. It is sent once the
/// head passed every check, so a refused request (413, 4xx) is answered
/// before the body is sent at all.
fn send_continue(app: &mut App, io: &mut Io, id: ConnId, head: &Head<'_, '_>) {
    if !http1::expects_continue(head) {
        return;
    }
    let Some(Kind::Http(st)) = io.state_mut(id).map(|s| &mut s.kind) else {
        return;
    };
    if !st.continue_sent {
        st.continue_sent = true;
        io.send(id, b"HTTP/1.1 100 Continue\r\n\r\n");
        app.trace
            .http_head(io.peer(id), "<-", b"HTTP/1.1 100 Continue");
    }
}

/// A request has started arriving: from now on it has the header timeout
/// to complete (408 otherwise), whatever the idle timeout was.
fn request_begun(app: &mut App, io: &mut Io, id: ConnId) {
    let waiting = io.state(id).map(|s| s.wait);
    if matches!(waiting, Some(Wait::FirstByte | Wait::KeepAlive)) {
        set_wait(io, id, Wait::RequestHead, Some(app.cfg.header_timeout));
    }
}

/// Raw bytes of a chunked body beyond `--max-body-bytes` that its framing
/// may take (docs/api.md: past `--max-body-bytes` + 64 KiB of raw body, 413).
const CHUNKED_FRAMING_ALLOWANCE: usize = 64 * 1024;

/// Decodes a chunked body from the raw bytes after the head, resuming where
/// the last call stopped. `Some((body, raw bytes used))` once the last chunk
/// and the trailers are in.
fn chunked_body(
    app: &mut App,
    io: &mut Io,
    id: ConnId,
    raw: &[u8],
) -> Result<Option<(Vec<u8>, usize)>, ChunkedError> {
    let max = app.cfg.max_body_bytes;
    let Some(Kind::Http(state)) = io.state_mut(id).map(|s| &mut s.kind) else {
        return Ok(None);
    };
    let st = state.chunked.get_or_insert_with(|| ChunkedBody {
        decoder: ChunkedDecoder::new(max),
        body: Vec::new(),
        raw_taken: 0,
    });
    match st.decoder.decode(&raw[st.raw_taken..], &mut st.body)? {
        // The decoded body is limited by the decoder; the framing around it
        // (size lines, extensions, trailers) is limited here, or 1-byte
        // chunks with 4 KiB extensions would hold thousands of times
        // --max-body-bytes in raw input until the header timeout.
        Status::Partial if raw.len() > max.saturating_add(CHUNKED_FRAMING_ALLOWANCE) => {
            state.chunked = None;
            Err(ChunkedError::BodyTooLarge)
        }
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
fn dispatch(app: &mut App, io: &mut Io, id: ConnId, head: &Head<'_, '_>, body: &[u8]) -> Flow {
    let mut ctx = Ctx {
        head_only: head.method == "HEAD",
        http10: head.minor_version == 0,
        keep_alive: head.keep_alive() && !app.draining,
        cors: None,
    };
    // docs/api.md: with --allow-origin, every request that carries an Origin
    // outside the list is refused (browsers send Origin on cross-site
    // requests and on every WebSocket handshake; a WebSocket has no
    // same-origin policy of its own, so this check is its only guard).
    if let Some(origin) = head.header("origin") {
        if !origin_allowed(app, origin, head.header("host")) {
            respond_error(app, io, id, ctx, 403, "this Origin is not allowed");
            return Flow::Done;
        }
        ctx.cors = Some(origin);
    }
    let route = match routes::resolve(head.path) {
        Ok(r) => r,
        Err(RouteError::NotFound) => {
            respond_error(app, io, id, ctx, 404, "no such path");
            return Flow::Done;
        }
        Err(RouteError::BadSegment(s)) => {
            respond_error(app, io, id, ctx, 400, s);
            return Flow::Done;
        }
    };
    if head.method == "OPTIONS" {
        // A CORS preflight (Fetch standard) or a plain capability query.
        let allow = route.allow();
        let headers = [
            ("Allow", allow.as_str()),
            ("Access-Control-Allow-Methods", allow.as_str()),
            (
                "Access-Control-Allow-Headers",
                "Content-Type, Last-Event-ID, Authorization",
            ),
            ("Access-Control-Max-Age", "600"),
        ];
        respond_full(app, io, id, ctx, 204, None, &headers, b"");
        return Flow::Done;
    }
    if !route.methods().contains(&head.method) {
        let allow = route.allow();
        let sentence = format!(
            "{} is not allowed here; use {}",
            head.method,
            route.methods().join(" or ")
        );
        respond_full(
            app,
            io,
            id,
            ctx,
            405,
            Some(JSON),
            &[("Allow", &allow)],
            error_body(&sentence).as_bytes(),
        );
        return Flow::Done;
    }
    let Some(grant) = access::check(app, io, id, ctx, head, &route) else {
        return Flow::Done;
    };
    match route {
        Route::Index => index(app, io, id, ctx, head),
        Route::ClientLibrary => respond_full(
            app,
            io,
            id,
            ctx,
            200,
            Some("text/javascript"),
            &[],
            super::CLIENT_LIBRARY.as_bytes(),
        ),
        Route::Submit => jobs::submit(app, io, id, ctx, head),
        Route::CheckStatus => return jobs::check_status(app, io, id, ctx, head),
        Route::Channel(name, ChannelOp::Publish) => {
            let quiet = head.header("x-pushwire-delivery").is_some();
            return channels::publish_http(app, io, id, ctx, &name, body, quiet);
        }
        Route::Channel(name, ChannelOp::Poll) => {
            return channels::poll(app, io, id, ctx, head, &name)
        }
        Route::Channel(name, ChannelOp::Events) => {
            return channels::events(app, io, id, ctx, head, &name, grant)
        }
        Route::Channel(name, ChannelOp::Ws) => {
            return channels::ws(app, io, id, ctx, head, &name, grant)
        }
        Route::Sse => super::sse::clock(app, io, id, ctx, head),
        Route::Echo => {
            websocket::upgrade(app, io, id, ctx, head, WsRole::Echo);
        }
        Route::Stats => {
            let body = stats::json(app, io);
            respond_json(app, io, id, ctx, 200, &body)
        }
        Route::Metrics => {
            let body = super::metrics::text(app, io);
            let content_type = Some(crate::wire::prometheus::CONTENT_TYPE);
            respond_full(app, io, id, ctx, 200, content_type, &[], body.as_bytes())
        }
        Route::Webhooks if head.method == "POST" => {
            webhooks::register(app, io, id, ctx, head, body)
        }
        Route::Webhooks => webhooks::list(app, io, id, ctx),
        Route::Webhook(hook) => webhooks::delete(app, io, id, ctx, head, &hook),
        Route::WebhookDeliveries(hook) => webhooks::deliveries(app, io, id, ctx, &hook),
        Route::WebhookReceiver if head.method == "POST" => {
            webhooks::receiver_post(app, io, id, ctx, head, body)
        }
        Route::WebhookReceiver => webhooks::receiver_get(app, io, id, ctx),
    }
    Flow::Done
}

/// `/`: the chat room for a WebSocket upgrade, the demo page otherwise.
fn index(app: &mut App, io: &mut Io, id: ConnId, ctx: Ctx<'_>, head: &Head<'_, '_>) {
    if ws_handshake::wants_websocket(head) {
        if websocket::upgrade(app, io, id, ctx, head, WsRole::Chat) {
            chat::join(app, io, id);
        }
        return;
    }
    respond_full(
        app,
        io,
        id,
        ctx,
        200,
        Some("text/html; charset=utf-8"),
        &[],
        super::DEMO_PAGE.as_bytes(),
    );
}

/// docs/api.md: no list = any origin; a listed origin (case-insensitive); the
/// server's own origin (`http://` + Host), so the demo page works.
fn origin_allowed(app: &App, origin: &str, host: Option<&str>) -> bool {
    app.cfg.allow_origins.is_empty() || origin_is_own_or_listed(app, origin, host)
}

/// The server's own origin (`http://` + Host) or one listed in
/// `--allow-origin`, compared as strings, case-insensitively.
pub fn origin_is_own_or_listed(app: &App, origin: &str, host: Option<&str>) -> bool {
    let own = match (origin.get(..7), origin.get(7..), host) {
        (Some(scheme), Some(rest), Some(host)) => {
            scheme.eq_ignore_ascii_case("http://") && rest.eq_ignore_ascii_case(host)
        }
        _ => false,
    };
    if own {
        return true;
    }
    app.cfg
        .allow_origins
        .iter()
        .any(|o| o.eq_ignore_ascii_case(origin))
}

// ----- answering ---------------------------------------------------------------

/// Writes a whole response (head, and body unless HEAD); closes after it
/// unless the connection is kept alive.
#[allow(clippy::too_many_arguments)]
pub fn respond_full(
    app: &mut App,
    io: &mut Io,
    id: ConnId,
    ctx: Ctx<'_>,
    status: u16,
    content_type: Option<&str>,
    extra: &[(&str, &str)],
    body: &[u8],
) {
    if write_head(
        app,
        io,
        id,
        ctx,
        status,
        content_type,
        extra,
        Some(body.len()),
    )
    .is_none()
    {
        return;
    }
    if !ctx.head_only {
        io.send(id, body);
    }
    if !ctx.keep_alive {
        io.finish(id, CloseReason::Normal);
    }
}

/// Writes a response head. `length: None` for a body without a length (an
/// event stream, delimited by the connection's close). Returns None when the
/// connection is gone.
#[allow(clippy::too_many_arguments)]
pub fn write_head(
    app: &mut App,
    io: &mut Io,
    id: ConnId,
    ctx: Ctx<'_>,
    status: u16,
    content_type: Option<&str>,
    extra: &[(&str, &str)],
    length: Option<usize>,
) -> Option<()> {
    let date = app.date.current();
    let trace = app.trace;
    let peer = io.peer(id);
    let output = io.output(id)?;
    let mut out = output.owned_tail();
    let start = out.len();
    http1::write_status_line(&mut out, status);
    // `Date` and `Server`, formatted once a second (see DateLines).
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
        // HTTP/1.0 closes by default; a client that asked for keep-alive
        // learns it was granted only from this header.
        http1::write_header(&mut out, "Connection", b"keep-alive");
    }
    out.extend_from_slice(b"\r\n");
    if trace.on {
        trace.http_head(peer, "<-", &out[start..]);
    }
    Some(())
}

pub fn respond_json(app: &mut App, io: &mut Io, id: ConnId, ctx: Ctx<'_>, status: u16, body: &str) {
    respond_full(app, io, id, ctx, status, Some(JSON), &[], body.as_bytes())
}

/// A whole response whose body is shared with other responses (encoded
/// once, reference-counted): queued without a copy.
pub fn respond_shared(
    app: &mut App,
    io: &mut Io,
    id: ConnId,
    ctx: Ctx<'_>,
    status: u16,
    content_type: &str,
    body: &std::sync::Arc<[u8]>,
) {
    let length = Some(body.len());
    if write_head(app, io, id, ctx, status, Some(content_type), &[], length).is_none() {
        return;
    }
    if !ctx.head_only {
        if let Some(out) = io.output(id) {
            out.push_shared(body.clone());
        }
    }
    if !ctx.keep_alive {
        io.finish(id, CloseReason::Normal);
    }
}

/// `{"error":"<sentence>"}` with `status` (docs/api.md, "HTTP, errors and limits").
pub fn respond_error(
    app: &mut App,
    io: &mut Io,
    id: ConnId,
    ctx: Ctx<'_>,
    status: u16,
    sentence: &str,
) {
    respond_json(app, io, id, ctx, status, &error_body(sentence))
}

/// An error after which the connection cannot go on (framing errors,
/// timeouts, refusals): answer with `Connection: close`, then close, for
/// `reason`.
pub fn respond_error_and_close(
    app: &mut App,
    io: &mut Io,
    id: ConnId,
    status: u16,
    sentence: &str,
    reason: CloseReason,
) {
    let ctx = Ctx {
        head_only: false,
        http10: false,
        keep_alive: false,
        cors: None,
    };
    io.set_close_reason(id, reason);
    respond_error(app, io, id, ctx, status, sentence);
}

pub const JSON: &str = "application/json";

/// A query parameter that must be a non-negative whole number when present
/// (ids, cursors, timeouts: docs/api.md answers 400 for negative, fractional or
/// non-numbers, and for malformed percent-encoding). `Err` means 400.
pub fn decimal_param(query: &str, name: &str) -> Result<Option<u64>, ()> {
    match crate::wire::query::get(query, name) {
        Ok(None) => Ok(None),
        Ok(Some(v)) => crate::wire::query::parse_decimal(&v).map(Some).ok_or(()),
        Err(_) => Err(()),
    }
}

/// `{"error":"..."}` with the sentence escaped.
pub fn error_body(sentence: &str) -> String {
    let mut s = String::with_capacity(sentence.len() + 12);
    s.push_str("{\"error\":");
    json::push_str(&mut s, sentence);
    s.push('}');
    s
}
