//! A connection's read buffer: what was received and not yet parsed; it
//! holds no memory while the connection is idle.

use crate::io::transport::READ_BUF_BYTES;
use crate::recycle;

/// Fewest free bytes offered to one read.
pub(super) const MIN_READ_BYTES: usize = 2 << 10;

/// Most bytes one read may make the read buffer grow by: a body is read as
/// it arrives, not reserved whole from its declared length.
pub(super) const MAX_READ_GROWTH: usize = 64 << 10;

/// A connection's read buffer: bytes `start..end` of `buf` are unread.
pub(super) struct ReadBuf {
    pub(super) buf: Vec<u8>,
    pub(super) start: usize,
    pub(super) end: usize,
}

impl ReadBuf {
    pub(super) fn new() -> ReadBuf {
        ReadBuf { buf: Vec::new(), start: 0, end: 0 }
    }

    pub(super) fn filled(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    pub(super) fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Makes free space for a read of at least `want` bytes (at most
    /// [`MAX_READ_GROWTH`] more than the buffer holds) after `end`.
    pub(super) fn reserve(&mut self, want: usize) {
        if self.buf.capacity() == 0 {
            self.buf = recycle::take(&recycle::READ_BUFS);
        }
        let want = want.clamp(MIN_READ_BYTES, MAX_READ_GROWTH);
        if self.buf.len() - self.end < want && self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.buf.len() - self.end < want {
            let grown = (self.buf.len() * 2).max(self.end + want);
            self.buf.resize(grown, 0);
        }
    }

    pub(super) fn advance(&mut self, n: usize) {
        self.end += n;
    }

    /// Gives the (empty) buffer's memory to the core's shelf while the
    /// connection waits: idle connections hold no read buffer.
    pub(super) fn release(&mut self) {
        debug_assert_eq!(self.start, self.end);
        self.start = 0;
        self.end = 0;
        recycle::give(&recycle::READ_BUFS, std::mem::take(&mut self.buf));
    }

    /// Gives back the memory a large body made the buffer grow to.
    pub(super) fn shrink(&mut self) {
        let unread = self.end - self.start;
        if self.buf.len() > READ_BUF_BYTES * 8 && unread <= READ_BUF_BYTES {
            let mut fresh = vec![0; READ_BUF_BYTES];
            fresh[..unread].copy_from_slice(self.filled());
            self.buf = fresh;
            self.start = 0;
            self.end = unread;
        }
    }
}
