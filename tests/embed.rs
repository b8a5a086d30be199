//! docs/api.md section 6, "Embedding": the crate as a library. An application
//! starts the server on its own thread and publishes to channels from any
//! other thread through a `Handle`; subscribers (here a `tungstenite`
//! WebSocket client and a raw HTTP long poll) see those messages like any
//! other.

mod common;

use common::{parse_json, JsonValue};
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tungstenite::{Message, WebSocket};

/// A server started in-process on a free port, running on its own thread;
/// `run()`'s result comes back on `done`.
struct Embedded {
    addr: SocketAddr,
    handle: pushwire::Handle,
    done: mpsc::Receiver<std::io::Result<()>>,
    thread: Option<JoinHandle<()>>,
}

fn start() -> Embedded {
    let cfg = pushwire::Config {
        addr: "127.0.0.1:0".parse().unwrap(),
        ..pushwire::Config::default()
    };
    let server = pushwire::Server::bind(cfg).expect("bind");
    let addr = server.local_addr();
    assert_ne!(addr.port(), 0, "local_addr must name the real port");
    let handle = server.handle();
    let (tx, done) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        let _ = tx.send(server.run());
    });
    Embedded {
        addr,
        handle,
        done,
        thread: Some(thread),
    }
}

impl Embedded {
    /// Stops the server and checks that `run()` returns `Ok`. The open
    /// WebSocket `clients` keep reading meanwhile, so a graceful close
    /// handshake can complete and nothing has to wait for a grace period.
    fn stop(mut self, clients: Vec<Ws>) {
        let asked = Instant::now();
        self.handle.stop();
        for mut ws in clients {
            // Read until the server has closed it (tungstenite answers a
            // close frame by itself).
            while ws.read().is_ok() {}
        }
        let r = self
            .done
            .recv_timeout(Duration::from_secs(10))
            .expect("run() did not return within 10 s of Handle::stop()");
        assert!(
            asked.elapsed() < Duration::from_secs(3),
            "run() took {:?} to return although every client was gone",
            asked.elapsed()
        );
        r.expect("run() returned an error");
        self.thread.take().unwrap().join().unwrap();
    }
}

impl Drop for Embedded {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.handle.stop();
        }
    }
}

type Ws = WebSocket<TcpStream>;

fn ws(addr: SocketAddr, path: &str) -> Ws {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let (ws, resp) = tungstenite::client::client(format!("ws://{addr}{path}"), s)
        .unwrap_or_else(|e| panic!("handshake on {path}: {e}"));
    assert_eq!(resp.status().as_u16(), 101);
    ws
}

fn next_text(ws: &mut Ws) -> String {
    loop {
        match ws.read().expect("a message") {
            Message::Text(t) => return t,
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected text, got {other:?}"),
        }
    }
}

fn message(ws: &mut Ws) -> (u64, String) {
    let t = next_text(ws);
    let j = parse_json(&t).unwrap_or_else(|e| panic!("not JSON ({e}): {t:?}"));
    assert_eq!(j.keys(), vec!["id", "data"], "{t}");
    let id = j.get("id").and_then(JsonValue::as_f64).unwrap() as u64;
    (
        id,
        j.get("data")
            .and_then(JsonValue::as_str)
            .unwrap()
            .to_string(),
    )
}

fn http_get(addr: SocketAddr, path: &str) -> common::Response {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    common::read_response(&mut s, false).expect("an answer")
}

#[test]
fn publish_from_another_thread_reaches_a_websocket_subscriber() {
    let server = start();
    let mut sub = ws(server.addr, "/channels/logins/ws");
    // The 101 came after the subscription was made: publish now.
    let h = server.handle.clone();
    std::thread::spawn(move || {
        h.publish("logins", "a user just logged in")
            .expect("queued")
    })
    .join()
    .unwrap();
    assert_eq!(
        next_text(&mut sub),
        r#"{"id":1,"data":"a user just logged in"}"#
    );
    server.stop(vec![sub]);
}

#[test]
fn stop_makes_run_return() {
    let server = start();
    // The server serves before the stop ...
    let r = http_get(server.addr, "/stats");
    assert_eq!(r.status, 200);
    let addr = server.addr;
    server.stop(Vec::new());
    // ... and the listener is gone after it.
    let after = TcpStream::connect_timeout(&addr, Duration::from_secs(2));
    if let Ok(mut s) = after {
        // A connect may still land in a backlog nobody accepts: then no
        // answer comes.
        s.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let _ = write!(s, "GET /stats HTTP/1.1\r\nHost: {addr}\r\n\r\n");
        assert!(
            common::read_response(&mut s, false).is_none(),
            "still answering after stop"
        );
    }
}

#[test]
fn publishes_from_many_threads_all_arrive_once_in_id_order() {
    let server = start();
    let mut sub = ws(server.addr, "/channels/logins/ws");
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let h = server.handle.clone();
            std::thread::spawn(move || {
                for i in 0..25 {
                    h.publish("logins", &format!("t{t} m{i}")).expect("queued");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut seen = std::collections::HashSet::new();
    for want_id in 1..=100u64 {
        let (id, data) = message(&mut sub);
        assert_eq!(id, want_id, "ids in order, without gaps");
        assert!(seen.insert(data.clone()), "{data:?} twice");
    }
    // Each thread's own messages keep their order.
    // (Checked through the history, which a long poll reads.)
    let r = http_get(server.addr, "/channels/logins/poll?after=0&timeout=0");
    let j = parse_json(&r.text()).unwrap();
    let Some(JsonValue::Arr(ms)) = j.get("messages") else {
        panic!("{}", r.text())
    };
    assert_eq!(ms.len(), 100);
    for t in 0..4 {
        let mine: Vec<String> = ms
            .iter()
            .map(|m| {
                m.get("data")
                    .and_then(JsonValue::as_str)
                    .unwrap()
                    .to_string()
            })
            .filter(|d| d.starts_with(&format!("t{t} ")))
            .collect();
        let want: Vec<String> = (0..25).map(|i| format!("t{t} m{i}")).collect();
        assert_eq!(mine, want);
    }
    // A bad channel name from a handle is refused without harm.
    server
        .handle
        .publish("not a channel", "x")
        .expect("queued (refused by the loop, which logs it)");
    server
        .handle
        .publish("logins", "still fine")
        .expect("queued");
    assert_eq!(message(&mut sub), (101, "still fine".to_string()));
    let st = parse_json(&http_get(server.addr, "/stats").text()).unwrap();
    let published = st
        .get("messages")
        .and_then(|m| m.get("published"))
        .and_then(JsonValue::as_f64);
    assert_eq!(published, Some(101.0));
    server.stop(vec![sub]);
}

#[test]
fn publish_after_the_server_stopped_is_refused_as_gone() {
    let server = start();
    let h = server.handle.clone();
    assert_eq!(h.publish("logins", "while it runs"), Ok(()));
    server.stop(Vec::new());
    assert_eq!(
        h.publish("logins", "too late"),
        Err(pushwire::SendError::Gone),
        "publishing through a handle after run() returned"
    );
}

/// The handle's queue is bounded (docs/api.md section 6): a loop that is not
/// taking commands (here: not running yet) makes `publish` refuse with
/// `Full`, without blocking; once it runs, everything queued is published
/// and publishing works again.
#[test]
fn publish_refuses_when_the_loop_is_too_far_behind() {
    let cfg = pushwire::Config {
        addr: "127.0.0.1:0".parse().unwrap(),
        ..pushwire::Config::default()
    };
    let server = pushwire::Server::bind(cfg).expect("bind");
    let addr = server.local_addr();
    let handle = server.handle();
    let mut queued = 0u64;
    let refused = loop {
        match handle.publish("backlog", "m") {
            Ok(()) => queued += 1,
            Err(e) => break e,
        }
        assert!(queued < 1_000_000, "the handle's queue did not fill");
    };
    assert_eq!(refused, pushwire::SendError::Full, "after {queued} queued");
    assert!(queued >= 1, "nothing could be queued");
    let (tx, done) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        let _ = tx.send(server.run());
    });
    let published = |addr| {
        let st = parse_json(&http_get(addr, "/stats").text()).unwrap();
        st.get("messages")
            .and_then(|m| m.get("published"))
            .and_then(JsonValue::as_f64)
            .unwrap_or(0.0) as u64
    };
    let end = Instant::now() + Duration::from_secs(20);
    while published(addr) < queued {
        assert!(
            Instant::now() < end,
            "only {} of {queued} published",
            published(addr)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(handle.publish("backlog", "after"), Ok(()));
    let end = Instant::now() + Duration::from_secs(5);
    while published(addr) < queued + 1 {
        assert!(
            Instant::now() < end,
            "the publish after the backlog was not published"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let embedded = Embedded {
        addr,
        handle,
        done,
        thread: Some(thread),
    };
    embedded.stop(Vec::new());
}
