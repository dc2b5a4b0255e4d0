//! An axum router served on every core by uring-serve:
//!
//!     cargo run --release --features tower --example axum [-- --port 8000 --cores all]
//!
//! (`--bare` serves only `/plaintext` and `/json`, without middleware: the
//! router the benchmarks compare with `axum::serve` on tokio), then
//! `curl 127.0.0.1:8000/users/7`, `curl -d '{"name":"ring"}' -H
//! 'content-type: application/json' 127.0.0.1:8000/greet`; a WebSocket
//! client on `ws://127.0.0.1:8000/ws` gets its messages echoed.

mod router;
mod site;

use site::Site;
use uring_serve::tower::TowerApp;
use uring_serve::{Cores, Server};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (mut port, mut cores, mut bare) = (8000u16, Cores::All, false);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--bare" {
            bare = true;
            continue;
        }
        match (flag.as_str(), args.next()) {
            ("--port", Some(value)) => port = value.parse()?,
            ("--cores", Some(value)) => cores = value.parse()?,
            _ => {
                let usage = "usage: axum [--port N] [--cores all|N|LIST] [--bare]";
                return Err(format!("{usage}; got {flag}").into());
            }
        }
    }
    let address = ("127.0.0.1", port);
    let server = if bare {
        // Only /plaintext and /json, no middleware, no WebSocket: the
        // router the benchmarks put beside axum::serve.
        Server::builder().cores(cores).bind(address).serve(|_| TowerApp::new(router::bare()))?
    } else {
        Server::builder()
            .cores(cores)
            .bind(address)
            .serve(|core| Site::new(router::router(core)))?
    };
    println!("listening on {}", server.local_addr());
    server.join()?;
    Ok(())
}
