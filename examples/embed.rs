//! Embedding pushwire in an application (docs/api.md section 6).
//!
//! The application owns the server: it binds it, runs its event loop on a
//! thread of its own, and publishes to a channel from any other thread
//! through a `Handle`. Here a stand-in for "the login code" tells every
//! subscriber of the channel `logins` that a user just logged in, every two
//! seconds.
//!
//! ```text
//! cargo run --example embed                  # serves on 127.0.0.1:8080
//! cargo run --example embed -- 127.0.0.1:0   # any free port
//! ```
//!
//! Then subscribe with any transport of docs/api.md section 2, e.g.
//!
//! ```text
//! curl -N http://127.0.0.1:8080/channels/logins/events       # Server-Sent Events
//! curl 'http://127.0.0.1:8080/channels/logins/poll?after=0'  # long polling
//! websocat ws://127.0.0.1:8080/channels/logins/ws             # WebSocket
//! ```
//!
//! Ctrl-C ends the process.

use std::time::Duration;

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".to_string());
    let cfg = pushwire::Config {
        addr: addr.parse().expect("an address like 127.0.0.1:8080"),
        ..pushwire::Config::default()
    };
    let server = pushwire::Server::bind(cfg)?;
    let url = server.local_addr();
    // A handle is cheap to clone and may be moved to any thread.
    let handle = server.handle();

    println!("listening on http://{url}");
    println!("subscribe: curl -N http://{url}/channels/logins/events");
    println!("       or: ws://{url}/channels/logins/ws");

    // The application's own work, on its own thread: each publish wakes the
    // server's loop, which delivers to every subscriber of `logins`.
    std::thread::spawn(move || {
        for n in 1.. {
            std::thread::sleep(Duration::from_secs(2));
            if let Err(e) = handle.publish("logins", &format!("a user just logged in (#{n})")) {
                eprintln!("publish failed: {e}");
            }
        }
    });

    // The server's event loop on this thread, until `Handle::stop`.
    server.run()
}
