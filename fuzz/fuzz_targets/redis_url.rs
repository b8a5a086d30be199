//! `wire::redis_url`: `--redis` URLs, their redacted forms and the
//! handshake commands they imply.
//!
//! Input: a URL as text (lossy UTF-8).
//!
//! Properties:
//! * `parse` never panics; `Ok` implies the scheme was `redis://` (any
//!   case), the port is 1..=65535, and a password, when there is one, is
//!   not empty;
//! * re-serialized with its password (`to_url_with_password`) the URL
//!   parses back equal;
//! * the redacted form parses back equal but for the password, which reads
//!   `***`;
//! * `Debug` and `display_redacted` do not depend on the password: they
//!   are the same with the password replaced, so they cannot contain it
//!   (and a password that is not a substring of the rest never shows);
//! * `write_handshake` writes exactly the commands it counts, as RESP that
//!   parses back: `AUTH [user] password` with the decoded password, then
//!   `SELECT db` when db is not 0;
//! * `explain_error` never panics, whatever the text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pushwire::wire::redis_url::{explain_error, parse, Secret};
use pushwire::wire::resp::{self, Limits, Value};
use pushwire::wire::Status;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = explain_error(&text);
    let Ok(u) = parse(&text) else { return };

    assert!(
        text.len() >= 8 && text[..8].eq_ignore_ascii_case("redis://"),
        "{text:?}"
    );
    assert!(u.port >= 1);
    assert!(u.password.as_ref().is_none_or(|p| !p.expose().is_empty()));

    let full = u.to_url_with_password();
    assert_eq!(parse(&full).as_ref(), Ok(&u), "{full:?}");

    let redacted = u.display_redacted();
    let mut masked = u.clone();
    if masked.password.is_some() {
        masked.password = Some(Secret::new("***".into()));
    }
    assert_eq!(parse(&redacted).as_ref(), Ok(&masked), "{redacted:?}");

    let debug = format!("{u:?}");
    let mut other = u.clone();
    if other.password.is_some() {
        other.password = Some(Secret::new("x".into()));
    }
    assert_eq!(redacted, other.display_redacted());
    assert_eq!(debug, format!("{other:?}"));
    if let Some(p) = &u.password {
        let p = p.expose();
        let rest = format!("{} {:?}", other.display_redacted(), other);
        if !rest.contains(p) {
            assert!(!redacted.contains(p) && !debug.contains(p), "{p:?}");
        }
    }

    // The handshake: parse back each command written.
    let mut out = Vec::new();
    let expected = u.write_handshake(&mut out);
    let mut commands = Vec::new();
    let mut at = 0;
    while at < out.len() {
        match resp::parse(&out[at..], &Limits::default()) {
            Ok(Status::Complete((Value::Array(args), used))) => {
                commands.push(args);
                at += used;
            }
            other => panic!("not a command: {other:?}"),
        }
    }
    assert_eq!(commands.len(), expected);
    let bulk = |v: &Value| match v {
        Value::Bulk(b) => b.clone(),
        other => panic!("not a bulk string: {other:?}"),
    };
    let mut commands = commands.iter();
    if let Some(p) = &u.password {
        let auth: Vec<Vec<u8>> = commands.next().expect("AUTH").iter().map(bulk).collect();
        let mut want = vec![b"AUTH".to_vec()];
        want.extend(u.user.as_ref().map(|s| s.as_bytes().to_vec()));
        want.push(p.expose().as_bytes().to_vec());
        assert_eq!(auth, want);
    }
    if u.db != 0 {
        let select: Vec<Vec<u8>> = commands.next().expect("SELECT").iter().map(bulk).collect();
        assert_eq!(
            select,
            vec![b"SELECT".to_vec(), u.db.to_string().into_bytes()]
        );
    }
    assert!(commands.next().is_none());
});
