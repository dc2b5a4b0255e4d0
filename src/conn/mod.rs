//! One connection, while it is busy: read, parse every request the buffer
//! holds, call the application, write the responses of a batch with one
//! write; then hand the connection back, idle, to be parked.
//!
//! What this module does not do: keep the connections of a core, park
//! them, give them a task, accept or drain them (`core`); ring operations
//! and system calls (`io`); the wire format (`http`).
//!
//! Tasks: a connection has a task only while it is busy. An idle one (every
//! response written, nothing buffered, its next receive in flight) is
//! [`Parked`] in the core's registry (its socket, its receive, when it went
//! idle) with no task, no buffer and no future; one of the core's workers
//! takes it when the receive completes ([`Conn::unpark`]) and serves it
//! ([`Conn::serve`]) until it is idle again ([`Conn::into_parked`]).
//!
//! Files: this one (the request loop: [`Conn::serve`], reads with their
//! deadlines, the close), `read_buf`, `dispatch` (one request: health path,
//! `OPTIONS *`, admission, the application's call, the switch after a
//! `101`), `body` (a request body, read as the application asks), `respond`
//! (encoding a response and writing what is left of it), `file` (file
//! bodies: copy, `sendfile`, splice), `write` (writes under the stall limit,
//! the lingering close), `watch` (the deadline the core's sweeper enforces),
//! `upgrade` (the connection after a `101`, as a byte stream for its new
//! protocol), `shared` (what every connection of a core shares), `heads`
//! (the start of every response head, from the core's caches), `head_cache`
//! and `body_rate`.
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
//! and its ring slot (72): 249-259 B of RSS per idle connection at 10 000
//! connections, where nginx needs 546-562 B, measured the same way in the
//! same runs (`benches/idle_memory.py`, 2026-12-05). The busy state stays off the idle
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
//! Transport, decided by measurement: connections do their I/O as
//! operations on a second io_uring per core (`io::ring`), driven by one
//! glommio task that submits and reaps everything queued in one
//! `io_uring_enter` per turn; glommio stays the executor (timers, tasks,
//! placement, blocking pool). The alternatives, measured side by side
//! (`bench-results/HISTORY.md`, the transport A/B of 2026-11-22, medians
//! of 3 interleaved runs, one core):
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
//! completions come at its next system call, see `io::ring` for why not
//! deferred task work), and the eventfd switched on only while the driver
//! sleeps. An executor of our own on a raw ring (no glommio) and busy
//! polling were not taken: the first drops glommio's timers and placement,
//! the second burns a core while idle and, with the load generator on the
//! same core, takes its CPU.

use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::access_log::LogLine;
use crate::app::App;
use crate::http::{self};
use crate::io::socket::RingSocket;
use crate::io::transport::{Peer, PendingRead, Transport};
use crate::metrics::TimeoutKind;
use crate::recycle::{self, Recycled};

mod body;
mod body_rate;
mod dispatch;
mod error;
mod file;
mod head_cache;
mod heads;
mod read_buf;
mod respond;
mod shared;
#[cfg(test)]
mod tests;
mod upgrade;
mod watch;
mod write;

pub(crate) use error::ConnError;
use read_buf::ReadBuf;
use respond::Unsent;
pub(crate) use shared::{Drain, Shared};
use watch::Stall;
pub(crate) use watch::Watch;
pub(crate) use write::{linger, with_deadline, write_all};
use write::{write_pending, write_pending_beside, LINGER, WRITE_HIGH_WATER};

/// An idle connection: its socket and its receive in flight, parked on the
/// ring under the connection's key. No task, no buffer, no future: this is
/// what an open keep-alive connection costs while it waits.
pub(crate) struct Parked<T: Transport = RingSocket> {
    /// Shared with a request body's reader while one is read.
    pub(crate) io: Rc<T>,
    pub(crate) read: T::Parked,
    /// When it became ready for its next request.
    pub(crate) idle_since: Instant,
    pub(crate) served_any: bool,
}

/// How a busy connection's stretch of work ended (its errors are
/// [`ConnError`]s).
pub(crate) enum Outcome<P> {
    /// Nothing buffered, every response written; this receive waits for
    /// the next request: the connection is to be parked.
    Idle(P),
    /// Nothing more to say: the peer closed its side, or the connection
    /// was idle when the core began to drain. It closes now.
    Gone,
    /// The server closes it, lingering so the last response is not
    /// destroyed by a reset (see [`linger`]).
    Close,
}

/// Whether the connection may serve another request after a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    KeepAlive,
    Close,
}

/// One connection while it is busy, over its transport `T`.
pub(crate) struct Conn<A, T: Transport = RingSocket> {
    /// Shared with a request body's reader while one is read.
    io: Rc<T>,
    peer: Peer,
    shared: Rc<Shared<A>>,
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
    /// The status of the last response encoded, if one was.
    status: Option<u16>,
    /// The body bytes of the last response encoded.
    body_bytes: u64,
}

/// How a read with a deadline ended.
enum Fill {
    Data,
    Eof,
    TimedOut,
}

impl<A: App, T: Transport> Conn<A, T> {
    /// The connection parked as `parked`, with its completed receive.
    pub(crate) fn unpark(
        shared: &Rc<Shared<A>>,
        parked: Parked<T>,
        peer: Peer,
        watch: Rc<Watch>,
    ) -> (Conn<A, T>, T::Parked) {
        let Parked { io, read, idle_since, served_any } = parked;
        let conn = Conn {
            io,
            peer,
            shared: shared.clone(),
            rbuf: ReadBuf::new(),
            wbuf: Vec::new(),
            idle_since,
            head_started: None,
            served_any,
            watch,
            log_line: LogLine::default(),
            status: None,
            body_bytes: 0,
        };
        (conn, read)
    }

    /// Whether the core's sweeper cut a write of this connection.
    pub(crate) fn write_was_cut(&self) -> bool {
        self.watch.write_cut.get()
    }

    /// The idle connection, its next receive in flight, to be parked.
    pub(crate) fn into_parked(self, read: T::Parked) -> Parked<T> {
        let Conn { io, idle_since, served_any, .. } = self;
        Parked { io, read, idle_since, served_any }
    }

    /// Serves the connection from the completion of its parked receive
    /// until it is idle again ([`Outcome::Idle`], its next receive in
    /// flight) or ends.
    ///
    /// A connection is busy (requests buffered or being handled, responses
    /// being written: [`Conn::serve_busy`], a large future that lives in a
    /// recycled block) or idle: nothing buffered, every response written,
    /// a receive in flight, and the connection parked in the registry with
    /// no task (see [`Parked`]).
    pub(crate) async fn serve(&mut self, read: T::Parked) -> Result<Outcome<T::Parked>, ConnError> {
        let result = self.io.resume_read(read, &mut self.rbuf.buf).picked_only().await;
        if matches!(&result, Err(e) if e.raw_os_error() == Some(libc::ENOBUFS)) {
            // More requests arrived in one turn than the ring has buffers:
            // wait again, parked, rather than hold a buffer of our own
            // until the next turn (a burst of arrivals would hold one each).
            return Ok(Outcome::Idle(self.io.read_fresh(&mut self.rbuf.buf, false).detach()));
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
                self.shared.metrics.count_timeout(kind);
                return Ok(Outcome::Close);
            }
            0 => return Ok(Outcome::Gone),
            n => self.rbuf.advance(n),
        }
        loop {
            self.wbuf = recycle::take(&recycle::WRITE_BUFS);
            let read = match Recycled::with(|| self.serve_busy()).await? {
                Outcome::Idle(read) => read,
                ended => return Ok(ended),
            };
            // The last responses go out while the receive waits, from this
            // small future: a burst of connections finishing at once holds
            // no busy futures meanwhile.
            let read = self.io.resume_read(read, &mut self.rbuf.buf);
            let stall = Stall { watch: &self.watch, limit: self.shared.timeouts.write };
            let read = write_pending_beside(read, &*self.io, &mut self.wbuf, stall).await?;
            recycle::give(&recycle::WRITE_BUFS, std::mem::take(&mut self.wbuf));
            self.idle_since = Instant::now();
            if !self.shared.drain.is_started() {
                return Ok(Outcome::Idle(read.detach()));
            }
            // Idle while the core drains: the connection closes, unless
            // bytes raced the drain (they still count as a request).
            match read.cancel().await {
                Ok(n @ 1..) => self.rbuf.advance(n),
                _ => return Ok(Outcome::Gone),
            }
        }
    }

    /// Serves what is buffered, reading what completes it, until the
    /// connection goes idle (then with its next receive in flight) or ends.
    async fn serve_busy(&mut self) -> Result<Outcome<T::Parked>, ConnError> {
        loop {
            match http::parse_head(self.rbuf.filled(), &self.shared.limits) {
                Ok(Some((head, len))) => {
                    self.rbuf.consume(len);
                    self.head_started = None;
                    let started = self.shared.timed.then(Instant::now);
                    let next = self.handle(head).await;
                    if let Some(started) = started {
                        self.record(started.elapsed());
                    }
                    let next = next?;
                    if next == Next::Close {
                        self.flush().await?;
                        return Ok(Outcome::Close);
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
                    let deadline = started + self.shared.timeouts.request_header;
                    match self.fill(0, deadline).await? {
                        Fill::Data => {}
                        Fill::Eof => return Ok(Outcome::Gone),
                        Fill::TimedOut if self.rbuf.filled().is_empty() => {
                            self.shared.metrics.count_timeout(TimeoutKind::RequestHeader);
                            return Ok(Outcome::Close);
                        }
                        Fill::TimedOut => {
                            let answered = self.time_out(TimeoutKind::RequestHeader).await;
                            self.log_unparsed();
                            answered?;
                            return Ok(Outcome::Close);
                        }
                    }
                }
                Err(e) => {
                    let is_head = http::starts_like_head(self.rbuf.filled());
                    let answered = self.refuse(e, is_head).await;
                    self.log_unparsed();
                    answered?;
                    return Ok(Outcome::Close);
                }
            }
        }
    }

    /// Starts the receive of the next request and lets go of the read
    /// buffer: the receive takes one of the ring's when data arrives. The
    /// pending responses are written by [`Conn::serve`], in the same
    /// submission, once the busy future is back in its shelf.
    async fn go_idle(&mut self) -> Result<Outcome<T::Parked>, ConnError> {
        self.rbuf.release();
        Ok(Outcome::Idle(self.io.read_fresh(&mut self.rbuf.buf, true).detach()))
    }

    /// Flushes pending responses, then reads more of a request head, until
    /// `deadline` at most.
    ///
    /// The receive is queued before the responses are written, so both
    /// reach the kernel in one submission.
    async fn fill(&mut self, want: usize, deadline: Instant) -> Result<Fill, ConnError> {
        // After a deadline the read side is shut: the read still returns
        // what raced it, then the end.
        self.rbuf.reserve(want);
        let Conn { io, rbuf, wbuf, shared, watch, .. } = self;
        let io = &**io;
        let read = io.read(&mut rbuf.buf, rbuf.end);
        let stall = Stall { watch, limit: shared.timeouts.write };
        let read = write_pending_beside(read, io, wbuf, stall).await?;
        if Instant::now() >= deadline {
            if let Ok(n) = read.cancel().await {
                rbuf.advance(n);
            }
            return Ok(Fill::TimedOut);
        }
        watch.deadline.set(Some(deadline));
        let result = read.await;
        watch.deadline.set(None);
        match result {
            Ok(0) if watch.timed_out.get() => Ok(Fill::TimedOut),
            Ok(0) => Ok(Fill::Eof),
            Ok(n) => {
                rbuf.advance(n);
                Ok(Fill::Data)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Writes the pending responses; a client that does not take them
    /// within the write timeout loses the connection.
    async fn flush(&mut self) -> Result<(), ConnError> {
        let stall = Stall { watch: &self.watch, limit: self.shared.timeouts.write };
        write_pending(&*self.io, &mut self.wbuf, stall).await
    }

    /// Records a request that was handled (from its parsed head) in the
    /// duration histogram and the access log.
    /// Only a request that got a response is recorded (one whose body
    /// never came got none), also when writing the response failed.
    fn record(&self, elapsed: Duration) {
        let Some(status) = self.status else { return };
        self.shared.metrics.duration.observe(elapsed);
        if let Some(log) = &self.shared.access_log {
            log.finish(&self.log_line, status, self.body_bytes, elapsed);
        }
    }

    /// Logs the answer to a request that has no parsed head (refused, or
    /// its head never arrived).
    fn log_unparsed(&mut self) {
        if let (Some(log), Some(status)) = (&self.shared.access_log, self.status) {
            let scheme = if self.io.tls().is_some() { "https" } else { "http" };
            log.start_unparsed(&mut self.log_line, self.peer.0, scheme);
            log.finish(&self.log_line, status, self.body_bytes, Duration::ZERO);
        }
    }

    /// A server-side close: see [`linger`], for [`LINGER`] at most.
    /// Ends a connection the peer closed, or one idle when the core began
    /// to drain: over TLS with `close_notify`, so that the peer sees the
    /// stream end rather than cut.
    pub(crate) fn close_gone(&self) {
        if self.io.tls().is_some() {
            let _ = self.io.shutdown_write();
        }
    }

    pub(crate) async fn linger_close(&mut self) {
        linger(&*self.io, &mut self.rbuf.buf, Instant::now() + LINGER).await;
    }
}
