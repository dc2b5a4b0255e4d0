//! A connection after its `101 Switching Protocols`: [`UpgradedSocket`],
//! the transport as futures-io `AsyncRead + AsyncWrite` for the handler
//! that took it over (`app::Upgraded`). The transport's operations own
//! their buffers, so each read or write in flight is a boxed future that
//! owns its buffer and a handle on the transport; bytes read beyond what
//! the caller asked for wait for its next read.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_lite::{AsyncRead, AsyncWrite};

use super::watch::Stall;
use super::{Drain, Watch};
use crate::app::UpgradedIo;
use crate::io::ring::OpBuf;
use crate::io::transport::Transport;

/// Bytes one read of an upgraded connection asks for, while the peer is
/// sending. A connection that waits holds no buffer: its read takes one of
/// the ring's picked buffers when data arrives (see `Transport::read_fresh`),
/// so an idle WebSocket costs no read buffer of its own.
const READ_BYTES: usize = 64 << 10;

type ReadOp = Pin<Box<dyn Future<Output = (io::Result<usize>, Vec<u8>)>>>;
type WriteOp = Pin<Box<dyn Future<Output = io::Result<usize>>>>;

/// An upgraded connection's transport, as a byte stream both ways.
pub(super) struct UpgradedSocket<T> {
    io: Rc<T>,
    /// Bytes `at..end` were read and not yet handed over: first the bytes
    /// that came after the upgrade request, then what a read brought
    /// beyond the caller's room. The buffer keeps its length between
    /// reads (no zeroing per read).
    unread: Vec<u8>,
    at: usize,
    end: usize,
    reading: Option<ReadOp>,
    writing: Option<WriteOp>,
    /// A write that completed in a flush, owed to the `poll_write` retried
    /// with its bytes.
    written: Option<io::Result<usize>>,
    watch: Rc<Watch>,
    write_timeout: Duration,
    drain: Rc<Drain>,
}

impl<T: Transport> UpgradedSocket<T> {
    pub(super) fn new(
        io: Rc<T>,
        unread: Vec<u8>,
        watch: Rc<Watch>,
        write_timeout: Duration,
        drain: Rc<Drain>,
    ) -> Self {
        let end = unread.len();
        UpgradedSocket {
            io,
            unread,
            at: 0,
            end,
            reading: None,
            writing: None,
            written: None,
            watch,
            write_timeout,
            drain,
        }
    }

    /// Hands over what is unread, as much as `out` takes.
    fn take_unread(&mut self, out: &mut [u8]) -> usize {
        let n = (self.end - self.at).min(out.len());
        out[..n].copy_from_slice(&self.unread[self.at..self.at + n]);
        self.at += n;
        n
    }
}

impl<T: Transport> UpgradedIo for UpgradedSocket<T> {
    fn stopping(&self) -> Pin<Box<dyn Future<Output = ()>>> {
        Box::pin(self.drain.started())
    }
}

impl<T: Transport> AsyncRead for UpgradedSocket<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.at < this.end || out.is_empty() {
            return Poll::Ready(Ok(this.take_unread(out)));
        }
        let reading = this.reading.get_or_insert_with(|| {
            let io = this.io.clone();
            // The last read filled its buffer: more is likely waiting, read
            // it into a large buffer of our own. Otherwise wait holding
            // none.
            let busy = this.end > 0 && this.end == this.unread.len();
            let mut buf = std::mem::take(&mut this.unread);
            Box::pin(async move {
                let result = if busy {
                    if buf.len() < READ_BYTES {
                        buf.resize(READ_BYTES, 0);
                    }
                    io.read(&mut buf, 0).await
                } else {
                    buf = Vec::new();
                    io.read_fresh(&mut buf, false).await
                };
                (result, buf)
            })
        });
        let (result, buf) = std::task::ready!(reading.as_mut().poll(cx));
        this.reading = None;
        this.unread = buf;
        this.at = 0;
        this.end = 0;
        match result {
            Ok(n) => {
                this.end = n.min(this.unread.len());
                Poll::Ready(Ok(this.take_unread(out)))
            }
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl<T: Transport> AsyncWrite for UpgradedSocket<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(written) = this.written.take() {
            return Poll::Ready(written);
        }
        if this.writing.is_none() && data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let writing = this.writing.get_or_insert_with(|| {
            let io = this.io.clone();
            let watch = this.watch.clone();
            let limit = this.write_timeout;
            let data = OpBuf::Vec(data.to_vec());
            Box::pin(async move {
                // The core's sweeper cuts a write the client takes nothing of
                // for the write timeout.
                let stall = Stall { watch: &watch, limit };
                stall.arm();
                let (result, _) = io.write(data, 0).await;
                match stall.disarm() {
                    Err(stalled) => {
                        Err(io::Error::new(io::ErrorKind::TimedOut, stalled.to_string()))
                    }
                    Ok(()) => result,
                }
            })
        });
        let result = std::task::ready!(writing.as_mut().poll(cx));
        this.writing = None;
        Poll::Ready(result)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(writing) = &mut this.writing {
            let result = std::task::ready!(writing.as_mut().poll(cx));
            this.writing = None;
            let failed = result.as_ref().err().map(|e| io::Error::new(e.kind(), e.to_string()));
            this.written = Some(result);
            if let Some(e) = failed {
                return Poll::Ready(Err(e));
            }
        }
        Poll::Ready(Ok(()))
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.as_mut().poll_flush(cx))?;
        Poll::Ready(self.io.shutdown_write())
    }
}
