//! Latency histogram and what /proc tells about CPU and memory.

/// A log-linear histogram of nanosecond values: exact below 64, then 64
/// sub-buckets per power of two (relative error under 1 %). Fixed size
/// (3,776 counters), no allocation per sample.
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

const SUB: u32 = 6; // 2^6 = 64 sub-buckets per octave
const SUBN: usize = 1 << SUB;
const BUCKETS: usize = SUBN + (64 - SUB as usize) * SUBN;

impl Histogram {
    pub fn new() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            total: 0,
            max: 0,
        }
    }

    fn index(v: u64) -> usize {
        if v < SUBN as u64 {
            return v as usize;
        }
        let e = 63 - v.leading_zeros(); // >= SUB
        let k = e - SUB;
        let m = (v >> k) as usize; // in [64, 128)
        SUBN + k as usize * SUBN + (m - SUBN)
    }

    /// The middle of bucket `i`.
    fn value(i: usize) -> u64 {
        if i < SUBN {
            return i as u64;
        }
        let k = (i - SUBN) / SUBN;
        let m = (SUBN + (i - SUBN) % SUBN) as u64;
        let lower = m << k;
        lower + ((1u64 << k) >> 1)
    }

    pub fn record(&mut self, v: u64) {
        self.counts[Self::index(v)] += 1;
        self.total += 1;
        self.max = self.max.max(v);
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    /// The value at quantile `q` (0..=1), or None without samples.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        if self.total == 0 {
            return None;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(Self::value(i).min(self.max));
            }
        }
        Some(self.max)
    }
}

/// Clock ticks per second for /proc/PID/stat (sysconf(_SC_CLK_TCK)).
pub fn clock_ticks() -> u64 {
    crate::sock::clock_ticks().unwrap_or(100)
}

/// utime + stime of a process (all threads), in clock ticks.
pub fn cpu_ticks(pid: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: fields
    // count from after the last ')'. Field 3 (state) is index 0 there, so
    // utime (field 14) is index 11 and stime (15) index 12.
    let rest = &s[s.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ut: u64 = f.get(11)?.parse().ok()?;
    let st: u64 = f.get(12)?.parse().ok()?;
    Some(ut + st)
}

/// Resident set size in kB (VmRSS of /proc/PID/status).
pub fn rss_kb(pid: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A CPU reading of one process at one instant.
#[derive(Clone, Copy)]
pub struct CpuMark {
    ticks: Option<u64>,
    at: std::time::Instant,
}

impl CpuMark {
    pub fn take(pid: &str) -> CpuMark {
        CpuMark {
            ticks: cpu_ticks(pid),
            at: std::time::Instant::now(),
        }
    }

    /// Percent of one core used between `self` and `later`.
    pub fn percent_until(&self, later: &CpuMark) -> Option<f64> {
        let (a, b) = (self.ticks?, later.ticks?);
        let secs = later.at.duration_since(self.at).as_secs_f64();
        if secs <= 0.0 {
            return None;
        }
        Some(b.saturating_sub(a) as f64 / clock_ticks() as f64 / secs * 100.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_round_trip_within_one_percent() {
        for v in [
            0u64,
            1,
            63,
            64,
            65,
            127,
            128,
            1000,
            123_456,
            9_999_999,
            u64::MAX / 3,
        ] {
            let got = Histogram::value(Histogram::index(v));
            let err = (got as f64 - v as f64).abs() / (v.max(1) as f64);
            assert!(err < 0.01, "{v} -> {got}");
        }
        assert_eq!(Histogram::index(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn quantiles() {
        let mut h = Histogram::new();
        for v in 1..=1000u64 {
            h.record(v * 1000);
        }
        let p50 = h.quantile(0.5).unwrap() as f64;
        assert!((p50 - 500_000.0).abs() / 500_000.0 < 0.01);
        let p999 = h.quantile(0.999).unwrap() as f64;
        assert!((p999 - 999_000.0).abs() / 999_000.0 < 0.01);
        assert_eq!(h.count(), 1000);
    }
}
