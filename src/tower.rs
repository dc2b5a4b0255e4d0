//! Any `tower::Service` over `http` types (an axum `Router`, with its
//! tower-http middleware) served on every core: [`TowerApp`] adapts one to
//! [`App`], one instance per core from the factory, so the service, its
//! state and its middleware run thread-per-core on the ring. Needs the
//! `tower` feature.
//!
//! The request body streams into the service as [`TowerBody`] (an
//! `http_body::Body` over the native [`RequestBody`]); the response body
//! streams out, with `Content-Length` when the body's size hint is exact,
//! else chunked. A body that is all there at once is sent in one write.
//!
//! What does not work, and why: a glommio core runs no tokio reactor, so a
//! handler that needs one (`tokio::time::sleep`, a tokio-based database
//! pool, `tokio::spawn`) panics ("there is no reactor running"); the
//! request gets a 500 and the log names the panic, and the core goes on.
//! Use `uring_serve::sleep`, `Context::blocking` for blocking clients, or
//! per-core clients built on the core. A handler that never completes is
//! cut at the graceful-shutdown deadline. axum's `WebSocketUpgrade` cannot
//! work here (it needs hyper's `OnUpgrade`, which has no public
//! constructor, and spawns on tokio): route the WebSocket path to
//! [`crate::ws::accept`] in the native [`App`] and the rest to the router.

use std::borrow::Cow;
use std::future::poll_fn;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use bytes::{Buf, Bytes};
use futures_lite::Stream;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tower_service::Service;

use crate::app::{App, BodyError, BoxError, Context, Request, RequestBody, Response};

/// A value that never leaves the core it was made on, marked `Send` so
/// that tower and axum, which ask for `Send` bodies and futures, accept it.
///
/// SAFETY (of the `unsafe impl Send` below): a core runs one glommio
/// executor on one thread, and every request, its body and the future that
/// serves it are made, polled and dropped on that thread; nothing here
/// hands them to another thread. The mark is a promise to the compiler,
/// not to the user: a service that moves such a value to another thread
/// (`std::thread::spawn` with the request body, say) breaks it, and must
/// not.
struct CoreLocal<T>(T);

// SAFETY: see `CoreLocal`: the value stays on its core's thread.
unsafe impl<T> Send for CoreLocal<T> {}

/// The request body a tower service gets: the native [`RequestBody`],
/// read as the service asks, as an `http_body::Body` of `Bytes`.
pub struct TowerBody(CoreLocal<RequestBody>);

impl std::fmt::Debug for TowerBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0 .0.fmt(f)
    }
}

impl HttpBody for TowerBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let body = &mut self.get_mut().0 .0;
        Pin::new(body)
            .poll_next(cx)
            .map(|piece| piece.map(|piece| piece.map(|p| Frame::data(Bytes::from(p)))))
    }

    fn size_hint(&self) -> SizeHint {
        match self.0 .0.declared_len() {
            Some(len) => SizeHint::with_exact(len),
            None => SizeHint::default(),
        }
    }
}

/// A tower service served as an [`App`]: one per core.
#[derive(Debug, Clone)]
pub struct TowerApp<S> {
    service: S,
    peer_addr: bool,
}

impl<S> TowerApp<S> {
    /// Serves `service` (an axum `Router`, say) on the core it is built on.
    pub fn new(service: S) -> TowerApp<S> {
        TowerApp { service, peer_addr: false }
    }

    /// Puts the peer's address in each request's extensions as a
    /// `SocketAddr` (axum: `Extension<SocketAddr>`; none on a Unix
    /// socket). Off unless asked for, as axum's
    /// `into_make_service_with_connect_info` is: it costs an allocation
    /// per request.
    pub fn with_peer_addr(mut self) -> TowerApp<S> {
        self.peer_addr = true;
        self
    }
}

impl<S, B> App for TowerApp<S>
where
    S: Service<http::Request<TowerBody>, Response = http::Response<B>> + Clone + 'static,
    S::Error: std::fmt::Display,
    S::Future: 'static,
    B: HttpBody + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    async fn call(&self, req: Request, _cx: &Context) -> Response {
        let peer = req.peer_addr().filter(|_| self.peer_addr);
        let mut request = match to_http(req) {
            Ok(request) => request,
            Err(why) => return Response::plain(400, format!("{why}\n")),
        };
        if let Some(peer) = peer {
            request.extensions_mut().insert(peer);
        }
        let mut service = self.service.clone();
        if let Err(e) = poll_fn(|cx| service.poll_ready(cx)).await {
            tracing::error!("tower service not ready: {e}; answered 503");
            return Response::service_unavailable();
        }
        match service.call(request).await {
            Ok(response) => from_http(response),
            Err(e) => {
                tracing::error!("tower service failed: {e}; answered 500");
                Response::internal_error()
            }
        }
    }
}

/// The native request as an `http` request (its body streamed as
/// [`TowerBody`]), for an application that hands some requests to a tower
/// service itself. Its extensions are empty (the peer's address is
/// [`Request::peer_addr`], to insert if the service wants it).
///
/// The head is copied once; the target and every header value are slices
/// of that copy (a copy each cost a third of the adapter's instructions).
pub fn to_http(mut req: Request) -> Result<http::Request<TowerBody>, http::Error> {
    let head = req.head();
    let raw = Bytes::copy_from_slice(head.bytes());
    let method = http::Method::from_bytes(head.method_str().as_bytes())?;
    let uri = http::Uri::from_maybe_shared(raw.slice(head.target_range()))?;
    let version = match head.version() {
        crate::http::Version::Http10 => http::Version::HTTP_10,
        crate::http::Version::Http11 => http::Version::HTTP_11,
    };
    let mut headers = http::HeaderMap::with_capacity(head.header_ranges().len());
    for (name, value) in head.header_ranges() {
        headers.append(
            http::HeaderName::from_bytes(&raw[name.clone()])?,
            http::HeaderValue::from_maybe_shared(raw.slice(value.clone()))?,
        );
    }
    let mut request = http::Request::new(TowerBody(CoreLocal(req.take_body())));
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = version;
    *request.headers_mut() = headers;
    Ok(request)
}

/// An `http` response (a tower service's) as the native one: headers
/// copied (a value that is not visible ASCII is left out), the body whole
/// when it is all there at once, else streamed, with its length when the
/// size hint is exact or the service set `Content-Length`, else chunked.
/// The framing headers are the server's to write (see [`Response`]).
pub fn from_http<B>(response: http::Response<B>) -> Response
where
    B: HttpBody + 'static,
    B::Error: Into<BoxError>,
{
    let (parts, body) = response.into_parts();
    let mut body = Box::pin(body);
    let mut native = Response::new(parts.status.as_u16());
    let mut declared_len = None;
    for (name, value) in &parts.headers {
        if name == http::header::CONTENT_LENGTH {
            declared_len = value.to_str().ok().and_then(|v| v.parse::<u64>().ok());
            continue;
        }
        if name == http::header::TRANSFER_ENCODING {
            continue;
        }
        if let Ok(value) = value.to_str() {
            native = native.header(common(name.as_str()), common(value));
        }
    }
    let len = body.size_hint().exact().or(declared_len);
    if len == Some(0) || body.is_end_stream() {
        return native;
    }
    // Most bodies are whole already: one poll, with a waker that is never
    // woken, tells.
    let mut first = Vec::new();
    let mut cx = TaskContext::from_waker(futures_util::task::noop_waker_ref());
    match body.as_mut().poll_frame(&mut cx) {
        Poll::Ready(Some(Ok(frame))) => {
            if let Ok(data) = frame.into_data() {
                first = into_vec(data);
            }
            if body.is_end_stream() {
                return native.body(first);
            }
        }
        Poll::Ready(None) => return native,
        Poll::Ready(Some(Err(e))) => {
            let e: BoxError = e.into();
            tracing::error!("tower response body failed: {e}; answered 500");
            return Response::internal_error();
        }
        Poll::Pending => {}
    }
    let stream = BodyStream { body: CoreLocal(body), first: Some(first) };
    match len {
        Some(len) => native.stream_sized(len, stream),
        None => native.stream(stream),
    }
}

/// The header names and values that most responses carry, kept as the
/// static strings they are rather than copied into a new one each time.
const COMMON: [&str; 16] = [
    "content-type",
    "text/plain; charset=utf-8",
    "application/json",
    "text/html; charset=utf-8",
    "application/octet-stream",
    "content-encoding",
    "gzip",
    "br",
    "zstd",
    "vary",
    "accept-encoding",
    "cache-control",
    "no-cache",
    "location",
    "etag",
    "last-modified",
];

/// `s` as one of [`COMMON`] if it is one, else copied.
fn common(s: &str) -> Cow<'static, str> {
    match COMMON.iter().find(|known| **known == s) {
        Some(known) => Cow::Borrowed(known),
        None => Cow::Owned(s.to_owned()),
    }
}

/// A response body as the native body stream.
struct BodyStream<B> {
    body: CoreLocal<Pin<Box<B>>>,
    first: Option<Vec<u8>>,
}

impl<B> Stream for BodyStream<B>
where
    B: HttpBody,
    B::Error: Into<BoxError>,
{
    type Item = Result<Vec<u8>, BoxError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(first) = this.first.take().filter(|first| !first.is_empty()) {
            return Poll::Ready(Some(Ok(first)));
        }
        loop {
            match std::task::ready!(this.body.0.as_mut().poll_frame(cx)) {
                None => return Poll::Ready(None),
                Some(Err(e)) => return Poll::Ready(Some(Err(e.into()))),
                Some(Ok(frame)) => {
                    let Ok(data) = frame.into_data() else { continue };
                    let piece = into_vec(data);
                    if !piece.is_empty() {
                        return Poll::Ready(Some(Ok(piece)));
                    }
                }
            }
        }
    }
}

/// A body frame's bytes as the vector the native body takes (no copy when
/// the frame is an unshared `Bytes`).
fn into_vec(mut data: impl Buf) -> Vec<u8> {
    let len = data.remaining();
    Vec::from(data.copy_to_bytes(len))
}
