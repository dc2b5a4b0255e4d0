//! The command line of the `uring-serve` binary: clap definitions, each flag
//! also read from a `URING_SERVE_*` environment variable, turned into a
//! [`Config`]. No other logic lives here.

use std::net::ToSocketAddrs;

use clap::Parser;

use crate::config::{defaults, Config, ConfigError};
use crate::cores::Cores;

/// An io_uring, thread-per-core HTTP/1.1 server. Serves the built-in `bench`
/// application: /plaintext, /json, /echo, /sleep?ms=N.
#[derive(Debug, Clone, Parser)]
#[command(name = "uring-serve", version, about, long_about = None)]
pub struct Cli {
    /// Cores to run on, one pinned executor each: `all` (every core this
    /// process may use, its affinity mask), a count `N` (the first N of
    /// those), or core ids such as `0-3,8`.
    #[arg(
        long,
        env = "URING_SERVE_CORES",
        default_value = "all",
        help_heading = "Cores and sockets"
    )]
    pub cores: String,

    /// Address to bind (`::` for every IPv6 and IPv4 address).
    #[arg(long, env = "URING_SERVE_HOST", default_value = defaults::HOST, help_heading = "Cores and sockets")]
    pub host: String,

    /// Port to bind; 0 picks a free one (every core shares it).
    #[arg(long, env = "URING_SERVE_PORT", default_value_t = defaults::PORT, help_heading = "Cores and sockets")]
    pub port: u16,

    /// Pending-connection queue of each core's listening socket (capped by
    /// net.core.somaxconn).
    #[arg(long, env = "URING_SERVE_BACKLOG", default_value_t = defaults::BACKLOG, help_heading = "Cores and sockets")]
    pub backlog: u32,

    /// Largest request body; bigger ones get 413. Accepts K, M, G suffixes
    /// (powers of 1024).
    #[arg(long, env = "URING_SERVE_MAX_BODY_BYTES", default_value = "1M", value_parser = parse_bytes, help_heading = "Limits")]
    pub max_body_bytes: u64,

    /// Largest request head (request line and headers); bigger ones get 431
    /// (414 when the request line alone is too long).
    #[arg(long, env = "URING_SERVE_MAX_HEADER_BYTES", default_value = "16K", value_parser = parse_bytes, help_heading = "Limits")]
    pub max_header_bytes: u64,

    /// Most header lines in a request; more get 431.
    #[arg(long, env = "URING_SERVE_MAX_HEADERS", default_value_t = defaults::MAX_HEADERS, help_heading = "Limits")]
    pub max_headers: usize,

    /// Log level: error, warn, info, debug or trace. RUST_LOG, when set,
    /// takes precedence with a full filter (e.g. `uring_serve=debug`).
    #[arg(long, env = "URING_SERVE_LOG_LEVEL", default_value = "info", value_parser = ["error", "warn", "info", "debug", "trace"], help_heading = "Logging")]
    pub log_level: String,
}

impl Cli {
    /// The configuration these flags describe.
    pub fn to_config(&self) -> Result<Config, ConfigError> {
        let cores: Cores =
            self.cores.parse().map_err(|e| ConfigError::new("--cores", format!("{e}")))?;
        let addr = (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(|e| {
                ConfigError::new("--host", format!("cannot resolve {:?}: {e}", self.host))
            })?
            .next()
            .ok_or_else(|| {
                ConfigError::new("--host", format!("{:?} resolves to no address", self.host))
            })?;
        let max_header_bytes = usize::try_from(self.max_header_bytes)
            .map_err(|_| ConfigError::new("--max-header-bytes", "too large"))?;
        let config = Config {
            cores,
            addr,
            backlog: self.backlog,
            max_body_bytes: self.max_body_bytes,
            max_header_bytes,
            max_headers: self.max_headers,
            ..Config::default()
        };
        config.validate()?;
        Ok(config)
    }
}

/// Parses `1048576`, `1024K`, `1M`, `1G` (powers of 1024, any case, an
/// optional trailing `B` or `iB`).
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let t = t.strip_suffix("iB").or_else(|| t.strip_suffix(['B', 'b'])).unwrap_or(t);
    let (digits, shift) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 10),
        Some('m' | 'M') => (&t[..t.len() - 1], 20),
        Some('g' | 'G') => (&t[..t.len() - 1], 30),
        _ => (t, 0),
    };
    let n: u64 = digits
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a size (use e.g. 1048576, 512K, 4M)"))?;
    n.checked_mul(1 << shift).ok_or_else(|| format!("{text:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_binary_suffixes() {
        assert_eq!(parse_bytes("1M"), Ok(1 << 20));
        assert_eq!(parse_bytes("16KiB"), Ok(16 << 10));
        assert_eq!(parse_bytes("100"), Ok(100));
        assert!(parse_bytes("lots").is_err());
    }
}
