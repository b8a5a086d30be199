//! Short polling and long polling over jobs (docs/api.md section 1).
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
//! A long poll is parked, released and expired by `longpoll.rs`; this file
//! only says what a job's status is and when it completes (one timer per
//! job, at its completion), never by a polling loop.

use std::fmt::Write as _;
use std::time::Duration;

use super::conn::ParkedOn;
use super::http::{self, decimal_param, Ctx, Flow};
use super::{longpoll, webhooks, App, Io, Timer};
use crate::jobs::{parse_job_id, DEFAULT_DURATION, MAX_DURATION};
use crate::net::ConnId;
use crate::wire::http1::Head;
use crate::wire::query;

/// `wait=S` is 1..=120 seconds (docs/api.md section 1).
const MAX_WAIT_S: u64 = 120;

/// `POST /submit[?duration_ms=N][&callback=URL]` → 202 and the job's id.
pub fn submit(app: &mut App, io: &mut Io, id: ConnId, ctx: Ctx<'_>, head: &Head<'_, '_>) {
    let duration = match decimal_param(head.query, "duration_ms") {
        Ok(None) => DEFAULT_DURATION,
        Ok(Some(ms)) if Duration::from_millis(ms) <= MAX_DURATION => Duration::from_millis(ms),
        _ => {
            let sentence = "duration_ms must be a whole number of milliseconds from 0 to 600000";
            return http::respond_error(app, io, id, ctx, 400, sentence);
        }
    };
    let callback = match query::get(head.query, "callback") {
        Ok(None) => None,
        Ok(Some(text)) => {
            // A callback is a webhook: the same rules (docs/api.md section 4).
            if let Err((status, sentence)) = webhooks::may_register(app, head) {
                return http::respond_error(app, io, id, ctx, status, sentence);
            }
            match webhooks::checked_url(app, io, &text) {
                Ok(url) => Some((text.into_owned(), url)),
                Err(sentence) => {
                    let sentence = format!("callback: {sentence}");
                    return http::respond_error(app, io, id, ctx, 400, &sentence);
                }
            }
        }
        Err(_) => {
            return http::respond_error(
                app,
                io,
                id,
                ctx,
                400,
                "the query string is not valid percent-encoding",
            )
        }
    };
    let job = match app.jobs.submit(io.now(), duration) {
        Ok(job) => job,
        Err(_) => {
            return http::respond_error(
                app,
                io,
                id,
                ctx,
                503,
                "too many jobs are running; try again later",
            )
        }
    };
    // One timer per job, at its completion: it releases long polls and
    // sends job.done webhooks at that instant.
    if let Some(j) = app.jobs.get(job) {
        io.push_timer(j.done_at(), Timer::JobDone(job));
    }
    let hook = callback.map(|(text, url)| webhooks::register_for_job(app, &text, url, job));
    app.trace.event(
        io.peer(id),
        format_args!("job:{job} submitted, {} ms", duration.as_millis()),
    );
    let location = format!("/checkstatus?jobId=job:{job}");
    let body = match hook {
        None => format!("{{\"jobId\":\"job:{job}\"}}"),
        Some((wh, secret)) => {
            format!("{{\"jobId\":\"job:{job}\",\"webhook\":\"wh:{wh}\",\"secret\":\"{secret}\"}}")
        }
    };
    http::respond_full(
        app,
        io,
        id,
        ctx,
        202,
        Some(http::JSON),
        &[("Location", &location)],
        body.as_bytes(),
    );
}

/// `GET /checkstatus?jobId=job:N[&wait=S]`: answer now, or park.
pub fn check_status(
    app: &mut App,
    io: &mut Io,
    id: ConnId,
    ctx: Ctx<'_>,
    head: &Head<'_, '_>,
) -> Flow {
    let job = match query::get(head.query, "jobId") {
        Ok(Some(v)) => parse_job_id(&v),
        _ => None,
    };
    let Some(job) = job else {
        let sentence = "jobId must be job: followed by a decimal number";
        http::respond_error(app, io, id, ctx, 400, sentence);
        return Flow::Done;
    };
    let wait = match decimal_param(head.query, "wait") {
        Ok(None) => None,
        Ok(Some(secs @ 1..=MAX_WAIT_S)) => Some(Duration::from_secs(secs)),
        _ => {
            let sentence = "wait must be a whole number of seconds from 1 to 120";
            http::respond_error(app, io, id, ctx, 400, sentence);
            return Flow::Done;
        }
    };
    let now = io.now();
    let Some(j) = app.jobs.get(job) else {
        http::respond_error(app, io, id, ctx, 404, "no such job");
        return Flow::Done;
    };
    match wait.filter(|_| !j.is_done(now)) {
        // Long poll: park this connection until the job is done (its
        // completion timer releases it) or `wait` passes.
        Some(wait) => longpoll::park(app, io, id, ctx, ParkedOn::Job(job), wait),
        None => {
            let body = status_json(job, j.progress(now), j.is_done(now));
            http::respond_json(app, io, id, ctx, 200, &body);
            Flow::Done
        }
    }
}

/// A job reached 100%: send its webhooks and answer every long poll
/// waiting on it, now.
pub fn job_done(app: &mut App, io: &mut Io, job: u64) {
    webhooks::job_done(app, io, job);
    longpoll::release_job(app, io, job);
}

/// The status answer for a job as it is now.
pub fn status_body(app: &App, io: &Io, job: u64) -> String {
    let now = io.now();
    match app.jobs.get(job) {
        Some(j) => status_json(job, j.progress(now), j.is_done(now)),
        None => http::error_body("the job was forgotten while waiting"),
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
