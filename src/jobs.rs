//! Jobs: stand-ins for slow work (a video upload, a payment) that clients
//! watch by short polling or long polling (docs/api.md section 1).
//!
//! A job advances from 0 to 100 percent in steps of 10, evenly over its
//! duration. Nothing runs: progress is computed from the clock when asked,
//! and the event loop sets one timer per job, at its completion.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The longest job a client may ask for (docs/api.md: `duration_ms` 0..=600000).
pub const MAX_DURATION: Duration = Duration::from_millis(600_000);
pub const DEFAULT_DURATION: Duration = Duration::from_millis(10_000);

#[derive(Debug)]
pub struct Job {
    pub id: u64,
    pub started: Instant,
    pub duration: Duration,
    /// Parked long polls: (slab key, connection id).
    pub waiters: Vec<crate::net::ConnId>,
}

impl Job {
    pub fn done_at(&self) -> Instant {
        self.started + self.duration
    }

    pub fn is_done(&self, now: Instant) -> bool {
        now >= self.done_at()
    }

    /// Percent done at `now`: `min(100, floor(10 * t / duration) * 10)`.
    pub fn progress(&self, now: Instant) -> u8 {
        progress(now.saturating_duration_since(self.started), self.duration)
    }
}

/// `min(100, floor(10 * elapsed / duration) * 10)`; a zero-length job is
/// done at once.
pub fn progress(elapsed: Duration, duration: Duration) -> u8 {
    if elapsed >= duration {
        return 100;
    }
    let tenths = elapsed.as_nanos() * 10 / duration.as_nanos();
    (tenths.min(10) * 10) as u8
}

/// Every job this process remembers, oldest first.
#[derive(Debug)]
pub struct Jobs {
    next_id: u64,
    jobs: BTreeMap<u64, Job>,
    max: usize,
}

/// `--max-jobs` jobs are still running: nothing can be forgotten to make room.
#[derive(Debug, PartialEq, Eq)]
pub struct JobsFull;

impl Jobs {
    pub fn new(max: usize) -> Self {
        Jobs {
            next_id: 1,
            jobs: BTreeMap::new(),
            max: max.max(1),
        }
    }

    /// Starts a job; forgets the oldest finished job when at the limit.
    pub fn submit(&mut self, now: Instant, duration: Duration) -> Result<u64, JobsFull> {
        if self.jobs.len() >= self.max {
            let oldest_done = self
                .jobs
                .values()
                .find(|j| j.is_done(now) && j.waiters.is_empty())
                .map(|j| j.id);
            match oldest_done {
                Some(id) => {
                    self.jobs.remove(&id);
                }
                None => return Err(JobsFull),
            }
        }
        let id = self.next_id;
        self.next_id += 1;
        self.jobs.insert(
            id,
            Job {
                id,
                started: now,
                duration,
                waiters: Vec::new(),
            },
        );
        Ok(id)
    }

    pub fn get(&self, id: u64) -> Option<&Job> {
        self.jobs.get(&id)
    }

    pub fn get_mut(&mut self, id: u64) -> Option<&mut Job> {
        self.jobs.get_mut(&id)
    }

    pub fn len(&self) -> usize {
        self.jobs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }
}

/// Parses a job id: `job:` and a decimal number (docs/api.md section 1).
pub fn parse_job_id(s: &str) -> Option<u64> {
    crate::wire::query::parse_decimal(s.strip_prefix("job:")?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_in_steps_of_ten() {
        let d = Duration::from_millis(1000);
        let p = |ms| progress(Duration::from_millis(ms), d);
        assert_eq!(
            [p(0), p(99), p(100), p(550), p(999), p(1000), p(5000)],
            [0, 0, 10, 50, 90, 100, 100]
        );
        assert_eq!(progress(Duration::ZERO, Duration::ZERO), 100);
    }

    #[test]
    fn ids_count_up_and_the_oldest_finished_job_is_forgotten_first() {
        let t0 = Instant::now();
        let mut jobs = Jobs::new(2);
        assert_eq!(jobs.submit(t0, Duration::from_secs(60)), Ok(1));
        assert_eq!(jobs.submit(t0, Duration::ZERO), Ok(2));
        assert_eq!(jobs.submit(t0, Duration::ZERO), Ok(3));
        assert!(jobs.get(1).is_some() && jobs.get(2).is_none());
        let mut full = Jobs::new(1);
        full.submit(t0, Duration::from_secs(60)).unwrap();
        assert_eq!(full.submit(t0, Duration::ZERO), Err(JobsFull));
    }

    #[test]
    fn job_ids() {
        assert_eq!(parse_job_id("job:42"), Some(42));
        for bad in ["job:", "job:x", "job:-1", "foo:1", "42", "job: 1", "JOB:1"] {
            assert_eq!(parse_job_id(bad), None, "{bad:?}");
        }
    }
}
