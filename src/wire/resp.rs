//! RESP, the Redis serialization protocol (RESP2, and the simple part of
//! RESP3), decoded from a growing buffer.
//!
//! Section names in quotes below are those of the "Redis serialization
//! protocol specification" (redis.io/docs/reference/protocol-spec, "the
//! spec"); "RESP3" means `protocol/RESP3.md` in redis/redis-specifications.
//!
//! Every value starts with one byte that names its type and ends its first
//! line with CRLF (the spec, "RESP protocol description"). Bulk strings and
//! arrays announce a length on that line, and what they announced follows:
//!
//! ```text
//!  type   first line                   CRLF    then
//! +-----+----------------------------+-------+-------------------------------+
//! |  +  | OK            (no CR or LF)| CR LF |                               |  simple string
//! |  -  | ERR message   (no CR or LF)| CR LF |                               |  error
//! |  :  | [+|-] 1*DIGIT (an i64)     | CR LF |                               |  integer
//! |  $  | length        (or -1)      | CR LF | <length bytes, any> CR LF     |  bulk string
//! |  *  | count         (or -1)      | CR LF | <count values, any type>      |  array
//! +-----+----------------------------+-------+-------------------------------+
//!
//!  $-1 CR LF    the null bulk string \  both are Value::Null: RESP2's two
//!  *-1 CR LF    the null array       /  spellings of "no value"
//! ```
//!
//! A pub/sub message as Redis sends it to a subscriber, one part per line:
//!
//! ```text
//! *3\r\n          an array of three values:
//! $7\r\n            a bulk string of 7 bytes,
//! message\r\n       its data, then CRLF
//! $2\r\n            the channel,
//! ch\r\n
//! $5\r\n            the payload
//! hello\r\n
//! ```
//!
//! A client sends every command the same way, as an array of bulk strings
//! ([`write_command`]): `SUBSCRIBE ch` is `*2\r\n$9\r\nSUBSCRIBE\r\n$2\r\nch\r\n`.
//!
//! # RESP3
//!
//! pushwire never sends `HELLO 3`, so a server answers it in RESP2. Should
//! RESP3 types arrive anyway, the common ones are read into the RESP2 shape
//! Redis itself uses when it answers a RESP2 client, so [`Value`] stays the
//! RESP2 model:
//!
//! | RESP3          | wire              | read as                               |
//! |----------------|-------------------|---------------------------------------|
//! | null           | `_\r\n`           | `Value::Null`                         |
//! | boolean        | `#t\r\n` `#f\r\n` | `Value::Integer(1)` / `(0)`           |
//! | double         | `,1.23\r\n`       | `Value::Bulk(b"1.23")`, the text      |
//! | map of N pairs | `%N\r\n` ...      | `Value::Array` of 2N: k1 v1 k2 v2 ... |
//! | set            | `~N\r\n` ...      | `Value::Array`                        |
//! | push           | `>N\r\n` ...      | `Value::Array`                        |
//!
//! **Not implemented** (they are [`RespError::BadType`]): big numbers `(`,
//! bulk errors `!`, verbatim strings `=`, attributes `|`, and inline commands
//! (`PING\r\n` typed into telnet; a server's business, not a client's).
//!
//! # How strict, and why
//!
//! A reply that is read wrongly shifts every later reply on the connection
//! onto the wrong command, so nothing "close enough" is accepted:
//!
//! * Every line ends in CRLF; a bare LF, or a CR followed by anything else,
//!   is [`RespError::MissingCrlf`]. So is bulk data not followed by CRLF
//!   (the announced length was wrong).
//! * A length is `1*DIGIT`, or exactly `-1` where a null may be. Anything
//!   else (a sign, a space, `-2`) is [`RespError::BadLength`].
//! * An integer is `[+|-]1*DIGIT` within `i64`, else
//!   [`RespError::BadInteger`]. A number line may have at most 19 digits
//!   (enough for any `i64`), so a line of endless digits fails early.
//! * [`Limits`] bound what a peer can make us hold: a bulk string (and a
//!   simple string or error line) longer than `max_bulk` and an aggregate
//!   announcing more than `max_elements` values are [`RespError::TooLarge`]
//!   as soon as the length is read, before any data arrives; aggregates
//!   nested deeper than `max_depth` are [`RespError::TooDeep`].
//!
//! Leniencies: simple strings and errors are text in [`Value`], and bytes
//! that are not UTF-8 become U+FFFD (Redis sends ASCII there; the binary-safe
//! type is the bulk string).
//!
//! # Cost of `Partial`
//!
//! [`parse`] keeps no state between calls: when a reply is incomplete the
//! caller reads more and calls again on the same, longer buffer, and the
//! parser starts over. So each call first *scans* the value without building
//! anything: it reads the type bytes and the length lines and jumps over
//! bulk data by its announced length, never looking inside it, and
//! allocates nothing but a stack of one counter per open aggregate. Only
//! once the whole value is known to be there does a second pass build it,
//! copying each bulk string once. A call that answers `Partial` therefore
//! costs time in proportion to the number of values received so far (plus
//! the bytes of simple-string lines), not to the bytes of bulk data, and no
//! memory in proportion to any announced length. A huge reply received in
//! many reads is rescanned once per read; a caller that cares can wait
//! until the buffer holds what the headers announced.

use std::fmt::{self, Write as _};
use std::io::Write as _;

use super::Status;

/// A decoded RESP value (the RESP2 types; see the module docs for RESP3).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `+OK\r\n`: a status reply, text without CR or LF.
    Simple(String),
    /// `-ERR message\r\n`: an error reply; by convention its first word is
    /// an error code (`ERR`, `WRONGTYPE`, ...).
    Error(String),
    /// `:1000\r\n`: a signed 64-bit integer.
    Integer(i64),
    /// `$5\r\nhello\r\n`: binary-safe bytes.
    Bulk(Vec<u8>),
    /// `$-1\r\n` or `*-1\r\n` (or RESP3 `_\r\n`): no value, as `GET` of a
    /// missing key or `BLPOP` timing out.
    Null,
    /// `*2\r\n...`: values of any type, nested arrays included.
    Array(Vec<Value>),
}

/// Why bytes are not RESP. Each variant is one rule of the format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RespError {
    /// The first byte of a value names no type we read (see the module
    /// docs for the list).
    BadType(u8),
    /// A bulk string or aggregate length is not `1*DIGIT` (or `-1` where a
    /// null may be).
    BadLength,
    /// An integer is not `[+|-]1*DIGIT` or is outside `i64`; also a RESP3
    /// boolean other than `t`/`f`, or a RESP3 double that is not a number.
    BadInteger,
    /// A line does not end in CRLF, or bulk data is not followed by CRLF.
    MissingCrlf,
    /// A length over [`Limits`] (`max_bulk`, `max_elements`) or too long to
    /// represent; or a simple string or error line longer than `max_bulk`.
    TooLarge,
    /// Aggregates nested deeper than `Limits::max_depth`.
    TooDeep,
}

impl fmt::Display for RespError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RespError::BadType(b) => write!(f, "unknown RESP type byte {:?}", char::from(*b)),
            RespError::BadLength => f.write_str("a RESP length is not a non-negative number"),
            RespError::BadInteger => f.write_str("a RESP integer is malformed or out of range"),
            RespError::MissingCrlf => {
                f.write_str("a RESP line or bulk string does not end in CRLF")
            }
            RespError::TooLarge => f.write_str("a RESP value is larger than allowed"),
            RespError::TooDeep => f.write_str("RESP arrays are nested deeper than allowed"),
        }
    }
}

impl std::error::Error for RespError {}

/// What a peer may make [`parse`] accept.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The longest bulk string, in bytes; also the longest simple string or
    /// error line.
    pub max_bulk: usize,
    /// The most values one aggregate may announce (a RESP3 map of N pairs
    /// counts 2N).
    pub max_elements: usize,
    /// How deeply aggregates may nest: 1 allows an array of scalars, 0 no
    /// array at all. [`Value`]'s drop, [`write_value`] and [`describe`]
    /// recurse this deep, so keep it small.
    pub max_depth: usize,
}

impl Default for Limits {
    /// 512 MiB bulk strings (Redis's own `proto-max-bulk-len` default, the
    /// spec's "Bulk strings"), 2^20 values per aggregate, 32 levels.
    fn default() -> Self {
        Limits {
            max_bulk: 512 * 1024 * 1024,
            max_elements: 1 << 20,
            max_depth: 32,
        }
    }
}

/// The shortest encoded value (`_\r\n`, `+\r\n`): how many values a buffer
/// can hold at most.
const MIN_VALUE_LEN: usize = 3;

/// The most digits a number line may have: 19 hold any `i64` (and any
/// length we would accept), and 19 nines still fit in a `u64`.
const MAX_DIGITS: usize = 19;

/// Parses one complete value from the start of `buf`.
///
/// `Complete((value, n))`: the value is the first `n` bytes; what follows
/// is the next reply (replies may be pipelined). `Partial`: the value is not
/// all there yet; nothing is consumed, so call again with the same buffer
/// once more bytes have been appended. An error is final: more bytes do not
/// change it.
///
/// Never panics, and allocates only in proportion to the bytes in `buf`
/// (see "Cost of `Partial`" in the module docs).
pub fn parse(buf: &[u8], limits: &Limits) -> Result<Status<(Value, usize)>, RespError> {
    // Pass 1: is a whole value there? (Allocates no value.)
    if scan(buf, limits)?.is_none() {
        return Ok(Status::Partial);
    }
    // Pass 2: build it. The bytes passed every check already, so this
    // cannot fail or come up short; it returns a Result only to stay total.
    match build(buf, limits)? {
        Some((value, used)) => Ok(Status::Complete((value, used))),
        None => Ok(Status::Partial),
    }
}

/// One unit of the wire: a whole scalar, or the first line of an
/// aggregate. Borrowed from the buffer; nothing is copied yet.
enum Item<'a> {
    Simple(&'a [u8]),
    Error(&'a [u8]),
    Integer(i64),
    Bulk(&'a [u8]),
    Null,
    /// This many values follow, each a whole value of any type.
    Aggregate(usize),
}

/// Walks the value at the start of `buf` without building it: `Some(n)` if
/// it is whole and `n` bytes long, `None` if more bytes are needed.
fn scan(buf: &[u8], limits: &Limits) -> Result<Option<usize>, RespError> {
    let mut pos = 0;
    // One entry per open aggregate, outermost first: values still owed.
    let mut owed: Vec<usize> = Vec::new();
    'items: loop {
        let Some((item, next)) = item(buf, pos, limits)? else {
            return Ok(None);
        };
        pos = next;
        if let Item::Aggregate(n) = item {
            if owed.len() >= limits.max_depth {
                return Err(RespError::TooDeep);
            }
            if n > 0 {
                owed.push(n);
                continue;
            }
        }
        // A whole value ended. It pays one value owed to the innermost open
        // aggregate, which may be whole in turn.
        while let Some(last) = owed.last_mut() {
            *last -= 1;
            if *last > 0 {
                continue 'items;
            }
            owed.pop();
        }
        return Ok(Some(pos));
    }
}

/// Builds the value at the start of `buf`, the same walk as [`scan`].
fn build(buf: &[u8], limits: &Limits) -> Result<Option<(Value, usize)>, RespError> {
    let mut pos = 0;
    // One entry per open aggregate, outermost first: its values so far,
    // and how many it announced.
    let mut open: Vec<(Vec<Value>, usize)> = Vec::new();
    'items: loop {
        let Some((item, next)) = item(buf, pos, limits)? else {
            return Ok(None);
        };
        pos = next;
        let mut value = match item {
            Item::Aggregate(n) => {
                if open.len() >= limits.max_depth {
                    return Err(RespError::TooDeep);
                }
                if n > 0 {
                    // Never more room than the rest of the buffer could fill
                    // (after `scan`, all n values are known to be there).
                    let room = (buf.len() - pos) / MIN_VALUE_LEN;
                    open.push((Vec::with_capacity(n.min(room)), n));
                    continue;
                }
                Value::Array(Vec::new())
            }
            Item::Simple(s) => Value::Simple(String::from_utf8_lossy(s).into_owned()),
            Item::Error(s) => Value::Error(String::from_utf8_lossy(s).into_owned()),
            Item::Integer(n) => Value::Integer(n),
            Item::Bulk(b) => Value::Bulk(b.to_vec()),
            Item::Null => Value::Null,
        };
        // A whole value: it goes into the innermost open aggregate, which
        // may be whole in turn.
        while let Some((values, announced)) = open.last_mut() {
            values.push(value);
            if values.len() < *announced {
                continue 'items;
            }
            value = Value::Array(std::mem::take(values));
            open.pop();
        }
        return Ok(Some((value, pos)));
    }
}

/// Reads the item at `buf[pos..]`: `Some((item, where the next starts))`,
/// or `None` when the buffer ends first.
fn item<'a>(
    buf: &'a [u8],
    pos: usize,
    limits: &Limits,
) -> Result<Option<(Item<'a>, usize)>, RespError> {
    let Some(&kind) = buf.get(pos) else {
        return Ok(None);
    };
    let at = pos + 1;
    let read = match kind {
        // The spec, "Simple strings" and "Simple errors": the text up to
        // the first CRLF; it "mustn't contain a CR or LF character".
        b'+' => line(buf, at, limits.max_bulk)?.map(|(s, next)| (Item::Simple(s), next)),
        b'-' => line(buf, at, limits.max_bulk)?.map(|(s, next)| (Item::Error(s), next)),
        // The spec, "Integers": "a signed 64-bit integer".
        b':' => integer(buf, at)?.map(|(n, next)| (Item::Integer(n), next)),
        b'$' => bulk(buf, at, limits.max_bulk)?,
        // The spec, "Arrays" and "Null arrays".
        b'*' => match length(buf, at, limits.max_elements)? {
            None => None,
            Some((Length::Null, next)) => Some((Item::Null, next)),
            Some((Length::Of(n), next)) => Some((Item::Aggregate(n), next)),
        },

        // RESP3, read as Redis answers a RESP2 client (see the module docs).
        // "Null": just `_` and CRLF.
        b'_' => crlf(buf, at)?.map(|next| (Item::Null, next)),
        // "Boolean": `#t` or `#f`.
        b'#' => match buf.get(at) {
            None => None,
            Some(b't') => crlf(buf, at + 1)?.map(|next| (Item::Integer(1), next)),
            Some(b'f') => crlf(buf, at + 1)?.map(|next| (Item::Integer(0), next)),
            Some(_) => return Err(RespError::BadInteger),
        },
        // "Double": kept as its text, checked against the grammar.
        b',' => match line(buf, at, limits.max_bulk)? {
            Some((text, next)) if is_double(text) => Some((Item::Bulk(text), next)),
            Some(_) => return Err(RespError::BadInteger),
            None => None,
        },
        // "Map type": N counts pairs, 2N values follow. RESP3 aggregates
        // have no `-1` form (RESP3 has `_` for that).
        b'%' => match length(buf, at, limits.max_elements / 2)? {
            None => None,
            Some((Length::Of(pairs), next)) => Some((Item::Aggregate(2 * pairs), next)),
            Some((Length::Null, _)) => return Err(RespError::BadLength),
        },
        // "Set reply" and push types: like arrays.
        b'~' | b'>' => match length(buf, at, limits.max_elements)? {
            None => None,
            Some((Length::Of(n), next)) => Some((Item::Aggregate(n), next)),
            Some((Length::Null, _)) => return Err(RespError::BadLength),
        },
        other => return Err(RespError::BadType(other)),
    };
    Ok(read)
}

/// The spec, "Bulk strings": `$<length>\r\n<data>\r\n`, and "Null bulk
/// strings": `$-1\r\n`. `at` is just past the `$`.
fn bulk(buf: &[u8], at: usize, max_bulk: usize) -> Result<Option<(Item<'_>, usize)>, RespError> {
    let Some((len, start)) = length(buf, at, max_bulk)? else {
        return Ok(None);
    };
    let n = match len {
        Length::Null => return Ok(Some((Item::Null, start))),
        Length::Of(n) => n,
    };
    // The data is not inspected: it may hold CR, LF, anything. Only the
    // CRLF after exactly n bytes says the length was right.
    let end = start.checked_add(n).ok_or(RespError::TooLarge)?;
    if end > buf.len() {
        return Ok(None);
    }
    Ok(crlf(buf, end)?.map(|next| (Item::Bulk(&buf[start..end]), next)))
}

/// A length line, as read by [`length`].
enum Length {
    /// `-1`: the null bulk string or null array.
    Null,
    Of(usize),
}

/// Reads a length line at `at`: `1*DIGIT CRLF`, at most `max`, or `-1 CRLF`.
fn length(buf: &[u8], at: usize, max: usize) -> Result<Option<(Length, usize)>, RespError> {
    let Some((sign, magnitude, next)) =
        decimal(buf, at, RespError::BadLength, RespError::TooLarge)?
    else {
        return Ok(None);
    };
    match sign {
        None => match usize::try_from(magnitude) {
            Ok(n) if n <= max => Ok(Some((Length::Of(n), next))),
            _ => Err(RespError::TooLarge),
        },
        // The spec: a null is "a bulk string with the length of negative
        // one (-1)" or "an array with the length of -1"; no other negative.
        Some(b'-') if magnitude == 1 => Ok(Some((Length::Null, next))),
        Some(_) => Err(RespError::BadLength),
    }
}

/// Reads an integer line at `at`: `[+|-]1*DIGIT CRLF` within `i64`.
fn integer(buf: &[u8], at: usize) -> Result<Option<(i64, usize)>, RespError> {
    let Some((sign, magnitude, next)) =
        decimal(buf, at, RespError::BadInteger, RespError::BadInteger)?
    else {
        return Ok(None);
    };
    let n = match sign {
        // i64::MIN has a magnitude one larger than i64::MAX.
        Some(b'-') => 0i64.checked_sub_unsigned(magnitude),
        _ => i64::try_from(magnitude).ok(),
    };
    match n {
        Some(n) => Ok(Some((n, next))),
        None => Err(RespError::BadInteger),
    }
}

/// Reads `[+|-]1*DIGIT CRLF` at `pos`, byte by byte: the sign byte if any,
/// the digits' value, and where the next item starts.
///
/// It fails at the first byte that cannot belong (`bad`), or at a 20th digit
/// (`overflow`), instead of waiting for a CRLF that may never come. A bare
/// LF or a CR not followed by LF is [`RespError::MissingCrlf`].
fn decimal(
    buf: &[u8],
    mut pos: usize,
    bad: RespError,
    overflow: RespError,
) -> Result<Option<(Option<u8>, u64, usize)>, RespError> {
    let sign = match buf.get(pos) {
        None => return Ok(None),
        Some(&s @ (b'+' | b'-')) => {
            pos += 1;
            Some(s)
        }
        Some(_) => None,
    };
    let first_digit = pos;
    let mut value: u64 = 0;
    loop {
        match buf.get(pos) {
            None => return Ok(None),
            Some(&d @ b'0'..=b'9') => {
                if pos - first_digit == MAX_DIGITS {
                    return Err(overflow);
                }
                value = value * 10 + u64::from(d - b'0');
                pos += 1;
            }
            Some(b'\r' | b'\n') if pos == first_digit => return Err(bad),
            Some(b'\r' | b'\n') => return Ok(crlf(buf, pos)?.map(|next| (sign, value, next))),
            Some(_) => return Err(bad),
        }
    }
}

/// Reads a text line at `pos`: the bytes before the first CRLF, at most
/// `max` of them, and where the next item starts.
fn line(buf: &[u8], pos: usize, max: usize) -> Result<Option<(&[u8], usize)>, RespError> {
    let rest = buf.get(pos..).unwrap_or_default();
    // Look no further than the longest line allowed, plus its CR.
    let window = &rest[..rest.len().min(max.saturating_add(1))];
    match window.iter().position(|&b| b == b'\r' || b == b'\n') {
        // A LF first is a bare LF; `crlf` says so.
        Some(i) => Ok(crlf(buf, pos + i)?.map(|next| (&rest[..i], next))),
        None if window.len() > max => Err(RespError::TooLarge),
        None => Ok(None),
    }
}

/// Checks for CRLF at `pos`: `Some(pos + 2)`, `None` if the buffer ends
/// before both bytes are there, [`RespError::MissingCrlf`] on any other
/// byte. A lone CR at the end is not yet an error: its LF may be on the way.
fn crlf(buf: &[u8], pos: usize) -> Result<Option<usize>, RespError> {
    match (buf.get(pos), buf.get(pos + 1)) {
        (Some(b'\r'), Some(b'\n')) => Ok(Some(pos + 2)),
        (None, _) | (Some(b'\r'), None) => Ok(None),
        _ => Err(RespError::MissingCrlf),
    }
}

/// RESP3, "Double": an integral part of one or more digits, an optional
/// `.` and one or more digits, an optional `E`/`e`, sign and one or more
/// digits; or `inf`, `-inf`, `nan` (and `-nan`, valid in earlier versions).
/// A leading sign is allowed, as for integers.
fn is_double(text: &[u8]) -> bool {
    if matches!(text, b"inf" | b"-inf" | b"nan" | b"-nan") {
        return true;
    }
    let digits = |s: &[u8]| s.iter().take_while(|b| b.is_ascii_digit()).count();
    let mut s = text
        .strip_prefix(b"-")
        .or(text.strip_prefix(b"+"))
        .unwrap_or(text);
    let n = digits(s);
    if n == 0 {
        return false;
    }
    s = &s[n..];
    if let Some(fraction) = s.strip_prefix(b".") {
        let n = digits(fraction);
        if n == 0 {
            return false;
        }
        s = &fraction[n..];
    }
    if let Some(exponent) = s.strip_prefix(b"e").or(s.strip_prefix(b"E")) {
        let exponent = exponent
            .strip_prefix(b"-")
            .or(exponent.strip_prefix(b"+"))
            .unwrap_or(exponent);
        let n = digits(exponent);
        if n == 0 {
            return false;
        }
        s = &exponent[n..];
    }
    s.is_empty()
}

/// Appends a command as a client sends it (the spec, "Sending commands to
/// a Redis server"): an array of bulk strings, `*N\r\n` then `$len\r\narg\r\n`
/// for each argument. Arguments are binary-safe.
pub fn write_command(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.reserve(16 + args.iter().map(|a| a.len() + 16).sum::<usize>());
    write_header(out, b'*', args.len());
    for arg in args {
        write_bulk(out, arg);
    }
}

/// Appends any value in its RESP2 form. `Null` is written `$-1\r\n`.
///
/// Simple strings and errors may not hold CR or LF; any that a hand-made
/// `Value` holds are written as spaces (as Redis does for error text), so
/// the output always parses.
pub fn write_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Simple(s) => write_line(out, b'+', s),
        Value::Error(s) => write_line(out, b'-', s),
        // Writing into a Vec cannot fail.
        Value::Integer(n) => {
            let _ = write!(out, ":{n}\r\n");
        }
        Value::Bulk(data) => write_bulk(out, data),
        Value::Null => out.extend_from_slice(b"$-1\r\n"),
        Value::Array(values) => {
            write_header(out, b'*', values.len());
            for value in values {
                write_value(out, value);
            }
        }
    }
}

/// `<kind><n>\r\n`, the first line of a bulk string or an array.
fn write_header(out: &mut Vec<u8>, kind: u8, n: usize) {
    out.push(kind);
    // Writing into a Vec cannot fail.
    let _ = write!(out, "{n}\r\n");
}

fn write_bulk(out: &mut Vec<u8>, data: &[u8]) {
    write_header(out, b'$', data.len());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

fn write_line(out: &mut Vec<u8>, kind: u8, text: &str) {
    out.push(kind);
    out.extend(
        text.bytes()
            .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
    );
    out.extend_from_slice(b"\r\n");
}

/// Bytes of a string shown by [`describe`] before `...`.
const DESCRIBE_BYTES: usize = 32;
/// Values of an array shown by [`describe`] before `... N more`.
const DESCRIBE_VALUES: usize = 8;
/// Once the line is this long, [`describe`] shows no more values.
const DESCRIBE_LINE: usize = 200;

/// A one-line rendering for `--trace`:
/// `*3 [$7 "message", $2 "ch", $5 "hello"]`.
///
/// Types are shown by their RESP byte (`+"OK"`, `-"ERR ..."`, `:42`,
/// `$5 "hello"` with the full length, `(nil)`, `*N [...]`); text is quoted,
/// with anything but printable ASCII escaped, and cut after 32 bytes; an
/// array shows at most 8 values, and none once the line passes 200 bytes.
pub fn describe(v: &Value) -> String {
    let mut out = String::new();
    render(v, &mut out);
    out
}

fn render(v: &Value, out: &mut String) {
    // Writing into a String cannot fail.
    match v {
        Value::Simple(s) => {
            out.push('+');
            quote(out, s.as_bytes());
        }
        Value::Error(s) => {
            out.push('-');
            quote(out, s.as_bytes());
        }
        Value::Integer(n) => {
            let _ = write!(out, ":{n}");
        }
        Value::Bulk(data) => {
            let _ = write!(out, "${} ", data.len());
            quote(out, data);
        }
        Value::Null => out.push_str("(nil)"),
        Value::Array(values) => {
            let _ = write!(out, "*{} [", values.len());
            for (i, value) in values.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                if i == DESCRIBE_VALUES || out.len() >= DESCRIBE_LINE {
                    let _ = write!(out, "... {} more", values.len() - i);
                    break;
                }
                render(value, out);
            }
            out.push(']');
        }
    }
}

/// `bytes` in double quotes, escaped so the trace stays one line of ASCII.
fn quote(out: &mut String, bytes: &[u8]) {
    out.push('"');
    for &b in bytes.iter().take(DESCRIBE_BYTES) {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\r' => out.push_str("\\r"),
            b'\n' => out.push_str("\\n"),
            b'\t' => out.push_str("\\t"),
            0x20..=0x7E => out.push(char::from(b)),
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
    out.push('"');
    if bytes.len() > DESCRIBE_BYTES {
        out.push_str("...");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> Limits {
        Limits {
            max_bulk: 5,
            max_elements: 2,
            max_depth: 2,
        }
    }

    /// Parse under the default limits; must be a whole value using all of
    /// `input`.
    fn value(input: &[u8]) -> Value {
        match parse(input, &Limits::default()) {
            Ok(Status::Complete((v, n))) => {
                assert_eq!(n, input.len(), "bytes used of {input:?}");
                v
            }
            other => panic!("expected a whole value from {input:?}, got {other:?}"),
        }
    }

    fn err(input: &[u8]) -> RespError {
        err_with(input, &Limits::default())
    }

    fn err_with(input: &[u8], limits: &Limits) -> RespError {
        match parse(input, limits) {
            Err(e) => e,
            other => panic!("expected an error from {input:?}, got {other:?}"),
        }
    }

    fn partial(input: &[u8]) -> bool {
        parse(input, &Limits::default()) == Ok(Status::Partial)
    }

    fn bulk(s: &[u8]) -> Value {
        Value::Bulk(s.to_vec())
    }

    fn encoded(v: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        write_value(&mut out, v);
        out
    }

    // --- byte vectors: one per type ---

    // The spec, "Simple strings".
    const OK: &[u8] = b"+OK\r\n";
    // The spec, "Simple errors".
    const ERR_UNKNOWN: &[u8] = b"-ERR unknown command 'asdf'\r\n";
    const WRONGTYPE: &[u8] =
        b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n";
    // The spec, "Integers".
    const INT_1000: &[u8] = b":1000\r\n";
    const INT_MAX: &[u8] = b":9223372036854775807\r\n";
    const INT_MIN: &[u8] = b":-9223372036854775808\r\n";
    // The spec, "Bulk strings".
    const HELLO: &[u8] = b"$5\r\nhello\r\n";
    const EMPTY_BULK: &[u8] = b"$0\r\n\r\n";
    /// 8 bytes: CRLF, a NUL, 0xFF and a "$2\r\n" that is data, not a header.
    const BINARY: &[u8] = b"$10\r\na\r\n\0\xff$2\r\nb\r\n";
    // The spec, "Null bulk strings" and "Null arrays".
    const NULL_BULK: &[u8] = b"$-1\r\n";
    const NULL_ARRAY: &[u8] = b"*-1\r\n";
    // The spec, "Arrays".
    const EMPTY_ARRAY: &[u8] = b"*0\r\n";
    const HELLO_WORLD: &[u8] = b"*2\r\n$5\r\nhello\r\n$5\r\nworld\r\n";
    const MIXED: &[u8] = b"*5\r\n:1\r\n:2\r\n:3\r\n:4\r\n$5\r\nhello\r\n";
    const NESTED: &[u8] = b"*2\r\n*3\r\n:1\r\n:2\r\n:3\r\n*2\r\n+Hello\r\n-World\r\n";
    // The spec, "Null elements in arrays".
    const NULL_ELEMENT: &[u8] = b"*3\r\n$5\r\nhello\r\n$-1\r\n$5\r\nworld\r\n";
    /// What a subscriber of `ch` receives after `PUBLISH ch hello`.
    const PUBSUB_MESSAGE: &[u8] = b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$5\r\nhello\r\n";
    /// The reply to `SUBSCRIBE ch`: subscribed to one channel in all.
    const SUBSCRIBED: &[u8] = b"*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n";
    /// `EVAL "return redis.call('PUBLISH', KEYS[1], ARGV[1])" 1 ch hi`
    /// answers with the number of subscribers that received it.
    const EVAL_REPLY: &[u8] = b":2\r\n";
    const EVAL_COMMAND: &[u8] = b"*5\r\n$4\r\nEVAL\r\n$46\r\nreturn redis.call('PUBLISH', KEYS[1], ARGV[1])\r\n$1\r\n1\r\n$2\r\nch\r\n$2\r\nhi\r\n";
    // RESP3: "Map type", "Set reply", "Null", "Boolean", "Double".
    const MAP: &[u8] = b"%2\r\n+first\r\n:1\r\n+second\r\n:2\r\n";
    const SET: &[u8] = b"~3\r\n+orange\r\n+apple\r\n#t\r\n";
    const PUSH: &[u8] = b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$5\r\nhello\r\n";
    const RESP3_SCALARS: &[u8] = b"*5\r\n_\r\n#t\r\n#f\r\n,1.23\r\n,-inf\r\n";

    #[test]
    fn simple_string() {
        assert_eq!(value(OK), Value::Simple("OK".into()));
    }

    #[test]
    fn simple_string_empty() {
        assert_eq!(value(b"+\r\n"), Value::Simple(String::new()));
    }

    #[test]
    fn simple_string_not_utf8_is_replaced() {
        assert_eq!(value(b"+caf\xe9\r\n"), Value::Simple("caf\u{fffd}".into()));
    }

    #[test]
    fn error_reply() {
        assert_eq!(
            value(ERR_UNKNOWN),
            Value::Error("ERR unknown command 'asdf'".into())
        );
        let wrongtype = value(WRONGTYPE);
        assert!(matches!(wrongtype, Value::Error(s) if s.starts_with("WRONGTYPE ")));
    }

    #[test]
    fn integer() {
        assert_eq!(value(INT_1000), Value::Integer(1000));
        assert_eq!(value(b":0\r\n"), Value::Integer(0));
    }

    #[test]
    fn integer_negative() {
        assert_eq!(value(b":-52\r\n"), Value::Integer(-52));
        assert_eq!(value(b":-0\r\n"), Value::Integer(0));
    }

    #[test]
    fn integer_with_plus_sign() {
        assert_eq!(value(b":+7\r\n"), Value::Integer(7));
    }

    #[test]
    fn integer_leading_zeros() {
        assert_eq!(value(b":007\r\n"), Value::Integer(7));
    }

    #[test]
    fn integer_i64_max() {
        assert_eq!(value(INT_MAX), Value::Integer(i64::MAX));
    }

    #[test]
    fn integer_i64_min() {
        assert_eq!(value(INT_MIN), Value::Integer(i64::MIN));
    }

    #[test]
    fn eval_integer_reply() {
        assert_eq!(value(EVAL_REPLY), Value::Integer(2));
    }

    #[test]
    fn bulk_string() {
        assert_eq!(value(HELLO), bulk(b"hello"));
    }

    #[test]
    fn bulk_string_empty() {
        assert_eq!(value(EMPTY_BULK), bulk(b""));
    }

    #[test]
    fn bulk_string_binary_with_crlf_inside() {
        assert_eq!(value(BINARY), bulk(b"a\r\n\0\xff$2\r\nb"));
    }

    #[test]
    fn null_bulk_string() {
        assert_eq!(value(NULL_BULK), Value::Null);
    }

    #[test]
    fn null_array() {
        assert_eq!(value(NULL_ARRAY), Value::Null);
    }

    #[test]
    fn empty_array() {
        assert_eq!(value(EMPTY_ARRAY), Value::Array(vec![]));
    }

    #[test]
    fn array_of_bulk_strings() {
        assert_eq!(
            value(HELLO_WORLD),
            Value::Array(vec![bulk(b"hello"), bulk(b"world")])
        );
    }

    #[test]
    fn array_of_mixed_types() {
        let want = Value::Array(vec![
            Value::Integer(1),
            Value::Integer(2),
            Value::Integer(3),
            Value::Integer(4),
            bulk(b"hello"),
        ]);
        assert_eq!(value(MIXED), want);
    }

    #[test]
    fn nested_arrays() {
        let want = Value::Array(vec![
            Value::Array(vec![
                Value::Integer(1),
                Value::Integer(2),
                Value::Integer(3),
            ]),
            Value::Array(vec![
                Value::Simple("Hello".into()),
                Value::Error("World".into()),
            ]),
        ]);
        assert_eq!(value(NESTED), want);
    }

    #[test]
    fn null_element_in_array() {
        let want = Value::Array(vec![bulk(b"hello"), Value::Null, bulk(b"world")]);
        assert_eq!(value(NULL_ELEMENT), want);
    }

    #[test]
    fn nested_empty_and_null_arrays() {
        let want = Value::Array(vec![
            Value::Array(vec![]),
            Value::Null,
            Value::Array(vec![Value::Array(vec![])]),
        ]);
        assert_eq!(value(b"*3\r\n*0\r\n*-1\r\n*1\r\n*0\r\n"), want);
    }

    #[test]
    fn pubsub_message() {
        let want = Value::Array(vec![bulk(b"message"), bulk(b"ch"), bulk(b"hello")]);
        assert_eq!(value(PUBSUB_MESSAGE), want);
    }

    #[test]
    fn subscribe_confirmation() {
        let want = Value::Array(vec![bulk(b"subscribe"), bulk(b"ch"), Value::Integer(1)]);
        assert_eq!(value(SUBSCRIBED), want);
    }

    #[test]
    fn pipelined_replies_one_at_a_time() {
        let input = b"+OK\r\n:1\r\n$-1\r\nGARBAGE";
        let limits = Limits::default();
        assert_eq!(
            parse(input, &limits),
            Ok(Status::Complete((Value::Simple("OK".into()), 5)))
        );
        assert_eq!(
            parse(&input[5..], &limits),
            Ok(Status::Complete((Value::Integer(1), 4)))
        );
        assert_eq!(
            parse(&input[9..], &limits),
            Ok(Status::Complete((Value::Null, 5)))
        );
        assert_eq!(parse(&input[14..], &limits), Err(RespError::BadType(b'G')));
    }

    // --- RESP3, read into RESP2 shapes ---

    #[test]
    fn resp3_null_boolean_double() {
        let want = Value::Array(vec![
            Value::Null,
            Value::Integer(1),
            Value::Integer(0),
            bulk(b"1.23"),
            bulk(b"-inf"),
        ]);
        assert_eq!(value(RESP3_SCALARS), want);
    }

    #[test]
    fn resp3_double_forms() {
        for text in [
            &b"10"[..],
            b"-1.5",
            b"+2",
            b"6.379e-5",
            b"1E+10",
            b"inf",
            b"nan",
            b"-nan",
        ] {
            let mut input = b",".to_vec();
            input.extend_from_slice(text);
            input.extend_from_slice(b"\r\n");
            assert_eq!(value(&input), bulk(text), "{text:?}");
        }
    }

    #[test]
    fn resp3_map_is_a_flat_array() {
        let want = Value::Array(vec![
            Value::Simple("first".into()),
            Value::Integer(1),
            Value::Simple("second".into()),
            Value::Integer(2),
        ]);
        assert_eq!(value(MAP), want);
    }

    #[test]
    fn resp3_set_is_an_array() {
        let want = Value::Array(vec![
            Value::Simple("orange".into()),
            Value::Simple("apple".into()),
            Value::Integer(1),
        ]);
        assert_eq!(value(SET), want);
    }

    #[test]
    fn resp3_push_is_an_array() {
        assert_eq!(value(PUSH), value(PUBSUB_MESSAGE));
    }

    // --- malformed: one rule each ---

    #[test]
    fn empty_input_is_partial() {
        assert!(partial(b""));
    }

    #[test]
    fn bad_type_byte() {
        assert_eq!(err(b"?OK\r\n"), RespError::BadType(b'?'));
    }

    #[test]
    fn inline_command_is_a_bad_type() {
        assert_eq!(err(b"PING\r\n"), RespError::BadType(b'P'));
    }

    #[test]
    fn resp3_types_not_implemented() {
        for b in [b'(', b'!', b'=', b'|'] {
            assert_eq!(err(&[b, b'1', b'\r', b'\n']), RespError::BadType(b));
        }
    }

    #[test]
    fn bad_type_inside_array() {
        assert_eq!(err(b"*2\r\n:1\r\nx"), RespError::BadType(b'x'));
    }

    #[test]
    fn bulk_length_minus_two() {
        assert_eq!(err(b"$-2\r\n"), RespError::BadLength);
    }

    #[test]
    fn array_length_minus_two() {
        assert_eq!(err(b"*-2\r\n"), RespError::BadLength);
    }

    #[test]
    fn bulk_length_minus_zero() {
        assert_eq!(err(b"$-0\r\n"), RespError::BadLength);
    }

    #[test]
    fn bulk_length_plus_sign() {
        assert_eq!(err(b"$+5\r\nhello\r\n"), RespError::BadLength);
    }

    #[test]
    fn bulk_length_non_digit() {
        assert_eq!(err(b"$5x\r\nhello\r\n"), RespError::BadLength);
    }

    #[test]
    fn bulk_length_empty() {
        assert_eq!(err(b"$\r\n"), RespError::BadLength);
    }

    #[test]
    fn bulk_length_leading_space() {
        assert_eq!(err(b"$ 5\r\nhello\r\n"), RespError::BadLength);
    }

    #[test]
    fn array_length_non_digit() {
        assert_eq!(err(b"*two\r\n"), RespError::BadLength);
    }

    #[test]
    fn resp3_map_set_push_have_no_null() {
        assert_eq!(err(b"%-1\r\n"), RespError::BadLength);
        assert_eq!(err(b"~-1\r\n"), RespError::BadLength);
        assert_eq!(err(b">-1\r\n"), RespError::BadLength);
    }

    #[test]
    fn integer_non_digit() {
        assert_eq!(err(b":12a\r\n"), RespError::BadInteger);
    }

    #[test]
    fn integer_empty() {
        assert_eq!(err(b":\r\n"), RespError::BadInteger);
    }

    #[test]
    fn integer_sign_only() {
        assert_eq!(err(b":-\r\n"), RespError::BadInteger);
    }

    #[test]
    fn integer_leading_space() {
        assert_eq!(err(b": 1\r\n"), RespError::BadInteger);
    }

    #[test]
    fn integer_decimal_point() {
        assert_eq!(err(b":1.5\r\n"), RespError::BadInteger);
    }

    #[test]
    fn integer_overflow_by_one() {
        assert_eq!(err(b":9223372036854775808\r\n"), RespError::BadInteger);
    }

    #[test]
    fn integer_underflow_by_one() {
        assert_eq!(err(b":-9223372036854775809\r\n"), RespError::BadInteger);
    }

    #[test]
    fn integer_twenty_digits_fails_before_crlf() {
        assert_eq!(err(b":00000000000000000001"), RespError::BadInteger);
    }

    #[test]
    fn resp3_bad_boolean() {
        assert_eq!(err(b"#x\r\n"), RespError::BadInteger);
    }

    #[test]
    fn resp3_boolean_with_more() {
        assert_eq!(err(b"#true\r\n"), RespError::MissingCrlf);
    }

    #[test]
    fn resp3_bad_doubles() {
        for text in [
            &b""[..],
            b".5",
            b"1.",
            b"1e",
            b"1.5e+",
            b"abc",
            b"NaN",
            b"1 ",
        ] {
            let mut input = b",".to_vec();
            input.extend_from_slice(text);
            input.extend_from_slice(b"\r\n");
            assert_eq!(err(&input), RespError::BadInteger, "{text:?}");
        }
    }

    #[test]
    fn resp3_null_with_content() {
        assert_eq!(err(b"_x\r\n"), RespError::MissingCrlf);
    }

    #[test]
    fn bare_lf_after_simple_string() {
        assert_eq!(err(b"+OK\n"), RespError::MissingCrlf);
    }

    #[test]
    fn bare_lf_after_error() {
        assert_eq!(err(b"-ERR\n"), RespError::MissingCrlf);
    }

    #[test]
    fn lf_inside_simple_string() {
        assert_eq!(err(b"+O\nK\r\n"), RespError::MissingCrlf);
    }

    #[test]
    fn cr_inside_simple_string() {
        assert_eq!(err(b"+O\rK\r\n"), RespError::MissingCrlf);
    }

    #[test]
    fn bare_lf_after_integer() {
        assert_eq!(err(b":1\n"), RespError::MissingCrlf);
    }

    #[test]
    fn cr_without_lf_after_integer() {
        assert_eq!(err(b":1\r:2\r\n"), RespError::MissingCrlf);
    }

    #[test]
    fn bare_lf_after_bulk_length() {
        assert_eq!(err(b"$5\nhello\r\n"), RespError::MissingCrlf);
    }

    #[test]
    fn bare_lf_after_array_length() {
        assert_eq!(err(b"*1\n:1\r\n"), RespError::MissingCrlf);
    }

    #[test]
    fn bulk_data_longer_than_length() {
        assert_eq!(err(b"$4\r\nhello\r\n"), RespError::MissingCrlf);
    }

    #[test]
    fn bulk_data_shorter_than_length() {
        assert_eq!(err(b"$6\r\nhello\r\n:1\r\n"), RespError::MissingCrlf);
    }

    #[test]
    fn bulk_data_followed_by_bare_lf() {
        assert_eq!(err(b"$5\r\nhello\n"), RespError::MissingCrlf);
    }

    #[test]
    fn bulk_data_followed_by_cr_only() {
        assert_eq!(err(b"$5\r\nhello\rX"), RespError::MissingCrlf);
    }

    #[test]
    fn bulk_data_not_followed_by_crlf_fails_on_the_first_byte() {
        assert_eq!(err(b"$5\r\nhello!"), RespError::MissingCrlf);
    }

    // --- limits ---

    #[test]
    fn bulk_at_the_limit() {
        assert_eq!(
            parse(HELLO, &small()),
            Ok(Status::Complete((bulk(b"hello"), HELLO.len())))
        );
    }

    #[test]
    fn bulk_over_the_limit_fails_before_its_data() {
        assert_eq!(err_with(b"$6\r\n", &small()), RespError::TooLarge);
    }

    #[test]
    fn bulk_of_512_mib_waits() {
        assert!(partial(b"$536870912\r\n"));
    }

    #[test]
    fn bulk_over_512_mib() {
        assert_eq!(err(b"$536870913\r\n"), RespError::TooLarge);
    }

    #[test]
    fn bulk_length_of_twenty_digits() {
        assert_eq!(err(b"$99999999999999999999\r\n"), RespError::TooLarge);
    }

    #[test]
    fn simple_string_over_the_limit_fails_without_crlf() {
        assert_eq!(err_with(b"+abcdef", &small()), RespError::TooLarge);
        assert_eq!(parse(b"+abcde", &small()), Ok(Status::Partial));
    }

    #[test]
    fn array_at_the_element_limit() {
        assert!(matches!(
            parse(b"*2\r\n:1\r\n:2\r\n", &small()),
            Ok(Status::Complete(_))
        ));
    }

    #[test]
    fn array_over_the_element_limit() {
        assert_eq!(err_with(b"*3\r\n", &small()), RespError::TooLarge);
    }

    #[test]
    fn map_counts_keys_and_values() {
        assert!(matches!(
            parse(b"%1\r\n:1\r\n:2\r\n", &small()),
            Ok(Status::Complete(_))
        ));
        assert_eq!(err_with(b"%2\r\n", &small()), RespError::TooLarge);
    }

    #[test]
    fn huge_array_announcement_waits_and_allocates_nothing() {
        // 2^20 values announced, none sent: only the scan runs.
        assert!(partial(b"*1048576\r\n"));
        assert_eq!(err(b"*1048577\r\n"), RespError::TooLarge);
    }

    #[test]
    fn depth_at_the_limit() {
        let input = b"*1\r\n*1\r\n:1\r\n";
        assert!(matches!(parse(input, &small()), Ok(Status::Complete(_))));
    }

    #[test]
    fn depth_over_the_limit() {
        assert_eq!(
            err_with(b"*1\r\n*1\r\n*1\r\n", &small()),
            RespError::TooDeep
        );
    }

    #[test]
    fn empty_array_counts_as_a_level() {
        assert_eq!(
            err_with(b"*1\r\n*1\r\n*0\r\n", &small()),
            RespError::TooDeep
        );
    }

    #[test]
    fn depth_zero_refuses_any_array() {
        let none = Limits {
            max_depth: 0,
            ..Limits::default()
        };
        assert_eq!(err_with(b"*0\r\n", &none), RespError::TooDeep);
        assert!(matches!(parse(b":1\r\n", &none), Ok(Status::Complete(_))));
    }

    #[test]
    fn default_depth_is_32() {
        let deep = |levels: usize| {
            let mut input = b"*1\r\n".repeat(levels);
            input.extend_from_slice(b":1\r\n");
            input
        };
        assert!(matches!(
            parse(&deep(32), &Limits::default()),
            Ok(Status::Complete(_))
        ));
        assert_eq!(err(&deep(33)), RespError::TooDeep);
    }

    #[test]
    fn display_is_a_sentence() {
        assert_eq!(
            RespError::MissingCrlf.to_string(),
            "a RESP line or bulk string does not end in CRLF"
        );
        assert_eq!(
            RespError::BadType(b'?').to_string(),
            "unknown RESP type byte '?'"
        );
    }

    // --- split points ---

    /// Fixtures, good and bad.
    const FIXTURES: &[&[u8]] = &[
        OK,
        ERR_UNKNOWN,
        WRONGTYPE,
        INT_1000,
        INT_MAX,
        INT_MIN,
        HELLO,
        EMPTY_BULK,
        BINARY,
        NULL_BULK,
        NULL_ARRAY,
        EMPTY_ARRAY,
        HELLO_WORLD,
        MIXED,
        NESTED,
        NULL_ELEMENT,
        PUBSUB_MESSAGE,
        SUBSCRIBED,
        EVAL_REPLY,
        EVAL_COMMAND,
        MAP,
        SET,
        PUSH,
        RESP3_SCALARS,
        b"+OK\r\n:1\r\n",
        b"*2\r\n$3\r\nfoo\r\n$-1\r\n*1\r\n:1\r\n",
        b"?",
        b"$-2\r\n",
        b"$5x\r\n",
        b":12a\r\n",
        b":9223372036854775808\r\n",
        b"+OK\n",
        b":1\rX",
        b"$5\r\nhello!\r\n",
        b"$5\r\nhelloXY",
        b"*2\r\n$5\r\nhello\r\n$5\r\nworld\n",
        b"$536870913\r\n",
        b"%-1\r\n",
        b",1.\r\n",
    ];

    #[test]
    fn split_at_every_offset() {
        let limits = Limits::default();
        for &input in FIXTURES {
            let whole = parse(input, &limits);
            assert_ne!(whole, Ok(Status::Partial), "{input:?}");
            // Where the answer is decided: the value's end, or the input's.
            let end = match &whole {
                Ok(Status::Complete((_, n))) => *n,
                _ => input.len(),
            };
            for cut in 0..=input.len() {
                let prefix = parse(&input[..cut], &limits);
                if cut >= end {
                    assert_eq!(prefix, whole, "cut at {cut} of {input:?}");
                } else if whole.is_ok() {
                    assert_eq!(prefix, Ok(Status::Partial), "cut at {cut} of {input:?}");
                } else {
                    // An error may show before the end, never another one.
                    assert!(
                        prefix == Ok(Status::Partial) || prefix == whole,
                        "cut at {cut} of {input:?}: {prefix:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn fed_one_byte_at_a_time() {
        let limits = Limits::default();
        for &input in FIXTURES {
            let mut buf = Vec::new();
            let mut first = Ok(Status::Partial);
            for &b in input {
                buf.push(b);
                first = parse(&buf, &limits);
                if first != Ok(Status::Partial) {
                    break;
                }
            }
            assert_eq!(first, parse(input, &limits), "{input:?}");
        }
    }

    // --- writing ---

    #[test]
    fn write_command_is_an_array_of_bulk_strings() {
        // The spec, "Sending commands to a Redis server".
        let mut out = Vec::new();
        write_command(&mut out, &[b"LLEN", b"mylist"]);
        assert_eq!(out, b"*2\r\n$4\r\nLLEN\r\n$6\r\nmylist\r\n");
    }

    #[test]
    fn write_command_eval() {
        let mut out = Vec::new();
        let script = b"return redis.call('PUBLISH', KEYS[1], ARGV[1])";
        write_command(&mut out, &[b"EVAL", script, b"1", b"ch", b"hi"]);
        assert_eq!(out, EVAL_COMMAND);
    }

    #[test]
    fn write_command_binary_and_empty_arguments() {
        let mut out = Vec::new();
        write_command(&mut out, &[b"SET", b"", b"a\r\nb"]);
        assert_eq!(out, b"*3\r\n$3\r\nSET\r\n$0\r\n\r\n$4\r\na\r\nb\r\n");
    }

    #[test]
    fn write_command_no_arguments() {
        let mut out = Vec::new();
        write_command(&mut out, &[]);
        assert_eq!(out, b"*0\r\n");
    }

    #[test]
    fn write_value_canonical_bytes() {
        // Each RESP2 fixture is already in the form write_value chooses.
        for input in [
            OK,
            ERR_UNKNOWN,
            INT_1000,
            INT_MAX,
            INT_MIN,
            HELLO,
            EMPTY_BULK,
            BINARY,
            NULL_BULK,
            EMPTY_ARRAY,
            HELLO_WORLD,
            MIXED,
            NESTED,
            NULL_ELEMENT,
            PUBSUB_MESSAGE,
            SUBSCRIBED,
            EVAL_REPLY,
            EVAL_COMMAND,
        ] {
            assert_eq!(encoded(&value(input)), input, "{input:?}");
        }
    }

    #[test]
    fn write_value_null_is_the_null_bulk_string() {
        assert_eq!(encoded(&value(NULL_ARRAY)), NULL_BULK);
        assert_eq!(encoded(&value(b"_\r\n")), NULL_BULK);
    }

    #[test]
    fn write_value_replaces_cr_and_lf_in_text() {
        let v = Value::Error("ERR two\r\nlines".into());
        assert_eq!(encoded(&v), b"-ERR two  lines\r\n");
        assert_eq!(encoded(&Value::Simple("a\nb".into())), b"+a b\r\n");
    }

    #[test]
    fn round_trips() {
        let values = [
            Value::Simple("OK".into()),
            Value::Simple(String::new()),
            Value::Simple("café".into()),
            Value::Error("ERR no".into()),
            Value::Integer(0),
            Value::Integer(-1),
            Value::Integer(i64::MAX),
            Value::Integer(i64::MIN),
            bulk(b""),
            bulk(b"\r\n"),
            bulk(&[0, 255, b'\r', b'\n', b'$']),
            Value::Null,
            Value::Array(vec![]),
            Value::Array(vec![Value::Null, Value::Array(vec![Value::Array(vec![])])]),
            value(MAP),
            value(RESP3_SCALARS),
            value(NESTED),
        ];
        for v in values {
            let bytes = encoded(&v);
            assert_eq!(
                parse(&bytes, &Limits::default()),
                Ok(Status::Complete((v.clone(), bytes.len()))),
                "{v:?}"
            );
        }
    }

    #[test]
    fn round_trip_of_a_large_bulk() {
        let data: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
        let bytes = encoded(&Value::Bulk(data.clone()));
        assert_eq!(value(&bytes), Value::Bulk(data));
    }

    // --- describe ---

    #[test]
    fn describe_pubsub_message() {
        assert_eq!(
            describe(&value(PUBSUB_MESSAGE)),
            r#"*3 [$7 "message", $2 "ch", $5 "hello"]"#
        );
    }

    #[test]
    fn describe_scalars() {
        assert_eq!(describe(&value(OK)), r#"+"OK""#);
        assert_eq!(describe(&value(b"-ERR x\r\n")), r#"-"ERR x""#);
        assert_eq!(describe(&value(INT_MIN)), ":-9223372036854775808");
        assert_eq!(describe(&Value::Null), "(nil)");
        assert_eq!(describe(&value(EMPTY_ARRAY)), "*0 []");
    }

    #[test]
    fn describe_escapes_bytes() {
        assert_eq!(describe(&value(BINARY)), r#"$10 "a\r\n\x00\xff$2\r\nb""#);
        assert_eq!(
            describe(&bulk(b"say \"hi\" \\o/")),
            r#"$12 "say \"hi\" \\o/""#
        );
    }

    #[test]
    fn describe_truncates_long_bulks() {
        let v = Value::Bulk(vec![b'x'; 1000]);
        assert_eq!(describe(&v), format!("$1000 \"{}\"...", "x".repeat(32)));
    }

    #[test]
    fn describe_truncates_long_arrays() {
        let v = Value::Array((1..=20).map(Value::Integer).collect());
        assert_eq!(
            describe(&v),
            "*20 [:1, :2, :3, :4, :5, :6, :7, :8, ... 12 more]"
        );
    }

    #[test]
    fn describe_stays_short_for_wide_nested_arrays() {
        let row = Value::Array(vec![Value::Bulk(vec![b'y'; 100]); 8]);
        let v = Value::Array(vec![row; 8]);
        let line = describe(&v);
        assert!(
            line.len() < 2 * DESCRIBE_LINE,
            "{} bytes: {line}",
            line.len()
        );
        assert!(line.ends_with("... 3 more], ... 7 more]"), "{line}");
    }
}
