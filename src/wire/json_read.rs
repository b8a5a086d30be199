//! Reading JSON strictly (RFC 8259), for the few small documents pushwire
//! must understand from outside: the header and the claims of an access
//! token (`jwt.rs`).
//!
//! ```text
//! value  = object / array / string / number / true / false / null
//! object = "{" [ member *( "," member ) ] "}"       member = string ":" value
//! array  = "[" [ value *( "," value ) ] "]"
//! number = [ "-" ] ( "0" / %x31-39 *DIGIT ) [ "." 1*DIGIT ] [ ( "e" / "E" ) [ "+" / "-" ] 1*DIGIT ]
//! string = %x22 *( unescaped / "\" ( %x22 / "\" / "/" / "b" / "f" / "n" / "r" / "t" / "u" 4HEXDIG ) ) %x22
//! ws     = *( %x20 / %x09 / %x0A / %x0D )           ; allowed around every token
//!
//! {"alg":"HS256","typ":"JWT"}          {"sub":"alice","exp":1.7e9,"pushwire":{"admin":true}}
//!  \___/ \_____/                               \__________/
//!  name   value (a string)                      a number: kept as its text
//! ```
//!
//! It is a *pull* reader: the caller says what it expects next
//! ([`Reader::object`], [`Reader::string`], ...) and gets that or an
//! error; [`Reader::skip`] checks and passes over a value it does not care
//! about. Nothing is built that the caller did not ask for.
//!
//! Where RFC 8259 leaves a choice to the implementation, this reader takes
//! the strict one, because a reader that guesses can be made to read a
//! security decision differently from the one who wrote it:
//!
//! * duplicate names in an object are refused (section 4: "the names within
//!   an object SHOULD be unique", and with duplicates "the behavior of
//!   software that receives such an object is unpredictable"; JOSE asks
//!   for exactly this: RFC 7515 section 4, RFC 7519 section 4);
//! * the text must be UTF-8 (section 8.1), with no byte order mark;
//! * a `\u` escape of a lone surrogate is refused (section 8.2 allows it
//!   and leaves the result unpredictable; a Rust `str` cannot hold one);
//! * nothing but whitespace may follow the value;
//! * nesting deeper than [`MAX_DEPTH`] is refused (section 9 lets a parser
//!   limit depth; this bound keeps the recursion's stack use small).
//!
//! What it allocates is bounded by the input: strings without escapes are
//! borrowed, a decoded string is never longer than its escaped form, and
//! an object keeps one entry per name to find duplicates.

use std::borrow::Cow;
use std::fmt;

/// How deep objects and arrays may nest; `{"a":[1]}` has depth 2.
pub const MAX_DEPTH: usize = 16;

/// Why a JSON text was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The bytes are not UTF-8 (RFC 8259 section 8.1).
    NotUtf8,
    /// Not the JSON grammar (RFC 8259 sections 2 to 7), or the text ended
    /// too early.
    Syntax,
    /// A control character inside a string, an unknown `\` escape, or a
    /// lone surrogate (RFC 8259 sections 7 and 8.2).
    BadString,
    /// The same name twice in one object (RFC 8259 section 4).
    DuplicateName,
    /// Objects and arrays nested deeper than [`MAX_DEPTH`].
    TooDeep,
    /// Valid JSON, but not the kind of value the caller asked for.
    WrongType,
    /// A member name the caller does not know, in an object whose members
    /// it defines (its callback returns this).
    UnknownName,
    /// Something other than whitespace after the value.
    TrailingGarbage,
}

impl Error {
    /// A sentence for error bodies and logs.
    pub fn sentence(self) -> &'static str {
        match self {
            Error::NotUtf8 => "the JSON text is not UTF-8",
            Error::Syntax => "the text is not JSON",
            Error::BadString => {
                "a JSON string has a control character, a bad escape or a lone surrogate"
            }
            Error::DuplicateName => "a JSON object has the same name twice",
            Error::TooDeep => "the JSON is nested too deeply",
            Error::WrongType => "a JSON value has the wrong type",
            Error::UnknownName => "a JSON object has a member that is not understood",
            Error::TrailingGarbage => "something follows the JSON value",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.sentence())
    }
}

impl std::error::Error for Error {}

/// The kind of the next value, from its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Object,
    Array,
    String,
    Number,
    Bool,
    Null,
}

/// A cursor over one JSON text; see the module doc.
///
/// After any error the reader's position is meaningless: stop using it.
#[derive(Debug)]
pub struct Reader<'a> {
    text: &'a str,
    pos: usize,
    depth: usize,
}

impl<'a> Reader<'a> {
    /// A reader over `bytes`, which must be UTF-8 (RFC 8259 section 8.1).
    pub fn new(bytes: &'a [u8]) -> Result<Self, Error> {
        let text = std::str::from_utf8(bytes).map_err(|_| Error::NotUtf8)?;
        Ok(Reader {
            text,
            pos: 0,
            depth: 0,
        })
    }

    /// The kind of the next value (whitespace skipped); `Syntax` if no
    /// value can start here.
    pub fn peek(&mut self) -> Result<Kind, Error> {
        self.skip_ws();
        match self.next_byte() {
            Some(b'{') => Ok(Kind::Object),
            Some(b'[') => Ok(Kind::Array),
            Some(b'"') => Ok(Kind::String),
            Some(b'-' | b'0'..=b'9') => Ok(Kind::Number),
            Some(b't' | b'f') => Ok(Kind::Bool),
            Some(b'n') => Ok(Kind::Null),
            _ => Err(Error::Syntax),
        }
    }

    /// Reads an object, calling `member(self, name)` for each member; the
    /// callback must read (or [`skip`](Reader::skip)) exactly the member's
    /// value. Names are compared after unescaping, so `"a"` and `"\u0061"`
    /// are duplicates.
    pub fn object<F>(&mut self, mut member: F) -> Result<(), Error>
    where
        F: FnMut(&mut Self, &str) -> Result<(), Error>,
    {
        self.expect_kind(Kind::Object)?;
        self.enter()?;
        self.pos += 1; // "{"
        let mut names: Vec<Cow<'a, str>> = Vec::new();
        if !self.eat(b'}') {
            loop {
                if self.peek()? != Kind::String {
                    return Err(Error::Syntax);
                }
                let name = self.string()?;
                if !self.eat(b':') {
                    return Err(Error::Syntax);
                }
                member(self, &name)?;
                names.push(name);
                if self.eat(b'}') {
                    break;
                }
                if !self.eat(b',') {
                    return Err(Error::Syntax);
                }
            }
        }
        self.depth -= 1;
        // Duplicates are found once the object is read: sorting makes
        // equal names neighbours, in n log n rather than n^2 comparisons.
        names.sort_unstable();
        if names.windows(2).any(|pair| pair[0] == pair[1]) {
            return Err(Error::DuplicateName);
        }
        Ok(())
    }

    /// Reads an array, calling `element(self)` for each element; the
    /// callback must read (or skip) exactly one value.
    pub fn array<F>(&mut self, mut element: F) -> Result<(), Error>
    where
        F: FnMut(&mut Self) -> Result<(), Error>,
    {
        self.expect_kind(Kind::Array)?;
        self.enter()?;
        self.pos += 1; // "["
        if !self.eat(b']') {
            loop {
                element(self)?;
                if self.eat(b']') {
                    break;
                }
                if !self.eat(b',') {
                    return Err(Error::Syntax);
                }
            }
        }
        self.depth -= 1;
        Ok(())
    }

    /// Reads a string and returns it unescaped: borrowed from the input
    /// when it holds no escape.
    pub fn string(&mut self) -> Result<Cow<'a, str>, Error> {
        self.expect_kind(Kind::String)?;
        self.pos += 1; // opening quote
        let start = self.pos;
        // The common case: no escape before the closing quote.
        loop {
            match self.next_byte() {
                None => return Err(Error::Syntax),
                Some(b'"') => {
                    let s = &self.text[start..self.pos];
                    self.pos += 1;
                    return Ok(Cow::Borrowed(s));
                }
                Some(b'\\') => break,
                // unescaped = %x20-21 / %x23-5B / %x5D-10FFFF (section 7)
                Some(0x00..=0x1F) => return Err(Error::BadString),
                Some(_) => self.pos += 1,
            }
        }
        // An escape: build the string. Runs between escapes are copied
        // whole; every index here sits on an ASCII byte, so on a char
        // boundary of the (valid UTF-8) text.
        let mut out = String::with_capacity(self.pos - start + 16);
        out.push_str(&self.text[start..self.pos]);
        loop {
            match self.next_byte() {
                None => return Err(Error::Syntax),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(Cow::Owned(out));
                }
                Some(b'\\') => {
                    self.pos += 1;
                    out.push(self.escape()?);
                }
                Some(0x00..=0x1F) => return Err(Error::BadString),
                Some(_) => {
                    let run_start = self.pos;
                    while let Some(b) = self.next_byte() {
                        if b == b'"' || b == b'\\' || b < 0x20 {
                            break;
                        }
                        self.pos += 1;
                    }
                    out.push_str(&self.text[run_start..self.pos]);
                }
            }
        }
    }

    /// Reads a number and returns its text, checked against the grammar of
    /// RFC 8259 section 6 (no leading zeros, no `+`, no lone `.` or `e`).
    /// Turning it into a value is the caller's choice: JSON puts no limit
    /// on range or precision.
    pub fn number(&mut self) -> Result<&'a str, Error> {
        self.expect_kind(Kind::Number)?;
        let start = self.pos;
        self.eat_byte(b'-');
        // int = zero / ( digit1-9 *DIGIT )
        match self.next_byte() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(Error::Syntax),
        }
        // frac = decimal-point 1*DIGIT
        if self.eat_byte(b'.') {
            if !matches!(self.next_byte(), Some(b'0'..=b'9')) {
                return Err(Error::Syntax);
            }
            self.digits();
        }
        // exp = e [ minus / plus ] 1*DIGIT
        if self.eat_byte(b'e') || self.eat_byte(b'E') {
            if !self.eat_byte(b'-') {
                self.eat_byte(b'+');
            }
            if !matches!(self.next_byte(), Some(b'0'..=b'9')) {
                return Err(Error::Syntax);
            }
            self.digits();
        }
        Ok(&self.text[start..self.pos])
    }

    /// Reads `true` or `false`.
    pub fn boolean(&mut self) -> Result<bool, Error> {
        self.expect_kind(Kind::Bool)?;
        if self.literal("true") {
            Ok(true)
        } else if self.literal("false") {
            Ok(false)
        } else {
            Err(Error::Syntax)
        }
    }

    /// Checks and passes over one value of any kind (objects still may not
    /// repeat a name, nor nest too deep).
    pub fn skip(&mut self) -> Result<(), Error> {
        match self.peek()? {
            Kind::Object => self.object(|r, _| r.skip()),
            Kind::Array => self.array(|r| r.skip()),
            Kind::String => self.string().map(drop),
            Kind::Number => self.number().map(drop),
            Kind::Bool => self.boolean().map(drop),
            Kind::Null if self.literal("null") => Ok(()),
            Kind::Null => Err(Error::Syntax),
        }
    }

    /// Ends reading: only whitespace may remain.
    pub fn finish(mut self) -> Result<(), Error> {
        self.skip_ws();
        if self.pos == self.text.len() {
            Ok(())
        } else {
            Err(Error::TrailingGarbage)
        }
    }

    // --- the pieces ---

    fn next_byte(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    /// Skips whitespace, then is the next value of kind `want`?
    fn expect_kind(&mut self, want: Kind) -> Result<(), Error> {
        if self.peek()? == want {
            Ok(())
        } else {
            Err(Error::WrongType)
        }
    }

    /// One level deeper; refused past [`MAX_DEPTH`].
    fn enter(&mut self) -> Result<(), Error> {
        if self.depth == MAX_DEPTH {
            return Err(Error::TooDeep);
        }
        self.depth += 1;
        Ok(())
    }

    /// ws = *( %x20 / %x09 / %x0A / %x0D )
    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.next_byte() {
            self.pos += 1;
        }
    }

    /// Skips whitespace, then consumes `b` if it is next.
    fn eat(&mut self, b: u8) -> bool {
        self.skip_ws();
        self.eat_byte(b)
    }

    /// Consumes `b` if it is the very next byte.
    fn eat_byte(&mut self, b: u8) -> bool {
        if self.next_byte() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.next_byte() {
            self.pos += 1;
        }
    }

    fn literal(&mut self, word: &str) -> bool {
        if self.text[self.pos..].starts_with(word) {
            self.pos += word.len();
            true
        } else {
            false
        }
    }

    /// After a `\`: the escaped character (RFC 8259 section 7).
    fn escape(&mut self) -> Result<char, Error> {
        let c = match self.next_byte() {
            Some(b'"') => '"',
            Some(b'\\') => '\\',
            Some(b'/') => '/',
            Some(b'b') => '\u{8}',
            Some(b'f') => '\u{c}',
            Some(b'n') => '\n',
            Some(b'r') => '\r',
            Some(b't') => '\t',
            Some(b'u') => {
                self.pos += 1;
                return self.unicode_escape();
            }
            _ => return Err(Error::BadString),
        };
        self.pos += 1;
        Ok(c)
    }

    /// After `\u`: four hex digits, and a second `\uXXXX` when the first is
    /// a high surrogate (section 7: characters outside the Basic
    /// Multilingual Plane are written as a UTF-16 surrogate pair).
    fn unicode_escape(&mut self) -> Result<char, Error> {
        let first = self.hex4()?;
        let code = match first {
            0xD800..=0xDBFF => {
                if !(self.eat_byte(b'\\') && self.eat_byte(b'u')) {
                    return Err(Error::BadString);
                }
                let second = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&second) {
                    return Err(Error::BadString);
                }
                0x10000 + ((u32::from(first) - 0xD800) << 10) + (u32::from(second) - 0xDC00)
            }
            0xDC00..=0xDFFF => return Err(Error::BadString),
            _ => u32::from(first),
        };
        char::from_u32(code).ok_or(Error::BadString)
    }

    fn hex4(&mut self) -> Result<u16, Error> {
        let mut value = 0u16;
        for _ in 0..4 {
            let digit = self
                .next_byte()
                .and_then(|b| (b as char).to_digit(16))
                .ok_or(Error::BadString)?;
            value = value << 4 | digit as u16;
            self.pos += 1;
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks and skips a whole document.
    fn check(text: &str) -> Result<(), Error> {
        let mut r = Reader::new(text.as_bytes())?;
        r.skip()?;
        r.finish()
    }

    fn string(text: &str) -> Result<Cow<'_, str>, Error> {
        let mut r = Reader::new(text.as_bytes())?;
        let s = r.string()?;
        r.finish()?;
        Ok(s)
    }

    fn number(text: &str) -> Result<&str, Error> {
        let mut r = Reader::new(text.as_bytes())?;
        let n = r.number()?;
        r.finish()?;
        Ok(n)
    }

    // --- whole documents ---

    #[test]
    fn every_kind_of_value() {
        assert_eq!(
            check(r#" {"a":[1,-2.5e+3,"x",true,false,null,{},[]],"b":{"c":"d"}} "#),
            Ok(())
        );
    }

    #[test]
    fn whitespace_everywhere() {
        assert_eq!(check("\r\n\t{ \"a\" :\n[ 1 , 2 ] }\n"), Ok(()));
    }

    #[test]
    fn scalars_at_the_top() {
        for text in ["1", "\"s\"", "true", "null"] {
            assert_eq!(check(text), Ok(()), "{text}");
        }
    }

    #[test]
    fn empty_text() {
        assert_eq!(check(""), Err(Error::Syntax));
        assert_eq!(check("  "), Err(Error::Syntax));
    }

    #[test]
    fn not_utf8() {
        assert_eq!(Reader::new(b"\"\xff\"").err(), Some(Error::NotUtf8));
    }

    #[test]
    fn byte_order_mark_refused() {
        assert_eq!(check("\u{feff}{}"), Err(Error::Syntax));
    }

    #[test]
    fn trailing_garbage() {
        assert_eq!(check("{} x"), Err(Error::TrailingGarbage));
        assert_eq!(check("{}{}"), Err(Error::TrailingGarbage));
    }

    #[test]
    fn trailing_comma_in_object() {
        assert_eq!(check(r#"{"a":1,}"#), Err(Error::Syntax));
    }

    #[test]
    fn trailing_comma_in_array() {
        assert_eq!(check("[1,]"), Err(Error::Syntax));
    }

    #[test]
    fn missing_colon() {
        assert_eq!(check(r#"{"a" 1}"#), Err(Error::Syntax));
    }

    #[test]
    fn name_not_a_string() {
        assert_eq!(check("{a:1}"), Err(Error::Syntax));
        assert_eq!(check("{1:1}"), Err(Error::Syntax));
    }

    #[test]
    fn unclosed_object_and_array() {
        assert_eq!(check(r#"{"a":1"#), Err(Error::Syntax));
        assert_eq!(check("[1"), Err(Error::Syntax));
    }

    #[test]
    fn single_quotes_refused() {
        assert_eq!(check("{'a':1}"), Err(Error::Syntax));
    }

    #[test]
    fn bad_literals() {
        for text in ["tru", "nul", "True", "NULL", "nan", "undefined"] {
            assert_eq!(check(text), Err(Error::Syntax), "{text}");
        }
    }

    #[test]
    fn literal_followed_by_letters() {
        assert_eq!(check("[truex]"), Err(Error::Syntax));
    }

    #[test]
    fn duplicate_names() {
        assert_eq!(check(r#"{"a":1,"a":2}"#), Err(Error::DuplicateName));
    }

    #[test]
    fn duplicate_names_after_unescaping() {
        assert_eq!(check(r#"{"a":1,"\u0061":2}"#), Err(Error::DuplicateName));
    }

    #[test]
    fn duplicate_names_in_a_nested_object() {
        assert_eq!(
            check(r#"[{"x":{"b":1,"c":2,"b":3}}]"#),
            Err(Error::DuplicateName)
        );
    }

    #[test]
    fn same_name_in_different_objects_is_fine() {
        assert_eq!(check(r#"{"a":{"a":1},"b":{"a":2}}"#), Ok(()));
    }

    #[test]
    fn depth_limit() {
        let ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert_eq!(check(&ok), Ok(()));
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert_eq!(check(&deep), Err(Error::TooDeep));
    }

    #[test]
    fn deep_nesting_does_not_overflow_the_stack() {
        assert_eq!(check(&"[".repeat(100_000)), Err(Error::TooDeep));
        assert_eq!(check(&r#"{"a":"#.repeat(100_000)), Err(Error::TooDeep));
    }

    // --- strings ---

    #[test]
    fn plain_string_is_borrowed() {
        assert!(matches!(string(r#""café""#), Ok(Cow::Borrowed("café"))));
    }

    #[test]
    fn every_short_escape() {
        assert_eq!(
            string(r#""\"\\\/\b\f\n\r\t""#).as_deref(),
            Ok("\"\\/\u{8}\u{c}\n\r\t")
        );
    }

    #[test]
    fn unicode_escapes() {
        assert_eq!(string(r#""\u00e9\u00C9x""#).as_deref(), Ok("éÉx"));
    }

    #[test]
    fn surrogate_pair() {
        assert_eq!(string(r#""\ud83d\ude00""#).as_deref(), Ok("😀"));
    }

    #[test]
    fn lone_high_surrogate() {
        assert_eq!(string(r#""\ud83d""#), Err(Error::BadString));
        assert_eq!(string(r#""\ud83dx""#), Err(Error::BadString));
    }

    #[test]
    fn high_surrogate_then_non_surrogate() {
        assert_eq!(string(r#""\ud83d\u0041""#), Err(Error::BadString));
    }

    #[test]
    fn lone_low_surrogate() {
        assert_eq!(string(r#""\ude00""#), Err(Error::BadString));
    }

    #[test]
    fn short_unicode_escape() {
        assert_eq!(string(r#""\u00e""#), Err(Error::BadString));
        assert_eq!(string(r#""\u12"#), Err(Error::BadString));
    }

    #[test]
    fn unknown_escape() {
        assert_eq!(string(r#""\x41""#), Err(Error::BadString));
        assert_eq!(string(r#""\'""#), Err(Error::BadString));
    }

    #[test]
    fn raw_control_character() {
        assert_eq!(string("\"a\nb\""), Err(Error::BadString));
        assert_eq!(string("\"a\\n\tb\""), Err(Error::BadString));
    }

    #[test]
    fn delete_is_allowed_raw() {
        assert_eq!(string("\"\u{7f}\"").as_deref(), Ok("\u{7f}"));
    }

    #[test]
    fn unterminated_string() {
        assert_eq!(string(r#""abc"#), Err(Error::Syntax));
        assert_eq!(string(r#""ab\"#), Err(Error::BadString));
        assert_eq!(string(r#""a\n"#), Err(Error::Syntax));
    }

    // --- numbers ---

    #[test]
    fn numbers_accepted() {
        for text in [
            "0",
            "-0",
            "7",
            "-12",
            "1.5",
            "0.25",
            "1e9",
            "1E+9",
            "2.5e-3",
            "1300819380",
        ] {
            assert_eq!(number(text), Ok(text), "{text}");
        }
    }

    #[test]
    fn numbers_refused() {
        for text in [
            "01", "-", "+1", ".5", "1.", "1e", "1e+", "--1", "0x10", "1.5.2", "Infinity",
        ] {
            assert!(number(text).is_err(), "{text}");
        }
    }

    // --- types ---

    #[test]
    fn wrong_type_is_reported() {
        let mut r = Reader::new(b"123").unwrap();
        assert_eq!(r.string(), Err(Error::WrongType));
        let mut r = Reader::new(b"\"x\"").unwrap();
        assert_eq!(r.boolean(), Err(Error::WrongType));
        let mut r = Reader::new(b"[]").unwrap();
        assert_eq!(r.object(|r, _| r.skip()), Err(Error::WrongType));
    }

    #[test]
    fn object_members_in_order() {
        let mut r = Reader::new(br#"{"b":true,"a":[1,2]}"#).unwrap();
        let mut seen = Vec::new();
        r.object(|r, name| {
            seen.push(name.to_string());
            match name {
                "b" => assert!(r.boolean()?),
                _ => r.array(|r| r.number().map(drop))?,
            }
            Ok(())
        })
        .unwrap();
        r.finish().unwrap();
        assert_eq!(seen, ["b", "a"]);
    }

    #[test]
    fn callback_that_reads_nothing_is_a_syntax_error() {
        let mut r = Reader::new(br#"{"a":1}"#).unwrap();
        assert_eq!(r.object(|_, _| Ok(())), Err(Error::Syntax));
    }
}
