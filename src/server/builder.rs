//! [`Builder`]: every setting of the server, one method each, over a
//! [`Config`]; `serve` is in `start`.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use crate::config::{AccessLogTarget, Config, LogFormat, OptionsAsterisk, RingSetup, WsSettings};
use crate::cores::Cores;
use crate::proxy::TrustedProxies;
use crate::tls::TlsSettings;

/// Configures and starts a server.
///
/// ```no_run
/// use uring_serve::{App, Context, Cores, Request, Response, Server};
///
/// struct Hello;
/// impl App for Hello {
///     async fn call(&self, _req: Request, _cx: &Context) -> Response {
///         Response::text("hello\n")
///     }
/// }
///
/// let server = Server::builder()
///     .cores(Cores::All)
///     .bind("127.0.0.1:8000")
///     .serve(|_core| Hello)?;
/// println!("listening on {}", server.local_addr());
/// server.join()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Builder {
    pub(super) config: Config,
    /// Why `bind` could not resolve its address, reported by `serve`.
    pub(super) bind_error: Option<String>,
}

impl Builder {
    /// A builder with the default configuration.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Replaces the whole configuration.
    pub fn config(mut self, config: Config) -> Builder {
        self.config = config;
        self
    }

    /// The cores to run on. Default is [`Cores::All`].
    pub fn cores(mut self, cores: Cores) -> Builder {
        self.config.cores = cores;
        self
    }

    /// The address to listen on (port 0: a free port, see
    /// [`ServerHandle::local_addr`](crate::ServerHandle::local_addr)). Default is `127.0.0.1:8000`. A name
    /// is resolved now and its first address is used.
    pub fn bind(mut self, addr: impl ToSocketAddrs) -> Builder {
        match addr.to_socket_addrs().map(|mut addrs| addrs.next()) {
            Ok(Some(addr)) => {
                self.config.addr = addr;
                self.bind_error = None;
            }
            Ok(None) => self.bind_error = Some("the address resolves to nothing".to_string()),
            Err(e) => self.bind_error = Some(e.to_string()),
        }
        self
    }

    /// Share the port with a running server of the same user (for a
    /// zero-downtime restart). Default is `false`: a port in use is an error.
    pub fn join_reuseport(mut self, join: bool) -> Builder {
        self.config.join_reuseport = join;
        self
    }

    /// `listen()` backlog of each core's socket. Default is 2048.
    pub fn backlog(mut self, backlog: u32) -> Builder {
        self.config.backlog = backlog;
        self
    }

    /// Largest request body accepted (413 beyond). Default is 100 MiB.
    pub fn max_body_bytes(mut self, bytes: u64) -> Builder {
        self.config.max_body_bytes = bytes;
        self
    }

    /// Largest request head accepted (431 beyond). Default is 16 KiB.
    pub fn max_header_bytes(mut self, bytes: usize) -> Builder {
        self.config.max_header_bytes = bytes;
        self
    }

    /// Most header lines per request (431 beyond). Default is 100.
    pub fn max_headers(mut self, count: usize) -> Builder {
        self.config.max_headers = count;
        self
    }

    /// Requests in flight per core before new ones are answered 503
    /// (`None`: no limit). Default is no limit.
    pub fn limit_concurrency(mut self, limit: Option<usize>) -> Builder {
        self.config.limit_concurrency = limit;
        self
    }

    /// Open connections per core before new ones are answered 503. Default
    /// is 10 000.
    pub fn max_connections(mut self, count: usize) -> Builder {
        self.config.max_connections = count;
        self
    }

    /// Blocking-pool threads per core. Default is 16.
    pub fn blocking_threads(mut self, threads: usize) -> Builder {
        self.config.blocking_threads = threads;
        self
    }

    /// Blocking jobs per core that may wait for a thread before new ones
    /// are refused (503). Default is 256.
    pub fn blocking_queue(mut self, jobs: usize) -> Builder {
        self.config.blocking_queue = jobs;
        self
    }

    /// Time a client has to send a whole request head (408 after). Default
    /// is 10 s.
    pub fn timeout_request_header(mut self, timeout: Duration) -> Builder {
        self.config.timeout_request_header = timeout;
        self
    }

    /// Idle time between requests before a connection is closed. Default
    /// is 5 s.
    pub fn timeout_keep_alive(mut self, timeout: Duration) -> Builder {
        self.config.timeout_keep_alive = timeout;
        self
    }

    /// Longest pause while a request body arrives (408 after). Default is
    /// 30 s.
    pub fn timeout_body(mut self, timeout: Duration) -> Builder {
        self.config.timeout_body = timeout;
        self
    }

    /// The slowest a request body may arrive, in bytes per second averaged
    /// over 10 s of waiting for it (408 and close below); 0: no minimum.
    /// Default is 500. Time the server itself is not reading does not
    /// count.
    pub fn min_body_rate(mut self, bytes_per_second: u64) -> Builder {
        self.config.min_body_rate = bytes_per_second;
        self
    }

    /// Longest stall of a response write (the connection is closed after).
    /// Default is 30 s.
    pub fn timeout_write(mut self, timeout: Duration) -> Builder {
        self.config.timeout_write = timeout;
        self
    }

    /// WebSocket limits and liveness (`--ws-max-size`, `--ws-ping-interval`,
    /// `--ws-ping-timeout`), for `ws::accept`.
    pub fn ws_settings(mut self, settings: WsSettings) -> Builder {
        self.config.ws = settings;
        self
    }

    /// Serves HTTPS (`--ssl-*`): the certificate and key are loaded when
    /// the server starts, and a bad one fails the start.
    pub fn tls(mut self, settings: TlsSettings) -> Builder {
        self.config.tls = Some(settings);
        self
    }

    /// How long a stopping server lets in-flight requests finish before it
    /// cuts them. Default is 30 s.
    pub fn timeout_graceful_shutdown(mut self, timeout: Duration) -> Builder {
        self.config.timeout_graceful_shutdown = timeout;
        self
    }

    /// The `Server` header value; `None` sends none. Default is
    /// `uring-serve`.
    pub fn server_header(mut self, value: Option<&str>) -> Builder {
        self.config.server_header = value.map(str::to_string);
        self
    }

    /// Listens on a Unix socket at `path` instead of the TCP address: one
    /// socket every core accepts from.
    pub fn unix_socket(mut self, path: impl Into<PathBuf>) -> Builder {
        self.config.unix_socket = Some(path.into());
        self
    }

    /// Listens on the inherited listening socket with descriptor `fd`
    /// instead of the TCP address: one socket every core accepts from. The
    /// server takes ownership of the descriptor.
    pub fn listen_fd(mut self, fd: i32) -> Builder {
        self.config.listen_fd = Some(fd);
        self
    }

    /// A path the server answers itself (200 while serving, 503 once a
    /// stop was asked for), without calling the application.
    pub fn health_path(mut self, path: Option<&str>) -> Builder {
        self.config.health_path = path.map(str::to_string);
        self
    }

    /// How long a stopping server keeps serving, its health path already
    /// answering 503, before it stops accepting and drains.
    pub fn drain_delay(mut self, delay: Duration) -> Builder {
        self.config.drain_delay = delay;
        self
    }

    /// Believes `X-Forwarded-For` and `X-Forwarded-Proto` from `trusted`
    /// peers (`None`: never, the default). See
    /// [`Request::client_addr`](crate::Request::client_addr).
    pub fn proxy_headers(mut self, trusted: Option<TrustedProxies>) -> Builder {
        self.config.proxy_headers = trusted.is_some();
        if let Some(trusted) = trusted {
            self.config.forwarded_allow_ips = trusted;
        }
        self
    }

    /// Writes one line per response to `target` (`None`, the default:
    /// none), in `format`.
    pub fn access_log(mut self, target: Option<AccessLogTarget>, format: LogFormat) -> Builder {
        self.config.access_log = target;
        self.config.log_format = format;
        self
    }

    /// How each core's socket ring is set up. Default [`RingSetup::Auto`]:
    /// the first set-up of [`RingSetup::LADDER`] the kernel accepts and that
    /// wakes the core. Naming one makes the start fail
    /// ([`StartError::Ring`](crate::StartError::Ring)) where it does not work.
    pub fn ring_setup(mut self, setup: RingSetup) -> Builder {
        self.config.ring_setup = setup;
        self
    }

    /// Who answers `OPTIONS *`. Default: the server, with `200` and
    /// `Allow: GET, HEAD, POST, PUT, PATCH, DELETE`; say which methods the
    /// application serves with `OptionsAsterisk::Allow("GET, HEAD".into())`,
    /// or hand the request to it with `OptionsAsterisk::App`.
    pub fn options_asterisk(mut self, answer: OptionsAsterisk) -> Builder {
        self.config.options_asterisk = answer;
        self
    }

    /// Serves Prometheus metrics at `addr` (`GET /metrics`), on a listener
    /// and thread of their own. Port 0 picks a free port
    /// ([`ServerHandle::metrics_addr`](crate::ServerHandle::metrics_addr) tells which).
    pub fn metrics(mut self, addr: SocketAddr) -> Builder {
        self.config.metrics = Some(addr);
        self
    }
}
