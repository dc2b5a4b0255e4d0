//! `uring-serve`: serves the built-in `bench` application.
//!
//! Exit codes: 0 after a shutdown by SIGINT/SIGTERM, 2 for a configuration
//! or machine problem (bad flag, port in use, io_uring unavailable), 3 when
//! a core fails to start, 1 when a core stops after a panic.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::Parser;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use tracing::{info, warn};
use tracing_subscriber::EnvFilter;

use uring_serve::apps::{BenchApp, StaticDir, StaticFiles};
use uring_serve::cli::Cli;
use uring_serve::tls::TlsConfig;
use uring_serve::{LogFormat, OptionsAsterisk, Server};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let text = e.to_string();
            eprintln!("{}", text.lines().next().unwrap_or("error: invalid arguments"));
            return ExitCode::from(2);
        }
    };
    init_logging(&cli.log_level, cli.log_format() == LogFormat::Json);

    let config = match cli.to_config() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    // Taken before the server starts: a SIGTERM that comes while it starts
    // (or as soon as it says it listens) stops it gracefully, never with
    // the default action.
    let signals = match Signals::new([SIGINT, SIGTERM, SIGHUP]) {
        Ok(signals) => Some(signals),
        Err(e) => {
            eprintln!("warning: cannot handle SIGINT/SIGTERM/SIGHUP: {e}");
            None
        }
    };
    let builder = Server::builder().config(config);
    let started = match &cli.static_dir {
        Some(root) => match StaticDir::open(root) {
            Ok(dir) => {
                let dir = dir.hidden(cli.static_hidden).listing(cli.static_listing);
                builder
                    .options_asterisk(OptionsAsterisk::Allow(StaticFiles::ALLOW.into()))
                    .serve(move |_| StaticFiles::new(&dir))
            }
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        },
        None => builder
            .options_asterisk(OptionsAsterisk::Allow(BenchApp::ALLOW.into()))
            .serve(BenchApp::new),
    };
    let server = match started {
        Ok(server) => server,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(e.exit_code());
        }
    };

    if let Some(mut signals) = signals {
        let shutdown = server.shutdown_signal();
        let tls = server.tls().cloned();
        std::thread::spawn(move || {
            let mut stopping = false;
            for signal in signals.forever() {
                if signal == SIGHUP {
                    reload_certificate(tls.as_ref());
                } else if stopping {
                    std::process::exit(130);
                } else {
                    stopping = true;
                    shutdown.trigger();
                    info!(signal, "shutting down");
                }
            }
        });
    }

    match server.join() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

/// `SIGHUP`: the certificate and key files are read again and serve new
/// handshakes; a file that cannot be used leaves the one in use.
fn reload_certificate(tls: Option<&TlsConfig>) {
    match tls.map(TlsConfig::reload) {
        None => info!("SIGHUP: nothing to reload (the server does not serve TLS)"),
        Some(Ok(())) => info!("SIGHUP: TLS certificate reloaded; new handshakes use it"),
        Some(Err(e)) => warn!("SIGHUP: TLS certificate not reloaded, the one in use stays: {e}"),
    }
}

fn init_logging(level: &str, json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // A closed stderr must not turn a log line into a panic.
        .log_internal_errors(false);
    if json {
        logs.json().flatten_event(true).init();
    } else {
        logs.with_ansi(std::io::stderr().is_terminal()).init();
    }
}
