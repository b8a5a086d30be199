//! Short polling and long polling over jobs (API.md section 1).
//!
//! ```text
//! short poll:  POST /submit ─► 202 {"jobId":"job:1"}
//!              GET /checkstatus?jobId=job:1 ─► 200 {"progress":30,...}   (again, and again)
//!
//! long poll:   GET /checkstatus?jobId=job:1&wait=30
//!                   ... the connection is parked in the slab, no answer yet ...
//!              job done ─► 200 {"progress":100,"done":true}   (the same instant)
//!              or 30 s pass ─► 200 with the current progress; the client asks again
//! ```
//!
//! A parked long poll costs one slab entry and one timer; it is released by
//! the job's completion timer (one per job with waiters) or by its own
//! deadline, never by a polling loop.

use std::fmt::Write as _;
use std::time::Duration;

use super::http::{decimal_param, Ctx};
use crate::jobs::{parse_job_id, DEFAULT_DURATION, MAX_DURATION};
use crate::net::conn::{Kind, Parked, ParkedOn, Wait};
use crate::net::timer::TimerKey;
use crate::net::Server;
use crate::wire::http1::Head;
use crate::wire::query;

/// `wait=S` is 1..=120 seconds (API.md section 1).
const MAX_WAIT_S: u64 = 120;

impl Server {
    /// `POST /submit[?duration_ms=N]` → 202 and the job's id.
    pub(crate) fn submit(&mut self, key: usize, ctx: Ctx<'_>, head: &Head<'_, '_>, _body: &[u8]) {
        let duration = match decimal_param(head.query, "duration_ms") {
            Ok(None) => DEFAULT_DURATION,
            Ok(Some(ms)) if Duration::from_millis(ms) <= MAX_DURATION => Duration::from_millis(ms),
            _ => {
                let sentence =
                    "duration_ms must be a whole number of milliseconds from 0 to 600000";
                return self.respond_error(key, ctx, 400, sentence);
            }
        };
        let callback = match query::get(head.query, "callback") {
            Ok(None) => None,
            Ok(Some(text)) => match self.checked_url(&text) {
                Ok(url) => Some((text.into_owned(), url)),
                Err(sentence) => {
                    return self.respond_error(key, ctx, 400, &format!("callback: {sentence}"))
                }
            },
            Err(_) => {
                return self.respond_error(
                    key,
                    ctx,
                    400,
                    "the query string is not valid percent-encoding",
                )
            }
        };
        let id = match self.jobs.submit(self.now, duration) {
            Ok(id) => id,
            Err(_) => {
                return self.respond_error(
                    key,
                    ctx,
                    503,
                    "too many jobs are running; try again later",
                )
            }
        };
        // One timer per job, at its completion: it releases long polls and
        // sends job.done webhooks at that instant.
        if let Some(job) = self.jobs.get(id) {
            let at = job.done_at();
            self.timers.push(at, TimerKey::JobDone(id));
        }
        let hook = callback.map(|(text, url)| self.webhook_for_job(&text, url, id));
        crate::trace::event(
            self,
            key,
            format_args!("job:{id} submitted, {} ms", duration.as_millis()),
        );
        let location = format!("/checkstatus?jobId=job:{id}");
        let body = match hook {
            None => format!("{{\"jobId\":\"job:{id}\"}}"),
            Some((wh, secret)) => {
                format!(
                    "{{\"jobId\":\"job:{id}\",\"webhook\":\"wh:{wh}\",\"secret\":\"{secret}\"}}"
                )
            }
        };
        self.respond_full(
            key,
            ctx,
            202,
            Some(super::http::JSON),
            &[("Location", &location)],
            body.as_bytes(),
        );
    }

    /// `GET /checkstatus?jobId=job:N[&wait=S]`: answer now, or park.
    pub(crate) fn check_status(&mut self, key: usize, ctx: Ctx<'_>, head: &Head<'_, '_>) {
        let id = match query::get(head.query, "jobId") {
            Ok(Some(v)) => parse_job_id(&v),
            _ => None,
        };
        let Some(id) = id else {
            return self.respond_error(
                key,
                ctx,
                400,
                "jobId must be job: followed by a decimal number",
            );
        };
        let wait = match decimal_param(head.query, "wait") {
            Ok(None) => None,
            Ok(Some(secs @ 1..=MAX_WAIT_S)) => Some(Duration::from_secs(secs)),
            _ => {
                let sentence = "wait must be a whole number of seconds from 1 to 120";
                return self.respond_error(key, ctx, 400, sentence);
            }
        };
        let now = self.now;
        let Some(job) = self.jobs.get_mut(id) else {
            return self.respond_error(key, ctx, 404, "no such job");
        };
        let Some(wait) = wait.filter(|_| !job.is_done(now)) else {
            let body = status_json(id, job.progress(now), job.is_done(now));
            return self.respond_json(key, ctx, 200, &body);
        };
        // Long poll: park this connection until the job is done or `wait`
        // passes, whichever comes first.
        let conn_id = self.conns[key].id;
        // The job's completion timer (set at submit) releases it.
        job.waiters.push((key, conn_id));
        self.conns[key].kind = Kind::LongPoll(Parked {
            reply: ctx.to_reply(),
            on: ParkedOn::Job(id),
        });
        self.set_wait(key, Wait::LongPoll, Some(wait));
        crate::trace::event(
            self,
            key,
            format_args!(
                "long poll parked on job:{id} for up to {} s",
                wait.as_secs()
            ),
        );
    }

    /// A job reached 100%: send its webhooks and answer every long poll
    /// waiting on it, now.
    pub(crate) fn job_done(&mut self, id: u64) {
        self.webhooks_job_done(id);
        let Some(job) = self.jobs.get_mut(id) else {
            return;
        };
        let waiters = std::mem::take(&mut job.waiters);
        for (key, conn_id) in waiters {
            if self.conns.get(key).is_some_and(|c| c.id == conn_id) {
                crate::trace::event(self, key, format_args!("long poll released: job:{id} done"));
                self.release_job_poll(key, id);
            }
        }
    }

    /// The long poll's deadline passed: answer with the status as it is.
    pub(crate) fn long_poll_expired(&mut self, key: usize) {
        let Some(c) = self.conns.get(key) else { return };
        match c.kind {
            Kind::LongPoll(Parked {
                on: ParkedOn::Job(id),
                ..
            }) => {
                crate::trace::event(self, key, format_args!("long poll expired on job:{id}"));
                if let Some(job) = self.jobs.get_mut(id) {
                    let conn_id = c.id;
                    job.waiters.retain(|&w| w != (key, conn_id));
                }
                self.release_job_poll(key, id);
            }
            Kind::LongPoll(Parked {
                on: ParkedOn::Channel { .. },
                ..
            }) => self.channel_poll_expired(key),
            Kind::LongPoll(Parked {
                on: ParkedOn::Publish,
                ..
            }) => self.unpark(key, |s, key, ctx| {
                s.respond_error(
                    key,
                    ctx,
                    503,
                    "the backplane (Redis) did not answer in time",
                )
            }),
            _ => {}
        }
    }

    /// Answers a parked job poll with the job's current status and turns
    /// the connection back into a plain HTTP one.
    fn release_job_poll(&mut self, key: usize, id: u64) {
        let now = self.now;
        let body = match self.jobs.get(id) {
            Some(job) => status_json(id, job.progress(now), job.is_done(now)),
            None => super::http::error_body("the job was forgotten while waiting"),
        };
        self.unpark(key, |s, key, ctx| s.respond_json(key, ctx, 200, &body));
    }

    /// Answers a held request through `answer` and resumes the connection:
    /// requests that were pipelined behind it are served next.
    pub(crate) fn unpark(&mut self, key: usize, answer: impl FnOnce(&mut Server, usize, Ctx<'_>)) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        let Kind::LongPoll(parked) = std::mem::replace(&mut c.kind, Kind::Http(Default::default()))
        else {
            return;
        };
        answer(self, key, parked.reply.ctx());
        if self
            .conns
            .get(key)
            .is_some_and(|c| c.phase == crate::net::conn::Phase::Active)
        {
            self.set_wait(key, Wait::KeepAlive, Some(self.cfg.idle_timeout));
            self.resume_later(key);
        }
    }
}

/// `{"jobId":"job:N","progress":P,"done":B}`
fn status_json(id: u64, progress: u8, done: bool) -> String {
    let mut s = String::with_capacity(48);
    let _ = write!(
        s,
        "{{\"jobId\":\"job:{id}\",\"progress\":{progress},\"done\":{done}}}"
    );
    s
}
