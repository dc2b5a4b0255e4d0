//! The application interface: [`App`], [`Request`] (with its
//! [`RequestBody`], read as it arrives), [`Response`], [`Body`] and
//! [`Context`].
//!
//! An application is built once per core by the factory given to
//! [`crate::Builder::serve`] and lives on that core only, so it may hold
//! `Rc`/`RefCell` state without locks. This module knows nothing about
//! sockets or the wire format; `conn` turns bytes into a [`Request`] and a
//! [`Response`] back into bytes.

use std::borrow::Cow;
#[cfg(feature = "test-support")]
use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use futures_lite::{AsyncRead, AsyncWrite, Stream};

use crate::blocking::{BlockingError, BlockingPool};
use crate::config::WsSettings;
use crate::cores::CoreId;
use crate::http::{Method, RequestHead, Version};
use crate::metrics::{CoreMetrics, Metrics};
use crate::proxy::Origin;
use crate::recycle;
use crate::tls::TlsInfo;

/// The error type of fallible application hooks.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A body produced piece by piece; sent chunked (or close-delimited to an
/// HTTP/1.0 client). An `Err` item ends the response abruptly: the
/// connection is closed without the final chunk, so an HTTP/1.1 client can
/// tell the body is incomplete (an HTTP/1.0 client, reading to the close,
/// cannot).
pub type BodyStream = Pin<Box<dyn Stream<Item = Result<Vec<u8>, BoxError>>>>;

/// An HTTP application, one instance per core.
///
/// ```
/// use uring_serve::{App, Context, Request, Response};
///
/// struct Hello;
///
/// impl App for Hello {
///     async fn call(&self, req: Request, _cx: &Context) -> Response {
///         Response::text(format!("hello from {}\n", req.path()))
///     }
/// }
/// ```
pub trait App: 'static {
    /// Answers one request. A panic here (or while the returned future is
    /// polled) is caught: the client gets a 500 and its connection is
    /// closed; other connections are not affected.
    fn call(&self, req: Request, cx: &Context) -> impl Future<Output = Response>;

    /// Runs once on each core before it accepts connections. An error stops
    /// the whole server with that error.
    fn on_start(&self, cx: &Context) -> impl Future<Output = Result<(), BoxError>> {
        let _ = cx;
        async { Ok(()) }
    }

    /// Runs once on each core when the server stops.
    fn on_stop(&self, cx: &Context) -> impl Future<Output = ()> {
        let _ = cx;
        async {}
    }
}

/// What an application may ask of the core it runs on.
#[derive(Debug)]
pub struct Context {
    core: CoreId,
    blocking: BlockingPool,
    metrics: Arc<CoreMetrics>,
    ws: WsSettings,
    /// Set by [`Context::inject_executor_fault`].
    #[cfg(feature = "test-support")]
    injected_fault: Cell<bool>,
}

impl Context {
    pub(crate) fn new(
        core: CoreId,
        blocking: BlockingPool,
        metrics: Arc<CoreMetrics>,
        ws: WsSettings,
    ) -> Context {
        Context {
            core,
            blocking,
            metrics,
            ws,
            #[cfg(feature = "test-support")]
            injected_fault: Cell::new(false),
        }
    }

    /// Fault injection for the crate's own tests (the `test-support`
    /// feature): the core's executor panics outside any request when it
    /// next accepts a connection, as a runtime bug would, so that crash
    /// recovery can be tested.
    #[cfg(feature = "test-support")]
    pub fn inject_executor_fault(&self) {
        self.injected_fault.set(true);
    }

    /// Whether a fault was injected since the last call (never without the
    /// `test-support` feature).
    pub(crate) fn take_injected_fault(&self) -> bool {
        #[cfg(feature = "test-support")]
        return self.injected_fault.replace(false);
        #[cfg(not(feature = "test-support"))]
        false
    }

    /// The server's WebSocket settings (`--ws-*`), for `ws::accept`.
    pub fn ws_settings(&self) -> WsSettings {
        self.ws
    }

    /// The core this application instance runs on.
    pub fn core(&self) -> CoreId {
        self.core
    }

    /// Runs `job` on this core's blocking pool and waits for its value
    /// without blocking the core.
    ///
    /// A full pool is [`BlockingError::Overloaded`] and a panic in `job` is
    /// [`BlockingError::Panicked`]; both convert into the response to send
    /// (503 with `Retry-After`, or 500):
    ///
    /// ```
    /// # use uring_serve::{Context, Response};
    /// async fn handler(cx: &Context) -> Response {
    ///     match cx.blocking(|| std::fs::read_to_string("/etc/hostname")).await {
    ///         Ok(Ok(name)) => Response::text(name),
    ///         Ok(Err(_)) => Response::new(404),
    ///         Err(e) => e.into(),
    ///     }
    /// }
    /// ```
    pub async fn blocking<F, T>(&self, job: F) -> Result<T, BlockingError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let pending = self.blocking.submit(job);
        self.note_blocking();
        let result = match pending {
            Ok(pending) => pending.await,
            Err(e) => Err(e),
        };
        self.note_blocking();
        match &result {
            Err(BlockingError::Overloaded) => self.metrics.shed_blocking_queue.inc(),
            Err(BlockingError::Panicked) => self.metrics.blocking_panics.inc(),
            Ok(_) => {}
        }
        result
    }

    fn note_blocking(&self) {
        self.metrics.blocking_in_pool.set(self.blocking.in_pool() as u64);
        self.metrics.blocking_queued.set(self.blocking.queued() as u64);
    }

    /// This core's counters.
    pub fn metrics(&self) -> Metrics {
        self.metrics.snapshot(self.core)
    }
}

/// Waits `duration` without blocking the core (a timer on the core's ring).
/// Only for use inside an application running on a server core.
pub async fn sleep(duration: Duration) {
    glommio::timer::sleep(duration).await;
}

/// A request: its head, and its body as it arrives ([`RequestBody`]).
pub struct Request {
    head: RequestHead,
    body: RequestBody,
    peer_addr: Option<SocketAddr>,
    origin: Origin,
    tls: Option<Rc<TlsInfo>>,
}

impl Request {
    pub(crate) fn new(
        head: RequestHead,
        body: RequestBody,
        peer_addr: Option<SocketAddr>,
        origin: Origin,
        tls: Option<Rc<TlsInfo>>,
    ) -> Request {
        Request { head, body, peer_addr, origin, tls }
    }

    /// The method.
    pub fn method(&self) -> Method {
        self.head.method()
    }

    /// The method as sent (`"GET"`, `"PROPFIND"`, ...).
    pub fn method_str(&self) -> &str {
        self.head.method_str()
    }

    /// The request target as sent.
    pub fn target(&self) -> &str {
        self.head.target()
    }

    /// The path, without the query; percent-encoding left as sent.
    pub fn path(&self) -> &str {
        self.head.path()
    }

    /// The query (after `?`), if any.
    pub fn query(&self) -> Option<&str> {
        self.head.query()
    }

    /// The raw value of the first query parameter named `name`
    /// (`?ms=5` gives `Some("5")`; `?flag` gives `Some("")`).
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query()?.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (key == name).then_some(value)
        })
    }

    /// The host the request is for: an absolute-form target's authority,
    /// else the Host header.
    pub fn host(&self) -> Option<&str> {
        self.head.host()
    }

    /// The HTTP version.
    pub fn version(&self) -> Version {
        self.head.version()
    }

    /// The value of the first header named `name` (any case).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.head.header(name)
    }

    /// The header lines, in the order sent.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> + '_ {
        self.head.headers()
    }

    /// The head as parsed.
    #[cfg(feature = "tower")]
    pub(crate) fn head(&self) -> &RequestHead {
        &self.head
    }

    /// The body, read as it arrives (see [`RequestBody`]).
    pub fn body(&mut self) -> &mut RequestBody {
        &mut self.body
    }

    /// Takes the body, to read it apart from the request (in a streamed
    /// response, say); what is left is an empty body.
    pub fn take_body(&mut self) -> RequestBody {
        std::mem::take(&mut self.body)
    }

    /// Reads the whole body (up to `--max-body-bytes`, which the server
    /// enforces).
    pub async fn read_body(&mut self) -> Result<Vec<u8>, BodyError> {
        self.take_body().collect().await
    }

    /// The address of the connection's other end: the client, or the proxy
    /// in front of the server; `None` on a Unix socket (`--uds`).
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer_addr
    }

    /// The client's address: the peer's, or with `--proxy-headers` and a
    /// trusted peer, the rightmost untrusted address in `X-Forwarded-For`
    /// (port 0, a proxy does not say the client's port). `None` for a
    /// process on a Unix socket that no trusted proxy header names.
    pub fn client_addr(&self) -> Option<SocketAddr> {
        self.origin.client
    }

    /// What the connection's TLS negotiated (the version, the cipher suite,
    /// the client's certificate); `None` over plain HTTP.
    pub fn tls(&self) -> Option<&TlsInfo> {
        self.tls.as_deref()
    }

    /// `"https"` over TLS, or when a trusted proxy said so in
    /// `X-Forwarded-Proto` (`--proxy-headers`); else `"http"`.
    pub fn scheme(&self) -> &'static str {
        self.origin.scheme
    }
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("head", &self.head)
            .field("body", &self.body)
            .field("peer_addr", &self.peer_addr)
            .field("origin", &self.origin)
            .finish()
    }
}

/// Why a request body could not be read to its end. The server also
/// answers for it when the application's response has not started: 408
/// for `TimedOut`, 413 for `TooLarge`, 400 for `Invalid`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BodyError {
    /// The client closed the connection before the body's end.
    Closed,
    /// The body paused longer than `--timeout-body`, or came slower than
    /// `--min-body-rate`.
    TimedOut,
    /// The body grew past `--max-body-bytes`.
    TooLarge,
    /// The chunked framing was malformed (the message says how).
    Invalid(String),
    /// The connection failed while the body was read.
    Io(String),
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodyError::Closed => {
                f.write_str("the client closed the connection before the body's end")
            }
            BodyError::TimedOut => {
                f.write_str("the request body stalled (--timeout-body or --min-body-rate)")
            }
            BodyError::TooLarge => f.write_str("the request body is larger than --max-body-bytes"),
            BodyError::Invalid(why) => write!(f, "invalid request body: {why}"),
            BodyError::Io(why) => write!(f, "the connection failed while the body was read: {why}"),
        }
    }
}

impl std::error::Error for BodyError {}

/// The next piece of a request body: `None` at its end.
pub(crate) type NextPiece = Option<Result<Vec<u8>, BodyError>>;

/// Where a streamed request body comes from: the connection (see `conn`).
pub(crate) trait BodySource {
    /// The next piece of the body, read from the connection when nothing
    /// is buffered (with the server's body timeouts and limits).
    fn next_piece(self: Rc<Self>) -> Pin<Box<dyn Future<Output = NextPiece>>>;
}

/// A request body, read as it arrives: each piece is read from the
/// connection only when asked for, so a handler that reads slowly slows
/// the client (TCP backpressure), never the server's memory. A client that
/// sent `Expect: 100-continue` gets its `100 Continue` when the body is
/// first read, and none if the handler answers without reading it.
///
/// Read it piece by piece ([`RequestBody::piece`], or as a
/// [`Stream`]), or whole ([`RequestBody::collect`]). A body the handler
/// leaves unread closes the connection after the response.
pub struct RequestBody(Arrival);

/// Small when the body is all here (the common case): a request moves
/// into the application's future, and every byte of it is copied then.
enum Arrival {
    /// All of it (or what is left of it: empty once handed over).
    Here(Vec<u8>),
    /// Still arriving.
    Arriving(Box<Arriving>),
}

struct Arriving {
    /// `None` once the body ended.
    source: Option<Rc<dyn BodySource>>,
    pending: Option<Pin<Box<dyn Future<Output = NextPiece>>>>,
    declared: Option<u64>,
}

impl Default for RequestBody {
    fn default() -> RequestBody {
        RequestBody(Arrival::Here(Vec::new()))
    }
}

impl RequestBody {
    /// A body that is all here already.
    pub(crate) fn complete(body: Vec<u8>) -> RequestBody {
        RequestBody(Arrival::Here(body))
    }

    /// A body read from `source` as it is asked for.
    pub(crate) fn streamed(source: Rc<dyn BodySource>, declared: Option<u64>) -> RequestBody {
        RequestBody(Arrival::Arriving(Box::new(Arriving {
            source: Some(source),
            pending: None,
            declared,
        })))
    }

    /// The body's length when it is known before it is read: declared by
    /// the client (`Content-Length`), or the length of a body already all
    /// here. `None` for a chunked body still arriving.
    pub fn declared_len(&self) -> Option<u64> {
        match &self.0 {
            Arrival::Here(body) => Some(body.len() as u64),
            Arrival::Arriving(arriving) => arriving.declared,
        }
    }

    /// The whole body, if all of it has arrived already (no read, no
    /// `100 Continue`); else `None`, and the body is left as it was.
    pub fn whole_if_here(&mut self) -> Option<Vec<u8>> {
        match &mut self.0 {
            Arrival::Here(body) => Some(std::mem::take(body)),
            Arrival::Arriving(_) => None,
        }
    }

    /// The body as a response body stream: for a handler that answers with
    /// what it reads (see [`Response::stream`]).
    pub fn into_stream(self) -> impl Stream<Item = Result<Vec<u8>, BoxError>> {
        futures_lite::StreamExt::map(self, |piece| piece.map_err(BoxError::from))
    }

    /// The next piece of the body, `None` at its end. An error ends the
    /// body: later calls return `None`.
    pub async fn piece(&mut self) -> Option<Result<Vec<u8>, BodyError>> {
        futures_lite::StreamExt::next(self).await
    }

    /// Reads the rest of the body into one vector.
    pub async fn collect(mut self) -> Result<Vec<u8>, BodyError> {
        let mut whole = Vec::new();
        while let Some(piece) = self.piece().await {
            let piece = piece?;
            if whole.is_empty() {
                whole = piece;
            } else {
                whole.extend_from_slice(&piece);
            }
        }
        Ok(whole)
    }
}

impl Stream for RequestBody {
    type Item = Result<Vec<u8>, BodyError>;

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let arriving = match &mut self.get_mut().0 {
            Arrival::Here(body) if body.is_empty() => return std::task::Poll::Ready(None),
            Arrival::Here(body) => return std::task::Poll::Ready(Some(Ok(std::mem::take(body)))),
            Arrival::Arriving(arriving) => arriving,
        };
        let Some(source) = &arriving.source else { return std::task::Poll::Ready(None) };
        let pending = arriving.pending.get_or_insert_with(|| source.clone().next_piece());
        let piece = std::task::ready!(pending.as_mut().poll(cx));
        arriving.pending = None;
        if !matches!(piece, Some(Ok(_))) {
            arriving.source = None;
        }
        std::task::Poll::Ready(piece)
    }
}

impl fmt::Debug for RequestBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Arrival::Here(body) => {
                f.debug_struct("RequestBody").field("here", &body.len()).finish()
            }
            Arrival::Arriving(arriving) => f
                .debug_struct("RequestBody")
                .field("declared", &arriving.declared)
                .field("ended", &arriving.source.is_none())
                .finish(),
        }
    }
}

/// A response body.
#[derive(Default)]
pub enum Body {
    /// No body.
    #[default]
    Empty,
    /// A body whose length is known: sent with `Content-Length`.
    Full(Cow<'static, [u8]>),
    /// A body of unknown length, sent as it is produced.
    Stream(BodyStream),
    /// `len` bytes of `file` from `offset`, sent with `Content-Length`.
    /// What is in the page cache is sent on the core (a small body read
    /// into the connection's write buffer, a large one with `sendfile`);
    /// what is not is read through the core's io_uring, so the core does
    /// not wait for a disk. A file that ends before `len` bytes closes the
    /// connection (the client sees a short body, never a wrong one).
    File {
        /// The file, open for reading.
        file: std::fs::File,
        /// Where the body starts.
        offset: u64,
        /// How many bytes.
        len: u64,
    },
    /// A body of known length, sent with `Content-Length` as it is
    /// produced (a file, say). A stream that ends short of the length, runs
    /// past it, or fails closes the connection: the client sees a
    /// truncated body, never a wrong one.
    Sized(BodyStream, u64),
    /// No body: the response is a `101 Switching Protocols`, and once it is
    /// written the connection is handed to this (see [`Response::upgrade`]).
    Upgrade(OnUpgrade),
}

/// What takes over a connection after its `101 Switching Protocols`.
pub type OnUpgrade = Box<dyn FnOnce(Upgraded) -> Pin<Box<dyn Future<Output = ()>>>>;

/// The I/O of an upgraded connection (crate-private: see [`Upgraded`]).
pub(crate) trait UpgradedIo: AsyncRead + AsyncWrite {
    /// Completes when the server begins a graceful shutdown.
    fn stopping(&self) -> Pin<Box<dyn Future<Output = ()>>>;
}

/// A connection taken over after a `101 Switching Protocols` (see
/// [`Response::upgrade`]): its bytes both ways, as futures-io
/// `AsyncRead + AsyncWrite`, on the core's ring. Bytes the client sent
/// right after the upgrade request come first. It is still one of the
/// server's connections: it counts toward `--max-connections`, a write
/// the client does not take within `--timeout-write` ends it, and at a
/// graceful shutdown it is cut when the drain deadline passes. No other
/// timeout applies: a protocol's liveness is its own (WebSocket pings).
/// A write is taken whole once it starts: `poll_write` that returned
/// `Pending` completes with the count of that first call's buffer, so call
/// it again with the same bytes (as `write_all` does).
pub struct Upgraded {
    io: Pin<Box<dyn UpgradedIo>>,
}

impl Upgraded {
    pub(crate) fn new(io: Pin<Box<dyn UpgradedIo>>) -> Upgraded {
        Upgraded { io }
    }

    /// Completes when the server begins a graceful shutdown: the moment to
    /// end the protocol cleanly (a WebSocket's Close 1001) before the
    /// drain deadline cuts the connection.
    pub fn stopping(&self) -> impl Future<Output = ()> {
        self.io.stopping()
    }
}

impl fmt::Debug for Upgraded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Upgraded")
    }
}

impl AsyncRead for Upgraded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut [u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.io.as_mut().poll_read(cx, buf)
    }
}

impl AsyncWrite for Upgraded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.io.as_mut().poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        self.io.as_mut().poll_flush(cx)
    }

    fn poll_close(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        self.io.as_mut().poll_close(cx)
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Body::Empty => f.write_str("Body::Empty"),
            Body::Full(bytes) => write!(f, "Body::Full({} bytes)", bytes.len()),
            Body::Stream(_) => f.write_str("Body::Stream"),
            Body::Sized(_, len) => write!(f, "Body::Sized({len} bytes)"),
            Body::File { offset, len, .. } => write!(f, "Body::File({len} bytes at {offset})"),
            Body::Upgrade(_) => f.write_str("Body::Upgrade"),
        }
    }
}

impl From<&'static str> for Body {
    fn from(s: &'static str) -> Body {
        Body::Full(Cow::Borrowed(s.as_bytes()))
    }
}

impl From<String> for Body {
    fn from(s: String) -> Body {
        Body::Full(Cow::Owned(s.into_bytes()))
    }
}

impl From<&'static [u8]> for Body {
    fn from(b: &'static [u8]) -> Body {
        Body::Full(Cow::Borrowed(b))
    }
}

impl From<Vec<u8>> for Body {
    fn from(b: Vec<u8>) -> Body {
        Body::Full(Cow::Owned(b))
    }
}

/// A response: status, headers and body.
///
/// The server adds `Date`, `Server` (unless set here), and the framing
/// headers: any `Content-Length` or `Transfer-Encoding` set here is
/// replaced, and `Connection: close` set here closes the connection after
/// the response.
#[derive(Debug)]
pub struct Response {
    status: u16,
    headers: Vec<(Cow<'static, str>, Cow<'static, str>)>,
    body: Body,
}

impl Response {
    /// An empty response with `status` (200..=599; anything else is
    /// answered as a 500).
    pub fn new(status: u16) -> Response {
        let headers = recycle::take(&recycle::RESPONSE_HEADERS);
        Response { status, headers, body: Body::Empty }
    }

    /// `200 OK` with a `text/plain; charset=utf-8` body.
    pub fn text(body: impl Into<Cow<'static, str>>) -> Response {
        let body = match body.into() {
            Cow::Borrowed(s) => Body::Full(Cow::Borrowed(s.as_bytes())),
            Cow::Owned(s) => Body::Full(Cow::Owned(s.into_bytes())),
        };
        Response::plain(200, body)
    }

    /// `status` with a `text/plain; charset=utf-8` body: errors and other
    /// short answers (`Response::plain(404, "not found\n")`).
    pub fn plain(status: u16, body: impl Into<Body>) -> Response {
        Response::new(status).header("content-type", "text/plain; charset=utf-8").body(body)
    }

    /// `503 Service Unavailable` with `Retry-After: 1` and
    /// `Connection: close`: the answer to a request shed by overload.
    pub fn service_unavailable() -> Response {
        Response::plain(503, "service unavailable, retry later\n")
            .header("retry-after", "1")
            .header("connection", "close")
    }

    /// `500 Internal Server Error`: the answer when the application panics.
    pub fn internal_error() -> Response {
        Response::plain(500, "internal server error\n")
    }

    /// Adds a header. Names and values are checked when the response is
    /// sent: one with CR, LF or another control byte turns the response into
    /// a 500 rather than reach the wire.
    pub fn header(
        mut self,
        name: impl Into<Cow<'static, str>>,
        value: impl Into<Cow<'static, str>>,
    ) -> Response {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Body>) -> Response {
        self.body = body.into();
        self
    }

    /// A `101 Switching Protocols` to `protocol` (the `Upgrade` header):
    /// once it is written, `on_upgrade` gets the connection ([`Upgraded`])
    /// and runs on the connection's task until it returns, when the
    /// connection closes. The request's `--limit-concurrency` permit is
    /// let go once the `101` is written (an open upgraded connection is a
    /// connection, not a request in flight). Only for a request that asked
    /// for `protocol` in its `Upgrade` header (RFC 9110 §7.8); the
    /// application checks that, and the protocol's own handshake.
    pub fn upgrade<F, Fut>(protocol: impl Into<Cow<'static, str>>, on_upgrade: F) -> Response
    where
        F: FnOnce(Upgraded) -> Fut + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        let on_upgrade: OnUpgrade = Box::new(move |io| Box::pin(on_upgrade(io)));
        let mut response = Response::new(101).header("upgrade", protocol);
        response.body = Body::Upgrade(on_upgrade);
        response
    }

    /// Sets a streamed body of unknown length.
    pub fn stream(
        mut self,
        stream: impl Stream<Item = Result<Vec<u8>, BoxError>> + 'static,
    ) -> Response {
        self.body = Body::Stream(Box::pin(stream));
        self
    }

    /// Sets a body of `len` bytes produced by `stream`, sent with
    /// `Content-Length` (see [`Body::Sized`]).
    pub fn stream_sized(
        mut self,
        len: u64,
        stream: impl Stream<Item = Result<Vec<u8>, BoxError>> + 'static,
    ) -> Response {
        self.body = Body::Sized(Box::pin(stream), len);
        self
    }

    /// Sets `len` bytes of `file` from `offset` as the body (see
    /// [`Body::File`]).
    pub fn file(mut self, file: std::fs::File, offset: u64, len: u64) -> Response {
        self.body = Body::File { file, offset, len };
        self
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The headers set by the application.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> + Clone {
        self.headers.iter().map(|(n, v)| (n.as_ref(), v.as_ref()))
    }

    /// The value of the first header named `name` (any case).
    pub fn header_value(&self, name: &str) -> Option<&str> {
        self.headers().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v)
    }

    pub(crate) fn header_list(&self) -> &[(Cow<'static, str>, Cow<'static, str>)] {
        &self.headers
    }

    pub(crate) fn body_ref(&self) -> &Body {
        &self.body
    }

    /// The body, leaving the response without one.
    pub(crate) fn take_body(&mut self) -> Body {
        std::mem::take(&mut self.body)
    }
}

impl Drop for Response {
    fn drop(&mut self) {
        recycle::give(&recycle::RESPONSE_HEADERS, std::mem::take(&mut self.headers));
    }
}

impl From<BlockingError> for Response {
    /// 503 with `Retry-After: 1` and `Connection: close` for an overload
    /// (the same answer as admission control), 500 for a panic.
    fn from(error: BlockingError) -> Response {
        match error {
            BlockingError::Overloaded => Response::service_unavailable(),
            BlockingError::Panicked => Response::internal_error(),
        }
    }
}
