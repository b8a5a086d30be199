//! `wire::url`: webhook URLs and the SSRF rule (RFC 3986 section 3).
//!
//! Input: a URL as text (lossy UTF-8), then an allow-list entry.
//!
//! Properties:
//! * `parse` never panics; `Ok` implies the scheme was `http://` (any
//!   case), the port is 1..=65535, the target starts with `/` and holds no
//!   space or control byte, and the host has no `@` (no userinfo);
//! * the IP is what the host says: an IPv4 literal parses to itself,
//!   `localhost` is 127.0.0.1, a bracketed IPv6 literal to itself, and
//!   any other host is a DNS name (`ip` None, `is_dns_name`) whose last
//!   label is not a number;
//! * `is_allowed` with an empty list is exactly "the IP is loopback", an
//!   entry naming the host (and its port, or none) allows it, and a DNS
//!   name is allowed only by an entry that is that name.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use libfuzzer_sys::fuzz_target;
use pushwire::wire::url::{is_dns_name, parse, split_host_port};

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let text = String::from_utf8_lossy(&data[..split]);
    let entry = String::from_utf8_lossy(data.get(split + 1..).unwrap_or(&[]));
    let Ok(u) = parse(&text) else { return };

    assert!(
        text.len() >= 7 && text[..7].eq_ignore_ascii_case("http://"),
        "{text:?}"
    );
    assert!(u.port >= 1);
    assert!(u.target.starts_with('/'), "{:?}", u.target);
    assert!(
        !u.target.bytes().any(|b| b <= b' ' || b == 0x7f),
        "{:?}",
        u.target
    );
    assert!(!u.host.contains('@'));
    let expected_ip = if u.host.eq_ignore_ascii_case("localhost") {
        Some(IpAddr::V4(Ipv4Addr::LOCALHOST))
    } else if let Some(v6) = u.host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6.parse().expect("a bracketed host that parsed is IPv6"))
    } else {
        u.host.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
    };
    assert_eq!(u.ip, expected_ip, "{:?}", u.host);
    if u.ip.is_none() {
        assert!(is_dns_name(&u.host), "{:?}", u.host);
        let last = u.host.rsplit('.').next().unwrap_or("");
        assert!(!last.bytes().all(|b| b.is_ascii_digit()), "{:?}", u.host);
        assert_eq!(u.dns_name(), Some(u.host.as_str()));
        assert_eq!(u.socket_addr(), None);
    }

    let loopback = u.ip.is_some_and(|ip| ip.is_loopback());
    assert_eq!(u.is_allowed(&[]), loopback);
    assert!(u.is_allowed(&[u.host.clone()]));
    assert!(u.is_allowed(&[u.host.to_ascii_uppercase()]));
    assert!(u.is_allowed(&[format!("{}:{}", u.host, u.port)]));
    // Whatever the entry, loopback stays allowed and nothing panics; a name
    // is allowed only by an entry that is the same name.
    let allowed = u.is_allowed(&[entry.to_string()]);
    if loopback {
        assert!(allowed);
    }
    if allowed && u.ip.is_none() {
        let (h, _) = split_host_port(&entry).expect("an allowing entry splits");
        assert!(
            h.eq_ignore_ascii_case(&u.host),
            "{entry:?} allowed {:?}",
            u.host
        );
    }
});
