//! [`TlsSocket`]: a TLS connection on the core's ring, the server's
//! [`Transport`] when it serves HTTPS. It wraps a [`RingSocket`]: reads
//! receive ciphertext on the ring and give back the plaintext in it
//! (carrying the handshake, which happens within the connection's first
//! reads, under its request-header deadline); writes encrypt and send.
//! The protocol itself is `tls::session`, over bytes.
//!
//! Memory: an idle connection holds no buffer (its next receive takes one
//! of the ring's when data arrives, as a plain connection's does), only
//! the rustls state. A read holds the start of a record that is not whole
//! yet; a write encrypts at most [`WRITE_PLAINTEXT`] bytes at a time.
//!
//! File bodies cannot go out with `sendfile` or a splice (the kernel would
//! send them unencrypted): [`Transport::sends_files`] says so, and `conn`
//! reads and writes them in bounded chunks instead.

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use glommio::timer::Timer;

use std::sync::Arc;

use rustls::server::UnbufferedServerConnection;
use rustls::ServerConfig;

use super::file::{FileBody, Pipe};
use super::ring::{Detached, Op, OpBuf};
use super::socket::{NonBlocking, RingSocket};
use super::sys;
use super::transport::{AcceptedTransport, PendingRead, Transport};
use crate::recycle;
use crate::tls::counters::{HandshakeFailure, TlsCounters};
use crate::tls::session::TlsSession;
use crate::tls::TlsInfo;

/// Room for one whole TLS record (16 KiB of plaintext, its header and
/// tag), what a receive asks for beyond a partial record.
const RECEIVE_BYTES: usize = 20 << 10;

/// The most ciphertext a connection holds before it makes sense of it: a
/// handshake message can span records up to 64 KiB (a long client
/// certificate chain).
const MAX_INCOMING: usize = 80 << 10;

/// Plaintext encrypted per write: the ciphertext a write holds stays
/// bounded whatever the response's size.
/// (The write stall limit applies to each write: at 64 KiB, a client must
/// read at least 64 KiB per `--timeout-write` to keep up.)
pub(crate) const WRITE_PLAINTEXT: usize = 64 << 10;

/// A connection's TLS socket.
pub(crate) struct TlsSocket {
    socket: RingSocket,
    state: RefCell<TlsState>,
    /// The core's TLS counts.
    counters: Arc<TlsCounters>,
    /// The longest a read waits to send the handshake's answers
    /// (`--timeout-write`): a peer that stops reading mid-handshake is cut.
    send_limit: Duration,
}

/// What a core makes its TLS connections with.
pub(crate) struct TlsSetup {
    /// The core's rustls configuration (see `tls::TlsConfig::for_core`).
    pub(crate) config: Arc<ServerConfig>,
    pub(crate) counters: Arc<TlsCounters>,
    /// `--timeout-write`.
    pub(crate) send_limit: Duration,
}

/// What a TLS connection keeps between operations.
struct TlsState {
    /// The protocol, with the ciphertext it holds (the start of a record
    /// not yet whole).
    session: TlsSession,
    /// Where a receive into the connection's own memory lands, before the
    /// session takes it in. Let go of while the connection waits idle.
    landing: Vec<u8>,
    /// TLS bytes the read side produced after the handshake (an alert, a
    /// key update), sent ahead of the next write's records.
    queued: Vec<u8>,
    /// The peer sent `close_notify`: reads return the end.
    peer_closed: bool,
    /// What the handshake negotiated, once it is over.
    info: Option<Rc<TlsInfo>>,
}

impl TlsSocket {
    /// A TLS connection over `socket`, its handshake still to come.
    pub(crate) fn new(
        socket: RingSocket,
        conn: UnbufferedServerConnection,
        counters: Arc<TlsCounters>,
        send_limit: Duration,
    ) -> TlsSocket {
        let state = TlsState {
            session: TlsSession::new(conn),
            landing: Vec::new(),
            queued: Vec::new(),
            peer_closed: false,
            info: None,
        };
        TlsSocket { socket, state: RefCell::new(state), counters, send_limit }
    }

    /// Starts the receive a read waits for: of nothing (the end is known);
    /// for a `fresh` read (the connection waits for its next request), into
    /// one of the ring's buffers when the kernel picks them, so that an
    /// idle connection holds none; else into the connection's own landing
    /// buffer, a record's worth at a time. `later`: see
    /// [`Transport::read_fresh`].
    fn receive(&self, fresh: bool, later: bool) -> Step<'_> {
        let ring = self.socket.ring();
        let mut state = self.state.borrow_mut();
        if state.peer_closed {
            return Step::Receive(ring.nop());
        }
        if fresh && ring.picks_buffers() {
            recycle::give(&recycle::READ_BUFS, std::mem::take(&mut state.landing));
            state.session.release_input();
            return Step::Receive(ring.recv_picked(self.socket.fd(), later));
        }
        self.receive_own(&mut state)
    }

    /// Starts a receive into the connection's landing buffer.
    fn receive_own(&self, state: &mut TlsState) -> Step<'_> {
        if state.session.held() >= MAX_INCOMING {
            let why = "TLS: a handshake message larger than the server accepts";
            return Step::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, why)));
        }
        let mut landing = std::mem::take(&mut state.landing);
        if landing.len() < RECEIVE_BYTES {
            landing.resize(RECEIVE_BYTES, 0);
        }
        Step::Receive(self.socket.ring().recv(self.socket.fd(), landing, 0))
    }

    /// Sends `data[..end]`, all of it; gives `data` back.
    async fn send_all(&self, data: Vec<u8>, end: usize) -> (io::Result<()>, Vec<u8>) {
        let mut data = OpBuf::Vec(data);
        let mut sent = 0;
        let result = loop {
            if sent >= end {
                break Ok(());
            }
            let ring = self.socket.ring();
            let (result, back) = ring.send_part(self.socket.fd(), data, sent, end).await;
            data = back;
            match result {
                Ok(0) => break Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => sent += n,
                Err(e) => break Err(e),
            }
        };
        match data {
            OpBuf::Vec(data) => (result, data),
            _ => (result, Vec::new()),
        }
    }

    /// Takes in what a receive brought: the plaintext lands in `buf` from
    /// `at`, and the TLS bytes to answer with are returned to send (during
    /// the handshake) or queued for the next write (after it). A fatal
    /// alert goes out at once, if the socket takes it: a read never waits
    /// to send one.
    fn absorb(
        &self,
        result: io::Result<usize>,
        back: OpBuf,
        buf: &mut Vec<u8>,
        at: usize,
    ) -> Absorbed {
        let mut state = self.state.borrow_mut();
        let state = &mut *state;
        let handshaking = state.session.is_handshaking();
        let n = match (result, back) {
            (Ok(n), OpBuf::Vec(mut landing)) => {
                state.session.take_in_buffer(&mut landing, n);
                state.landing = landing;
                n
            }
            (Ok(n), OpBuf::Picked(id)) => {
                let mut data = std::mem::take(&mut state.landing);
                if data.capacity() == 0 {
                    data = recycle::take(&recycle::READ_BUFS);
                }
                self.socket.ring().take_received(id, n, &mut data, 0);
                state.session.take_in_buffer(&mut data, n);
                state.landing = data;
                n
            }
            (Ok(n), _) => n,
            (Err(e), back) => {
                if let OpBuf::Vec(landing) = back {
                    state.landing = landing;
                }
                if e.raw_os_error() == Some(libc::ENOBUFS) {
                    return Absorbed::NoBuffer;
                }
                return Absorbed::Then(Then::Return(Err(e)));
            }
        };
        if n == 0 {
            // The end of the stream without `close_notify`: for HTTP/1.1,
            // whose messages say where they end, a close like any other.
            if handshaking && !state.peer_closed {
                self.counters.failure(HandshakeFailure::Closed);
            }
            return Absorbed::Then(Then::Return(Ok(0)));
        }
        let mut send = Vec::new();
        let received = match state.session.receive(buf, at, &mut send) {
            Ok(received) => received,
            Err(e) => {
                if handshaking {
                    self.counters.failure(e.handshake_failure());
                }
                // Best effort, ahead of nothing else: after the handshake,
                // what the session queued goes first.
                let mut alert = std::mem::take(&mut state.queued);
                alert.extend_from_slice(&send);
                if !alert.is_empty() {
                    let _ = sys::send_now(self.socket.fd(), &alert);
                }
                return Absorbed::Then(Then::Return(Err(e.into())));
            }
        };
        if handshaking && !state.session.is_handshaking() {
            let info = state.session.info();
            self.counters.handshake(info.resumed);
            state.info = Some(Rc::new(info));
        }
        state.peer_closed |= received.peer_closed;
        let then = if received.plaintext > 0 || received.peer_closed {
            Then::Return(Ok(received.plaintext))
        } else {
            Then::Receive
        };
        if send.is_empty() {
            return Absorbed::Then(then);
        }
        if handshaking {
            return Absorbed::Send(send, then);
        }
        state.queued.extend_from_slice(&send);
        Absorbed::Then(then)
    }
}

/// Spare ciphertext buffers a core keeps, at most.
const SPARES: usize = 16;

thread_local! {
    /// The core's spare ciphertext buffers, each at its full length (its
    /// bytes initialized, so reuse needs no zero-filling).
    static SPARE_OUT: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// A spare ciphertext buffer (a new, empty one when none is spare).
fn take_spare() -> Vec<u8> {
    SPARE_OUT.try_with(|s| s.borrow_mut().pop()).ok().flatten().unwrap_or_default()
}

/// Keeps `out` for the next write on this core, at its length.
fn give_spare(out: Vec<u8>) {
    if out.capacity() == 0 || out.capacity() > 2 * WRITE_PLAINTEXT {
        return;
    }
    let _ = SPARE_OUT.try_with(|s| {
        let mut spares = s.borrow_mut();
        if spares.len() < SPARES {
            spares.push(out);
        }
    });
}

/// What a receive's data called for.
enum Absorbed {
    /// Send these TLS bytes, then go on.
    Send(Vec<u8>, Then),
    Then(Then),
    /// The ring had no buffer to pick.
    NoBuffer,
}

/// What a read does after a step.
enum Then {
    Return(io::Result<usize>),
    /// No plaintext yet: receive more.
    Receive,
}

/// Where a [`TlsRead`] is.
enum Step<'a> {
    /// Ciphertext being received.
    Receive(Op<'a>),
    /// TLS bytes (the handshake's) being sent, within `limit`.
    Send {
        op: Op<'a>,
        sent: usize,
        then: Then,
        limit: Timer,
    },
    Ready(io::Result<usize>),
    Done,
}

/// A read in flight on a [`TlsSocket`]: it resolves to the count of
/// plaintext bytes placed in the caller's buffer (0: the end).
pub(crate) struct TlsRead<'a> {
    tls: &'a TlsSocket,
    buf: &'a mut Vec<u8>,
    at: usize,
    got: usize,
    step: Step<'a>,
    /// When every picked buffer is taken, receive into the connection's
    /// own instead of failing with `ENOBUFS`.
    own_buffer_if_none: bool,
}

impl<'a> TlsRead<'a> {
    fn new(tls: &'a TlsSocket, buf: &'a mut Vec<u8>, at: usize, step: Step<'a>) -> TlsRead<'a> {
        TlsRead { tls, buf, at, got: 0, step, own_buffer_if_none: true }
    }

    /// The step after `then`: the plaintext it brought counted, or the
    /// next receive.
    fn follow(&mut self, then: Then) -> Step<'a> {
        match then {
            Then::Return(result) => Step::Ready(result.map(|n| {
                self.got += n;
                self.got
            })),
            Then::Receive => self.tls.receive(false, false),
        }
    }
}

impl PendingRead for TlsRead<'_> {
    type Parked = Detached;

    /// Lets go of the read. Only a receive can wait parked: a read that
    /// needs no I/O (the end is known) parks on an operation that
    /// completes at once.
    fn detach(self) -> Detached {
        match self.step {
            Step::Receive(op) => op.detach(),
            _ => self.tls.socket.ring().nop().detach(),
        }
    }

    fn picked_only(mut self) -> Self {
        self.own_buffer_if_none = false;
        self
    }

    async fn cancel(self) -> io::Result<usize> {
        let TlsRead { tls, buf, at, step, .. } = self;
        match step {
            Step::Receive(op) => {
                let (result, back) = op.cancel().await;
                match tls.absorb(result, back, buf, at) {
                    Absorbed::Send(_, Then::Return(result))
                    | Absorbed::Then(Then::Return(result)) => result,
                    _ => Ok(0),
                }
            }
            Step::Send { op, then, .. } => {
                let (result, _) = op.cancel().await;
                result?;
                match then {
                    Then::Return(result) => result,
                    Then::Receive => Ok(0),
                }
            }
            Step::Ready(result) => result,
            Step::Done => Ok(0),
        }
    }
}

impl Future for TlsRead<'_> {
    type Output = io::Result<usize>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        loop {
            match std::mem::replace(&mut this.step, Step::Done) {
                Step::Receive(mut op) => {
                    let Poll::Ready((result, back)) = Pin::new(&mut op).poll(cx) else {
                        this.step = Step::Receive(op);
                        return Poll::Pending;
                    };
                    this.step = match this.tls.absorb(result, back, this.buf, this.at + this.got) {
                        Absorbed::Send(send, then) => {
                            let op = this.tls.socket.ring().send(
                                this.tls.socket.fd(),
                                OpBuf::Vec(send),
                                0,
                            );
                            let limit = Timer::new(this.tls.send_limit);
                            Step::Send { op, sent: 0, then, limit }
                        }
                        Absorbed::Then(then) => this.follow(then),
                        Absorbed::NoBuffer if this.own_buffer_if_none => {
                            let mut state = this.tls.state.borrow_mut();
                            this.tls.receive_own(&mut state)
                        }
                        Absorbed::NoBuffer => {
                            Step::Ready(Err(io::Error::from_raw_os_error(libc::ENOBUFS)))
                        }
                    };
                }
                Step::Send { mut op, sent, then, mut limit } => {
                    let Poll::Ready((result, back)) = Pin::new(&mut op).poll(cx) else {
                        if Pin::new(&mut limit).poll(cx).is_ready() {
                            // Dropping the send cancels it.
                            let why = "TLS: the peer does not read the handshake";
                            return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, why)));
                        }
                        this.step = Step::Send { op, sent, then, limit };
                        return Poll::Pending;
                    };
                    let len = back.as_slice().len();
                    this.step = match result {
                        Ok(0) => Step::Ready(Err(io::ErrorKind::WriteZero.into())),
                        Ok(n) if sent + n < len => {
                            let op =
                                this.tls.socket.ring().send(this.tls.socket.fd(), back, sent + n);
                            Step::Send { op, sent: sent + n, then, limit }
                        }
                        Ok(_) => this.follow(then),
                        Err(e) => Step::Ready(Err(e)),
                    };
                }
                Step::Ready(result) => return Poll::Ready(result),
                Step::Done => return Poll::Ready(Err(io::ErrorKind::Other.into())),
            }
        }
    }
}

impl Transport for TlsSocket {
    type Parked = Detached;
    type Read<'a> = TlsRead<'a>;
    type Write<'a> = Pin<Box<dyn Future<Output = (io::Result<usize>, OpBuf)> + 'a>>;
    type NonBlocking<'a> = NonBlocking<'a>;

    fn read<'a>(&'a self, buf: &'a mut Vec<u8>, at: usize) -> TlsRead<'a> {
        let step = self.receive(false, false);
        TlsRead::new(self, buf, at, step)
    }

    fn read_fresh<'a>(&'a self, buf: &'a mut Vec<u8>, later: bool) -> TlsRead<'a> {
        let step = self.receive(true, later);
        TlsRead::new(self, buf, 0, step)
    }

    fn resume_read<'a>(&'a self, read: Detached, buf: &'a mut Vec<u8>) -> TlsRead<'a> {
        let step = Step::Receive(self.socket.ring().resume(read));
        TlsRead::new(self, buf, 0, step)
    }

    /// Encrypts up to [`WRITE_PLAINTEXT`] bytes of `data[at..]` and sends
    /// the records whole; the count is of plaintext. The ciphertext goes
    /// through one of the core's spare buffers, kept at their length, so a
    /// write allocates and zero-fills nothing once they have grown.
    fn write(&self, data: OpBuf, at: usize) -> Self::Write<'_> {
        Box::pin(async move {
            let mut out = take_spare();
            let (take, end) = {
                let plain = data.as_slice();
                let plain = &plain[at.min(plain.len())..];
                let take = plain.len().min(WRITE_PLAINTEXT);
                let mut state = self.state.borrow_mut();
                let queued = std::mem::take(&mut state.queued);
                if out.len() < queued.len() {
                    out.resize(queued.len(), 0);
                }
                out[..queued.len()].copy_from_slice(&queued);
                match state.session.encrypt(&plain[..take], &mut out, queued.len()) {
                    Ok(end) => (take, end),
                    Err(e) => {
                        give_spare(out);
                        return (Err(e.into()), data);
                    }
                }
            };
            let (sent, out) = self.send_all(out, end).await;
            give_spare(out);
            match sent {
                Ok(()) => (Ok(take), data),
                Err(e) => (Err(e), data),
            }
        })
    }

    /// Sends `close_notify` if the socket takes it now, then closes the
    /// sending half.
    fn shutdown_write(&self) -> io::Result<()> {
        let mut send = Vec::new();
        {
            let mut state = self.state.borrow_mut();
            send.append(&mut state.queued);
            let _ = state.session.close_notify(&mut send);
        }
        if !send.is_empty() {
            // Best effort: a peer that stopped reading misses it, and
            // sees the stream end regardless.
            let _ = sys::send_now(self.socket.fd(), &send);
        }
        self.socket.shutdown_write()
    }

    fn tls(&self) -> Option<Rc<TlsInfo>> {
        self.state.borrow().info.clone()
    }

    fn sends_files(&self) -> bool {
        false
    }

    fn non_blocking(&self) -> io::Result<NonBlocking<'_>> {
        Err(io::ErrorKind::Unsupported.into())
    }

    fn read_file<'a>(
        &'a self,
        file: &'a FileBody,
        buf: &'a mut Vec<u8>,
        want: usize,
        offset: u64,
    ) -> impl Future<Output = io::Result<usize>> + 'a {
        self.socket.read_file(file, buf, want, offset)
    }

    fn splice_file(
        &self,
        _file: &FileBody,
        _pipe: &Pipe,
        _offset: u64,
        _len: u32,
    ) -> io::Result<Self::Write<'_>> {
        Err(io::Error::from_raw_os_error(libc::EINVAL))
    }
}

impl AcceptedTransport for TlsSocket {
    type Setup = TlsSetup;
    const PLAIN: bool = false;

    fn accepted(socket: RingSocket, setup: &TlsSetup) -> io::Result<TlsSocket> {
        let conn = UnbufferedServerConnection::new(setup.config.clone())
            .map_err(|e| io::Error::other(format!("TLS: {e}")))?;
        Ok(TlsSocket::new(socket, conn, setup.counters.clone(), setup.send_limit))
    }

    fn socket(&self) -> &RingSocket {
        &self.socket
    }
}
