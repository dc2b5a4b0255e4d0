//! A tiny application with per-core state: every core counts the requests
//! it has answered, in a plain `Cell` (no locks, no atomics: an instance
//! never leaves its core).
//!
//! ```text
//! cargo run --release --example counter -- 127.0.0.1:8000
//! curl http://127.0.0.1:8000/
//! ```

use std::cell::Cell;

use uring_serve::{App, Context, CoreId, Cores, Request, Response, Server};

struct Counter {
    core: CoreId,
    served: Cell<u64>,
}

impl App for Counter {
    async fn call(&self, req: Request, _cx: &Context) -> Response {
        let served = self.served.get() + 1;
        self.served.set(served);
        Response::text(format!(
            "core {} has answered {served} request(s); this one was {} {}\n",
            self.core,
            req.method_str(),
            req.path()
        ))
    }

    async fn on_stop(&self, cx: &Context) {
        eprintln!("core {}: answered {} request(s)", cx.core(), self.served.get());
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:8000".to_string());
    let server = Server::builder()
        .cores(Cores::All)
        .bind(addr.as_str())
        .serve(|core| Counter { core, served: Cell::new(0) })?;
    println!("counter listening on http://{}", server.local_addr());

    // Ctrl-C stops the server: each core runs `on_stop`, then `join` returns.
    let stop = server.shutdown_signal();
    let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGINT])?;
    std::thread::spawn(move || {
        if signals.forever().next().is_some() {
            stop.trigger();
        }
    });
    server.join()?;
    Ok(())
}
