//! uring-serve: an io_uring-based, thread-per-core HTTP/1.1 server runtime
//! for Linux.
//!
//! One glommio executor per CPU core, pinned to it, each with its own
//! `SO_REUSEPORT` listening socket and its own io_uring ring. Each core
//! parses HTTP/1.1 and calls its own instance of the application: nothing
//! is shared between cores, so an application may keep `Rc`/`RefCell`
//! state without locks.
//!
//! ```no_run
//! use std::cell::Cell;
//! use uring_serve::{App, Context, CoreId, Request, Response, Server};
//!
//! /// Counts the requests its core has answered.
//! struct Counter {
//!     core: CoreId,
//!     served: Cell<u64>,
//! }
//!
//! impl App for Counter {
//!     async fn call(&self, _req: Request, _cx: &Context) -> Response {
//!         self.served.set(self.served.get() + 1);
//!         Response::text(format!("core {}: {} requests\n", self.core, self.served.get()))
//!     }
//! }
//!
//! let server = Server::builder()
//!     .bind("127.0.0.1:8000")
//!     .serve(|core| Counter { core, served: Cell::new(0) })?;
//! server.join()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Module map (data flows one way, no cycles; checked by `layout`'s test):
//! `cli` → [`config`] → `server` (start-up, one supervised executor per
//! core) → `core` (what a core owns: accept loop, registry of connections,
//! workers, deadline sweeper, drain) → `conn` (one busy connection) →
//! [`http`] (pure parsing and serialisation) and [`app`] (the
//! application). Beneath them `io` (system calls, the socket ring, a
//! connection's socket, TLS over it, listeners) and [`tls`] (TLS without
//! I/O: settings, certificates, rustls's protocol over bytes). Beside the
//! request path: [`ws`] (WebSocket on upgraded connections), `tower` (the
//! `tower` feature: a tower service as an application), `metrics`
//! (per-core counters, their Prometheus listener), `access_log` (per-core
//! line buffers, one writer thread), `admission` (`--limit-concurrency`),
//! `blocking` (the per-core blocking pool), `proxy` (who the client is
//! behind a trusted proxy), `shutdown` (the stop signal) and `recycle`
//! (per-core shelves of buffers and blocks).

#![deny(missing_docs, unsafe_op_in_unsafe_fn)]
#![warn(unreachable_pub, missing_debug_implementations)]

mod access_log;
mod admission;
pub mod app;
pub mod apps;
mod blocking;
pub mod cli;
pub mod config;
mod conn;
mod core;
pub mod cores;
mod counter;
pub mod http;
mod io;
#[cfg(test)]
mod layout;
mod metrics;
#[cfg(feature = "test-support")]
pub mod probe;
#[cfg(not(feature = "test-support"))]
mod probe;
mod proxy;
mod recycle;
mod server;
mod shutdown;
pub mod tls;
#[cfg(feature = "tower")]
pub mod tower;
pub mod ws;

pub use app::{
    sleep, App, Body, BodyError, BodyStream, BoxError, Context, OnUpgrade, Request, RequestBody,
    Response, Upgraded,
};
pub use blocking::BlockingError;
pub use config::{
    AccessLogTarget, Config, ConfigError, LogFormat, OptionsAsterisk, RingSetup, WsSettings,
};
pub use cores::{CoreId, Cores, CoresError};
pub use http::{Method, Version};
pub use io::listener::Endpoint;
pub use metrics::Metrics;
pub use proxy::TrustedProxies;
pub use server::{Builder, JoinError, Server, ServerHandle, StartError};
pub use shutdown::ShutdownSignal;
