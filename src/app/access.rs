//! Access control (docs/api.md section 8): with `--token-secret`, a signed token
//! decides who may publish, subscribe and administer. The token's format
//! and checks are `wire::jwt`; how a request carries one is `wire::bearer`;
//! this file decides what each route needs and answers 401 or 403.
//!
//! ```text
//!  GET /channels/news/events?access_token=eyJ...   (or Authorization: Bearer eyJ...)
//!        │ route → what it needs: subscribe "news"
//!        │ no token ............................ 401  WWW-Authenticate: Bearer realm="pushwire"
//!        │ bad / refused alg / outside nbf..exp  401  ..., error="invalid_token"
//!        │ valid, no pattern covers "news" ..... 403  ..., error="insufficient_scope"
//!        └ covered: served; a stream ends at the token's exp (a deadline, not a scan)
//! ```
//!
//! A token is verified once per request (a WebSocket or an event stream:
//! once per connection), never per message. The demos (`/`, `/echo`,
//! `/sse`, jobs, `/pushwire.js`, `/webhook-receiver`) stay open, and a
//! preflight (`OPTIONS`) never needs a token.

use std::time::Duration;

use super::conn::{Kind, Wait};
use super::http::{self, Ctx};
use super::routes::{ChannelOp, Route};
use super::{set_wait, websocket, App, Io};
use crate::net::{CloseReason, ConnId};
use crate::wire::http1::Head;
use crate::wire::{bearer, date, jwt, ws_close};

/// What a route needs from a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need<'a> {
    Nothing,
    Subscribe(&'a str),
    Publish(&'a str),
    Admin,
}

/// What the request may do beyond the check it passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    /// A channel WebSocket may also publish (its text messages).
    pub may_publish: bool,
    /// The token's `exp` (Unix seconds): a stream opened with it ends then.
    pub expires: Option<u64>,
}

impl Grant {
    /// No secret: everything is allowed, nothing expires.
    const OPEN: Grant = Grant {
        may_publish: true,
        expires: None,
    };
}

fn need<'a>(route: &'a Route<'_>) -> Need<'a> {
    match route {
        Route::Channel(name, ChannelOp::Publish) => Need::Publish(name),
        Route::Channel(name, ChannelOp::Poll | ChannelOp::Events | ChannelOp::Ws) => {
            Need::Subscribe(name)
        }
        Route::Webhooks
        | Route::Webhook(_)
        | Route::WebhookDeliveries(_)
        | Route::Stats
        | Route::Metrics => Need::Admin,
        Route::Index
        | Route::ClientLibrary
        | Route::Submit
        | Route::CheckStatus
        | Route::Sse
        | Route::Echo
        | Route::WebhookReceiver => Need::Nothing,
    }
}

/// Checks the request's token against what `route` needs. `None`: it was
/// answered (401 or 403) and must not be served.
pub fn check(
    app: &mut App,
    io: &mut Io,
    id: ConnId,
    ctx: Ctx<'_>,
    head: &Head<'_, '_>,
    route: &Route<'_>,
) -> Option<Grant> {
    let Some(secret) = &app.cfg.token_secret else {
        return Some(Grant::OPEN);
    };
    let need = need(route);
    if need == Need::Nothing {
        return Some(Grant::OPEN);
    }
    // RFC 6750 section 2: the header, or the query parameter where a
    // client cannot set headers (EventSource, WebSocket); the header wins.
    let token = match bearer::credential(head.header("authorization"), Some(head.query)) {
        bearer::Credential::Absent => {
            refuse(app, io, id, ctx, Refusal::NoToken);
            return None;
        }
        bearer::Credential::Malformed => {
            let sentence = "the access token is not well-formed";
            refuse(app, io, id, ctx, Refusal::InvalidToken(sentence));
            return None;
        }
        bearer::Credential::Token(t) => t,
    };
    let now = date::unix_millis_now() / 1000;
    // The token this connection presented last, already verified: the same
    // bytes (compared in full) are the same token, so only its time window
    // is checked again. A keep-alive poller pays one HMAC, not one per poll.
    let kept = match io.state(id).map(|s| &s.kind) {
        Some(Kind::Http(st)) => st
            .verified
            .as_deref()
            .filter(|v| v.token == *token)
            .map(|v| v.claims.check_time(now).map(|()| decide(&v.claims, need))),
        _ => None,
    };
    let decision = match kept {
        Some(d) => d,
        None => jwt::verify(&token, secret.bytes(), now).map(|claims| {
            let d = decide(&claims, need);
            if let Some(Kind::Http(st)) = io.state_mut(id).map(|s| &mut s.kind) {
                st.verified = Some(Box::new(super::conn::VerifiedToken {
                    token: token.into_owned(),
                    claims,
                }));
            }
            d
        }),
    };
    let (allowed, what, grant) = match decision {
        Ok(d) => d,
        Err(e) => {
            app.trace
                .event(io.peer(id), format_args!("token refused: {}", e.sentence()));
            refuse(app, io, id, ctx, Refusal::InvalidToken(e.sentence()));
            return None;
        }
    };
    if !allowed {
        let sentence = format!("this token does not allow you to {what}");
        refuse(app, io, id, ctx, Refusal::InsufficientScope(&sentence));
        return None;
    }
    Some(grant)
}

/// What valid claims allow for `need`: whether it is allowed (and, if not,
/// what was asked, for the 403's sentence), and the grant that goes with it.
fn decide(claims: &jwt::Claims, need: Need<'_>) -> (bool, &'static str, Grant) {
    let (allowed, what) = match need {
        Need::Subscribe(ch) => (claims.may_subscribe(ch), "subscribe to this channel"),
        Need::Publish(ch) => (claims.may_publish(ch), "publish to this channel"),
        Need::Admin => (claims.is_admin(), "use the admin endpoints"),
        Need::Nothing => (true, ""),
    };
    let may_publish = match need {
        Need::Subscribe(ch) => claims.may_publish(ch),
        _ => false,
    };
    let grant = Grant {
        may_publish,
        expires: claims.expires_at_unix(),
    };
    (allowed, what, grant)
}

/// Why a request is refused (RFC 6750 section 3.1).
enum Refusal<'a> {
    /// No token at all: 401, the bare challenge.
    NoToken,
    /// A token that is malformed, badly signed, of a refused `alg` or
    /// outside `nbf`..`exp`: 401, `error="invalid_token"`.
    InvalidToken(&'a str),
    /// A valid token that does not cover the request: 403,
    /// `error="insufficient_scope"`.
    InsufficientScope(&'a str),
}

fn refuse(app: &mut App, io: &mut Io, id: ConnId, ctx: Ctx<'_>, why: Refusal<'_>) {
    let (status, challenge, sentence) = match why {
        Refusal::NoToken => (401, bearer::CHALLENGE, "this needs an access token"),
        Refusal::InvalidToken(s) => (401, bearer::CHALLENGE_INVALID_TOKEN, s),
        Refusal::InsufficientScope(s) => (403, bearer::CHALLENGE_INSUFFICIENT_SCOPE, s),
    };
    let body = http::error_body(sentence);
    http::respond_full(
        app,
        io,
        id,
        ctx,
        status,
        Some(http::JSON),
        &[("WWW-Authenticate", challenge)],
        body.as_bytes(),
    );
}

/// A stream (WebSocket, event stream) does not outlive its token: a
/// deadline at `exp` ends it (`expired`).
pub fn arm_expiry(io: &mut Io, id: ConnId, grant: Grant) {
    let Some(exp) = grant.expires else { return };
    let now = date::unix_millis_now();
    let left = Duration::from_millis((exp * 1000).saturating_sub(now));
    set_wait(io, id, Wait::TokenExpiry, Some(left));
}

/// The token of a stream expired: a WebSocket is closed with 1008 `token
/// expired` (the client reconnects with a fresh token and resumes from its
/// last id); an event stream's response ends.
pub fn expired(app: &mut App, io: &mut Io, id: ConnId) {
    app.trace
        .event(io.peer(id), "token expired: ending the stream");
    match io.state(id).map(|s| &s.kind) {
        Some(Kind::Ws(_)) => websocket::close(app, io, id, ws_close::POLICY, "token expired", true),
        Some(_) => io.finish(id, CloseReason::Normal),
        None => {}
    }
}
