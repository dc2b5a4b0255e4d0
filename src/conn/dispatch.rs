//! One request, from its parsed head to its response: the health path and
//! `OPTIONS *` answered by the server, admission, the body, the
//! application's call (its panics caught), refusals.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::Poll;

use futures_lite::FutureExt;
use tracing::{debug, error};

use std::rc::Rc;

use super::body::{self, Arrival, BodyEnd, BodyReader, Failure};
use super::error::ConnError;
use super::upgrade::UpgradedSocket;
use super::{Conn, Next, Shared, Unsent};
use crate::admission::Permit;
use crate::app::{App, Body, Request, RequestBody, Response, Upgraded};
use crate::http::{self, BodyFraming, Method, ParseError, RequestHead, Version};
use crate::io::transport::Transport;
use crate::metrics::TimeoutKind;
use crate::proxy::{self, Origin};
use crate::recycle::Recycled;

impl<A: App, T: Transport> Conn<A, T> {
    pub(super) async fn handle(&mut self, head: RequestHead) -> Result<Next, ConnError> {
        let is_head = head.method() == Method::Head;
        let http10 = head.version() == Version::Http10;
        let tls = self.io.tls();
        let origin = self.origin(&head, tls.is_some());
        self.status = None;
        if let Some(log) = &self.shared.access_log {
            log.start(&mut self.log_line, origin.client, origin.scheme, &head);
        }
        if self.shared.health_path.as_deref() == Some(head.path()) {
            let response = self.shared.health(head.method());
            // A body is not read here: the connection cannot go on.
            let keep_alive = self.may_go_on(&head) && head.framing() == BodyFraming::Empty;
            return self.respond(response, is_head, http10, keep_alive).await;
        }
        if let (Method::Options, "*", Some(allow)) =
            (head.method(), head.path(), &self.shared.options_allow)
        {
            // About the server, not a resource (RFC 9110 §9.3.7).
            let response = Response::new(200).header("allow", allow.to_string());
            let keep_alive = self.may_go_on(&head) && head.framing() == BodyFraming::Empty;
            return self.respond(response, false, http10, keep_alive).await;
        }
        let Some(permit) = self.shared.admission.try_admit() else {
            // Over --limit-concurrency: shed before reading the body.
            self.shared.metrics.shed_concurrency.inc();
            return self.respond(Response::service_unavailable(), is_head, http10, false).await;
        };
        // Most requests have no body, or all of it is here already: the
        // application gets it whole. The rest is read as the application
        // asks, from the connection, after the responses before it.
        let arrival = match head.framing() {
            BodyFraming::Empty => Arrival::Whole(Vec::new()),
            framing => body::arrival(
                framing,
                head.expect_continue(),
                &mut self.rbuf,
                &self.io,
                &self.watch,
                self.shared.timeouts,
                &self.shared.limits,
            ),
        };
        let (body, reader) = match arrival {
            Arrival::Whole(body) => (RequestBody::complete(body), None),
            Arrival::Streamed(reader, declared) => {
                self.flush().await?;
                (reader.body(declared), Some(reader))
            }
            Arrival::Refused(e) => {
                self.refuse(e, is_head).await?;
                return Ok(Next::Close);
            }
        };
        self.shared.metrics.requests.inc();
        let keep_alive = head.keep_alive();
        let request = Request::new(head, body, self.peer.0, origin, tls);
        let (mut response, keep_alive) = match call_app(&self.shared, request).await {
            Ok(response) => (response, keep_alive),
            Err(why) => {
                self.shared.metrics.app_panics.inc();
                error!(peer = %self.peer, "application panicked ({why}); answered 500");
                (Response::internal_error(), false)
            }
        };
        if let Body::Upgrade(_) = response.body_ref() {
            if reader.is_some() {
                error!(peer = %self.peer, "an upgrade answered before the request body was read; answered 500");
                let response = Response::internal_error();
                self.respond(response, is_head, http10, false).await?;
                return Ok(Next::Close);
            }
            return self.switch(response, permit).await;
        }
        let mut keep_alive = keep_alive && self.may_go_on_after();
        if let Some(reader) = &reader {
            // A body that failed before the response started is answered
            // by the server; one left unread closes the connection (unless
            // a streamed response reads the rest).
            let end = reader.failure();
            match end {
                Some(Failure::TimedOut) => {
                    self.time_out(TimeoutKind::Body).await?;
                    return Ok(Next::Close);
                }
                Some(Failure::Refused(e)) => {
                    self.refuse(e, is_head).await?;
                    return Ok(Next::Close);
                }
                Some(Failure::Gone) => return Ok(Next::Close),
                None => {}
            }
            let streamed = matches!(response.body_ref(), Body::Stream(_) | Body::Sized(..));
            keep_alive &= streamed || reader.is_complete();
            if streamed && reader.take_continue() {
                // The response reads the body as it is written: the client
                // holding it back must hear `100 Continue` first.
                self.wbuf.extend_from_slice(http::CONTINUE);
            }
        }
        let next = match self.encode_response(&mut response, is_head, http10, keep_alive) {
            Unsent::Nothing(next) => next,
            unsent => self.send_rest(unsent).await?,
        };
        match reader.map(|reader| self.reclaim(reader)) {
            Some(false) => Ok(Next::Close),
            _ => Ok(next),
        }
    }

    /// Writes the `101 Switching Protocols` and hands the connection to
    /// the application's upgrade handler until it returns; then the
    /// connection closes. The request's admission permit goes once the
    /// `101` is written.
    async fn switch(&mut self, mut response: Response, permit: Permit) -> Result<Next, ConnError> {
        if !http::is_sendable_head(200, response.headers()) {
            // Refused the ordinary way: the head is replaced by a 500.
            self.respond(response, false, false, false).await?;
            return Ok(Next::Close);
        }
        self.shared.heads.start(&mut response, &mut self.wbuf);
        self.shared.metrics.count_response(101);
        self.status = Some(101);
        let Body::Upgrade(on_upgrade) = response.take_body() else {
            return Ok(Next::Close);
        };
        http::encode_upgrade_end(&mut self.wbuf);
        self.flush().await?;
        drop(permit);
        let unread = self.rbuf.filled().to_vec();
        self.rbuf.consume(unread.len());
        let write_timeout = self.shared.timeouts.write;
        let drain = self.shared.drain.clone();
        let socket =
            UpgradedSocket::new(self.io.clone(), unread, self.watch.clone(), write_timeout, drain);
        let upgraded = Upgraded::new(Box::pin(socket));
        let run = std::panic::catch_unwind(AssertUnwindSafe(|| on_upgrade(upgraded)));
        let ran = match run {
            Ok(future) => AssertUnwindSafe(future).catch_unwind().await.is_ok(),
            Err(_) => false,
        };
        if !ran {
            self.shared.metrics.app_panics.inc();
            error!(peer = %self.peer, "upgraded connection's handler panicked; connection closed");
        }
        Ok(Next::Close)
    }

    /// Takes the read buffer back from a body's reader once the response
    /// is written: `true` when the whole body was read and the connection
    /// can read its next request; else the connection closes.
    fn reclaim(&mut self, reader: Rc<BodyReader<T>>) -> bool {
        let Ok(reader) = Rc::try_unwrap(reader) else { return false };
        let Some(state) = reader.state.into_inner() else { return false };
        if state.interrupted {
            return false;
        }
        let complete = matches!(state.end, Some(BodyEnd::Complete));
        self.rbuf = state.rbuf;
        complete
    }

    /// Who sent the request, as far as the server believes proxies.
    /// Over TLS (`tls`) the scheme is `https` whatever a proxy says.
    pub(super) fn origin(&self, head: &RequestHead, tls: bool) -> Origin {
        let mut origin = self.proxied_origin(head);
        if tls {
            origin.scheme = "https";
        }
        origin
    }

    /// Who sent the request, before the connection's own scheme is known.
    fn proxied_origin(&self, head: &RequestHead) -> Origin {
        match &self.shared.proxies {
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
    pub(super) fn may_go_on(&self, head: &RequestHead) -> bool {
        head.keep_alive() && self.may_go_on_after()
    }

    /// Whether the server lets the connection go on after the current
    /// request: not when the core began to drain meanwhile, nor when the
    /// request arrived as a read deadline passed (the sweeper shut the read
    /// side).
    pub(super) fn may_go_on_after(&self) -> bool {
        !self.shared.drain.is_started() && !self.watch.timed_out.get()
    }

    /// Answers a request the parser refused, then the connection closes.
    pub(super) async fn refuse(
        &mut self,
        error: ParseError,
        is_head: bool,
    ) -> Result<(), ConnError> {
        self.shared.metrics.count_refused(error.status());
        debug!(peer = %self.peer, "refused request: {error}");
        let response = Response::plain(error.status(), format!("{error}\n"));
        self.respond(response, is_head, false, false).await?;
        self.flush().await
    }
}

/// Calls the application. Its future is made in a recycled block: it is as
/// large as the application's largest handler, and is then never copied (a
/// request's handling moves only the block's address). Not an `async fn`:
/// the request goes straight into the application's future instead of
/// being copied into one of its own first.
pub(super) fn call_app<A: App>(
    shared: &Shared<A>,
    request: Request,
) -> AppCall<impl Future<Output = Response> + '_> {
    let call = move || Recycled::with(|| shared.app.call(request, &shared.cx));
    AppCall { future: std::panic::catch_unwind(AssertUnwindSafe(call)).ok() }
}

/// The application's future for one request, each poll under
/// `catch_unwind`: `None` if making or polling it panicked. One layer, so
/// the response is handed straight to the connection.
pub(super) struct AppCall<F> {
    future: Option<Recycled<F>>,
}

impl<F: Future<Output = Response>> Future for AppCall<F> {
    type Output = Result<Response, String>;

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        // `Recycled` is a pointer: `AppCall` is `Unpin` whatever `F` is.
        let Some(future) = self.get_mut().future.as_mut() else {
            return Poll::Ready(Err("making its future panicked".into()));
        };
        match std::panic::catch_unwind(AssertUnwindSafe(|| Pin::new(future).poll(cx))) {
            Ok(Poll::Ready(response)) => Poll::Ready(Ok(response)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => Poll::Ready(Err(panic_message(payload.as_ref()))),
        }
    }
}

/// What a panic said: its message, when it is a string (a handler that
/// needs tokio's reactor says "there is no reactor running").
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    match (payload.downcast_ref::<&str>(), payload.downcast_ref::<String>()) {
        (Some(message), _) => (*message).to_string(),
        (_, Some(message)) => message.clone(),
        _ => "a panic without a message".to_string(),
    }
}
