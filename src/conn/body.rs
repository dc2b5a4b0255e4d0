//! A request's body, as the application reads it ([`BodyReader`], the
//! connection's side of `app::RequestBody`): each piece is decoded from the
//! read buffer as its framing says (a length or chunks) and read from the
//! connection only when the application asks, within the body timeout and
//! the minimum body rate; `100 Continue` before the first read of a body
//! the client holds back. A body already in the read buffer when its head
//! is parsed is handed over whole, with no reader.

use std::borrow::Cow;
use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Instant;

use tracing::debug;

use super::body_rate::BodyRate;
use super::read_buf::ReadBuf;
use super::shared::Timeouts;
use super::write::write_all;
use super::Watch;
use crate::app::{BodyError, BodySource, NextPiece, RequestBody};
use crate::http::{self, BodyFraming, ChunkedDecoder, DecodeStatus, Limits, ParseError};
use crate::io::ring::OpBuf;
use crate::io::transport::Transport;

/// Most bytes of a length-delimited body handed over as one piece.
const PIECE_BYTES: usize = 64 << 10;

/// How a request body's reading ended.
#[derive(Debug)]
pub(super) enum BodyEnd {
    /// Every byte was read: the connection can read the next request.
    Complete,
    /// The client closed its side before the end.
    Closed,
    /// A pause longer than the body timeout, or slower than the minimum
    /// rate.
    TimedOut,
    /// Malformed chunked framing, or a body past the limit.
    Invalid(ParseError),
    /// The connection failed.
    Failed,
}

/// What of the body is left to read.
enum Rest {
    Length(u64),
    Chunked(ChunkedDecoder),
}

/// The reader's state, shared between the application's reads and the
/// connection, which takes the read buffer back after the response.
pub(super) struct ReaderState {
    pub(super) rbuf: ReadBuf,
    rest: Rest,
    /// Decoded bytes not handed over yet.
    decoded: Vec<u8>,
    continue_pending: bool,
    rate: BodyRate,
    pub(super) end: Option<BodyEnd>,
    /// A read's future was dropped while it waited: the read buffer's
    /// memory is the ring's until the read completes, so the connection
    /// cannot read from it again.
    pub(super) interrupted: bool,
}

/// A request body still arriving, read as the application asks for it.
pub(super) struct BodyReader<T> {
    io: Rc<T>,
    watch: Rc<Watch>,
    timeouts: Timeouts,
    /// `None` while a read holds it (see [`Lent`]).
    pub(super) state: RefCell<Option<ReaderState>>,
}

/// The reader's state, lent to one read: it goes back when the read ends,
/// or when its future is dropped (then marked `interrupted` if a receive
/// was in flight).
struct Lent<'a> {
    home: &'a RefCell<Option<ReaderState>>,
    state: Option<ReaderState>,
}

impl std::ops::Deref for Lent<'_> {
    type Target = ReaderState;

    fn deref(&self) -> &ReaderState {
        self.state.as_ref().expect("lent until dropped")
    }
}

impl std::ops::DerefMut for Lent<'_> {
    fn deref_mut(&mut self) -> &mut ReaderState {
        self.state.as_mut().expect("lent until dropped")
    }
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        *self.home.borrow_mut() = self.state.take();
    }
}

/// What the connection does with a request's body before calling the
/// application: hands it over whole, reads it as asked, or refuses it.
pub(super) enum Arrival<T> {
    Whole(Vec<u8>),
    Streamed(Rc<BodyReader<T>>, Option<u64>),
    Refused(ParseError),
}

/// Takes what `rbuf` holds of a body framed as `framing`: the whole body
/// when it is all there, else a reader for the rest (taking the read
/// buffer with it).
pub(super) fn arrival<T: Transport + 'static>(
    framing: BodyFraming,
    expect_continue: bool,
    rbuf: &mut ReadBuf,
    io: &Rc<T>,
    watch: &Rc<Watch>,
    timeouts: Timeouts,
    limits: &Limits,
) -> Arrival<T> {
    let (rest, decoded, declared) = match framing {
        BodyFraming::Empty => return Arrival::Whole(Vec::new()),
        BodyFraming::Length(len) => {
            // The parser refused lengths over the limit, which fits usize.
            let want = usize::try_from(len).unwrap_or(usize::MAX);
            if rbuf.filled().len() >= want {
                let body = rbuf.filled()[..want].to_vec();
                rbuf.consume(want);
                return Arrival::Whole(body);
            }
            (Rest::Length(len), Vec::new(), Some(len))
        }
        BodyFraming::Chunked => {
            let mut decoder = ChunkedDecoder::new(limits.max_body_bytes, limits.max_header_bytes);
            let mut decoded = Vec::new();
            match decoder.decode(rbuf.filled(), &mut decoded) {
                Ok((used, DecodeStatus::Done)) => {
                    rbuf.consume(used);
                    return Arrival::Whole(decoded);
                }
                Ok((used, DecodeStatus::NeedMore)) => rbuf.consume(used),
                Err(e) => return Arrival::Refused(e),
            }
            (Rest::Chunked(decoder), decoded, None)
        }
    };
    let state = ReaderState {
        rbuf: std::mem::replace(rbuf, ReadBuf::new()),
        rest,
        decoded,
        continue_pending: expect_continue,
        rate: BodyRate::new(timeouts.min_body_rate),
        end: None,
        interrupted: false,
    };
    let reader = BodyReader {
        io: io.clone(),
        watch: watch.clone(),
        timeouts,
        state: RefCell::new(Some(state)),
    };
    Arrival::Streamed(Rc::new(reader), declared)
}

impl<T: Transport + 'static> BodySource for BodyReader<T> {
    fn next_piece(self: Rc<Self>) -> Pin<Box<dyn Future<Output = NextPiece>>> {
        Box::pin(async move { self.read_piece().await })
    }
}

impl<T: Transport> BodyReader<T> {
    /// The next piece: decoded from what is buffered, else read from the
    /// connection first.
    async fn read_piece(&self) -> NextPiece {
        let Some(lent) = self.state.borrow_mut().take() else {
            return Some(Err(BodyError::Io("the body is read twice at once".into())));
        };
        let mut lent = Lent { home: &self.state, state: Some(lent) };
        let state = &mut *lent;
        loop {
            if state.end.is_some() {
                return None;
            }
            match decode(state) {
                Ok(Some(piece)) => return Some(Ok(piece)),
                Ok(None) if state.end.is_some() => return None,
                Ok(None) => {}
                Err(e) => {
                    let error = match e {
                        ParseError::BodyTooLarge => BodyError::TooLarge,
                        e => BodyError::Invalid(e.to_string()),
                    };
                    state.end = Some(BodyEnd::Invalid(e));
                    return Some(Err(error));
                }
            }
            if let Err(end) = self.read_more(state).await {
                let error = match &end {
                    BodyEnd::Closed => BodyError::Closed,
                    BodyEnd::TimedOut => BodyError::TimedOut,
                    _ => BodyError::Io("read failed".into()),
                };
                state.end = Some(end);
                return Some(Err(error));
            }
        }
    }

    /// Reads more of the body into the read buffer: `100 Continue` first
    /// if the client waits for it, then within `--timeout-body` of pause
    /// and fast enough for `--min-body-rate`.
    async fn read_more(&self, state: &mut ReaderState) -> Result<(), BodyEnd> {
        if std::mem::take(&mut state.continue_pending) {
            let data = OpBuf::Bytes(Cow::Borrowed(http::CONTINUE));
            if write_all(&*self.io, data, None).await.0.is_err() {
                return Err(BodyEnd::Failed);
            }
        }
        let want = match &state.rest {
            Rest::Length(left) => usize::try_from(*left).unwrap_or(usize::MAX).min(PIECE_BYTES),
            Rest::Chunked(_) => 0,
        };
        state.rbuf.reserve(want);
        let pause = self.timeouts.body;
        let limit = state.rate.wait_limit().map_or(pause, |limit| limit.min(pause));
        let started = Instant::now();
        self.watch.deadline.set(Some(started + limit));
        state.interrupted = true;
        let end = state.rbuf.end;
        let result = self.io.read(&mut state.rbuf.buf, end).await;
        state.interrupted = false;
        self.watch.deadline.set(None);
        let got = match result {
            Ok(0) if self.watch.timed_out.get() => return Err(BodyEnd::TimedOut),
            Ok(0) => return Err(BodyEnd::Closed),
            Ok(n) => n,
            Err(_) => return Err(BodyEnd::Failed),
        };
        state.rbuf.advance(got);
        if !state.rate.record(started.elapsed(), got as u64) {
            debug!("request body slower than --min-body-rate");
            return Err(BodyEnd::TimedOut);
        }
        Ok(())
    }
}

/// The next piece decodable from what `state` holds: `Ok(None)` when more
/// must be read (or the body ended: `state.end` says).
fn decode(state: &mut ReaderState) -> Result<Option<Vec<u8>>, ParseError> {
    match &mut state.rest {
        Rest::Length(left) => {
            let here = state.rbuf.filled();
            let n = usize::try_from(*left).unwrap_or(usize::MAX).min(here.len()).min(PIECE_BYTES);
            *left -= n as u64;
            if *left == 0 {
                state.end = Some(BodyEnd::Complete);
            }
            if n == 0 {
                return Ok(None);
            }
            let piece = here[..n].to_vec();
            state.rbuf.consume(n);
            Ok(Some(piece))
        }
        Rest::Chunked(decoder) => {
            let (used, status) = decoder.decode(state.rbuf.filled(), &mut state.decoded)?;
            state.rbuf.consume(used);
            if status == DecodeStatus::Done {
                state.end = Some(BodyEnd::Complete);
            }
            if state.decoded.is_empty() {
                return Ok(None);
            }
            Ok(Some(std::mem::take(&mut state.decoded)))
        }
    }
}

/// How a body failed, as the connection answers it.
pub(super) enum Failure {
    /// 408.
    TimedOut,
    /// 400 or 413.
    Refused(ParseError),
    /// No answer: the client left, or the connection failed.
    Gone,
}

impl<T> BodyReader<T> {
    /// How the body failed, if it did (`None` while it is being read).
    pub(super) fn failure(&self) -> Option<Failure> {
        let state = self.state.borrow();
        match &state.as_ref()?.end {
            Some(BodyEnd::Complete) | None => None,
            Some(BodyEnd::TimedOut) => Some(Failure::TimedOut),
            Some(BodyEnd::Invalid(e)) => Some(Failure::Refused(*e)),
            Some(BodyEnd::Closed | BodyEnd::Failed) => Some(Failure::Gone),
        }
    }

    /// Takes the pending `100 Continue`: for a response that will read the
    /// body as it is written, the `100` goes before the response's head.
    pub(super) fn take_continue(&self) -> bool {
        let mut state = self.state.borrow_mut();
        state.as_mut().is_some_and(|state| std::mem::take(&mut state.continue_pending))
    }

    /// Whether every byte of the body was read.
    pub(super) fn is_complete(&self) -> bool {
        let state = self.state.borrow();
        state.as_ref().is_some_and(|state| matches!(state.end, Some(BodyEnd::Complete)))
    }

    /// The request body the application gets.
    pub(super) fn body(self: &Rc<Self>, declared: Option<u64>) -> RequestBody
    where
        T: Transport + 'static,
    {
        RequestBody::streamed(self.clone(), declared)
    }
}
