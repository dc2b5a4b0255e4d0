//! The command line of the `uring-serve` binary: clap definitions, each flag
//! also read from a `URING_SERVE_*` environment variable, turned into a
//! [`Config`]. No other logic lives here.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::config::{
    defaults, AccessLogTarget, Config, ConfigError, LogFormat, RingSetup, WsSettings,
};
use crate::cores::Cores;
use crate::tls::{ClientCerts, TlsSettings, TlsVersion};

/// An io_uring, thread-per-core HTTP/1.1 server. Serves the built-in `bench`
/// application (/plaintext, /json, /echo, /sleep?ms=N), or with --static DIR
/// the files of a directory.
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

    /// Listen on a Unix socket at PATH instead of --host/--port (one socket
    /// for every core; see README).
    #[arg(long, env = "URING_SERVE_UDS", value_name = "PATH", help_heading = "Cores and sockets")]
    pub uds: Option<std::path::PathBuf>,

    /// Listen on the inherited socket with descriptor N instead of
    /// --host/--port (systemd's LISTEN_FDS is used without this flag).
    #[arg(long, env = "URING_SERVE_FD", value_name = "N", help_heading = "Cores and sockets")]
    pub fd: Option<i32>,

    /// Pending-connection queue of each core's listening socket (capped by
    /// net.core.somaxconn).
    #[arg(long, env = "URING_SERVE_BACKLOG", default_value_t = defaults::BACKLOG, help_heading = "Cores and sockets")]
    pub backlog: u32,

    /// Share the port with a running uring-serve of the same user instead of
    /// failing with "address in use": for a zero-downtime restart, start the
    /// new server with this flag, then SIGTERM the old one (see README).
    #[arg(long, env = "URING_SERVE_JOIN_REUSEPORT", help_heading = "Cores and sockets")]
    pub join_reuseport: bool,

    /// Largest request body; bigger ones get 413. Accepts K, M, G suffixes
    /// (powers of 1024).
    #[arg(long, env = "URING_SERVE_MAX_BODY_BYTES", default_value = "100M", value_parser = parse_bytes, help_heading = "Limits")]
    pub max_body_bytes: u64,

    /// Largest request head (request line and headers); bigger ones get 431
    /// (414 when the request line alone is too long).
    #[arg(long, env = "URING_SERVE_MAX_HEADER_BYTES", default_value = "16K", value_parser = parse_bytes, help_heading = "Limits")]
    pub max_header_bytes: u64,

    /// Most header lines in a request; more get 431.
    #[arg(long, env = "URING_SERVE_MAX_HEADERS", default_value_t = defaults::MAX_HEADERS, help_heading = "Limits")]
    pub max_headers: usize,

    /// Requests in flight per core; past it a request is answered 503 with
    /// Retry-After at once, without calling the application (default: no
    /// limit). Idle keep-alive connections do not count.
    #[arg(long, env = "URING_SERVE_LIMIT_CONCURRENCY", help_heading = "Overload")]
    pub limit_concurrency: Option<usize>,

    /// Open connections per core; past it a new connection is answered 503
    /// and closed.
    #[arg(long, env = "URING_SERVE_MAX_CONNECTIONS", default_value_t = defaults::MAX_CONNECTIONS, help_heading = "Overload")]
    pub max_connections: usize,

    /// Threads per core for blocking work (`cx.blocking`).
    #[arg(long, env = "URING_SERVE_BLOCKING_THREADS", default_value_t = defaults::BLOCKING_THREADS, help_heading = "Overload")]
    pub blocking_threads: usize,

    /// Blocking jobs per core that may wait for a thread; past it the
    /// request is answered 503.
    #[arg(long, env = "URING_SERVE_BLOCKING_QUEUE", default_value_t = defaults::BLOCKING_QUEUE, help_heading = "Overload")]
    pub blocking_queue: usize,

    /// Time to send a whole request head; then 408 and close (slowloris).
    /// Durations: `10`, `10s`, `500ms`, `1m`.
    #[arg(long, env = "URING_SERVE_TIMEOUT_REQUEST_HEADER", default_value = "10s", value_parser = parse_duration, help_heading = "Timeouts")]
    pub timeout_request_header: Duration,

    /// Idle time between requests before a keep-alive connection is closed.
    #[arg(long, env = "URING_SERVE_TIMEOUT_KEEP_ALIVE", default_value = "5s", value_parser = parse_duration, help_heading = "Timeouts")]
    pub timeout_keep_alive: Duration,

    /// Longest pause while a request body arrives; then 408 and close.
    #[arg(long, env = "URING_SERVE_TIMEOUT_BODY", default_value = "30s", value_parser = parse_duration, help_heading = "Timeouts")]
    pub timeout_body: Duration,

    /// The slowest a request body may arrive, in bytes per second averaged
    /// over 10 s of waiting for it (e.g. `500`, `1K`); slower is 408 and
    /// close. `0`: no minimum.
    #[arg(long, env = "URING_SERVE_MIN_BODY_RATE", default_value = "500", value_parser = parse_bytes, help_heading = "Timeouts")]
    pub min_body_rate: u64,

    /// Longest stall while writing a response (a client that does not
    /// read); then the connection is closed.
    #[arg(long, env = "URING_SERVE_TIMEOUT_WRITE", default_value = "30s", value_parser = parse_duration, help_heading = "Timeouts")]
    pub timeout_write: Duration,

    /// On SIGTERM/SIGINT: how long in-flight requests may run to completion
    /// before they are cut (a second SIGINT exits at once).
    #[arg(long, env = "URING_SERVE_TIMEOUT_GRACEFUL_SHUTDOWN", default_value = "30s", value_parser = parse_duration, help_heading = "Timeouts")]
    pub timeout_graceful_shutdown: Duration,

    /// The largest WebSocket message; a larger one closes the connection
    /// (1009). Accepts K, M, G suffixes.
    #[arg(long, env = "URING_SERVE_WS_MAX_SIZE", default_value = "16M", value_parser = parse_bytes, help_heading = "WebSocket")]
    pub ws_max_size: u64,

    /// Serve HTTPS with this certificate chain (PEM, the server's
    /// certificate first); needs --ssl-keyfile.
    #[arg(long, env = "URING_SERVE_SSL_CERTFILE", value_name = "FILE", help_heading = "TLS")]
    pub ssl_certfile: Option<PathBuf>,

    /// The certificate's private key (PEM: PKCS#8, RSA or EC).
    #[arg(long, env = "URING_SERVE_SSL_KEYFILE", value_name = "FILE", help_heading = "TLS")]
    pub ssl_keyfile: Option<PathBuf>,

    /// The CAs that client certificates are verified against (PEM).
    #[arg(long, env = "URING_SERVE_SSL_CA_CERTS", value_name = "FILE", help_heading = "TLS")]
    pub ssl_ca_certs: Option<PathBuf>,

    /// Client certificates: 0/none (not asked for), 1/optional (verified
    /// when sent), 2/required (a client without a valid one is refused).
    #[arg(long, env = "URING_SERVE_SSL_CERT_REQS", default_value = "0", help_heading = "TLS")]
    pub ssl_cert_reqs: ClientCerts,

    /// The cipher suites offered, most preferred first, comma-separated
    /// (e.g. TLS13_AES_128_GCM_SHA256,TLS13_AES_256_GCM_SHA384); default:
    /// rustls's (AES-GCM and ChaCha20-Poly1305).
    #[arg(
        long,
        env = "URING_SERVE_SSL_CIPHERS",
        value_name = "LIST",
        value_delimiter = ',',
        help_heading = "TLS"
    )]
    pub ssl_ciphers: Vec<String>,

    /// The oldest TLS version accepted: 1.2 or 1.3.
    #[arg(long, env = "URING_SERVE_SSL_MIN_VERSION", default_value = "1.2", help_heading = "TLS")]
    pub ssl_min_version: TlsVersion,

    /// How often an idle WebSocket is pinged (0: never).
    #[arg(long, env = "URING_SERVE_WS_PING_INTERVAL", default_value = "20s", value_parser = parse_duration, help_heading = "WebSocket")]
    pub ws_ping_interval: Duration,

    /// How long a ping may go unanswered before the WebSocket is closed
    /// (1011; 0: forever).
    #[arg(long, env = "URING_SERVE_WS_PING_TIMEOUT", default_value = "20s", value_parser = parse_duration, help_heading = "WebSocket")]
    pub ws_ping_timeout: Duration,

    /// How long an idle core keeps polling for work before it sleeps, e.g.
    /// `50us`: lower latency when requests are sparse, paid for in CPU (the
    /// core stays busy that long after each burst). At most 10ms; default 0,
    /// sleep at once.
    #[arg(long, env = "URING_SERVE_IDLE_POLL", default_value = "0", value_parser = parse_duration, help_heading = "Cores and sockets")]
    pub idle_poll: Duration,

    /// How each core's io_uring is set up: `auto` (the first of the others
    /// that the kernel accepts and that wakes the core), `single-issuer`
    /// (Linux 6.0), `cooperative` (5.19) or `plain` (5.8).
    #[arg(long, env = "URING_SERVE_RING_SETUP", default_value = "auto", value_parser = parse_ring_setup, help_heading = "Cores and sockets")]
    pub ring_setup: RingSetup,

    /// Serve Prometheus metrics at http://ADDR/metrics (e.g.
    /// `127.0.0.1:9090`), on a listener and thread of their own.
    #[arg(long, env = "URING_SERVE_METRICS", value_name = "ADDR", help_heading = "Operations")]
    pub metrics: Option<String>,

    /// A path answered by the server itself, without the application:
    /// 200 while serving, 503 once a shutdown began (e.g. `/healthz`).
    #[arg(long, env = "URING_SERVE_HEALTH_PATH", value_name = "PATH", help_heading = "Operations")]
    pub health_path: Option<String>,

    /// On SIGTERM/SIGINT, keep serving this long (the health path already
    /// answers 503) before accepting stops and the drain begins, so a load
    /// balancer stops sending first.
    #[arg(long, env = "URING_SERVE_DRAIN_DELAY", default_value = "0", value_parser = parse_duration, help_heading = "Operations")]
    pub drain_delay: Duration,

    /// Take the client's address from `X-Forwarded-For` and the scheme from
    /// `X-Forwarded-Proto`, from trusted peers only (--forwarded-allow-ips).
    #[arg(long, env = "URING_SERVE_PROXY_HEADERS", help_heading = "Operations")]
    pub proxy_headers: bool,

    /// Peers trusted with forwarding headers: addresses, networks
    /// (`10.0.0.0/8`) or `*`, comma-separated.
    #[arg(
        long,
        env = "URING_SERVE_FORWARDED_ALLOW_IPS",
        default_value = "127.0.0.1",
        value_name = "LIST",
        help_heading = "Operations"
    )]
    pub forwarded_allow_ips: String,

    /// Serve the files of DIR (GET and HEAD) instead of the bench
    /// application.
    #[arg(
        long = "static",
        env = "URING_SERVE_STATIC",
        value_name = "DIR",
        help_heading = "Applications"
    )]
    pub static_dir: Option<std::path::PathBuf>,

    /// With --static: also serve names starting with a dot (`.well-known`,
    /// but also `.git`, `.env`).
    #[arg(long, env = "URING_SERVE_STATIC_HIDDEN", help_heading = "Applications")]
    pub static_hidden: bool,

    /// With --static: answer a directory without index.html with an HTML
    /// listing of its files (at most 10 000 entries) instead of 404.
    #[arg(long, env = "URING_SERVE_STATIC_LISTING", help_heading = "Applications")]
    pub static_listing: bool,

    /// Log level: error, warn, info, debug or trace. RUST_LOG, when set,
    /// takes precedence with a full filter (e.g. `uring_serve=debug`).
    #[arg(long, env = "URING_SERVE_LOG_LEVEL", default_value = "info", value_parser = ["error", "warn", "info", "debug", "trace"], help_heading = "Logging")]
    pub log_level: String,

    /// Write one line per response to PATH, or to standard output without
    /// a value (`--access-log`). Off by default: see README.
    #[arg(long, env = "URING_SERVE_ACCESS_LOG", value_name = "PATH", num_args = 0..=1, default_missing_value = "-", help_heading = "Logging")]
    pub access_log: Option<String>,

    /// Log lines as `text`, or `json` (one object per line, for log
    /// shippers); the access log follows.
    #[arg(long, env = "URING_SERVE_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"], help_heading = "Logging")]
    pub log_format: String,
}

impl Cli {
    /// The configuration these flags describe.
    pub fn to_config(&self) -> Result<Config, ConfigError> {
        if self.static_dir.is_none() {
            for (flag, set) in
                [("--static-hidden", self.static_hidden), ("--static-listing", self.static_listing)]
            {
                if set {
                    return Err(ConfigError::new(flag, "needs --static DIR"));
                }
            }
        }
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
        let metrics = self.metrics.as_deref().map(|addr| resolve("--metrics", addr)).transpose()?;
        let tls = match (&self.ssl_certfile, &self.ssl_keyfile) {
            (Some(certfile), Some(keyfile)) => Some(TlsSettings {
                certfile: certfile.clone(),
                keyfile: keyfile.clone(),
                ca_certs: self.ssl_ca_certs.clone(),
                client_certs: self.ssl_cert_reqs,
                min_version: self.ssl_min_version,
                ciphers: self.ssl_ciphers.clone(),
            }),
            (None, None) => None,
            (Some(_), None) => {
                return Err(ConfigError::new("--ssl-certfile", "needs --ssl-keyfile too"))
            }
            (None, Some(_)) => {
                return Err(ConfigError::new("--ssl-keyfile", "needs --ssl-certfile too"))
            }
        };
        let config = Config {
            cores,
            addr,
            backlog: self.backlog,
            join_reuseport: self.join_reuseport,
            max_body_bytes: self.max_body_bytes,
            max_header_bytes,
            max_headers: self.max_headers,
            limit_concurrency: self.limit_concurrency,
            max_connections: self.max_connections,
            blocking_threads: self.blocking_threads,
            blocking_queue: self.blocking_queue,
            timeout_request_header: self.timeout_request_header,
            timeout_keep_alive: self.timeout_keep_alive,
            timeout_body: self.timeout_body,
            timeout_write: self.timeout_write,
            min_body_rate: self.min_body_rate,
            timeout_graceful_shutdown: self.timeout_graceful_shutdown,
            ws: WsSettings {
                max_size: usize::try_from(self.ws_max_size).unwrap_or(usize::MAX),
                ping_interval: self.ws_ping_interval,
                ping_timeout: self.ws_ping_timeout,
            },
            tls,
            idle_poll: self.idle_poll,
            ring_setup: self.ring_setup,
            metrics,
            health_path: self.health_path.clone(),
            drain_delay: self.drain_delay,
            proxy_headers: self.proxy_headers,
            access_log: self.access_log.as_deref().map(|path| match path {
                "-" => AccessLogTarget::Stdout,
                path => AccessLogTarget::File(path.into()),
            }),
            unix_socket: self.uds.clone(),
            listen_fd: self.fd.or_else(|| {
                if self.uds.is_none() {
                    crate::io::listener::systemd_fd()
                } else {
                    None
                }
            }),
            log_format: self.log_format(),
            forwarded_allow_ips: self
                .forwarded_allow_ips
                .parse()
                .map_err(|e| ConfigError::new("--forwarded-allow-ips", e))?,
            ..Config::default()
        };
        config.validate()?;
        Ok(config)
    }
}

impl Cli {
    /// The format of log lines and access-log lines.
    pub fn log_format(&self) -> LogFormat {
        if self.log_format == "json" {
            LogFormat::Json
        } else {
            LogFormat::Text
        }
    }
}

/// The first address `addr` (`HOST:PORT`) resolves to.
fn resolve(flag: &'static str, addr: &str) -> Result<SocketAddr, ConfigError> {
    addr.to_socket_addrs()
        .map_err(|e| ConfigError::new(flag, format!("{addr:?} is not HOST:PORT ({e})")))?
        .next()
        .ok_or_else(|| ConfigError::new(flag, format!("{addr:?} resolves to no address")))
}

fn parse_ring_setup(text: &str) -> Result<RingSetup, String> {
    text.parse()
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

/// Parses `10` (seconds), `10s`, `500ms`, `50us`, `1.5s`, `2m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (number, unit) = match t.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => (&t[..i], &t[i..]),
        None => (t, "s"),
    };
    let seconds_per_unit = match unit {
        "us" => 0.000_001,
        "ms" => 0.001,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return Err(format!("{text:?}: unknown unit (use us, ms, s, m or h)")),
    };
    let n: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (use e.g. 5s, 500ms)"))?;
    Duration::try_from_secs_f64(n * seconds_per_unit)
        .map_err(|_| format!("{text:?} is out of range"))
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

    #[test]
    fn durations_take_units() {
        assert_eq!(parse_duration("5"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("50us"), Ok(Duration::from_micros(50)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("5 parsecs").is_err());
    }
}
