//! Webhook URLs (RFC 3986 section 3) and the rule of where the server may
//! send requests.
//!
//! ```text
//!   http :// 127.0.0.1 : 9000 /hook?x=1
//!   └┬─┘    └───┬───┘  └─┬┘ └───┬────┘
//!  scheme     host     port  path-and-query (the request-target we send)
//!
//!   host = IPv4 literal | "[" IPv6 literal "]" | "localhost" | DNS name
//! ```
//!
//! Only `http://` (no TLS here). A host that is an address literal or
//! `localhost` has its address at once ([`Url::ip`] is `Some`); a DNS name
//! has none until it is resolved, which the caller does off the event loop
//! before each send (`net::resolve`), because the standard resolver blocks.
//!
//! Where the server may send is an SSRF question: a server that POSTs to
//! any URL a client names can be turned against the network it sits in
//! (cloud metadata endpoints, admin panels), so only loopback and hosts
//! named by `--webhook-allow` are accepted ([`Url::is_allowed`]), at
//! registration and again at each send. A DNS name is allowed only because
//! an entry names it; the addresses it resolves to are not checked against
//! the list again (the operator vouched for the name), but the caller
//! refuses an address that is this server's own.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// A parsed webhook URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// The host as written (for `Host:`), brackets kept for IPv6.
    pub host: String,
    /// The address when the host is a literal or `localhost`; `None` for a
    /// DNS name, which must be resolved before each send.
    pub ip: Option<IpAddr>,
    pub port: u16,
    /// Path and query, at least `/`.
    pub target: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlError {
    NotHttp,
    /// Not an address literal, `localhost` or a valid host name.
    BadHost,
    /// A host made of numbers that is not a dotted-quad IPv4 address
    /// (`2130706433`, `127.1`, `0x7f.0.0.1`): the C resolver would read it
    /// as an address in a legacy form (`inet_aton`), so it is no name.
    NumericHost,
    BadPort,
    Userinfo,
}

// `NeedsDns` ("names are not resolved") is gone: a DNS name now parses,
// with `ip: None`, and whether the server may send there is `is_allowed`'s
// question (only if `--webhook-allow` names it).

impl std::fmt::Display for UrlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            UrlError::NotHttp => "the URL must start with http://",
            UrlError::BadHost => {
                "the URL's host is not an IP address, localhost or a valid host name"
            }
            UrlError::NumericHost => {
                "the URL's host is a number but not an IPv4 address like 192.0.2.1"
            }
            UrlError::BadPort => "the URL's port is not a number from 1 to 65535",
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
        Some(p) => parse_port(p).ok_or(UrlError::BadPort)?,
    };
    let ip = parse_host(host)?;
    Ok(Url {
        host: host.to_string(),
        ip,
        port,
        target,
    })
}

/// `port = *DIGIT` (RFC 3986 section 3.2.3), here 1 to 65535 and at least
/// one digit: no sign, no space.
pub fn parse_port(p: &str) -> Option<u16> {
    if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    p.parse::<u16>().ok().filter(|&n| n > 0)
}

/// `host[:port]`, with IPv6 literals in brackets (RFC 3986 section 3.2.2).
/// The port is returned as written, unchecked.
pub fn split_host_port(authority: &str) -> Result<(&str, Option<&str>), UrlError> {
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

/// The address a host names without DNS: `Some` for an IP literal or
/// `localhost` (RFC 6761 section 6.3: localhost is always loopback, never
/// looked up), `None` for a valid DNS name, an error for anything else.
pub fn parse_host(host: &str) -> Result<Option<IpAddr>, UrlError> {
    if host.is_empty() {
        return Err(UrlError::BadHost);
    }
    // IP-literal = "[" IPv6address "]" (RFC 3986 section 3.2.2; IPvFuture
    // is not accepted).
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return v6.parse().map(Some).map_err(|_| UrlError::BadHost);
    }
    if host.eq_ignore_ascii_case("localhost") {
        return Ok(Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    }
    // IPv4address = dec-octet "." dec-octet "." dec-octet "." dec-octet
    // (RFC 3986 section 3.2.2); std's parser takes exactly that form.
    if let Ok(v4) = host.parse::<Ipv4Addr>() {
        return Ok(Some(IpAddr::V4(v4)));
    }
    match check_dns_name(host) {
        Ok(()) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Is `name` a host name that may be looked up: RFC 1123 section 2.1
/// (which relaxes RFC 952), see [`check_dns_name`].
pub fn is_dns_name(name: &str) -> bool {
    check_dns_name(name).is_ok()
}

/// Longest name: 253 characters of text, the 255 octets of RFC 1035
/// section 2.3.4 less the length prefix and the root label.
const MAX_NAME: usize = 253;
/// Longest label (RFC 1035 section 2.3.4).
const MAX_LABEL: usize = 63;

/// The rules of a host name, each where it is enforced:
///
/// ```text
///   name  = label *( "." label )        at most 253 characters
///   label = let-dig [ *61( let-dig / "-" ) let-dig ]
///                                        1..63 letters, digits, hyphens,
///                                        not starting or ending with "-"
/// ```
///
/// No trailing dot (`example.com.`): it is valid DNS, but it would make two
/// spellings of one allow-list entry. And the last label is not a number:
/// RFC 1123 section 2.1 notes a host name never has the dotted-decimal
/// form because the top-level label is alphabetic, and the C resolver
/// reads names like `2130706433` or `0x7f.1` as addresses (`inet_aton`),
/// which would slip an address past a rule written for names.
fn check_dns_name(name: &str) -> Result<(), UrlError> {
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(UrlError::BadHost);
    }
    let mut last = "";
    for label in name.split('.') {
        let b = label.as_bytes();
        let ok = !b.is_empty()
            && b.len() <= MAX_LABEL
            && b.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'-')
            && b[0] != b'-'
            && b[b.len() - 1] != b'-';
        if !ok {
            return Err(UrlError::BadHost);
        }
        last = label;
    }
    if is_numeric_label(last) {
        return Err(UrlError::NumericHost);
    }
    Ok(())
}

/// A label `inet_aton` would take as a number: decimal or octal digits, or
/// `0x` followed by hex digits.
fn is_numeric_label(label: &str) -> bool {
    let b = label.as_bytes();
    match b {
        [b'0', b'x' | b'X', hex @ ..] => hex.iter().all(u8::is_ascii_hexdigit),
        _ => b.iter().all(u8::is_ascii_digit),
    }
}

impl Url {
    /// Where to connect, when the host is a literal or `localhost`; `None`
    /// for a DNS name (resolve [`Url::dns_name`] first).
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        self.ip.map(|ip| SocketAddr::new(ip, self.port))
    }

    /// The name to resolve before each send, when the host is one.
    pub fn dns_name(&self) -> Option<&str> {
        match self.ip {
            None => Some(&self.host),
            Some(_) => None,
        }
    }

    /// May the server send here? Loopback always; otherwise an entry of
    /// `--webhook-allow` (`HOST` for any port, `HOST:PORT` for one). A DNS
    /// name only when an entry is that name (ASCII case-insensitive, RFC
    /// 4343): an entry that is an address never allows a name, since what
    /// the name resolves to is not known here and may change.
    pub fn is_allowed(&self, allow: &[String]) -> bool {
        if self.ip.is_some_and(|ip| ip.is_loopback()) {
            return true;
        }
        allow.iter().any(|entry| {
            let (h, p) = match split_host_port(entry) {
                Ok(x) => x,
                Err(_) => return false,
            };
            let port_matches = p.is_none_or(|p| parse_port(p) == Some(self.port));
            let host_matches = match (self.ip, parse_host(h)) {
                // An address: the same text, or an entry for the same address.
                (Some(ip), Ok(entry_ip)) => {
                    h.eq_ignore_ascii_case(&self.host) || entry_ip == Some(ip)
                }
                // A name: only an entry that is the same name.
                (None, Ok(None)) => h.eq_ignore_ascii_case(&self.host),
                _ => false,
            };
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
        assert_eq!((u.ip, u.port), (Some(IpAddr::V4(Ipv4Addr::LOCALHOST)), 80));
        assert_eq!(u.dns_name(), None);
        let u = parse("http://[::1]:8080").unwrap();
        assert_eq!((u.host.as_str(), u.target.as_str()), ("[::1]", "/"));
        assert!(u.is_allowed(&[]));
        assert_eq!(parse("http://127.0.0.2?a=b").unwrap().target, "/?a=b");
        assert_eq!(parse("http://127.0.0.1/p#frag").unwrap().target, "/p");
        assert_eq!(
            parse("http://127.0.0.1:9000/").unwrap().socket_addr(),
            Some("127.0.0.1:9000".parse().unwrap())
        );
    }

    #[test]
    fn refused_urls() {
        assert_eq!(parse("https://127.0.0.1/"), Err(UrlError::NotHttp));
        assert_eq!(parse("ftp://x"), Err(UrlError::NotHttp));
        assert_eq!(parse("http://127.0.0.1:0/"), Err(UrlError::BadPort));
        assert_eq!(parse("http://127.0.0.1:99999/"), Err(UrlError::BadPort));
        assert_eq!(parse("http://127.0.0.1:+80/"), Err(UrlError::BadPort));
        assert_eq!(parse("http://127.0.0.1:/"), Err(UrlError::BadPort));
        assert_eq!(parse("http://u:p@127.0.0.1/"), Err(UrlError::Userinfo));
        assert_eq!(parse("http:///x"), Err(UrlError::BadHost));
        assert_eq!(parse("http://[::1/"), Err(UrlError::BadHost));
        assert_eq!(parse("http://127.0.0.1/a b"), Err(UrlError::BadHost));
    }

    // What `NeedsDns` used to refuse now parses, with no address yet; it is
    // still not allowed unless `--webhook-allow` names it.
    #[test]
    fn dns_name_parses_without_address() {
        let u = parse("http://Hooks.Example.com:8080/in").unwrap();
        assert_eq!(
            (u.host.as_str(), u.ip, u.port),
            ("Hooks.Example.com", None, 8080)
        );
        assert_eq!(u.dns_name(), Some("Hooks.Example.com"));
        assert_eq!(u.socket_addr(), None);
        assert!(!u.is_allowed(&[]));
    }

    #[test]
    fn dns_name_max_label_ok() {
        assert!(is_dns_name(&format!("{}.com", "a".repeat(63))));
    }
    #[test]
    fn dns_name_label_too_long() {
        assert!(!is_dns_name(&format!("{}.com", "a".repeat(64))));
    }
    #[test]
    fn dns_name_max_length_ok() {
        let name = format!("{0}.{0}.{0}.{1}", "a".repeat(63), "b".repeat(61));
        assert_eq!(name.len(), 253);
        assert!(is_dns_name(&name));
    }
    #[test]
    fn dns_name_too_long() {
        let name = format!("{0}.{0}.{0}.{1}", "a".repeat(63), "b".repeat(62));
        assert!(!is_dns_name(&name));
    }
    #[test]
    fn dns_name_digit_first_label_ok() {
        assert!(is_dns_name("3com.example"));
    }
    #[test]
    fn dns_name_hyphen_first() {
        assert_eq!(parse("http://-a.example/"), Err(UrlError::BadHost));
    }
    #[test]
    fn dns_name_hyphen_last() {
        assert_eq!(parse("http://a-.example/"), Err(UrlError::BadHost));
    }
    #[test]
    fn dns_name_empty_label() {
        assert_eq!(parse("http://a..example/"), Err(UrlError::BadHost));
    }
    #[test]
    fn dns_name_trailing_dot() {
        assert_eq!(parse("http://example.com./"), Err(UrlError::BadHost));
    }
    #[test]
    fn dns_name_underscore() {
        assert_eq!(parse("http://a_b.example/"), Err(UrlError::BadHost));
    }
    #[test]
    fn dns_name_non_ascii() {
        assert_eq!(parse("http://café.example/"), Err(UrlError::BadHost));
    }
    #[test]
    fn numeric_host_decimal_integer() {
        assert_eq!(parse("http://2130706433/"), Err(UrlError::NumericHost));
    }
    #[test]
    fn numeric_host_short_dotted() {
        assert_eq!(parse("http://127.1/"), Err(UrlError::NumericHost));
    }
    #[test]
    fn numeric_host_hex() {
        assert_eq!(parse("http://0x7f.0.0.0x1/"), Err(UrlError::NumericHost));
    }
    #[test]
    fn numeric_host_leading_zero_octet() {
        assert_eq!(parse("http://010.0.0.1/"), Err(UrlError::NumericHost));
    }
    #[test]
    fn numeric_host_octet_too_big() {
        assert_eq!(parse("http://256.0.0.1/"), Err(UrlError::NumericHost));
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

    #[test]
    fn allow_list_names() {
        let u = parse("http://hooks.example.com:8080/").unwrap();
        assert!(u.is_allowed(&["hooks.example.com".into()]));
        assert!(u.is_allowed(&["HOOKS.example.COM:8080".into()]));
        assert!(!u.is_allowed(&["hooks.example.com:8081".into()]));
        assert!(!u.is_allowed(&["example.com".into()]));
        assert!(!u.is_allowed(&["other.example.com".into()]));
    }

    #[test]
    fn address_entry_never_allows_a_name() {
        let u = parse("http://hooks.example.com/").unwrap();
        assert!(!u.is_allowed(&["10.1.2.3".into(), "127.0.0.1".into()]));
    }

    #[test]
    fn name_entry_never_allows_an_address() {
        let u = parse("http://10.1.2.3/").unwrap();
        assert!(!u.is_allowed(&["hooks.example.com".into()]));
    }

    #[test]
    fn localhost_allowed_without_entry() {
        assert!(parse("http://LocalHost:9/").unwrap().is_allowed(&[]));
    }

    #[test]
    fn name_that_is_not_localhost_is_not_loopback() {
        // It may well resolve to 127.0.0.1, but only an entry allows a name.
        assert!(!parse("http://localhost.example/").unwrap().is_allowed(&[]));
    }
}
