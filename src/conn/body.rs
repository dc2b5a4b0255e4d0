//! Reading a request's body, whole, as its framing says (a length or
//! chunks), within the body timeout and the minimum body rate; `100
//! Continue` before the first read of a body the client holds back.

use super::error::ConnError;

use tracing::debug;

use super::body_rate::BodyRate;
use super::{Conn, Fill, Wait};
use crate::app::App;
use crate::http::{self, BodyFraming, ChunkedDecoder, DecodeStatus, ParseError, RequestHead};
use crate::io::transport::Transport;

/// How a request's body read ended.
pub(super) enum BodyRead {
    Complete(Vec<u8>),
    /// The client closed before the body was complete.
    Eof,
    /// The body stalled longer than the body timeout.
    TimedOut,
    Invalid(ParseError),
}

impl<A: App, T: Transport> Conn<A, T> {
    pub(super) async fn read_body(&mut self, head: &RequestHead) -> Result<BodyRead, ConnError> {
        let mut continue_pending = head.expect_continue();
        match head.framing() {
            BodyFraming::Empty => Ok(BodyRead::Complete(Vec::new())),
            BodyFraming::Length(len) => {
                // The parser refused lengths over the limit, which fits usize.
                let len = usize::try_from(len).unwrap_or(usize::MAX);
                let mut rate = BodyRate::new(self.shared.timeouts.min_body_rate);
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
                let limits = self.shared.limits;
                let mut decoder =
                    ChunkedDecoder::new(limits.max_body_bytes, limits.max_header_bytes);
                let mut body = Vec::new();
                let mut rate = BodyRate::new(self.shared.timeouts.min_body_rate);
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
    pub(super) fn send_continue(&mut self, pending: &mut bool) {
        if std::mem::take(pending) {
            self.wbuf.extend_from_slice(http::CONTINUE);
        }
    }

    /// Reads more of a body: within `--timeout-body` of pause, and fast
    /// enough for `rate` (`TimedOut` when either is missed). Only the time
    /// spent waiting for the client counts toward the rate.
    pub(super) async fn fill_body(
        &mut self,
        want: usize,
        rate: &mut BodyRate,
    ) -> Result<Fill, ConnError> {
        let pause = self.shared.timeouts.body;
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
}
