//! A core's thread: runs its executor and starts it again, after a
//! backoff, when it dies outside any request; the first run reports to
//! `serve` whether the core started.

use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, SyncSender};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use glommio::{LocalExecutorBuilder, Placement, PoolPlacement};
use tracing::{error, info_span};

use super::StartError;
use crate::access_log::{self, Batch, CoreLog};
use crate::app::{App, Context};
use crate::blocking::BlockingPool;
use crate::config::{Config, RingSetup};
use crate::conn::Shared;
use crate::core::{self, CoreState};
use crate::cores::CoreId;
use crate::http::HttpDate;
use crate::io::socket::RingSocket;
use crate::io::tls::{TlsSetup, TlsSocket};
use crate::io::transport::AcceptedTransport;
use crate::io::{listener, ring};
use crate::metrics::CoreMetrics;
use crate::shutdown::ShutdownSignal;
use crate::tls::TlsConfig;

/// Memory each executor registers with its rings. The runtime does no
/// direct file I/O, so glommio's minimum is plenty and keeps every core far
/// below the default locked-memory limit.
const IO_MEMORY: usize = 64 << 10;

/// What a core needs to start, and to start again after a crash.
pub(super) struct CoreStart<F> {
    pub(super) core: CoreId,
    pub(super) index: usize,
    pub(super) factory: Arc<F>,
    pub(super) config: Arc<Config>,
    pub(super) shutdown: ShutdownSignal,
    pub(super) metrics: Arc<CoreMetrics>,
    /// The access log's writer, when there is one.
    pub(super) access_log: Option<SyncSender<Batch>>,
    /// The TLS configuration, when the server speaks HTTPS.
    pub(super) tls: Option<TlsConfig>,
}

/// Where a core's first start reports to `serve`.
pub(super) type ReadyReport = mpsc::Sender<Result<(CoreId, RingSetup), StartError>>;

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
pub(super) fn supervise_core<F, A>(start: Arc<CoreStart<F>>, ready: ReadyReport)
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
        let cx = Context::new(core, pool, start.metrics.clone(), config.ws);
        let app = (start.factory)(core);
        let access_log = start.access_log.clone().map(|queue| {
            let date = HttpDate::from_system_time(SystemTime::now());
            Rc::new(CoreLog::new(config.log_format, core, queue, start.metrics.clone(), &date))
        });
        let shared = Shared::new(
            app,
            cx,
            &config,
            start.metrics.clone(),
            start.shutdown.clone(),
            access_log.clone(),
        );
        let run = CoreRun { core, config: &config, report, serving: &serving, setup };
        match &start.tls {
            None => serve_core::<A, RingSocket>(shared, ring, listener, (), run).await,
            Some(tls) => {
                let setup = TlsSetup {
                    config: tls.for_core(),
                    counters: start.metrics.tls.clone(),
                    send_limit: config.timeout_write,
                };
                serve_core::<A, TlsSocket>(shared, ring, listener, setup, run).await
            }
        }
    })
}

/// What [`serve_core`] needs besides the core's state.
struct CoreRun<'a, R> {
    core: CoreId,
    config: &'a Config,
    /// Where the core reports that it started, or why it could not.
    report: R,
    serving: &'a AtomicBool,
    setup: RingSetup,
}

/// Runs a core whose connections are over `T`, from its application's
/// `on_start` to its `on_stop`.
async fn serve_core<A, T>(
    shared: Shared<A>,
    ring: Rc<ring::Ring>,
    listener: std::os::fd::OwnedFd,
    transport: T::Setup,
    run: CoreRun<'_, impl Fn(Result<(CoreId, RingSetup), StartError>)>,
) -> CoreExit
where
    A: App,
    T: AcceptedTransport,
{
    let CoreRun { core, config, report, serving, setup } = run;
    let access_log = shared.access_log.clone();
    let state = Rc::new(CoreState::<A, T>::new(shared, ring, config, transport));
    if let Err(error) = state.shared.app.on_start(&state.shared.cx).await {
        report(Err(StartError::AppStart { core, error }));
        return CoreExit::NotStarted;
    }
    glommio::spawn_local(core::tick_date(state.clone())).detach();
    glommio::spawn_local(core::sweep_deadlines(state.clone())).detach();
    glommio::spawn_local(core::start_workers(state.clone())).detach();
    if let Some(log) = &access_log {
        glommio::spawn_local(access_log::flush_every_tick(log.clone())).detach();
    }
    serving.store(true, Ordering::SeqCst);
    report(Ok((core, setup)));
    drop(report);
    core::accept_loop(listener, state.clone()).await;
    core::drain(&state, config.timeout_graceful_shutdown).await;
    state.shared.app.on_stop(&state.shared.cx).await;
    if let Some(log) = &access_log {
        log.flush_last();
    }
    CoreExit::Stopped
}
