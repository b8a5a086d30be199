//! The paths of docs/api.md and the methods each allows. A pure function of the
//! path, so the whole table is testable without a socket.

use std::borrow::Cow;

use crate::hub::is_valid_name;
use crate::wire::query::percent_decode;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route<'a> {
    /// `/`: the demo page, or the chat room when upgraded.
    Index,
    /// `/pushwire.js`: the browser client library.
    ClientLibrary,
    Submit,
    CheckStatus,
    /// `/channels/{ch}` and below.
    Channel(Cow<'a, str>, ChannelOp),
    /// `/sse`: the clock.
    Sse,
    Echo,
    Webhooks,
    Webhook(Cow<'a, str>),
    WebhookDeliveries(Cow<'a, str>),
    WebhookReceiver,
    Stats,
    /// `/metrics`: `/stats` for Prometheus.
    Metrics,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelOp {
    Publish,
    Poll,
    Events,
    Ws,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteError {
    /// 404: no such path.
    NotFound,
    /// 400: a known path with a malformed segment.
    BadSegment(&'static str),
}

const GET: &[&str] = &["GET", "HEAD"];
const POST: &[&str] = &["POST"];
const GET_POST: &[&str] = &["GET", "HEAD", "POST"];
const DELETE: &[&str] = &["DELETE"];

impl Route<'_> {
    /// The methods this path answers (besides OPTIONS, which every known
    /// path answers). HEAD goes wherever GET does (docs/api.md).
    pub fn methods(&self) -> &'static [&'static str] {
        match self {
            Route::Submit => POST,
            Route::Channel(_, ChannelOp::Publish) => POST,
            Route::Webhooks | Route::WebhookReceiver => GET_POST,
            Route::Webhook(_) => DELETE,
            _ => GET,
        }
    }

    /// The `Allow` header value (RFC 9110 section 10.2.1).
    pub fn allow(&self) -> String {
        let mut s = self.methods().join(", ");
        s.push_str(", OPTIONS");
        s
    }
}

/// Maps a request path (without the query) to its route.
pub fn resolve(path: &str) -> Result<Route<'_>, RouteError> {
    let route = match path {
        "/" => Route::Index,
        "/pushwire.js" => Route::ClientLibrary,
        "/submit" => Route::Submit,
        "/checkstatus" => Route::CheckStatus,
        "/sse" => Route::Sse,
        "/echo" => Route::Echo,
        "/webhooks" => Route::Webhooks,
        "/webhook-receiver" => Route::WebhookReceiver,
        "/stats" => Route::Stats,
        "/metrics" => Route::Metrics,
        _ => {
            let mut parts = path.strip_prefix('/').unwrap_or(path).split('/');
            match (parts.next(), parts.next(), parts.next(), parts.next()) {
                (Some("channels"), Some(seg), op, None) => {
                    let op = match op {
                        None => ChannelOp::Publish,
                        Some("poll") => ChannelOp::Poll,
                        Some("events") => ChannelOp::Events,
                        Some("ws") => ChannelOp::Ws,
                        Some(_) => return Err(RouteError::NotFound),
                    };
                    Route::Channel(channel_name(seg)?, op)
                }
                (Some("webhooks"), Some(id), None, None) if !id.is_empty() => {
                    Route::Webhook(decoded(id)?)
                }
                (Some("webhooks"), Some(id), Some("deliveries"), None) if !id.is_empty() => {
                    Route::WebhookDeliveries(decoded(id)?)
                }
                _ => return Err(RouteError::NotFound),
            }
        }
    };
    Ok(route)
}

/// A percent-decoded path segment (`wh%3A1` is `wh:1`).
fn decoded(seg: &str) -> Result<Cow<'_, str>, RouteError> {
    percent_decode(seg, false)
        .map_err(|_| RouteError::BadSegment("the path is not valid percent-encoding"))
}

/// docs/api.md section 2: the name must match `[A-Za-z0-9_.-]{1,64}` after
/// percent-decoding of the path segment.
fn channel_name(seg: &str) -> Result<Cow<'_, str>, RouteError> {
    let name = percent_decode(seg, false)
        .map_err(|_| RouteError::BadSegment("the channel name is not valid percent-encoding"))?;
    if !is_valid_name(&name) {
        return Err(RouteError::BadSegment(
            "a channel name is 1 to 64 characters of A-Z, a-z, 0-9, '_', '.' and '-'",
        ));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_paths() {
        assert_eq!(resolve("/"), Ok(Route::Index));
        assert_eq!(resolve("/checkstatus"), Ok(Route::CheckStatus));
        assert_eq!(resolve("/metrics"), Ok(Route::Metrics));
        assert_eq!(Route::Metrics.allow(), "GET, HEAD, OPTIONS");
        assert_eq!(resolve("/nope"), Err(RouteError::NotFound));
        assert_eq!(resolve("/submit/"), Err(RouteError::NotFound));
    }

    #[test]
    fn channel_paths() {
        assert_eq!(
            resolve("/channels/news"),
            Ok(Route::Channel("news".into(), ChannelOp::Publish))
        );
        assert_eq!(
            resolve("/channels/a.b/poll"),
            Ok(Route::Channel("a.b".into(), ChannelOp::Poll))
        );
        assert_eq!(
            resolve("/channels/n%65ws/ws"),
            Ok(Route::Channel("news".into(), ChannelOp::Ws))
        );
        assert_eq!(resolve("/channels/news/other"), Err(RouteError::NotFound));
        assert_eq!(resolve("/channels/news/poll/x"), Err(RouteError::NotFound));
        assert!(matches!(
            resolve("/channels/a%20b/poll"),
            Err(RouteError::BadSegment(_))
        ));
        assert!(matches!(
            resolve("/channels//poll"),
            Err(RouteError::BadSegment(_))
        ));
        assert!(matches!(
            resolve("/channels/%zz"),
            Err(RouteError::BadSegment(_))
        ));
    }

    #[test]
    fn webhook_paths() {
        assert_eq!(resolve("/webhooks/wh:1"), Ok(Route::Webhook("wh:1".into())));
        assert_eq!(
            resolve("/webhooks/wh%3A1"),
            Ok(Route::Webhook("wh:1".into()))
        );
        assert_eq!(
            resolve("/webhooks/wh:1/deliveries"),
            Ok(Route::WebhookDeliveries("wh:1".into()))
        );
    }

    #[test]
    fn allow_lists() {
        assert_eq!(Route::Submit.allow(), "POST, OPTIONS");
        assert_eq!(Route::CheckStatus.allow(), "GET, HEAD, OPTIONS");
        assert_eq!(Route::Webhooks.allow(), "GET, HEAD, POST, OPTIONS");
    }
}
