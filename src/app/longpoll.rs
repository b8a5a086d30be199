//! Long polling: every request the server holds instead of answering at
//! once, in one place. Three things park a request here:
//!
//! | parked on          | released when                         | expires after           |
//! |--------------------|---------------------------------------|-------------------------|
//! | a job (`checkstatus?wait=S`) | the job completes (its timer) | `wait` seconds: current progress |
//! | a channel (`/poll?after=N`)  | a message with id > N is published | `timeout` seconds: no messages |
//! | a publish, with `--redis`    | Redis answers with the id    | 6 s: 503                |
//!
//! ```text
//!  GET /checkstatus?jobId=job:1&wait=30 ─► park: Kind::LongPoll, deadline in 30 s,
//!                                          the handle on the job's waiter list
//!          ... the connection sits in the slab: no thread, no polling ...
//!  job done (timer) ─► release ─► 200 {"progress":100,"done":true}
//!  or the deadline ─► expired ─► 200 with the progress as it is
//!  then: unpark ─► back to HTTP; requests pipelined behind it run now
//! ```
//!
//! A parked long poll costs one slab entry and one timer. Lists of waiters
//! hold `ConnId` handles: a waiter that went away in the meantime is simply
//! not found when its release comes.

use std::time::Duration;

use super::conn::{Kind, Parked, ParkedOn, Wait};
use super::http::{self, Ctx, Flow};
use super::{channels, jobs, set_wait, App, Io};
use crate::net::ConnId;

/// Holds the request on `id` until `release` or `wait` passes.
pub fn park(
    app: &mut App,
    io: &mut Io,
    id: ConnId,
    ctx: Ctx<'_>,
    on: ParkedOn,
    wait: Duration,
) -> Flow {
    let Some(s) = io.state_mut(id) else {
        return Flow::Done;
    };
    s.kind = Kind::LongPoll(Parked {
        reply: ctx.to_reply(),
        on,
    });
    set_wait(io, id, Wait::LongPoll, Some(wait));
    match on {
        ParkedOn::Job(job) => {
            if let Some(j) = app.jobs.get_mut(job) {
                j.waiters.push(id);
            }
            app.trace.event(
                io.peer(id),
                format_args!(
                    "long poll parked on job:{job} for up to {} s",
                    wait.as_secs()
                ),
            );
        }
        ParkedOn::Channel { channel, after } => {
            app.hub.subscribe(channel, id);
            app.trace.event(
                io.peer(id),
                format_args!(
                    "long poll parked on channel {} after {after} for up to {} s",
                    app.hub.get(channel).name,
                    wait.as_secs()
                ),
            );
        }
        ParkedOn::Publish => {}
    }
    Flow::Parked
}

/// What `id` is parked on, if it is a parked long poll.
pub fn parked_on(io: &Io, id: ConnId) -> Option<ParkedOn> {
    match io.state(id).map(|s| &s.kind) {
        Some(Kind::LongPoll(p)) => Some(p.on),
        _ => None,
    }
}

/// A job completed: every long poll waiting on it is answered now.
pub fn release_job(app: &mut App, io: &mut Io, job: u64) {
    let Some(j) = app.jobs.get_mut(job) else {
        return;
    };
    for id in std::mem::take(&mut j.waiters) {
        if parked_on(io, id) == Some(ParkedOn::Job(job)) {
            app.trace.event(
                io.peer(id),
                format_args!("long poll released: job:{job} done"),
            );
            answer_job(app, io, id, job);
        }
    }
}

/// A message was published on the channel a poll is parked on: it is
/// answered now with everything after its cursor.
pub fn release_channel(app: &mut App, io: &mut Io, id: ConnId, message_id: u64) {
    app.trace.event(
        io.peer(id),
        format_args!("long poll released by id {message_id}"),
    );
    answer_channel(app, io, id);
}

/// The long poll's deadline passed (or the server is shutting down):
/// answer with the state as it is.
pub fn expired(app: &mut App, io: &mut Io, id: ConnId) {
    match parked_on(io, id) {
        Some(ParkedOn::Job(job)) => {
            app.trace
                .event(io.peer(id), format_args!("long poll expired on job:{job}"));
            if let Some(j) = app.jobs.get_mut(job) {
                j.waiters.retain(|&w| w != id);
            }
            answer_job(app, io, id, job);
        }
        Some(ParkedOn::Channel { .. }) => {
            app.trace.event(io.peer(id), "long poll expired");
            answer_channel(app, io, id);
        }
        Some(ParkedOn::Publish) => unpark(app, io, id, |app, io, id, ctx| {
            http::respond_error(
                app,
                io,
                id,
                ctx,
                503,
                "the backplane (Redis) did not answer in time",
            )
        }),
        None => {}
    }
}

fn answer_job(app: &mut App, io: &mut Io, id: ConnId, job: u64) {
    let body = jobs::status_body(app, io, job);
    unpark(app, io, id, |app, io, id, ctx| {
        http::respond_json(app, io, id, ctx, 200, &body)
    });
}

fn answer_channel(app: &mut App, io: &mut Io, id: ConnId) {
    let Some(ParkedOn::Channel { channel, after }) = parked_on(io, id) else {
        return;
    };
    let body = channels::poll_answer(app, channel, after);
    app.hub.unsubscribe(channel, id);
    app.hub.release_if_unused(channel);
    app.stats.delivered += 1;
    unpark(app, io, id, |app, io, id, ctx| {
        http::respond_json(app, io, id, ctx, 200, &body)
    });
}

/// Answers a held request through `answer` and resumes the connection:
/// requests that were pipelined behind it are served next.
pub fn unpark(
    app: &mut App,
    io: &mut Io,
    id: ConnId,
    answer: impl FnOnce(&mut App, &mut Io, ConnId, Ctx<'_>),
) {
    let Some(s) = io.state_mut(id) else {
        return;
    };
    let Kind::LongPoll(parked) = std::mem::replace(&mut s.kind, Kind::Http(Default::default()))
    else {
        return;
    };
    answer(app, io, id, parked.reply.ctx());
    if io.is_active(id) {
        set_wait(io, id, Wait::KeepAlive, Some(app.cfg.idle_timeout));
        io.resume(id);
    }
}
