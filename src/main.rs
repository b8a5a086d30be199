//! `pushwire`: flags in, server running, signals out.

use std::io::Write;
use std::process::ExitCode;

use pushwire::config::{help_text, parse_args, Cli, TokenRequest, TokenSecret};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

fn main() -> ExitCode {
    let mut cfg = match parse_args(std::env::args().skip(1)) {
        Ok(Cli::Run(cfg)) => *cfg,
        Ok(Cli::Help) => {
            print!("{}", help_text());
            return ExitCode::SUCCESS;
        }
        Ok(Cli::Token(t)) => return print_token(t),
        Err(e) => {
            eprintln!("pushwire: {e}");
            return ExitCode::from(2);
        }
    };
    if cfg.token_secret.is_none() {
        match env_secret() {
            Ok(secret) => cfg.token_secret = secret,
            Err(e) => {
                eprintln!("pushwire: PUSHWIRE_TOKEN_SECRET: {e}");
                return ExitCode::from(2);
            }
        }
    }
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

/// `PUSHWIRE_TOKEN_SECRET`, when set (docs/api.md section 8).
fn env_secret() -> Result<Option<TokenSecret>, pushwire::config::ArgError> {
    match std::env::var_os("PUSHWIRE_TOKEN_SECRET") {
        None => Ok(None),
        Some(v) => {
            use std::os::unix::ffi::OsStrExt;
            TokenSecret::new(v.as_bytes()).map(Some)
        }
    }
}

/// `pushwire token ...`: prints a token signed with the secret and exits.
fn print_token(t: TokenRequest) -> ExitCode {
    let secret = match t.secret.map(Ok).or_else(|| env_secret().transpose()) {
        Some(Ok(s)) => s,
        Some(Err(e)) => {
            eprintln!("pushwire token: {e}");
            return ExitCode::from(2);
        }
        None => {
            eprintln!(
                "pushwire token: no secret to sign with: give --token-secret SECRET or set \
                 PUSHWIRE_TOKEN_SECRET (at least 32 bytes)"
            );
            return ExitCode::from(2);
        }
    };
    let exp = (t.ttl > 0).then(|| pushwire::wire::date::unix_millis_now() / 1000 + t.ttl);
    let subscribe: Vec<&str> = t.subscribe.iter().map(String::as_str).collect();
    let publish: Vec<&str> = t.publish.iter().map(String::as_str).collect();
    let claims =
        pushwire::wire::jwt::claims_json(t.sub.as_deref(), &subscribe, &publish, t.admin, exp);
    println!("{}", pushwire::wire::jwt::sign(&claims, secret.bytes()));
    ExitCode::SUCCESS
}
