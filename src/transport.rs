//! The one seam between the connection logic and the socket.
//!
//! `conn` only ever reads into its buffer, writes a buffer out, and closes;
//! [`Transport`] is those three operations on glommio's `TcpStream` (plain
//! non-blocking syscalls first, the core's ring for readiness). A transport
//! that submits recv/send as ring operations can replace this file without
//! touching any HTTP logic.

use std::io;
use std::net::Shutdown;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;

/// An accepted TCP connection.
pub(crate) struct Transport {
    stream: TcpStream,
}

impl Transport {
    /// Wraps an accepted stream and turns Nagle's algorithm off: responses
    /// are written whole, so there is nothing to coalesce.
    pub(crate) fn new(stream: TcpStream) -> Transport {
        // Best effort: a socket that refuses TCP_NODELAY still works.
        let _ = stream.set_nodelay(true);
        Transport { stream }
    }

    /// Reads what has arrived into `buf`; 0 means the peer closed.
    pub(crate) async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.read(buf).await
    }

    /// Writes all of `buf`.
    pub(crate) async fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.stream.write_all(buf).await
    }

    /// Writes what the socket takes now of `buf` (waiting until it takes
    /// something); the count written.
    pub(crate) async fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stream.write(buf).await
    }

    /// Closes the sending half, so the peer reads an end of stream after the
    /// last response.
    pub(crate) async fn shutdown_write(&mut self) -> io::Result<()> {
        self.stream.shutdown(Shutdown::Write).await.map_err(io::Error::from)
    }
}
