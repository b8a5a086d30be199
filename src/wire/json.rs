//! Writing JSON strings by hand (RFC 8259 section 7).
//!
//! pushwire's JSON is small and fixed in shape (`{"id":7,"data":"..."}`),
//! so the numbers and punctuation are written directly by the callers and
//! only strings need care. A JSON string is:
//!
//! ```text
//! string     = quotation-mark *char quotation-mark          ; RFC 8259 7
//! char       = unescaped /
//!              escape ( %x22 /  ; "  quotation mark
//!                       %x5C /  ; \  reverse solidus
//!                       %x2F /  ; /  solidus
//!                       %x62 /  ; b  backspace       U+0008
//!                       %x66 /  ; f  form feed       U+000C
//!                       %x6E /  ; n  line feed       U+000A
//!                       %x72 /  ; r  carriage return U+000D
//!                       %x74 /  ; t  tab             U+0009
//!                       %x75 4HEXDIG )  ; uXXXX
//! escape     = %x5C             ; \
//! unescaped  = %x20-21 / %x23-5B / %x5D-10FFFF
//! ```
//!
//! So `"`, `\` and the control characters U+0000..U+001F must be escaped,
//! and everything else may go through as UTF-8. Three more are escaped so
//! that the output is safe inside an HTML `<script>` element, where a page
//! may embed it:
//!
//! - U+2028 LINE SEPARATOR and U+2029 PARAGRAPH SEPARATOR: legal in JSON,
//!   but line terminators in JavaScript string literals before ES2019;
//! - `</` as `<\/` (RFC 8259 allows `\/` for `/`): the HTML tokenizer ends
//!   a script at `</script` whatever the JavaScript around it says (WHATWG
//!   HTML 13.2.5.4, script data less-than sign state);
//! - `<!--` as `\u003c!--`: it would switch the tokenizer to the "script
//!   data escaped" state (13.2.5.16), where `</script>` inside a later
//!   string could again end the element.
//!
//! ```text
//! input:   say "hi"⏎  (LF)      output:  "say \"hi\"\n"
//! ```
//!
//! The common case (nothing to escape) is one scan with a 256-entry table
//! and one bulk copy.

/// For each byte: may it start something that needs escaping? `0xE2` is
/// the first byte of U+2028 and U+2029 (`E2 80 A8`, `E2 80 A9`), and of
/// other characters too, so it is only a candidate.
const CANDIDATE: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = true;
        b += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table[b'<' as usize] = true;
    table[0xE2] = true;
    table
};

/// The escape for each control character U+0000..U+001F: the short forms
/// RFC 8259 section 7 offers where there is one, else `\u00XX`.
#[rustfmt::skip]
const CONTROL: [&str; 32] = [
    "\\u0000", "\\u0001", "\\u0002", "\\u0003", "\\u0004", "\\u0005", "\\u0006", "\\u0007",
    "\\b",     "\\t",     "\\n",     "\\u000b", "\\f",     "\\r",     "\\u000e", "\\u000f",
    "\\u0010", "\\u0011", "\\u0012", "\\u0013", "\\u0014", "\\u0015", "\\u0016", "\\u0017",
    "\\u0018", "\\u0019", "\\u001a", "\\u001b", "\\u001c", "\\u001d", "\\u001e", "\\u001f",
];

/// Appends `s` as a JSON string literal, quotes included.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    out.reserve(s.len() + 2);
    out.push(b'"');
    escape(s, |piece| out.extend_from_slice(piece.as_bytes()));
    out.push(b'"');
}

/// Appends `s` as a JSON string literal, quotes included, to a `String`.
pub fn push_str(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    escape(s, |piece| out.push_str(piece));
    out.push('"');
}

/// Calls `emit` with the pieces of the escaped form of `s`, in order:
/// verbatim runs of `s` and escape sequences.
fn escape(s: &str, mut emit: impl FnMut(&str)) {
    let bytes = s.as_bytes();
    // `start..i` is the verbatim run not yet emitted. Both ends are always
    // char boundaries: escapes start at an ASCII byte or at the lead byte
    // of U+2028/U+2029, and end after it.
    let mut start = 0;
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if !CANDIDATE[usize::from(b)] {
            i += 1;
            continue;
        }
        let (escaped, len) = match b {
            b'"' => ("\\\"", 1),
            b'\\' => ("\\\\", 1),
            0x00..=0x1F => (CONTROL[usize::from(b)], 1),
            b'<' => match (bytes.get(i + 1), bytes.get(i + 2), bytes.get(i + 3)) {
                (Some(b'/'), _, _) => ("<\\/", 2),
                (Some(b'!'), Some(b'-'), Some(b'-')) => ("\\u003c", 1),
                // Any other `<` is harmless: verbatim.
                _ => {
                    i += 1;
                    continue;
                }
            },
            _ => match (bytes.get(i + 1), bytes.get(i + 2)) {
                (Some(0x80), Some(0xA8)) => ("\\u2028", 3),
                (Some(0x80), Some(0xA9)) => ("\\u2029", 3),
                // Another character starting with 0xE2 (like the euro
                // sign): verbatim.
                _ => {
                    i += 1;
                    continue;
                }
            },
        };
        if let Some(run) = s.get(start..i) {
            if !run.is_empty() {
                emit(run);
            }
        }
        emit(escaped);
        i += len;
        start = i;
    }
    if let Some(run) = s.get(start..) {
        if !run.is_empty() {
            emit(run);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(s: &str) -> String {
        let mut out = Vec::new();
        write_str(&mut out, s);
        let via_string = {
            let mut out = String::new();
            push_str(&mut out, s);
            out
        };
        let out = String::from_utf8(out).expect("output is UTF-8");
        assert_eq!(out, via_string, "write_str and push_str agree");
        out
    }

    #[test]
    fn plain() {
        assert_eq!(json("hello"), r#""hello""#);
    }

    #[test]
    fn empty() {
        assert_eq!(json(""), r#""""#);
    }

    #[test]
    fn quote() {
        assert_eq!(json(r#"say "hi""#), r#""say \"hi\"""#);
    }

    #[test]
    fn backslash() {
        assert_eq!(json(r"C:\dir"), r#""C:\\dir""#);
    }

    #[test]
    fn solidus_is_escaped_only_after_a_less_than_sign() {
        assert_eq!(json("a/b</script>"), r#""a/b<\/script>""#);
        assert_eq!(json("<b>x</b>"), r#""<b>x<\/b>""#);
        assert_eq!(json("a < b, <<"), r#""a < b, <<""#);
    }

    #[test]
    fn html_comment_opener_is_escaped() {
        assert_eq!(json("<!-- x"), r#""\u003c!-- x""#);
        assert_eq!(json("<!-"), r#""<!-""#);
    }

    #[test]
    fn short_escapes() {
        assert_eq!(json("\u{8}\u{c}\n\r\t"), r#""\b\f\n\r\t""#);
    }

    #[test]
    fn every_control_char() {
        for c in 0u8..0x20 {
            let expected = match c {
                0x08 => "\\b".to_string(),
                0x09 => "\\t".to_string(),
                0x0A => "\\n".to_string(),
                0x0C => "\\f".to_string(),
                0x0D => "\\r".to_string(),
                _ => format!("\\u{c:04x}"),
            };
            let s = char::from(c).to_string();
            assert_eq!(json(&s), format!("\"{expected}\""), "U+{c:04X}");
        }
    }

    #[test]
    fn delete_is_not_escaped() {
        assert_eq!(json("\u{7f}"), "\"\u{7f}\"");
    }

    #[test]
    fn line_and_paragraph_separators() {
        assert_eq!(json("a\u{2028}b\u{2029}c"), r#""a\u2028b\u2029c""#);
    }

    #[test]
    fn other_e2_characters_are_verbatim() {
        // U+2027 (E2 80 A7), U+202A (E2 80 AA), euro sign (E2 82 AC).
        assert_eq!(json("\u{2027}\u{202a}€"), "\"\u{2027}\u{202a}€\"");
    }

    #[test]
    fn multibyte_and_emoji() {
        assert_eq!(json("café 日本 😀"), "\"café 日本 😀\"");
    }

    #[test]
    fn escapes_at_both_ends() {
        assert_eq!(json("\"x\""), r#""\"x\"""#);
        assert_eq!(json("\u{2028}"), r#""\u2028""#);
    }

    #[test]
    fn appends() {
        let mut out = b"{\"data\":".to_vec();
        write_str(&mut out, "x");
        out.push(b'}');
        assert_eq!(out, b"{\"data\":\"x\"}");
    }

    // --- round trip against an independent parser ---

    /// A tiny parser for one JSON string literal (RFC 8259 section 7), the
    /// whole input. Strict: raw control characters are refused.
    fn parse_json_string(input: &str) -> Result<String, String> {
        let mut chars = input.chars();
        if chars.next() != Some('"') {
            return Err("no opening quote".into());
        }
        let mut out = String::new();
        loop {
            match chars.next().ok_or("unterminated")? {
                '"' => break,
                '\\' => match chars.next().ok_or("dangling backslash")? {
                    '"' => out.push('"'),
                    '\\' => out.push('\\'),
                    '/' => out.push('/'),
                    'b' => out.push('\u{8}'),
                    'f' => out.push('\u{c}'),
                    'n' => out.push('\n'),
                    'r' => out.push('\r'),
                    't' => out.push('\t'),
                    'u' => {
                        let mut code = hex4(&mut chars)?;
                        if (0xD800..0xDC00).contains(&code) {
                            if chars.next() != Some('\\') || chars.next() != Some('u') {
                                return Err("lone high surrogate".into());
                            }
                            let low = hex4(&mut chars)?;
                            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
                        }
                        out.push(char::from_u32(code).ok_or("bad \\u")?);
                    }
                    other => return Err(format!("unknown escape {other:?}")),
                },
                c if c < ' ' => return Err(format!("raw control {c:?}")),
                c => out.push(c),
            }
        }
        if chars.next().is_some() {
            return Err("text after closing quote".into());
        }
        Ok(out)
    }

    /// The four hex digits after `\\u`.
    fn hex4(chars: &mut std::str::Chars<'_>) -> Result<u32, String> {
        let h: String = chars.take(4).collect();
        if h.len() != 4 {
            return Err("short \\u".into());
        }
        u32::from_str_radix(&h, 16).map_err(|e| e.to_string())
    }

    #[test]
    fn parser_sanity() {
        assert_eq!(
            parse_json_string(r#""a\u00e9\ud83d\ude00""#).unwrap(),
            "aé😀"
        );
        assert!(parse_json_string("\"\n\"").is_err());
    }

    #[test]
    fn round_trip_property() {
        #[rustfmt::skip]
        const POOL: &[char] = &[
            'a', 'Z', ' ', '"', '\\', '/', '\'', '<', '\u{0}', '\u{1}', '\u{8}', '\t', '\n',
            '\u{b}', '\u{c}', '\r', '\u{1f}', '\u{7f}', '\u{80}', 'é', '€', '\u{2027}',
            '\u{2028}', '\u{2029}', '\u{202a}', '日', '\u{feff}', '\u{fffd}', '😀', '\u{10ffff}',
        ];
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            // xorshift64
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..5000 {
            let len = next() % 24;
            let s: String = (0..len)
                .map(|_| POOL[(next() % POOL.len() as u64) as usize])
                .collect();
            let out = json(&s);
            assert!(!out.contains('\u{2028}') && !out.contains('\u{2029}'));
            assert_eq!(parse_json_string(&out).as_deref(), Ok(s.as_str()), "{out}");
        }
    }
}
