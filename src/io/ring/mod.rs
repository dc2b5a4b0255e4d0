//! A core's socket ring: a second io_uring, next to glommio's own, on which
//! connections submit their `recv` and `send` as ring operations.
//!
//! glommio 0.9 reads and writes sockets with plain syscalls and uses its
//! ring only to wait for readiness: two or three syscalls per request. Here
//! every connection queues its operations on this ring and one task per
//! core, [`drive`], submits all of them and reaps all completions with one
//! `io_uring_enter` per turn of the executor. glommio stays the executor:
//! timers, tasks, placement and the blocking pool are its.
//!
//! Waking up. The core sleeps in glommio's ring, never in this one, so a
//! completion here must reach it through something glommio waits for: an
//! eventfd registered on this ring (io_uring_register(2),
//! `IORING_REGISTER_EVENTFD`: signalled when completions are posted), read
//! through glommio's ring. While the driver runs, the eventfd is switched
//! off (a flag in the shared CQ ring, no syscall); when a turn completes
//! nothing, the driver switches it on and sleeps on that read, so the core
//! sleeps in glommio's one `io_uring_enter` and wakes for whichever ring has
//! work. A connection that queues an operation while the driver sleeps
//! wakes it directly.
//!
//! That works only if completions are posted while the core sleeps, which
//! is what the set-up decides ([`RingSetup`], chosen by trying each on the
//! kernel, newest first):
//! - `COOP_TASKRUN | TASKRUN_FLAG` (with `SINGLE_ISSUER` where accepted):
//!   io_uring_setup(2) says completion work then runs "at any kernel/user
//!   transition" instead of interrupting a task busy in user space; a task
//!   asleep in a system call is woken for it (the notification is
//!   signal-like), so the completion is posted and the eventfd signalled.
//! - No flag: the kernel interrupts the task to run completion work.
//! - Not `DEFER_TASKRUN`: io_uring_setup(2) says its completion work runs
//!   only when the ring's owner enters it with `IORING_ENTER_GETEVENTS`,
//!   which a core asleep in another ring never does, and no man page says
//!   the eventfd is signalled before. One 6.18 build signalled it; another
//!   did not, and every request then waited ~16 ms for a timer.
//!
//! [`start`] checks at start that the chosen set-up really wakes a sleeping
//! core ([`check_wake`]: request-like round trips against a timer, timed)
//! and falls back to the next set-up, or refuses to start, if it does not.
//! The check guards the choice; it never picks a set-up because it
//! happened to work.
//!
//! What a wake-up costs: a request that finds the core asleep takes one
//! enter of this ring (it submits the `send` and the next `recv`; the
//! completion that woke the core is already in the shared ring, since a
//! turn enters only to submit, to run flagged completion work or to bring
//! back an overflow), plus glommio's park and wake: about nine enters of
//! its rings and a `membarrier` (`bench-results/HISTORY.md`, 2026-12-05;
//! `bench-results/syscalls/`).
//! Two of those are glommio's timeout for its next timer (the `Date` tick,
//! the deadline sweeper) and its cancel. Moving those two to this ring cut
//! them, but glommio 0.9 can park with a task still runnable and then
//! wakes only for its next event: with no timer of its own pending, a core
//! hung for good under pipelined load, so they stay glommio timers.
//! `--idle-poll` lets glommio poll before it sleeps instead, which costs
//! more CPU than it saves at 20 000 requests/s.
//!
//! Parking: an operation whose future is detached can be parked under a
//! key ([`Ring::park`]). No task waits for it; its completion hands the key
//! to the ring's [`Unpark`] (the core's workers, `core::workers`), which
//! decides which task takes it. This is how an idle connection waits for
//! its next request without a task of its own.
//!
//! Memory the kernel may write to or read from stays valid until the
//! operation's completion: an operation owns its buffer, and one whose
//! future is dropped early is cancelled and keeps the buffer until the
//! kernel is done with it.
//!
//! What this module does not do: HTTP; deadlines (the core's sweeper
//! shuts a socket's read side, which completes its pending `recv`);
//! scheduling the tasks that take parked operations (`core::workers`);
//! accepting (a plain `accept4` per connection, `sys::accept`, after the
//! ring says the listener is readable: one syscall per connection, not
//! per request).
//!
//! Files: `ops` (one method per operation), `driver` (the task that
//! submits, reaps and sleeps), `picks` (the provided-buffer ring),
//! `setup` (set-up flags and the start-up wake-up check).

use std::borrow::Cow;
use std::cell::{Cell, OnceCell, RefCell};
use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use io_uring::{opcode, squeue, IoUring};
use tracing::{debug, warn};

use super::file::Pipe;
use crate::config::RingSetup;
use crate::probe;

mod driver;
mod ops;
mod picks;
mod setup;
#[cfg(test)]
mod tests;

pub(crate) use driver::drive;
use picks::PickRing;
use setup::build_uring;
pub(crate) use setup::start;

/// Submission queue entries; the completion queue is twice as large, and
/// the kernel keeps completions that overflow it (IORING_FEAT_NODROP).
const RING_ENTRIES: u32 = 1024;

/// Operations in flight and workers waiting that the ring's tables hold
/// before they first grow: a core's first busy moments then allocate
/// nothing on the request path (tables only grow past a core's busiest
/// moment so far, never shrink).
pub(crate) const TABLES_START: usize = 64;

/// `user_data` of operations whose completion nobody waits for (cancels).
const DETACHED: u64 = u64::MAX;

/// io_uring_enter flag: run pending completion work and reap completions.
const ENTER_GETEVENTS: u32 = 1;

/// The memory an operation hands to the kernel.
pub(crate) enum OpBuf {
    None,
    /// `recv` target, or `send` source.
    Vec(Vec<u8>),
    /// `send` source.
    Bytes(Cow<'static, [u8]>),
    /// One of the ring's receive buffers, picked by the kernel: its id.
    /// Whoever holds it copies the data out and gives it back
    /// ([`Ring::take_received`]).
    Picked(u16),
    /// No memory, but a splice's input, which the kernel looks up only
    /// when it runs the splice: kept open until it completes.
    Splice(SpliceInput),
}

/// What a splice reads from: kept open by the operation until it
/// completes.
pub(crate) enum SpliceInput {
    File(Rc<std::fs::File>),
    Pipe(Rc<Pipe>),
}

impl SpliceInput {
    fn fd(&self) -> RawFd {
        match self {
            SpliceInput::File(file) => file.as_raw_fd(),
            SpliceInput::Pipe(pipe) => pipe.read.as_raw_fd(),
        }
    }
}

impl OpBuf {
    pub(crate) fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// The splice input this operation keeps open, if it is a splice.
    fn splice_input(&self) -> Option<&SpliceInput> {
        match self {
            OpBuf::Splice(input) => Some(input),
            _ => None,
        }
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            OpBuf::None | OpBuf::Picked(_) | OpBuf::Splice(_) => &[],
            OpBuf::Vec(v) => v,
            OpBuf::Bytes(b) => b,
        }
    }
}

/// One operation's place in the ring's table; its index is the operation's
/// `user_data`.
struct Slot {
    state: SlotState,
    notify: Notify,
    buf: OpBuf,
}

/// Who learns of an operation's completion.
enum Notify {
    Nobody,
    /// The task awaiting its future.
    Task(Waker),
    /// The core's ready queue, under this key (see [`Ring::park`]).
    Queue(u32),
}

enum SlotState {
    Free,
    Pending,
    /// Its future was dropped: the slot is freed when the completion comes.
    Abandoned,
    /// The kernel's result and completion flags.
    Done(i32, u32),
}

struct RingInner {
    uring: IoUring,
    /// Declared after `uring`: dropped after the kernel let go of it.
    /// `None` where the kernel has no provided-buffer rings (before 5.19).
    picks: Option<PickRing>,
    slots: Vec<Slot>,
    free: Vec<u32>,
}

/// A core's socket ring. Lives on one executor thread (`Rc`).
pub(crate) struct Ring {
    inner: RefCell<RingInner>,
    eventfd: OwnedFd,
    /// The driver's waker while it sleeps.
    sleeping: Cell<Option<Waker>>,
    /// Set when an operation was queued while the driver slept.
    kicked: Cell<bool>,
    /// Who takes the parked operations that complete (see [`Ring::park`]).
    unpark: OnceCell<Rc<dyn Unpark>>,
    /// How the ring was set up.
    setup: RingSetup,
}

/// Takes the key of a parked operation that completed (see [`Ring::park`]):
/// the core's workers.
pub(crate) trait Unpark {
    /// Operation `key` completed: someone must take it.
    fn unpark(&self, key: u32);
}

impl Ring {
    /// Sets the ring up on the calling thread (the core's executor thread,
    /// its only submitter).
    pub(crate) fn new(setup: RingSetup) -> io::Result<Rc<Ring>> {
        let mut uring = build_uring(setup)?;
        let eventfd = crate::io::sys::eventfd()?;
        uring.submitter().register_eventfd(eventfd.as_raw_fd())?;
        uring.completion().disable_eventfd();
        let picks = match PickRing::new(&uring) {
            Ok(picks) => Some(picks),
            Err(e) => {
                debug!("socket ring: no provided-buffer ring ({e}); reads use their own buffers");
                None
            }
        };
        let ring = Ring {
            inner: RefCell::new(RingInner {
                uring,
                picks,
                slots: Vec::with_capacity(TABLES_START),
                free: Vec::with_capacity(TABLES_START),
            }),
            eventfd,
            sleeping: Cell::new(None),
            kicked: Cell::new(false),
            unpark: OnceCell::new(),
            setup,
        };
        Ok(Rc::new(ring))
    }

    /// How the ring was set up.
    pub(crate) fn setup(&self) -> RingSetup {
        self.setup
    }

    fn start(&self, buf: OpBuf, entry: impl FnOnce(&OpBuf) -> squeue::Entry) -> Op<'_> {
        let mut inner = self.inner.borrow_mut();
        let slot = match inner.free.pop() {
            Some(slot) => slot,
            None => {
                let free =
                    Slot { state: SlotState::Free, notify: Notify::Nobody, buf: OpBuf::None };
                inner.slots.push(free);
                (inner.slots.len() - 1) as u32
            }
        };
        let s = &mut inner.slots[slot as usize];
        s.state = SlotState::Pending;
        s.buf = buf;
        // The entry points into the slot's buffer, whose heap memory does not
        // move while the slot holds it (or names a descriptor it keeps open).
        let entry = entry(&s.buf).user_data(u64::from(slot));
        inner.push(&entry);
        drop(inner);
        self.wake_driver();
        Op { ring: self, slot, finished: false }
    }

    /// Asks the kernel to end an operation early; its future still
    /// resolves, with `ECANCELED` or with what completed first.
    fn cancel(&self, slot: u32) {
        let cancel = opcode::AsyncCancel::new(u64::from(slot)).build().user_data(DETACHED);
        self.inner.borrow_mut().push(&cancel);
        self.wake_driver();
    }

    /// Queues the cancellation of an operation whose future was dropped.
    fn abandon(&self, slot: u32) {
        let mut inner = self.inner.borrow_mut();
        let s = &mut inner.slots[slot as usize];
        match s.state {
            SlotState::Pending => {
                s.state = SlotState::Abandoned;
                s.notify = Notify::Nobody;
                let cancel = opcode::AsyncCancel::new(u64::from(slot)).build().user_data(DETACHED);
                inner.push(&cancel);
                drop(inner);
                self.wake_driver();
            }
            // Completed but never looked at: nothing is in flight.
            SlotState::Done(_, flags) => {
                if let (Some(id), Some(picks)) =
                    (io_uring::cqueue::buffer_select(flags), inner.picks.as_mut())
                {
                    picks.give_back(id);
                }
                inner.release(slot);
            }
            SlotState::Free | SlotState::Abandoned => {}
        }
    }

    fn wake_driver(&self) {
        if let Some(waker) = self.sleeping.take() {
            self.kicked.set(true);
            waker.wake();
        }
    }

    /// Submits what is queued, runs completion work the kernel flags and reaps
    /// every completion. Returns how many operations completed for a
    /// waiting future.
    fn turn(&self) -> usize {
        let _scope = probe::Scope::enter();
        let mut inner = self.inner.borrow_mut();
        let inner = &mut *inner;
        let sq = inner.uring.submission();
        let to_submit = sq.len() as u32;
        // Completions the kernel already posted are read from the shared
        // ring: enter only to submit, to run completion work it flags, or
        // to bring back completions that overflowed the ring.
        let must_enter = to_submit > 0 || sq.taskrun() || sq.cq_overflow();
        drop(sq);
        // SAFETY: no argument is passed; the queued entries point into
        // buffers their slots own until completion.
        let entered = must_enter.then(|| unsafe {
            inner.uring.submitter().enter::<libc::sigset_t>(to_submit, 0, ENTER_GETEVENTS, None)
        });
        if let Some(Err(e)) = entered {
            // EINTR, or EBUSY while the kernel holds overflowed completions:
            // reaping below makes room, the next turn submits.
            if !matches!(e.raw_os_error(), Some(libc::EINTR | libc::EBUSY | libc::EAGAIN)) {
                warn!("socket ring: io_uring_enter failed: {e}");
            }
        }
        let mut completed = 0;
        let mut cq = inner.uring.completion();
        cq.sync();
        let slots = &mut inner.slots;
        let free = &mut inner.free;
        let picks = &mut inner.picks;
        for cqe in &mut cq {
            let user_data = cqe.user_data();
            if user_data == DETACHED {
                continue;
            }
            let Some(slot) = slots.get_mut(user_data as usize) else { continue };
            match slot.state {
                SlotState::Pending => {
                    slot.state = SlotState::Done(cqe.result(), cqe.flags());
                    match std::mem::replace(&mut slot.notify, Notify::Nobody) {
                        Notify::Nobody => continue,
                        Notify::Task(waker) => waker.wake(),
                        Notify::Queue(key) => self.unpark(key),
                    }
                    completed += 1;
                }
                SlotState::Abandoned => {
                    slot.state = SlotState::Free;
                    slot.buf = OpBuf::None;
                    free.push(user_data as u32);
                    if let (Some(id), Some(picks)) =
                        (io_uring::cqueue::buffer_select(cqe.flags()), picks.as_mut())
                    {
                        picks.give_back(id);
                    }
                }
                SlotState::Free | SlotState::Done(..) => {}
            }
        }
        completed
    }

    /// Whether the kernel has completions or flagged work waiting, read
    /// from the shared ring without a syscall.
    fn has_work(&self) -> bool {
        let mut inner = self.inner.borrow_mut();
        let kernel_side = {
            let sq = inner.uring.submission();
            sq.taskrun() || sq.cq_overflow() || !sq.is_empty()
        };
        kernel_side || !inner.uring.completion().is_empty()
    }

    fn set_eventfd(&self, on: bool) {
        let mut inner = self.inner.borrow_mut();
        let cq = inner.uring.completion();
        if on {
            cq.enable_eventfd();
        } else {
            cq.disable_eventfd();
        }
    }
}

impl RingInner {
    fn push(&mut self, entry: &squeue::Entry) {
        loop {
            // SAFETY: the entry's buffer is owned by its slot until the
            // operation completes (see `Ring::start`).
            if unsafe { self.uring.submission().push(entry) }.is_ok() {
                return;
            }
            // Full: hand what is queued to the kernel and retry.
            if let Err(e) = self.uring.submit() {
                if e.raw_os_error() != Some(libc::EINTR) {
                    warn!("socket ring: submission failed: {e}");
                }
            }
        }
    }

    fn release(&mut self, slot: u32) {
        let s = &mut self.slots[slot as usize];
        s.state = SlotState::Free;
        s.buf = OpBuf::None;
        s.notify = Notify::Nobody;
        self.free.push(slot);
    }
}

/// An operation in flight; resolves to the kernel's result (a byte count,
/// or `-errno`) and the operation's buffer.
pub(crate) struct Op<'a> {
    ring: &'a Ring,
    slot: u32,
    finished: bool,
}

/// An operation in flight that no future is borrowing: its slot number, to
/// be awaited again with [`Ring::resume`]. Dropping it without resuming
/// leaves the slot (and any buffer the kernel picks) taken for good.
#[must_use = "an operation in flight must be resumed"]
pub(crate) struct Detached {
    slot: u32,
}

impl Ring {
    /// Awaits a detached operation again.
    pub(crate) fn resume(&self, detached: Detached) -> Op<'_> {
        Op { ring: self, slot: detached.slot, finished: false }
    }

    /// Parks a detached operation: no task waits for it; when it completes,
    /// `key` goes to the ring's [`Unpark`], whose task takes it and
    /// [`Ring::resume`]s the operation.
    pub(crate) fn park(&self, op: &Detached, key: u32) {
        let mut inner = self.inner.borrow_mut();
        let s = &mut inner.slots[op.slot as usize];
        if let SlotState::Done(..) = s.state {
            drop(inner);
            self.unpark(key);
        } else {
            s.notify = Notify::Queue(key);
        }
    }

    /// Sets who takes parked operations as they complete; once, before the
    /// first [`Ring::park`].
    pub(crate) fn set_unpark(&self, unpark: Rc<dyn Unpark>) {
        if self.unpark.set(unpark).is_err() {
            warn!("socket ring: a second taker of parked operations was ignored");
        }
    }

    fn unpark(&self, key: u32) {
        if let Some(unpark) = self.unpark.get() {
            unpark.unpark(key);
        }
    }
}

impl<'a> Op<'a> {
    /// Lets go of the operation without cancelling it.
    pub(crate) fn detach(mut self) -> Detached {
        self.finished = true;
        Detached { slot: self.slot }
    }

    /// Cancels the operation and waits for its end, to get its buffer back.
    pub(crate) async fn cancel(self) -> (io::Result<usize>, OpBuf) {
        self.ring.cancel(self.slot);
        self.await
    }
}

impl Future for Op<'_> {
    type Output = (io::Result<usize>, OpBuf);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut inner = self.ring.inner.borrow_mut();
        let s = &mut inner.slots[self.slot as usize];
        match s.state {
            SlotState::Done(res, flags) => {
                let mut buf = std::mem::replace(&mut s.buf, OpBuf::None);
                if let Some(id) = io_uring::cqueue::buffer_select(flags) {
                    buf = OpBuf::Picked(id);
                }
                inner.release(self.slot);
                drop(inner);
                self.finished = true;
                let result = if res < 0 {
                    Err(io::Error::from_raw_os_error(-res))
                } else {
                    Ok(res as usize)
                };
                Poll::Ready((result, buf))
            }
            _ => {
                match &mut s.notify {
                    Notify::Task(waker) if waker.will_wake(cx.waker()) => {}
                    notify => *notify = Notify::Task(cx.waker().clone()),
                }
                Poll::Pending
            }
        }
    }
}

impl Drop for Op<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.ring.abandon(self.slot);
        }
    }
}
