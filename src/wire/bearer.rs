//! Bearer tokens over HTTP (RFC 6750): where a client puts its access
//! token, how the server says no, and how a token is kept out of logs.
//!
//! ```text
//! GET /channels/news/events HTTP/1.1
//! Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln      section 2.1
//!                \____/ \__/\____________________________________/
//!                scheme 1*SP b64token
//!
//! GET /channels/news/events?lastEventId=7&access_token=eyJhbGciOi...   section 2.3
//!                                         \__________/ \__________/
//!                                          the name     the token (percent-decoded)
//!
//! HTTP/1.1 401 Unauthorized                                              section 3
//! WWW-Authenticate: Bearer realm="pushwire", error="invalid_token"
//! ```
//!
//! The header is the normal way; the query parameter exists for clients
//! that cannot set headers: a browser's `EventSource` and `WebSocket`. The
//! header wins when both are present (docs/api.md section 8).
//!
//! A token in the query string ends up wherever request targets are
//! written down, which is why RFC 6750 section 5.3 discourages it and why
//! [`redact_target`] and [`redact_authorization`] exist: `--trace` and the
//! logs print `…` in place of every token.

use std::borrow::Cow;

use super::query;

/// `WWW-Authenticate` on a 401 when the request carried no token (RFC 6750
/// section 3: "If the request lacks any authentication information ...
/// the resource server SHOULD NOT include an error code").
pub const CHALLENGE: &str = "Bearer realm=\"pushwire\"";

/// `WWW-Authenticate` on a 401 for a token that is malformed, badly
/// signed, of a refused `alg`, expired or not yet valid (RFC 6750 section
/// 3.1, `invalid_token`).
pub const CHALLENGE_INVALID_TOKEN: &str = "Bearer realm=\"pushwire\", error=\"invalid_token\"";

/// `WWW-Authenticate` on a 403 for a valid token that does not cover the
/// request (RFC 6750 section 3.1, `insufficient_scope`).
pub const CHALLENGE_INSUFFICIENT_SCOPE: &str =
    "Bearer realm=\"pushwire\", error=\"insufficient_scope\"";

/// The query parameter that carries a token (RFC 6750 section 2.3).
pub const QUERY_PARAMETER: &str = "access_token";

/// What stands for a token in traces and logs.
pub const REDACTED: &str = "…";

/// The token of an `Authorization` header value, if it is a bearer
/// credential (RFC 6750 section 2.1):
///
/// ```text
/// credentials = "Bearer" 1*SP b64token
/// b64token    = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
/// ```
///
/// The scheme is case-insensitive (RFC 9110 section 11.1), so `bearer` and
/// `BEARER` work; spaces and tabs around the whole value are ignored (they
/// are not part of a field value, RFC 9110 section 5.5). Anything else
/// (another scheme, no token, a comma, a second word) is `None`.
pub fn parse_authorization(value: &str) -> Option<&str> {
    let value = value.trim_matches([' ', '\t']);
    let (scheme, rest) = value.split_at_checked(6)?;
    if !scheme.eq_ignore_ascii_case("Bearer") || !rest.starts_with(' ') {
        return None;
    }
    let token = rest.trim_start_matches(' ');
    is_b64token(token).then_some(token)
}

/// Does `value` use the Bearer scheme at all, well-formed or not? (Decides
/// between "no token given" and "a token given, but malformed".)
pub fn is_bearer_scheme(value: &str) -> bool {
    let value = value.trim_matches([' ', '\t']);
    let word = value.split([' ', '\t']).next().unwrap_or("");
    word.eq_ignore_ascii_case("Bearer")
}

/// `b64token` (RFC 6750 section 2.1): one or more of the 68 characters,
/// then any number of `=`.
fn is_b64token(s: &str) -> bool {
    let body = s.trim_end_matches('=');
    !body.is_empty()
        && body.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        })
}

/// The decoded value of the first `access_token` parameter of `query` (the
/// part of the target after `?`), if any (RFC 6750 section 2.3). Decoding
/// is [`query::get`]'s, so the server and [`redact_target`] agree on what
/// a token parameter is.
pub fn query_token(query: &str) -> Result<Option<Cow<'_, str>>, query::DecodeError> {
    query::get(query, QUERY_PARAMETER)
}

/// The token a request presents, by docs/api.md section 8's rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential<'a> {
    /// No bearer token: answer 401 with [`CHALLENGE`].
    Absent,
    /// A token to verify (not yet verified).
    Token(Cow<'a, str>),
    /// A token was given but cannot even be read (an `Authorization:
    /// Bearer` value that is not a b64token, or an `access_token` that is
    /// not valid percent-encoding): 401 with [`CHALLENGE_INVALID_TOKEN`].
    Malformed,
}

/// Picks the request's token: the `Authorization` value if it uses the
/// Bearer scheme (the header wins when both are present), else the
/// `access_token` query parameter. An `Authorization` header of another
/// scheme (`Basic`, say, from a proxy) is not a bearer token, so the query
/// parameter still counts.
pub fn credential<'a>(authorization: Option<&'a str>, query: Option<&'a str>) -> Credential<'a> {
    if let Some(value) = authorization.filter(|v| is_bearer_scheme(v)) {
        return match parse_authorization(value) {
            Some(token) => Credential::Token(Cow::Borrowed(token)),
            None => Credential::Malformed,
        };
    }
    match query.map(query_token) {
        Some(Ok(Some(token))) => Credential::Token(token),
        Some(Err(_)) => Credential::Malformed,
        Some(Ok(None)) | None => Credential::Absent,
    }
}

/// `target` (a request target: path and query) with the value of every
/// `access_token` parameter replaced by `…`, for `--trace` and the logs.
///
/// A parameter counts when its *decoded* name is `access_token` (so
/// `%61ccess_token=` is redacted too): the same rule the server uses to
/// find the token. Everything else stays as it was, byte for byte, and a
/// target without a token comes back borrowed.
///
/// ```text
/// /channels/news/events?since=3&access_token=eyJhbGci...&x=1
/// /channels/news/events?since=3&access_token=…&x=1
/// ```
pub fn redact_target(target: &str) -> Cow<'_, str> {
    let Some((path, query)) = target.split_once('?') else {
        return Cow::Borrowed(target);
    };
    if !query.split('&').any(is_token_parameter) {
        return Cow::Borrowed(target);
    }
    let mut out = String::with_capacity(target.len());
    out.push_str(path);
    out.push('?');
    for (i, piece) in query.split('&').enumerate() {
        if i > 0 {
            out.push('&');
        }
        if is_token_parameter(piece) {
            out.push_str(parameter_name(piece));
            out.push('=');
            out.push_str(REDACTED);
        } else {
            out.push_str(piece);
        }
    }
    Cow::Owned(out)
}

/// An `Authorization` value as `--trace` and the logs may show it: `Bearer
/// …` for a bearer credential, `…` for anything else (other schemes carry
/// secrets too, and a value without a scheme might be a bare token).
pub fn redact_authorization(value: &str) -> &'static str {
    if is_bearer_scheme(value) {
        "Bearer …"
    } else {
        REDACTED
    }
}

/// A query piece `name` or `name=value`: its raw name.
fn parameter_name(piece: &str) -> &str {
    piece.split_once('=').map_or(piece, |(name, _)| name)
}

/// Is this query piece an `access_token` parameter, by its decoded name?
fn is_token_parameter(piece: &str) -> bool {
    query::percent_decode(parameter_name(piece), true).is_ok_and(|name| name == QUERY_PARAMETER)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln";

    // --- Authorization ---

    #[test]
    fn bearer_header() {
        assert_eq!(parse_authorization(&format!("Bearer {TOKEN}")), Some(TOKEN));
    }

    #[test]
    fn scheme_is_case_insensitive() {
        for scheme in ["bearer", "BEARER", "bEaReR"] {
            assert_eq!(parse_authorization(&format!("{scheme} abc")), Some("abc"));
        }
    }

    #[test]
    fn several_spaces_after_the_scheme() {
        assert_eq!(parse_authorization("Bearer    abc"), Some("abc"));
    }

    #[test]
    fn surrounding_whitespace_ignored() {
        assert_eq!(parse_authorization(" \tBearer abc \t"), Some("abc"));
    }

    #[test]
    fn b64token_characters_and_trailing_equals() {
        assert_eq!(
            parse_authorization("Bearer aZ09-._~+/=="),
            Some("aZ09-._~+/==")
        );
    }

    #[test]
    fn tab_after_the_scheme_refused() {
        assert_eq!(parse_authorization("Bearer\tabc"), None);
    }

    #[test]
    fn no_space_after_the_scheme() {
        assert_eq!(parse_authorization("Bearerabc"), None);
    }

    #[test]
    fn scheme_alone() {
        assert_eq!(parse_authorization("Bearer"), None);
        assert_eq!(parse_authorization("Bearer   "), None);
    }

    #[test]
    fn other_scheme() {
        assert_eq!(parse_authorization("Basic dXNlcjpwYXNz"), None);
    }

    #[test]
    fn only_equals_signs() {
        assert_eq!(parse_authorization("Bearer =="), None);
    }

    #[test]
    fn equals_inside_the_token() {
        assert_eq!(parse_authorization("Bearer ab=cd"), None);
    }

    #[test]
    fn two_tokens() {
        assert_eq!(parse_authorization("Bearer abc def"), None);
    }

    #[test]
    fn auth_params_instead_of_a_token() {
        assert_eq!(parse_authorization("Bearer realm=\"x\""), None);
    }

    #[test]
    fn comma_separated_credentials() {
        assert_eq!(parse_authorization("Bearer abc, Basic xyz"), None);
    }

    #[test]
    fn non_ascii_token() {
        assert_eq!(parse_authorization("Bearer tökén"), None);
        assert_eq!(parse_authorization("Beareré abc"), None);
    }

    #[test]
    fn bearer_scheme_detection() {
        assert!(is_bearer_scheme("Bearer abc"));
        assert!(is_bearer_scheme("bearer"));
        assert!(is_bearer_scheme("Bearer\tabc"));
        assert!(!is_bearer_scheme("Basic abc"));
        assert!(!is_bearer_scheme("Bearerabc"));
        assert!(!is_bearer_scheme(TOKEN));
    }

    // --- query ---

    #[test]
    fn query_token_found() {
        assert_eq!(
            query_token(&format!("since=3&access_token={TOKEN}"))
                .unwrap()
                .as_deref(),
            Some(TOKEN)
        );
    }

    #[test]
    fn query_token_percent_encoded_name() {
        assert_eq!(
            query_token("%61ccess_token=abc").unwrap().as_deref(),
            Some("abc")
        );
    }

    #[test]
    fn query_token_absent() {
        assert_eq!(query_token("since=3"), Ok(None));
    }

    // --- credential: which token counts ---

    #[test]
    fn header_wins_over_query() {
        assert_eq!(
            credential(Some("Bearer fromheader"), Some("access_token=fromquery")),
            Credential::Token(Cow::Borrowed("fromheader"))
        );
    }

    #[test]
    fn query_when_no_header() {
        assert_eq!(
            credential(None, Some("access_token=fromquery")),
            Credential::Token(Cow::Borrowed("fromquery"))
        );
    }

    #[test]
    fn query_when_header_has_another_scheme() {
        assert_eq!(
            credential(Some("Basic dXNlcjpwYXNz"), Some("access_token=q")),
            Credential::Token(Cow::Borrowed("q"))
        );
    }

    #[test]
    fn malformed_bearer_header_is_not_overridden_by_the_query() {
        assert_eq!(
            credential(Some("Bearer a b"), Some("access_token=q")),
            Credential::Malformed
        );
    }

    #[test]
    fn bad_percent_encoding_in_the_query() {
        assert_eq!(
            credential(None, Some("access_token=%zz")),
            Credential::Malformed
        );
    }

    #[test]
    fn nothing_given() {
        assert_eq!(credential(None, None), Credential::Absent);
        assert_eq!(credential(None, Some("since=3")), Credential::Absent);
        assert_eq!(credential(Some("Basic x"), None), Credential::Absent);
    }

    #[test]
    fn empty_query_token_is_still_a_token() {
        // It will fail verification, as a token (401 invalid_token).
        assert_eq!(
            credential(None, Some("access_token=")),
            Credential::Token(Cow::Borrowed(""))
        );
    }

    // --- redaction ---

    #[test]
    fn redact_token_parameter() {
        assert_eq!(
            redact_target(&format!(
                "/channels/news/events?since=3&access_token={TOKEN}&x=1"
            )),
            "/channels/news/events?since=3&access_token=…&x=1"
        );
    }

    #[test]
    fn redact_every_token_parameter() {
        assert_eq!(
            redact_target("/p?access_token=a&access_token=b"),
            "/p?access_token=…&access_token=…"
        );
    }

    #[test]
    fn redact_percent_encoded_name() {
        assert_eq!(
            redact_target("/p?%61ccess%5Ftoken=secret"),
            "/p?%61ccess%5Ftoken=…"
        );
    }

    #[test]
    fn redact_token_parameter_without_value() {
        assert_eq!(redact_target("/p?access_token"), "/p?access_token=…");
    }

    #[test]
    fn redact_keeps_empty_pieces() {
        assert_eq!(
            redact_target("/p?&&access_token=x&"),
            "/p?&&access_token=…&"
        );
    }

    #[test]
    fn redact_leaves_similar_names() {
        let target = "/p?access_tokens=1&my_access_token=2&access-token=3";
        assert!(matches!(redact_target(target), Cow::Borrowed(t) if t == target));
    }

    #[test]
    fn redact_without_query_is_borrowed() {
        assert!(matches!(redact_target("/stats"), Cow::Borrowed("/stats")));
    }

    #[test]
    fn redact_without_token_is_borrowed() {
        assert!(matches!(
            redact_target("/p?a=1&b=2"),
            Cow::Borrowed("/p?a=1&b=2")
        ));
    }

    #[test]
    fn redact_only_the_query() {
        // A second "?" belongs to the query; the path is left alone.
        assert_eq!(
            redact_target("/p?x=?&access_token=t"),
            "/p?x=?&access_token=…"
        );
    }

    #[test]
    fn redact_authorization_values() {
        assert_eq!(redact_authorization(&format!("Bearer {TOKEN}")), "Bearer …");
        assert_eq!(redact_authorization("bearer x y"), "Bearer …");
        assert_eq!(redact_authorization("Basic dXNlcjpwYXNz"), "…");
        assert_eq!(redact_authorization(TOKEN), "…");
    }

    // --- challenges ---

    #[test]
    fn challenges_are_api_md_section_8() {
        assert_eq!(CHALLENGE, r#"Bearer realm="pushwire""#);
        assert_eq!(
            CHALLENGE_INVALID_TOKEN,
            r#"Bearer realm="pushwire", error="invalid_token""#
        );
        assert_eq!(
            CHALLENGE_INSUFFICIENT_SCOPE,
            r#"Bearer realm="pushwire", error="insufficient_scope""#
        );
    }
}
