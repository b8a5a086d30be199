//! `pushwire-bench`: the load generator, and the two baseline servers its
//! numbers are compared with. Itself one thread on mio. Run
//! `pushwire-bench --help` for the scenarios and flags.
//!
//! It only ever connects to loopback addresses (127.0.0.0/8, ::1): any
//! other target is refused with exit code 2. Every run stops by itself
//! after setup (at most `--setup-timeout`), warmup, the measured window
//! and, for fan-out, the drain.

mod client;
mod deflate;
mod metrics;
mod opts;
mod servers;
mod sock;

use std::fmt::Write as _;
use std::process::ExitCode;

use client::Outcome;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let o = match opts::parse(&args) {
        Ok(o) => o,
        Err((msg, code)) => {
            if msg.is_empty() {
                print!("{}", opts::USAGE);
            } else {
                eprintln!("pushwire-bench: {msg}");
                if code == 2 && !msg.starts_with("refusing") {
                    eprintln!("(pushwire-bench --help lists scenarios and flags)");
                }
            }
            return ExitCode::from(code);
        }
    };
    if o.scenario.is_server() {
        return match servers::serve(&o) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("pushwire-bench: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let fd_limit = fd_soft_limit();
    if let Some(limit) = fd_limit {
        if o.conns as u64 + 64 > limit {
            eprintln!(
                "pushwire-bench: warning: {} connections need more file descriptors than the \
                 soft limit {limit} (raise it with `ulimit -n`)",
                o.conns
            );
        }
    }
    let scenario = o.scenario;
    let json = o.json;
    let (target, inflight, size, rate) = (o.target, o.inflight, o.size, o.rate);
    match client::run(o) {
        Ok(r) => {
            print!("{}", human(&r, target, inflight, size, rate));
            if json {
                println!("{}", json_line(&r, inflight, size, rate));
            }
            if r.ready == 0 {
                eprintln!("pushwire-bench: no connection could be set up");
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("pushwire-bench {}: {e}", scenario.name());
            ExitCode::FAILURE
        }
    }
}

fn fd_soft_limit() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = s.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

fn opt(v: Option<f64>, decimals: usize, suffix: &str) -> String {
    match v {
        Some(v) => format!("{v:.decimals$}{suffix}"),
        None => "-".into(),
    }
}

fn human(
    r: &Outcome,
    target: std::net::SocketAddr,
    inflight: usize,
    size: usize,
    rate: f64,
) -> String {
    let mut s = String::new();
    let sc = r.scenario;
    let _ = writeln!(s, "scenario      {} -> {target}", sc.name());
    let _ = writeln!(
        s,
        "connections   {} wanted, {} ready at the end, {} failed to set up, {} closed during the run (setup {:.2} s)",
        r.conns_wanted, r.ready, r.failed, r.closed, r.setup_secs
    );
    match sc {
        opts::Scenario::WsEcho | opts::Scenario::TcpEcho | opts::Scenario::HttpKeepalive => {
            let _ = writeln!(
                s,
                "load          {inflight} in flight per connection, {size} B messages"
            );
        }
        s2 if s2.is_fanout() => {
            let _ = writeln!(
                s,
                "load          {rate} publishes/s of {} B to {} subscribers; {} published ({} in the window, {} refused)",
                size.max(20),
                r.subscribers,
                r.published,
                r.published_in_window,
                r.publish_err
            );
        }
        _ => {}
    }
    let _ = writeln!(s, "window        {:.2} s", r.window_secs);
    if sc != opts::Scenario::Idle {
        let _ = writeln!(
            s,
            "throughput    {:.0} {} ({} in the window)",
            r.throughput, r.unit, r.completed
        );
        let _ = writeln!(
            s,
            "latency       p50 {}  p99 {}  p99.9 {}  max {}  ({} samples)",
            opt(r.p50_us, 1, " us"),
            opt(r.p99_us, 1, " us"),
            opt(r.p999_us, 1, " us"),
            opt(r.max_us, 1, " us"),
            r.samples
        );
    }
    if sc.is_fanout() {
        let _ = writeln!(
            s,
            "delivered     {} ({} of {} expected)",
            opt(r.delivered.map(|d| d * 100.0), 3, " %"),
            r.delivered_count,
            r.expected
        );
        let _ = writeln!(
            s,
            "order         {} duplicates or out of order, {} missing ids, {} truncation notices",
            r.dup, r.gaps, r.truncated
        );
    }
    if r.bad_status > 0 || r.foreign > 0 {
        let _ = writeln!(
            s,
            "unexpected    {} non-2xx answers, {} messages not ours",
            r.bad_status, r.foreign
        );
    }
    let _ = writeln!(
        s,
        "cpu           client {}  server {} (of one core, over the window)",
        opt(r.client_cpu, 1, " %"),
        opt(r.server_cpu, 1, " %")
    );
    if r.server_rss_kb.is_some() {
        let _ = writeln!(s, "server rss    {} kB", r.server_rss_kb.unwrap_or(0));
    }
    if sc == opts::Scenario::Idle {
        let _ = writeln!(
            s,
            "rss/conn      {} (server RSS {} kB before connecting)",
            opt(r.rss_per_conn_kb, 2, " kB"),
            r.rss_before_kb.map_or("-".into(), |v| v.to_string())
        );
    }
    let _ = writeln!(s, "bytes         {} in, {} out", r.bytes_in, r.bytes_out);
    if r.inflated > 0 {
        let _ = writeln!(
            s,
            "inflated      {} messages, {} more were copies of one already inflated",
            r.inflated, r.inflate_reused
        );
    }
    for (e, n) in &r.errors {
        let _ = writeln!(s, "error         {e} (x{n})");
    }
    s
}

fn num(v: Option<f64>, decimals: usize) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{v:.decimals$}"),
        _ => "null".into(),
    }
}

fn json_line(r: &Outcome, inflight: usize, size: usize, rate: f64) -> String {
    let mut s = String::from("{");
    let _ = write!(s, "\"scenario\":\"{}\"", r.scenario.name());
    let _ = write!(s, ",\"conns\":{}", r.conns_wanted);
    let _ = write!(s, ",\"ready\":{}", r.ready);
    let _ = write!(s, ",\"failed\":{}", r.failed);
    let _ = write!(s, ",\"closed\":{}", r.closed);
    let _ = write!(s, ",\"inflight\":{inflight},\"size\":{size}");
    if r.scenario.is_fanout() {
        let _ = write!(
            s,
            ",\"rate\":{rate},\"published\":{}",
            r.published_in_window
        );
    }
    let _ = write!(s, ",\"window_s\":{}", num(Some(r.window_secs), 3));
    let _ = write!(s, ",\"throughput\":{}", num(Some(r.throughput), 1));
    let _ = write!(s, ",\"p50_us\":{}", num(r.p50_us, 1));
    let _ = write!(s, ",\"p99_us\":{}", num(r.p99_us, 1));
    let _ = write!(s, ",\"p999_us\":{}", num(r.p999_us, 1));
    let _ = write!(s, ",\"max_us\":{}", num(r.max_us, 1));
    let _ = write!(s, ",\"delivered\":{}", num(r.delivered, 5));
    let _ = write!(s, ",\"client_cpu\":{}", num(r.client_cpu, 1));
    let _ = write!(s, ",\"server_cpu\":{}", num(r.server_cpu, 1));
    let _ = write!(
        s,
        ",\"server_rss_kb\":{}",
        r.server_rss_kb.map_or("null".into(), |v| v.to_string())
    );
    let _ = write!(s, ",\"rss_per_conn_kb\":{}", num(r.rss_per_conn_kb, 2));
    let _ = write!(
        s,
        ",\"errors\":{}",
        r.errors.iter().map(|e| e.1).sum::<u64>()
    );
    s.push('}');
    s
}
