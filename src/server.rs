//! The library's front door: bind, get a handle, run.
//!
//! ```no_run
//! let server = pushwire::Server::bind(pushwire::Config::default()).unwrap();
//! let handle = server.handle();
//! std::thread::spawn(move || server.run());
//! handle.publish("logins", "a user just logged in").unwrap();
//! ```

use std::io;
use std::net::SocketAddr;

use crate::app::{App, Command};
use crate::config::Config;
use crate::net::{self, Reactor, SendError};

/// Commands another thread may queue before `Handle::publish` refuses with
/// `SendError::Full` (the loop is that far behind).
const INBOX_CAPACITY: usize = 65_536;

/// The server: the event loop (`net`) driving the application (`app`).
pub struct Server {
    reactor: Reactor<App>,
}

/// A handle for other threads: publish to channels, stop the server. It
/// wakes the loop; it never touches the loop's state directly, never
/// blocks, and its queue is bounded.
#[derive(Clone)]
pub struct Handle {
    inner: net::Handle<Command>,
}

impl Handle {
    /// Publishes `data` to `channel` as if it had been POSTed (as the
    /// application: no token is needed). `Err` when the loop has ended or
    /// is too far behind to take more.
    pub fn publish(&self, channel: &str, data: &str) -> Result<(), SendError> {
        self.inner.send(Command::Publish {
            channel: channel.to_string(),
            data: data.to_string(),
        })
    }

    /// Asks the loop to shut down gracefully: stop accepting, close
    /// WebSockets with 1001, end streams and held polls, finish answers in
    /// flight. `Server::run` returns when all connections are gone or after
    /// `--shutdown-timeout-ms`.
    pub fn stop(&self) {
        // Gone: nothing left to stop. Full: the loop is alive and far
        // behind; the stop must still get through.
        while self.inner.send(Command::Stop) == Err(SendError::Full) {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
}

impl Server {
    /// Binds the listener. `cfg.addr` with port 0 picks a free port;
    /// `local_addr` tells which.
    pub fn bind(cfg: Config) -> io::Result<Server> {
        let opts = net::Options {
            addr: cfg.addr,
            listen_backlog: cfg.listen_backlog,
            send_buffer_bytes: cfg.send_buffer_bytes,
            max_held_input: cfg.max_header_bytes,
            linger: cfg.linger,
            inbox_capacity: INBOX_CAPACITY,
            trace: cfg.trace,
        };
        let reactor = Reactor::bind(opts, App::new(cfg))?;
        Ok(Server { reactor })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.reactor.io.local_addr()
    }

    /// A handle other threads can publish with.
    pub fn handle(&self) -> Handle {
        Handle {
            inner: self.reactor.handle(),
        }
    }

    /// Runs the loop until `Handle::stop`.
    pub fn run(self) -> io::Result<()> {
        self.reactor.run(App::start)
    }
}
