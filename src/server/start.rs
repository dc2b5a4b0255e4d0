//! [`Builder::serve`]: validates the configuration, checks the kernel,
//! binds the listeners, starts one supervised thread per core and waits
//! until every core reports ready (or one fails).

use std::io;
use std::net::SocketAddr;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::SystemTime;

use tracing::{info, warn};

use super::supervise::{supervise_core, CoreStart};
use super::{Builder, ServerHandle, StartError};
use crate::access_log::AccessLogWriter;
use crate::app::App;
use crate::config::{Config, ConfigError, RingSetup};
use crate::cores::{self, CoreId};
use crate::io::listener::{self, Endpoint};
use crate::io::sys;
use crate::metrics::exporter::Exporter;
use crate::metrics::CoreMetrics;
use crate::shutdown::ShutdownSignal;
use crate::tls::{TlsConfig, TlsSettings, EXPIRY_WARNING};

impl Builder {
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
        let tls = config.tls.as_ref().map(load_tls).transpose()?;
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
            tls: tls.clone(),
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
                tls: tls.clone(),
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
        match (&endpoint, &handle.tls) {
            (Endpoint::Tcp(addr), Some(_)) => info!("listening on https://{addr} (cores {ids})"),
            (endpoint, Some(_)) => info!("listening on {endpoint}, TLS (cores {ids})"),
            (endpoint, None) => info!("listening on {endpoint} (cores {ids})"),
        }
        Ok(handle)
    }
}

/// The start error for a TCP address that cannot be listened on.
/// Loads the TLS configuration; a certificate that expires soon is a
/// warning.
fn load_tls(settings: &TlsSettings) -> Result<TlsConfig, StartError> {
    let tls = TlsConfig::load(settings).map_err(StartError::Tls)?;
    if let Some(expires) = tls.expires() {
        let file = settings.certfile.display();
        let date = httpdate::fmt_http_date(expires);
        match expires.duration_since(SystemTime::now()) {
            Err(_) => warn!("--ssl-certfile {file}: the certificate expired on {date}"),
            Ok(left) if left < EXPIRY_WARNING => {
                warn!("--ssl-certfile {file}: the certificate expires soon, on {date}")
            }
            Ok(_) => {}
        }
    }
    Ok(tls)
}

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
