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
//! This module knows nothing about HTTP: a core's work is
//! `conn::accept_loop` on its listener.

use std::fmt;
use std::io;
use std::net::{Shutdown, SocketAddr, ToSocketAddrs};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, SyncSender};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime};

use glommio::{LocalExecutorBuilder, Placement, PoolPlacement};
use socket2::Socket;
use tracing::{error, info, info_span};

use crate::access_log::{self, AccessLogTarget, AccessLogWriter, Batch, CoreLog, LogFormat};
use crate::app::{App, BoxError, Context};
use crate::blocking::BlockingPool;
use crate::config::{Config, ConfigError, OptionsAsterisk, RingSetup};
use crate::conn::{self, CoreState};
use crate::cores::{self, CoreId, Cores, CoresError};
use crate::http::HttpDate;
use crate::listener::Endpoint;
use crate::metrics::exporter::Exporter;
use crate::metrics::{CoreMetrics, Metrics};
use crate::proxy::TrustedProxies;
use crate::ring;
use crate::{listener, sys};

/// Memory each executor registers with its rings. The runtime does no
/// direct file I/O, so glommio's minimum is plenty and keeps every core far
/// below the default locked-memory limit.
const IO_MEMORY: usize = 64 << 10;

/// Entry point of the library: `Server::builder()...serve(factory)`.
#[derive(Debug)]
pub struct Server;

impl Server {
    /// A builder with the default configuration.
    pub fn builder() -> Builder {
        Builder::new()
    }
}

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
    config: Config,
    bind_error: Option<String>,
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
    /// [`ServerHandle::local_addr`]). Default is `127.0.0.1:8000`. A name
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

    /// Largest request body accepted (413 beyond). Default is 1 MiB.
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
    /// ([`StartError::Ring`]) where it does not work.
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
    /// ([`ServerHandle::metrics_addr`] tells which).
    pub fn metrics(mut self, addr: SocketAddr) -> Builder {
        self.config.metrics = Some(addr);
        self
    }

    /// Starts the server: `factory` runs once on each core and builds that
    /// core's application. Returns when every core is accepting.
    pub fn serve<F, A>(self, factory: F) -> Result<ServerHandle, StartError>
    where
        F: Fn(CoreId) -> A + Send + Sync + 'static,
        A: App,
    {
        if let Some(reason) = self.bind_error {
            return Err(StartError::Config(ConfigError::new("--host/--port", reason)));
        }
        let config = self.config;
        config.validate().map_err(StartError::Config)?;
        let chosen = config.cores.resolve(&cores::allowed()).map_err(StartError::Cores)?;
        sys::check_io_uring().map_err(StartError::IoUring)?;
        sys::ensure_memlock(sys::MIN_MEMLOCK_BYTES).map_err(StartError::Memlock)?;
        // What else listens or writes starts first: should binding fail,
        // dropping them stops them.
        let metrics: Vec<Arc<CoreMetrics>> = chosen.iter().map(|_| Arc::default()).collect();
        let exporter = match config.metrics {
            Some(addr) => {
                let cores = chosen.iter().copied().zip(metrics.iter().cloned()).collect();
                Some(Exporter::start(addr, cores).map_err(|source| bind_error(addr, source))?)
            }
            None => None,
        };
        let access_log = match &config.access_log {
            Some(target) => Some(
                AccessLogWriter::start(target)
                    .map_err(|source| StartError::AccessLog { target: target.clone(), source })?,
            ),
            None => None,
        };
        let count = chosen.len();
        // The socket file we made goes when the server stops; an inherited
        // socket is its manager's.
        let (sockets, endpoint, remove_on_stop) = match (&config.unix_socket, config.listen_fd) {
            (Some(path), _) => listener::bind_unix(path, count, config.backlog)
                .map(|(sockets, made)| (sockets, Endpoint::Unix(path.clone()), Some(made)))
                .map_err(|source| StartError::Listen {
                    on: format!("--uds {}", path.display()),
                    source,
                })?,
            (None, Some(fd)) => listener::inherit(fd, count)
                .map(|(sockets, endpoint)| (sockets, endpoint, None))
                .map_err(|source| StartError::Listen { on: format!("--fd {fd}"), source })?,
            (None, None) => {
                listener::bind_all(config.addr, count, config.backlog, config.join_reuseport)
                    .map(|(sockets, local)| (sockets, Endpoint::Tcp(local), None))
                    .map_err(|source| bind_error(config.addr, source))?
            }
        };
        // An inherited socket is its manager's: it is never shut down.
        let owned = config.listen_fd.is_none();
        let shutdown = ShutdownSignal::new(sockets, owned, config.drain_delay)
            .map_err(|e| StartError::Executor { core: chosen[0], reason: e.to_string() })?;
        let mut handle = ServerHandle {
            endpoint: endpoint.clone(),
            remove_on_stop,
            cores: chosen.clone(),
            threads: Vec::new(),
            shutdown,
            metrics: metrics.clone(),
            exporter,
            access_log,
        };

        let factory = Arc::new(factory);
        let config = Arc::new(config);
        let (ready_tx, ready_rx) = mpsc::channel();
        for (index, &core) in chosen.iter().enumerate() {
            let start = CoreStart {
                core,
                index,
                factory: factory.clone(),
                config: config.clone(),
                shutdown: handle.shutdown.clone(),
                metrics: metrics[index].clone(),
                access_log: handle.access_log.as_ref().and_then(AccessLogWriter::queue),
            };
            let ready = ready_tx.clone();
            let spawned = thread::Builder::new()
                .name(format!("uring-serve-sup-{core}"))
                .spawn(move || supervise_core(Arc::new(start), ready));
            match spawned {
                Ok(thread) => handle.threads.push((core, thread)),
                Err(e) => {
                    return Err(StartError::Executor { core, reason: e.to_string() });
                }
            }
        }
        drop(ready_tx);

        // Every core sends one message, then drops its sender; a core that
        // died before reporting just drops it.
        let mut started = Vec::new();
        let mut failure = None;
        for report in ready_rx {
            match report {
                Ok(started_core) => started.push(started_core),
                Err(e) => {
                    handle.shutdown.stop_now();
                    failure.get_or_insert(e);
                }
            }
        }
        if failure.is_none() {
            if let Some(&core) = chosen.iter().find(|c| !started.iter().any(|(s, _)| s == *c)) {
                failure = Some(StartError::CorePanicked { core });
            }
        }
        if let Some(e) = failure {
            return Err(e); // dropping the handle stops and joins the cores
        }
        listener::note_migrate_req();
        let ids: Vec<usize> = chosen.iter().map(|c| c.get()).collect();
        let ids = cores::format_list(&ids);
        log_configuration(&config, &ids, &ring_setups(&started));
        if let Some(exporter) = &handle.exporter {
            info!("metrics on http://{}/metrics", exporter.local_addr());
        }
        info!("listening on {endpoint} (cores {ids})");
        Ok(handle)
    }
}

/// The start error for a TCP address that cannot be listened on.
fn bind_error(addr: SocketAddr, source: io::Error) -> StartError {
    if source.kind() == io::ErrorKind::AddrInUse {
        StartError::AddrInUse(addr)
    } else {
        StartError::Bind { addr, source }
    }
}

/// The socket-ring set-up the cores chose: one name when they agree (they
/// do unless a kernel wake-up failed on some core only), else per core.
fn ring_setups(started: &[(CoreId, RingSetup)]) -> String {
    match started.first() {
        Some((_, first)) if started.iter().all(|(_, setup)| setup == first) => first.to_string(),
        _ => started
            .iter()
            .map(|(core, setup)| format!("{core}:{setup}"))
            .collect::<Vec<_>>()
            .join(","),
    }
}

/// Logs every limit and timeout the server runs with, at info.
fn log_configuration(config: &Config, cores: &str, ring_setup: &str) {
    info!(
        cores,
        ring_setup,
        backlog = config.backlog,
        max_body_bytes = config.max_body_bytes,
        max_header_bytes = config.max_header_bytes,
        max_headers = config.max_headers,
        limit_concurrency = ?config.limit_concurrency,
        max_connections = config.max_connections,
        blocking_threads = config.blocking_threads,
        blocking_queue = config.blocking_queue,
        timeout_request_header = ?config.timeout_request_header,
        timeout_keep_alive = ?config.timeout_keep_alive,
        timeout_body = ?config.timeout_body,
        timeout_write = ?config.timeout_write,
        min_body_rate = config.min_body_rate,
        timeout_graceful_shutdown = ?config.timeout_graceful_shutdown,
        drain_delay = ?config.drain_delay,
        idle_poll = ?config.idle_poll,
        health_path = ?config.health_path,
        metrics = ?config.metrics,
        proxy_headers = config.proxy_headers,
        forwarded_allow_ips = %config.forwarded_allow_ips,
        access_log = ?config.access_log,
        log_format = ?config.log_format,
        "configuration (every limit is per core)"
    );
}

/// What a core needs to start, and to start again after a crash.
struct CoreStart<F> {
    core: CoreId,
    index: usize,
    factory: Arc<F>,
    config: Arc<Config>,
    shutdown: ShutdownSignal,
    metrics: Arc<CoreMetrics>,
    /// The access log's writer, when there is one.
    access_log: Option<SyncSender<Batch>>,
}

/// Where a core's first start reports to `serve`.
type ReadyReport = mpsc::Sender<Result<(CoreId, RingSetup), StartError>>;

/// First wait before a crashed core is started again; doubled after every
/// crash up to [`MAX_RESTART_BACKOFF`], reset after [`STABLE_RUN`] of
/// uptime, so a crash loop cannot spin.
const FIRST_RESTART_BACKOFF: Duration = Duration::from_millis(100);
const MAX_RESTART_BACKOFF: Duration = Duration::from_secs(10);
const STABLE_RUN: Duration = Duration::from_secs(60);

/// How a core's executor thread ended.
enum CoreExit {
    /// Shutdown, after draining and `on_stop`.
    Stopped,
    /// It never started; the reason went to the start-up report.
    NotStarted,
}

/// Runs one core and starts it again when its executor dies (a panic
/// outside any request: request panics are caught in `conn`). The core's
/// listening socket stays open across a restart, so connections waiting in
/// its accept queue are served by the new executor instead of being reset.
/// The other cores are not affected.
fn supervise_core<F, A>(start: Arc<CoreStart<F>>, ready: ReadyReport)
where
    F: Fn(CoreId) -> A + Send + Sync + 'static,
    A: App,
{
    let core = start.core;
    let mut ready = Some(ready);
    let mut backoff = FIRST_RESTART_BACKOFF;
    loop {
        let attempt = CoreAttempt {
            start: start.clone(),
            ready: ready.take(),
            serving: Arc::new(AtomicBool::new(false)),
        };
        let first = attempt.ready.is_some();
        let serving = attempt.serving.clone();
        let started = Instant::now();
        let executor = thread::Builder::new()
            .name(format!("uring-serve-core-{core}"))
            .spawn(move || run_core(attempt));
        let outcome = match executor {
            Ok(thread) => thread.join(),
            Err(e) => {
                error!(core = core.get(), "cannot start a thread for the core: {e}");
                return;
            }
        };
        let reached_serving = serving.load(Ordering::SeqCst);
        match outcome {
            Ok(CoreExit::Stopped) => return,
            _ if start.shutdown.is_triggered() => return,
            // A first start that failed is reported by `serve` (a dropped
            // sender is a panic while starting).
            _ if first && !reached_serving => return,
            _ => {}
        }
        // The executor died: its connections are gone with it.
        start.metrics.core_restarts.inc();
        start.metrics.connections_open.set(0);
        start.metrics.requests_in_flight.set(0);
        if started.elapsed() >= STABLE_RUN {
            backoff = FIRST_RESTART_BACKOFF;
        }
        error!(core = core.get(), "core {core} stopped unexpectedly; restarting it in {backoff:?}");
        let resume = Instant::now() + backoff;
        while Instant::now() < resume {
            if start.shutdown.is_triggered() {
                return;
            }
            thread::sleep(Duration::from_millis(20).min(resume - Instant::now()));
        }
        backoff = (backoff * 2).min(MAX_RESTART_BACKOFF);
    }
}

/// One run of a core's executor; `ready` is set for the first run only,
/// whose outcome the start-up waits for.
struct CoreAttempt<F> {
    start: Arc<CoreStart<F>>,
    ready: Option<ReadyReport>,
    /// Set once the core accepts connections.
    serving: Arc<AtomicBool>,
}

fn run_core<F, A>(attempt: CoreAttempt<F>) -> CoreExit
where
    F: Fn(CoreId) -> A + Send + Sync + 'static,
    A: App,
{
    let CoreAttempt { start, ready, serving } = attempt;
    let core = start.core;
    let config = start.config.clone();
    let _span = info_span!("core", id = core.get()).entered();
    // The first run reports to `serve`; a restart logs instead.
    let report = move |result: Result<(CoreId, RingSetup), StartError>| match &ready {
        Some(ready) => {
            let _ = ready.send(result);
        }
        None => {
            if let Err(e) = result {
                error!(core = core.get(), "core could not restart: {e}");
            }
        }
    };
    let mut executor = LocalExecutorBuilder::new(Placement::Fixed(core.get()))
        .io_memory(IO_MEMORY)
        .blocking_thread_pool_placement(PoolPlacement::Unbound(config.blocking_threads));
    if !config.idle_poll.is_zero() {
        executor = executor.spin_before_park(config.idle_poll);
    }
    let executor = executor.make();
    let executor = match executor {
        Ok(executor) => executor,
        Err(e) => {
            report(Err(StartError::Executor { core, reason: e.to_string() }));
            return CoreExit::NotStarted;
        }
    };
    executor.run(async move {
        let listener = match listener::adopt(start.shutdown.listener(start.index)) {
            Ok(listener) => listener,
            Err(e) => {
                let reason = format!("cannot adopt the listening socket: {e}");
                report(Err(StartError::Executor { core, reason }));
                return CoreExit::NotStarted;
            }
        };
        let ring = match ring::start(config.ring_setup).await {
            Ok((ring, driver)) => {
                driver.detach();
                ring
            }
            Err(e) => {
                report(Err(StartError::Ring { core, reason: e.to_string() }));
                return CoreExit::NotStarted;
            }
        };
        let setup = ring.setup();
        let pool = BlockingPool::new(config.blocking_threads, config.blocking_queue);
        let cx = Context::new(core, pool, start.metrics.clone());
        let app = (start.factory)(core);
        let access_log = start.access_log.clone().map(|queue| {
            let date = HttpDate::from_system_time(SystemTime::now());
            Rc::new(CoreLog::new(config.log_format, core, queue, start.metrics.clone(), &date))
        });
        let state = Rc::new(CoreState::new(
            app,
            cx,
            &config,
            start.metrics.clone(),
            ring,
            start.shutdown.clone(),
            access_log.clone(),
        ));
        if let Err(error) = state.app.on_start(&state.cx).await {
            report(Err(StartError::AppStart { core, error }));
            return CoreExit::NotStarted;
        }
        glommio::spawn_local(conn::tick_date(state.clone())).detach();
        glommio::spawn_local(conn::sweep_deadlines(state.clone())).detach();
        glommio::spawn_local(conn::start_workers(state.clone())).detach();
        if let Some(log) = &access_log {
            glommio::spawn_local(access_log::flush_every_tick(log.clone())).detach();
        }
        serving.store(true, Ordering::SeqCst);
        report(Ok((core, setup)));
        drop(report);
        conn::accept_loop(listener, state.clone()).await;
        conn::drain(&state, config.timeout_graceful_shutdown).await;
        state.app.on_stop(&state.cx).await;
        if let Some(log) = &access_log {
            log.flush_last();
        }
        CoreExit::Stopped
    })
}

/// A running server.
///
/// Dropping the handle stops the server and waits for its cores, as
/// [`ServerHandle::shutdown`] followed by [`ServerHandle::join`] does.
#[derive(Debug)]
pub struct ServerHandle {
    endpoint: Endpoint,
    /// The identity (device, inode) of the Unix socket file this server
    /// made at `endpoint`: removed at the stop if it is still that file.
    remove_on_stop: Option<(u64, u64)>,
    cores: Vec<CoreId>,
    threads: Vec<(CoreId, JoinHandle<()>)>,
    shutdown: ShutdownSignal,
    metrics: Vec<Arc<CoreMetrics>>,
    exporter: Option<Exporter>,
    access_log: Option<AccessLogWriter>,
}

impl ServerHandle {
    /// Where the metrics listener answers (`--metrics`), with the port it
    /// resolved to.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.exporter.as_ref().map(Exporter::local_addr)
    }

    /// A reading of every core's counters, in the order of [`Self::cores`].
    pub fn metrics(&self) -> Vec<Metrics> {
        self.cores.iter().zip(&self.metrics).map(|(&core, m)| m.snapshot(core)).collect()
    }

    /// The address the server listens on, with the port it resolved to.
    /// On a Unix socket it is the unspecified address `0.0.0.0:0`: see
    /// [`ServerHandle::endpoint`].
    pub fn local_addr(&self) -> SocketAddr {
        match &self.endpoint {
            Endpoint::Tcp(addr) => *addr,
            Endpoint::Unix(_) => SocketAddr::from(([0, 0, 0, 0], 0)),
        }
    }

    /// Where clients reach the server: a TCP address or a Unix socket.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The cores the server runs on.
    pub fn cores(&self) -> &[CoreId] {
        &self.cores
    }

    /// Stops the server gracefully: every core stops accepting at once,
    /// closes its idle connections, lets in-flight requests finish (their
    /// responses carry `Connection: close`) for up to the graceful-shutdown
    /// timeout, cuts what is left, runs its application's `on_stop` and
    /// ends. Returns at once; [`ServerHandle::join`] waits for the end.
    pub fn shutdown(&self) {
        self.shutdown.trigger();
    }

    /// A handle that can stop the server from another thread (a signal
    /// handler, say) while this one waits in [`ServerHandle::join`].
    pub fn shutdown_signal(&self) -> ShutdownSignal {
        self.shutdown.clone()
    }

    /// Waits until every core has stopped.
    pub fn join(mut self) -> Result<(), JoinError> {
        self.join_threads()
    }

    fn join_threads(&mut self) -> Result<(), JoinError> {
        let panicked: Vec<CoreId> = self
            .threads
            .drain(..)
            .filter_map(|(core, thread)| thread.join().is_err().then_some(core))
            .collect();
        if let Some(mut exporter) = self.exporter.take() {
            exporter.stop();
        }
        if let Some(mut access_log) = self.access_log.take() {
            access_log.finish();
        }
        if let (Some(made), Endpoint::Unix(path)) = (self.remove_on_stop.take(), &self.endpoint) {
            listener::remove_unix(path, made);
        }
        if panicked.is_empty() {
            Ok(())
        } else {
            Err(JoinError { cores: panicked })
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        // Whatever a join has not ended yet.
        let owns_more = self.exporter.is_some() || self.access_log.is_some();
        if !self.threads.is_empty() || owns_more || self.remove_on_stop.is_some() {
            self.shutdown.trigger();
            let _ = self.join_threads();
        }
    }
}

/// Stops a server from any thread. Cloning it is cheap.
#[derive(Debug, Clone)]
pub struct ShutdownSignal {
    inner: Arc<ShutdownInner>,
}

#[derive(Debug)]
struct ShutdownInner {
    /// A stop was asked for: the health path answers 503.
    asked: AtomicBool,
    /// How long to keep serving after a stop was asked for.
    drain_delay: Duration,
    /// The cores were told to stop accepting and drain.
    triggered: AtomicBool,
    /// Readable once the cores must stop accepting: what wakes an accept
    /// that waits on a socket this server does not own.
    wake: OwnedFd,
    /// Whether the listening sockets are this server's (not inherited).
    owned: bool,
    /// The cores' listening sockets (each core accepts on a duplicate).
    listeners: Vec<Socket>,
}

impl ShutdownSignal {
    fn new(listeners: Vec<Socket>, owned: bool, drain_delay: Duration) -> io::Result<Self> {
        Ok(ShutdownSignal {
            inner: Arc::new(ShutdownInner {
                asked: AtomicBool::new(false),
                drain_delay,
                triggered: AtomicBool::new(false),
                wake: sys::eventfd()?,
                owned,
                listeners,
            }),
        })
    }

    /// Stops accepting at once, drain delay or not (a start that failed).
    pub(crate) fn stop_now(&self) {
        self.inner.asked.store(true, Ordering::SeqCst);
        self.stop_accepting();
    }

    /// The eventfd that becomes readable when the cores must stop
    /// accepting.
    pub(crate) fn wake_fd(&self) -> RawFd {
        self.inner.wake.as_raw_fd()
    }

    fn listener(&self, index: usize) -> &Socket {
        &self.inner.listeners[index]
    }

    /// Asks every core to stop: at once, or after the drain delay
    /// (`--drain-delay`), during which the cores serve as before but the
    /// health path answers 503. Returns at once.
    pub fn trigger(&self) {
        if self.inner.asked.swap(true, Ordering::SeqCst) {
            return;
        }
        if self.inner.drain_delay.is_zero() {
            return self.stop_accepting();
        }
        let delayed = self.clone();
        let spawned =
            thread::Builder::new().name("uring-serve-drain-delay".into()).spawn(move || {
                thread::sleep(delayed.inner.drain_delay);
                delayed.stop_accepting();
            });
        if spawned.is_err() {
            self.stop_accepting();
        }
    }

    /// Whether a stop was asked for, the drain delay included: what the
    /// health path reports.
    pub(crate) fn is_asked(&self) -> bool {
        self.inner.asked.load(Ordering::Relaxed)
    }

    /// Tells every core to stop accepting and drain: the wake eventfd
    /// ends the accept each core waits in. A socket of this server's own is
    /// also shut down, which hands connections still queued in it to the
    /// other listeners of its `SO_REUSEPORT` group (`tcp_migrate_req`); an
    /// inherited one is left as it is, for its manager to hand over again.
    fn stop_accepting(&self) {
        if !self.inner.triggered.swap(true, Ordering::SeqCst) {
            if self.inner.owned {
                for socket in &self.inner.listeners {
                    let _ = socket.shutdown(Shutdown::Read);
                }
            }
            sys::signal_eventfd(&self.inner.wake);
        }
    }

    /// Whether a stop was asked for.
    pub fn is_triggered(&self) -> bool {
        self.inner.triggered.load(Ordering::SeqCst)
    }
}

/// Why a server could not start. Every variant is a problem of the
/// configuration or the machine, with a message saying what to change.
#[derive(Debug)]
#[non_exhaustive]
pub enum StartError {
    /// A setting has a value the server cannot run with.
    Config(ConfigError),
    /// The cores asked for cannot be used.
    Cores(CoresError),
    /// Another process listens on the address.
    AddrInUse(SocketAddr),
    /// The address cannot be bound (not local, privileged port, ...).
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What the kernel said.
        source: io::Error,
    },
    /// io_uring cannot be used by this process.
    IoUring(String),
    /// The locked-memory limit is too low.
    Memlock(String),
    /// A core's executor could not start.
    Executor {
        /// The core.
        core: CoreId,
        /// Why.
        reason: String,
    },
    /// The application's `on_start` failed on a core.
    AppStart {
        /// The core.
        core: CoreId,
        /// The application's error.
        error: BoxError,
    },
    /// The Unix socket or the inherited socket cannot be listened on.
    Listen {
        /// Which (`--uds PATH`, `--fd N`).
        on: String,
        /// What the system said.
        source: io::Error,
    },
    /// The access log cannot be opened.
    AccessLog {
        /// Where it was to be written.
        target: AccessLogTarget,
        /// What the system said.
        source: io::Error,
    },
    /// No socket-ring set-up works on a core: the kernel refuses each one
    /// tried, or a completion does not wake the core.
    Ring {
        /// The core.
        core: CoreId,
        /// What was tried, and why each failed.
        reason: String,
    },
    /// A core panicked while starting (in the application factory, say).
    CorePanicked {
        /// The core.
        core: CoreId,
    },
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Config(e) => write!(f, "{e}"),
            StartError::Cores(e) => write!(f, "--cores: {e}"),
            StartError::AddrInUse(addr) => write!(
                f,
                "address {addr} is already in use (another server listens on port {})",
                addr.port()
            ),
            StartError::Bind { addr, source } => write!(f, "cannot listen on {addr}: {source}"),
            StartError::Listen { on, source } => write!(f, "{on}: cannot listen: {source}"),
            StartError::IoUring(why) | StartError::Memlock(why) => f.write_str(why),
            StartError::AccessLog { target: AccessLogTarget::File(path), source } => {
                write!(f, "--access-log: cannot open {}: {source}", path.display())
            }
            StartError::AccessLog { target: AccessLogTarget::Stdout, source } => {
                write!(f, "--access-log: cannot write to standard output: {source}")
            }
            StartError::Executor { core, reason } => {
                write!(f, "core {core}: the executor could not start: {reason}")
            }
            StartError::AppStart { core, error } => {
                write!(f, "core {core}: the application failed to start: {error}")
            }
            StartError::Ring { core, reason } => write!(f, "core {core}: {reason}"),
            StartError::CorePanicked { core } => write!(f, "core {core} panicked while starting"),
        }
    }
}

impl std::error::Error for StartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StartError::Config(e) => Some(e),
            StartError::Cores(e) => Some(e),
            StartError::Bind { source, .. }
            | StartError::Listen { source, .. }
            | StartError::AccessLog { source, .. } => Some(source),
            StartError::AppStart { error, .. } => Some(error.as_ref()),
            _ => None,
        }
    }
}

/// Cores that stopped with a panic instead of a shutdown.
#[derive(Debug)]
pub struct JoinError {
    cores: Vec<CoreId>,
}

impl JoinError {
    /// The cores that panicked.
    pub fn cores(&self) -> &[CoreId] {
        &self.cores
    }
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<usize> = self.cores.iter().map(|c| c.get()).collect();
        write!(f, "core(s) {} stopped after a panic", cores::format_list(&ids))
    }
}

impl std::error::Error for JoinError {}
