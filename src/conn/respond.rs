//! Writing a response: its head and, when small, its body into the write
//! buffer; a large, streamed or file body after it.

use std::borrow::Cow;
use std::io::{self, Write};
use std::panic::AssertUnwindSafe;

use futures_lite::{FutureExt, StreamExt};
use tracing::{debug, error};

use super::watch::Stall;
use super::write::write_within;
use super::{Conn, Next};
use crate::app::{App, Body, BodyStream, Response};
use crate::http::{self, ResponseFraming};
use crate::io::ring::OpBuf;
use crate::metrics::TimeoutKind;

/// Bodies at least this large are written straight from the response, not
/// copied into the write buffer.
pub(super) const DIRECT_WRITE_BYTES: usize = 64 << 10;

impl<A: App> Conn<A> {
    /// Answers 408 to a request whose head or body did not arrive in time.
    pub(super) async fn time_out(&mut self, kind: TimeoutKind) -> io::Result<()> {
        self.shared.metrics.count_timeout(kind);
        // The read's deadline is dealt with; the 408 gets a write deadline
        // of its own.
        self.watch.timed_out.set(false);
        debug!(peer = %self.peer, "request timed out");
        let response = Response::plain(408, "request timeout\n");
        self.respond(response, false, false, false).await?;
        self.flush().await
    }

    /// Serialises `response`; a streamed body is written as it comes.
    pub(super) async fn respond(
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
    pub(super) fn encode_response(
        &mut self,
        response: &mut Response,
        is_head: bool,
        http10: bool,
        keep_alive: bool,
    ) -> Unsent {
        let close = self.shared.start_head(response, &mut self.wbuf);
        let keep_alive = keep_alive && !close;
        let status = response.status();
        self.shared.metrics.count_response(status);
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
    pub(super) async fn send_rest(&mut self, unsent: Unsent) -> io::Result<Next> {
        match unsent {
            Unsent::Nothing(next) => Ok(next),
            Unsent::Bytes(bytes, next) => {
                self.flush().await?;
                let stall = Stall { watch: &self.watch, limit: self.shared.timeouts.write };
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
    pub(super) async fn stream_body(
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
}

/// What of a response is still to be written once its head is encoded.
pub(super) enum Unsent {
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
pub(super) enum StreamFraming {
    /// Chunked transfer coding.
    Chunked,
    /// Raw, ended by closing the connection (HTTP/1.0).
    UntilClose,
    /// Raw, exactly this many bytes (the `Content-Length` sent).
    Exactly(u64),
}

pub(super) enum BodyKind {
    Empty,
    Full(usize),
    Stream,
    Sized(u64),
}

pub(super) fn response_body(response: &Response) -> BodyKind {
    match response.body_ref() {
        Body::Empty => BodyKind::Empty,
        Body::Full(bytes) => BodyKind::Full(bytes.len()),
        Body::Stream(_) => BodyKind::Stream,
        Body::Sized(_, len) | Body::File { len, .. } => BodyKind::Sized(*len),
    }
}

/// Whether the server can put `response` on the wire: a status the
/// application may send and headers that cannot split the response.
pub(super) fn is_valid(response: &Response) -> bool {
    (200..=599).contains(&response.status())
        && response
            .headers()
            .all(|(n, v)| http::is_valid_header_name(n) && http::is_valid_header_value(v))
}
