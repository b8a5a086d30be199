//! The Prometheus text exposition format, version 0.0.4 (what `/metrics`
//! answers).
//!
//! "The spec" below is Prometheus' "Exposition formats" page
//! (prometheus.io/docs/instrumenting/exposition_formats, section "Text
//! format details"). The format is lines of UTF-8, each ending in `\n`
//! (the last one too); a metric family is one uninterrupted group of lines,
//! its `# HELP` and `# TYPE` first, then one sample per line:
//!
//! ```text
//! # HELP pushwire_requests_total HTTP requests answered.      <- docstring: \ and LF escaped
//! # TYPE pushwire_requests_total counter                      <- before the first sample
//! pushwire_requests_total 5                                   <- name value
//! # HELP pushwire_connections_open Open connections by kind.
//! # TYPE pushwire_connections_open gauge
//! pushwire_connections_open{kind="http"} 1                    <- name{label="value",...} value
//! pushwire_connections_open{kind="ws"} 0
//! # HELP pushwire_delivery_seconds Publish to socket.
//! # TYPE pushwire_delivery_seconds histogram
//! pushwire_delivery_seconds_bucket{le="0.0005"} 2             <- cumulative: observations <= le
//! ...                                                            in increasing order of le
//! pushwire_delivery_seconds_bucket{le="+Inf"} 3               <- always there, equal to _count
//! pushwire_delivery_seconds_sum 0.0122                        <- in the family's unit (seconds)
//! pushwire_delivery_seconds_count 3
//! ```
//!
//! What this module guarantees, each rule where it is written:
//!
//! * HELP text escapes `\` and LF ([`family`]); label values escape `\`,
//!   `"` and LF ([`write_label_value`]). Metric and label names are the
//!   caller's constants and are checked with `debug_assert!` only.
//! * A family's samples can only be written through the [`Family`] that
//!   wrote its header, so they stay one group after their `TYPE` line.
//! * Counters are named `..._total` (the Prometheus naming guide; `promtool
//!   check metrics` warns otherwise), checked with `debug_assert!`.
//! * A [`Histogram`] is written with cumulative buckets in increasing `le`
//!   order, a `+Inf` bucket equal to `_count`, then `_sum` and `_count`.
//!
//! Values are written exactly: integers as integers, and durations kept in
//! integer nanoseconds and printed as decimal seconds (`0.0005`, `2.5`), so
//! no float rounding shows. **Not implemented**: timestamps, summaries,
//! untyped families, the protobuf and OpenMetrics formats, gzip.
//!
//! Nothing here allocates beyond growing the output `String`, and
//! [`Histogram::observe_nanos`] allocates nothing at all.

use std::fmt::Write as _;
use std::time::Duration;

/// The `Content-Type` of an answer in this format, exactly as docs/api.md
/// section 5 and the spec's "Basic info" write it. Prometheus falls back
/// to the newest text format when `version` is missing, so it is spelled
/// out; the format is UTF-8 by definition, so no `charset` is needed.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// The metric types of a `# TYPE` line that pushwire writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    /// Only goes up (restarts at 0 when the process does); named `_total`.
    Counter,
    /// Goes up and down: a current value.
    Gauge,
    /// Bucketed observations: `_bucket`, `_sum`, `_count` samples.
    Histogram,
}

impl Type {
    fn as_str(self) -> &'static str {
        match self {
            Type::Counter => "counter",
            Type::Gauge => "gauge",
            Type::Histogram => "histogram",
        }
    }
}

/// A family being written: its header is out, its samples follow.
pub struct Family<'a> {
    out: &'a mut String,
    name: &'a str,
    kind: Type,
}

/// Writes a family's `# HELP` and `# TYPE` lines and returns the handle
/// that writes its samples.
pub fn family<'a>(out: &'a mut String, name: &'a str, kind: Type, help: &str) -> Family<'a> {
    debug_assert!(is_metric_name(name), "bad metric name {name:?}");
    debug_assert!(
        (kind == Type::Counter) == name.ends_with("_total"),
        "counters, and only counters, end in _total: {name:?}"
    );
    // "HELP lines may contain any sequence of UTF-8 characters (after the
    // metric name), but the backslash and the line-feed characters have to
    // be escaped as \\ and \n" (the spec).
    out.push_str("# HELP ");
    out.push_str(name);
    out.push(' ');
    write_escaped(out, help, false);
    out.push('\n');
    // "Only one TYPE line may exist for the same metric name ... [it] has to
    // appear before the first sample is reported" (the spec).
    out.push_str("# TYPE ");
    out.push_str(name);
    out.push(' ');
    out.push_str(kind.as_str());
    out.push('\n');
    Family { out, name, kind }
}

impl Family<'_> {
    /// One sample of a counter or gauge: `name{k="v",...} value`. Each
    /// sample of a family must have a different label set (the spec).
    pub fn sample(&mut self, labels: &[(&str, &str)], value: impl Number) -> &mut Self {
        debug_assert!(self.kind != Type::Histogram, "use Family::histogram");
        self.out.push_str(self.name);
        write_labels(self.out, labels, None);
        self.out.push(' ');
        value.write_to(self.out);
        self.out.push('\n');
        self
    }

    /// The samples of one histogram of a histogram family.
    pub fn histogram(&mut self, labels: &[(&str, &str)], h: &Histogram) -> &mut Self {
        debug_assert!(self.kind == Type::Histogram, "not a histogram family");
        // "Each bucket count of a histogram named x is given as a separate
        // sample line with the name x_bucket and a label {le="y"}"; buckets
        // "must appear in increasing numerical order" of le (the spec).
        // A bucket counts every observation at or below its bound, so the
        // per-bucket counts are summed as they are written.
        let mut cumulative = 0u64;
        for (&bound, &n) in BUCKETS_NS.iter().zip(&h.counts) {
            cumulative += n;
            self.bucket_line(labels, LeBound::Nanos(bound), cumulative);
        }
        // "A histogram must have a bucket with {le="+Inf"}. Its value must
        // be identical to the value of x_count" (the spec).
        self.bucket_line(labels, LeBound::Inf, h.count);
        self.suffixed_line("_sum", labels);
        write_seconds(self.out, h.sum_ns);
        self.out.push('\n');
        self.suffixed_line("_count", labels);
        h.count.write_to(self.out);
        self.out.push('\n');
        self
    }

    fn bucket_line(&mut self, labels: &[(&str, &str)], le: LeBound, count: u64) {
        self.out.push_str(self.name);
        self.out.push_str("_bucket");
        write_labels(self.out, labels, Some(le));
        self.out.push(' ');
        count.write_to(self.out);
        self.out.push('\n');
    }

    /// `name_sum{labels} ` or `name_count{labels} `, value to follow.
    fn suffixed_line(&mut self, suffix: &str, labels: &[(&str, &str)]) {
        self.out.push_str(self.name);
        self.out.push_str(suffix);
        write_labels(self.out, labels, None);
        self.out.push(' ');
    }
}

#[derive(Clone, Copy)]
enum LeBound {
    Nanos(u64),
    Inf,
}

/// `{k="v",k2="v2"}` (nothing when there are no labels), with a histogram
/// bucket's `le` last.
fn write_labels(out: &mut String, labels: &[(&str, &str)], le: Option<LeBound>) {
    if labels.is_empty() && le.is_none() {
        return;
    }
    out.push('{');
    for (i, (k, v)) in labels.iter().enumerate() {
        debug_assert!(is_label_name(k) && *k != "le", "bad label name {k:?}");
        if i > 0 {
            out.push(',');
        }
        out.push_str(k);
        out.push_str("=\"");
        write_label_value(out, v);
        out.push('"');
    }
    if let Some(le) = le {
        if !labels.is_empty() {
            out.push(',');
        }
        out.push_str("le=\"");
        match le {
            LeBound::Nanos(ns) => write_seconds(out, u128::from(ns)),
            LeBound::Inf => out.push_str("+Inf"),
        }
        out.push('"');
    }
    out.push('}');
}

/// A label value: "any sequence of UTF-8 characters, but the backslash,
/// the double-quote, and the line-feed characters have to be escaped as
/// \\, \", and \n, respectively" (the spec).
pub fn write_label_value(out: &mut String, value: &str) {
    write_escaped(out, value, true);
}

/// `\` → `\\`, LF → `\n`, and with `quote` also `"` → `\"`. Runs without
/// any of them are copied in one piece.
fn write_escaped(out: &mut String, text: &str, quote: bool) {
    let special = |c: char| c == '\\' || c == '\n' || (quote && c == '"');
    let mut rest = text;
    while let Some(i) = rest.find(special) {
        out.push_str(&rest[..i]);
        out.push_str(match rest.as_bytes()[i] {
            b'\\' => "\\\\",
            b'\n' => "\\n",
            _ => "\\\"",
        });
        rest = &rest[i + 1..];
    }
    out.push_str(rest);
}

/// Nanoseconds as decimal seconds, exactly and as short as possible:
/// `500000` → `0.0005`, `2500000000` → `2.5`, `0` → `0`. Any such text
/// is a float to Go's `strconv.ParseFloat`, which the spec names.
fn write_seconds(out: &mut String, ns: u128) {
    const NS_PER_S: u128 = 1_000_000_000;
    let (whole, mut frac) = (ns / NS_PER_S, ns % NS_PER_S);
    let _ = write!(out, "{whole}");
    if frac == 0 {
        return;
    }
    let mut digits = 9;
    while frac % 10 == 0 {
        frac /= 10;
        digits -= 1;
    }
    let _ = write!(out, ".{frac:0digits$}");
}

/// A sample value. "value is a float ... represented as required by the
/// Go strconv package ... NaN, +Inf, and -Inf are valid values" (the spec):
/// integers are written as integers, which ParseFloat reads exactly up to
/// 2^53 and closely past it.
pub trait Number {
    fn write_to(self, out: &mut String);
}

macro_rules! integer_number {
    ($($t:ty),*) => {$(
        impl Number for $t {
            fn write_to(self, out: &mut String) {
                // Writing into a String cannot fail.
                let _ = write!(out, "{self}");
            }
        }
    )*};
}
integer_number!(u8, u16, u32, u64, usize, i32, i64);

impl Number for f64 {
    fn write_to(self, out: &mut String) {
        if self.is_nan() {
            out.push_str("NaN");
        } else if self.is_infinite() {
            out.push_str(if self > 0.0 { "+Inf" } else { "-Inf" });
        } else {
            // Rust prints the shortest text that reads back to the same
            // f64, without an exponent: ParseFloat reads it back exactly.
            let _ = write!(out, "{self}");
        }
    }
}

/// The upper bounds (`le`) of [`Histogram`]'s buckets, in nanoseconds:
/// 0.5 ms to 10 s, about two to three buckets per power of ten.
///
/// Publish-to-socket latency on one machine is well under a millisecond
/// when all is well, so the first bucket is 0.5 ms; a subscriber whose
/// socket is full, a long poll being re-armed or a backplane round trip
/// give milliseconds to seconds; past 10 s (`--send-buffer-bytes` has long
/// cut a slow reader by then) only `+Inf` counts.
pub const BUCKETS_NS: [u64; 14] = [
    500_000,        // 0.0005 s
    1_000_000,      // 0.001
    2_500_000,      // 0.0025
    5_000_000,      // 0.005
    10_000_000,     // 0.01
    25_000_000,     // 0.025
    50_000_000,     // 0.05
    100_000_000,    // 0.1
    250_000_000,    // 0.25
    500_000_000,    // 0.5
    1_000_000_000,  // 1
    2_500_000_000,  // 2.5
    5_000_000_000,  // 5
    10_000_000_000, // 10
];

/// A histogram with the fixed buckets [`BUCKETS_NS`], for durations.
///
/// Each observation adds one to the one bucket it falls in (found by a
/// binary search over 14 bounds) and to the count and sum: no allocation,
/// a few dozen instructions, so it can run once per delivery. Buckets are
/// summed into the cumulative form only when written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Histogram {
    /// `counts[i]`: observations in `(BUCKETS_NS[i-1], BUCKETS_NS[i]]`.
    /// Observations past the last bound are only in `count`.
    counts: [u64; BUCKETS_NS.len()],
    /// Every observation (the `+Inf` bucket and `_count`).
    count: u64,
    /// Their sum in nanoseconds. A u64 would wrap after 584 years of
    /// summed latency, which a busy server can add up in months.
    sum_ns: u128,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl Histogram {
    pub const fn new() -> Self {
        Histogram {
            counts: [0; BUCKETS_NS.len()],
            count: 0,
            sum_ns: 0,
        }
    }

    /// Records one duration in nanoseconds.
    pub fn observe_nanos(&mut self, ns: u64) {
        // The first bound >= ns: bucket `le` holds values at or below it.
        let i = BUCKETS_NS.partition_point(|&bound| bound < ns);
        if let Some(c) = self.counts.get_mut(i) {
            *c += 1;
        }
        self.count += 1;
        self.sum_ns += u128::from(ns);
    }

    /// Records one duration (saturating at u64::MAX nanoseconds, 584 years).
    pub fn observe(&mut self, d: Duration) {
        self.observe_nanos(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }

    /// How many observations so far.
    pub fn count(&self) -> u64 {
        self.count
    }
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`, the metric name rule of the Prometheus
/// data model ("Metric names and labels").
pub fn is_metric_name(name: &str) -> bool {
    let ok_first = |b: u8| b.is_ascii_alphabetic() || b == b'_' || b == b':';
    match name.as_bytes() {
        [first, rest @ ..] => {
            ok_first(*first) && rest.iter().all(|&b| ok_first(b) || b.is_ascii_digit())
        }
        [] => false,
    }
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`, not starting with `__` (reserved for
/// Prometheus' own use), the label name rule of the same page.
pub fn is_label_name(name: &str) -> bool {
    let ok_first = |b: u8| b.is_ascii_alphabetic() || b == b'_';
    match name.as_bytes() {
        [first, rest @ ..] => {
            ok_first(*first)
                && rest.iter().all(|&b| ok_first(b) || b.is_ascii_digit())
                && !name.starts_with("__")
        }
        [] => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seconds(ns: u128) -> String {
        let mut s = String::new();
        write_seconds(&mut s, ns);
        s
    }

    #[test]
    fn a_small_exposition_byte_for_byte() {
        let mut out = String::new();
        family(
            &mut out,
            "pushwire_requests_total",
            Type::Counter,
            "HTTP requests.",
        )
        .sample(&[], 5u64);
        family(
            &mut out,
            "pushwire_connections_open",
            Type::Gauge,
            "Open connections.",
        )
        .sample(&[("kind", "http")], 1u64)
        .sample(&[("kind", "ws")], 0u64);
        let mut h = Histogram::new();
        h.observe_nanos(400_000); // 0.0004 s: first bucket
        h.observe_nanos(1_000_000); // exactly 0.001 s: the 0.001 bucket
        h.observe_nanos(11_000_000_000); // 11 s: only +Inf
        family(
            &mut out,
            "pushwire_delivery_seconds",
            Type::Histogram,
            "Latency.",
        )
        .histogram(&[], &h);
        let expected = "\
# HELP pushwire_requests_total HTTP requests.
# TYPE pushwire_requests_total counter
pushwire_requests_total 5
# HELP pushwire_connections_open Open connections.
# TYPE pushwire_connections_open gauge
pushwire_connections_open{kind=\"http\"} 1
pushwire_connections_open{kind=\"ws\"} 0
# HELP pushwire_delivery_seconds Latency.
# TYPE pushwire_delivery_seconds histogram
pushwire_delivery_seconds_bucket{le=\"0.0005\"} 1
pushwire_delivery_seconds_bucket{le=\"0.001\"} 2
pushwire_delivery_seconds_bucket{le=\"0.0025\"} 2
pushwire_delivery_seconds_bucket{le=\"0.005\"} 2
pushwire_delivery_seconds_bucket{le=\"0.01\"} 2
pushwire_delivery_seconds_bucket{le=\"0.025\"} 2
pushwire_delivery_seconds_bucket{le=\"0.05\"} 2
pushwire_delivery_seconds_bucket{le=\"0.1\"} 2
pushwire_delivery_seconds_bucket{le=\"0.25\"} 2
pushwire_delivery_seconds_bucket{le=\"0.5\"} 2
pushwire_delivery_seconds_bucket{le=\"1\"} 2
pushwire_delivery_seconds_bucket{le=\"2.5\"} 2
pushwire_delivery_seconds_bucket{le=\"5\"} 2
pushwire_delivery_seconds_bucket{le=\"10\"} 2
pushwire_delivery_seconds_bucket{le=\"+Inf\"} 3
pushwire_delivery_seconds_sum 11.0014
pushwire_delivery_seconds_count 3
";
        assert_eq!(out, expected);
    }

    #[test]
    fn histogram_with_labels_puts_le_last() {
        let mut out = String::new();
        let mut h = Histogram::new();
        h.observe(Duration::from_millis(3));
        family(&mut out, "x_seconds", Type::Histogram, "h").histogram(&[("kind", "ws")], &h);
        assert!(out.contains("x_seconds_bucket{kind=\"ws\",le=\"0.0025\"} 0\n"));
        assert!(out.contains("x_seconds_bucket{kind=\"ws\",le=\"0.005\"} 1\n"));
        assert!(out.contains("x_seconds_bucket{kind=\"ws\",le=\"+Inf\"} 1\n"));
        assert!(out.contains("x_seconds_sum{kind=\"ws\"} 0.003\n"));
        assert!(out.ends_with("x_seconds_count{kind=\"ws\"} 1\n"));
    }

    #[test]
    fn empty_histogram_has_zero_buckets_sum_and_count() {
        let mut out = String::new();
        family(&mut out, "x_seconds", Type::Histogram, "h").histogram(&[], &Histogram::new());
        assert!(out.contains("x_seconds_bucket{le=\"+Inf\"} 0\n"));
        assert!(out.ends_with("x_seconds_sum 0\nx_seconds_count 0\n"));
    }

    #[test]
    fn observation_on_a_bound_counts_in_that_bucket() {
        for (i, &bound) in BUCKETS_NS.iter().enumerate() {
            let mut h = Histogram::new();
            h.observe_nanos(bound);
            assert_eq!(h.counts[i], 1, "bound {bound}");
            let mut h = Histogram::new();
            h.observe_nanos(bound + 1);
            assert_eq!(h.counts[i], 0, "past {bound}");
            // Past the last bound only the count (the +Inf bucket) has it.
            let expected = if i + 1 < BUCKETS_NS.len() { 1 } else { 0 };
            assert_eq!(h.counts[i..].iter().sum::<u64>(), expected, "past {bound}");
            assert_eq!(h.count(), 1);
        }
    }

    #[test]
    fn zero_goes_in_the_first_bucket() {
        let mut h = Histogram::new();
        h.observe_nanos(0);
        assert_eq!((h.counts[0], h.count()), (1, 1));
    }

    #[test]
    fn huge_duration_saturates() {
        let mut h = Histogram::new();
        h.observe(Duration::MAX);
        h.observe(Duration::MAX);
        assert_eq!(h.sum_ns, 2 * u128::from(u64::MAX));
        assert_eq!(h.count(), 2);
    }

    #[test]
    fn label_value_escapes_backslash_quote_newline() {
        let mut s = String::new();
        write_label_value(&mut s, "C:\\DIR\\FILE.TXT \"x\"\nend");
        assert_eq!(s, "C:\\\\DIR\\\\FILE.TXT \\\"x\\\"\\nend");
    }

    #[test]
    fn label_value_keeps_utf8_and_tabs() {
        let mut s = String::new();
        write_label_value(&mut s, "café\tnews");
        assert_eq!(s, "café\tnews");
    }

    #[test]
    fn help_escapes_backslash_and_newline_not_quote() {
        let mut out = String::new();
        family(&mut out, "g", Type::Gauge, "a \\ b\n\"c\"");
        assert_eq!(out, "# HELP g a \\\\ b\\n\"c\"\n# TYPE g gauge\n");
    }

    #[test]
    fn seconds_are_exact_decimals() {
        assert_eq!(seconds(0), "0");
        assert_eq!(seconds(1), "0.000000001");
        assert_eq!(seconds(500_000), "0.0005");
        assert_eq!(seconds(1_000_000_000), "1");
        assert_eq!(seconds(2_500_000_000), "2.5");
        assert_eq!(seconds(12_345_678_901), "12.345678901");
    }

    #[test]
    fn float_values() {
        let text = |v: f64| {
            let mut s = String::new();
            v.write_to(&mut s);
            s
        };
        assert_eq!(text(f64::NAN), "NaN");
        assert_eq!(text(f64::INFINITY), "+Inf");
        assert_eq!(text(f64::NEG_INFINITY), "-Inf");
        assert_eq!(text(0.25), "0.25");
        assert_eq!(text(-3.0), "-3");
    }

    #[test]
    fn bounds_increase() {
        assert!(BUCKETS_NS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn metric_names() {
        assert!(is_metric_name("pushwire_requests_total"));
        assert!(is_metric_name("a:b_c9"));
        assert!(!is_metric_name("9a"));
        assert!(!is_metric_name("a-b"));
        assert!(!is_metric_name(""));
    }

    #[test]
    fn label_names() {
        assert!(is_label_name("kind"));
        assert!(is_label_name("_x1"));
        assert!(!is_label_name("__name__"));
        assert!(!is_label_name("a:b"));
        assert!(!is_label_name("1a"));
    }
}
