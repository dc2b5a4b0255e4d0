//! The seam between a connection and its bytes: [`Transport`], what `conn`
//! needs of a connection's socket, and nothing more. The server's
//! transport is `io::socket::RingSocket` (a socket on the core's ring);
//! `conn`'s unit tests use an in-memory one; a layer that transforms the
//! bytes (TLS) is another implementation, wrapping a `RingSocket`, and
//! `conn` does not change.
//!
//! Operations own their buffers: a buffer moves into a read or a write and
//! comes back with its result, so a completion-based transport never lets
//! the kernel see memory the connection could free first.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;

use super::file::{FileBody, Pipe};
use super::ring::{Detached, OpBuf};
use super::socket::RingSocket;
use crate::tls::TlsInfo;

/// Size (and resting size) of a connection's read buffer.
pub(crate) const READ_BUF_BYTES: usize = 4 << 10;

/// The other end of a connection: an IP address and port, or (`None`) a
/// process on a Unix socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Peer(pub(crate) Option<SocketAddr>);

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(addr) => addr.fmt(f),
            None => f.write_str("unix socket"),
        }
    }
}

/// What a connection needs of its socket.
pub(crate) trait Transport: 'static {
    /// A read left in flight with no task waiting for it (an idle
    /// connection's next receive), to be resumed later.
    type Parked;
    /// A read in flight.
    type Read<'a>: PendingRead<Parked = Self::Parked>
    where
        Self: 'a;
    /// A write (or a splice) in flight: it resolves to the count moved and
    /// gives the buffer back.
    type Write<'a>: Future<Output = (io::Result<usize>, OpBuf)>
    where
        Self: 'a;
    /// The socket in non-blocking mode (see [`Transport::non_blocking`]).
    type NonBlocking<'a>: NonBlockingSend
    where
        Self: 'a;

    /// Starts a read into `buf[at..]`; it resolves to the count read (0:
    /// the peer closed its side).
    fn read<'a>(&'a self, buf: &'a mut Vec<u8>, at: usize) -> Self::Read<'a>;

    /// Starts a read for a connection with nothing buffered, landing at the
    /// start of `buf` (which may be empty: a transport may hold no buffer
    /// while the read waits). `later`: the peer has responses to read
    /// before it sends more.
    fn read_fresh<'a>(&'a self, buf: &'a mut Vec<u8>, later: bool) -> Self::Read<'a>;

    /// Awaits a parked read again; its data lands as the read's would, in
    /// `buf`.
    fn resume_read<'a>(&'a self, read: Self::Parked, buf: &'a mut Vec<u8>) -> Self::Read<'a>;

    /// Writes what the socket takes now of `data[at..]` (waiting until it
    /// takes something).
    fn write(&self, data: OpBuf, at: usize) -> Self::Write<'_>;

    /// Closes the sending half: the peer reads an end of stream after the
    /// last response.
    fn shutdown_write(&self) -> io::Result<()>;

    /// What the connection's TLS negotiated, once its handshake is over
    /// (`None`: plain, or still in the handshake).
    fn tls(&self) -> Option<Rc<TlsInfo>> {
        None
    }

    /// Whether file bodies may go out with `sendfile` or a splice (not over
    /// TLS in user space: the kernel would send them unencrypted).
    fn sends_files(&self) -> bool {
        true
    }

    /// Switches to non-blocking mode until the returned guard is restored
    /// (or dropped): the mode in which a sender on the core never waits
    /// inside the kernel for a client that reads slowly.
    fn non_blocking(&self) -> io::Result<Self::NonBlocking<'_>>;

    /// Reads up to `want` bytes of `file` at `offset` onto the end of
    /// `buf` without the core waiting for a disk.
    fn read_file<'a>(
        &'a self,
        file: &'a FileBody,
        buf: &'a mut Vec<u8>,
        want: usize,
        offset: u64,
    ) -> impl Future<Output = io::Result<usize>> + 'a;

    /// Moves up to `len` bytes of `file` at `offset` into `pipe`, without a
    /// copy (`EINVAL`: this transport or file system cannot).
    fn splice_file(
        &self,
        file: &FileBody,
        pipe: &Pipe,
        offset: u64,
        len: u32,
    ) -> io::Result<Self::Write<'_>>;
}

/// A transport the core makes from an accepted socket, whose reads park on
/// the core's ring: the plain [`RingSocket`](super::socket::RingSocket),
/// or TLS over one.
pub(crate) trait AcceptedTransport: Transport<Parked = Detached> + Sized {
    /// What a core makes every connection with (TLS: its configuration).
    type Setup: 'static;
    /// Whether a connection shed at accept can be told why in plain HTTP
    /// (not over TLS before a handshake: it is closed instead).
    const PLAIN: bool;

    /// The transport of a connection accepted on `socket`.
    fn accepted(socket: RingSocket, setup: &Self::Setup) -> io::Result<Self>;

    /// The socket underneath: for the core to end a connection's
    /// operations at a deadline or a drain.
    fn socket(&self) -> &RingSocket;
}

/// A read in flight (see [`Transport::read`]).
pub(crate) trait PendingRead: Future<Output = io::Result<usize>> + Sized {
    /// What [`PendingRead::detach`] leaves.
    type Parked;

    /// Lets go of the read without ending it;
    /// [`Transport::resume_read`] awaits it again.
    fn detach(self) -> Self::Parked;

    /// Fails with `ENOBUFS` when the transport has no buffer for the data,
    /// instead of reading into the caller's: for a caller that would rather
    /// wait again without holding one.
    fn picked_only(self) -> Self;

    /// Ends the read early; what arrived before is kept and counted.
    fn cancel(self) -> impl Future<Output = io::Result<usize>>;
}

/// A socket in non-blocking mode, and what is sent in that mode. Each send
/// returns `WouldBlock` when the socket is full; the sender then waits for
/// [`NonBlockingSend::writable`].
pub(crate) trait NonBlockingSend {
    /// A splice or a wait in flight.
    type Op<'a>: Future<Output = (io::Result<usize>, OpBuf)>
    where
        Self: 'a;

    /// `send(2)` with `MSG_MORE`: the bytes may wait to leave with what
    /// follows, in one packet (nginx's `tcp_nopush`).
    fn send_more(&self, bytes: &[u8]) -> io::Result<usize>;

    /// `sendfile(2)` of up to `count` bytes of `file` from `*offset`,
    /// advancing it (`EINVAL`: this transport or file system cannot).
    fn sendfile(&self, file: &FileBody, offset: &mut u64, count: usize) -> io::Result<usize>;

    /// Moves up to `len` bytes out of `pipe` into the socket, without a
    /// copy.
    fn splice_from(&self, pipe: &Rc<Pipe>, len: u32) -> Self::Op<'_>;

    /// Completes when the socket can take more.
    fn writable(&self) -> Self::Op<'_>;

    /// Puts the socket back in blocking mode.
    fn restore(self) -> io::Result<()>;
}
