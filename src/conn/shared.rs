//! [`Shared`]: what every connection of one core shares, made once per
//! core; and the start of a response head from the core's caches.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tracing::error;

use super::head_cache::HeadCache;
use crate::access_log::CoreLog;
use crate::admission::Admission;
use crate::app::{App, Context, Response};
use crate::config::{Config, OptionsAsterisk};
use crate::http::{self, HttpDate, Limits, Method, ServerHeaders};
use crate::io::file::Pipes;
use crate::metrics::CoreMetrics;
use crate::proxy::TrustedProxies;
use crate::shutdown::ShutdownSignal;

/// What every connection of one core shares: the application, the
/// policy (limits, timeouts, admission), the caches of response heads, the
/// core's metrics and access log.
pub(crate) struct Shared<A> {
    pub(crate) app: A,
    pub(crate) cx: Context,
    pub(crate) limits: Limits,
    /// `Server` and `Date`, re-rendered once a second.
    pub(crate) server_headers: RefCell<ServerHeaders>,
    /// The start of the last response head, while `Date` stands.
    pub(crate) head_cache: RefCell<HeadCache>,
    pub(crate) admission: Rc<Admission>,
    pub(crate) metrics: Arc<CoreMetrics>,
    pub(crate) timeouts: Timeouts,
    /// Set when the core stops: no new requests, idle connections close.
    pub(crate) draining: Cell<bool>,
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
            server_headers: RefCell::new(ServerHeaders::new(
                HttpDate::from_system_time(SystemTime::now()),
                config.server_header.as_deref(),
            )),
            head_cache: RefCell::new(HeadCache::default()),
            admission: Admission::new(config.limit_concurrency, metrics.clone()),
            metrics,
            timeouts: Timeouts {
                request_header: config.timeout_request_header,
                keep_alive: config.timeout_keep_alive,
                body: config.timeout_body,
                write: config.timeout_write,
                min_body_rate: config.min_body_rate,
            },
            draining: Cell::new(false),
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
    /// Checks `response` and writes the start of its head (status line,
    /// `Server`, `Date`, the application's headers) with this core's
    /// values; a response with an invalid status or header is replaced by
    /// a 500 first. Returns whether its headers ask to close the
    /// connection. The end of the head is `http::encode_end`.
    pub(crate) fn start_head(&self, response: &mut Response, out: &mut Vec<u8>) -> bool {
        let mut cache = self.head_cache.borrow_mut();
        if let Some(close) = cache.write_known(response, out) {
            return close;
        }
        if !http::is_sendable_head(response.status(), response.headers()) {
            error!(
                status = response.status(),
                "application sent an invalid status or header; answered 500"
            );
            *response = Response::internal_error();
        }
        let close = response.headers().any(|(n, v)| {
            n.eq_ignore_ascii_case("connection") && http::connection_has_close(v.as_bytes())
        });
        let at = out.len();
        self.server_headers.borrow().encode_start(response.status(), response.headers(), out);
        cache.keep(response, &out[at..], close);
        close
    }

    /// The answer on the health path: 200 while serving, 503 from the
    /// moment a stop was asked for. It is never shed: a busy server is
    /// still a live one.
    pub(super) fn health(&self, method: Method) -> Response {
        if !matches!(method, Method::Get | Method::Head) {
            return Response::plain(405, "health path: GET or HEAD\n").header("allow", "GET, HEAD");
        }
        if self.shutdown.is_asked() || self.draining.get() {
            Response::plain(503, "stopping\n")
        } else {
            Response::plain(200, "ok\n")
        }
    }
}
