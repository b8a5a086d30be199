//! Webhook URLs (RFC 3986 section 3) and the rule of where the server may
//! send requests.
//!
//! ```text
//!   http :// 127.0.0.1 : 9000 /hook?x=1
//!   └┬─┘    └───┬───┘  └─┬┘ └───┬────┘
//!  scheme     host     port  path-and-query (the request-target we send)
//!
//!   host = IPv4 literal | "[" IPv6 literal "]" | "localhost"
//! ```
//!
//! Only `http://` (no TLS here) and only hosts that need no DNS lookup:
//! resolving a name would block the event loop. Where the server may send
//! is an SSRF question: a server that POSTs to any URL a client names can
//! be turned against the network it sits in (cloud metadata endpoints,
//! admin panels), so only loopback and hosts named by `--webhook-allow` are
//! accepted, at registration and again at each send.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// A parsed webhook URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// The host as written (for `Host:`), brackets kept for IPv6.
    pub host: String,
    pub ip: IpAddr,
    pub port: u16,
    /// Path and query, at least `/`.
    pub target: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlError {
    NotHttp,
    BadHost,
    BadPort,
    /// A host name other than localhost: it would need DNS.
    NeedsDns,
    Userinfo,
}

impl std::fmt::Display for UrlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            UrlError::NotHttp => "the URL must start with http://",
            UrlError::BadHost => "the URL's host is not valid",
            UrlError::BadPort => "the URL's port is not a number from 1 to 65535",
            UrlError::NeedsDns => {
                "the URL's host must be an IP address or localhost (names are not resolved)"
            }
            UrlError::Userinfo => "the URL must not carry a user name or password",
        })
    }
}

impl std::error::Error for UrlError {}

/// Parses `http://host[:port][/path][?query]`. A fragment is dropped (it
/// is never sent, RFC 3986 section 3.5).
pub fn parse(url: &str) -> Result<Url, UrlError> {
    let scheme_ok = url.len() >= 7
        && url
            .get(..7)
            .is_some_and(|s| s.eq_ignore_ascii_case("http://"));
    if !scheme_ok {
        return Err(UrlError::NotHttp);
    }
    let rest = &url[7..];
    let rest = rest.split('#').next().unwrap_or("");
    let (authority, target) = match rest.find(['/', '?']) {
        Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_string()),
        Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
        None => (rest, "/".to_string()),
    };
    if authority.contains('@') {
        return Err(UrlError::Userinfo);
    }
    if target.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(UrlError::BadHost);
    }
    let (host, port) = split_host_port(authority)?;
    let port = match port {
        None => 80,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => n,
            _ => return Err(UrlError::BadPort),
        },
    };
    let ip = host_ip(host)?;
    Ok(Url {
        host: host.to_string(),
        ip,
        port,
        target,
    })
}

/// `host[:port]`, with IPv6 literals in brackets.
fn split_host_port(authority: &str) -> Result<(&str, Option<&str>), UrlError> {
    if authority.starts_with('[') {
        let end = authority.find(']').ok_or(UrlError::BadHost)?;
        let host = &authority[..=end];
        return match &authority[end + 1..] {
            "" => Ok((host, None)),
            p => p
                .strip_prefix(':')
                .map(|p| (host, Some(p)))
                .ok_or(UrlError::BadHost),
        };
    }
    match authority.split_once(':') {
        Some((h, p)) => Ok((h, Some(p))),
        None => Ok((authority, None)),
    }
}

/// The address of a host without DNS: an IP literal, or `localhost`
/// (RFC 6761 section 6.3: localhost is always loopback).
fn host_ip(host: &str) -> Result<IpAddr, UrlError> {
    if host.is_empty() {
        return Err(UrlError::BadHost);
    }
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return v6.parse().map_err(|_| UrlError::BadHost);
    }
    if host.eq_ignore_ascii_case("localhost") {
        return Ok(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    if let Ok(v4) = host.parse::<Ipv4Addr>() {
        return Ok(IpAddr::V4(v4));
    }
    if host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    {
        return Err(UrlError::NeedsDns);
    }
    Err(UrlError::BadHost)
}

impl Url {
    pub fn socket_addr(&self) -> SocketAddr {
        SocketAddr::new(self.ip, self.port)
    }

    /// May the server send here? Loopback always; otherwise an entry of
    /// `--webhook-allow` (`HOST` for any port, `HOST:PORT` for one).
    pub fn is_allowed(&self, allow: &[String]) -> bool {
        if self.ip.is_loopback() {
            return true;
        }
        allow.iter().any(|entry| {
            let (h, p) = match split_host_port(entry) {
                Ok(x) => x,
                Err(_) => return false,
            };
            let host_matches =
                h.eq_ignore_ascii_case(&self.host) || host_ip(h).ok() == Some(self.ip);
            let port_matches = p.is_none_or(|p| p.parse::<u16>().ok() == Some(self.port));
            host_matches && port_matches
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_urls() {
        let u = parse("http://127.0.0.1:9000/hook?x=1").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.target.as_str()),
            ("127.0.0.1", 9000, "/hook?x=1")
        );
        assert!(u.is_allowed(&[]));
        let u = parse("HTTP://localhost/").unwrap();
        assert_eq!((u.ip, u.port), (IpAddr::V4(Ipv4Addr::LOCALHOST), 80));
        let u = parse("http://[::1]:8080").unwrap();
        assert_eq!((u.host.as_str(), u.target.as_str()), ("[::1]", "/"));
        assert!(u.is_allowed(&[]));
        assert_eq!(parse("http://127.0.0.2?a=b").unwrap().target, "/?a=b");
        assert_eq!(parse("http://127.0.0.1/p#frag").unwrap().target, "/p");
    }

    #[test]
    fn refused_urls() {
        assert_eq!(parse("https://127.0.0.1/"), Err(UrlError::NotHttp));
        assert_eq!(parse("ftp://x"), Err(UrlError::NotHttp));
        assert_eq!(parse("http://example.com/"), Err(UrlError::NeedsDns));
        assert_eq!(parse("http://127.0.0.1:0/"), Err(UrlError::BadPort));
        assert_eq!(parse("http://127.0.0.1:99999/"), Err(UrlError::BadPort));
        assert_eq!(parse("http://127.0.0.1:+80/"), Err(UrlError::BadPort));
        assert_eq!(parse("http://u:p@127.0.0.1/"), Err(UrlError::Userinfo));
        assert_eq!(parse("http:///x"), Err(UrlError::BadHost));
        assert_eq!(parse("http://[::1/"), Err(UrlError::BadHost));
        assert_eq!(parse("http://127.0.0.1/a b"), Err(UrlError::BadHost));
    }

    #[test]
    fn allow_list() {
        let u = parse("http://10.1.2.3:8080/").unwrap();
        assert!(!u.is_allowed(&[]));
        assert!(u.is_allowed(&["10.1.2.3".into()]));
        assert!(u.is_allowed(&["10.1.2.3:8080".into()]));
        assert!(!u.is_allowed(&["10.1.2.3:8081".into()]));
        assert!(!u.is_allowed(&["10.1.2.4".into()]));
        assert!(!parse("http://169.254.169.254/").unwrap().is_allowed(&[]));
    }
}
