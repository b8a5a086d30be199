//! WebSocket close frame payloads (RFC 6455 sections 5.5.1, 7.1.5, 7.4).
//!
//! A close frame (opcode 0x8) may carry nothing, or a status code and a
//! reason (RFC 6455 section 5.5.1):
//!
//! ```text
//!  0                   1                   2
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 ...
//! +-------------------------------+-------------------------
//! |   status code (u16, big-endian)   | reason: UTF-8, 0..=123 bytes
//! +-------------------------------+-------------------------
//! ```
//!
//! The whole payload of a control frame is at most 125 bytes (section 5.5),
//! which leaves 123 for the reason; the frame layer enforces the 125.
//!
//! Which codes may travel in a frame (section 7.4):
//!
//! | code        | meaning                                   | on the wire? |
//! |-------------|-------------------------------------------|--------------|
//! | 0-999       | not used                                  | no           |
//! | 1000-1003   | normal, going away, protocol error, unsupported data | yes |
//! | 1004        | reserved                                  | no           |
//! | 1005, 1006  | "no status", "abnormal": for APIs only    | no           |
//! | 1007-1011   | invalid data, policy, too big, extension, internal error | yes |
//! | 1012-1014   | restart, try again later, bad gateway (IANA registry) | yes |
//! | 1015        | TLS handshake failure: for APIs only      | no           |
//! | 1016-2999   | reserved for future RFCs                  | no           |
//! | 3000-3999   | registered with IANA (libraries, frameworks) | yes       |
//! | 4000-4999   | private use                               | yes          |
//! | 5000+       | not defined                               | no           |

use std::fmt;

/// 1000: the purpose of the connection has been fulfilled.
pub const NORMAL: u16 = 1000;
/// 1001: the endpoint is going away (server shutdown, page closed).
pub const GOING_AWAY: u16 = 1001;
/// 1002: the peer broke the protocol.
pub const PROTOCOL_ERROR: u16 = 1002;
/// 1003: a kind of data the endpoint cannot accept (e.g. binary).
pub const UNSUPPORTED_DATA: u16 = 1003;
/// 1005: no status code was present. Never sent in a frame.
pub const NO_STATUS: u16 = 1005;
/// 1006: the connection closed without a close frame. Never sent.
pub const ABNORMAL: u16 = 1006;
/// 1007: data inconsistent with its type (e.g. a text message not UTF-8).
pub const INVALID_DATA: u16 = 1007;
/// 1008: a message violates the endpoint's policy.
pub const POLICY: u16 = 1008;
/// 1009: a message too big to process.
pub const TOO_BIG: u16 = 1009;
/// 1010: (client) the server did not negotiate a required extension.
pub const MANDATORY_EXT: u16 = 1010;
/// 1011: (server) an unexpected condition prevented the request.
pub const INTERNAL_ERROR: u16 = 1011;

/// The longest reason that fits in a control frame: 125 - 2 bytes.
pub const MAX_REASON: usize = 123;

/// Why a received close payload is invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseError {
    /// One byte: half a status code (section 5.5.1 requires two).
    OneByte,
    /// A status code that may not be sent in a frame (section 7.4).
    InvalidCode(u16),
    /// The reason is not UTF-8 (section 5.5.1).
    ReasonNotUtf8,
}

impl CloseError {
    /// The close code our answering close frame carries: 1007 when the
    /// reason is not UTF-8 (section 8.1), 1002 otherwise.
    pub fn close_code(&self) -> u16 {
        match self {
            CloseError::ReasonNotUtf8 => INVALID_DATA,
            CloseError::OneByte | CloseError::InvalidCode(_) => PROTOCOL_ERROR,
        }
    }
}

impl fmt::Display for CloseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseError::OneByte => f.write_str("the close payload is a single byte"),
            CloseError::InvalidCode(code) => {
                write!(f, "the close code {code} may not be sent in a close frame")
            }
            CloseError::ReasonNotUtf8 => f.write_str("the close reason is not valid UTF-8"),
        }
    }
}

impl std::error::Error for CloseError {}

/// May a peer send this code in a close frame? (RFC 6455 section 7.4, and
/// 1012-1014 from the IANA registry.)
pub fn is_valid_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// Parses a received close payload.
///
/// Empty is `Ok(None)` (no status: report [`NO_STATUS`] upward). One byte
/// is [`CloseError::OneByte`]. Otherwise the code must pass
/// [`is_valid_code`] and the reason must be UTF-8.
pub fn parse(payload: &[u8]) -> Result<Option<(u16, &str)>, CloseError> {
    match payload {
        [] => Ok(None),
        [_] => Err(CloseError::OneByte),
        [hi, lo, reason @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            if !is_valid_code(code) {
                return Err(CloseError::InvalidCode(code));
            }
            let reason = std::str::from_utf8(reason).map_err(|_| CloseError::ReasonNotUtf8)?;
            Ok(Some((code, reason)))
        }
    }
}

/// Appends a close payload: `code` big-endian, then `reason` cut at a char
/// boundary to fit in [`MAX_REASON`] bytes.
///
/// `code` is written as given; send only codes that [`is_valid_code`]
/// accepts (to close with no status, send an empty payload instead).
pub fn write(out: &mut Vec<u8>, code: u16, reason: &str) {
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(truncate(reason, MAX_REASON).as_bytes());
}

/// A short name for a close code, for traces: `1000` is `"normal"`.
pub fn name(code: u16) -> &'static str {
    match code {
        NORMAL => "normal",
        GOING_AWAY => "going away",
        PROTOCOL_ERROR => "protocol error",
        UNSUPPORTED_DATA => "unsupported data",
        NO_STATUS => "no status",
        ABNORMAL => "abnormal",
        INVALID_DATA => "invalid data",
        POLICY => "policy violation",
        TOO_BIG => "message too big",
        MANDATORY_EXT => "mandatory extension",
        INTERNAL_ERROR => "internal error",
        1012 => "service restart",
        1013 => "try again later",
        1014 => "bad gateway",
        1015 => "TLS handshake",
        3000..=3999 => "registered",
        4000..=4999 => "private",
        _ => "invalid",
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a char
/// boundary.
fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    // Index 0 is always a boundary, so this stops.
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(code: u16, reason: &str) -> Vec<u8> {
        let mut out = Vec::new();
        write(&mut out, code, reason);
        out
    }

    // --- parse ---

    #[test]
    fn empty_payload() {
        assert_eq!(parse(b""), Ok(None));
    }

    #[test]
    fn one_byte() {
        assert_eq!(parse(&[0x03]), Err(CloseError::OneByte));
    }

    #[test]
    fn code_only() {
        assert_eq!(parse(&[0x03, 0xE8]), Ok(Some((1000, ""))));
    }

    #[test]
    fn code_and_reason() {
        assert_eq!(parse(b"\x03\xE9bye"), Ok(Some((GOING_AWAY, "bye"))));
    }

    #[test]
    fn reason_with_multibyte_utf8() {
        let mut payload = vec![0x0F, 0xA0];
        payload.extend_from_slice("café 😀".as_bytes());
        assert_eq!(parse(&payload), Ok(Some((4000, "café 😀"))));
    }

    #[test]
    fn reason_not_utf8() {
        assert_eq!(parse(b"\x03\xE8\xFF"), Err(CloseError::ReasonNotUtf8));
    }

    #[test]
    fn reason_truncated_mid_code_point() {
        assert_eq!(parse(b"\x03\xE8ok\xE2\x82"), Err(CloseError::ReasonNotUtf8));
    }

    #[test]
    fn code_checked_before_reason() {
        assert_eq!(parse(b"\x03\xED\xFF"), Err(CloseError::InvalidCode(1005)));
    }

    #[test]
    fn invalid_codes_are_refused() {
        for code in [
            0u16, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
        ] {
            let payload = code.to_be_bytes();
            assert_eq!(
                parse(&payload),
                Err(CloseError::InvalidCode(code)),
                "{code}"
            );
        }
    }

    #[test]
    fn valid_codes_are_accepted() {
        for code in [
            1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999,
            4000, 4999,
        ] {
            assert_eq!(parse(&code.to_be_bytes()), Ok(Some((code, ""))), "{code}");
        }
    }

    #[test]
    fn is_valid_code_matches_the_table() {
        for code in 0..=u16::MAX {
            let expected = (1000..=1003).contains(&code)
                || (1007..=1014).contains(&code)
                || (3000..=4999).contains(&code);
            assert_eq!(is_valid_code(code), expected, "{code}");
        }
    }

    // --- close_code ---

    #[test]
    fn answer_codes() {
        assert_eq!(CloseError::OneByte.close_code(), 1002);
        assert_eq!(CloseError::InvalidCode(5).close_code(), 1002);
        assert_eq!(CloseError::ReasonNotUtf8.close_code(), 1007);
    }

    #[test]
    fn display_is_a_sentence() {
        assert_eq!(
            CloseError::InvalidCode(1005).to_string(),
            "the close code 1005 may not be sent in a close frame"
        );
    }

    // --- write ---

    #[test]
    fn write_code_only() {
        assert_eq!(written(NORMAL, ""), [0x03, 0xE8]);
    }

    #[test]
    fn write_code_and_reason() {
        assert_eq!(written(TOO_BIG, "too big"), b"\x03\xF1too big");
    }

    #[test]
    fn write_appends() {
        let mut out = vec![0x88, 0x02];
        write(&mut out, NORMAL, "");
        assert_eq!(out, [0x88, 0x02, 0x03, 0xE8]);
    }

    #[test]
    fn write_reason_exactly_max() {
        let reason = "a".repeat(MAX_REASON);
        assert_eq!(written(NORMAL, &reason).len(), 125);
    }

    #[test]
    fn write_reason_too_long_is_cut() {
        let reason = "a".repeat(200);
        assert_eq!(written(NORMAL, &reason).len(), 125);
    }

    #[test]
    fn write_cut_at_char_boundary() {
        // 122 bytes of ASCII, then "é" (2 bytes) would make 124: drop it.
        let reason = format!("{}é", "a".repeat(122));
        let out = written(NORMAL, &reason);
        assert_eq!(out.len(), 2 + 122);
        assert!(std::str::from_utf8(&out[2..]).is_ok());
    }

    #[test]
    fn write_cut_inside_emoji() {
        // 31 four-byte emoji = 124 bytes: 30 of them fit (120 bytes).
        let reason = "😀".repeat(31);
        let out = written(NORMAL, &reason);
        assert_eq!(out.len(), 2 + 120);
    }

    #[test]
    fn write_then_parse() {
        for reason in ["", "bye", "café", &"é".repeat(100), &"x".repeat(500)] {
            let out = written(POLICY, reason);
            let (code, parsed) = parse(&out).unwrap().unwrap();
            assert_eq!(code, POLICY);
            assert!(reason.starts_with(parsed));
            assert!(parsed.len() <= MAX_REASON);
        }
    }

    #[test]
    fn names() {
        assert_eq!(name(NORMAL), "normal");
        assert_eq!(name(4321), "private");
        assert_eq!(name(2000), "invalid");
    }
}
