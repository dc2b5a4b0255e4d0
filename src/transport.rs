//! The one seam between the connection logic and the socket.
//!
//! `conn` only ever reads into its buffer, writes a buffer out, and closes;
//! [`Transport`] is those operations, submitted to the core's socket
//! [`Ring`]. Buffers move into an operation and come back with its result,
//! so the kernel never sees memory the connection could free first: if an
//! operation's future is dropped (a timeout, a cut connection), the ring
//! cancels it and keeps the buffer until the kernel lets go of it.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;

use glommio::net::TcpStream;

use crate::ring::{OpBuf, Ring};

/// An accepted TCP connection.
pub(crate) struct Transport {
    /// Owns the socket (closed when the transport is dropped); its I/O goes
    /// through `ring`.
    stream: TcpStream,
    ring: Rc<Ring>,
}

impl Transport {
    /// Wraps an accepted stream and turns Nagle's algorithm off: responses
    /// are written whole, so there is nothing to coalesce.
    pub(crate) fn new(stream: TcpStream, ring: Rc<Ring>) -> Transport {
        // Best effort: a socket that refuses TCP_NODELAY still works.
        let _ = stream.set_nodelay(true);
        Transport { stream, ring }
    }

    /// Reads what has arrived into `buf[at..]`; 0 means the peer closed.
    /// Should the future be dropped before it completes, `buf` is left
    /// empty (the ring holds its memory until the kernel is done with it).
    pub(crate) async fn read(&mut self, buf: &mut Vec<u8>, at: usize) -> io::Result<usize> {
        let (result, back) = self.ring.recv(self.fd(), std::mem::take(buf), at).await;
        if let OpBuf::Vec(back) = back {
            *buf = back;
        }
        result
    }

    /// Writes what the socket takes now of `data[at..]` (waiting until it
    /// takes something); the count written, and `data` back.
    pub(crate) async fn write(&mut self, data: OpBuf, at: usize) -> (io::Result<usize>, OpBuf) {
        self.ring.send(self.fd(), data, at).await
    }

    /// Closes the sending half, so the peer reads an end of stream after the
    /// last response.
    pub(crate) fn shutdown_write(&self) -> io::Result<()> {
        // SAFETY: the descriptor is the open socket `stream` owns.
        if unsafe { libc::shutdown(self.fd(), libc::SHUT_WR) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn fd(&self) -> RawFd {
        self.stream.as_raw_fd()
    }
}
