//! Query strings and percent-decoding (RFC 3986 section 2.1, and the
//! `application/x-www-form-urlencoded` format of the WHATWG URL standard).
//!
//! A query string is the part of a request target after `?`, and a form body
//! has the same shape:
//!
//! ```text
//! query  = pair *( "&" pair )
//! pair   = name [ "=" value ]
//!
//! ?channel=news&since=41&q=caf%C3%A9+au+lait
//!  \_____/ \__/ \___/ \/ \/ \_______________/
//!   name  value name value   value: "café au lait"
//! ```
//!
//! Inside names and values, bytes outside the unreserved set travel
//! percent-encoded (RFC 3986 section 2.1):
//!
//! ```text
//! pct-encoded = "%" HEXDIG HEXDIG      ; one octet, e.g. %2F is "/"
//! ```
//!
//! and in the form format a `+` stands for a space. The decoded octets must
//! then be UTF-8 to become a Rust string.
//!
//! Nothing here allocates unless something must change: a name or value
//! without `%` or `+` comes back borrowed from the input.

use std::borrow::Cow;
use std::fmt;

/// Why a percent-encoded string could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// A `%` not followed by two hex digits (RFC 3986 section 2.1).
    BadPercent,
    /// The decoded octets are not UTF-8.
    NotUtf8,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DecodeError::BadPercent => "a '%' is not followed by two hexadecimal digits",
            DecodeError::NotUtf8 => "the percent-decoded text is not valid UTF-8",
        })
    }
}

impl std::error::Error for DecodeError {}

/// Percent-decodes `input`; with `plus_as_space`, `+` becomes a space.
///
/// Borrowed when nothing changes. A `%` not followed by two hex digits is
/// [`DecodeError::BadPercent`]; a result that is not UTF-8 is
/// [`DecodeError::NotUtf8`]. Note that `%2B` always decodes to `+`: only a
/// literal `+` means a space.
pub fn percent_decode(input: &str, plus_as_space: bool) -> Result<Cow<'_, str>, DecodeError> {
    let special = |b: &u8| *b == b'%' || (plus_as_space && *b == b'+');
    let bytes = input.as_bytes();
    if !bytes.iter().any(special) {
        return Ok(Cow::Borrowed(input));
    }

    let mut out = Vec::with_capacity(bytes.len());
    let mut rest = bytes;
    loop {
        // Copy the run of ordinary bytes in one go.
        let run = rest.iter().position(special).unwrap_or(rest.len());
        let (plain, tail) = rest.split_at(run);
        out.extend_from_slice(plain);
        rest = match tail {
            [] => break,
            // pct-encoded = "%" HEXDIG HEXDIG (RFC 3986 section 2.1)
            [b'%', hi, lo, after @ ..] => match (hex_value(*hi), hex_value(*lo)) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    after
                }
                _ => return Err(DecodeError::BadPercent),
            },
            [b'%', ..] => return Err(DecodeError::BadPercent),
            // application/x-www-form-urlencoded: "+" is a space.
            [_, after @ ..] => {
                out.push(b' ');
                after
            }
        };
    }
    String::from_utf8(out)
        .map(Cow::Owned)
        .map_err(|_| DecodeError::NotUtf8)
}

/// An iterator over the `name=value` pairs of a query or form string; see
/// [`pairs`].
#[derive(Debug, Clone)]
pub struct Pairs<'a> {
    pieces: std::str::Split<'a, char>,
}

/// Iterates over the `name=value` pairs of `input` (the part after `?`, or
/// a form body).
///
/// `input` is split on `&`; empty pieces are skipped and a piece without
/// `=` has the value `""`. Both sides are percent-decoded with `+` as space.
/// A pair that fails to decode yields its error and iteration goes on.
pub fn pairs(input: &str) -> Pairs<'_> {
    Pairs {
        pieces: input.split('&'),
    }
}

impl<'a> Iterator for Pairs<'a> {
    type Item = Result<(Cow<'a, str>, Cow<'a, str>), DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        let piece = self.pieces.find(|piece| !piece.is_empty())?;
        let (name, value) = split_pair(piece);
        Some(percent_decode(name, true).and_then(|name| {
            let value = percent_decode(value, true)?;
            Ok((name, value))
        }))
    }
}

/// The decoded value of the first pair named `key`; `Ok(None)` if absent.
///
/// Pairs are compared by their decoded names, so `%6Bey=1` matches `key`.
/// A name that fails to decode before the match is an error (it might have
/// been `key`); values of other pairs are not decoded at all.
pub fn get<'a>(input: &'a str, key: &str) -> Result<Option<Cow<'a, str>>, DecodeError> {
    for piece in input.split('&').filter(|piece| !piece.is_empty()) {
        let (name, value) = split_pair(piece);
        if percent_decode(name, true)? == key {
            return percent_decode(value, true).map(Some);
        }
    }
    Ok(None)
}

/// A strict non-negative decimal: 1 to 19 ASCII digits and nothing else.
///
/// For ids, timeouts and cursors taken from query strings, where "close
/// enough" would hide client bugs: `"-1"`, `"1.5"`, `"abc"`, `""`, `"+3"`,
/// `" 3"`, `"1e3"` are all `None`. Leading zeros are accepted. Nineteen
/// digits always fit in a `u64`; the checked arithmetic is belt and braces.
pub fn parse_decimal(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 19 {
        return None;
    }
    s.bytes().try_fold(0u64, |acc, b| {
        if !b.is_ascii_digit() {
            return None;
        }
        acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

/// Splits a piece at its first `=`; no `=` means an empty value.
fn split_pair(piece: &str) -> (&str, &str) {
    piece.split_once('=').unwrap_or((piece, ""))
}

/// The value of a hex digit (HEXDIG, RFC 5234 appendix B.1, either case).
fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded(input: &str, plus: bool) -> String {
        percent_decode(input, plus).unwrap().into_owned()
    }

    fn collect(input: &str) -> Vec<(String, String)> {
        pairs(input)
            .map(|pair| {
                let (name, value) = pair.unwrap();
                (name.into_owned(), value.into_owned())
            })
            .collect()
    }

    fn owned(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    // --- percent_decode ---

    #[test]
    fn plain_text_is_borrowed() {
        assert!(matches!(
            percent_decode("abc-._~", true),
            Ok(Cow::Borrowed("abc-._~"))
        ));
    }

    #[test]
    fn raw_unicode_is_borrowed() {
        assert!(matches!(
            percent_decode("café", true),
            Ok(Cow::Borrowed("café"))
        ));
    }

    #[test]
    fn plus_is_kept_without_plus_as_space() {
        assert!(matches!(
            percent_decode("a+b", false),
            Ok(Cow::Borrowed("a+b"))
        ));
    }

    #[test]
    fn plus_as_space() {
        assert_eq!(decoded("a+b++c", true), "a b  c");
    }

    #[test]
    fn percent_20_is_space() {
        assert_eq!(decoded("a%20b", false), "a b");
    }

    #[test]
    fn encoded_plus_stays_plus() {
        assert_eq!(decoded("1%2B1", true), "1+1");
    }

    #[test]
    fn both_hex_cases() {
        assert_eq!(decoded("%4a%4A", false), "JJ");
    }

    #[test]
    fn multibyte_utf8() {
        assert_eq!(decoded("caf%C3%A9", false), "café");
        assert_eq!(decoded("%F0%9F%98%80", false), "😀");
    }

    #[test]
    fn percent_encoded_nul() {
        assert_eq!(decoded("%00", false), "\0");
    }

    #[test]
    fn percent_at_end() {
        assert_eq!(percent_decode("abc%", false), Err(DecodeError::BadPercent));
    }

    #[test]
    fn percent_with_one_digit() {
        assert_eq!(percent_decode("%4", false), Err(DecodeError::BadPercent));
    }

    #[test]
    fn percent_with_non_hex() {
        assert_eq!(percent_decode("%zz", false), Err(DecodeError::BadPercent));
    }

    #[test]
    fn percent_with_one_non_hex() {
        assert_eq!(percent_decode("%4g", false), Err(DecodeError::BadPercent));
    }

    #[test]
    fn percent_percent() {
        assert_eq!(percent_decode("%%41", false), Err(DecodeError::BadPercent));
    }

    #[test]
    fn percent_before_multibyte_char() {
        assert_eq!(percent_decode("%é", false), Err(DecodeError::BadPercent));
    }

    #[test]
    fn decoded_byte_not_utf8() {
        assert_eq!(percent_decode("%FF", false), Err(DecodeError::NotUtf8));
    }

    #[test]
    fn decoded_truncated_sequence() {
        assert_eq!(percent_decode("caf%C3", false), Err(DecodeError::NotUtf8));
    }

    #[test]
    fn decoded_surrogate() {
        assert_eq!(
            percent_decode("%ED%A0%80", false),
            Err(DecodeError::NotUtf8)
        );
    }

    // --- pairs ---

    #[test]
    fn simple_pairs() {
        assert_eq!(collect("a=1&b=2"), owned(&[("a", "1"), ("b", "2")]));
    }

    #[test]
    fn empty_pieces_are_skipped() {
        assert_eq!(collect("&&a=1&&b=2&"), owned(&[("a", "1"), ("b", "2")]));
        assert_eq!(collect(""), owned(&[]));
    }

    #[test]
    fn piece_without_equals() {
        assert_eq!(collect("flag&a="), owned(&[("flag", ""), ("a", "")]));
    }

    #[test]
    fn empty_name() {
        assert_eq!(collect("=v"), owned(&[("", "v")]));
    }

    #[test]
    fn value_with_equals() {
        assert_eq!(collect("a=b=c"), owned(&[("a", "b=c")]));
    }

    #[test]
    fn pairs_are_decoded() {
        assert_eq!(
            collect("q=hello+world%21&na%6De=x"),
            owned(&[("q", "hello world!"), ("name", "x")])
        );
    }

    #[test]
    fn bad_pair_yields_error_and_iteration_goes_on() {
        let mut it = pairs("a=%zz&b=2");
        assert_eq!(it.next(), Some(Err(DecodeError::BadPercent)));
        assert_eq!(
            it.next(),
            Some(Ok((Cow::Borrowed("b"), Cow::Borrowed("2"))))
        );
        assert_eq!(it.next(), None);
    }

    // --- get ---

    #[test]
    fn get_present() {
        assert_eq!(get("a=1&b=2", "b"), Ok(Some(Cow::Borrowed("2"))));
    }

    #[test]
    fn get_absent() {
        assert_eq!(get("a=1&b=2", "c"), Ok(None));
    }

    #[test]
    fn get_first_of_duplicates() {
        assert_eq!(get("a=1&a=2", "a"), Ok(Some(Cow::Borrowed("1"))));
    }

    #[test]
    fn get_matches_decoded_name() {
        assert_eq!(get("%61=1", "a").unwrap().as_deref(), Some("1"));
    }

    #[test]
    fn get_decodes_value() {
        assert_eq!(get("q=a+b%2Bc", "q").unwrap().as_deref(), Some("a b+c"));
    }

    #[test]
    fn get_flag_without_value() {
        assert_eq!(get("x=1&flag", "flag"), Ok(Some(Cow::Borrowed(""))));
    }

    #[test]
    fn get_ignores_bad_values_of_other_pairs() {
        assert_eq!(get("a=%zz&b=2", "b"), Ok(Some(Cow::Borrowed("2"))));
    }

    #[test]
    fn get_reports_bad_name_before_match() {
        assert_eq!(get("%zz=1&b=2", "b"), Err(DecodeError::BadPercent));
    }

    #[test]
    fn get_reports_bad_matching_value() {
        assert_eq!(get("b=%FF", "b"), Err(DecodeError::NotUtf8));
    }

    // --- parse_decimal ---

    #[test]
    fn decimal_accepted() {
        for (s, n) in [
            ("0", 0),
            ("7", 7),
            ("007", 7),
            ("1234567890", 1_234_567_890),
            ("9999999999999999999", 9_999_999_999_999_999_999),
        ] {
            assert_eq!(parse_decimal(s), Some(n), "{s:?}");
        }
    }

    #[test]
    fn decimal_rejected() {
        for s in [
            "",
            "-1",
            "+3",
            " 3",
            "3 ",
            "1.5",
            "abc",
            "1e3",
            "0x10",
            "١",
            "12a",
            "10000000000000000000",
            "18446744073709551615",
        ] {
            assert_eq!(parse_decimal(s), None, "{s:?}");
        }
    }

    #[test]
    fn display_is_a_sentence() {
        assert_eq!(
            DecodeError::NotUtf8.to_string(),
            "the percent-decoded text is not valid UTF-8"
        );
    }
}
