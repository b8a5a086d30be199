//! `pushwire`: flags in, server running.

use std::io::Write;
use std::process::ExitCode;

use pushwire::config::{help_text, parse_args, Cli};

fn main() -> ExitCode {
    let cfg = match parse_args(std::env::args().skip(1)) {
        Ok(Cli::Run(cfg)) => cfg,
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
