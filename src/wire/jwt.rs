//! Access tokens: JSON Web Tokens (RFC 7519) in the JWS compact
//! serialization (RFC 7515 section 7.1), signed with HMAC-SHA256 (`HS256`,
//! RFC 7518 section 3.2). What a token grants is docs/api.md section 8.
//!
//! A token is three base64url parts joined by dots. This one is signed with
//! the tests' secret, `0123456789abcdef0123456789abcdef`:
//!
//! ```text
//! eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSIsImV4cCI6NDEwMjQ0NDgwMH0.DvdDttFvdgTOXtC2L5P1zfs2bIMtiEwN3al4EAHYyf8
//! \_____________ header _____________/ \________________ claims _________________/ \_______________ signature _______________/
//!
//! header     base64url of UTF-8 JSON   {"alg":"HS256","typ":"JWT"}        the JOSE header (RFC 7515 section 4)
//! claims     base64url of UTF-8 JSON   {"sub":"alice","exp":4102444800}   the claims set (RFC 7519 section 4)
//! signature  base64url of 32 bytes     HMAC-SHA256(secret, ASCII(header "." claims))   (RFC 7515 section 5.1)
//! ```
//!
//! The MAC covers the first two parts *as sent*, dot included, so the
//! header is as protected as the claims. base64url is RFC 4648 section 5's
//! alphabet (`-` and `_` where plain base64 has `+` and `/`) with the `=`
//! padding left off (RFC 7515 section 2), which makes a token safe in a
//! URL and in an HTTP header as it is.
//!
//! The claims pushwire reads, each optional (anything else, `iat`, `iss`,
//! `aud`, `jti` or any other name with any JSON value, is ignored):
//!
//! ```text
//! {"sub":"alice",                        who the client is (RFC 7519 section 4.1.2)
//!  "exp":1735689600, "nbf":1735603200,   valid from nbf, up to but not at exp (4.1.4, 4.1.5)
//!  "pushwire":{"subscribe":["news","chat.*"],    channel patterns (docs/api.md section 8):
//!              "publish":["chat.*"],             a name, a prefix ending in "*", or "*"
//!              "admin":false}}                   /webhooks, /stats, /metrics
//! ```
//!
//! # The classic pitfall: letting the token choose the algorithm
//!
//! The header names the algorithm that signed the token, but whoever made
//! the token wrote the header, forger included. A verifier that takes its
//! algorithm from `alg` lets the forger choose it:
//!
//! * `"alg":"none"` is a legal JWS with an empty signature (RFC 7518
//!   section 3.6, the "Unsecured JWS"). A library that honours it accepts
//!   any claims anybody writes: `{"pushwire":{"admin":true}}`, unsigned.
//! * Algorithm confusion: a server that verifies RS256 with an RSA
//!   *public* key, and that also implements HS256, can be sent
//!   `"alg":"HS256"` with an HMAC keyed with that public key. The forger
//!   knows the public key (it is public), so the forgery verifies.
//!
//! RFC 8725 (JWT Best Current Practices) section 3.1 says it plainly: a
//! verifier must fix the algorithms it accepts and use no other. pushwire
//! has one key and one algorithm: `alg` must be exactly the string `HS256`
//! (RFC 7515 section 4.1.1: the value is case-sensitive, so `hs256` is
//! refused too), and nothing in the header ever selects a key or an
//! algorithm (`kid`, `jku`, `jwk`, `x5u` are ignored). A token whose MAC
//! is right but whose header says `HS512` or `none` is refused as well: it
//! was made by someone holding the secret under rules we do not apply, and
//! saying so beats guessing what they meant.
//!
//! # The checks, in order
//!
//! 1. at most [`MAX_TOKEN_BYTES`], so the work below is bounded;
//! 2. exactly three parts (RFC 7515 section 7.1; a JWE has five);
//! 3. each part canonical unpadded base64url (RFC 7515 section 2, RFC 4648
//!    sections 5 and 3.5);
//! 4. the header is a JSON object (RFC 7515 section 5.2 step 3) with
//!    unique names (section 4), `alg` is `HS256` (section 4.1.1), and
//!    there is no `crit` (section 4.1.11: it lists extensions the
//!    recipient must understand, and we understand none); other header
//!    parameters are ignored, as section 4 requires;
//! 5. the signature is HMAC-SHA256 of the signing input, compared in
//!    constant time (RFC 7515 section 5.2 step 8, RFC 7518 section 3.2);
//! 6. only now are the claims read: a JSON object with unique names
//!    (RFC 7519 sections 4 and 7.2), the known claims of the right types;
//! 7. `nbf <= now < exp` (RFC 7519 sections 4.1.4 and 4.1.5), with no
//!    leeway (docs/api.md section 8).
//!
//! Because step 3 accepts one encoding per byte string only, and step 5
//! covers every byte of the first two parts, changing any byte of a valid
//! token makes it invalid (the fuzz target `jwt` checks exactly that).

use std::fmt;
use std::fmt::Write as _;

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;

use super::hmac::{ct_eq, hmac_sha256};
use super::json;
use super::json_read::{self, Reader};

/// The longest token accepted, in bytes. Ours are a few hundred bytes; the
/// bound keeps a hostile one from costing more than a few microseconds.
pub const MAX_TOKEN_BYTES: usize = 8192;

/// The shortest secret the server accepts: RFC 7518 section 3.2 says "A
/// key of the same size as the hash output (for instance, 256 bits for
/// "HS256") or larger MUST be used".
pub const MIN_SECRET_BYTES: usize = 32;

/// The one algorithm (RFC 7518 section 3.1's name for HMAC-SHA256).
const ALG: &str = "HS256";

/// The header [`sign`] writes: the algorithm, and `typ` as RFC 7519
/// section 5.1 recommends.
const HEADER_JSON: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

/// base64url without padding (RFC 7515 section 2), decoding strictly:
/// `=` is refused, and so are set bits after the last whole byte (RFC 4648
/// section 3.5), so every byte string has exactly one accepted encoding.
const BASE64URL: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(false),
);

/// Why a token was refused: one variant per rule. Every one is a 401
/// (docs/api.md section 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    /// Longer than [`MAX_TOKEN_BYTES`].
    TooLong,
    /// Not three parts separated by dots (RFC 7515 section 7.1).
    Malformed,
    /// A part is not canonical unpadded base64url (RFC 7515 section 2).
    BadBase64,
    /// The header is not a JSON object with unique names, or `alg` is not a
    /// string (RFC 7515 sections 4 and 5.2).
    BadHeader,
    /// `alg` is missing or is not exactly `HS256` (RFC 7515 section 4.1.1,
    /// RFC 8725 section 3.1).
    AlgRefused,
    /// The header has `crit` (RFC 7515 section 4.1.11).
    CritRefused,
    /// The MAC does not match: another secret, or the token was altered
    /// (RFC 7515 section 5.2).
    BadSignature,
    /// The claims are not a JSON object with unique names, a known claim
    /// has the wrong type, or a pattern is not a pattern (RFC 7519 section
    /// 7.2, docs/api.md section 8).
    BadClaims,
    /// Now is at or after `exp` (RFC 7519 section 4.1.4).
    Expired,
    /// Now is before `nbf` (RFC 7519 section 4.1.5).
    NotYetValid,
}

impl TokenError {
    /// A sentence for the 401 body and the logs. It never quotes the token.
    pub fn sentence(self) -> &'static str {
        match self {
            TokenError::TooLong => "the token is longer than 8192 bytes",
            TokenError::Malformed => {
                "a token is three base64url parts separated by dots (header.claims.signature)"
            }
            TokenError::BadBase64 => "a part of the token is not unpadded base64url",
            TokenError::BadHeader => "the token header is not a JSON object with unique names",
            TokenError::AlgRefused => "the token's alg is not HS256, the only algorithm accepted",
            TokenError::CritRefused => "the token header has crit, and no extension is supported",
            TokenError::BadSignature => "the token signature is not valid for this server's secret",
            TokenError::BadClaims => {
                "the token claims are not a JSON object with sub, exp, nbf and pushwire of the right types"
            }
            TokenError::Expired => "the token has expired",
            TokenError::NotYetValid => "the token is not valid yet (nbf)",
        }
    }
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.sentence())
    }
}

impl std::error::Error for TokenError {}

/// What a verified token says about its holder.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Claims {
    /// `sub`: who the client is, for logs.
    pub sub: Option<String>,
    /// `exp`, rounded up to a whole second (see `numeric_date`): the
    /// first second at which the token is refused.
    pub exp: Option<u64>,
    /// `nbf`, rounded up to a whole second: the first second at which the
    /// token is accepted.
    pub nbf: Option<u64>,
    /// `pushwire.subscribe`: channel patterns this token may read.
    pub subscribe: Vec<String>,
    /// `pushwire.publish`: channel patterns this token may publish to.
    pub publish: Vec<String>,
    /// `pushwire.admin`: may use `/webhooks...`, `/stats` and `/metrics`.
    pub admin: bool,
}

impl Claims {
    /// May the holder subscribe to `channel` (poll, events, ws)?
    pub fn may_subscribe(&self, channel: &str) -> bool {
        self.subscribe.iter().any(|p| covers(p, channel))
    }

    /// May the holder publish to `channel`?
    pub fn may_publish(&self, channel: &str) -> bool {
        self.publish.iter().any(|p| covers(p, channel))
    }

    /// May the holder use the admin endpoints?
    pub fn is_admin(&self) -> bool {
        self.admin
    }

    /// The first Unix second at which the token is no longer valid, if it
    /// expires: when a stream opened with it must end.
    pub fn expires_at_unix(&self) -> Option<u64> {
        self.exp
    }

    /// Is the token valid at `now_unix`? RFC 7519 section 4.1.4: "the
    /// current date/time MUST be before the expiration date/time"; section
    /// 4.1.5: "the current date/time MUST be after or equal to the
    /// not-before date/time". Both dates are rounded up to whole seconds,
    /// which makes these whole-second tests exact. (Also for claims verified
    /// earlier and kept: a kept token's time still runs.)
    pub fn check_time(&self, now_unix: u64) -> Result<(), TokenError> {
        if self.exp.is_some_and(|exp| now_unix >= exp) {
            return Err(TokenError::Expired);
        }
        if self.nbf.is_some_and(|nbf| now_unix < nbf) {
            return Err(TokenError::NotYetValid);
        }
        Ok(())
    }
}

/// Verifies `token` against `secret` at `now_unix` (whole seconds since
/// 1970-01-01T00:00:00Z) and returns its claims; see the module doc for
/// the checks, in the order below.
pub fn verify(token: &str, secret: &[u8], now_unix: u64) -> Result<Claims, TokenError> {
    // 1. Bounded work before anything else.
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::TooLong);
    }

    // 2. RFC 7515 section 7.1: BASE64URL(header) "." BASE64URL(payload) "."
    //    BASE64URL(signature), exactly three parts.
    let mut parts = token.split('.');
    let (Some(header_b64), Some(claims_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };

    // 3. RFC 7515 section 2: base64url, no padding, one encoding per value.
    let header = decode(header_b64)?;
    let claims = decode(claims_b64)?;
    let signature = decode(signature_b64)?;

    // 4. The header: alg exactly HS256, no crit.
    check_header(&header)?;

    // 5. RFC 7515 section 5.2 step 8: the MAC over the signing input, as
    //    sent. RFC 7518 section 3.2: "The comparison of the computed HMAC
    //    value to the JWS Signature value MUST be done in a constant-time
    //    manner". A signature of another length simply differs.
    let signing_input = &token[..header_b64.len() + 1 + claims_b64.len()];
    let expected = hmac_sha256(secret, signing_input.as_bytes());
    if !ct_eq(&expected, &signature) {
        return Err(TokenError::BadSignature);
    }

    // 6. Only a token we signed gets its claims read.
    let claims = read_claims(&claims)?;

    // 7. The time window (RFC 7519 sections 4.1.4 and 4.1.5).
    claims.check_time(now_unix)?;
    Ok(claims)
}

/// A token for `claims_json` (a JSON object: see [`claims_json`]), signed
/// with `secret`. The claims are taken as given: the caller is the
/// operator (`pushwire token`) or a test, not the network.
pub fn sign(claims_json: &str, secret: &[u8]) -> String {
    let mut token = BASE64URL.encode(HEADER_JSON);
    token.push('.');
    BASE64URL.encode_string(claims_json, &mut token);
    let mac = hmac_sha256(secret, token.as_bytes());
    token.push('.');
    BASE64URL.encode_string(mac, &mut token);
    token
}

/// The claims JSON for `pushwire token` (docs/api.md section 8):
///
/// ```text
/// {"sub":"alice","exp":1735689600,"pushwire":{"subscribe":["news"],"publish":[],"admin":false}}
/// ```
///
/// `sub` and `exp` are left out when `None`. Patterns are written as given;
/// check them first with [`is_valid_pattern`], or [`verify`] will refuse
/// the token.
pub fn claims_json(
    sub: Option<&str>,
    subscribe: &[&str],
    publish: &[&str],
    admin: bool,
    exp: Option<u64>,
) -> String {
    let mut out = String::from("{");
    if let Some(sub) = sub {
        out.push_str("\"sub\":");
        json::push_str(&mut out, sub);
        out.push(',');
    }
    if let Some(exp) = exp {
        // Writing to a String cannot fail.
        let _ = write!(out, "\"exp\":{exp},");
    }
    out.push_str("\"pushwire\":{\"subscribe\":");
    push_array(&mut out, subscribe);
    out.push_str(",\"publish\":");
    push_array(&mut out, publish);
    out.push_str(",\"admin\":");
    out.push_str(if admin { "true" } else { "false" });
    out.push_str("}}");
    out
}

/// Is `pattern` a channel pattern (docs/api.md section 8)? A channel name
/// (`[A-Za-z0-9_.-]{1,64}`, docs/api.md section 2), such a name's prefix
/// followed by `*`, or `*` alone. A `*` anywhere but at the end is not a
/// pattern: channel names cannot hold one.
pub fn is_valid_pattern(pattern: &str) -> bool {
    let (name, is_prefix) = match pattern.strip_suffix('*') {
        Some(prefix) => (prefix, true),
        None => (pattern, false),
    };
    (is_prefix || !name.is_empty())
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Does the (valid) `pattern` cover `channel`? `chat.*` covers every name
/// that starts with `chat.`, `*` every name, and a name only itself.
fn covers(pattern: &str, channel: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => channel.starts_with(prefix),
        None => channel == pattern,
    }
}

/// Decodes one part (step 3).
fn decode(part: &str) -> Result<Vec<u8>, TokenError> {
    BASE64URL.decode(part).map_err(|_| TokenError::BadBase64)
}

/// Step 4: the JOSE header.
fn check_header(header: &[u8]) -> Result<(), TokenError> {
    let mut alg = None;
    let mut crit = false;
    let mut reader = Reader::new(header).map_err(|_| TokenError::BadHeader)?;
    reader
        .object(|r, name| {
            match name {
                "alg" => alg = Some(r.string()?),
                // RFC 7515 section 4.1.11: "If any of the listed extension
                // Header Parameters are not understood and supported by
                // the recipient, then the JWS is invalid." We support none,
                // so any crit at all (even the forbidden empty list) is out.
                "crit" => {
                    crit = true;
                    r.skip()?;
                }
                // RFC 7515 section 4: parameters not listed in crit "MUST
                // be ignored when not understood" (typ, kid, ...).
                _ => r.skip()?,
            }
            Ok(())
        })
        .and_then(|()| reader.finish())
        .map_err(|_| TokenError::BadHeader)?;
    if alg.as_deref() != Some(ALG) {
        return Err(TokenError::AlgRefused);
    }
    if crit {
        return Err(TokenError::CritRefused);
    }
    Ok(())
}

/// Step 6: the claims set (RFC 7519 section 7.2 step 10: a JSON object).
fn read_claims(bytes: &[u8]) -> Result<Claims, TokenError> {
    let mut claims = Claims::default();
    let mut reader = Reader::new(bytes).map_err(|_| TokenError::BadClaims)?;
    reader
        .object(|r, name| {
            match name {
                "exp" => claims.exp = Some(numeric_date(r.number()?)),
                "nbf" => claims.nbf = Some(numeric_date(r.number()?)),
                "sub" => claims.sub = Some(r.string()?.into_owned()),
                // A private claim name (RFC 7519 section 4.3), ours: its
                // members are all known, and an unknown one (a typo like
                // "subcribe") is refused rather than silently granting less.
                "pushwire" => r.object(|r, name| match name {
                    "subscribe" => read_patterns(r, &mut claims.subscribe),
                    "publish" => read_patterns(r, &mut claims.publish),
                    "admin" => r.boolean().map(|admin| claims.admin = admin),
                    _ => Err(json_read::Error::UnknownName),
                })?,
                // RFC 7519 section 4: "all claims that are not understood
                // by implementations MUST be ignored".
                _ => r.skip()?,
            }
            Ok(())
        })
        .and_then(|()| reader.finish())
        .map_err(|_| TokenError::BadClaims)?;
    let all_valid = claims
        .subscribe
        .iter()
        .chain(&claims.publish)
        .all(|p| is_valid_pattern(p));
    if !all_valid {
        return Err(TokenError::BadClaims);
    }
    Ok(claims)
}

/// An array of strings, appended to `out`.
fn read_patterns(r: &mut Reader<'_>, out: &mut Vec<String>) -> Result<(), json_read::Error> {
    r.array(|r| {
        out.push(r.string()?.into_owned());
        Ok(())
    })
}

/// A NumericDate (RFC 7519 section 2: seconds since 1970-01-01T00:00:00Z
/// UTC, where "non-integer values can be represented") rounded *up* to a
/// whole second, and held in 0..=u64::MAX (a negative date becomes 0, a
/// huge one u64::MAX).
///
/// Why up: `now` is a whole number of seconds, and for a whole `now` and
/// any real `t`, `now < t` exactly when `now < ceil(t)`. So `now < exp`
/// and `now >= nbf` both stay exact when `exp` and `nbf` are rounded up.
///
/// Exactly, from the decimal text (already checked by the JSON reader),
/// not via `f64`: `1700000000.0000001` must become 1700000001, and an
/// `f64` cannot tell it from 1700000000.
fn numeric_date(number: &str) -> u64 {
    // number = [ "-" ] int [ "." frac ] [ ( "e" / "E" ) [ "+" / "-" ] exp ]
    if number.starts_with('-') {
        // ceil of a value <= 0 is <= 0, held as 0.
        return 0;
    }
    let (mantissa, exponent) = match number.find(['e', 'E']) {
        Some(i) => (&number[..i], parse_exponent(&number[i + 1..])),
        None => (number, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    // The value is 0.DIGITS × 10^point: `point` digits are whole seconds
    // and the rest a fraction.
    let point = int.len() as i64 + exponent;
    let mut whole: u64 = 0;
    let mut fraction_is_zero = true;
    let mut count: i64 = 0;
    for d in int.bytes().chain(frac.bytes()).map(|b| u64::from(b - b'0')) {
        if count < point {
            whole = whole.saturating_mul(10).saturating_add(d);
        } else if d != 0 {
            fraction_is_zero = false;
        }
        count += 1;
    }
    // The zeros the exponent adds after the last digit (1e3 = 1000).
    while count < point && whole != 0 && whole != u64::MAX {
        whole = whole.saturating_mul(10);
        count += 1;
    }
    if fraction_is_zero {
        whole
    } else {
        whole.saturating_add(1)
    }
}

/// An exponent's digits with an optional sign, clamped to ±100000: far
/// beyond any digit count a token can hold, so clamping changes nothing.
fn parse_exponent(text: &str) -> i64 {
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let magnitude = digits
        .bytes()
        .fold(0i64, |acc, b| (acc * 10 + i64::from(b - b'0')).min(100_000));
    if negative {
        -magnitude
    } else {
        magnitude
    }
}

/// Appends `["a","b"]`.
fn push_array(out: &mut String, items: &[&str]) {
    out.push('[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json::push_str(out, item);
    }
    out.push(']');
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The secret of the PyJWT vectors below.
    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    /// A token with any header and claims, MAC'd with HS256 whatever the
    /// header says: for building what an attacker would send.
    fn hs256(header_json: &str, claims_json: &str, secret: &[u8]) -> String {
        let input = format!(
            "{}.{}",
            BASE64URL.encode(header_json),
            BASE64URL.encode(claims_json)
        );
        let mac = BASE64URL.encode(hmac_sha256(secret, input.as_bytes()));
        format!("{input}.{mac}")
    }

    /// A token with the standard header and `claims_json`.
    fn with_claims(claims_json: &str) -> String {
        hs256(HEADER_JSON, claims_json, SECRET)
    }

    fn claims_of(claims_json: &str) -> Result<Claims, TokenError> {
        verify(&with_claims(claims_json), SECRET, 1_700_000_000)
    }

    fn header_error(header_json: &str) -> Result<Claims, TokenError> {
        verify(&hs256(header_json, "{}", SECRET), SECRET, 1_700_000_000)
    }

    // --- RFC 7515 appendix A.1: the HS256 example ---

    /// The JWK's "k", base64url (RFC 7515 appendix A.1.1).
    const A1_KEY: &str =
        "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow";
    /// Header {"typ":"JWT",\r\n "alg":"HS256"} and claims
    /// {"iss":"joe",\r\n "exp":1300819380,\r\n "http://example.com/is_root":true}.
    const A1_TOKEN: &str = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9\
        .eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ\
        .dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

    fn a1_key() -> Vec<u8> {
        BASE64URL.decode(A1_KEY).unwrap()
    }

    #[test]
    fn rfc_7515_a1_decoded_parts() {
        let parts: Vec<_> = A1_TOKEN.split('.').collect();
        assert_eq!(
            BASE64URL.decode(parts[0]).unwrap(),
            b"{\"typ\":\"JWT\",\r\n \"alg\":\"HS256\"}"
        );
        assert_eq!(
            BASE64URL.decode(parts[1]).unwrap(),
            b"{\"iss\":\"joe\",\r\n \"exp\":1300819380,\r\n \"http://example.com/is_root\":true}"
        );
    }

    #[test]
    fn rfc_7515_a1_mac_by_hand() {
        let (input, signature) = A1_TOKEN.rsplit_once('.').unwrap();
        let mac = hmac_sha256(&a1_key(), input.as_bytes());
        assert_eq!(BASE64URL.encode(mac), signature);
        assert_eq!(signature, "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
    }

    #[test]
    fn rfc_7515_a1_verifies_the_second_before_exp() {
        let claims = verify(A1_TOKEN, &a1_key(), 1_300_819_379).unwrap();
        // iss and the URI-named claim are ignored.
        assert_eq!(
            claims,
            Claims {
                exp: Some(1_300_819_380),
                ..Claims::default()
            }
        );
        assert_eq!(claims.expires_at_unix(), Some(1_300_819_380));
    }

    #[test]
    fn rfc_7515_a1_expired_at_exp() {
        assert_eq!(
            verify(A1_TOKEN, &a1_key(), 1_300_819_380),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn rfc_7515_a1_with_another_key() {
        assert_eq!(
            verify(A1_TOKEN, SECRET, 1_300_819_379),
            Err(TokenError::BadSignature)
        );
    }

    // --- tokens made by PyJWT 2.15.1 and by Python's hmac module ---
    //
    // Made with S = b"0123456789abcdef0123456789abcdef" (SECRET) by:
    //   import jwt, json, hmac, hashlib, base64
    //   def b64(b): return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
    //   def hs256_by_hand(header, claims):   # HS256 MAC whatever alg says
    //       si = b64(json.dumps(header, separators=(",", ":")).encode()) + "." \
    //          + b64(json.dumps(claims, separators=(",", ":")).encode())
    //       return si + "." + b64(hmac.new(S, si.encode(), hashlib.sha256).digest())
    // Each constant says the call that printed it.

    /// jwt.encode({"sub":"alice","exp":4102444800,"pushwire":{"subscribe":
    /// ["news","chat.*"],"publish":["chat.*"],"admin":False}}, S, algorithm="HS256")
    const PYJWT_ALICE: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSIsImV4cCI6NDEwMjQ0NDgwMCwicHVzaHdpcmUiOnsic3Vic2NyaWJlIjpbIm5ld3MiLCJjaGF0LioiXSwicHVibGlzaCI6WyJjaGF0LioiXSwiYWRtaW4iOmZhbHNlfX0.F7WGj6cL7hx8LAM0zxvUTcHHE_CZMQQWkag4whYiQdU";

    /// jwt.encode({"nbf":4102444800,"pushwire":{"admin":True}}, S, algorithm="HS256")
    const PYJWT_ADMIN_NBF: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJuYmYiOjQxMDI0NDQ4MDAsInB1c2h3aXJlIjp7ImFkbWluIjp0cnVlfX0.xSdgqmFDCR-TYBHDWMxgtZpBImz2orPX8LpQj6FVwzE";

    /// jwt.encode({"sub":"bob","exp":1700000000.5,"nbf":1600000000.25}, S, algorithm="HS256")
    const PYJWT_FRACTIONS: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJib2IiLCJleHAiOjE3MDAwMDAwMDAuNSwibmJmIjoxNjAwMDAwMDAwLjI1fQ.bgk4aujp5wLP_Az7D6B2GtMhlHbhW0oXlOtOIa6c4i8";

    /// jwt.encode({"sub":"carol","iat":1700000000,"iss":"https://issuer.example",
    /// "aud":["a","b"],"jti":"7f3a","extra":{"nested":[1,2.5e3,None,True,"x\u00e9"]},
    /// "pushwire":{"subscribe":["*"]}}, S, algorithm="HS256")
    const PYJWT_EXTRA_CLAIMS: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJjYXJvbCIsImlhdCI6MTcwMDAwMDAwMCwiaXNzIjoiaHR0cHM6Ly9pc3N1ZXIuZXhhbXBsZSIsImF1ZCI6WyJhIiwiYiJdLCJqdGkiOiI3ZjNhIiwiZXh0cmEiOnsibmVzdGVkIjpbMSwyNTAwLjAsbnVsbCx0cnVlLCJ4XHUwMGU5Il19LCJwdXNod2lyZSI6eyJzdWJzY3JpYmUiOlsiKiJdfX0.jEQXAVEA_2QPAkHFoeqVci1ti7IAzQygPZD-IexpuLQ";

    /// jwt.encode({"sub":"mallory","pushwire":{"admin":True}}, None, algorithm="none")
    const PYJWT_ALG_NONE: &str = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJtYWxsb3J5IiwicHVzaHdpcmUiOnsiYWRtaW4iOnRydWV9fQ.";

    /// jwt.encode({"sub":"mallory","pushwire":{"admin":True}}, S, algorithm="HS512")
    const PYJWT_HS512: &str = "eyJhbGciOiJIUzUxMiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJtYWxsb3J5IiwicHVzaHdpcmUiOnsiYWRtaW4iOnRydWV9fQ.O5mOPd6rLE3_NM6DHs4hojygJtV9vuG-PqG8HE7GpPLxFpLjeoU_vXzpBJ11_Abb6O48_8AwQEtyfz-yfTXdmQ";

    /// hs256_by_hand({"alg":"HS512","typ":"JWT"}, {"sub":"mallory","pushwire":{"admin":True}})
    const RESIGNED_HS512: &str = "eyJhbGciOiJIUzUxMiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJtYWxsb3J5IiwicHVzaHdpcmUiOnsiYWRtaW4iOnRydWV9fQ.ZONh1laj-iY65az0obJ4-8iocQKMcbhZ2Jfm8fRjs9A";

    /// hs256_by_hand({"alg":"none","typ":"JWT"}, {"sub":"mallory","pushwire":{"admin":True}})
    const RESIGNED_NONE: &str = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJtYWxsb3J5IiwicHVzaHdpcmUiOnsiYWRtaW4iOnRydWV9fQ.tT8tsLLX93rVC7xPUlI5LB137y1Zkl_BLY36T0gYTn8";

    /// hs256_by_hand({"alg":"HS256","crit":["exp"]}, {"sub":"mallory"})
    const RESIGNED_CRIT: &str = "eyJhbGciOiJIUzI1NiIsImNyaXQiOlsiZXhwIl19.eyJzdWIiOiJtYWxsb3J5In0.rpvdPd8yVmufuzKQ0nivwgrt6XRB0dasa_UufgWsChU";

    /// jwt.encode({"sub":"mallory","pushwire":{"admin":True}},
    /// b"another-secret-another-secret-00", algorithm="HS256")
    const PYJWT_OTHER_SECRET: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJtYWxsb3J5IiwicHVzaHdpcmUiOnsiYWRtaW4iOnRydWV9fQ.bw_qdyZetyd_OA6qS2Qpo-IkkhXOXtacylC22zPuWno";

    #[test]
    fn pyjwt_alice() {
        let claims = verify(PYJWT_ALICE, SECRET, 1_700_000_000).unwrap();
        assert_eq!(
            claims,
            Claims {
                sub: Some("alice".into()),
                exp: Some(4_102_444_800),
                nbf: None,
                subscribe: vec!["news".into(), "chat.*".into()],
                publish: vec!["chat.*".into()],
                admin: false,
            }
        );
        assert!(claims.may_subscribe("news") && claims.may_subscribe("chat.fr"));
        assert!(!claims.may_subscribe("sports"));
        assert!(claims.may_publish("chat.fr") && !claims.may_publish("news"));
        assert!(!claims.is_admin());
    }

    #[test]
    fn pyjwt_nbf_in_the_future() {
        assert_eq!(
            verify(PYJWT_ADMIN_NBF, SECRET, 4_102_444_799),
            Err(TokenError::NotYetValid)
        );
        let claims = verify(PYJWT_ADMIN_NBF, SECRET, 4_102_444_800).unwrap();
        assert!(claims.is_admin());
        assert_eq!(claims.expires_at_unix(), None);
    }

    #[test]
    fn pyjwt_fractional_dates() {
        // exp 1700000000.5: valid during second 1700000000, not after.
        // nbf 1600000000.25: not valid during second 1600000000.
        let claims = verify(PYJWT_FRACTIONS, SECRET, 1_700_000_000).unwrap();
        assert_eq!(
            (claims.exp, claims.nbf),
            (Some(1_700_000_001), Some(1_600_000_001))
        );
        assert_eq!(
            verify(PYJWT_FRACTIONS, SECRET, 1_700_000_001),
            Err(TokenError::Expired)
        );
        assert_eq!(
            verify(PYJWT_FRACTIONS, SECRET, 1_600_000_000),
            Err(TokenError::NotYetValid)
        );
        assert!(verify(PYJWT_FRACTIONS, SECRET, 1_600_000_001).is_ok());
    }

    #[test]
    fn pyjwt_other_claims_are_ignored() {
        let claims = verify(PYJWT_EXTRA_CLAIMS, SECRET, 1_700_000_000).unwrap();
        assert_eq!(claims.sub.as_deref(), Some("carol"));
        assert!(claims.may_subscribe("anything") && !claims.may_publish("anything"));
    }

    #[test]
    fn pyjwt_alg_none_refused() {
        assert_eq!(
            verify(PYJWT_ALG_NONE, SECRET, 1_700_000_000),
            Err(TokenError::AlgRefused)
        );
    }

    #[test]
    fn pyjwt_hs512_refused() {
        assert_eq!(
            verify(PYJWT_HS512, SECRET, 1_700_000_000),
            Err(TokenError::AlgRefused)
        );
    }

    #[test]
    fn pyjwt_other_secret() {
        assert_eq!(
            verify(PYJWT_OTHER_SECRET, SECRET, 1_700_000_000),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn resigned_header_with_another_alg_refused_though_its_mac_is_right() {
        for token in [RESIGNED_HS512, RESIGNED_NONE] {
            let (input, signature) = token.rsplit_once('.').unwrap();
            let mac = hmac_sha256(SECRET, input.as_bytes());
            assert_eq!(BASE64URL.encode(mac), signature, "the HS256 MAC is valid");
            assert_eq!(
                verify(token, SECRET, 1_700_000_000),
                Err(TokenError::AlgRefused)
            );
        }
    }

    #[test]
    fn resigned_header_with_crit_refused() {
        assert_eq!(
            verify(RESIGNED_CRIT, SECRET, 1_700_000_000),
            Err(TokenError::CritRefused)
        );
    }

    // --- sign and claims_json ---

    #[test]
    fn claims_json_shape() {
        assert_eq!(
            claims_json(
                Some("alice"),
                &["news", "chat.*"],
                &[],
                true,
                Some(1_735_689_600)
            ),
            r#"{"sub":"alice","exp":1735689600,"pushwire":{"subscribe":["news","chat.*"],"publish":[],"admin":true}}"#
        );
        assert_eq!(
            claims_json(None, &[], &["*"], false, None),
            r#"{"pushwire":{"subscribe":[],"publish":["*"],"admin":false}}"#
        );
    }

    #[test]
    fn claims_json_escapes_sub() {
        let json = claims_json(Some("a\"b\\c\n"), &[], &[], false, None);
        assert!(json.starts_with(r#"{"sub":"a\"b\\c\n","#), "{json}");
    }

    #[test]
    fn sign_matches_the_drawing_in_the_module_doc() {
        assert_eq!(
            sign(r#"{"sub":"alice","exp":4102444800}"#, SECRET),
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSIsImV4cCI6NDEwMjQ0NDgwMH0\
             .DvdDttFvdgTOXtC2L5P1zfs2bIMtiEwN3al4EAHYyf8"
        );
    }

    #[test]
    fn sign_then_verify_round_trips() {
        let json = claims_json(
            Some("ünïcode \u{2028}"),
            &["news", "chat.*"],
            &["chat.*"],
            true,
            Some(2_000_000_000),
        );
        let claims = verify(&sign(&json, SECRET), SECRET, 1_999_999_999).unwrap();
        assert_eq!(
            claims,
            Claims {
                sub: Some("ünïcode \u{2028}".into()),
                exp: Some(2_000_000_000),
                nbf: None,
                subscribe: vec!["news".into(), "chat.*".into()],
                publish: vec!["chat.*".into()],
                admin: true,
            }
        );
    }

    // --- time ---

    #[test]
    fn exp_boundary() {
        let token = sign(r#"{"exp":100}"#, SECRET);
        assert!(verify(&token, SECRET, 99).is_ok());
        assert_eq!(verify(&token, SECRET, 100), Err(TokenError::Expired));
        assert_eq!(verify(&token, SECRET, 101), Err(TokenError::Expired));
    }

    #[test]
    fn nbf_boundary() {
        let token = sign(r#"{"nbf":100}"#, SECRET);
        assert_eq!(verify(&token, SECRET, 99), Err(TokenError::NotYetValid));
        assert!(verify(&token, SECRET, 100).is_ok());
    }

    #[test]
    fn numeric_dates() {
        for (text, seconds) in [
            ("0", 0),
            ("100", 100),
            ("100.0", 100),
            ("100.000", 100),
            ("99.5", 100),
            ("99.0000000001", 100),
            ("1700000000.0000001", 1_700_000_001),
            ("1e2", 100),
            ("1E+2", 100),
            ("0.001e5", 100),
            ("12345e-2", 124),
            ("12300e-2", 123),
            ("5e-400", 1),
            ("0e999999", 0),
            ("1e400", u64::MAX),
            ("18446744073709551615", u64::MAX),
            ("99999999999999999999999", u64::MAX),
            ("-1", 0),
            ("-0.5", 0),
            ("-0", 0),
        ] {
            assert_eq!(numeric_date(text), seconds, "{text}");
        }
    }

    #[test]
    fn negative_exp_is_expired() {
        assert_eq!(claims_of(r#"{"exp":-1}"#), Err(TokenError::Expired));
    }

    #[test]
    fn huge_exp_never_expires() {
        let token = with_claims(r#"{"exp":1e400}"#);
        assert!(verify(&token, SECRET, u64::MAX - 1).is_ok());
    }

    // --- patterns ---

    #[test]
    fn prefix_pattern() {
        assert!(covers("chat.*", "chat.fr"));
        assert!(covers("chat.*", "chat."));
        assert!(!covers("chat.*", "chat"));
        assert!(!covers("chat.*", "chatroom"));
        assert!(!covers("chat.*", "xchat.fr"));
    }

    #[test]
    fn star_covers_every_channel() {
        assert!(covers("*", "news") && covers("*", "a"));
    }

    #[test]
    fn exact_pattern() {
        assert!(covers("news", "news"));
        assert!(!covers("news", "news2") && !covers("news", "new") && !covers("news", "NEWS"));
    }

    #[test]
    fn valid_patterns() {
        for p in [
            "*",
            "news",
            "chat.*",
            "a-b_c.d*",
            &"x".repeat(64),
            &("y".repeat(64) + "*"),
        ] {
            assert!(is_valid_pattern(p), "{p}");
        }
    }

    #[test]
    fn invalid_patterns() {
        for p in [
            "",
            "**",
            "a*b",
            "*a",
            "chat.**",
            "new s",
            "news/",
            "é",
            &"x".repeat(65),
        ] {
            assert!(!is_valid_pattern(p), "{p}");
        }
    }

    #[test]
    fn invalid_pattern_refuses_the_token() {
        assert_eq!(
            claims_of(r#"{"pushwire":{"subscribe":["news","a*b"]}}"#),
            Err(TokenError::BadClaims)
        );
    }

    // --- one test per malformed token ---

    #[test]
    fn too_long() {
        let token = with_claims(&format!(r#"{{"x":"{}"}}"#, "a".repeat(MAX_TOKEN_BYTES)));
        assert_eq!(verify(&token, SECRET, 0), Err(TokenError::TooLong));
    }

    #[test]
    fn empty_token() {
        assert_eq!(verify("", SECRET, 0), Err(TokenError::Malformed));
    }

    #[test]
    fn two_parts() {
        let token = with_claims("{}");
        let (first_two, _) = token.rsplit_once('.').unwrap();
        assert_eq!(verify(first_two, SECRET, 0), Err(TokenError::Malformed));
    }

    #[test]
    fn four_parts() {
        let token = with_claims("{}") + ".";
        assert_eq!(verify(&token, SECRET, 0), Err(TokenError::Malformed));
    }

    #[test]
    fn five_parts_like_a_jwe() {
        assert_eq!(verify("a.b.c.d.e", SECRET, 0), Err(TokenError::Malformed));
    }

    #[test]
    fn padding_refused() {
        // {} is "e30" in base64url, "e30=" padded.
        let token = with_claims("{}").replacen(".e30.", ".e30=.", 1);
        assert_eq!(verify(&token, SECRET, 0), Err(TokenError::BadBase64));
    }

    #[test]
    fn plain_base64_alphabet_refused() {
        // The same bytes in RFC 4648 section 4's alphabet: "+" and "/".
        let token = sign(r#"{"sub":"~~~?"}"#, SECRET);
        let claims_part = token.split('.').nth(1).unwrap();
        assert!(claims_part.contains('-') || claims_part.contains('_'));
        let plain = token.replace('-', "+").replace('_', "/");
        assert_eq!(verify(&plain, SECRET, 0), Err(TokenError::BadBase64));
    }

    #[test]
    fn whitespace_in_a_part() {
        let token = with_claims("{}").replacen('.', " .", 1);
        assert_eq!(verify(&token, SECRET, 0), Err(TokenError::BadBase64));
    }

    #[test]
    fn non_canonical_trailing_bits() {
        // "e30" holds 2 bytes in 18 bits; the last 2 must be zero. "e31"
        // sets one: the same bytes under a second spelling.
        assert_eq!(BASE64URL.decode("e30").unwrap(), b"{}");
        let token = with_claims("{}").replacen(".e30.", ".e31.", 1);
        assert_eq!(verify(&token, SECRET, 0), Err(TokenError::BadBase64));
    }

    #[test]
    fn part_length_one_more_than_a_multiple_of_four() {
        let token = with_claims("{}").replacen(".e30.", ".e30AA.", 1);
        assert_eq!(verify(&token, SECRET, 0), Err(TokenError::BadBase64));
    }

    #[test]
    fn empty_signature() {
        let token = with_claims("{}");
        let (input, _) = token.rsplit_once('.').unwrap();
        assert_eq!(
            verify(&format!("{input}."), SECRET, 0),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn truncated_signature() {
        let token = with_claims("{}");
        let cut = &token[..token.len() - 3];
        assert_eq!(verify(cut, SECRET, 0), Err(TokenError::BadSignature));
    }

    #[test]
    fn empty_secret_does_not_verify_a_real_token() {
        assert_eq!(verify(PYJWT_ALICE, b"", 0), Err(TokenError::BadSignature));
    }

    #[test]
    fn header_altered_after_signing() {
        // The same header with a space: the bytes differ, so the MAC does.
        let token = with_claims("{}");
        let (_, rest) = token.split_once('.').unwrap();
        let altered = format!(
            "{}.{rest}",
            BASE64URL.encode(r#"{"alg":"HS256", "typ":"JWT"}"#)
        );
        assert_eq!(verify(&altered, SECRET, 0), Err(TokenError::BadSignature));
    }

    #[test]
    fn claims_altered_after_signing() {
        let token = with_claims(r#"{"pushwire":{"admin":false}}"#);
        let parts: Vec<_> = token.split('.').collect();
        let admin = BASE64URL.encode(r#"{"pushwire":{"admin":true}}"#);
        let forged = format!("{}.{admin}.{}", parts[0], parts[2]);
        assert_eq!(verify(&forged, SECRET, 0), Err(TokenError::BadSignature));
    }

    #[test]
    fn header_not_json() {
        assert_eq!(header_error("HS256"), Err(TokenError::BadHeader));
    }

    #[test]
    fn header_empty() {
        assert_eq!(header_error(""), Err(TokenError::BadHeader));
    }

    #[test]
    fn header_not_an_object() {
        assert_eq!(header_error(r#"["HS256"]"#), Err(TokenError::BadHeader));
    }

    #[test]
    fn header_with_trailing_garbage() {
        assert_eq!(
            header_error(r#"{"alg":"HS256"}x"#),
            Err(TokenError::BadHeader)
        );
    }

    #[test]
    fn header_with_duplicate_alg() {
        // Which alg would count? Neither: RFC 7515 section 4.
        assert_eq!(
            header_error(r#"{"alg":"none","alg":"HS256"}"#),
            Err(TokenError::BadHeader)
        );
    }

    #[test]
    fn alg_missing() {
        assert_eq!(
            header_error(r#"{"typ":"JWT"}"#),
            Err(TokenError::AlgRefused)
        );
    }

    #[test]
    fn alg_none() {
        assert_eq!(
            header_error(r#"{"alg":"none"}"#),
            Err(TokenError::AlgRefused)
        );
    }

    #[test]
    fn alg_hs512() {
        assert_eq!(
            header_error(r#"{"alg":"HS512"}"#),
            Err(TokenError::AlgRefused)
        );
    }

    #[test]
    fn alg_rs256() {
        assert_eq!(
            header_error(r#"{"alg":"RS256"}"#),
            Err(TokenError::AlgRefused)
        );
    }

    #[test]
    fn alg_lowercase() {
        assert_eq!(
            header_error(r#"{"alg":"hs256"}"#),
            Err(TokenError::AlgRefused)
        );
    }

    #[test]
    fn alg_with_a_space() {
        assert_eq!(
            header_error(r#"{"alg":"HS256 "}"#),
            Err(TokenError::AlgRefused)
        );
    }

    #[test]
    fn alg_not_a_string() {
        assert_eq!(
            header_error(r#"{"alg":["HS256"]}"#),
            Err(TokenError::BadHeader)
        );
    }

    #[test]
    fn alg_escaped_is_the_same_string() {
        assert!(header_error(r#"{"alg":"HS\u0032\u00356"}"#).is_ok());
    }

    #[test]
    fn crit_refused_even_empty() {
        assert_eq!(
            header_error(r#"{"alg":"HS256","crit":[]}"#),
            Err(TokenError::CritRefused)
        );
    }

    #[test]
    fn unknown_header_parameters_ignored() {
        assert!(
            header_error(r#"{"alg":"HS256","kid":"k1","jku":"http://x/","typ":"JWT"}"#).is_ok()
        );
    }

    #[test]
    fn claims_not_json() {
        assert_eq!(claims_of("sub=alice"), Err(TokenError::BadClaims));
    }

    #[test]
    fn claims_not_an_object() {
        assert_eq!(claims_of(r#"["sub"]"#), Err(TokenError::BadClaims));
    }

    #[test]
    fn claims_not_utf8() {
        // Signed as it is, so only the claims check can refuse it.
        let input = format!(
            "{}.{}",
            BASE64URL.encode(HEADER_JSON),
            BASE64URL.encode(b"{\"sub\":\"\xe9\"}")
        );
        let mac = BASE64URL.encode(hmac_sha256(SECRET, input.as_bytes()));
        assert_eq!(
            verify(&format!("{input}.{mac}"), SECRET, 0),
            Err(TokenError::BadClaims)
        );
    }

    #[test]
    fn claims_with_duplicate_exp() {
        assert_eq!(
            claims_of(r#"{"exp":1,"exp":9999999999}"#),
            Err(TokenError::BadClaims)
        );
    }

    #[test]
    fn claims_with_trailing_garbage() {
        assert_eq!(claims_of(r#"{"sub":"a"},"#), Err(TokenError::BadClaims));
    }

    #[test]
    fn exp_as_a_string() {
        assert_eq!(
            claims_of(r#"{"exp":"9999999999"}"#),
            Err(TokenError::BadClaims)
        );
    }

    #[test]
    fn exp_null() {
        assert_eq!(claims_of(r#"{"exp":null}"#), Err(TokenError::BadClaims));
    }

    #[test]
    fn nbf_as_a_boolean() {
        assert_eq!(claims_of(r#"{"nbf":true}"#), Err(TokenError::BadClaims));
    }

    #[test]
    fn sub_as_a_number() {
        assert_eq!(claims_of(r#"{"sub":42}"#), Err(TokenError::BadClaims));
    }

    #[test]
    fn pushwire_not_an_object() {
        assert_eq!(
            claims_of(r#"{"pushwire":["*"]}"#),
            Err(TokenError::BadClaims)
        );
    }

    #[test]
    fn subscribe_not_an_array() {
        assert_eq!(
            claims_of(r#"{"pushwire":{"subscribe":"news"}}"#),
            Err(TokenError::BadClaims)
        );
    }

    #[test]
    fn pattern_not_a_string() {
        assert_eq!(
            claims_of(r#"{"pushwire":{"publish":[1]}}"#),
            Err(TokenError::BadClaims)
        );
    }

    #[test]
    fn admin_as_a_string() {
        assert_eq!(
            claims_of(r#"{"pushwire":{"admin":"true"}}"#),
            Err(TokenError::BadClaims)
        );
    }

    #[test]
    fn unknown_member_of_pushwire() {
        assert_eq!(
            claims_of(r#"{"pushwire":{"subcribe":["news"]}}"#),
            Err(TokenError::BadClaims)
        );
    }

    #[test]
    fn duplicate_member_of_pushwire() {
        assert_eq!(
            claims_of(r#"{"pushwire":{"admin":false,"admin":true}}"#),
            Err(TokenError::BadClaims)
        );
    }

    #[test]
    fn other_claims_of_any_type_are_ignored() {
        let claims = claims_of(r#"{"iat":"yesterday","aud":{"x":[null]},"iss":7,"jti":false}"#);
        assert_eq!(claims, Ok(Claims::default()));
    }

    #[test]
    fn empty_claims_grant_nothing() {
        let claims = claims_of("{}").unwrap();
        assert!(!claims.may_subscribe("news") && !claims.may_publish("news") && !claims.is_admin());
        assert_eq!(claims.expires_at_unix(), None);
    }

    #[test]
    fn every_error_has_its_own_sentence() {
        let all = [
            TokenError::TooLong,
            TokenError::Malformed,
            TokenError::BadBase64,
            TokenError::BadHeader,
            TokenError::AlgRefused,
            TokenError::CritRefused,
            TokenError::BadSignature,
            TokenError::BadClaims,
            TokenError::Expired,
            TokenError::NotYetValid,
        ];
        for (i, a) in all.iter().enumerate() {
            assert!(!a.sentence().is_empty());
            assert_eq!(a.to_string(), a.sentence());
            for b in &all[i + 1..] {
                assert_ne!(a.sentence(), b.sentence());
            }
        }
    }
}
