//! `--redis` URLs: where the backplane is and how to log in to it.
//!
//! The `redis` URI scheme is registered (provisionally) with IANA
//! (iana.org/assignments/uri-schemes/prov/redis); its syntax is RFC 3986's
//! generic one, with the database number as the path. pushwire takes this
//! part of it (docs/api.md section 7):
//!
//! ```text
//!   redis:// alice : s%40cret @ cache.example : 6380 / 2
//!   └─┬──┘   └─┬─┘   └──┬───┘   └─────┬─────┘   └┬─┘   └┬┘
//!   scheme    user  password       host        port   db
//!             └──── userinfo ────┘
//!
//!   userinfo = [ user ] ":" password      percent-encoded (RFC 3986 3.2.1)
//!   host     = IPv4 literal | "[" IPv6 literal "]" | "localhost" | DNS name
//!   port     = 1..65535, default 6379    (RFC 3986 3.2.3)
//!   db       = 0..65535, default 0       ("/" alone is 0 too)
//! ```
//!
//! What the parts become on the wire, on every connection (the subscriber
//! connection too), before anything else ([`RedisUrl::write_handshake`]):
//!
//! ```text
//!   redis://:pw@host        AUTH pw            (any Redis; the "default" user)
//!   redis://alice:pw@host   AUTH alice pw      (Redis 6 ACLs: a named user)
//!   redis://host/2          SELECT 2           (not sent for 0)
//! ```
//!
//! Pub/sub channels are not per database in Redis (a message published
//! with one database selected reaches subscribers of every database), so
//! `SELECT` separates keys (history), not channels.
//!
//! The password is a [`Secret`]: its `Debug` prints `***` and it has no
//! `Display`, so neither a log line, `--trace` nor `/stats` can show it by
//! accident; [`RedisUrl::display_redacted`] is the form to print.
//!
//! **Not accepted** (each a [`RedisUrlError`] with a sentence): `rediss://`
//! (TLS), a Unix socket, query parameters, a fragment, userinfo without a
//! `:` (is `redis://word@host` a user or a password? clients disagree),
//! an empty password.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use super::query::percent_decode;
use super::resp::write_command;
use super::url::{parse_host, parse_port, split_host_port, UrlError};

/// The port when the URL has none (Redis' own default).
pub const DEFAULT_PORT: u16 = 6379;

/// A text that must never be printed: `Debug` shows `***`, there is no
/// `Display`, and [`Secret::expose`] is the one way to read it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(text: String) -> Self {
        Secret(text)
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A parsed `--redis` URL.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl {
    /// The ACL user (Redis 6 and later); `None` logs in as `default`.
    pub user: Option<String>,
    /// The password, percent-decoded; never empty when present.
    pub password: Option<Secret>,
    /// The host as written, brackets kept for IPv6.
    pub host: String,
    /// The address when the host is a literal or `localhost`; `None` for a
    /// DNS name, resolved off the event loop at start and each reconnect.
    pub ip: Option<IpAddr>,
    pub port: u16,
    pub db: u16,
}

// By hand rather than derived, so what it shows is decided here: the
// password only as `***` (the Secret prints that itself anyway).
impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisUrl")
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("host", &self.host)
            .field("ip", &self.ip)
            .field("port", &self.port)
            .field("db", &self.db)
            .finish()
    }
}

/// Why a `--redis` URL is refused: one variant per rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisUrlError {
    /// Not `redis://` (RFC 3986 section 3.1: the scheme is case-insensitive).
    NotRedis,
    /// `rediss://`: TLS is not implemented.
    Tls,
    /// Nothing between `//` (or `@`) and the port or path.
    NoHost,
    /// Not an address literal, `localhost` or a valid host name.
    BadHost,
    /// Digits that are not a dotted-quad IPv4 address (see `wire::url`).
    NumericHost,
    BadPort,
    /// A byte in the userinfo that RFC 3986 section 3.2.1 does not allow
    /// unencoded, or a bad `%` escape, or decoded text that is not UTF-8.
    BadUserinfo,
    /// Userinfo without `:`: it is not clear whether it is a user or a
    /// password.
    NoColon,
    /// `user:@host` or `:@host`.
    EmptyPassword,
    /// A path that is not `/` followed by a number up to 65535.
    BadDb,
    /// `?query` or `#fragment`.
    QueryOrFragment,
}

impl fmt::Display for RedisUrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RedisUrlError::NotRedis => {
                "the Redis URL must look like redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]"
            }
            RedisUrlError::Tls => "rediss:// (Redis over TLS) is not supported; use redis://",
            RedisUrlError::NoHost => "the Redis URL has no host",
            RedisUrlError::BadHost => {
                "the Redis URL's host is not an IP address, localhost or a valid host name"
            }
            RedisUrlError::NumericHost => {
                "the Redis URL's host is a number but not an IPv4 address like 192.0.2.1"
            }
            RedisUrlError::BadPort => "the Redis URL's port is not a number from 1 to 65535",
            RedisUrlError::BadUserinfo => {
                "the Redis URL's user or password has a character that must be \
                 percent-encoded (e.g. @ as %40, / as %2F, % as %25), or a bad %-escape"
            }
            RedisUrlError::NoColon => {
                "write the Redis password after a colon: redis://:PASSWORD@HOST \
                 or redis://USER:PASSWORD@HOST"
            }
            RedisUrlError::EmptyPassword => "the Redis URL's password is empty",
            RedisUrlError::BadDb => {
                "the Redis URL's path must be a database number from 0 to 65535"
            }
            RedisUrlError::QueryOrFragment => {
                "the Redis URL must not have a ?query or #fragment (no options are supported)"
            }
        })
    }
}

impl std::error::Error for RedisUrlError {}

impl From<UrlError> for RedisUrlError {
    fn from(e: UrlError) -> Self {
        match e {
            UrlError::NumericHost => RedisUrlError::NumericHost,
            UrlError::BadPort => RedisUrlError::BadPort,
            _ => RedisUrlError::BadHost,
        }
    }
}

/// Parses `redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]`.
pub fn parse(url: &str) -> Result<RedisUrl, RedisUrlError> {
    let rest = strip_scheme(url)?;
    // The authority ends at the first "/", "?" or "#" (RFC 3986 section
    // 3.2). A password holding one of them unencoded would be cut there and
    // its tail taken for a path; the "@" still to come gives that away.
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    if path.contains('@') {
        return Err(RedisUrlError::BadUserinfo);
    }
    if path.contains(['?', '#']) {
        return Err(RedisUrlError::QueryOrFragment);
    }
    // userinfo "@" host: the last "@", as userinfo may not hold one.
    let (userinfo, host_port) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let (user, password) = match userinfo {
        Some(u) => parse_userinfo(u)?,
        None => (None, None),
    };
    let (host, port) = split_host_port(host_port)?;
    if host.is_empty() {
        return Err(RedisUrlError::NoHost);
    }
    let ip = parse_host(host)?;
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => parse_port(p).ok_or(RedisUrlError::BadPort)?,
    };
    let db = parse_db(path)?;
    Ok(RedisUrl {
        user,
        password,
        host: host.to_string(),
        ip,
        port,
        db,
    })
}

/// `redis://`, any case. `rediss://` gets its own error.
fn strip_scheme(url: &str) -> Result<&str, RedisUrlError> {
    let has = |scheme: &str| {
        url.get(..scheme.len())
            .is_some_and(|s| s.eq_ignore_ascii_case(scheme))
    };
    if has("redis://") {
        Ok(&url["redis://".len()..])
    } else if has("rediss://") {
        Err(RedisUrlError::Tls)
    } else {
        Err(RedisUrlError::NotRedis)
    }
}

/// `[ user ] ":" password`, each percent-decoded.
fn parse_userinfo(userinfo: &str) -> Result<(Option<String>, Option<Secret>), RedisUrlError> {
    // userinfo = *( unreserved / pct-encoded / sub-delims / ":" )
    // (RFC 3986 section 3.2.1); "%" is checked by the decoding below.
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:%".contains(&b);
    if !userinfo.bytes().all(allowed) {
        return Err(RedisUrlError::BadUserinfo);
    }
    // The first ":" separates: a user name cannot hold one unencoded, a
    // password can.
    let (user, password) = userinfo.split_once(':').ok_or(RedisUrlError::NoColon)?;
    // In a URL "+" is a plus; only the form format makes it a space.
    let decode = |s| percent_decode(s, false).map_err(|_| RedisUrlError::BadUserinfo);
    let user = decode(user)?;
    let password = decode(password)?;
    if password.is_empty() {
        return Err(RedisUrlError::EmptyPassword);
    }
    let user = (!user.is_empty()).then(|| user.into_owned());
    Ok((user, Some(Secret::new(password.into_owned()))))
}

/// `""`, `"/"` or `"/" 1*5DIGIT` up to 65535.
fn parse_db(path: &str) -> Result<u16, RedisUrlError> {
    let digits = match path {
        "" | "/" => return Ok(0),
        p => p.strip_prefix('/').ok_or(RedisUrlError::BadDb)?,
    };
    if digits.is_empty() || digits.len() > 5 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(RedisUrlError::BadDb);
    }
    digits.parse().map_err(|_| RedisUrlError::BadDb)
}

/// Everything but RFC 3986's unreserved characters, percent-encoded: safe
/// in userinfo whatever the text holds.
fn push_encoded(out: &mut String, text: &str) {
    use fmt::Write as _;
    for &b in text.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

impl RedisUrl {
    /// Where to connect, when the host is a literal or `localhost`; `None`
    /// for a DNS name (resolve [`RedisUrl::dns_name`] first).
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        self.ip.map(|ip| SocketAddr::new(ip, self.port))
    }

    /// The name to resolve at start and at each reconnect, when the host is
    /// one.
    pub fn dns_name(&self) -> Option<&str> {
        match self.ip {
            None => Some(&self.host),
            Some(_) => None,
        }
    }

    /// The URL for logs, `--trace` and `/stats`: every part explicit, the
    /// password as `***`. E.g. `redis://alice:***@cache.example:6379/2`.
    pub fn display_redacted(&self) -> String {
        self.serialize(Some("***"))
    }

    /// The URL with the password in it, percent-encoded so that it parses
    /// back to an equal value. Only for tests and tools: never log it.
    pub fn to_url_with_password(&self) -> String {
        self.serialize(None)
    }

    fn serialize(&self, password_shown_as: Option<&str>) -> String {
        let mut out = String::from("redis://");
        if let Some(password) = &self.password {
            if let Some(user) = &self.user {
                push_encoded(&mut out, user);
            }
            out.push(':');
            match password_shown_as {
                Some(mask) => out.push_str(mask),
                None => push_encoded(&mut out, password.expose()),
            }
            out.push('@');
        }
        use fmt::Write as _;
        let _ = write!(out, "{}:{}/{}", self.host, self.port, self.db);
        out
    }

    /// The `AUTH` command's arguments, when there is a password:
    /// `AUTH password`, or `AUTH user password` with a user (the two-
    /// argument form exists since Redis 6, with ACLs).
    pub fn auth_command(&self) -> Option<Vec<&[u8]>> {
        let password = self.password.as_ref()?.expose().as_bytes();
        let mut args: Vec<&[u8]> = vec![b"AUTH"];
        if let Some(user) = &self.user {
            args.push(user.as_bytes());
        }
        args.push(password);
        Some(args)
    }

    /// The `SELECT` command's arguments, when the database is not 0 (the
    /// one every connection starts in).
    pub fn select_command(&self) -> Option<[Vec<u8>; 2]> {
        (self.db != 0).then(|| [b"SELECT".to_vec(), self.db.to_string().into_bytes()])
    }

    /// Appends `AUTH` and `SELECT` as needed, for the start of every
    /// connection, and returns how many replies they will get (each is
    /// `+OK` when all is well; see [`explain_error`] for the others).
    pub fn write_handshake(&self, out: &mut Vec<u8>) -> usize {
        let mut replies = 0;
        if let Some(args) = self.auth_command() {
            write_command(out, &args);
            replies += 1;
        }
        if let Some([select, db]) = self.select_command() {
            write_command(out, &[&select, &db]);
            replies += 1;
        }
        replies
    }
}

/// A sentence for the operator, for the error replies the handshake (or
/// a command sent without it) may get. `None` for others: show Redis' own.
///
/// The texts are Redis' (`src/server.c`, `src/acl.c`); their first word is
/// the error code, which is what is matched where there is one.
pub fn explain_error(reply: &str) -> Option<&'static str> {
    let code = reply.split(' ').next().unwrap_or("");
    Some(match code {
        // Redis 6 and later, for AUTH with a wrong user or password.
        "WRONGPASS" => "Redis refused the user name or password given in --redis",
        // Any command before AUTH on a server with a password.
        "NOAUTH" => "Redis requires a password: give it in --redis as redis://:PASSWORD@HOST:PORT",
        // An ACL user that may not run a command pushwire needs.
        "NOPERM" => "the Redis user in --redis lacks a permission pushwire needs",
        "ERR" if reply.contains("invalid password") => {
            "Redis refused the password given in --redis"
        }
        "ERR"
            if reply.contains("no password is set")
                || reply.contains("without any password configured") =>
        {
            "--redis gives a password but this Redis has none set"
        }
        "ERR" if reply.contains("wrong number of arguments for 'auth'") => {
            "this Redis (before 6) takes no user name: write redis://:PASSWORD@HOST"
        }
        "ERR" if reply.contains("DB index is out of range") => {
            "this Redis has no database with the number given in --redis"
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn ok(url: &str) -> RedisUrl {
        parse(url).unwrap_or_else(|e| panic!("{url}: {e}"))
    }

    fn commands(u: &RedisUrl) -> (Vec<u8>, usize) {
        let mut out = Vec::new();
        let n = u.write_handshake(&mut out);
        (out, n)
    }

    // Good URLs.

    #[test]
    fn host_and_port() {
        let u = ok("redis://127.0.0.1:6380");
        assert_eq!(
            (u.ip, u.port, u.db),
            (Some(Ipv4Addr::LOCALHOST.into()), 6380, 0)
        );
        assert_eq!((u.user, u.password), (None, None));
    }
    #[test]
    fn port_defaults_to_6379() {
        assert_eq!(ok("redis://localhost").port, 6379);
    }
    #[test]
    fn scheme_any_case() {
        assert_eq!(ok("REDIS://localhost").port, 6379);
    }
    #[test]
    fn trailing_slash_is_db_0() {
        assert_eq!(ok("redis://localhost:6379/").db, 0);
    }
    #[test]
    fn db_number() {
        assert_eq!(ok("redis://localhost/15").db, 15);
    }
    #[test]
    fn db_max() {
        assert_eq!(ok("redis://localhost/65535").db, 65535);
    }
    #[test]
    fn ipv6_literal() {
        let u = ok("redis://[::1]:7000/1");
        assert_eq!((u.host.as_str(), u.port), ("[::1]", 7000));
        assert_eq!(u.socket_addr(), Some("[::1]:7000".parse().unwrap()));
    }
    #[test]
    fn dns_name_has_no_address_yet() {
        let u = ok("redis://cache.example.com:6379");
        assert_eq!((u.ip, u.dns_name()), (None, Some("cache.example.com")));
        assert_eq!(u.socket_addr(), None);
    }
    #[test]
    fn password_only() {
        let u = ok("redis://:s3cret@localhost");
        assert_eq!(u.user, None);
        assert_eq!(u.password.as_ref().map(Secret::expose), Some("s3cret"));
    }
    #[test]
    fn user_and_password() {
        let u = ok("redis://alice:s3cret@localhost");
        assert_eq!(u.user.as_deref(), Some("alice"));
        assert_eq!(u.password.as_ref().map(Secret::expose), Some("s3cret"));
    }
    #[test]
    fn password_percent_decoded() {
        let u = ok("redis://:p%40ss%2Fw%25rd%3A@localhost");
        assert_eq!(u.password.unwrap().expose(), "p@ss/w%rd:");
    }
    #[test]
    fn password_keeps_plus_and_colons() {
        let u = ok("redis://:a+b:c@localhost");
        assert_eq!(u.password.unwrap().expose(), "a+b:c");
    }
    #[test]
    fn password_utf8_encoded() {
        assert_eq!(
            ok("redis://:caf%C3%A9@localhost")
                .password
                .unwrap()
                .expose(),
            "café"
        );
    }
    #[test]
    fn user_percent_decoded() {
        assert_eq!(ok("redis://a%3Ab:x@localhost").user.as_deref(), Some("a:b"));
    }

    // Bad URLs, one rule each.

    #[test]
    fn http_scheme() {
        assert_eq!(parse("http://localhost:6379"), Err(RedisUrlError::NotRedis));
    }
    #[test]
    fn no_scheme() {
        assert_eq!(parse("localhost:6379"), Err(RedisUrlError::NotRedis));
    }
    #[test]
    fn tls_scheme() {
        assert_eq!(parse("rediss://localhost:6380"), Err(RedisUrlError::Tls));
    }
    #[test]
    fn empty_host() {
        assert_eq!(parse("redis://:6379"), Err(RedisUrlError::NoHost));
    }
    #[test]
    fn empty_host_after_userinfo() {
        assert_eq!(parse("redis://:pw@/0"), Err(RedisUrlError::NoHost));
    }
    #[test]
    fn bad_host_char() {
        assert_eq!(parse("redis://ca_che:6379"), Err(RedisUrlError::BadHost));
    }
    #[test]
    fn unclosed_ipv6() {
        assert_eq!(parse("redis://[::1:6379"), Err(RedisUrlError::BadHost));
    }
    #[test]
    fn numeric_host() {
        assert_eq!(parse("redis://2130706433"), Err(RedisUrlError::NumericHost));
    }
    #[test]
    fn port_zero() {
        assert_eq!(parse("redis://localhost:0"), Err(RedisUrlError::BadPort));
    }
    #[test]
    fn port_too_big() {
        assert_eq!(
            parse("redis://localhost:65536"),
            Err(RedisUrlError::BadPort)
        );
    }
    #[test]
    fn port_empty() {
        assert_eq!(parse("redis://localhost:/0"), Err(RedisUrlError::BadPort));
    }
    #[test]
    fn port_signed() {
        assert_eq!(parse("redis://localhost:+1"), Err(RedisUrlError::BadPort));
    }
    #[test]
    fn userinfo_without_colon() {
        assert_eq!(
            parse("redis://secret@localhost"),
            Err(RedisUrlError::NoColon)
        );
    }
    #[test]
    fn empty_password() {
        assert_eq!(
            parse("redis://alice:@localhost"),
            Err(RedisUrlError::EmptyPassword)
        );
    }
    #[test]
    fn empty_user_and_password() {
        assert_eq!(
            parse("redis://:@localhost"),
            Err(RedisUrlError::EmptyPassword)
        );
    }
    #[test]
    fn raw_at_in_password() {
        assert_eq!(
            parse("redis://:p@ss@localhost"),
            Err(RedisUrlError::BadUserinfo)
        );
    }
    #[test]
    fn raw_slash_in_password() {
        assert_eq!(
            parse("redis://:pa/ss@localhost"),
            Err(RedisUrlError::BadUserinfo)
        );
    }
    #[test]
    fn raw_space_in_password() {
        assert_eq!(
            parse("redis://:pa ss@localhost"),
            Err(RedisUrlError::BadUserinfo)
        );
    }
    #[test]
    fn bad_percent_escape() {
        assert_eq!(
            parse("redis://:pa%zz@localhost"),
            Err(RedisUrlError::BadUserinfo)
        );
    }
    #[test]
    fn password_not_utf8() {
        assert_eq!(
            parse("redis://:%FF@localhost"),
            Err(RedisUrlError::BadUserinfo)
        );
    }
    #[test]
    fn db_not_a_number() {
        assert_eq!(parse("redis://localhost/abc"), Err(RedisUrlError::BadDb));
    }
    #[test]
    fn db_too_big() {
        assert_eq!(parse("redis://localhost/65536"), Err(RedisUrlError::BadDb));
    }
    #[test]
    fn db_negative() {
        assert_eq!(parse("redis://localhost/-1"), Err(RedisUrlError::BadDb));
    }
    #[test]
    fn db_with_more_path() {
        assert_eq!(parse("redis://localhost/1/2"), Err(RedisUrlError::BadDb));
    }
    #[test]
    fn query_refused() {
        assert_eq!(
            parse("redis://localhost/0?timeout=1"),
            Err(RedisUrlError::QueryOrFragment)
        );
    }
    #[test]
    fn fragment_refused() {
        assert_eq!(
            parse("redis://localhost#x"),
            Err(RedisUrlError::QueryOrFragment)
        );
    }

    // Printing.

    #[test]
    fn redacted_hides_password() {
        let u = ok("redis://alice:hunter2@cache.example/2");
        assert_eq!(
            u.display_redacted(),
            "redis://alice:***@cache.example:6379/2"
        );
        assert!(!format!("{u:?}").contains("hunter2"));
        assert!(format!("{u:?}").contains("***"));
    }
    #[test]
    fn redacted_without_password() {
        assert_eq!(
            ok("redis://[::1]").display_redacted(),
            "redis://[::1]:6379/0"
        );
    }
    #[test]
    fn secret_debug_is_stars() {
        assert_eq!(format!("{:?}", Secret::new("x".into())), "***");
    }
    #[test]
    fn round_trip_with_password() {
        let u = ok("redis://a%3Ab:p%40ss%20w:rd@localhost:7000/3");
        assert_eq!(
            u.to_url_with_password(),
            "redis://a%3Ab:p%40ss%20w%3Ard@localhost:7000/3"
        );
        assert_eq!(ok(&u.to_url_with_password()), u);
    }

    // The commands.

    #[test]
    fn no_password_db_0_sends_nothing() {
        assert_eq!(commands(&ok("redis://localhost")), (Vec::new(), 0));
    }
    #[test]
    fn auth_with_password_only() {
        let (out, n) = commands(&ok("redis://:pw@localhost"));
        assert_eq!(
            (out.as_slice(), n),
            (&b"*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n"[..], 1)
        );
    }
    #[test]
    fn auth_with_acl_user() {
        let (out, n) = commands(&ok("redis://al:pw@localhost"));
        assert_eq!(
            (out.as_slice(), n),
            (&b"*3\r\n$4\r\nAUTH\r\n$2\r\nal\r\n$2\r\npw\r\n"[..], 1)
        );
    }
    #[test]
    fn auth_then_select() {
        let (out, n) = commands(&ok("redis://:pw@localhost/12"));
        let expected = b"*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n*2\r\n$6\r\nSELECT\r\n$2\r\n12\r\n";
        assert_eq!((out.as_slice(), n), (&expected[..], 2));
    }

    #[test]
    fn explains_known_errors() {
        assert!(
            explain_error("WRONGPASS invalid username-password pair or user is disabled.")
                .is_some()
        );
        assert!(explain_error("NOAUTH Authentication required.").is_some());
        assert!(explain_error("ERR invalid password").is_some());
        assert!(explain_error(
            "ERR AUTH <password> called without any password configured for the default user. \
             Are you sure your configuration is correct?"
        )
        .is_some());
        assert!(explain_error("ERR DB index is out of range").is_some());
        assert_eq!(explain_error("ERR unknown command 'FOO'"), None);
    }
}
