//! Writing a response: its head and, when small, its body into the write
//! buffer; a large, streamed or file body after it.

use std::borrow::Cow;
use std::panic::AssertUnwindSafe;

use futures_lite::{FutureExt, StreamExt};
use tracing::debug;

use super::error::ConnError;
use super::watch::Stall;
use super::write::write_all;
use super::{Conn, Next};
use crate::app::{App, Body, BodyStream, Response};
use crate::http::{self, BodySize, ResponseFraming};
use crate::io::ring::OpBuf;
use crate::io::transport::Transport;
use crate::metrics::TimeoutKind;

/// Bodies at least this large are written straight from the response, not
/// copied into the write buffer.
pub(super) const DIRECT_WRITE_BYTES: usize = 64 << 10;

impl<A: App, T: Transport> Conn<A, T> {
    /// Answers 408 to a request whose head or body did not arrive in time.
    pub(super) async fn time_out(&mut self, kind: TimeoutKind) -> Result<(), ConnError> {
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
    ) -> Result<Next, ConnError> {
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
        let close = self.shared.heads.start(response, &mut self.wbuf);
        let status = response.status();
        self.shared.metrics.count_response(status);
        self.status = Some(status);
        self.body_bytes = 0;
        let framed =
            http::frame(status, is_head, http10, body_size(response), keep_alive && !close);
        http::encode_end(framed.framing, framed.keep_alive, http10, &mut self.wbuf);
        let next = if framed.keep_alive { Next::KeepAlive } else { Next::Close };
        if !framed.sends_body {
            return Unsent::Nothing(next);
        }
        match response.take_body() {
            // An upgrade is switched by `Conn::switch`, never encoded here.
            Body::Empty | Body::Upgrade(_) => Unsent::Nothing(next),
            Body::Full(bytes) if bytes.len() >= DIRECT_WRITE_BYTES => {
                self.body_bytes = bytes.len() as u64;
                Unsent::Bytes(bytes, next)
            }
            Body::Full(bytes) => {
                self.body_bytes = bytes.len() as u64;
                self.wbuf.extend_from_slice(&bytes);
                Unsent::Nothing(next)
            }
            Body::Stream(stream) => Unsent::Stream(stream, framed.framing, next),
            Body::Sized(stream, len) => Unsent::Stream(stream, ResponseFraming::Length(len), next),
            Body::File { file, offset, len } => Unsent::File(file, offset, len, next),
        }
    }

    /// Writes what [`Conn::encode_response`] left.
    pub(super) async fn send_rest(&mut self, unsent: Unsent) -> Result<Next, ConnError> {
        match unsent {
            Unsent::Nothing(next) => Ok(next),
            Unsent::Bytes(bytes, next) => {
                self.flush().await?;
                let stall = Stall { watch: &self.watch, limit: self.shared.timeouts.write };
                write_all(&*self.io, OpBuf::Bytes(bytes), Some(stall)).await.0?;
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
    /// was taken by the socket (one chunk in memory per connection), framed
    /// as `framing` says (chunked, or raw up to a declared length or to the
    /// close). A failing or panicking stream, or one that runs past or
    /// short of its declared length, ends the connection without
    /// completing the body.
    pub(super) async fn stream_body(
        &mut self,
        mut stream: BodyStream,
        framing: ResponseFraming,
    ) -> Result<(), ConnError> {
        let declared = match framing {
            ResponseFraming::Length(len) => Some(len),
            _ => None,
        };
        loop {
            self.flush().await?;
            let item = AssertUnwindSafe(stream.next()).catch_unwind().await;
            match item {
                Ok(Some(Ok(chunk))) => {
                    self.body_bytes += chunk.len() as u64;
                    if let Some(len) = declared.filter(|&len| self.body_bytes > len) {
                        return Err(ConnError::BodyTooLong { len });
                    }
                    if framing == ResponseFraming::Chunked {
                        http::encode_chunk(&chunk, &mut self.wbuf);
                    } else {
                        self.wbuf.extend_from_slice(&chunk);
                    }
                }
                Ok(None) => {
                    if framing == ResponseFraming::Chunked {
                        self.wbuf.extend_from_slice(http::LAST_CHUNK);
                    }
                    if let Some(len) = declared.filter(|&len| self.body_bytes != len) {
                        // What was produced goes out; the close marks it short.
                        self.flush().await?;
                        return Err(ConnError::BodyTooShort { sent: self.body_bytes, len });
                    }
                    return Ok(());
                }
                Ok(Some(Err(e))) => return Err(ConnError::BodyStream(e)),
                Err(_) => return Err(ConnError::BodyPanicked),
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
    Stream(BodyStream, ResponseFraming, Next),
    /// A file's bytes: the file, offset and length.
    File(std::fs::File, u64, u64, Next),
}

/// What `response`'s body is, for its framing.
fn body_size(response: &Response) -> BodySize {
    match response.body_ref() {
        Body::Empty | Body::Upgrade(_) => BodySize::Empty,
        Body::Full(bytes) => BodySize::Known(bytes.len() as u64),
        Body::Stream(_) => BodySize::Unknown,
        Body::Sized(_, len) | Body::File { len, .. } => BodySize::Known(*len),
    }
}
