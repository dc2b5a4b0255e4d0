//! A connection's I/O deadline ([`Watch`]), shared with the core's
//! deadline sweeper, and the write-stall limit that uses it ([`Stall`]).

use std::cell::Cell;
use std::time::{Duration, Instant};

use super::error::ConnError;

/// A connection's I/O deadline, shared with the core's deadline sweeper.
///
/// Deadlines are not one timer per operation (arming and cancelling a
/// glommio timer for every read or write that waits costs an allocation and
/// a timer queue update per keep-alive request). Instead the connection
/// notes its deadline here, and one sweeper task per core, ticking a few
/// times a second, ends the operations that are past it: a read by shutting
/// the socket's read side (the read returns end-of-stream, and a 408 can
/// still be written), a write by shutting both sides (the write fails). The
/// connection then sees `timed_out` (and `write_cut` for a write).
#[derive(Default)]
pub(crate) struct Watch {
    /// Waiting for the next request, with nothing of it received.
    pub(crate) idle: Cell<bool>,
    /// When the operation in progress must have completed.
    pub(crate) deadline: Cell<Option<Instant>>,
    /// The operation in progress is a write.
    pub(crate) writing: Cell<bool>,
    /// Set by the sweeper when it ended an operation for its deadline. A
    /// read ended so may still bring data that raced the deadline (the
    /// request is then answered, and is the connection's last: its read
    /// side is shut).
    pub(crate) timed_out: Cell<bool>,
    /// The operation the sweeper ended was a write.
    pub(crate) write_cut: Cell<bool>,
}

/// How long one write may wait for the socket to take something: the
/// core's sweeper enforces it through the connection's watch.
#[derive(Clone, Copy)]
pub(crate) struct Stall<'a> {
    pub(super) watch: &'a Watch,
    pub(super) limit: Duration,
}

impl Stall<'_> {
    /// Starts the stall limit of a write that waits on the client.
    pub(super) fn arm(&self) {
        self.watch.writing.set(true);
        self.watch.deadline.set(Some(Instant::now() + self.limit));
    }

    /// Ends it: [`ConnError::WriteStalled`] if the sweeper ended the write
    /// for taking nothing that long.
    pub(super) fn disarm(&self) -> Result<(), ConnError> {
        self.watch.deadline.set(None);
        self.watch.writing.set(false);
        if self.watch.write_cut.get() {
            return Err(ConnError::WriteStalled);
        }
        Ok(())
    }
}
