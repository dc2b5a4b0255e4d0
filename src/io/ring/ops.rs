//! One method per ring operation: each builds its submission entry over
//! the memory it hands to the kernel (see [`Ring::start`]).

use std::io;
use std::os::fd::RawFd;

use io_uring::{opcode, squeue, types};

use super::picks::{PICK_BYTES, PICK_GROUP};
use super::{Op, OpBuf, Ring, SpliceInput};

/// IORING_RECVSEND_POLL_FIRST, in a receive's `ioprio`.
const RECV_POLL_FIRST: u16 = 1;

impl Ring {
    /// Receives into `buf[at..]`; the buffer comes back with the result.
    pub(crate) fn recv(&self, fd: RawFd, buf: Vec<u8>, at: usize) -> Op<'_> {
        let len = buf.len().saturating_sub(at);
        self.start(OpBuf::Vec(buf), |buf| {
            let data = buf.as_slice();
            // `at` is within the buffer (len is 0 otherwise).
            let ptr = data.as_ptr().wrapping_add(at.min(data.len())).cast_mut();
            opcode::Recv::new(types::Fd(fd), ptr, len as u32).build()
        })
    }

    /// Whether [`Ring::recv_picked`] is available.
    pub(crate) fn picks_buffers(&self) -> bool {
        self.inner.borrow().picks.is_some()
    }

    /// Receives into a buffer the kernel picks from the ring's own when data
    /// arrives: the connection holds no buffer while it waits. The result
    /// comes with [`OpBuf::Picked`], or fails with `ENOBUFS` when every
    /// buffer is taken. `later`: no data is expected yet (the peer is still
    /// to read the responses just sent), so the kernel waits for the socket
    /// to become readable before its first attempt instead of failing one
    /// (IORING_RECVSEND_POLL_FIRST, 5.19, like provided-buffer rings).
    pub(crate) fn recv_picked(&self, fd: RawFd, later: bool) -> Op<'_> {
        let ioprio = if later { RECV_POLL_FIRST } else { 0 };
        self.start(OpBuf::None, |_| {
            opcode::Recv::new(types::Fd(fd), std::ptr::null_mut(), PICK_BYTES as u32)
                .buf_group(PICK_GROUP)
                .ioprio(ioprio)
                .build()
                .flags(squeue::Flags::BUFFER_SELECT)
        })
    }

    /// Appends the `len` received bytes of picked buffer `id` to
    /// `dst[at..]` (growing it as needed) and gives the buffer back.
    pub(crate) fn take_received(&self, id: u16, len: usize, dst: &mut Vec<u8>, at: usize) {
        let mut inner = self.inner.borrow_mut();
        let Some(picks) = inner.picks.as_mut() else { return };
        let data = picks.data(id, len);
        if dst.len() < at + len {
            // Grown by copying, not by zero-filling first: the buffer is
            // usually empty here, and zeroing it cost as much as the copy.
            dst.truncate(at);
            dst.resize(at, 0);
            dst.extend_from_slice(data);
        } else {
            dst[at..at + len].copy_from_slice(data);
        }
        picks.give_back(id);
    }

    /// An operation that completes at once with 0 (`IORING_OP_NOP`, 5.1):
    /// a parked read for a connection whose next read needs no I/O.
    pub(crate) fn nop(&self) -> Op<'_> {
        self.start(OpBuf::None, |_| opcode::Nop::new().build())
    }

    /// Waits until `fd` is readable (or hung up). Used for the listening
    /// socket: an accept stays a syscall, so a ring left behind by an
    /// executor that died can never take a connection out of the queue.
    pub(crate) fn readable(&self, fd: RawFd) -> Op<'_> {
        self.start(OpBuf::None, |_| {
            opcode::PollAdd::new(types::Fd(fd), libc::POLLIN as u32).build()
        })
    }

    /// Sends `buf[at..]` (what the socket takes: the count may be short).
    pub(crate) fn send(&self, fd: RawFd, buf: OpBuf, at: usize) -> Op<'_> {
        self.send_part(fd, buf, at, usize::MAX)
    }

    /// Sends `buf[at..end]` (the end capped at the buffer's): for a buffer
    /// reused at its full length, of which a part is filled.
    pub(crate) fn send_part(&self, fd: RawFd, buf: OpBuf, at: usize, end: usize) -> Op<'_> {
        self.start(buf, |buf| {
            let data = buf.as_slice();
            let data = &data[..end.min(data.len())];
            let rest = &data[at.min(data.len())..];
            let len = u32::try_from(rest.len()).unwrap_or(u32::MAX);
            opcode::Send::new(types::Fd(fd), rest.as_ptr(), len).flags(libc::MSG_NOSIGNAL).build()
        })
    }

    /// Reads up to `want` bytes of the file `fd` from `offset`, appended to
    /// `buf` (after what it holds). Returns the count read (0: the end of
    /// the file); `buf` is left empty if the future is dropped first (the
    /// ring keeps the memory until the kernel is done with it).
    pub(crate) async fn read_file(
        &self,
        fd: RawFd,
        buf: &mut Vec<u8>,
        want: usize,
        offset: u64,
    ) -> io::Result<usize> {
        let mut data = std::mem::take(buf);
        data.reserve(want);
        let spare = data.spare_capacity_mut();
        let (ptr, len) = (spare.as_mut_ptr().cast::<u8>(), want.min(spare.len()));
        let len32 = u32::try_from(len).unwrap_or(u32::MAX);
        // The spare capacity is in the vector's heap block, which does not
        // move while the slot holds the vector.
        let op = self.start(OpBuf::Vec(data), |_| {
            opcode::Read::new(types::Fd(fd), ptr, len32).offset(offset).build()
        });
        let (result, back) = op.await;
        if let OpBuf::Vec(mut data) = back {
            let read = *result.as_ref().unwrap_or(&0);
            // SAFETY: the kernel wrote `read` (at most `len`) bytes into the
            // spare capacity just past the vector's length.
            unsafe { data.set_len(data.len() + read.min(len)) };
            *buf = data;
        }
        result
    }

    /// Moves up to `len` bytes from `input` (from `off_in`, or from its
    /// current position when -1) to `fd_out`, one of the two being a pipe
    /// (splice(2)): the pages move by reference, no copy. The operation
    /// keeps `input` open until the kernel is done (io_uring looks it up
    /// only when it runs the splice). `nonblocking`: the pipe end does not
    /// wait (nor a non-blocking socket); a file read always may.
    pub(crate) fn splice(
        &self,
        input: SpliceInput,
        off_in: i64,
        fd_out: RawFd,
        len: u32,
        nonblocking: bool,
    ) -> Op<'_> {
        let flags = libc::SPLICE_F_MOVE | if nonblocking { libc::SPLICE_F_NONBLOCK } else { 0 };
        self.start(OpBuf::Splice(input), |buf| {
            let fd_in = buf.splice_input().map_or(-1, SpliceInput::fd);
            opcode::Splice::new(types::Fd(fd_in), off_in, types::Fd(fd_out), -1, len)
                .flags(flags)
                .build()
        })
    }

    /// Completes when `fd` can be written to.
    pub(crate) fn writable(&self, fd: RawFd) -> Op<'_> {
        self.start(OpBuf::None, |_| {
            opcode::PollAdd::new(types::Fd(fd), libc::POLLOUT as u32).build()
        })
    }
}
