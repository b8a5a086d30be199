//! JSON for the suites: a tiny RFC 8259 parser written here (so bodies are
//! checked without sharing any code with the server) and the assertions on
//! the contract's JSON answers that several suites make.

use super::Response;

/// A parsed JSON value, from a tiny parser written here so that the suites
/// check bodies without sharing any code with the server.
#[derive(Debug, Clone, PartialEq)]
pub enum JsonValue {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<JsonValue>),
    Obj(Vec<(String, JsonValue)>),
}

impl JsonValue {
    /// The member `key` of an object.
    pub fn get(&self, key: &str) -> Option<&JsonValue> {
        match self {
            JsonValue::Obj(m) => m.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            JsonValue::Str(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            JsonValue::Num(n) => Some(*n),
            _ => None,
        }
    }
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            JsonValue::Bool(b) => Some(*b),
            _ => None,
        }
    }
    /// The member names of an object, in order.
    pub fn keys(&self) -> Vec<&str> {
        match self {
            JsonValue::Obj(m) => m.iter().map(|(k, _)| k.as_str()).collect(),
            _ => Vec::new(),
        }
    }
}

/// Parses a whole JSON text (RFC 8259); `Err` says where it went wrong.
pub fn parse_json(text: &str) -> Result<JsonValue, String> {
    struct P<'a> {
        b: &'a [u8],
        i: usize,
    }
    impl P<'_> {
        fn ws(&mut self) {
            while self.i < self.b.len() && matches!(self.b[self.i], b' ' | b'\t' | b'\n' | b'\r') {
                self.i += 1;
            }
        }
        fn err<T>(&self, what: &str) -> Result<T, String> {
            Err(format!("{what} at byte {}", self.i))
        }
        fn lit(&mut self, l: &str, v: JsonValue) -> Result<JsonValue, String> {
            if self.b[self.i..].starts_with(l.as_bytes()) {
                self.i += l.len();
                Ok(v)
            } else {
                self.err("bad literal")
            }
        }
        fn value(&mut self) -> Result<JsonValue, String> {
            self.ws();
            match self.b.get(self.i) {
                None => self.err("unexpected end"),
                Some(b'n') => self.lit("null", JsonValue::Null),
                Some(b't') => self.lit("true", JsonValue::Bool(true)),
                Some(b'f') => self.lit("false", JsonValue::Bool(false)),
                Some(b'"') => Ok(JsonValue::Str(self.string()?)),
                Some(b'[') => {
                    self.i += 1;
                    let mut v = Vec::new();
                    self.ws();
                    if self.b.get(self.i) == Some(&b']') {
                        self.i += 1;
                        return Ok(JsonValue::Arr(v));
                    }
                    loop {
                        v.push(self.value()?);
                        self.ws();
                        match self.b.get(self.i) {
                            Some(b',') => self.i += 1,
                            Some(b']') => {
                                self.i += 1;
                                return Ok(JsonValue::Arr(v));
                            }
                            _ => return self.err("expected , or ]"),
                        }
                    }
                }
                Some(b'{') => {
                    self.i += 1;
                    let mut m = Vec::new();
                    self.ws();
                    if self.b.get(self.i) == Some(&b'}') {
                        self.i += 1;
                        return Ok(JsonValue::Obj(m));
                    }
                    loop {
                        self.ws();
                        if self.b.get(self.i) != Some(&b'"') {
                            return self.err("expected a key");
                        }
                        let k = self.string()?;
                        self.ws();
                        if self.b.get(self.i) != Some(&b':') {
                            return self.err("expected :");
                        }
                        self.i += 1;
                        m.push((k, self.value()?));
                        self.ws();
                        match self.b.get(self.i) {
                            Some(b',') => self.i += 1,
                            Some(b'}') => {
                                self.i += 1;
                                return Ok(JsonValue::Obj(m));
                            }
                            _ => return self.err("expected , or }"),
                        }
                    }
                }
                Some(_) => {
                    let start = self.i;
                    while self.i < self.b.len()
                        && matches!(
                            self.b[self.i],
                            b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'
                        )
                    {
                        self.i += 1;
                    }
                    let t = std::str::from_utf8(&self.b[start..self.i]).unwrap();
                    let ok = !t.is_empty()
                        && !t.starts_with('+')
                        && !t.starts_with('.')
                        && !t.starts_with("-.");
                    match t.parse::<f64>() {
                        Ok(n) if ok => Ok(JsonValue::Num(n)),
                        _ => self.err("bad number"),
                    }
                }
            }
        }
        fn string(&mut self) -> Result<String, String> {
            self.i += 1; // opening quote
            let mut out: Vec<u8> = Vec::new();
            loop {
                let Some(&c) = self.b.get(self.i) else {
                    return self.err("unterminated string");
                };
                self.i += 1;
                match c {
                    b'"' => return String::from_utf8(out).map_err(|_| "invalid UTF-8".to_string()),
                    b'\\' => {
                        let Some(&e) = self.b.get(self.i) else {
                            return self.err("bad escape");
                        };
                        self.i += 1;
                        let ch = match e {
                            b'"' => '"',
                            b'\\' => '\\',
                            b'/' => '/',
                            b'b' => '\u{8}',
                            b'f' => '\u{c}',
                            b'n' => '\n',
                            b'r' => '\r',
                            b't' => '\t',
                            b'u' => {
                                let hex = |p: &mut Self| -> Result<u32, String> {
                                    let h = p.b.get(p.i..p.i + 4).ok_or("short \\u")?;
                                    p.i += 4;
                                    u32::from_str_radix(
                                        std::str::from_utf8(h).map_err(|e| e.to_string())?,
                                        16,
                                    )
                                    .map_err(|e| e.to_string())
                                };
                                let mut u = hex(self)?;
                                if (0xD800..0xDC00).contains(&u)
                                    && self.b[self.i..].starts_with(b"\\u")
                                {
                                    self.i += 2;
                                    let lo = hex(self)?;
                                    u = 0x10000
                                        + ((u - 0xD800) << 10)
                                        + (lo.wrapping_sub(0xDC00) & 0x3FF);
                                }
                                char::from_u32(u).ok_or("bad \\u escape")?
                            }
                            _ => return self.err("bad escape"),
                        };
                        let mut tmp = [0u8; 4];
                        out.extend_from_slice(ch.encode_utf8(&mut tmp).as_bytes());
                    }
                    c if c < 0x20 => return self.err("control character in string"),
                    c => out.push(c),
                }
            }
        }
    }
    let mut p = P {
        b: text.as_bytes(),
        i: 0,
    };
    let v = p.value()?;
    p.ws();
    if p.i != p.b.len() {
        return p.err("trailing bytes");
    }
    Ok(v)
}

/// The body of `r` parsed as JSON; panics (showing the body) when it is not.
pub fn json(r: &Response) -> JsonValue {
    parse_json(&r.text()).unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", r.text()))
}

/// `r` has a `Content-Type` of `application/json` (parameters allowed).
pub fn assert_json_type(r: &Response) {
    let ct = r
        .header("content-type")
        .unwrap_or_else(|| panic!("no Content-Type: {r:?}"));
    assert!(
        ct.to_ascii_lowercase().starts_with("application/json"),
        "Content-Type {ct:?}"
    );
}

/// The contract's error shape: `status`, JSON `{"error":"<sentence>"}`
/// (a sentence: at least one letter). `what` names the case in failures.
pub fn assert_error(r: &Response, status: u16, what: &str) {
    assert_eq!(r.status, status, "{what}: body {:?}", r.text());
    assert_json_type(r);
    let msg = json(r)
        .get("error")
        .and_then(|e| e.as_str())
        .map(str::to_string)
        .unwrap_or_else(|| panic!("{what}: no error string in {:?}", r.text()));
    assert!(
        msg.chars().any(|c| c.is_alphabetic()),
        "{what}: error message {msg:?}"
    );
}

/// The member `key` of `v` as a non-negative whole number; panics when it
/// is missing, not a number, negative or fractional.
pub fn num(v: &JsonValue, key: &str) -> u64 {
    let n = v
        .get(key)
        .and_then(|x| x.as_f64())
        .unwrap_or_else(|| panic!("no number {key:?} in {v:?}"));
    assert!(n >= 0.0 && n.fract() == 0.0, "{key} = {n}");
    n as u64
}
