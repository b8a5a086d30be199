//! `pushwire`: flags in, server running, signals out.

use std::io::Write;
use std::process::ExitCode;

use pushwire::config::{help_text, parse_args, Cli};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

fn main() -> ExitCode {
    let cfg = match parse_args(std::env::args().skip(1)) {
        Ok(Cli::Run(cfg)) => *cfg,
        Ok(Cli::Help) => {
            print!("{}", help_text());
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("pushwire: {e}");
            return ExitCode::from(2);
        }
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let server = match pushwire::Server::bind(cfg) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("pushwire: cannot listen: {e}");
            return ExitCode::FAILURE;
        }
    };
    // SIGINT and SIGTERM ask the loop to shut down gracefully, through the
    // same handle an embedding application would use; a second signal
    // exits at once.
    let handle = server.handle();
    match Signals::new([SIGINT, SIGTERM]) {
        Ok(mut signals) => {
            std::thread::spawn(move || {
                let mut seen = 0;
                for sig in signals.forever() {
                    seen += 1;
                    if seen > 1 {
                        std::process::exit(128 + sig);
                    }
                    log::info!("signal {sig}: shutting down gracefully (again to force)");
                    handle.stop();
                }
            });
        }
        Err(e) => log::warn!("cannot install signal handlers: {e}"),
    }
    // The contract's first line: scripts read the real port from it.
    println!("listening on http://{}", server.local_addr());
    let _ = std::io::stdout().flush();
    match server.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pushwire: {e}");
            ExitCode::FAILURE
        }
    }
}
