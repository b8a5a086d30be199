//! docs/api.md section 1, "Jobs: short polling and long polling", from the
//! outside: submit, short polls, long polls, validation and concurrency.

mod common;

use common::json::{assert_error, assert_json_type, json};
use common::{parse_json, Response, Server};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// A submitted job and when we sent and got the submit.
struct Job {
    id: String,
    duration_ms: u64,
    sent: Instant,
    acked: Instant,
}

fn submit(server: &Server, duration_ms: u64) -> Job {
    let sent = Instant::now();
    let r = server.post(&format!("/submit?duration_ms={duration_ms}"), b"");
    let acked = Instant::now();
    assert_eq!(r.status, 202, "submit: {:?}", r.text());
    Job {
        id: job_id_of(&r),
        duration_ms,
        sent,
        acked,
    }
}

fn job_id_of(r: &Response) -> String {
    json(r)
        .get("jobId")
        .and_then(|v| v.as_str())
        .unwrap_or_else(|| panic!("no jobId in {:?}", r.text()))
        .to_string()
}

fn job_num(id: &str) -> u64 {
    id.strip_prefix("job:")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("bad job id {id:?}"))
}

/// A status answer, checked for shape: (progress, done).
fn parse_status(r: &Response, id: &str) -> (u64, bool) {
    assert_eq!(r.status, 200, "checkstatus {id}: {:?}", r.text());
    assert_json_type(r);
    let j = json(r);
    let mut keys = j.keys();
    keys.sort();
    assert_eq!(
        keys,
        vec!["done", "jobId", "progress"],
        "status body {:?}",
        r.text()
    );
    assert_eq!(
        j.get("jobId").and_then(|v| v.as_str()),
        Some(id),
        "status body {:?}",
        r.text()
    );
    let p = j
        .get("progress")
        .and_then(|v| v.as_f64())
        .unwrap_or_else(|| panic!("progress in {:?}", r.text()));
    assert!(
        p.fract() == 0.0 && (0.0..=100.0).contains(&p),
        "progress {p}"
    );
    let p = p as u64;
    assert_eq!(p % 10, 0, "progress {p} is not a multiple of 10");
    let done = j
        .get("done")
        .and_then(|v| v.as_bool())
        .unwrap_or_else(|| panic!("done in {:?}", r.text()));
    assert_eq!(
        done,
        p == 100,
        "done {done} with progress {p}: done exactly when progress reaches 100"
    );
    (p, done)
}

/// Short poll: (progress, done, when sent, when answered).
fn poll(server: &Server, id: &str) -> (u64, bool, Instant, Instant) {
    let t0 = Instant::now();
    let r = server.get(&format!("/checkstatus?jobId={id}"));
    let t1 = Instant::now();
    let (p, d) = parse_status(&r, id);
    (p, d, t0, t1)
}

/// The contract's progress at `t_ms` after the start of a job of `d` ms.
fn progress_at(t_ms: i64, d: u64) -> u64 {
    if t_ms < 0 {
        return 0;
    }
    let (t, d) = (t_ms as u64, d);
    if d == 0 || t >= d {
        return 100;
    }
    (10 * t / d * 10).min(100)
}

/// Checks `p`, observed by a request sent at `sent` and answered at `got`,
/// against the formula: the job started between `job.sent` and
/// `job.acked`, so the server's t lies in [sent - acked, got - sent].
fn assert_progress_plausible(job: &Job, p: u64, sent: Instant, got: Instant) {
    let ms = |a: Instant, b: Instant| -> i64 {
        if a >= b {
            (a - b).as_millis() as i64
        } else {
            -((b - a).as_millis() as i64)
        }
    };
    let lo = ms(sent, job.acked) - 5;
    let hi = ms(got, job.sent) + 5;
    let (pl, ph) = (
        progress_at(lo, job.duration_ms),
        progress_at(hi, job.duration_ms),
    );
    assert!(
        pl <= p && p <= ph,
        "progress {p} of a {} ms job observed between t={lo} ms and t={hi} ms; the formula allows {pl}..={ph}",
        job.duration_ms
    );
}

// ---------------------------------------------------------------------------

#[test]
fn submit_answers_202_with_location_and_increasing_ids() {
    let server = Server::start(&[]);
    let mut last = 0;
    for d in ["0", "100", "5000"] {
        let r = server.post(&format!("/submit?duration_ms={d}"), b"");
        assert_eq!(r.status, 202, "{:?}", r.text());
        assert_json_type(&r);
        let j = json(&r);
        assert_eq!(j.keys(), vec!["jobId"], "submit body {:?}", r.text());
        let id = job_id_of(&r);
        let n = job_num(&id);
        assert!(n > last, "job ids must increase: {n} after {last}");
        last = n;
        assert_eq!(
            r.header("location"),
            Some(format!("/checkstatus?jobId={id}").as_str()),
            "Location header"
        );
        assert!(r.header("date").is_some(), "no Date header");
    }
}

#[test]
fn short_polls_show_progress_in_steps_of_ten() {
    let server = Server::start(&[]);
    let job = submit(&server, 1000);
    let mut seen = Vec::new();
    let mut last = 0;
    let deadline = Instant::now() + Duration::from_secs(4);
    loop {
        let (p, done, sent, got) = poll(&server, &job.id);
        assert_progress_plausible(&job, p, sent, got);
        assert!(p >= last, "progress went back from {last} to {p}");
        last = p;
        if !seen.contains(&p) {
            seen.push(p);
        }
        if done {
            assert!(
                got - job.sent >= Duration::from_millis(995),
                "done after only {:?}",
                got - job.sent
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a 1000 ms job is still not done after 4 s (progress {p})"
        );
        std::thread::sleep(Duration::from_millis(120));
    }
    assert!(seen.len() >= 3, "saw too few progress steps: {seen:?}");
    // Done stays done.
    let (p, done, _, _) = poll(&server, &job.id);
    assert_eq!((p, done), (100, true));
}

#[test]
fn zero_duration_job_is_done_at_once() {
    let server = Server::start(&[]);
    let job = submit(&server, 0);
    let (p, done, _, _) = poll(&server, &job.id);
    assert_eq!((p, done), (100, true));
}

#[test]
fn default_duration_is_ten_seconds() {
    let server = Server::start(&[]);
    let sent = Instant::now();
    let r = server.post("/submit", b"");
    let acked = Instant::now();
    assert_eq!(r.status, 202, "{:?}", r.text());
    let job = Job {
        id: job_id_of(&r),
        duration_ms: 10_000,
        sent,
        acked,
    };
    let (p, done, s, g) = poll(&server, &job.id);
    assert_eq!((p, done), (0, false), "a default job right after submit");
    assert_progress_plausible(&job, p, s, g);
    // One step is 1 s: at about 1.1 s it shows 10.
    let target = job.acked + Duration::from_millis(1100);
    std::thread::sleep(target.saturating_duration_since(Instant::now()));
    let (p, done, s, g) = poll(&server, &job.id);
    assert_progress_plausible(&job, p, s, g);
    assert!(!done);
}

#[test]
fn duration_is_validated() {
    let server = Server::start(&[]);
    for bad in [
        "-1",
        "1.5",
        "abc",
        "600001",
        "",
        "1e3",
        "99999999999999999999999",
    ] {
        let r = server.post(&format!("/submit?duration_ms={bad}"), b"");
        assert_error(&r, 400, &format!("duration_ms={bad}"));
    }
    let r = server.post("/submit?duration_ms=600000", b"");
    assert_eq!(
        r.status,
        202,
        "the maximum duration 600000 must be accepted: {:?}",
        r.text()
    );
    let job = job_id_of(&r);
    let r = server.get(&format!("/checkstatus?jobId={job}"));
    assert_eq!(parse_status(&r, &job), (0, false));
}

#[test]
fn job_id_is_validated() {
    let server = Server::start(&[]);
    submit(&server, 0);
    for bad in [
        "/checkstatus",
        "/checkstatus?jobId=",
        "/checkstatus?jobId=job:",
        "/checkstatus?jobId=job:x",
        "/checkstatus?jobId=foo:1",
        "/checkstatus?jobId=job:-1",
        "/checkstatus?jobId=job:1.5",
        "/checkstatus?jobId=1",
        "/checkstatus?other=job:1",
    ] {
        assert_error(&server.get(bad), 400, bad);
    }
    assert_error(
        &server.get("/checkstatus?jobId=job:999999"),
        404,
        "unknown job:999999",
    );
    assert_error(
        &server.get("/checkstatus?jobId=job:999999&wait=1"),
        404,
        "unknown job with wait",
    );
}

#[test]
fn percent_encoded_job_id_is_decoded() {
    // What a browser's URLSearchParams sends: `job%3A1`.
    let server = Server::start(&[]);
    let job = submit(&server, 0);
    let n = job_num(&job.id);
    let r = server.get(&format!("/checkstatus?jobId=job%3A{n}"));
    assert_eq!(parse_status(&r, &job.id), (100, true));
}

#[test]
fn wait_is_validated() {
    let server = Server::start(&[]);
    let job = submit(&server, 0);
    for bad in ["0", "121", "x", "-1", "1.5", ""] {
        let target = format!("/checkstatus?jobId={}&wait={bad}", job.id);
        assert_error(&server.get(&target), 400, &target);
    }
    // The bounds themselves are valid; on a done job both answer at once.
    for ok in ["1", "120"] {
        let t0 = Instant::now();
        let r = server.get(&format!("/checkstatus?jobId={}&wait={ok}", job.id));
        assert_eq!(parse_status(&r, &job.id), (100, true), "wait={ok}");
        assert!(
            t0.elapsed() < Duration::from_millis(500),
            "wait={ok} on a done job took {:?}",
            t0.elapsed()
        );
    }
}

#[test]
fn long_poll_is_released_when_the_job_is_done() {
    let server = Server::start(&[]);
    let job = submit(&server, 500);
    let r = server.get(&format!("/checkstatus?jobId={}&wait=5", job.id));
    let got = Instant::now();
    assert_eq!(parse_status(&r, &job.id), (100, true));
    let since_sent = got - job.sent;
    let since_acked = got - job.acked;
    assert!(
        since_sent >= Duration::from_millis(495),
        "released before the job was done: {since_sent:?}"
    );
    assert!(
        since_acked < Duration::from_millis(750),
        "released {since_acked:?} after a 500 ms job was submitted (should be right at completion)"
    );
}

#[test]
fn long_poll_times_out_with_the_current_status() {
    let server = Server::start(&[]);
    // 10 s job: nothing changes much. 3 s job: progress steps every 300 ms,
    // which must not release the poll (only completion or the wait does).
    let jobs = [submit(&server, 10_000), submit(&server, 3_000)];
    std::thread::scope(|s| {
        for job in &jobs {
            let server = &server;
            s.spawn(move || {
                let t0 = Instant::now();
                let r = server.get(&format!("/checkstatus?jobId={}&wait=1", job.id));
                let t1 = Instant::now();
                let took = t1 - t0;
                let (p, done) = parse_status(&r, &job.id);
                assert!(
                    took >= Duration::from_millis(900) && took < Duration::from_millis(2000),
                    "wait=1 on a {} ms job answered after {took:?}",
                    job.duration_ms
                );
                assert!(!done);
                assert_progress_plausible(job, p, t0, t1);
            });
        }
    });
}

#[test]
fn long_poll_on_a_done_job_answers_at_once() {
    let server = Server::start(&[]);
    let job = submit(&server, 0);
    let t0 = Instant::now();
    let r = server.get(&format!("/checkstatus?jobId={}&wait=60", job.id));
    assert_eq!(parse_status(&r, &job.id), (100, true));
    assert!(
        t0.elapsed() < Duration::from_millis(500),
        "took {:?}",
        t0.elapsed()
    );
}

#[test]
fn concurrent_long_polls_are_all_released() {
    let server = Server::start(&[]);
    let job = submit(&server, 600);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..6)
            .map(|_| {
                let (server, job) = (&server, &job);
                s.spawn(move || {
                    let r = server.get(&format!("/checkstatus?jobId={}&wait=10", job.id));
                    (parse_status(&r, &job.id), Instant::now())
                })
            })
            .collect();
        for h in handles {
            let ((p, done), got) = h.join().unwrap();
            assert_eq!((p, done), (100, true));
            assert!(
                got - job.sent >= Duration::from_millis(595),
                "released early: {:?}",
                got - job.sent
            );
            assert!(
                got - job.acked < Duration::from_millis(1100),
                "released late: {:?}",
                got - job.acked
            );
        }
    });
}

#[test]
fn disconnected_long_pollers_do_not_disturb_others() {
    let server = Server::start(&[]);
    let job = submit(&server, 700);
    // Ten long polls whose clients go away before the job is done.
    let quitters: Vec<TcpStream> = (0..10)
        .map(|_| {
            let mut s = server.connect();
            write!(
                s,
                "GET /checkstatus?jobId={}&wait=10 HTTP/1.1\r\nHost: x\r\n\r\n",
                job.id
            )
            .unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    drop(quitters);
    std::thread::scope(|sc| {
        let stayer = sc.spawn(|| {
            let r = server.get(&format!("/checkstatus?jobId={}&wait=10", job.id));
            (parse_status(&r, &job.id), Instant::now())
        });
        // Meanwhile everything else still works.
        let (p, done, _, _) = poll(&server, &job.id);
        assert!(!done, "a 700 ms job done already (progress {p})");
        let other = submit(&server, 0);
        assert!(poll(&server, &other.id).1);
        let ((p, done), got) = stayer.join().unwrap();
        assert_eq!((p, done), (100, true));
        assert!(
            got - job.acked < Duration::from_millis(1200),
            "the remaining long poll came late: {:?}",
            got - job.acked
        );
    });
    // And after the release to closed sockets, the server still serves.
    std::thread::sleep(Duration::from_millis(100));
    let other = submit(&server, 0);
    assert!(poll(&server, &other.id).1);
}

#[test]
fn long_poll_is_not_cut_by_the_idle_timeout() {
    // --idle-timeout-ms is for idle keep-alive connections, not for a
    // request the server is holding.
    let server = Server::start(&["--idle-timeout-ms", "300", "--header-timeout-ms", "300"]);
    let job = submit(&server, 800);
    let mut s = server.connect();
    write!(
        s,
        "GET /checkstatus?jobId={}&wait=5 HTTP/1.1\r\nHost: x\r\n\r\n",
        job.id
    )
    .unwrap();
    let r = common::read_response(&mut s, false)
        .expect("a long poll held past the idle timeout must be answered");
    assert_eq!(parse_status(&r, &job.id), (100, true));
    assert!(job.sent.elapsed() >= Duration::from_millis(795));
    // Then the connection is an idle keep-alive one again, and is closed.
    let t0 = Instant::now();
    let mut b = [0u8; 64];
    let n = s.read(&mut b).unwrap_or(0);
    assert_eq!(n, 0, "unexpected bytes: {:?}", &b[..n]);
    assert!(
        t0.elapsed() < Duration::from_millis(2000),
        "idle connection kept {:?}",
        t0.elapsed()
    );
}

#[test]
fn many_jobs_short_and_long_polled_concurrently() {
    let server = Server::start(&[]);
    let t0 = Instant::now();
    let jobs: Vec<Job> = (0..50).map(|_| submit(&server, 200)).collect();
    let mut nums: Vec<u64> = jobs.iter().map(|j| job_num(&j.id)).collect();
    nums.sort();
    nums.dedup();
    assert_eq!(nums.len(), 50, "job ids must be distinct");
    std::thread::scope(|s| {
        let handles: Vec<_> = jobs
            .iter()
            .enumerate()
            .map(|(i, job)| {
                let server = &server;
                s.spawn(move || {
                    if i % 2 == 0 {
                        let r = server.get(&format!("/checkstatus?jobId={}&wait=10", job.id));
                        parse_status(&r, &job.id)
                    } else {
                        let deadline = Instant::now() + Duration::from_secs(5);
                        loop {
                            let (p, d, sent, got) = poll(server, &job.id);
                            assert_progress_plausible(job, p, sent, got);
                            if d || Instant::now() > deadline {
                                return (p, d);
                            }
                            std::thread::sleep(Duration::from_millis(60));
                        }
                    }
                })
            })
            .collect();
        for (h, job) in handles.into_iter().zip(&jobs) {
            assert_eq!(h.join().unwrap(), (100, true), "{}", job.id);
        }
    });
    assert!(
        t0.elapsed() < Duration::from_secs(8),
        "50 jobs of 200 ms took {:?}",
        t0.elapsed()
    );
}

/// Splits `bytes` into responses framed by Content-Length: (status, body).
fn split_responses(mut bytes: &[u8]) -> Vec<(u16, String)> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let end = common::find(bytes, b"\r\n\r\n")
            .unwrap_or_else(|| panic!("partial head: {:?}", String::from_utf8_lossy(bytes)));
        let head = std::str::from_utf8(&bytes[..end]).unwrap();
        let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
        let len: usize = head
            .split("\r\n")
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .map(|(_, v)| v.trim().parse().unwrap())
            .unwrap_or_else(|| panic!("no Content-Length in {head:?}"));
        let body = String::from_utf8_lossy(&bytes[end + 4..end + 4 + len]).into_owned();
        out.push((status, body));
        bytes = &bytes[end + 4 + len..];
    }
    out
}

#[test]
fn pipelined_request_behind_a_long_poll_waits_its_turn() {
    let server = Server::start(&[]);
    let job = submit(&server, 500);
    let mut s = server.connect();
    // The long poll, then a short poll and a submit on the same connection.
    write!(
        s,
        "GET /checkstatus?jobId={id}&wait=5 HTTP/1.1\r\nHost: x\r\n\r\n\
         GET /checkstatus?jobId={id} HTTP/1.1\r\nHost: x\r\n\r\n\
         POST /submit?duration_ms=0 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        id = job.id
    )
    .unwrap();
    // Nothing may come before the long poll is released.
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut first = [0u8; 1];
    let early = s.read(&mut first);
    assert!(
        early.is_err(),
        "bytes came {:?} after submit, before the 500 ms job was done: {early:?}",
        job.acked.elapsed()
    );
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all)
        .expect("read until the server closes");
    let got = Instant::now();
    let rs = split_responses(&all);
    assert_eq!(rs.len(), 3, "three answers expected: {rs:?}");
    let st = |b: &str| parse_json(b).unwrap();
    assert_eq!(rs[0].0, 200);
    assert_eq!(
        st(&rs[0].1).get("done").and_then(|v| v.as_bool()),
        Some(true),
        "{:?}",
        rs[0]
    );
    assert_eq!(rs[1].0, 200);
    assert_eq!(
        st(&rs[1].1).get("done").and_then(|v| v.as_bool()),
        Some(true),
        "{:?}",
        rs[1]
    );
    assert_eq!(rs[2].0, 202, "{:?}", rs[2]);
    assert!(
        got - job.acked < Duration::from_millis(1000),
        "answers came {:?} after submit",
        got - job.acked
    );
}
