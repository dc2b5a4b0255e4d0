//! A file body on its way to a socket: the file ([`FileBody`]) and the
//! pipes it is spliced through ([`Pipe`], kept per core in [`Pipes`]).
//! Each operation here keeps open what the kernel still uses: a splice
//! holds its input until it completes, whatever happens to the connection.

use std::cell::{Cell, RefCell};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::rc::Rc;

use super::ring::SpliceInput;
use super::sys;

/// What a pipe is asked to hold: one splice's worth.
pub(crate) const PIPE_BYTES: u64 = 512 << 10;

/// Empty pipes a core keeps for reuse; more are closed.
const MAX_SPARE_PIPES: usize = 64;

/// A file an application answered with.
pub(crate) struct FileBody {
    file: Rc<File>,
    /// Whether `O_NONBLOCK` was cleared (io_uring fails a read of a
    /// non-blocking file that would wait; an application may hand over a
    /// file opened non-blocking, as the static files are).
    blocking: Cell<bool>,
}

impl FileBody {
    pub(crate) fn new(file: File) -> FileBody {
        FileBody { file: Rc::new(file), blocking: Cell::new(false) }
    }

    /// Whether every page of `len` bytes from `offset` is in the page cache
    /// (`false` when the kernel cannot say).
    pub(crate) fn is_cached(&self, offset: u64, len: u64) -> bool {
        sys::is_cached(self.fd(), offset, len)
    }

    /// Reads up to `want` bytes at `offset` onto the end of `buf` from the
    /// page cache only: `WouldBlock` (or `EOPNOTSUPP` where the file system
    /// cannot say) when a byte would have to come from the disk.
    pub(crate) fn read_cached(
        &self,
        buf: &mut Vec<u8>,
        want: usize,
        offset: u64,
    ) -> io::Result<usize> {
        sys::read_cached(self.fd(), buf, want, offset)
    }

    /// The file as a splice's input, kept open by the operation.
    pub(super) fn splice_input(&self) -> SpliceInput {
        SpliceInput::File(self.file.clone())
    }

    pub(super) fn make_blocking(&self) -> io::Result<()> {
        if !self.blocking.get() {
            sys::set_nonblocking(self.fd(), false)?;
            self.blocking.set(true);
        }
        Ok(())
    }

    pub(super) fn fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

/// A pipe to splice file bodies through.
pub(crate) struct Pipe {
    pub(super) read: OwnedFd,
    write: OwnedFd,
}

impl Pipe {
    pub(super) fn write_fd(&self) -> RawFd {
        self.write.as_raw_fd()
    }

    fn new() -> io::Result<Pipe> {
        let (read, write) = sys::pipe()?;
        // Best effort: a larger pipe moves a large file in fewer splices;
        // the default (64 KiB) works too.
        sys::set_pipe_size(&write, PIPE_BYTES as usize);
        Ok(Pipe { read, write })
    }
}

/// A core's empty pipes, kept for reuse.
#[derive(Default)]
pub(crate) struct Pipes {
    spare: RefCell<Vec<Pipe>>,
}

impl Pipes {
    /// A spare pipe, or a new one (which fails when out of descriptors).
    pub(crate) fn take(&self) -> io::Result<Rc<Pipe>> {
        let spare = self.spare.borrow_mut().pop();
        spare.map(Ok).unwrap_or_else(Pipe::new).map(Rc::new)
    }

    /// Keeps `pipe` for reuse; call only when it was emptied (a pipe left
    /// holding data is dropped instead). One still held by a splice in
    /// flight is closed when the splice lets go of it.
    pub(crate) fn give_back(&self, pipe: Rc<Pipe>) {
        let mut spare = self.spare.borrow_mut();
        if spare.len() < MAX_SPARE_PIPES {
            if let Ok(pipe) = Rc::try_unwrap(pipe) {
                spare.push(pipe);
            }
        }
    }
}
