//! Sending a file body: copied into the write buffer when small, else
//! sent by the kernel without a copy (`sendfile` on the core while the
//! bytes are in the page cache, spliced on the ring otherwise).

use std::io;
use std::os::fd::OwnedFd;
use std::rc::Rc;

use tracing::error;

use super::watch::Stall;

use super::Conn;
use crate::app::App;
use crate::io::sys;

/// A file body is read and written in chunks of this size.
pub(super) const FILE_CHUNK_BYTES: usize = 64 << 10;

/// File bodies at least this large are spliced (no copy) rather than read
/// into the write buffer and written with the head.
pub(super) const SPLICE_MIN_BYTES: u64 = 16 << 10;

/// A large file body is checked to be in the page cache (`cachestat`)
/// this much at a time before `sendfile` sends it on the core: the check's
/// cost stays bounded, and it stays close to the send.
pub(super) const CACHED_WINDOW_BYTES: u64 = 2 << 20;

/// What a pipe is asked to hold: one splice's worth.
pub(super) const PIPE_BYTES: u64 = 512 << 10;

/// Empty pipes a core keeps for reuse; more are closed.
pub(super) const MAX_SPARE_PIPES: usize = 64;

/// A pipe to splice file bodies through.
pub(crate) struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
}

impl Pipe {
    pub(super) fn new() -> io::Result<Pipe> {
        let (read, write) = sys::pipe()?;
        // Best effort: a larger pipe moves a large file in fewer splices;
        // the default (64 KiB) works too.
        sys::set_pipe_size(&write, PIPE_BYTES as usize);
        Ok(Pipe { read, write })
    }
}

impl<A: App> Conn<A> {
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
    ) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        if len < SPLICE_MIN_BYTES {
            return self.copy_file(&file, offset, 0, len).await;
        }
        let first = len.min(CACHED_WINDOW_BYTES);
        let mut sent = 0;
        if sys::is_cached(file.as_raw_fd(), offset, first) {
            sent = self.send_cached(&file, offset, first, len).await?;
            if sent == len {
                return Ok(());
            }
        }
        let pipe = self.shared.pipes.borrow_mut().pop().map(Ok).unwrap_or_else(Pipe::new);
        match pipe {
            Ok(pipe) => self.splice_file(Rc::new(file), Rc::new(pipe), offset, sent, len).await,
            // Out of descriptors for a pipe: copy instead.
            Err(_) => self.copy_file(&file, offset, sent, len).await,
        }
    }

    /// Writes bytes `sent..len` of the body at `offset` of `file`: each
    /// chunk is read straight into the write buffer, after what is pending
    /// there (the head, the first time: a small file goes out in one
    /// write), and written before the next is read; the last one is left
    /// in the buffer, to go out with the next receive as any response
    /// does. A chunk in the page
    /// cache is read with one system call on the core; from the first that
    /// is not, chunks are read on the ring, so the core does not wait for a
    /// disk. A file that ends early ends the connection.
    pub(super) async fn copy_file(
        &mut self,
        file: &std::fs::File,
        offset: u64,
        mut sent: u64,
        len: u64,
    ) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let fd = file.as_raw_fd();
        let mut on_ring = false;
        while sent < len {
            let want = usize::try_from(len - sent).unwrap_or(usize::MAX).min(FILE_CHUNK_BYTES);
            let read = if on_ring {
                self.shared.ring.read_file(fd, &mut self.wbuf, want, offset + sent).await
            } else {
                sys::read_cached(fd, &mut self.wbuf, want, offset + sent)
            };
            let read = match read {
                // Not cached, or no cache-only reads on this file system.
                Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EOPNOTSUPP)) => {
                    on_ring = true;
                    // io_uring fails a read of a non-blocking file that
                    // would wait.
                    sys::set_nonblocking(fd, false)?;
                    self.shared.ring.read_file(fd, &mut self.wbuf, want, offset + sent).await
                }
                read => read,
            };
            match read {
                Ok(0) => {
                    // What was read goes out; the close marks it short.
                    self.flush().await?;
                    return Err(self.file_ended(sent, len));
                }
                Ok(n) => sent += n as u64,
                Err(e) => return Err(self.file_failed(e)),
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
    pub(super) async fn send_cached(
        &mut self,
        file: &std::fs::File,
        offset: u64,
        checked: u64,
        len: u64,
    ) -> io::Result<u64> {
        let socket = self.io.fd();
        sys::set_nonblocking(socket, true)?;
        let mut result = self.flush_more().await.map(|()| 0);
        if result.is_ok() {
            result = self.sendfile_loop(file, offset, checked, len).await;
        }
        let restored = sys::set_nonblocking(socket, false);
        result.and_then(|sent| restored.map(|()| sent))
    }

    /// Writes and empties the write buffer (the head) on the core, the
    /// socket being non-blocking, with `MSG_MORE`: the kernel holds it to
    /// leave with the start of the body, in one packet (nginx's
    /// `tcp_nopush`).
    pub(super) async fn flush_more(&mut self) -> io::Result<()> {
        let socket = self.io.fd();
        let mut written = 0;
        while written < self.wbuf.len() {
            match sys::send_more(socket, &self.wbuf[written..]) {
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.writable().await?,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.wbuf.clear();
        Ok(())
    }

    /// Waits until the socket (non-blocking) has room for more, under the
    /// write timeout.
    pub(super) async fn writable(&self) -> io::Result<()> {
        let stall = Stall { watch: &self.watch, limit: self.shared.timeouts.write };
        stall.arm();
        let _ = self.shared.ring.writable(self.io.fd()).await;
        stall.disarm()
    }

    /// The loop of [`Conn::send_cached`].
    pub(super) async fn sendfile_loop(
        &mut self,
        file: &std::fs::File,
        offset: u64,
        mut checked: u64,
        len: u64,
    ) -> io::Result<u64> {
        use std::os::fd::AsRawFd;
        let socket = self.io.fd();
        let mut sent = 0;
        while sent < len {
            if sent == checked {
                let window = (len - sent).min(CACHED_WINDOW_BYTES);
                if !sys::is_cached(file.as_raw_fd(), offset + sent, window) {
                    return Ok(sent);
                }
                checked += window;
            }
            let count = usize::try_from(checked - sent).unwrap_or(usize::MAX);
            let mut at = offset + sent;
            match sys::sendfile(socket, file.as_raw_fd(), &mut at, count) {
                Ok(0) => return Err(self.file_ended(sent, len)),
                Ok(n) => {
                    sent += n as u64;
                    self.body_bytes = sent;
                    // A client that keeps up must not keep the core.
                    glommio::yield_if_needed().await;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.writable().await?,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // This file system cannot sendfile: the ring's way.
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => return Ok(sent),
                Err(e) => return Err(e),
            }
        }
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
    pub(super) async fn splice_file(
        &mut self,
        file: Rc<std::fs::File>,
        pipe: Rc<Pipe>,
        offset: u64,
        sent: u64,
        len: u64,
    ) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        // io_uring fails a read of a non-blocking file that would wait.
        sys::set_nonblocking(file.as_raw_fd(), false)?;
        self.flush().await?;
        let socket = self.io.fd();
        sys::set_nonblocking(socket, true)?;
        let result = self.splice_through(&file, &pipe, offset, sent, len).await;
        let restored = sys::set_nonblocking(socket, false);
        match result {
            Ok(None) => {
                let mut pipes = self.shared.pipes.borrow_mut();
                if pipes.len() < MAX_SPARE_PIPES {
                    if let Ok(pipe) = Rc::try_unwrap(pipe) {
                        pipes.push(pipe);
                    }
                }
                restored
            }
            // Splicing is not supported here: copy the rest.
            Ok(Some(sent)) => {
                restored?;
                self.copy_file(&file, offset, sent, len).await
            }
            Err(e) => Err(e),
        }
    }

    /// The splice loop of [`Conn::splice_file`]: `Ok(None)` when all was
    /// sent, `Ok(Some(sent))` when the file system cannot splice (after
    /// `sent` bytes, with the pipe empty).
    pub(super) async fn splice_through(
        &mut self,
        file: &Rc<std::fs::File>,
        pipe: &Rc<Pipe>,
        offset: u64,
        mut sent: u64,
        len: u64,
    ) -> io::Result<Option<u64>> {
        use std::os::fd::AsRawFd;
        let ring = self.shared.ring.clone();
        let socket = self.io.fd();
        while sent < len {
            let want = u32::try_from((len - sent).min(PIPE_BYTES)).unwrap_or(u32::MAX);
            let at = i64::try_from(offset + sent).unwrap_or(i64::MAX);
            let keep: Rc<dyn std::any::Any> = file.clone();
            let (filled, _) = ring
                .splice((file.as_raw_fd(), at), pipe.write.as_raw_fd(), want, false, keep)
                .await;
            let mut in_pipe = match filled {
                Ok(0) => return Err(self.file_ended(sent, len)),
                Ok(n) => n as u64,
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => return Ok(Some(sent)),
                Err(e) => return Err(self.file_failed(e)),
            };
            while in_pipe > 0 {
                let chunk = u32::try_from(in_pipe).unwrap_or(u32::MAX);
                let keep: Rc<dyn std::any::Any> = pipe.clone();
                let (moved, _) =
                    ring.splice((pipe.read.as_raw_fd(), -1), socket, chunk, true, keep).await;
                match moved {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(n) => {
                        in_pipe -= n as u64;
                        sent += n as u64;
                        self.body_bytes = sent;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.writable().await?,
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(None)
    }

    /// The error that ends a response whose file ended after `sent` of its
    /// `len` bytes (it shrank), logged.
    pub(super) fn file_ended(&self, sent: u64, len: u64) -> io::Error {
        error!(peer = %self.peer, "file ended at {sent} of {len} bytes");
        io::Error::other("file ended short")
    }

    /// A failed read of a response's file, logged.
    pub(super) fn file_failed(&self, e: io::Error) -> io::Error {
        error!(peer = %self.peer, "file read failed: {e}");
        e
    }
}
