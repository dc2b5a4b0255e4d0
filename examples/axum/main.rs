//! An axum router served on every core by uring-serve:
//!
//!     cargo run --release --features tower --example axum
//!
//! then `curl 127.0.0.1:8000/users/7`, `curl -d '{"name":"ring"}' -H
//! 'content-type: application/json' 127.0.0.1:8000/greet`.

mod router;

use uring_serve::tower::TowerApp;
use uring_serve::{Cores, Server};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = Server::builder()
        .cores(Cores::All)
        .bind("127.0.0.1:8000")
        .serve(|core| TowerApp::new(router::router(core)))?;
    println!("listening on {}", server.local_addr());
    server.join()?;
    Ok(())
}
