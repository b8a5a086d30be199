//! `wire::jwt`: `verify`, `sign` and `claims_json`.
//!
//! Input: 1 flag byte (bit 0: admin, bit 1: with `exp`, bit 2: with
//! `sub`), 8 bytes of time (u64 little-endian), 2 bytes of flip position
//! (u16), 1 byte of flip mask, 1 byte of secret length (taken mod 97, so
//! secrets longer than HMAC's 64-byte block occur), the secret, then text
//! (lossily made UTF-8). The text is used whole as a token, and cut at
//! `\n` into lines: `sub`, subscribe patterns (comma-separated), publish
//! patterns, a channel to probe, a NumericDate.
//!
//! Properties:
//! * `verify` never panics, whatever the token and the secret; when it
//!   accepts, the token is at most `MAX_TOKEN_BYTES`, its third part is the
//!   base64url HMAC-SHA256 of the first two (recomputed here with a base64
//!   encoder of the target's own), `nbf <= now < exp`, every pattern is a
//!   pattern, and another secret is refused with `BadSignature`;
//! * a token from `sign(claims_json(..))` verifies and gives back exactly
//!   the claims it was made from (sub, exp, patterns, admin), or is
//!   refused for the one reason that applies (too long, a pattern that is
//!   not one, already expired); it expires exactly at `exp`;
//! * the permission checks match "a name, a prefix ending in `*`, or `*`"
//!   restated here;
//! * changing any one byte of a valid token makes it invalid;
//! * an `exp` written as any JSON number is compared with now as its exact
//!   value would be (checked against `f64` where `f64` is precise enough).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pushwire::wire::hmac::hmac_sha256;
use pushwire::wire::jwt::{claims_json, sign, verify, Claims, TokenError, MAX_TOKEN_BYTES};
use pushwire_fuzz::Input;

/// base64url without padding (RFC 4648 section 5), written here so the
/// check does not lean on the encoder under test.
fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &b)| acc | u32::from(b) << (16 - 8 * i));
        // 1, 2 or 3 bytes give 2, 3 or 4 characters.
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}

/// docs/api.md section 8 restated: `*`, a channel name (`[A-Za-z0-9_.-]{1,64}`)
/// or a prefix of one followed by `*`.
fn is_pattern(p: &str) -> bool {
    let name_char = |c: char| c.is_ascii_alphanumeric() || "_.-".contains(c);
    match p.strip_suffix('*') {
        Some(prefix) => prefix.len() <= 64 && prefix.chars().all(name_char),
        None => (1..=64).contains(&p.len()) && p.chars().all(name_char),
    }
}

fn covers(p: &str, channel: &str) -> bool {
    match p.strip_suffix('*') {
        Some(prefix) => channel.starts_with(prefix),
        None => channel == p,
    }
}

/// RFC 8259 section 6's number grammar, as a little state machine.
fn is_json_number(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i > start
    };
    if b.first() == Some(&b'-') {
        i += 1;
    }
    match b.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => {
            digits(&mut i);
        }
        _ => return false,
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        if !digits(&mut i) {
            return false;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if !digits(&mut i) {
            return false;
        }
    }
    i == b.len()
}

fn patterns(line: &str) -> Vec<&str> {
    if line.is_empty() {
        Vec::new()
    } else {
        line.split(',').collect()
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let flags = input.byte();
    let mut time = [0u8; 8];
    let time_bytes = input.take(8);
    time[..time_bytes.len()].copy_from_slice(time_bytes);
    let time = u64::from_le_bytes(time);
    let flip_at = usize::from(input.u16());
    let flip_mask = input.byte().max(1);
    let secret_len = usize::from(input.byte()) % 97;
    let secret = input.take(secret_len).to_vec();
    let text = String::from_utf8_lossy(input.rest()).into_owned();

    // 1. Any text as a token: no panic, and acceptance means what it should.
    if let Ok(claims) = verify(&text, &secret, time) {
        assert!(text.len() <= MAX_TOKEN_BYTES);
        let parts: Vec<&str> = text.split('.').collect();
        assert_eq!(parts.len(), 3, "{text:?}");
        let input = &text[..parts[0].len() + 1 + parts[1].len()];
        assert_eq!(parts[2], base64url(&hmac_sha256(&secret, input.as_bytes())));
        assert!(
            claims.exp.is_none_or(|exp| time < exp),
            "{claims:?} at {time}"
        );
        assert!(
            claims.nbf.is_none_or(|nbf| nbf <= time),
            "{claims:?} at {time}"
        );
        assert!(claims
            .subscribe
            .iter()
            .chain(&claims.publish)
            .all(|p| is_pattern(p)));
        let mut other = secret.clone();
        other.push(1);
        assert_eq!(verify(&text, &other, time), Err(TokenError::BadSignature));
    }

    // 2. sign(claims_json(..)) round-trips.
    let mut lines = text.split('\n');
    let sub = lines.next().unwrap_or("");
    let subscribe = patterns(lines.next().unwrap_or(""));
    let publish = patterns(lines.next().unwrap_or(""));
    let probe = lines.next().unwrap_or("news");
    let date = lines.next().unwrap_or("");
    let admin = flags & 1 != 0;
    let exp = (flags & 2 != 0).then_some(time);
    let sub = (flags & 4 != 0).then_some(sub);

    let token = sign(&claims_json(sub, &subscribe, &publish, admin, exp), &secret);
    assert!(
        token.starts_with("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."),
        "{token}"
    );
    let now = match exp {
        Some(exp) => exp.saturating_sub(1),
        None => time,
    };
    let result = verify(&token, &secret, now);
    if token.len() > MAX_TOKEN_BYTES {
        assert_eq!(result, Err(TokenError::TooLong));
        return;
    }
    if !subscribe.iter().chain(&publish).all(|p| is_pattern(p)) {
        assert_eq!(result, Err(TokenError::BadClaims));
        return;
    }
    if exp == Some(0) {
        assert_eq!(result, Err(TokenError::Expired));
        return;
    }
    let claims = result.expect("a token we signed verifies");
    assert_eq!(
        claims,
        Claims {
            sub: sub.map(str::to_owned),
            exp,
            nbf: None,
            subscribe: subscribe.iter().map(|p| p.to_string()).collect(),
            publish: publish.iter().map(|p| p.to_string()).collect(),
            admin,
        }
    );
    assert_eq!(claims.is_admin(), admin);
    assert_eq!(claims.expires_at_unix(), exp);
    if let Some(exp) = exp {
        assert_eq!(verify(&token, &secret, exp), Err(TokenError::Expired));
    }

    // 3. Permissions.
    assert_eq!(
        claims.may_subscribe(probe),
        subscribe.iter().any(|p| covers(p, probe))
    );
    assert_eq!(
        claims.may_publish(probe),
        publish.iter().any(|p| covers(p, probe))
    );
    for p in &subscribe {
        let channel = p
            .strip_suffix('*')
            .map_or(p.to_string(), |prefix| format!("{prefix}x"));
        assert!(claims.may_subscribe(&channel), "{p} {channel}");
    }

    // 4. One byte changed: refused, whichever byte and however changed.
    let mut flipped = token.clone().into_bytes();
    let at = flip_at % flipped.len();
    flipped[at] ^= flip_mask;
    let flipped = String::from_utf8_lossy(&flipped);
    assert!(
        verify(&flipped, &secret, now).is_err(),
        "{token} -> {flipped}"
    );

    // 5. exp as any JSON number.
    let token = sign(&format!("{{\"exp\":{date}}}"), &secret);
    let now = time & ((1 << 40) - 1);
    let result = verify(&token, &secret, now);
    if token.len() > MAX_TOKEN_BYTES {
        assert_eq!(result, Err(TokenError::TooLong));
    } else if !is_json_number(date) {
        // Other text could complete the JSON some other way (`1,"nbf":2`,
        // `1 `); made only of number characters, it cannot.
        if date.bytes().all(|b| b"0123456789+-.eE".contains(&b)) {
            assert_eq!(result, Err(TokenError::BadClaims), "{date:?}");
        }
    } else if let Ok(value) = date.parse::<f64>() {
        // Below 2^41, f64 is off by far less than a second; away from
        // `now` by more than one, its verdict is the exact one.
        if (value - now as f64).abs() > 1.0 {
            assert_eq!(result.is_ok(), value > now as f64, "{date} at {now}");
        }
    }
});
