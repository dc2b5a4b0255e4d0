//! Every setting of a server, its default, and its validation.
//!
//! [`Config`] is filled by the CLI (from flags and `URING_SERVE_*`
//! environment variables) or by [`crate::Builder`], and checked once by
//! [`Config::validate`] before anything starts: a bad value is a
//! [`ConfigError`] with a message naming the setting, never a panic later.
//! Defaults live in [`defaults`], each with the peer value it follows.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::cores::Cores;
use crate::http::{Limits, MAX_HEADERS_CAP};
use crate::proxy::TrustedProxies;
use crate::tls::TlsSettings;

/// Default values, with what peers use.
pub mod defaults {
    use std::time::Duration;

    /// `--host`: loopback only, as uvicorn.
    pub const HOST: &str = "127.0.0.1";
    /// `--port`: 8000, as uvicorn.
    pub const PORT: u16 = 8000;
    /// `--backlog`: 2048, as uvicorn and gunicorn (per core here: each core
    /// has its own listening socket and accept queue).
    pub const BACKLOG: u32 = 2048;
    /// `--max-body-bytes`: 100 MiB, chosen for what users upload (photos,
    /// documents, short videos), not for what fits in memory: a body is
    /// read as the application asks, so one streamed through costs the
    /// server about one read buffer whatever its size. The bound still
    /// matters to a handler that collects bodies whole (`read_body`): it
    /// holds at most this much per request. Larger uploads are an opt-in
    /// (stream them, and raise the limit). nginx's `client_max_body_size`
    /// is 1 MiB because nginx buffers bodies; uvicorn sets none.
    pub const MAX_BODY_BYTES: u64 = 100 << 20;
    /// `--max-header-bytes`: 16 KiB, as uvicorn's h11 default.
    pub const MAX_HEADER_BYTES: usize = 16 << 10;
    /// `--max-headers`: 100, as hyper and gunicorn.
    pub const MAX_HEADERS: usize = 100;
    /// The `Server` header value.
    pub const SERVER_HEADER: &str = "uring-serve";
    /// `--max-connections`: open connections per core before new ones are
    /// answered 503 (nginx's `worker_connections` is of this order; each
    /// idle connection costs about 250 B of memory here, see
    /// `benches/idle_memory.py`).
    pub const MAX_CONNECTIONS: usize = 10_000;
    /// `--blocking-threads`: threads per core. Starlette gives each uvicorn
    /// worker 40; here every core has its own pool, so 16 per core reaches
    /// 40 at 2.5 cores and stays moderate on large machines. The threads
    /// sleep when idle and are meant for blocking I/O (drivers, files), not
    /// CPU-bound work, which would compete with the cores anyway.
    pub const BLOCKING_THREADS: usize = 16;
    /// `--blocking-queue`: jobs per core waiting for a blocking thread
    /// before new ones are answered 503 (with 5 ms jobs on 16 threads, a
    /// full queue is about 80 ms of waiting).
    pub const BLOCKING_QUEUE: usize = 256;
    /// `--timeout-request-header`: time to send a whole request head (408).
    pub const TIMEOUT_REQUEST_HEADER: Duration = Duration::from_secs(10);
    /// `--timeout-keep-alive`: idle time between requests, as uvicorn.
    pub const TIMEOUT_KEEP_ALIVE: Duration = Duration::from_secs(5);
    /// `--timeout-body`: longest pause while a request body is sent (408);
    /// nginx's `client_body_timeout` is 60 s.
    pub const TIMEOUT_BODY: Duration = Duration::from_secs(30);
    /// `--min-body-rate`: the slowest a request body may arrive, in bytes
    /// per second averaged over 10 s of waiting: 500, as Apache's
    /// `mod_reqtimeout` (`MinRate=500`). A phone on a poor link sends tens
    /// of KB/s; a client under it is a trickle holding a connection.
    pub const MIN_BODY_RATE: u64 = 500;
    /// `--timeout-graceful-shutdown`: how long a stopping server waits for
    /// in-flight requests before it cuts them (gunicorn and actix: 30 s).
    pub const TIMEOUT_GRACEFUL_SHUTDOWN: Duration = Duration::from_secs(30);
    /// `--ws-max-size`: the largest WebSocket message (uvicorn's 16 MiB).
    pub const WS_MAX_SIZE: usize = 16 << 20;
    /// `--ws-ping-interval` and `--ws-ping-timeout`: 20 s each, as uvicorn.
    pub const WS_PING: Duration = Duration::from_secs(20);
    /// The methods the server's answer to `OPTIONS *` allows, unless the
    /// application says which it serves ([`super::OptionsAsterisk`]).
    pub const ALLOW: &str = "GET, HEAD, POST, PUT, PATCH, DELETE";
    /// `--timeout-write`: longest stall of a response write (a client that
    /// does not read); nginx's `send_timeout` is 60 s.
    pub const TIMEOUT_WRITE: Duration = Duration::from_secs(30);
}

/// Longest idle poll accepted: past a few milliseconds polling only burns
/// the core.
pub const MAX_IDLE_POLL: Duration = Duration::from_millis(10);

/// Longest timeout accepted.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// Most blocking jobs one core may have queued and running: glommio's pool
/// channel holds 4096, and a full channel would block the core.
pub const MAX_BLOCKING_JOBS: usize = 4096;

/// The full configuration of a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The cores to run on. Default is [`Cores::All`].
    pub cores: Cores,
    /// The address every core binds (port 0: one free port, chosen once).
    pub addr: SocketAddr,
    /// `listen()` backlog of each core's socket. Default is 2048.
    pub backlog: u32,
    /// Listen even if another server of this user already listens on the
    /// port with `SO_REUSEPORT`: the new and the old server then share the
    /// incoming connections until the old one stops (a zero-downtime
    /// restart). Default is `false`: a port in use is an error.
    pub join_reuseport: bool,
    /// Largest request body. Default is 100 MiB.
    pub max_body_bytes: u64,
    /// Largest request head. Default is 16 KiB.
    pub max_header_bytes: usize,
    /// Most header lines per request. Default is 100.
    pub max_headers: usize,
    /// The `Server` header sent with every response; `None` sends none.
    pub server_header: Option<String>,
    /// Requests in flight per core before new ones get 503 (`None`: no
    /// limit, the default, as uvicorn).
    pub limit_concurrency: Option<usize>,
    /// Open connections per core before new ones get 503. Default 10 000.
    pub max_connections: usize,
    /// Blocking-pool threads per core. Default 16.
    pub blocking_threads: usize,
    /// Blocking jobs waiting per core before new ones get 503. Default 256.
    pub blocking_queue: usize,
    /// Time a client has to send a whole request head. Default 10 s.
    pub timeout_request_header: Duration,
    /// Idle time allowed between requests. Default 5 s.
    pub timeout_keep_alive: Duration,
    /// Longest pause while a request body arrives. Default 30 s.
    pub timeout_body: Duration,
    /// Longest stall of a response write. Default 30 s.
    pub timeout_write: Duration,
    /// The slowest a request body may arrive, in bytes per second averaged
    /// over 10 s of waiting for it (408 below); 0: no minimum. Default 500.
    pub min_body_rate: u64,
    /// How long a stopping server lets in-flight requests finish. Default
    /// 30 s.
    pub timeout_graceful_shutdown: Duration,
    /// WebSocket limits and liveness (see [`WsSettings`]).
    pub ws: WsSettings,
    /// HTTPS: the certificate, key and client-certificate settings
    /// (`--ssl-*`); `None` serves plain HTTP, the default.
    pub tls: Option<TlsSettings>,
    /// How long an idle core keeps polling for work before it sleeps.
    /// Waking a sleeping core costs tens of microseconds of latency and
    /// CPU per wake-up; polling trades that for a core kept busy this long
    /// after each burst of work. Default zero: sleep at once.
    pub idle_poll: Duration,
    /// How each core's socket ring is set up. Default [`RingSetup::Auto`].
    pub ring_setup: RingSetup,
    /// How `OPTIONS *` is answered. Default: by the server, allowing
    /// [`defaults::ALLOW`].
    pub options_asterisk: OptionsAsterisk,
    /// Where to serve Prometheus metrics (`GET /metrics`), on a listener
    /// and thread of their own; `None` (the default) serves none.
    pub metrics: Option<SocketAddr>,
    /// A path the server answers itself, without the application: 200
    /// while serving, 503 from the moment a shutdown begins (for load
    /// balancers and readiness probes). `None` (the default): no such path.
    pub health_path: Option<String>,
    /// How long a stopping server keeps serving (and answering 503 on the
    /// health path) before it stops accepting and drains, so that a load
    /// balancer stops sending first. Default zero.
    pub drain_delay: Duration,
    /// Believe `X-Forwarded-For` and `X-Forwarded-Proto` from the peers in
    /// `forwarded_allow_ips` (see [`crate::Request::client_addr`]). Default
    /// off.
    pub proxy_headers: bool,
    /// The peers trusted with forwarding headers. Default `127.0.0.1`.
    pub forwarded_allow_ips: TrustedProxies,
    /// Where to write one line per response; `None` (the default) writes
    /// none.
    pub access_log: Option<AccessLogTarget>,
    /// The access log's line format. Default text.
    pub log_format: LogFormat,
    /// Listen on a Unix socket at this path instead of `addr` (one socket
    /// for every core).
    pub unix_socket: Option<PathBuf>,
    /// Listen on this inherited descriptor instead of `addr` (`--fd`,
    /// systemd socket activation; one socket for every core).
    pub listen_fd: Option<i32>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            cores: Cores::All,
            addr: SocketAddr::from(([127, 0, 0, 1], defaults::PORT)),
            backlog: defaults::BACKLOG,
            join_reuseport: false,
            max_body_bytes: defaults::MAX_BODY_BYTES,
            max_header_bytes: defaults::MAX_HEADER_BYTES,
            max_headers: defaults::MAX_HEADERS,
            server_header: Some(defaults::SERVER_HEADER.to_string()),
            limit_concurrency: None,
            max_connections: defaults::MAX_CONNECTIONS,
            blocking_threads: defaults::BLOCKING_THREADS,
            blocking_queue: defaults::BLOCKING_QUEUE,
            timeout_request_header: defaults::TIMEOUT_REQUEST_HEADER,
            timeout_keep_alive: defaults::TIMEOUT_KEEP_ALIVE,
            timeout_body: defaults::TIMEOUT_BODY,
            timeout_write: defaults::TIMEOUT_WRITE,
            min_body_rate: defaults::MIN_BODY_RATE,
            timeout_graceful_shutdown: defaults::TIMEOUT_GRACEFUL_SHUTDOWN,
            ws: WsSettings::default(),
            tls: None,
            idle_poll: Duration::ZERO,
            ring_setup: RingSetup::Auto,
            options_asterisk: OptionsAsterisk::Allow(defaults::ALLOW.to_string()),
            metrics: None,
            health_path: None,
            drain_delay: Duration::ZERO,
            proxy_headers: false,
            forwarded_allow_ips: TrustedProxies::default(),
            access_log: None,
            log_format: LogFormat::Text,
            unix_socket: None,
            listen_fd: None,
        }
    }
}

/// How a core's socket ring is set up: the io_uring_setup(2) flags, which
/// decide how a completion reaches a core that sleeps. Every set-up here
/// wakes a sleeping core by a mechanism the man pages promise (see the
/// socket ring's module, `io::ring`); a core checks at start that it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RingSetup {
    /// The first of [`RingSetup::LADDER`] that the kernel accepts and that
    /// passes the start-up wake-up check.
    #[default]
    Auto,
    /// `COOP_TASKRUN | TASKRUN_FLAG | SINGLE_ISSUER` (Linux 6.0): no
    /// interrupt of a core busy in user space, completions are run at its
    /// next system call; one thread submits.
    SingleIssuer,
    /// `COOP_TASKRUN | TASKRUN_FLAG` (Linux 5.19).
    Cooperative,
    /// No flag (Linux 5.8): the kernel interrupts the core to run
    /// completion work.
    Plain,
}

impl RingSetup {
    /// What [`RingSetup::Auto`] tries, in order: each next one runs on
    /// older kernels.
    pub const LADDER: [RingSetup; 3] =
        [RingSetup::SingleIssuer, RingSetup::Cooperative, RingSetup::Plain];

    /// The name used by `--ring-setup` and in logs.
    pub fn name(self) -> &'static str {
        match self {
            RingSetup::Auto => "auto",
            RingSetup::SingleIssuer => "single-issuer",
            RingSetup::Cooperative => "cooperative",
            RingSetup::Plain => "plain",
        }
    }

    /// The set-ups to try for this choice, in order.
    pub fn candidates(self) -> &'static [RingSetup] {
        match self {
            RingSetup::Auto => &RingSetup::LADDER,
            RingSetup::SingleIssuer => &RingSetup::LADDER[0..1],
            RingSetup::Cooperative => &RingSetup::LADDER[1..2],
            RingSetup::Plain => &RingSetup::LADDER[2..3],
        }
    }
}

impl fmt::Display for RingSetup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for RingSetup {
    type Err = String;

    fn from_str(text: &str) -> Result<RingSetup, String> {
        let all = || std::iter::once(RingSetup::Auto).chain(RingSetup::LADDER);
        all().find(|setup| setup.name() == text).ok_or_else(|| {
            let names: Vec<&str> = all().map(RingSetup::name).collect();
            format!("{text:?} is not one of {}", names.join(", "))
        })
    }
}

/// Who answers `OPTIONS *`, a question about the server rather than a
/// resource (asterisk-form, RFC 9112 §3.2.4; RFC 9110 §9.3.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OptionsAsterisk {
    /// The server: `200`, `Content-Length: 0` and `Allow` with these
    /// methods (e.g. `"GET, HEAD"`); the application never sees it.
    Allow(String),
    /// The application, like any other request.
    App,
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
        if self.limit_concurrency == Some(0) {
            return Err(ConfigError::new("--limit-concurrency", "must be at least 1"));
        }
        if self.max_connections == 0 {
            return Err(ConfigError::new("--max-connections", "must be at least 1"));
        }
        if self.blocking_threads == 0 || self.blocking_threads > 1024 {
            return Err(ConfigError::new("--blocking-threads", "must be between 1 and 1024"));
        }
        if self.blocking_threads + self.blocking_queue > MAX_BLOCKING_JOBS {
            return Err(ConfigError::new(
                "--blocking-queue",
                format!("threads + queue must be at most {MAX_BLOCKING_JOBS}"),
            ));
        }
        for (flag, value) in [
            ("--timeout-request-header", self.timeout_request_header),
            ("--timeout-keep-alive", self.timeout_keep_alive),
            ("--timeout-body", self.timeout_body),
            ("--timeout-write", self.timeout_write),
            ("--timeout-graceful-shutdown", self.timeout_graceful_shutdown),
        ] {
            if value.is_zero() || value > MAX_TIMEOUT {
                return Err(ConfigError::new(flag, "must be longer than 0 and at most 1 day"));
            }
        }
        if self.ws.max_size < 125 || self.ws.max_size > (1 << 30) {
            return Err(ConfigError::new("--ws-max-size", "must be between 125 bytes and 1G"));
        }
        if self.ws.ping_interval > MAX_TIMEOUT || self.ws.ping_timeout > MAX_TIMEOUT {
            return Err(ConfigError::new(
                "--ws-ping-interval/--ws-ping-timeout",
                "must be at most 1 day",
            ));
        }
        if let Some(path) = &self.health_path {
            let printable = path.bytes().all(|b| b.is_ascii_graphic());
            if !path.starts_with('/') || !printable || path.len() > 1024 || path.contains('?') {
                return Err(ConfigError::new(
                    "--health-path",
                    "must be a path such as /healthz (no query, spaces or control characters)",
                ));
            }
        }
        if self.drain_delay > MAX_TIMEOUT {
            return Err(ConfigError::new("--drain-delay", "must be at most 1 day"));
        }
        if self.unix_socket.is_some() && self.listen_fd.is_some() {
            return Err(ConfigError::new("--uds", "cannot be used with --fd or socket activation"));
        }
        if self.listen_fd.is_some_and(|fd| fd < 0) {
            return Err(ConfigError::new("--fd", "must be a descriptor number (0 or more)"));
        }
        if self.idle_poll > MAX_IDLE_POLL {
            return Err(ConfigError::new("--idle-poll", "must be at most 10ms"));
        }
        if let OptionsAsterisk::Allow(allow) = &self.options_asterisk {
            if allow.is_empty() || !crate::http::is_valid_header_value(allow) {
                return Err(ConfigError::new(
                    "OPTIONS * answer",
                    "the Allow list must be a header value such as \"GET, HEAD\"",
                ));
            }
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

/// Where access-log lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLogTarget {
    /// The process's standard output.
    Stdout,
    /// A file, appended to (created if missing).
    File(PathBuf),
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Readable text; for the access log, Apache's combined format plus the
    /// duration in microseconds and the core.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// WebSocket limits and liveness, as uvicorn's `--ws-*` settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WsSettings {
    /// The largest message (and frame) accepted; a larger one closes the
    /// connection with 1009. Default 16 MiB.
    pub max_size: usize,
    /// How often the server pings an idle peer; zero: never. Default 20 s.
    pub ping_interval: Duration,
    /// How long a ping may go unanswered before the connection is closed
    /// (1011); zero: forever. Default 20 s.
    pub ping_timeout: Duration,
}

impl Default for WsSettings {
    fn default() -> WsSettings {
        WsSettings {
            max_size: defaults::WS_MAX_SIZE,
            ping_interval: defaults::WS_PING,
            ping_timeout: defaults::WS_PING,
        }
    }
}
