//! [`RingSocket`]: a connection's socket on the core's socket ring, the
//! server's [`Transport`]. Reads and writes are ring operations; in
//! non-blocking mode ([`NonBlocking`], a guard that puts the socket back)
//! file bodies go out with `sendfile`, `send` with `MSG_MORE`, or a splice
//! from a pipe. If an operation's future is dropped (a timeout, a cut
//! connection), the ring cancels it and keeps the buffer until the kernel
//! lets go of it.

use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use socket2::SockRef;

use super::file::{FileBody, Pipe};
use super::ring::{Detached, Op, OpBuf, Ring, SpliceInput};
use super::sys;
use super::transport::{
    AcceptedTransport, NonBlockingSend, Peer, PendingRead, Transport, READ_BUF_BYTES,
};
use crate::recycle;

/// An accepted connection's socket, its I/O on the core's ring.
pub(crate) struct RingSocket {
    /// The socket, closed when this is dropped; its I/O goes
    /// through `ring`.
    socket: OwnedFd,
    ring: Rc<Ring>,
}

impl RingSocket {
    /// Wraps an accepted socket and turns Nagle's algorithm off: responses
    /// are written whole, so there is nothing to coalesce.
    pub(crate) fn new(socket: OwnedFd, ring: Rc<Ring>) -> RingSocket {
        // Best effort: a socket that refuses TCP_NODELAY still works.
        let _ = SockRef::from(&socket).set_nodelay(true);
        RingSocket { socket, ring }
    }

    /// The other end of the connection.
    pub(crate) fn peer(&self) -> io::Result<Peer> {
        let addr = SockRef::from(&self.socket).peer_addr()?;
        Ok(Peer(addr.as_socket()))
    }

    /// Completes when the socket can take more.
    fn writable(&self) -> Op<'_> {
        self.ring.writable(self.fd())
    }

    fn reading<'a>(&'a self, op: Op<'a>, buf: &'a mut Vec<u8>) -> Read<'a> {
        Read { op, buf, fd: self.fd(), ring: &self.ring, own_buffer_if_none: true }
    }

    /// The core's ring, which this socket's I/O goes through.
    pub(crate) fn ring(&self) -> &Ring {
        &self.ring
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}

impl Transport for RingSocket {
    type Parked = Detached;
    type Read<'a> = Read<'a>;
    type Write<'a> = Op<'a>;
    type NonBlocking<'a> = NonBlocking<'a>;

    /// Starts a read into `buf[at..]`: the receive is queued now, and the
    /// returned [`Read`] resolves to the count read (0: the peer closed).
    fn read<'a>(&'a self, buf: &'a mut Vec<u8>, at: usize) -> Read<'a> {
        let op = self.ring.recv(self.fd(), std::mem::take(buf), at);
        self.reading(op, buf)
    }
    /// Starts a read for a connection with nothing buffered: the kernel
    /// picks one of the ring's buffers when data arrives (so `buf`, which
    /// may be empty, is not held while the read waits), and the data is
    /// copied to the start of `buf`, grown as needed. `later`: the peer has
    /// responses to read before it sends more, so the read waits for the
    /// socket to become readable rather than trying it first.
    fn read_fresh<'a>(&'a self, buf: &'a mut Vec<u8>, later: bool) -> Read<'a> {
        if !self.ring.picks_buffers() {
            if buf.capacity() == 0 {
                *buf = recycle::take(&recycle::READ_BUFS);
            }
            buf.resize(READ_BUF_BYTES, 0);
            return self.read(buf, 0);
        }
        let op = self.ring.recv_picked(self.fd(), later);
        self.reading(op, buf)
    }
    /// Awaits a read started by [`Transport::read_fresh`] (or `read`) and
    /// detached since; its data lands as that read's would, in `buf`.
    fn resume_read<'a>(&'a self, read: Detached, buf: &'a mut Vec<u8>) -> Read<'a> {
        let op = self.ring.resume(read);
        self.reading(op, buf)
    }
    /// Writes what the socket takes now of `data[at..]` (waiting until it
    /// takes something); the count written, and `data` back.
    fn write(&self, data: OpBuf, at: usize) -> Op<'_> {
        self.ring.send(self.fd(), data, at)
    }
    /// Closes the sending half, so the peer reads an end of stream after the
    /// last response.
    fn shutdown_write(&self) -> io::Result<()> {
        // SAFETY: the descriptor is the open socket this transport owns.
        if unsafe { libc::shutdown(self.fd(), libc::SHUT_WR) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Switches the socket to non-blocking mode until the returned guard
    /// is restored (or dropped).
    fn non_blocking(&self) -> io::Result<NonBlocking<'_>> {
        sys::set_nonblocking(self.fd(), true)?;
        Ok(NonBlocking { io: self, restored: false })
    }

    /// Reads the file on the ring: the core does not wait for the disk.
    async fn read_file<'a>(
        &'a self,
        file: &'a FileBody,
        buf: &'a mut Vec<u8>,
        want: usize,
        offset: u64,
    ) -> io::Result<usize> {
        file.make_blocking()?;
        self.ring.read_file(file.fd(), buf, want, offset).await
    }

    /// Splices on the ring; the operation keeps the file open until it
    /// completes.
    fn splice_file(
        &self,
        file: &FileBody,
        pipe: &Pipe,
        offset: u64,
        len: u32,
    ) -> io::Result<Op<'_>> {
        file.make_blocking()?;
        let at = i64::try_from(offset).map_err(|_| io::ErrorKind::InvalidInput)?;
        Ok(self.ring.splice(file.splice_input(), at, pipe.write_fd(), len, false))
    }
}

impl AcceptedTransport for RingSocket {
    type Setup = ();
    const PLAIN: bool = true;

    fn accepted(socket: RingSocket, _setup: &()) -> io::Result<RingSocket> {
        Ok(socket)
    }

    fn socket(&self) -> &RingSocket {
        self
    }
}

/// The socket of a [`Transport`] in non-blocking mode, and what is sent
/// in that mode. Each send returns `WouldBlock` when the socket is full;
/// the sender then waits for [`Transport::writable`].
pub(crate) struct NonBlocking<'a> {
    io: &'a RingSocket,
    restored: bool,
}

impl NonBlockingSend for NonBlocking<'_> {
    type Op<'b>
        = Op<'b>
    where
        Self: 'b;

    /// `send(2)` with `MSG_MORE`: the kernel may hold these bytes to leave
    /// with what follows, in one packet (nginx's `tcp_nopush`).
    fn send_more(&self, bytes: &[u8]) -> io::Result<usize> {
        sys::send_more(self.io.fd(), bytes)
    }

    /// `sendfile(2)` of up to `count` bytes of `file` from `*offset`,
    /// advancing it: copied in the kernel, on the core.
    fn sendfile(&self, file: &FileBody, offset: &mut u64, count: usize) -> io::Result<usize> {
        sys::sendfile(self.io.fd(), file.fd(), offset, count)
    }

    /// Moves up to `len` bytes out of `pipe` into the socket on the ring,
    /// without a copy; the operation keeps the pipe open until it
    /// completes.
    fn splice_from(&self, pipe: &Rc<Pipe>, len: u32) -> Op<'_> {
        let input = SpliceInput::Pipe(pipe.clone());
        self.io.ring.splice(input, -1, self.io.fd(), len, true)
    }

    /// Completes when the socket can take more.
    fn writable(&self) -> Op<'_> {
        self.io.writable()
    }

    /// Puts the socket back in blocking mode.
    fn restore(mut self) -> io::Result<()> {
        self.restored = true;
        sys::set_nonblocking(self.io.fd(), false)
    }
}

impl Drop for NonBlocking<'_> {
    fn drop(&mut self) {
        if !self.restored {
            // The connection is ending on an error: its socket's mode no
            // longer matters, and a failure here has nowhere to go.
            let _ = sys::set_nonblocking(self.io.fd(), false);
        }
    }
}

/// A read in flight. Its buffer is with the kernel until the read ends;
/// the future puts it back. Dropped unfinished, it leaves the buffer empty
/// (the ring keeps the memory until the kernel lets go of it): a read that
/// is no longer wanted is ended with [`Read::cancel`] instead.
pub(crate) struct Read<'a> {
    op: Op<'a>,
    buf: &'a mut Vec<u8>,
    fd: RawFd,
    ring: &'a Ring,
    /// When every picked buffer is taken, read into `buf` instead of
    /// failing with `ENOBUFS`.
    own_buffer_if_none: bool,
}

impl PendingRead for Read<'_> {
    type Parked = Detached;

    fn detach(self) -> Detached {
        self.op.detach()
    }

    fn picked_only(mut self) -> Self {
        self.own_buffer_if_none = false;
        self
    }

    async fn cancel(self) -> io::Result<usize> {
        let Read { op, buf, ring, .. } = self;
        let (result, back) = op.cancel().await;
        settle(ring, result, back, buf)
    }
}

impl Future for Read<'_> {
    type Output = io::Result<usize>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let (result, back) = std::task::ready!(Pin::new(&mut self.op).poll(cx));
            let no_buffer = matches!(&result, Err(e) if e.raw_os_error() == Some(libc::ENOBUFS));
            if no_buffer && self.own_buffer_if_none {
                // Every picked buffer is in use: read into `buf` instead.
                let this = &mut *self;
                if this.buf.is_empty() {
                    *this.buf = recycle::take(&recycle::READ_BUFS);
                    this.buf.resize(READ_BUF_BYTES, 0);
                }
                this.op = this.ring.recv(this.fd, std::mem::take(this.buf), 0);
                continue;
            }
            let this = &mut *self;
            return Poll::Ready(settle(this.ring, result, back, this.buf));
        }
    }
}

/// Puts a finished read's data where the connection expects it: its own
/// buffer back in place, or a picked buffer's bytes copied to the start of
/// `buf`.
fn settle(
    ring: &Ring,
    result: io::Result<usize>,
    back: OpBuf,
    buf: &mut Vec<u8>,
) -> io::Result<usize> {
    match back {
        OpBuf::Vec(back) => *buf = back,
        OpBuf::Picked(id) => {
            let len = *result.as_ref().unwrap_or(&0);
            if buf.capacity() == 0 {
                *buf = recycle::take(&recycle::READ_BUFS);
                buf.reserve(READ_BUF_BYTES);
            }
            ring.take_received(id, len, buf, 0);
        }
        OpBuf::None | OpBuf::Bytes(_) | OpBuf::Splice(_) => {}
    }
    result
}
