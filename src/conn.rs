//! Serving connections: read, parse every request the buffer holds, call
//! the application, write the responses of a batch with one write.
//!
//! Tasks: a connection has a task only while it is busy. An idle one (every
//! response written, nothing buffered, its next receive in flight) is
//! parked in the core's registry ([`Parked`]: its socket, its receive, when
//! it went idle) with no task, no buffer and no future. When the receive
//! completes, the ring puts the connection's key in its ready queue and one
//! of the core's workers ([`work`]) takes it and serves it until it is idle
//! again. A core has as many workers as it had connections busy at once;
//! new ones start only for arrivals that no finishing worker takes in the
//! same turn, and those not needed for a whole sweep end.
//!
//! Hot-path discipline: no allocation per request (`tests/zero_alloc.rs`):
//! a request's head, its response's header list, the connection's
//! buffers while it is idle, the future that handles a request and the
//! application's future are all recycled per core (`recycle`); only a
//! request body is a fresh vector handed to the application. Nothing
//! large is moved per request: the application's future is made in its
//! recycled block and never copied after (it is as large as the
//! application's largest handler), and a `RequestHead` is one pointer to
//! its recycled parts. Moving a 160-byte head through five hand-overs cost
//! a pipelined request more than parsing it beyond httparse: the copies
//! read back what had just been written field by field. The start of a
//! response head (status line, `Server`, `Date`, the application's
//! headers) is kept per core while `Date` stands and reused when the next
//! response has the same status and the same static headers
//! (`head_cache`); a response is encoded by a plain function, with a
//! future only for a large or streamed body. Responses to pipelined
//! requests accumulate in the write buffer and go out in one write when
//! the read buffer holds no further complete request (or before any read
//! that might wait).
//!
//! Idle cost: a parked connection's receive takes one of the ring's
//! kernel-picked buffers only when data arrives (and when none is free, it
//! is queued again and the connection stays parked: no buffer of its own);
//! what remains is its registry entry (88 bytes), its deadline watch (40)
//! and its ring slot (72): 238 B of RSS per idle connection at 10 000
//! connections, where nginx needs 553-562 B, measured the same way in the
//! same runs (`benches/idle_memory.py`). The busy state stays off the idle
//! path: the future that handles requests lives in a recycled block and
//! goes back to its shelf before the last responses of a stretch are
//! written, so a burst of connections finishing together holds only their
//! small workers and write buffers.
//!
//! Close rules: after a request that asked for it (`Connection: close`, or
//! HTTP/1.0 without keep-alive), after a response that asked for it, after
//! a refused request (4xx/5xx from the parser, then nothing after it is read
//! as a request), and after a panic in the application. A server-side close
//! is lingering: the sending half is shut, then what the client still sends
//! is read and dropped for a short while, so the kernel does not answer it
//! with a reset that could destroy the response in flight.
//!
//! Deadlines: a read waits at most until its deadline (header, keep-alive
//! or body timeout), and one write may wait at most the write timeout for
//! the socket to take something; both are enforced by one sweeper task per
//! core rather than a timer per operation (see [`Watch`]).
//!
//! This module also owns a core's accept loop (with the `--max-connections`
//! shedding), its registry of open connections, and the drain at shutdown:
//! idle keep-alive connections are closed, in-flight requests finish with
//! `Connection: close`, and what outlives the graceful timeout is cut.
//!
//! Transport, decided by measurement: connections do their I/O as
//! operations on a second io_uring per core (`ring`), driven by one glommio
//! task that submits and reaps everything queued in one `io_uring_enter`
//! per turn; glommio stays the executor (timers, tasks, placement, blocking
//! pool). The alternatives, measured side by side on this machine
//! (`bench-results/ab-transport-2026-11-22`, medians of 3 interleaved runs,
//! one core):
//!
//! | transport | keep-alive, same core | CPU µs/req | pipelined ×16 | syscalls/req |
//! |---|---|---|---|---|
//! | glommio `TcpStream` (plain recv/send syscalls, ring for readiness) | 53.6k | 9.44 | 753k | 2.33 |
//! | socket ring driven from a glommio task (this module) | 63.5k | 7.75 | 1.09M | 0.96 |
//!
//! The ring's wake-up path is what makes it pay where batches are small:
//! a turn only when something is queued or the kernel flags work (read
//! from the shared ring, no syscall), the receive queued together with the
//! pending responses, cooperative task work (no interrupt of a busy core;
//! completions come at its next system call, see `ring` for why not
//! deferred task work), and the eventfd switched on only while the driver
//! sleeps. An executor of our own on a raw ring (no glommio) and busy
//! polling were not taken: the first drops glommio's timers and placement,
//! the second burns a core while idle and, with the load generator on the
//! same core, takes its CPU.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_lite::{FutureExt, StreamExt};
use slab::Slab;
use tracing::{debug, error, warn};

use crate::access_log::{CoreLog, LogLine};
use crate::admission::Admission;
use crate::app::{App, Body, BodyStream, Context, Request, Response};
use crate::body_rate::BodyRate;
use crate::config::{Config, OptionsAsterisk};
use crate::head_cache::HeadCache;
use crate::http::{
    self, BodyFraming, ChunkedDecoder, DecodeStatus, HttpDate, Limits, Method, ParseError,
    RequestHead, ResponseFraming, ServerHeaders, Version,
};
use crate::metrics::{CoreMetrics, TimeoutKind};
use crate::probe::OnRequestPath;
use crate::proxy::{self, Origin, TrustedProxies};
use crate::recycle::{self, Recycled};
use crate::ring::{Detached, OpBuf, Ring};
use crate::runtime::ShutdownSignal;
use crate::sys;
use crate::transport::{Peer, Read, Transport, READ_BUF_BYTES};

/// Fewest free bytes offered to one read.
const MIN_READ_BYTES: usize = 2 << 10;
/// Bodies at least this large are written straight from the response, not
/// copied into the write buffer.
const DIRECT_WRITE_BYTES: usize = 64 << 10;
/// How long a lingering close waits for the client to close its side.
const LINGER: Duration = Duration::from_secs(1);
/// How often a draining core looks for connections that went idle.
const DRAIN_POLL: Duration = Duration::from_millis(20);
/// How long a connection shed at accept may take to get its 503 out.
const SHED_LINGER: Duration = Duration::from_millis(500);
/// Most bytes one read may make the read buffer grow by: a body is read as
/// it arrives, not reserved whole from its declared length.
const MAX_READ_GROWTH: usize = 64 << 10;
/// A file body is read and written in chunks of this size.
const FILE_CHUNK_BYTES: usize = 64 << 10;
/// File bodies at least this large are spliced (no copy) rather than read
/// into the write buffer and written with the head.
const SPLICE_MIN_BYTES: u64 = 16 << 10;
/// A large file body is checked to be in the page cache (`cachestat`)
/// this much at a time before `sendfile` sends it on the core: the check's
/// cost stays bounded, and it stays close to the send.
const CACHED_WINDOW_BYTES: u64 = 2 << 20;
/// What a pipe is asked to hold: one splice's worth.
const PIPE_BYTES: u64 = 512 << 10;
/// Empty pipes a core keeps for reuse; more are closed.
const MAX_SPARE_PIPES: usize = 64;

/// A pipe to splice file bodies through.
struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
}

impl Pipe {
    fn new() -> io::Result<Pipe> {
        let (read, write) = sys::pipe()?;
        // Best effort: a larger pipe moves a large file in fewer splices;
        // the default (64 KiB) works too.
        sys::set_pipe_size(&write, PIPE_BYTES as usize);
        Ok(Pipe { read, write })
    }
}
/// Pending responses beyond this are written before more are produced.
const WRITE_HIGH_WATER: usize = 64 << 10;
/// Idle workers a core keeps beyond a sweep (see [`work`]).
const IDLE_WORKERS: usize = 64;
/// What every connection of one core shares.
pub(crate) struct CoreState<A> {
    pub(crate) app: A,
    pub(crate) cx: Context,
    /// The socket ring every connection of the core does its I/O on.
    ring: Rc<Ring>,
    limits: Limits,
    /// `Server` and `Date`, re-rendered once a second.
    server_headers: RefCell<ServerHeaders>,
    /// The start of the last response head, while `Date` stands.
    head_cache: RefCell<HeadCache>,
    admission: Rc<Admission>,
    metrics: Arc<CoreMetrics>,
    max_connections: u64,
    timeouts: Timeouts,
    /// Set when the core stops: no new requests, idle connections close.
    draining: Cell<bool>,
    /// Whether requests are timed (for the duration histogram).
    timed: bool,
    /// The path answered without the application (`--health-path`).
    health_path: Option<Box<str>>,
    /// The server's `Allow` answer to `OPTIONS *` (`None`: the
    /// application answers it).
    options_allow: Option<Box<str>>,
    /// Tells whether a stop was asked for (the health path's answer).
    shutdown: ShutdownSignal,
    /// Peers whose forwarding headers are believed (`--proxy-headers`).
    proxies: Option<TrustedProxies>,
    /// The core's access log (`--access-log`).
    access_log: Option<Rc<CoreLog>>,
    /// Empty pipes for file bodies sent by splice, kept for reuse.
    pipes: RefCell<Vec<Pipe>>,
    /// Every open connection of the core: for the sweeper, for a drain, and
    /// where an idle connection waits (parked) with no task of its own.
    connections: RefCell<Slab<ConnEntry>>,
}

/// What the core keeps of one open connection: enough to close it when
/// idle at a drain and to end a read or write that outlived its deadline;
/// and while it is idle, the connection itself.
struct ConnEntry {
    fd: RawFd,
    peer: Peer,
    watch: Rc<Watch>,
    /// The idle connection, while no task serves it.
    parked: Option<Parked>,
}

/// An idle connection: its socket and its receive in flight, parked on the
/// ring under the connection's key. No task, no buffer, no future: this is
/// what an open keep-alive connection costs while it waits.
struct Parked {
    io: Transport,
    read: Detached,
    /// When it became ready for its next request.
    idle_since: Instant,
    served_any: bool,
}

/// A connection's I/O deadline, shared with the core's deadline sweeper.
///
/// Deadlines are not one timer per operation (arming and cancelling a
/// glommio timer for every read or write that waits costs an allocation and
/// a timer queue update per keep-alive request). Instead the connection
/// notes its deadline here, and one sweeper task per core, ticking a few
/// times a second, ends the operations that are past it: a read by shutting
/// the socket's read side (the read returns end-of-stream, and a 408 can
/// still be written), a write by shutting both sides (the write fails). The
/// connection then sees `timed_out` (and `write_cut` for a write).
#[derive(Default)]
struct Watch {
    /// Waiting for the next request, with nothing of it received.
    idle: Cell<bool>,
    /// When the operation in progress must have completed.
    deadline: Cell<Option<Instant>>,
    /// The operation in progress is a write.
    writing: Cell<bool>,
    /// Set by the sweeper when it ended an operation for its deadline. A
    /// read ended so may still bring data that raced the deadline (the
    /// request is then answered, and is the connection's last: its read
    /// side is shut).
    timed_out: Cell<bool>,
    /// The operation the sweeper ended was a write.
    write_cut: Cell<bool>,
}

/// The timeouts a connection applies (see `Config`).
#[derive(Debug, Clone, Copy)]
struct Timeouts {
    request_header: Duration,
    keep_alive: Duration,
    body: Duration,
    write: Duration,
    /// The slowest a body may arrive, bytes per second (0: no minimum).
    min_body_rate: u64,
}

impl<A: App> CoreState<A> {
    pub(crate) fn new(
        app: A,
        cx: Context,
        config: &Config,
        metrics: Arc<CoreMetrics>,
        ring: Rc<Ring>,
        shutdown: ShutdownSignal,
        access_log: Option<Rc<CoreLog>>,
    ) -> Self {
        CoreState {
            app,
            cx,
            ring,
            limits: config.limits(),
            server_headers: RefCell::new(ServerHeaders::new(
                HttpDate::from_system_time(SystemTime::now()),
                config.server_header.as_deref(),
            )),
            head_cache: RefCell::new(HeadCache::default()),
            admission: Admission::new(config.limit_concurrency, metrics.clone()),
            metrics,
            max_connections: config.max_connections as u64,
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
            pipes: RefCell::default(),
            connections: RefCell::new(Slab::new()),
        }
    }
}

impl<A> CoreState<A> {
    /// Checks `response` and writes the start of its head (status line,
    /// `Server`, `Date`, the application's headers) with this core's
    /// values; a response with an invalid status or header is replaced by
    /// a 500 first. Returns whether its headers ask to close the
    /// connection. The end of the head is `http::encode_end`.
    fn start_head(&self, response: &mut Response, out: &mut Vec<u8>) -> bool {
        let mut cache = self.head_cache.borrow_mut();
        if let Some(close) = cache.write_known(response, out) {
            return close;
        }
        if !is_valid(response) {
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
    fn health(&self, method: Method) -> Response {
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

/// Re-renders the core's `Date` value at every turn of the second.
pub(crate) async fn tick_date<A: App>(core: Rc<CoreState<A>>) {
    loop {
        let now = SystemTime::now();
        let date = HttpDate::from_system_time(now);
        core.server_headers.borrow_mut().set_date(date);
        if let Some(log) = &core.access_log {
            log.set_date(&date);
        }
        core.head_cache.borrow_mut().clear();
        let into_second = now.duration_since(UNIX_EPOCH).unwrap_or_default().subsec_nanos();
        let to_next = Duration::from_nanos(u64::from(1_000_000_000 - into_second));
        glommio::timer::sleep(to_next).await;
    }
}

/// Ends the reads and writes that are past their deadline, a few times a
/// second (see [`Watch`]); the granularity is a quarter of the shortest
/// timeout, between 5 ms and 250 ms.
pub(crate) async fn sweep_deadlines<A: App>(core: Rc<CoreState<A>>) {
    let t = core.timeouts;
    let shortest = t.request_header.min(t.keep_alive).min(t.body).min(t.write);
    let tick = (shortest / 4).clamp(Duration::from_millis(5), Duration::from_millis(250));
    loop {
        glommio::timer::sleep(tick).await;
        let now = Instant::now();
        core.ring.retire_waiting(IDLE_WORKERS);
        for (_, entry) in core.connections.borrow().iter() {
            let watch = &entry.watch;
            if !watch.deadline.get().is_some_and(|d| now >= d) {
                continue;
            }
            // The entry leaves the registry when its socket closes. A write
            // is cut even after a read was: the request that raced the read
            // deadline is answered, but within the write timeout.
            if watch.writing.get() && !watch.write_cut.get() {
                watch.timed_out.set(true);
                watch.write_cut.set(true);
                sys::shutdown_both(entry.fd);
            } else if !watch.writing.get() && !watch.timed_out.get() {
                watch.timed_out.set(true);
                sys::shutdown_read(entry.fd);
            }
        }
    }
}

/// How long a core waits before it accepts again after a failed accept.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);
/// At most one line per this interval per core about failed accepts: a
/// client must not flood the log by opening connections past the
/// descriptor limit.
const ACCEPT_ERROR_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// A warning repeated at most once per interval, saying how many were left
/// out since the last line.
struct AcceptErrorLog {
    interval: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl AcceptErrorLog {
    fn new(interval: Duration) -> AcceptErrorLog {
        AcceptErrorLog { interval, last: None, suppressed: 0 }
    }

    fn note(&mut self, error: &io::Error) {
        let now = Instant::now();
        if self.last.is_some_and(|last| now < last + self.interval) {
            self.suppressed += 1;
            return;
        }
        if self.suppressed > 0 {
            warn!(
                "accept failed: {error} ({} more since the last line, not logged; \
                 connections wait in the accept queue meanwhile)",
                self.suppressed
            );
        } else {
            warn!("accept failed: {error} (connections wait in the accept queue meanwhile)");
        }
        self.last = Some(now);
        self.suppressed = 0;
    }
}

/// Accepts connections until shutdown; each is registered and parked until
/// its first request arrives (see [`CoreState::open`]).
pub(crate) async fn accept_loop<A: App>(listener: OwnedFd, core: Rc<CoreState<A>>) {
    let shutdown = &core.shutdown;
    let mut accept_errors = AcceptErrorLog::new(ACCEPT_ERROR_LOG_INTERVAL);
    loop {
        if shutdown.is_triggered() {
            return;
        }
        let io = match sys::accept(&listener) {
            Ok(socket) => Transport::new(socket, core.ring.clone()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                // Until a connection waits, or the stop (see
                // `ShutdownSignal::stop_accepting`).
                let arrival = async { drop(core.ring.readable(listener.as_raw_fd()).await) };
                let stop = async { drop(core.ring.readable(shutdown.wake_fd()).await) };
                futures_lite::future::or(arrival, stop).await;
                continue;
            }
            Err(_) if shutdown.is_triggered() => return,
            Err(e) => {
                // Out of descriptors or memory: back off instead of spinning;
                // connections wait in the kernel's accept queue meanwhile.
                core.metrics.accept_errors.inc();
                accept_errors.note(&e);
                glommio::timer::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        // A connection accepted as the stop began is served like any
        // other (the loop ends at the next accept, which fails).
        if core.cx.take_injected_fault() {
            panic!("injected executor fault (Context::inject_executor_fault)");
        }
        let metrics = &core.metrics;
        metrics.connections_accepted.inc();
        let peer = match io.peer() {
            Ok(peer) => peer,
            Err(_) => continue, // already gone
        };
        let core = core.clone();
        if metrics.connections_open.get() >= core.max_connections {
            metrics.connections_shed.inc();
            glommio::spawn_local(shed_connection(io, core)).detach();
            continue;
        }
        core.open(io, peer);
    }
}

/// Serves the connections of a core whose parked receive completed, one
/// at a time, from `first`; ends when the core has enough idle workers.
///
/// A core's workers are as many as it had connections busy at once (an
/// idle connection has none, see [`Parked`]); the sweeper ends those idle
/// beyond [`IDLE_WORKERS`].
async fn work<A: App>(core: Rc<CoreState<A>>, first: u32) {
    let mut key = Some(first);
    while let Some(k) = key {
        serve_parked(&core, k).await;
        key = core.ring.next_ready().await;
    }
}

/// Starts a worker for every parked connection that became ready while
/// none waited, and was still not taken once the tasks woken with it ran:
/// workers finishing a write in the same turn of the ring take the new
/// arrivals, and the core keeps as many workers as it has connections busy
/// at once, not one per arrival.
pub(crate) async fn start_workers<A: App>(core: Rc<CoreState<A>>) {
    loop {
        core.ring.unattended().await;
        futures_lite::future::yield_now().await;
        while let Some(key) = core.ring.take_unattended() {
            glommio::spawn_local(OnRequestPath(work(core.clone(), key))).detach();
        }
    }
}

/// Serves the connection parked under `key` until it is idle again (and
/// parked) or ends. A panic ends only this connection.
async fn serve_parked<A: App>(core: &Rc<CoreState<A>>, key: u32) {
    let Some((mut conn, read)) = Conn::unpark(core, key) else { return };
    let registration = Registration { core, key, parked: false };
    let peer = conn.peer;
    let served = async move {
        match conn.serve(read).await {
            Ok(Busy::Idle(read)) => {
                conn.park(read);
                return true;
            }
            Ok(Busy::Ended(Next::Close)) => Recycled::with(|| conn.linger_close()).await,
            Ok(Busy::Ended(Next::KeepAlive)) => {}
            Err(e) => {
                if conn.watch.write_cut.get() {
                    conn.core.metrics.count_timeout(TimeoutKind::Write);
                }
                debug!(%peer, "connection ended: {e}");
            }
        }
        false
    };
    match AssertUnwindSafe(served).catch_unwind().await {
        Ok(parked) => registration.keep_if(parked),
        Err(_) => error!(%peer, "connection task panicked; connection closed"),
    }
}

/// A connection's entry in the core's registry while a task serves it:
/// when the task lets go of the connection other than by parking it (the
/// connection ended, panicked, or the task was dropped), the entry goes
/// and the connection is no longer counted open.
struct Registration<'a, A: App> {
    core: &'a CoreState<A>,
    key: u32,
    parked: bool,
}

impl<A: App> Registration<'_, A> {
    fn keep_if(mut self, parked: bool) {
        self.parked = parked;
    }
}

impl<A: App> Drop for Registration<'_, A> {
    fn drop(&mut self) {
        if !self.parked {
            let mut connections = self.core.connections.borrow_mut();
            connections.try_remove(self.key as usize);
            self.core.metrics.connections_open.set(connections.len() as u64);
        }
    }
}

impl<A: App> CoreState<A> {
    /// Registers a new connection and parks it until its first request
    /// arrives (within the header timeout of now, served even while the
    /// core drains).
    fn open(&self, io: Transport, peer: Peer) {
        let read = io.read_fresh(&mut Vec::new(), false).detach();
        let parked = Parked { io, read, idle_since: Instant::now(), served_any: false };
        let entry = ConnEntry { fd: parked.io.fd(), peer, watch: Rc::default(), parked: None };
        let key = {
            let mut connections = self.connections.borrow_mut();
            let key = connections.insert(entry) as u32;
            self.metrics.connections_open.set(connections.len() as u64);
            key
        };
        self.park(key, parked);
    }

    /// Parks connection `key` until its receive completes. It waits with no
    /// task: between requests within the keep-alive timeout, before its
    /// first within the header timeout of its start.
    fn park(&self, key: u32, parked: Parked) {
        let mut connections = self.connections.borrow_mut();
        let Some(entry) = connections.get_mut(key as usize) else { return };
        let timeout =
            if parked.served_any { self.timeouts.keep_alive } else { self.timeouts.request_header };
        entry.watch.idle.set(parked.served_any);
        entry.watch.deadline.set(Some(parked.idle_since + timeout));
        self.ring.park(&parked.read, key);
        entry.parked = Some(parked);
    }
}

/// Drains the core after it stopped accepting: idle connections are closed
/// now, busy ones finish their request (answered with `Connection: close`),
/// and whatever still runs after `timeout` is logged and left to be cut
/// when the executor ends.
pub(crate) async fn drain<A: App>(core: &Rc<CoreState<A>>, timeout: Duration) {
    core.draining.set(true);
    let deadline = Instant::now() + timeout;
    loop {
        // Ending the read side makes an idle connection's pending read
        // return end-of-stream; bytes already received are still read.
        // A connection's entry leaves the registry in the same step as its
        // socket is closed, so every `fd` here is open.
        for (_, entry) in core.connections.borrow().iter().filter(|(_, e)| e.watch.idle.get()) {
            sys::shutdown_read(entry.fd);
        }
        if core.connections.borrow().is_empty() || Instant::now() >= deadline {
            break;
        }
        glommio::timer::sleep(DRAIN_POLL).await;
    }
    let cut = core.connections.borrow();
    for (_, entry) in cut.iter() {
        warn!(peer = %entry.peer, "graceful shutdown timed out: connection cut");
        sys::shutdown_both(entry.fd);
    }
    if !cut.is_empty() {
        warn!(count = cut.len(), "graceful shutdown timed out: {} connection(s) cut", cut.len());
    }
}

/// Answers a connection over `--max-connections` with 503 and closes it:
/// the client learns why, instead of a reset or an unbounded wait.
async fn shed_connection<A: App>(io: Transport, core: Rc<CoreState<A>>) {
    core.metrics.count_response(503);
    let mut out = Vec::with_capacity(256);
    let mut response = Response::service_unavailable();
    let body_len = match response.body_ref() {
        Body::Full(bytes) => bytes.len() as u64,
        _ => 0,
    };
    core.start_head(&mut response, &mut out);
    http::encode_end(ResponseFraming::Length(body_len), false, false, &mut out);
    if let Body::Full(body) = response.take_body() {
        out.extend_from_slice(&body);
    }
    let deadline = Instant::now() + SHED_LINGER;
    let written = with_deadline(write_within(&io, OpBuf::Vec(out), None), deadline).await;
    if let Some((Ok(()), OpBuf::Vec(mut out))) = written {
        linger(&io, &mut out, deadline).await;
    }
}

/// Runs `future` until `deadline`; `None` if the deadline came first. The
/// timer is only armed if the future does not complete on its first poll.
async fn with_deadline<T>(future: impl Future<Output = T>, deadline: Instant) -> Option<T> {
    let timer = async {
        glommio::timer::sleep(deadline.saturating_duration_since(Instant::now())).await;
        None
    };
    futures_lite::future::or(async { Some(future.await) }, timer).await
}

/// Shuts the sending half, then reads and drops what the client still
/// sends until `deadline`, so the kernel does not reset the connection
/// (and destroy the response in flight) when it is closed. Bounded by time
/// only: a client still uploading a refused body may send more than any
/// byte budget.
async fn linger(io: &Transport, scratch: &mut Vec<u8>, deadline: Instant) {
    if io.shutdown_write().is_err() {
        return;
    }
    if scratch.len() < MIN_READ_BYTES {
        scratch.resize(READ_BUF_BYTES, 0);
    }
    let drain = async {
        while let Ok(1..) = io.read(scratch, 0).await {
            glommio::yield_if_needed().await;
        }
    };
    with_deadline(drain, deadline).await;
}

/// A connection's read buffer: bytes `start..end` of `buf` are unread.
struct ReadBuf {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl ReadBuf {
    fn new() -> ReadBuf {
        ReadBuf { buf: Vec::new(), start: 0, end: 0 }
    }

    fn filled(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Makes free space for a read of at least `want` bytes (at most
    /// [`MAX_READ_GROWTH`] more than the buffer holds) after `end`.
    fn reserve(&mut self, want: usize) {
        if self.buf.capacity() == 0 {
            self.buf = recycle::take(&recycle::READ_BUFS);
        }
        let want = want.clamp(MIN_READ_BYTES, MAX_READ_GROWTH);
        if self.buf.len() - self.end < want && self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.buf.len() - self.end < want {
            let grown = (self.buf.len() * 2).max(self.end + want);
            self.buf.resize(grown, 0);
        }
    }

    fn advance(&mut self, n: usize) {
        self.end += n;
    }

    /// Gives the (empty) buffer's memory to the core's shelf while the
    /// connection waits: idle connections hold no read buffer.
    fn release(&mut self) {
        debug_assert_eq!(self.start, self.end);
        self.start = 0;
        self.end = 0;
        recycle::give(&recycle::READ_BUFS, std::mem::take(&mut self.buf));
    }

    /// Gives back the memory a large body made the buffer grow to.
    fn shrink(&mut self) {
        let unread = self.end - self.start;
        if self.buf.len() > READ_BUF_BYTES * 8 && unread <= READ_BUF_BYTES {
            let mut fresh = vec![0; READ_BUF_BYTES];
            fresh[..unread].copy_from_slice(self.filled());
            self.buf = fresh;
            self.start = 0;
            self.end = unread;
        }
    }
}

/// How a request's body read ended.
enum BodyRead {
    Complete(Vec<u8>),
    /// The client closed before the body was complete.
    Eof,
    /// The body stalled longer than the body timeout.
    TimedOut,
    Invalid(ParseError),
}

/// How a busy connection's stretch of work ended.
enum Busy {
    /// Nothing buffered, every response written; this receive is waiting
    /// for the next request.
    Idle(Detached),
    Ended(Next),
}

/// Whether the connection stays open after a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    KeepAlive,
    Close,
}

struct Conn<A> {
    io: Transport,
    peer: Peer,
    core: Rc<CoreState<A>>,
    /// Its key in the core's registry.
    key: u32,
    rbuf: ReadBuf,
    wbuf: Vec<u8>,
    /// When the connection became ready for its next request.
    idle_since: Instant,
    /// When the first bytes of the head being read arrived.
    head_started: Option<Instant>,
    /// Whether a request was answered on this connection yet.
    served_any: bool,
    /// Shared with the core's registry and its deadline sweeper.
    watch: Rc<Watch>,
    /// The access-log line of the request being handled.
    log_line: LogLine,
    /// The status of the last response encoded (0: none yet).
    status: u16,
    /// The body bytes of the last response encoded.
    body_bytes: u64,
}

/// How long a read may wait.
#[derive(Debug, Clone, Copy)]
enum Wait {
    /// Until this instant.
    Until(Instant),
    /// This long from after the pending responses are written.
    For(Duration),
}

/// How a read with a deadline ended.
enum Fill {
    Data,
    Eof,
    TimedOut,
}

impl<A: App> Conn<A> {
    /// Takes the connection parked under `key` out of the registry, with
    /// its completed receive.
    fn unpark(core: &Rc<CoreState<A>>, key: u32) -> Option<(Conn<A>, Detached)> {
        let connections = &mut *core.connections.borrow_mut();
        let entry = connections.get_mut(key as usize)?;
        let Parked { io, read, idle_since, served_any } = entry.parked.take()?;
        let conn = Conn {
            io,
            peer: entry.peer,
            core: core.clone(),
            key,
            rbuf: ReadBuf::new(),
            wbuf: Vec::new(),
            idle_since,
            head_started: None,
            served_any,
            watch: entry.watch.clone(),
            log_line: LogLine::default(),
            status: 0,
            body_bytes: 0,
        };
        Some((conn, read))
    }

    /// Parks the idle connection, its next receive in flight (see
    /// [`CoreState::park`]).
    fn park(self, read: Detached) {
        let Conn { io, core, key, idle_since, served_any, .. } = self;
        core.park(key, Parked { io, read, idle_since, served_any });
    }

    /// Serves the connection from the completion of its parked receive
    /// until it is idle again (`Busy::Idle`, its next receive in flight) or
    /// ends. `Ended(KeepAlive)` here means the client closed first.
    ///
    /// A connection is busy (requests buffered or being handled, responses
    /// being written: [`Conn::serve_busy`], a large future that lives in a
    /// recycled block) or idle: nothing buffered, every response written,
    /// a receive in flight, and the connection parked in the registry with
    /// no task (see [`Parked`]).
    async fn serve(&mut self, read: Detached) -> io::Result<Busy> {
        let result = self.io.resume_read(read, &mut self.rbuf.buf).picked_only().await;
        if matches!(&result, Err(e) if e.raw_os_error() == Some(libc::ENOBUFS)) {
            // More requests arrived in one turn than the ring has buffers:
            // wait again, parked, rather than hold a buffer of our own
            // until the next turn (a burst of arrivals would hold one each).
            return Ok(Busy::Idle(self.io.read_fresh(&mut self.rbuf.buf, false).detach()));
        }
        self.watch.deadline.set(None);
        self.watch.idle.set(false);
        match result? {
            0 if self.watch.timed_out.get() => {
                let kind = if self.served_any {
                    TimeoutKind::KeepAlive
                } else {
                    TimeoutKind::RequestHeader
                };
                self.core.metrics.count_timeout(kind);
                return Ok(Busy::Ended(Next::Close));
            }
            0 => return Ok(Busy::Ended(Next::KeepAlive)),
            n => self.rbuf.advance(n),
        }
        loop {
            self.wbuf = recycle::take(&recycle::WRITE_BUFS);
            let read = match Recycled::with(|| self.serve_busy()).await? {
                Busy::Idle(read) => read,
                ended => return Ok(ended),
            };
            // The last responses go out while the receive waits, from this
            // small future: a burst of connections finishing at once holds
            // no busy futures meanwhile.
            let read = self.io.resume_read(read, &mut self.rbuf.buf);
            let stall = Stall { watch: &self.watch, limit: self.core.timeouts.write };
            let read = write_beside(read, &self.io, &mut self.wbuf, stall).await?;
            recycle::give(&recycle::WRITE_BUFS, std::mem::take(&mut self.wbuf));
            self.idle_since = Instant::now();
            if !self.core.draining.get() {
                return Ok(Busy::Idle(read.detach()));
            }
            // Idle while the core drains: the connection closes, unless
            // bytes raced the drain (they still count as a request).
            match read.cancel().await {
                Ok(n @ 1..) => self.rbuf.advance(n),
                _ => return Ok(Busy::Ended(Next::KeepAlive)),
            }
        }
    }

    /// Serves what is buffered, reading what completes it, until the
    /// connection goes idle (then with its next receive in flight) or ends.
    async fn serve_busy(&mut self) -> io::Result<Busy> {
        loop {
            match http::parse_head(self.rbuf.filled(), &self.core.limits) {
                Ok(Some((head, len))) => {
                    self.rbuf.consume(len);
                    self.head_started = None;
                    let started = self.core.timed.then(Instant::now);
                    let next = self.handle(head).await;
                    if let Some(started) = started {
                        self.record(started.elapsed());
                    }
                    let next = next?;
                    if next == Next::Close {
                        self.flush().await?;
                        return Ok(Busy::Ended(Next::Close));
                    }
                    self.served_any = true;
                    self.rbuf.shrink();
                    if self.wbuf.len() >= WRITE_HIGH_WATER {
                        self.flush().await?;
                    }
                    // A client that pipelines without pause must not keep
                    // the core from its other connections and timers.
                    glommio::yield_if_needed().await;
                }
                Ok(None) if self.served_any && self.rbuf.filled().is_empty() => {
                    return self.go_idle().await;
                }
                Ok(None) => {
                    // Time spent writing responses is not the client's
                    // header time: flush first, then start counting.
                    if !self.wbuf.is_empty() {
                        self.flush().await?;
                    }
                    // A new connection's first head must be complete within
                    // the header timeout of the connection's start; a later
                    // one within the header timeout of its first bytes.
                    let started = if self.served_any {
                        *self.head_started.get_or_insert_with(Instant::now)
                    } else {
                        self.idle_since
                    };
                    let deadline = started + self.core.timeouts.request_header;
                    match self.fill(0, Wait::Until(deadline)).await? {
                        Fill::Data => {}
                        Fill::Eof => return Ok(Busy::Ended(Next::KeepAlive)),
                        Fill::TimedOut if self.rbuf.filled().is_empty() => {
                            self.core.metrics.count_timeout(TimeoutKind::RequestHeader);
                            return Ok(Busy::Ended(Next::Close));
                        }
                        Fill::TimedOut => {
                            let answered = self.time_out(TimeoutKind::RequestHeader).await;
                            self.log_unparsed();
                            answered?;
                            return Ok(Busy::Ended(Next::Close));
                        }
                    }
                }
                Err(e) => {
                    let is_head = is_head_request(self.rbuf.filled());
                    let answered = self.refuse(e, is_head).await;
                    self.log_unparsed();
                    answered?;
                    return Ok(Busy::Ended(Next::Close));
                }
            }
        }
    }

    /// Starts the receive of the next request and lets go of the read
    /// buffer: the receive takes one of the ring's when data arrives. The
    /// pending responses are written by [`Conn::serve`], in the same
    /// submission, once the busy future is back in its shelf.
    async fn go_idle(&mut self) -> io::Result<Busy> {
        self.rbuf.release();
        Ok(Busy::Idle(self.io.read_fresh(&mut self.rbuf.buf, true).detach()))
    }

    /// Flushes pending responses, then reads more, waiting as `wait` says.
    ///
    /// The receive is queued before the responses are written, so both
    /// reach the kernel in one submission; its deadline starts once they
    /// are written.
    async fn fill(&mut self, want: usize, wait: Wait) -> io::Result<Fill> {
        Ok(self.fill_timed(want, wait).await?.0)
    }

    /// Reads more of a body: within `--timeout-body` of pause, and fast
    /// enough for `rate` (`TimedOut` when either is missed). Only the time
    /// spent waiting for the client counts toward the rate.
    async fn fill_body(&mut self, want: usize, rate: &mut BodyRate) -> io::Result<Fill> {
        let pause = self.core.timeouts.body;
        let limit = rate.wait_limit().map_or(pause, |limit| limit.min(pause));
        let before = self.rbuf.filled().len();
        let (fill, waiting_since) = self.fill_timed(want, Wait::For(limit)).await?;
        let got = self.rbuf.filled().len().saturating_sub(before) as u64;
        if !rate.record(waiting_since.elapsed(), got) {
            debug!(peer = %self.peer, "request body slower than --min-body-rate");
            return Ok(Fill::TimedOut);
        }
        Ok(fill)
    }

    /// [`Conn::fill`], also returning when it began to wait for the client
    /// (after the pending responses were written).
    async fn fill_timed(&mut self, want: usize, wait: Wait) -> io::Result<(Fill, Instant)> {
        // After a deadline the read side is shut: the read still returns
        // what raced it, then the end.
        self.rbuf.reserve(want);
        let Conn { io, rbuf, wbuf, core, watch, .. } = self;
        let read = io.read(&mut rbuf.buf, rbuf.end);
        let stall = Stall { watch, limit: core.timeouts.write };
        let read = write_beside(read, io, wbuf, stall).await?;
        let now = Instant::now();
        let deadline = match wait {
            Wait::Until(deadline) => deadline,
            Wait::For(timeout) => now + timeout,
        };
        if now >= deadline {
            if let Ok(n) = read.cancel().await {
                rbuf.advance(n);
            }
            return Ok((Fill::TimedOut, now));
        }
        watch.deadline.set(Some(deadline));
        let result = read.await;
        watch.deadline.set(None);
        let fill = match result {
            Ok(0) if watch.timed_out.get() => Fill::TimedOut,
            Ok(0) => Fill::Eof,
            Ok(n) => {
                rbuf.advance(n);
                Fill::Data
            }
            Err(e) => return Err(e),
        };
        Ok((fill, now))
    }

    /// Writes the pending responses; a client that does not take them
    /// within the write timeout loses the connection.
    async fn flush(&mut self) -> io::Result<()> {
        let stall = Stall { watch: &self.watch, limit: self.core.timeouts.write };
        write_pending(&self.io, &mut self.wbuf, stall).await
    }

    /// Answers 408 to a request whose head or body did not arrive in time.
    async fn time_out(&mut self, kind: TimeoutKind) -> io::Result<()> {
        self.core.metrics.count_timeout(kind);
        // The read's deadline is dealt with; the 408 gets a write deadline
        // of its own.
        self.watch.timed_out.set(false);
        debug!(peer = %self.peer, "request timed out");
        let response = Response::plain(408, "request timeout\n");
        self.respond(response, false, false, false).await?;
        self.flush().await
    }

    /// Records a request that was handled (from its parsed head) in the
    /// duration histogram and the access log.
    /// Only a request that got a response is recorded (one whose body
    /// never came got none), also when writing the response failed.
    fn record(&self, elapsed: Duration) {
        if self.status == 0 {
            return;
        }
        self.core.metrics.duration.observe(elapsed);
        if let Some(log) = &self.core.access_log {
            log.finish(&self.log_line, self.status, self.body_bytes, elapsed);
        }
    }

    /// Logs the answer to a request that has no parsed head (refused, or
    /// its head never arrived).
    fn log_unparsed(&mut self) {
        if let Some(log) = &self.core.access_log {
            log.start_unparsed(&mut self.log_line, self.peer.0);
            log.finish(&self.log_line, self.status, self.body_bytes, Duration::ZERO);
        }
    }

    /// Who sent the request, as far as the server believes proxies.
    fn origin(&self, head: &RequestHead) -> Origin {
        match &self.core.proxies {
            None => Origin { client: self.peer.0, scheme: "http" },
            Some(trusted) => proxy::origin(
                self.peer.0,
                trusted,
                head.headers()
                    .filter(|(name, _)| name.eq_ignore_ascii_case("x-forwarded-for"))
                    .map(|(_, value)| value),
                head.headers()
                    .filter(|(name, _)| name.eq_ignore_ascii_case("x-forwarded-proto"))
                    .map(|(_, value)| value),
            ),
        }
    }

    /// Whether the connection may serve another request after `head`'s:
    /// the client wants it, and [`Conn::may_go_on_after`].
    fn may_go_on(&self, head: &RequestHead) -> bool {
        head.keep_alive() && self.may_go_on_after()
    }

    /// Whether the server lets the connection go on after the current
    /// request: not when the core began to drain meanwhile, nor when the
    /// request arrived as a read deadline passed (the sweeper shut the read
    /// side).
    fn may_go_on_after(&self) -> bool {
        !self.core.draining.get() && !self.watch.timed_out.get()
    }

    async fn handle(&mut self, head: RequestHead) -> io::Result<Next> {
        let is_head = head.method() == Method::Head;
        let http10 = head.version() == Version::Http10;
        let origin = self.origin(&head);
        self.status = 0;
        if let Some(log) = &self.core.access_log {
            log.start(&mut self.log_line, origin.client, &head);
        }
        if self.core.health_path.as_deref() == Some(head.path()) {
            let response = self.core.health(head.method());
            // A body is not read here: the connection cannot go on.
            let keep_alive = self.may_go_on(&head) && head.framing() == BodyFraming::Empty;
            return self.respond(response, is_head, http10, keep_alive).await;
        }
        if let (Method::Options, "*", Some(allow)) =
            (head.method(), head.path(), &self.core.options_allow)
        {
            // About the server, not a resource (RFC 9110 §9.3.7).
            let response = Response::new(200).header("allow", allow.to_string());
            let keep_alive = self.may_go_on(&head) && head.framing() == BodyFraming::Empty;
            return self.respond(response, false, http10, keep_alive).await;
        }
        let Some(_permit) = self.core.admission.try_admit() else {
            // Over --limit-concurrency: shed before reading the body.
            self.core.metrics.shed_concurrency.inc();
            return self.respond(Response::service_unavailable(), is_head, http10, false).await;
        };
        // Most requests have no body: they skip the body reader's future.
        let body = match head.framing() {
            BodyFraming::Empty => BodyRead::Complete(Vec::new()),
            _ => self.read_body(&head).await?,
        };
        let body = match body {
            BodyRead::Complete(body) => body,
            BodyRead::Eof => return Ok(Next::Close),
            BodyRead::TimedOut => {
                self.time_out(TimeoutKind::Body).await?;
                return Ok(Next::Close);
            }
            BodyRead::Invalid(e) => {
                self.refuse(e, is_head).await?;
                return Ok(Next::Close);
            }
        };
        self.core.metrics.requests.inc();
        let keep_alive = head.keep_alive();
        let request = Request::new(head, body, self.peer.0, origin);
        let (mut response, keep_alive) = match call_app(&self.core, request).await {
            Some(response) => (response, keep_alive),
            None => {
                self.core.metrics.app_panics.inc();
                error!(peer = %self.peer, "application panicked; answered 500");
                (Response::internal_error(), false)
            }
        };
        let keep_alive = keep_alive && self.may_go_on_after();
        match self.encode_response(&mut response, is_head, http10, keep_alive) {
            Unsent::Nothing(next) => Ok(next),
            unsent => self.send_rest(unsent).await,
        }
    }

    async fn read_body(&mut self, head: &RequestHead) -> io::Result<BodyRead> {
        let mut continue_pending = head.expect_continue();
        match head.framing() {
            BodyFraming::Empty => Ok(BodyRead::Complete(Vec::new())),
            BodyFraming::Length(len) => {
                // The parser refused lengths over the limit, which fits usize.
                let len = usize::try_from(len).unwrap_or(usize::MAX);
                let mut rate = BodyRate::new(self.core.timeouts.min_body_rate);
                while self.rbuf.filled().len() < len {
                    self.send_continue(&mut continue_pending);
                    let missing = len - self.rbuf.filled().len();
                    match self.fill_body(missing, &mut rate).await? {
                        Fill::Data => {}
                        Fill::Eof => return Ok(BodyRead::Eof),
                        Fill::TimedOut => return Ok(BodyRead::TimedOut),
                    }
                }
                let body = self.rbuf.filled()[..len].to_vec();
                self.rbuf.consume(len);
                Ok(BodyRead::Complete(body))
            }
            BodyFraming::Chunked => {
                let limits = self.core.limits;
                let mut decoder =
                    ChunkedDecoder::new(limits.max_body_bytes, limits.max_header_bytes);
                let mut body = Vec::new();
                let mut rate = BodyRate::new(self.core.timeouts.min_body_rate);
                loop {
                    match decoder.decode(self.rbuf.filled(), &mut body) {
                        Ok((used, DecodeStatus::Done)) => {
                            self.rbuf.consume(used);
                            return Ok(BodyRead::Complete(body));
                        }
                        Ok((used, DecodeStatus::NeedMore)) => self.rbuf.consume(used),
                        Err(e) => return Ok(BodyRead::Invalid(e)),
                    }
                    self.send_continue(&mut continue_pending);
                    match self.fill_body(0, &mut rate).await? {
                        Fill::Data => {}
                        Fill::Eof => return Ok(BodyRead::Eof),
                        Fill::TimedOut => return Ok(BodyRead::TimedOut),
                    }
                }
            }
        }
    }

    /// Queues `100 Continue` before the first read of a body the client is
    /// holding back (RFC 9110 §10.1.1).
    fn send_continue(&mut self, pending: &mut bool) {
        if std::mem::take(pending) {
            self.wbuf.extend_from_slice(http::CONTINUE);
        }
    }

    /// Answers a request the parser refused, then the connection closes.
    async fn refuse(&mut self, error: ParseError, is_head: bool) -> io::Result<()> {
        self.core.metrics.count_refused(error.status());
        debug!(peer = %self.peer, "refused request: {error}");
        let response = Response::plain(error.status(), format!("{error}\n"));
        self.respond(response, is_head, false, false).await?;
        self.flush().await
    }

    /// Serialises `response`; a streamed body is written as it comes.
    async fn respond(
        &mut self,
        mut response: Response,
        is_head: bool,
        http10: bool,
        keep_alive: bool,
    ) -> io::Result<Next> {
        let unsent = self.encode_response(&mut response, is_head, http10, keep_alive);
        self.send_rest(unsent).await
    }

    /// Serialises `response` into the write buffer: its head, and its body
    /// unless that is too large to copy or streamed. Not `async`, so the
    /// common response costs no future of its own.
    fn encode_response(
        &mut self,
        response: &mut Response,
        is_head: bool,
        http10: bool,
        keep_alive: bool,
    ) -> Unsent {
        let close = self.core.start_head(response, &mut self.wbuf);
        let keep_alive = keep_alive && !close;
        let status = response.status();
        self.core.metrics.count_response(status);
        self.status = status;
        self.body_bytes = 0;
        // RFC 9110 §15.3.5, §15.4.5: 204 and 304 have neither content nor
        // length; §15.3.6: 205 has no content.
        let no_body = matches!(status, 204 | 205 | 304);
        let (framing, keep_alive) = match response_body(response) {
            _ if status == 205 => (ResponseFraming::Length(0), keep_alive),
            _ if no_body => (ResponseFraming::None, keep_alive),
            // A HEAD answered without a body says nothing about the length.
            BodyKind::Empty if is_head => (ResponseFraming::None, keep_alive),
            BodyKind::Empty => (ResponseFraming::Length(0), keep_alive),
            BodyKind::Full(len) => (ResponseFraming::Length(len as u64), keep_alive),
            BodyKind::Stream if is_head => (ResponseFraming::None, keep_alive),
            BodyKind::Stream if http10 => (ResponseFraming::CloseDelimited, false),
            BodyKind::Stream => (ResponseFraming::Chunked, keep_alive),
            BodyKind::Sized(len) => (ResponseFraming::Length(len), keep_alive),
        };
        http::encode_end(framing, keep_alive, http10, &mut self.wbuf);
        let next = if keep_alive { Next::KeepAlive } else { Next::Close };
        if is_head || no_body {
            return Unsent::Nothing(next);
        }
        match response.take_body() {
            Body::Empty => Unsent::Nothing(next),
            Body::Full(bytes) if bytes.len() >= DIRECT_WRITE_BYTES => {
                self.body_bytes = bytes.len() as u64;
                Unsent::Bytes(bytes, next)
            }
            Body::Full(bytes) => {
                self.body_bytes = bytes.len() as u64;
                self.wbuf.extend_from_slice(&bytes);
                Unsent::Nothing(next)
            }
            Body::Stream(stream) if framing == ResponseFraming::Chunked => {
                Unsent::Stream(stream, StreamFraming::Chunked, next)
            }
            Body::Stream(stream) => Unsent::Stream(stream, StreamFraming::UntilClose, next),
            Body::Sized(stream, len) => Unsent::Stream(stream, StreamFraming::Exactly(len), next),
            Body::File { file, offset, len } => Unsent::File(file, offset, len, next),
        }
    }

    /// Writes what [`Conn::encode_response`] left.
    async fn send_rest(&mut self, unsent: Unsent) -> io::Result<Next> {
        match unsent {
            Unsent::Nothing(next) => Ok(next),
            Unsent::Bytes(bytes, next) => {
                self.flush().await?;
                let stall = Stall { watch: &self.watch, limit: self.core.timeouts.write };
                write_within(&self.io, OpBuf::Bytes(bytes), Some(stall)).await.0?;
                Ok(next)
            }
            Unsent::Stream(stream, framing, next) => {
                self.stream_body(stream, framing).await?;
                Ok(next)
            }
            Unsent::File(file, offset, len, next) => {
                self.send_file(file, offset, len).await?;
                Ok(next)
            }
        }
    }

    /// Writes a streamed body chunk by chunk, each after the previous one
    /// was taken by the socket (one chunk in memory per connection). A
    /// failing or panicking stream, or a sized one that runs short or long,
    /// ends the connection without completing the body.
    async fn stream_body(
        &mut self,
        mut stream: BodyStream,
        framing: StreamFraming,
    ) -> io::Result<()> {
        let chunked = framing == StreamFraming::Chunked;
        loop {
            self.flush().await?;
            let item = AssertUnwindSafe(stream.next()).catch_unwind().await;
            match item {
                Ok(Some(Ok(chunk))) if chunk.is_empty() => {}
                Ok(Some(Ok(chunk))) => {
                    self.body_bytes += chunk.len() as u64;
                    if let StreamFraming::Exactly(len) = framing {
                        if self.body_bytes > len {
                            error!(peer = %self.peer, "response body ran past its length {len}");
                            return Err(io::Error::other("response body ran past its length"));
                        }
                    }
                    if chunked {
                        // Writing into a Vec cannot fail.
                        let _ = write!(self.wbuf, "{:x}\r\n", chunk.len());
                        self.wbuf.extend_from_slice(&chunk);
                        self.wbuf.extend_from_slice(b"\r\n");
                    } else {
                        self.wbuf.extend_from_slice(&chunk);
                    }
                }
                Ok(None) => {
                    match framing {
                        StreamFraming::Chunked => self.wbuf.extend_from_slice(b"0\r\n\r\n"),
                        StreamFraming::Exactly(len) if self.body_bytes != len => {
                            let sent = self.body_bytes;
                            error!(peer = %self.peer, "response body ended at {sent} of {len} bytes");
                            // What was produced goes out; the close marks it short.
                            self.flush().await?;
                            return Err(io::Error::other("response body ended short"));
                        }
                        _ => {}
                    }
                    return Ok(());
                }
                Ok(Some(Err(e))) => {
                    error!(peer = %self.peer, "response body stream failed: {e}");
                    return Err(io::Error::other("response body stream failed"));
                }
                Err(_) => {
                    error!(peer = %self.peer, "response body stream panicked");
                    return Err(io::Error::other("response body stream panicked"));
                }
            }
        }
    }

    /// Writes `len` bytes of `file` from `offset`: copied into the write
    /// buffer when small (see [`Conn::copy_file`]); when large, sent by the
    /// kernel without a copy: with `sendfile` on the core while the bytes
    /// are in the page cache (see [`Conn::send_cached`]), the rest spliced
    /// on the ring (see [`Conn::splice_file`]).
    async fn send_file(&mut self, file: std::fs::File, offset: u64, len: u64) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        if len < SPLICE_MIN_BYTES {
            return self.copy_file(&file, offset, 0, len).await;
        }
        let first = len.min(CACHED_WINDOW_BYTES);
        let mut sent = 0;
        if sys::is_cached(file.as_raw_fd(), offset, first) {
            sent = self.send_cached(&file, offset, first, len).await?;
            if sent == len {
                return Ok(());
            }
        }
        let pipe = self.core.pipes.borrow_mut().pop().map(Ok).unwrap_or_else(Pipe::new);
        match pipe {
            Ok(pipe) => self.splice_file(Rc::new(file), Rc::new(pipe), offset, sent, len).await,
            // Out of descriptors for a pipe: copy instead.
            Err(_) => self.copy_file(&file, offset, sent, len).await,
        }
    }

    /// Writes bytes `sent..len` of the body at `offset` of `file`: each
    /// chunk is read straight into the write buffer, after what is pending
    /// there (the head, the first time: a small file goes out in one
    /// write), and written before the next is read; the last one is left
    /// in the buffer, to go out with the next receive as any response
    /// does. A chunk in the page
    /// cache is read with one system call on the core; from the first that
    /// is not, chunks are read on the ring, so the core does not wait for a
    /// disk. A file that ends early ends the connection.
    async fn copy_file(
        &mut self,
        file: &std::fs::File,
        offset: u64,
        mut sent: u64,
        len: u64,
    ) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let fd = file.as_raw_fd();
        let mut on_ring = false;
        while sent < len {
            let want = usize::try_from(len - sent).unwrap_or(usize::MAX).min(FILE_CHUNK_BYTES);
            let read = if on_ring {
                self.core.ring.read_file(fd, &mut self.wbuf, want, offset + sent).await
            } else {
                sys::read_cached(fd, &mut self.wbuf, want, offset + sent)
            };
            let read = match read {
                // Not cached, or no cache-only reads on this file system.
                Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EOPNOTSUPP)) => {
                    on_ring = true;
                    // io_uring fails a read of a non-blocking file that
                    // would wait.
                    sys::set_nonblocking(fd, false)?;
                    self.core.ring.read_file(fd, &mut self.wbuf, want, offset + sent).await
                }
                read => read,
            };
            match read {
                Ok(0) => {
                    // What was read goes out; the close marks it short.
                    self.flush().await?;
                    return Err(self.file_ended(sent, len));
                }
                Ok(n) => sent += n as u64,
                Err(e) => return Err(self.file_failed(e)),
            }
            self.body_bytes = sent;
            if sent < len {
                self.flush().await?;
            }
        }
        Ok(())
    }

    /// Writes the head, then bytes of `file` from `offset` with `sendfile`
    /// on the core while they are in the page cache: `checked` bytes are
    /// known to be, and each next window of [`CACHED_WINDOW_BYTES`] is
    /// checked (`cachestat`) before it is sent. Returns how many were sent:
    /// `len`, or fewer when a window is not cached or the file system
    /// cannot `sendfile`, for the caller to send the rest on the ring.
    ///
    /// The socket is non-blocking meanwhile; when its send buffer is full
    /// the connection waits on the ring for room, under the write timeout
    /// (so a client that stops reading holds nothing). A file that ends
    /// early ends the connection. The core can still wait for a disk when
    /// pages are evicted between the check and the send, or were still
    /// being read in: rare, and what nginx's `sendfile` always risks.
    async fn send_cached(
        &mut self,
        file: &std::fs::File,
        offset: u64,
        checked: u64,
        len: u64,
    ) -> io::Result<u64> {
        let socket = self.io.fd();
        sys::set_nonblocking(socket, true)?;
        let mut result = self.flush_more().await.map(|()| 0);
        if result.is_ok() {
            result = self.sendfile_loop(file, offset, checked, len).await;
        }
        let restored = sys::set_nonblocking(socket, false);
        result.and_then(|sent| restored.map(|()| sent))
    }

    /// Writes and empties the write buffer (the head) on the core, the
    /// socket being non-blocking, with `MSG_MORE`: the kernel holds it to
    /// leave with the start of the body, in one packet (nginx's
    /// `tcp_nopush`).
    async fn flush_more(&mut self) -> io::Result<()> {
        let socket = self.io.fd();
        let mut written = 0;
        while written < self.wbuf.len() {
            match sys::send_more(socket, &self.wbuf[written..]) {
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.writable().await?,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.wbuf.clear();
        Ok(())
    }

    /// Waits until the socket (non-blocking) has room for more, under the
    /// write timeout.
    async fn writable(&self) -> io::Result<()> {
        let stall = Stall { watch: &self.watch, limit: self.core.timeouts.write };
        stall.arm();
        let _ = self.core.ring.writable(self.io.fd()).await;
        stall.disarm()
    }

    /// The loop of [`Conn::send_cached`].
    async fn sendfile_loop(
        &mut self,
        file: &std::fs::File,
        offset: u64,
        mut checked: u64,
        len: u64,
    ) -> io::Result<u64> {
        use std::os::fd::AsRawFd;
        let socket = self.io.fd();
        let mut sent = 0;
        while sent < len {
            if sent == checked {
                let window = (len - sent).min(CACHED_WINDOW_BYTES);
                if !sys::is_cached(file.as_raw_fd(), offset + sent, window) {
                    return Ok(sent);
                }
                checked += window;
            }
            let count = usize::try_from(checked - sent).unwrap_or(usize::MAX);
            let mut at = offset + sent;
            match sys::sendfile(socket, file.as_raw_fd(), &mut at, count) {
                Ok(0) => return Err(self.file_ended(sent, len)),
                Ok(n) => {
                    sent += n as u64;
                    self.body_bytes = sent;
                    // A client that keeps up must not keep the core.
                    glommio::yield_if_needed().await;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.writable().await?,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // This file system cannot sendfile: the ring's way.
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => return Ok(sent),
                Err(e) => return Err(e),
            }
        }
        Ok(sent)
    }

    /// Writes bytes `sent..len` of the body at `offset` of `file` without
    /// copying them: spliced from the file into a pipe of the core's, then
    /// from the pipe into the socket, a pipeful at a time, after the head.
    /// The socket is non-blocking meanwhile, so a splice never waits inside
    /// the kernel for a client that reads slowly (io_uring runs splices on
    /// its worker threads: a waiting one would hold a thread); the
    /// connection waits on the ring for room instead, under the write
    /// timeout. A file system that cannot splice falls back to copying. A
    /// pipe left holding data (the connection failed) is not reused.
    async fn splice_file(
        &mut self,
        file: Rc<std::fs::File>,
        pipe: Rc<Pipe>,
        offset: u64,
        sent: u64,
        len: u64,
    ) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        // io_uring fails a read of a non-blocking file that would wait.
        sys::set_nonblocking(file.as_raw_fd(), false)?;
        self.flush().await?;
        let socket = self.io.fd();
        sys::set_nonblocking(socket, true)?;
        let result = self.splice_through(&file, &pipe, offset, sent, len).await;
        let restored = sys::set_nonblocking(socket, false);
        match result {
            Ok(None) => {
                let mut pipes = self.core.pipes.borrow_mut();
                if pipes.len() < MAX_SPARE_PIPES {
                    if let Ok(pipe) = Rc::try_unwrap(pipe) {
                        pipes.push(pipe);
                    }
                }
                restored
            }
            // Splicing is not supported here: copy the rest.
            Ok(Some(sent)) => {
                restored?;
                self.copy_file(&file, offset, sent, len).await
            }
            Err(e) => Err(e),
        }
    }

    /// The splice loop of [`Conn::splice_file`]: `Ok(None)` when all was
    /// sent, `Ok(Some(sent))` when the file system cannot splice (after
    /// `sent` bytes, with the pipe empty).
    async fn splice_through(
        &mut self,
        file: &Rc<std::fs::File>,
        pipe: &Rc<Pipe>,
        offset: u64,
        mut sent: u64,
        len: u64,
    ) -> io::Result<Option<u64>> {
        use std::os::fd::AsRawFd;
        let ring = self.core.ring.clone();
        let socket = self.io.fd();
        while sent < len {
            let want = u32::try_from((len - sent).min(PIPE_BYTES)).unwrap_or(u32::MAX);
            let at = i64::try_from(offset + sent).unwrap_or(i64::MAX);
            let keep: Rc<dyn std::any::Any> = file.clone();
            let (filled, _) = ring
                .splice((file.as_raw_fd(), at), pipe.write.as_raw_fd(), want, false, keep)
                .await;
            let mut in_pipe = match filled {
                Ok(0) => return Err(self.file_ended(sent, len)),
                Ok(n) => n as u64,
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => return Ok(Some(sent)),
                Err(e) => return Err(self.file_failed(e)),
            };
            while in_pipe > 0 {
                let chunk = u32::try_from(in_pipe).unwrap_or(u32::MAX);
                let keep: Rc<dyn std::any::Any> = pipe.clone();
                let (moved, _) =
                    ring.splice((pipe.read.as_raw_fd(), -1), socket, chunk, true, keep).await;
                match moved {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(n) => {
                        in_pipe -= n as u64;
                        sent += n as u64;
                        self.body_bytes = sent;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.writable().await?,
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(None)
    }

    /// The error that ends a response whose file ended after `sent` of its
    /// `len` bytes (it shrank), logged.
    fn file_ended(&self, sent: u64, len: u64) -> io::Error {
        error!(peer = %self.peer, "file ended at {sent} of {len} bytes");
        io::Error::other("file ended short")
    }

    /// A failed read of a response's file, logged.
    fn file_failed(&self, e: io::Error) -> io::Error {
        error!(peer = %self.peer, "file read failed: {e}");
        e
    }

    /// A server-side close: see [`linger`], for [`LINGER`] at most.
    async fn linger_close(&mut self) {
        linger(&self.io, &mut self.rbuf.buf, Instant::now() + LINGER).await;
    }
}

/// What of a response is still to be written once its head is encoded.
enum Unsent {
    Nothing(Next),
    /// A body too large to copy into the write buffer.
    Bytes(Cow<'static, [u8]>, Next),
    /// A streamed body.
    Stream(BodyStream, StreamFraming, Next),
    /// A file's bytes: the file, offset and length.
    File(std::fs::File, u64, u64, Next),
}

/// How a streamed body is delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StreamFraming {
    /// Chunked transfer coding.
    Chunked,
    /// Raw, ended by closing the connection (HTTP/1.0).
    UntilClose,
    /// Raw, exactly this many bytes (the `Content-Length` sent).
    Exactly(u64),
}

enum BodyKind {
    Empty,
    Full(usize),
    Stream,
    Sized(u64),
}

fn response_body(response: &Response) -> BodyKind {
    match response.body_ref() {
        Body::Empty => BodyKind::Empty,
        Body::Full(bytes) => BodyKind::Full(bytes.len()),
        Body::Stream(_) => BodyKind::Stream,
        Body::Sized(_, len) | Body::File { len, .. } => BodyKind::Sized(*len),
    }
}

/// Whether the server can put `response` on the wire: a status the
/// application may send and headers that cannot split the response.
fn is_valid(response: &Response) -> bool {
    (200..=599).contains(&response.status())
        && response
            .headers()
            .all(|(n, v)| http::is_valid_header_name(n) && http::is_valid_header_value(v))
}

/// Calls the application. Its future is made in a recycled block: it is as
/// large as the application's largest handler, and is then never copied (a
/// request's handling moves only the block's address). Not an `async fn`:
/// the request goes straight into the application's future instead of
/// being copied into one of its own first.
fn call_app<A: App>(
    core: &CoreState<A>,
    request: Request,
) -> AppCall<impl Future<Output = Response> + '_> {
    let call = move || Recycled::with(|| core.app.call(request, &core.cx));
    AppCall { future: std::panic::catch_unwind(AssertUnwindSafe(call)).ok() }
}

/// The application's future for one request, each poll under
/// `catch_unwind`: `None` if making or polling it panicked. One layer, so
/// the response is handed straight to the connection.
struct AppCall<F> {
    future: Option<Recycled<F>>,
}

impl<F: Future<Output = Response>> Future for AppCall<F> {
    type Output = Option<Response>;

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Option<Response>> {
        // `Recycled` is a pointer: `AppCall` is `Unpin` whatever `F` is.
        let Some(future) = self.get_mut().future.as_mut() else {
            return Poll::Ready(None);
        };
        match std::panic::catch_unwind(AssertUnwindSafe(|| Pin::new(future).poll(cx))) {
            Ok(Poll::Ready(response)) => Poll::Ready(Some(response)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(_) => Poll::Ready(None),
        }
    }
}

/// Writes the pending responses while `read`, already queued, waits: both
/// reach the kernel in one submission. A failed write cancels the read.
async fn write_beside<'a>(
    read: Read<'a>,
    io: &Transport,
    wbuf: &mut Vec<u8>,
    stall: Stall<'_>,
) -> io::Result<Read<'a>> {
    match write_pending(io, wbuf, stall).await {
        Ok(()) => Ok(read),
        Err(e) => {
            let _ = read.cancel().await;
            Err(e)
        }
    }
}

/// Writes and empties `wbuf` (keeping its memory unless a large response
/// made it grow).
async fn write_pending(io: &Transport, wbuf: &mut Vec<u8>, stall: Stall<'_>) -> io::Result<()> {
    if wbuf.is_empty() {
        return Ok(());
    }
    let (result, back) = write_within(io, OpBuf::Vec(std::mem::take(wbuf)), Some(stall)).await;
    if let OpBuf::Vec(mut back) = back {
        back.clear();
        if back.capacity() <= WRITE_HIGH_WATER * 2 {
            *wbuf = back;
        }
    }
    result
}

/// How long one write may wait for the socket to take something: the
/// core's sweeper enforces it through the connection's watch.
#[derive(Clone, Copy)]
struct Stall<'a> {
    watch: &'a Watch,
    limit: Duration,
}

impl Stall<'_> {
    /// Starts the stall limit of a write that waits on the client.
    fn arm(&self) {
        self.watch.writing.set(true);
        self.watch.deadline.set(Some(Instant::now() + self.limit));
    }

    /// Ends it: `TimedOut` if the sweeper ended the write for taking
    /// nothing that long.
    fn disarm(&self) -> io::Result<()> {
        self.watch.deadline.set(None);
        self.watch.writing.set(false);
        if self.watch.write_cut.get() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "response write stalled"));
        }
        Ok(())
    }
}

/// Writes all of `data`, and gives it back. With a `stall` limit the write
/// fails with `TimedOut` when the client takes nothing for that long (a slow
/// but reading client is never cut off); without one, the caller bounds
/// the whole write.
async fn write_within(
    io: &Transport,
    mut data: OpBuf,
    stall: Option<Stall<'_>>,
) -> (io::Result<()>, OpBuf) {
    let len = data.len();
    let mut at = 0;
    while at < len {
        if let Some(stall) = stall {
            stall.arm();
        }
        let (result, back) = io.write(data, at).await;
        if let Some(Err(stalled)) = stall.map(|stall| stall.disarm()) {
            return (Err(stalled), back);
        }
        data = back;
        match result {
            Ok(0) => return (Err(io::ErrorKind::WriteZero.into()), data),
            Ok(n) => at += n,
            Err(e) => return (Err(e), data),
        }
    }
    (Ok(()), data)
}

/// Whether unparseable bytes at least start like a HEAD request, so its
/// refusal carries no body.
fn is_head_request(buf: &[u8]) -> bool {
    http::skip_empty_lines(buf).starts_with(b"HEAD ")
}
