//! Sending a file body: copied into the write buffer when small, else
//! sent by the kernel without a copy (`sendfile` on the core while the
//! bytes are in the page cache, spliced on the ring otherwise). Every
//! operation goes through `io` ([`FileBody`], the [`Transport`] and its
//! non-blocking mode, the core's pipes): no descriptor here.

use std::io;
use std::rc::Rc;

use super::error::ConnError;
use super::watch::Stall;
use super::Conn;
use crate::app::App;
use crate::io::file::{FileBody, Pipe, PIPE_BYTES};
use crate::io::transport::{NonBlockingSend, Transport};

/// A file body is read and written in chunks of this size.
const FILE_CHUNK_BYTES: usize = 64 << 10;

/// File bodies at least this large are spliced (no copy) rather than read
/// into the write buffer and written with the head.
const SPLICE_MIN_BYTES: u64 = 16 << 10;

/// A large file body is checked to be in the page cache (`cachestat`)
/// this much at a time before `sendfile` sends it on the core: the check's
/// cost stays bounded, and it stays close to the send.
const CACHED_WINDOW_BYTES: u64 = 2 << 20;

impl<A: App, T: Transport> Conn<A, T> {
    /// Writes `len` bytes of `file` from `offset`: copied into the write
    /// buffer when small (see [`Conn::copy_file`]); when large, sent by the
    /// kernel without a copy: with `sendfile` on the core while the bytes
    /// are in the page cache (see [`Conn::send_cached`]), the rest spliced
    /// on the ring (see [`Conn::splice_file`]).
    pub(super) async fn send_file(
        &mut self,
        file: std::fs::File,
        offset: u64,
        len: u64,
    ) -> Result<(), ConnError> {
        let file = FileBody::new(file);
        if len < SPLICE_MIN_BYTES || !self.io.sends_files() {
            return self.copy_file(&file, offset, 0, len).await;
        }
        let first = len.min(CACHED_WINDOW_BYTES);
        let mut sent = 0;
        if file.is_cached(offset, first) {
            sent = self.send_cached(&file, offset, first, len).await?;
            if sent == len {
                return Ok(());
            }
        }
        match self.shared.pipes.take() {
            Ok(pipe) => self.splice_file(&file, pipe, offset, sent, len).await,
            // Out of descriptors for a pipe: copy instead.
            Err(_) => self.copy_file(&file, offset, sent, len).await,
        }
    }

    /// Writes bytes `sent..len` of the body at `offset` of `file`: each
    /// chunk is read straight into the write buffer, after what is pending
    /// there (the head, the first time: a small file goes out in one
    /// write), and written before the next is read; the last one is left
    /// in the buffer, to go out with the next receive as any response
    /// does. A chunk in the page cache is read with one system call on the
    /// core; from the first that is not, chunks are read on the ring, so
    /// the core does not wait for a disk. A file that ends early ends the
    /// connection.
    async fn copy_file(
        &mut self,
        file: &FileBody,
        offset: u64,
        mut sent: u64,
        len: u64,
    ) -> Result<(), ConnError> {
        let mut on_ring = false;
        while sent < len {
            let want = usize::try_from(len - sent).unwrap_or(usize::MAX).min(FILE_CHUNK_BYTES);
            let at = offset + sent;
            let read = if on_ring {
                self.io.read_file(file, &mut self.wbuf, want, at).await
            } else {
                file.read_cached(&mut self.wbuf, want, at)
            };
            let read = match read {
                // Not cached, or no cache-only reads on this file system.
                Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EOPNOTSUPP)) => {
                    on_ring = true;
                    self.io.read_file(file, &mut self.wbuf, want, at).await
                }
                read => read,
            };
            match read {
                Ok(0) => {
                    // What was read goes out; the close marks it short.
                    self.flush().await?;
                    return Err(ConnError::FileTooShort { sent, len });
                }
                Ok(n) => sent += n as u64,
                Err(e) => return Err(ConnError::FileRead(e)),
            }
            self.body_bytes = sent;
            if sent < len {
                self.flush().await?;
            }
        }
        Ok(())
    }

    /// Writes the head, then bytes of `file` from `offset` with `sendfile`
    /// on the core while they are in the page cache: `checked` bytes are
    /// known to be, and each next window of [`CACHED_WINDOW_BYTES`] is
    /// checked (`cachestat`) before it is sent. Returns how many were sent:
    /// `len`, or fewer when a window is not cached or the file system
    /// cannot `sendfile`, for the caller to send the rest on the ring.
    ///
    /// The socket is non-blocking meanwhile; when its send buffer is full
    /// the connection waits on the ring for room, under the write timeout
    /// (so a client that stops reading holds nothing). A file that ends
    /// early ends the connection. The core can still wait for a disk when
    /// pages are evicted between the check and the send, or were still
    /// being read in: rare, and what nginx's `sendfile` always risks.
    async fn send_cached(
        &mut self,
        file: &FileBody,
        offset: u64,
        checked: u64,
        len: u64,
    ) -> Result<u64, ConnError> {
        let io = &self.io;
        let socket = io.non_blocking()?;
        let stall = Stall { watch: &self.watch, limit: self.shared.timeouts.write };
        flush_more(&socket, &mut self.wbuf, stall).await?;
        let mut sent = 0;
        let mut checked = checked;
        while sent < len {
            if sent == checked {
                let window = (len - sent).min(CACHED_WINDOW_BYTES);
                if !file.is_cached(offset + sent, window) {
                    break;
                }
                checked += window;
            }
            let count = usize::try_from(checked - sent).unwrap_or(usize::MAX);
            let mut at = offset + sent;
            match socket.sendfile(file, &mut at, count) {
                Ok(0) => return Err(ConnError::FileTooShort { sent, len }),
                Ok(n) => {
                    sent += n as u64;
                    self.body_bytes = sent;
                    // A client that keeps up must not keep the core.
                    glommio::yield_if_needed().await;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => writable(&socket, stall).await?,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // This file system cannot sendfile: the ring's way.
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => break,
                Err(e) => return Err(e.into()),
            }
        }
        socket.restore()?;
        Ok(sent)
    }

    /// Writes bytes `sent..len` of the body at `offset` of `file` without
    /// copying them: spliced from the file into a pipe of the core's, then
    /// from the pipe into the socket, a pipeful at a time, after the head.
    /// The socket is non-blocking meanwhile, so a splice never waits inside
    /// the kernel for a client that reads slowly (io_uring runs splices on
    /// its worker threads: a waiting one would hold a thread); the
    /// connection waits on the ring for room instead, under the write
    /// timeout. A file system that cannot splice falls back to copying. A
    /// pipe left holding data (the connection failed) is not reused.
    async fn splice_file(
        &mut self,
        file: &FileBody,
        pipe: Rc<Pipe>,
        offset: u64,
        sent: u64,
        len: u64,
    ) -> Result<(), ConnError> {
        self.flush().await?;
        let stall = Stall { watch: &self.watch, limit: self.shared.timeouts.write };
        let socket = self.io.non_blocking()?;
        self.body_bytes = sent;
        let sent = &mut self.body_bytes;
        let spliced = splice_through(&*self.io, &socket, stall, file, &pipe, offset, sent, len);
        let result = spliced.await;
        socket.restore()?;
        match result? {
            Spliced::All => {
                self.shared.pipes.give_back(pipe);
                Ok(())
            }
            // Splicing is not supported here: copy the rest.
            Spliced::Unsupported => self.copy_file(file, offset, self.body_bytes, len).await,
        }
    }
}

/// How a splice of a file body ended.
enum Spliced {
    /// Every byte went.
    All,
    /// The file system cannot splice (the pipe is empty).
    Unsupported,
}

/// The splice loop of [`Conn::splice_file`]: from `*sent` to `len`,
/// counting in `sent` what reached the socket.
#[expect(clippy::too_many_arguments, reason = "one call site, each argument a distinct part")]
async fn splice_through<T: Transport>(
    io: &T,
    socket: &T::NonBlocking<'_>,
    stall: Stall<'_>,
    file: &FileBody,
    pipe: &Rc<Pipe>,
    offset: u64,
    sent: &mut u64,
    len: u64,
) -> Result<Spliced, ConnError> {
    while *sent < len {
        let want = u32::try_from((len - *sent).min(PIPE_BYTES)).unwrap_or(u32::MAX);
        let (filled, _) = io.splice_file(file, pipe, offset + *sent, want)?.await;
        let mut in_pipe = match filled {
            Ok(0) => return Err(ConnError::FileTooShort { sent: *sent, len }),
            Ok(n) => n as u64,
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => return Ok(Spliced::Unsupported),
            Err(e) => return Err(ConnError::FileRead(e)),
        };
        while in_pipe > 0 {
            let chunk = u32::try_from(in_pipe).unwrap_or(u32::MAX);
            let (moved, _) = socket.splice_from(pipe, chunk).await;
            match moved {
                Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero).into()),
                Ok(n) => {
                    in_pipe -= n as u64;
                    *sent += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => writable(socket, stall).await?,
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(Spliced::All)
}

/// Writes and empties `wbuf` (the head) on the core with `MSG_MORE`: the
/// kernel holds it to leave with the start of the body, in one packet
/// (nginx's `tcp_nopush`).
async fn flush_more(
    socket: &impl NonBlockingSend,
    wbuf: &mut Vec<u8>,
    stall: Stall<'_>,
) -> Result<(), ConnError> {
    let mut written = 0;
    while written < wbuf.len() {
        match socket.send_more(&wbuf[written..]) {
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => writable(socket, stall).await?,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    wbuf.clear();
    Ok(())
}

/// Waits until the socket has room for more, under the write timeout.
async fn writable(socket: &impl NonBlockingSend, stall: Stall<'_>) -> Result<(), ConnError> {
    stall.arm();
    let _ = socket.writable().await;
    stall.disarm()
}
