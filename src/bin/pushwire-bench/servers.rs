//! The two baselines pushwire's numbers are divided by: the least a mio
//! server can do per message. Same shape as pushwire's loop (one thread,
//! edge-triggered, read until `WouldBlock`, writable interest only while
//! output is pending, no reading while it is), none of the protocol.
//!
//! * `serve-raw-echo`: every byte read is written back.
//! * `serve-canned`: every request head (counted by its CRLFCRLF; bodies
//!   are not supported) gets one fixed 200 response, pipelining included.

use std::io::{self, Read, Write};
use std::time::Instant;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use crate::opts::{Opts, Scenario};

const LISTENER: Token = Token(usize::MAX);

/// The canned answer: the same head fields and about the same body as
/// pushwire's answer to the default http-keepalive request
/// (`/channels/bench/poll?timeout=0`), with a frozen Date.
fn canned_response() -> Vec<u8> {
    let body = "{\"messages\":[],\"last\":1000}";
    format!(
        "HTTP/1.1 200 OK\r\nDate: Thu, 01 Jan 2026 00:00:00 GMT\r\nServer: canned\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

struct Conn {
    stream: TcpStream,
    token: Token,
    /// Output the kernel did not take yet: `pending[pos..]`.
    pending: Vec<u8>,
    pos: usize,
    /// serve-canned: how much of "\r\n\r\n" the last bytes matched.
    matched: u8,
}

pub fn serve(o: &Opts) -> Result<(), String> {
    let canned = o.scenario == Scenario::ServeCanned;
    let mut listener =
        TcpListener::bind(o.target).map_err(|e| format!("bind {}: {e}", o.target))?;
    let mut poll = Poll::new().map_err(|e| e.to_string())?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)
        .map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    println!("listening on http://{addr}");
    let _ = io::stdout().flush();
    let mut conns: Slab<Conn> = Slab::new();
    let mut events = Events::with_capacity(1024);
    let mut scratch = vec![0u8; 64 * 1024];
    let mut out: Vec<u8> = Vec::new();
    let canned_bytes = canned_response();
    let end = Instant::now() + o.lifetime;
    loop {
        let now = Instant::now();
        if now >= end {
            eprintln!(
                "{}: lifetime of {:?} over, exiting",
                o.scenario.name(),
                o.lifetime
            );
            return Ok(());
        }
        if let Err(e) = poll.poll(&mut events, Some(end - now)) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e.to_string());
        }
        for ev in events.iter() {
            if ev.token() == LISTENER {
                loop {
                    match listener.accept() {
                        Ok((mut stream, _)) => {
                            let _ = stream.set_nodelay(true);
                            let entry = conns.vacant_entry();
                            let token = Token(entry.key());
                            if poll
                                .registry()
                                .register(&mut stream, token, Interest::READABLE)
                                .is_ok()
                            {
                                entry.insert(Conn {
                                    stream,
                                    token,
                                    pending: Vec::new(),
                                    pos: 0,
                                    matched: 0,
                                });
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => {
                            // EMFILE and the like: leave the rest in the backlog.
                            eprintln!("accept: {e}");
                            break;
                        }
                    }
                }
                continue;
            }
            let key = ev.token().0;
            let Some(c) = conns.get_mut(key) else {
                continue;
            };
            let ok = if ev.is_writable() && c.pos < c.pending.len() {
                drain_pending(c, &poll)
            } else {
                Ok(())
            };
            let ok = ok.and_then(|()| {
                serve_reads(
                    c,
                    &poll,
                    &mut scratch,
                    &mut out,
                    canned.then_some(&canned_bytes[..]),
                )
            });
            if ok.is_err() {
                let mut c = conns.remove(key);
                let _ = poll.registry().deregister(&mut c.stream);
            }
        }
    }
}

/// Reads until `WouldBlock` (or until output backs up) and answers.
/// `Err` means: close the connection.
fn serve_reads(
    c: &mut Conn,
    poll: &Poll,
    scratch: &mut [u8],
    out: &mut Vec<u8>,
    canned: Option<&[u8]>,
) -> io::Result<()> {
    while c.pos == c.pending.len() {
        let n = match c.stream.read(scratch) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let answer: &[u8] = if let Some(response) = canned {
            out.clear();
            for &b in &scratch[..n] {
                c.matched = match (c.matched, b) {
                    (0 | 2, b'\r') => c.matched + 1,
                    (1 | 3, b'\n') => c.matched + 1,
                    (_, b'\r') => 1,
                    _ => 0,
                };
                if c.matched == 4 {
                    c.matched = 0;
                    out.extend_from_slice(response);
                }
            }
            out
        } else {
            &scratch[..n]
        };
        write_or_keep(c, poll, answer)?;
    }
    Ok(())
}

/// Writes `bytes`; what the kernel does not take is kept, and writable
/// interest registered until it is gone.
fn write_or_keep(c: &mut Conn, poll: &Poll, bytes: &[u8]) -> io::Result<()> {
    let mut done = 0;
    while done < bytes.len() {
        match c.stream.write(&bytes[done..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                c.pending.clear();
                c.pending.extend_from_slice(&bytes[done..]);
                c.pos = 0;
                return poll.registry().reregister(
                    &mut c.stream,
                    c.token,
                    Interest::READABLE | Interest::WRITABLE,
                );
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn drain_pending(c: &mut Conn, poll: &Poll) -> io::Result<()> {
    while c.pos < c.pending.len() {
        match c.stream.write(&c.pending[c.pos..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => c.pos += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    c.pending.clear();
    c.pos = 0;
    poll.registry()
        .reregister(&mut c.stream, c.token, Interest::READABLE)
}
