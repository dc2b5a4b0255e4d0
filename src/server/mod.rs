//! Start-up, one pinned executor per core, and the shutdown fan-out.
//!
//! [`Builder::serve`] validates the configuration, checks that io_uring is
//! usable, binds one listening socket per core, then starts one thread per
//! core (named `uring-serve-core-<id>`), each running a glommio
//! `LocalExecutor` pinned to that core. Each core builds its own application
//! instance from the factory, runs its `on_start`, and only when every core
//! has reported ready does `serve` return a [`ServerHandle`]. Any failure on
//! the way stops the cores already started and comes back as one
//! [`StartError`].
//!
//! This module knows nothing about HTTP: a core's work is `core`'s.
//!
//! Files: `builder` (the settings), `start` ([`Builder::serve`]: checks,
//! listeners, starting the cores), `supervise` (a core's thread, restarted
//! after a crash), `handle` (the running server), `error` (why it could
//! not start, or did not end well).

mod builder;
mod error;
mod handle;
mod start;
mod supervise;

pub use builder::Builder;
pub use error::{JoinError, StartError};
pub use handle::ServerHandle;

/// Entry point of the library: `Server::builder()...serve(factory)`.
#[derive(Debug)]
pub struct Server;

impl Server {
    /// A builder with the default configuration.
    pub fn builder() -> Builder {
        Builder::new()
    }
}
