//! Every setting of a server, its default, and its validation.
//!
//! [`Config`] is filled by the CLI (from flags and `URING_SERVE_*`
//! environment variables) or by [`crate::Builder`], and checked once by
//! [`Config::validate`] before anything starts: a bad value is a
//! [`ConfigError`] with a message naming the setting, never a panic later.
//! Defaults live in [`defaults`], each with the peer value it follows.

use std::fmt;
use std::net::SocketAddr;

use crate::cores::Cores;
use crate::http::{Limits, MAX_HEADERS_CAP};

/// Default values, with what peers use.
pub mod defaults {
    /// `--host`: loopback only, as uvicorn.
    pub const HOST: &str = "127.0.0.1";
    /// `--port`: 8000, as uvicorn.
    pub const PORT: u16 = 8000;
    /// `--backlog`: 2048, as uvicorn and gunicorn (per core here: each core
    /// has its own listening socket and accept queue).
    pub const BACKLOG: u32 = 2048;
    /// `--max-body-bytes`: 1 MiB, as nginx's `client_max_body_size`.
    pub const MAX_BODY_BYTES: u64 = 1 << 20;
    /// `--max-header-bytes`: 16 KiB, as uvicorn's h11 default.
    pub const MAX_HEADER_BYTES: usize = 16 << 10;
    /// `--max-headers`: 100, as hyper and gunicorn.
    pub const MAX_HEADERS: usize = 100;
    /// The `Server` header value.
    pub const SERVER_HEADER: &str = "uring-serve";
}

/// The full configuration of a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The cores to run on. Default is [`Cores::All`].
    pub cores: Cores,
    /// The address every core binds (port 0: one free port, chosen once).
    pub addr: SocketAddr,
    /// `listen()` backlog of each core's socket. Default is 2048.
    pub backlog: u32,
    /// Largest request body. Default is 1 MiB.
    pub max_body_bytes: u64,
    /// Largest request head. Default is 16 KiB.
    pub max_header_bytes: usize,
    /// Most header lines per request. Default is 100.
    pub max_headers: usize,
    /// The `Server` header sent with every response; `None` sends none.
    pub server_header: Option<String>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            cores: Cores::All,
            addr: SocketAddr::from(([127, 0, 0, 1], defaults::PORT)),
            backlog: defaults::BACKLOG,
            max_body_bytes: defaults::MAX_BODY_BYTES,
            max_header_bytes: defaults::MAX_HEADER_BYTES,
            max_headers: defaults::MAX_HEADERS,
            server_header: Some(defaults::SERVER_HEADER.to_string()),
        }
    }
}

/// A setting with a value the server cannot run with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    setting: &'static str,
    problem: String,
}

impl ConfigError {
    /// An error about `setting` (a flag name such as `--backlog`).
    pub fn new(setting: &'static str, problem: impl Into<String>) -> ConfigError {
        ConfigError { setting, problem: problem.into() }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.setting, self.problem)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Checks every value; the first bad one is the error.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.backlog == 0 || self.backlog > i32::MAX as u32 {
            return Err(ConfigError::new("--backlog", "must be between 1 and 2147483647"));
        }
        if self.max_header_bytes < 64 {
            return Err(ConfigError::new("--max-header-bytes", "must be at least 64"));
        }
        if self.max_headers == 0 || self.max_headers > MAX_HEADERS_CAP {
            return Err(ConfigError::new(
                "--max-headers",
                format!("must be between 1 and {MAX_HEADERS_CAP}"),
            ));
        }
        if usize::try_from(self.max_body_bytes).is_err() {
            return Err(ConfigError::new("--max-body-bytes", "does not fit in memory"));
        }
        if let Some(server) = &self.server_header {
            if !crate::http::is_valid_header_value(server) {
                return Err(ConfigError::new("server header", "contains control characters"));
            }
        }
        Ok(())
    }

    /// The parser limits this configuration sets.
    pub fn limits(&self) -> Limits {
        Limits {
            max_header_bytes: self.max_header_bytes,
            max_headers: self.max_headers,
            max_body_bytes: self.max_body_bytes,
        }
    }
}
