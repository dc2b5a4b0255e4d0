//! [`Shared`]: what every connection of one core shares, made once per
//! core, and the server's own answer on the health path.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll, Waker};
use std::time::{Duration, SystemTime};

use slab::Slab;

use super::heads::ResponseHeads;
use crate::access_log::CoreLog;
use crate::admission::Admission;
use crate::app::{App, Context, Response};
use crate::config::{Config, OptionsAsterisk};
use crate::http::{HttpDate, Limits, Method};
use crate::io::file::Pipes;
use crate::metrics::CoreMetrics;
use crate::proxy::TrustedProxies;
use crate::shutdown::ShutdownSignal;

/// What every connection of one core shares: the application, the
/// policy (limits, timeouts, admission, the paths the server answers
/// itself), the response-head caches, the core's metrics and access log.
pub(crate) struct Shared<A> {
    pub(crate) app: A,
    pub(crate) cx: Context,
    pub(crate) limits: Limits,
    /// The start of every response head, from the core's caches.
    pub(crate) heads: ResponseHeads,
    pub(crate) admission: Rc<Admission>,
    pub(crate) metrics: Arc<CoreMetrics>,
    pub(crate) timeouts: Timeouts,
    /// Set when the core stops: no new requests, idle connections close.
    pub(crate) drain: Rc<Drain>,
    /// Whether requests are timed (for the duration histogram).
    pub(crate) timed: bool,
    /// The path answered without the application (`--health-path`).
    pub(crate) health_path: Option<Box<str>>,
    /// The server's `Allow` answer to `OPTIONS *` (`None`: the
    /// application answers it).
    pub(crate) options_allow: Option<Box<str>>,
    /// Tells whether a stop was asked for (the health path's answer).
    pub(crate) shutdown: ShutdownSignal,
    /// Peers whose forwarding headers are believed (`--proxy-headers`).
    pub(crate) proxies: Option<TrustedProxies>,
    /// The core's access log (`--access-log`).
    pub(crate) access_log: Option<Rc<CoreLog>>,
    /// Empty pipes for file bodies sent by splice, kept for reuse.
    pub(crate) pipes: Pipes,
}

/// The timeouts a connection applies (see `Config`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    pub(crate) request_header: Duration,
    pub(crate) keep_alive: Duration,
    pub(crate) body: Duration,
    pub(crate) write: Duration,
    /// The slowest a body may arrive, bytes per second (0: no minimum).
    pub(crate) min_body_rate: u64,
}

impl<A: App> Shared<A> {
    pub(crate) fn new(
        app: A,
        cx: Context,
        config: &Config,
        metrics: Arc<CoreMetrics>,
        shutdown: ShutdownSignal,
        access_log: Option<Rc<CoreLog>>,
    ) -> Self {
        Shared {
            app,
            cx,
            limits: config.limits(),
            heads: ResponseHeads::new(
                HttpDate::from_system_time(SystemTime::now()),
                config.server_header.as_deref(),
            ),
            admission: Admission::new(config.limit_concurrency, metrics.clone()),
            metrics,
            timeouts: Timeouts {
                request_header: config.timeout_request_header,
                keep_alive: config.timeout_keep_alive,
                body: config.timeout_body,
                write: config.timeout_write,
                min_body_rate: config.min_body_rate,
            },
            drain: Rc::default(),
            timed: config.metrics.is_some() || access_log.is_some(),
            health_path: config.health_path.as_deref().map(Box::from),
            options_allow: match &config.options_asterisk {
                OptionsAsterisk::Allow(allow) => Some(allow.as_str().into()),
                OptionsAsterisk::App => None,
            },
            shutdown,
            proxies: config.proxy_headers.then(|| config.forwarded_allow_ips.clone()),
            access_log,
            pipes: Pipes::default(),
        }
    }
}

impl<A> Shared<A> {
    /// The answer on the health path: 200 while serving, 503 from the
    /// moment a stop was asked for. It is never shed: a busy server is
    /// still a live one.
    pub(super) fn health(&self, method: Method) -> Response {
        if !matches!(method, Method::Get | Method::Head) {
            return Response::plain(405, "health path: GET or HEAD\n").header("allow", "GET, HEAD");
        }
        if self.shutdown.is_asked() || self.drain.is_started() {
            Response::plain(503, "stopping\n")
        } else {
            Response::plain(200, "ok\n")
        }
    }
}

/// The core's graceful shutdown, as its connections see it: whether it
/// began, and a wait for it (an upgraded connection closes its protocol
/// cleanly then: a WebSocket sends Close 1001). Each wait holds one slot
/// for its task's waker while it waits, and gives it back when dropped.
#[derive(Default)]
pub(crate) struct Drain {
    started: Cell<bool>,
    waiting: RefCell<Slab<Waker>>,
}

impl Drain {
    /// The core stops: no new requests, idle connections close.
    pub(crate) fn start(&self) {
        self.started.set(true);
        for waker in self.waiting.borrow_mut().drain() {
            waker.wake();
        }
    }

    pub(crate) fn is_started(&self) -> bool {
        self.started.get()
    }

    /// Completes when the drain begins.
    pub(crate) fn started(self: &Rc<Self>) -> DrainWait {
        DrainWait { drain: self.clone(), slot: None }
    }
}

/// A wait for a core's drain (see [`Drain::started`]).
pub(crate) struct DrainWait {
    drain: Rc<Drain>,
    slot: Option<usize>,
}

impl Future for DrainWait {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<()> {
        if self.drain.started.get() {
            return Poll::Ready(());
        }
        let mut waiting = self.drain.waiting.borrow_mut();
        match self.slot.and_then(|slot| waiting.get_mut(slot)) {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            Some(waker) => *waker = cx.waker().clone(),
            None => {
                let slot = waiting.insert(cx.waker().clone());
                drop(waiting);
                self.slot = Some(slot);
            }
        }
        Poll::Pending
    }
}

impl Drop for DrainWait {
    fn drop(&mut self) {
        if let Some(slot) = self.slot {
            self.drain.waiting.borrow_mut().try_remove(slot);
        }
    }
}
