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
//! its rings and a `membarrier` (`bench-results/README.md`, 2026-12-05).
//! Two of those are glommio's timeout for its next timer (the `Date` tick,
//! the deadline sweeper) and its cancel. Moving those two to this ring cut
//! them, but glommio 0.9 can park with a task still runnable and then
//! wakes only for its next event: with no timer of its own pending, a core
//! hung for good under pipelined load, so they stay glommio timers.
//! `--idle-poll` lets glommio poll before it sleeps instead, which costs
//! more CPU than it saves at 20 000 requests/s.
//!
//! Parking: an operation whose future is detached can be parked under a
//! key ([`Ring::park`]). No task waits for it; its completion puts the key
//! in the ring's ready queue and wakes one task waiting in
//! [`Ring::next_ready`] (or, when none waits, the one in
//! [`Ring::unattended`], which starts more). This is how an idle
//! connection waits for its next request without a task of its own.
//!
//! Memory the kernel may write to or read from stays valid until the
//! operation's completion: an operation owns its buffer, and one whose
//! future is dropped early is cancelled and keeps the buffer until the
//! kernel is done with it.
//!
//! What this module does not do: HTTP, deadlines (the connection's sweeper
//! shuts a socket's read side, which completes its pending `recv`), accept
//! (glommio's listener accepts; one syscall per connection, not per request).

use std::alloc::{alloc_zeroed, dealloc, handle_alloc_error, Layout};
use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::ptr::NonNull;
use std::rc::Rc;
use std::sync::atomic::{fence, AtomicU16, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use glommio::io::BufferedFile;
use io_uring::types::BufRingEntry;
use io_uring::{opcode, squeue, types, IoUring};
use tracing::{debug, warn};

use crate::config::RingSetup;
use crate::probe;

/// Submission queue entries; the completion queue is twice as large, and
/// the kernel keeps completions that overflow it (IORING_FEAT_NODROP).
const RING_ENTRIES: u32 = 1024;
/// Operations in flight and workers waiting that the ring's tables hold
/// before they first grow: a core's first busy moments then allocate
/// nothing on the request path (tables only grow past a core's busiest
/// moment so far, never shrink).
const TABLES_START: usize = 64;
/// IORING_RECVSEND_POLL_FIRST, in a receive's `ioprio`.
const RECV_POLL_FIRST: u16 = 1;
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
    /// No memory, but descriptors the kernel looks up only when it runs the
    /// operation (a splice's input): kept open until it completes.
    Keep(#[expect(dead_code, reason = "held, never read")] Rc<dyn std::any::Any>),
}

impl OpBuf {
    pub(crate) fn len(&self) -> usize {
        self.as_slice().len()
    }

    fn as_slice(&self) -> &[u8] {
        match self {
            OpBuf::None | OpBuf::Picked(_) | OpBuf::Keep(_) => &[],
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
    /// Parked operations that completed, and the tasks that take them.
    parking: RefCell<Parking>,
    /// How the ring was set up.
    setup: RingSetup,
}

/// The ready queue of parked operations (see [`Ring::park`]).
struct Parking {
    /// Keys of parked operations that completed, oldest first.
    ready: VecDeque<u32>,
    /// Tasks waiting in [`Ring::next_ready`].
    waiting: Vec<Waker>,
    /// The fewest tasks that waited at once since the last
    /// [`Ring::retire_waiting`]: those were not needed.
    fewest_waiting: usize,
    /// How many woken waiting tasks are to end (see [`Ring::retire_waiting`]).
    retiring: usize,
    /// The task waiting in [`Ring::unattended`].
    unattended: Option<Waker>,
}

impl Parking {
    fn new() -> Parking {
        Parking {
            ready: VecDeque::with_capacity(TABLES_START),
            waiting: Vec::with_capacity(TABLES_START),
            fewest_waiting: 0,
            retiring: 0,
            unattended: None,
        }
    }
}

impl Ring {
    /// Sets the ring up on the calling thread (the core's executor thread,
    /// its only submitter).
    pub(crate) fn new(setup: RingSetup) -> io::Result<Rc<Ring>> {
        let mut uring = build_uring(setup)?;
        let eventfd = crate::sys::eventfd()?;
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
            parking: RefCell::new(Parking::new()),
            setup,
        };
        Ok(Rc::new(ring))
    }

    /// How the ring was set up.
    pub(crate) fn setup(&self) -> RingSetup {
        self.setup
    }

    /// Receives into `buf[at..]`; the buffer comes back with the result.
    pub(crate) fn recv(&self, fd: RawFd, buf: Vec<u8>, at: usize) -> Op<'_> {
        let len = buf.len().saturating_sub(at);
        self.start(OpBuf::Vec(buf), |data| {
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
        self.start(buf, |data| {
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

    /// Moves up to `len` bytes from `fd_in` (from `off_in`, or from its
    /// current position when -1) to `fd_out`, one of the two being a pipe
    /// (splice(2)): the pages move by reference, no copy. `keep` holds the
    /// descriptors open until the kernel is done (io_uring looks `fd_in`
    /// up only when it runs the splice). `nonblocking`: the pipe end does
    /// not wait (nor a non-blocking socket); a file read always may.
    pub(crate) fn splice(
        &self,
        (fd_in, off_in): (RawFd, i64),
        fd_out: RawFd,
        len: u32,
        nonblocking: bool,
        keep: Rc<dyn std::any::Any>,
    ) -> Op<'_> {
        let flags = libc::SPLICE_F_MOVE | if nonblocking { libc::SPLICE_F_NONBLOCK } else { 0 };
        self.start(OpBuf::Keep(keep), |_| {
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

    fn start(&self, buf: OpBuf, entry: impl FnOnce(&[u8]) -> squeue::Entry) -> Op<'_> {
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
        // move while the slot holds it.
        let entry = entry(s.buf.as_slice()).user_data(u64::from(slot));
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
                        Notify::Queue(key) => self.deliver(key),
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
    /// `key` joins the ready queue, and one task waiting in
    /// [`Ring::next_ready`] (or else the one in [`Ring::unattended`]) is
    /// woken to take it and [`Ring::resume`] the operation.
    pub(crate) fn park(&self, op: &Detached, key: u32) {
        let mut inner = self.inner.borrow_mut();
        let s = &mut inner.slots[op.slot as usize];
        if let SlotState::Done(..) = s.state {
            drop(inner);
            self.deliver(key);
        } else {
            s.notify = Notify::Queue(key);
        }
    }

    fn deliver(&self, key: u32) {
        let mut parking = self.parking.borrow_mut();
        parking.ready.push_back(key);
        let waker = match parking.waiting.pop() {
            Some(waker) => {
                parking.fewest_waiting = parking.fewest_waiting.min(parking.waiting.len());
                Some(waker)
            }
            None => {
                parking.fewest_waiting = 0;
                parking.unattended.take()
            }
        };
        drop(parking);
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// The key of the next parked operation that completed; `None` tells
    /// the calling task to end (see [`Ring::retire_waiting`]).
    pub(crate) async fn next_ready(&self) -> Option<u32> {
        poll_fn(|cx| {
            let mut parking = self.parking.borrow_mut();
            if let Some(key) = parking.ready.pop_front() {
                return Poll::Ready(Some(key));
            }
            if parking.retiring > 0 {
                parking.retiring -= 1;
                return Poll::Ready(None);
            }
            parking.waiting.push(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    /// Waits until a parked operation completed while no task waited in
    /// [`Ring::next_ready`].
    pub(crate) async fn unattended(&self) {
        poll_fn(|cx| {
            let mut parking = self.parking.borrow_mut();
            if parking.waiting.is_empty() && !parking.ready.is_empty() {
                return Poll::Ready(());
            }
            parking.unattended = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    /// The key of a parked operation that completed, if no task waits in
    /// [`Ring::next_ready`] to take it.
    pub(crate) fn take_unattended(&self) -> Option<u32> {
        let mut parking = self.parking.borrow_mut();
        if parking.waiting.is_empty() {
            parking.ready.pop_front()
        } else {
            None
        }
    }

    /// Tells tasks waiting in [`Ring::next_ready`] to end: those that were
    /// not needed since the last call, beyond the first `keep`.
    pub(crate) fn retire_waiting(&self, keep: usize) {
        let mut parking = self.parking.borrow_mut();
        let idle = parking.fewest_waiting.min(parking.waiting.len());
        let surplus = idle.saturating_sub(keep);
        parking.fewest_waiting = parking.waiting.len() - surplus;
        if surplus == 0 {
            return;
        }
        let retired: Vec<Waker> = parking.waiting.drain(..surplus).collect();
        parking.retiring += surplus;
        drop(parking);
        retired.into_iter().for_each(Waker::wake);
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

/// The core's ring driver: submits and reaps in turns while connections
/// have work, sleeps through glommio when none has.
pub(crate) async fn drive(ring: Rc<Ring>) {
    debug!(setup = ring.setup.name(), "socket ring started");
    let Ok(dup) = ring.eventfd.try_clone() else {
        warn!("socket ring: cannot duplicate its eventfd; the core cannot serve");
        return;
    };
    // SAFETY: `dup` is an eventfd this file takes sole ownership of.
    let wakeup = unsafe { BufferedFile::from_raw_fd(std::os::fd::IntoRawFd::into_raw_fd(dup)) };
    let mut pending_read = None;
    let mut warned = false;
    loop {
        // A turn only when there is something to submit or reap: an empty
        // `io_uring_enter` is a syscall for nothing.
        if ring.has_work() && ring.turn() > 0 {
            // Let the woken connections run (they queue their next
            // operations), then submit those in the next turn.
            futures_lite::future::yield_now().await;
            continue;
        }
        ring.set_eventfd(true);
        // Pairs with the kernel's barrier between posting a completion and
        // reading whether the eventfd is enabled: a completion posted after
        // the last turn is seen here, a later one signals the eventfd.
        fence(Ordering::SeqCst);
        if ring.has_work() && ring.turn() > 0 {
            ring.set_eventfd(false);
            futures_lite::future::yield_now().await;
            continue;
        }
        // Nothing woke: sleep, even if the kernel still flags work (it runs
        // at the next system call, glommio's sleep, and its completions
        // signal the eventfd). Each pass
        // of this loop either wakes a connection or sleeps: it never spins.
        let woke = poll_fn(|cx| {
            if ring.kicked.take() {
                return Poll::Ready(Ok(()));
            }
            let read = pending_read.get_or_insert_with(|| Box::pin(wakeup.read_at(0, 8)));
            if let Poll::Ready(result) = read.as_mut().poll(cx) {
                pending_read = None;
                return Poll::Ready(result.map(drop));
            }
            ring.sleeping.set(Some(cx.waker().clone()));
            Poll::Pending
        })
        .await;
        ring.sleeping.set(None);
        if let Err(e) = woke {
            // Should never happen; if it does, poll every millisecond
            // rather than spin.
            if !warned {
                warn!("socket ring: eventfd read failed ({e}); polling instead");
                warned = true;
            }
            glommio::timer::sleep(Duration::from_millis(1)).await;
        }
        ring.set_eventfd(false);
    }
}

/// Receive buffers in a provided-buffer ring.
const PICK_COUNT: u16 = 128;
/// Bytes of one receive buffer.
const PICK_BYTES: usize = 4 << 10;
/// The ring's buffer group id.
const PICK_GROUP: u16 = 0;

/// Receive buffers the kernel picks from (a provided-buffer ring,
/// IORING_REGISTER_PBUF_RING): a connection waiting for its next request
/// holds no buffer; one is taken only when data arrives, and given back as
/// soon as the connection has copied the data out. A few hundred buffers
/// serve any number of idle connections.
struct PickRing {
    /// `PICK_COUNT` descriptors shared with the kernel.
    entries: NonNull<BufRingEntry>,
    /// `PICK_COUNT` buffers of `PICK_BYTES`.
    data: NonNull<u8>,
    /// Descriptors published so far (wrapping).
    tail: u16,
}

impl PickRing {
    fn entries_layout() -> Layout {
        let bytes = usize::from(PICK_COUNT) * std::mem::size_of::<BufRingEntry>();
        Layout::from_size_align(bytes, 4096).expect("page-aligned descriptor ring")
    }

    fn data_layout() -> Layout {
        let bytes = usize::from(PICK_COUNT) * PICK_BYTES;
        Layout::from_size_align(bytes, 64).expect("buffer block")
    }

    fn new(uring: &IoUring) -> io::Result<PickRing> {
        let entries = zeroed_block(Self::entries_layout()).cast::<BufRingEntry>();
        let data = zeroed_block(Self::data_layout());
        let mut picks = PickRing { entries, data, tail: 0 };
        // SAFETY: `entries` is a page-aligned, zeroed ring of `PICK_COUNT`
        // descriptors that outlives the registration: `PickRing` is dropped
        // after the io_uring it is registered with (field order).
        unsafe {
            uring.submitter().register_buf_ring_with_flags(
                entries.as_ptr() as u64,
                PICK_COUNT,
                PICK_GROUP,
                0,
            )?;
        }
        for id in 0..PICK_COUNT {
            picks.give_back(id);
        }
        Ok(picks)
    }

    /// The first `len` bytes of buffer `id`, which the kernel filled.
    fn data(&self, id: u16, len: usize) -> &[u8] {
        let id = usize::from(id % PICK_COUNT);
        // SAFETY: buffer `id` lies within `data`; the kernel wrote `len`
        // (at most `PICK_BYTES`) bytes to it and holds it no longer.
        unsafe {
            std::slice::from_raw_parts(self.data.as_ptr().add(id * PICK_BYTES), len.min(PICK_BYTES))
        }
    }

    /// Hands buffer `id` to the kernel again.
    fn give_back(&mut self, id: u16) {
        let slot = usize::from(self.tail % PICK_COUNT);
        let addr = self.data.as_ptr() as u64 + (u64::from(id % PICK_COUNT) * PICK_BYTES as u64);
        // SAFETY: `slot` indexes the descriptor ring, which the kernel does
        // not read beyond the published tail.
        let entry = unsafe { &mut *self.entries.as_ptr().add(slot) };
        entry.set_addr(addr);
        entry.set_len(PICK_BYTES as u32);
        entry.set_bid(id);
        self.tail = self.tail.wrapping_add(1);
        // SAFETY: the tail shares the first descriptor's last field; the
        // kernel reads it with acquire ordering.
        let tail = unsafe { &*(BufRingEntry::tail(self.entries.as_ptr()) as *const AtomicU16) };
        tail.store(self.tail, Ordering::Release);
    }
}

impl Drop for PickRing {
    fn drop(&mut self) {
        // SAFETY: both blocks came from `zeroed_block` with these layouts,
        // and the io_uring that used them is closed.
        unsafe {
            dealloc(self.entries.as_ptr().cast(), Self::entries_layout());
            dealloc(self.data.as_ptr(), Self::data_layout());
        }
    }
}

fn zeroed_block(layout: Layout) -> NonNull<u8> {
    // SAFETY: both layouts have a non-zero size.
    let raw = unsafe { alloc_zeroed(layout) };
    NonNull::new(raw).unwrap_or_else(|| handle_alloc_error(layout))
}

/// Creates the io_uring for `setup` (never [`RingSetup::Auto`]); the
/// kernel refuses a flag it does not know with `EINVAL`.
fn build_uring(setup: RingSetup) -> io::Result<IoUring> {
    let mut builder = IoUring::builder();
    builder.setup_cqsize(RING_ENTRIES * 2);
    match setup {
        RingSetup::SingleIssuer => {
            builder.setup_coop_taskrun().setup_taskrun_flag().setup_single_issuer();
        }
        RingSetup::Cooperative => {
            builder.setup_coop_taskrun().setup_taskrun_flag();
        }
        RingSetup::Plain | RingSetup::Auto => {}
    }
    builder.build(RING_ENTRIES)
}

/// Why a core could not set its socket ring up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RingError {
    /// What was asked for.
    pub(crate) asked: RingSetup,
    /// Why each set-up tried failed, in the order tried.
    pub(crate) tried: Vec<(RingSetup, String)>,
}

impl std::fmt::Display for RingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tried: Vec<String> =
            self.tried.iter().map(|(setup, why)| format!("{setup}: {why}")).collect();
        write!(f, "no socket-ring set-up works ({})", tried.join("; "))?;
        if self.asked != RingSetup::Auto {
            write!(f, "; --ring-setup auto tries every set-up")?;
        }
        Ok(())
    }
}

/// The start-up wake-up check's round trips (see [`check_wake`]).
const WAKE_CHECK_ROUNDS: usize = 7;
/// How long after the check's `send` its timer expires: long enough for
/// the core to be asleep when it does.
const WAKE_CHECK_TIMER: Duration = Duration::from_micros(500);
/// The slowest median round trip the check accepts. A working wake-up adds
/// tens of microseconds to the timer's; a broken one waits for some
/// timer of the executor (16 ms where this was seen).
const WAKE_CHECK_LIMIT: Duration = Duration::from_millis(5);
/// How long one round trip may take before the check gives up on it.
const WAKE_CHECK_DEADLINE: Duration = Duration::from_secs(1);

/// Sets up the core's socket ring for `asked` and starts its driver: the
/// first candidate set-up that the kernel accepts and whose wake-up passes
/// [`check_wake`]. The driver runs until the returned task is dropped
/// (detach it to keep it).
pub(crate) async fn start(asked: RingSetup) -> Result<(Rc<Ring>, glommio::Task<()>), RingError> {
    let mut tried = Vec::new();
    for &setup in asked.candidates() {
        let ring = match Ring::new(setup) {
            Ok(ring) => ring,
            Err(e) => {
                debug!(setup = setup.name(), "socket ring: the kernel refuses this set-up: {e}");
                tried.push((setup, format!("the kernel refuses it ({e})")));
                continue;
            }
        };
        let driver = glommio::spawn_local(drive(ring.clone()));
        match check_wake(&ring).await {
            Ok(()) => return Ok((ring, driver)),
            Err(why) => {
                warn!(setup = setup.name(), "socket ring: {why}");
                tried.push((setup, why));
                drop(driver);
                // An operation of the failed check may still be in flight,
                // its completion never reaped: the ring and the memory it
                // lent the kernel stay (once per failed set-up, at start).
                std::mem::forget(ring);
            }
        }
    }
    Err(RingError { asked, tried })
}

/// Checks that a completion on the ring wakes this core while it sleeps,
/// as serving needs: a few request-like round trips (a `send`, then a
/// read that completes only when a timer expires, a little later)
/// must each take about as long as the same round trip woken through
/// glommio's own ring (the reference, measured first under the same
/// conditions: a slow or instrumented machine slows both), not the period
/// of some executor timer that happens to wake the core. The median is
/// judged against the larger of [`WAKE_CHECK_LIMIT`] and four times the
/// reference, and a failed check is run once more, so that a machine busy
/// at start does not fail a working set-up.
async fn check_wake(ring: &Ring) -> Result<(), String> {
    let reference = wake_round_trips(ring, WokenBy::Executor).await?;
    let limit = WAKE_CHECK_LIMIT.max(reference * 4);
    let mut median = Duration::ZERO;
    for _ in 0..2 {
        median = wake_round_trips(ring, WokenBy::SocketRing).await?;
        if median <= limit {
            return Ok(());
        }
    }
    Err(format!(
        "completions do not wake the core: a round trip took {median:?}, \
         {reference:?} when woken through the executor's own ring"
    ))
}

/// What completes the check's receive.
#[derive(Clone, Copy)]
enum WokenBy {
    /// The socket ring (its eventfd wakes the sleeping executor).
    SocketRing,
    /// glommio's own ring: the reference.
    Executor,
}

/// The median of [`WAKE_CHECK_ROUNDS`] round trips, the receive completed
/// as `woken_by` says. Each is a `send` on a socket pair, then a read of a
/// timer descriptor armed to expire [`WAKE_CHECK_TIMER`] later: an
/// event the kernel delivers while the core sleeps, as a client's next
/// request is (no thread of this process plays the client, so the check
/// also works where threads are serialised, under valgrind say).
async fn wake_round_trips(ring: &Ring, woken_by: WokenBy) -> Result<Duration, String> {
    let fail = |what: &str, e: io::Error| format!("the wake-up check cannot {what}: {e}");
    let (ours, _theirs) =
        std::os::unix::net::UnixStream::pair().map_err(|e| fail("make a socket pair", e))?;
    let timer = crate::sys::timerfd().map_err(|e| fail("make a timer", e))?;
    let reader = match woken_by {
        WokenBy::SocketRing => None,
        WokenBy::Executor => {
            let dup = timer.try_clone().map_err(|e| fail("duplicate the timer", e))?;
            // SAFETY: `dup` is a timer descriptor the file takes sole
            // ownership of.
            Some(unsafe { BufferedFile::from_raw_fd(std::os::fd::IntoRawFd::into_raw_fd(dup)) })
        }
    };
    let mut rounds = Vec::with_capacity(WAKE_CHECK_ROUNDS);
    for _ in 0..WAKE_CHECK_ROUNDS {
        let started = std::time::Instant::now();
        crate::sys::arm_timerfd(&timer, WAKE_CHECK_TIMER).map_err(|e| fail("arm a timer", e))?;
        let round_trip = async {
            match &reader {
                None => ring_round_trip(ring, ours.as_raw_fd(), timer.as_raw_fd()).await,
                Some(reader) => executor_round_trip(reader, &ours).await,
            }
        };
        let answered = futures_lite::future::or(async { Some(round_trip.await) }, async {
            glommio::timer::sleep(WAKE_CHECK_DEADLINE).await;
            None
        })
        .await;
        match answered {
            Some(Ok(())) => rounds.push(started.elapsed()),
            Some(Err(why)) => return Err(why),
            None => {
                return Err(format!(
                    "completions do not wake the core: no answer within {WAKE_CHECK_DEADLINE:?}"
                ));
            }
        }
    }
    rounds.sort_unstable();
    Ok(rounds[rounds.len() / 2])
}

/// One round trip on the socket ring: a `send`, then the timer's read.
async fn ring_round_trip(ring: &Ring, socket: RawFd, timer: RawFd) -> Result<(), String> {
    let send = ring.send(socket, OpBuf::Bytes(Cow::Borrowed(b"w")), 0);
    let mut expirations = Vec::new();
    let read = ring.read_file(timer, &mut expirations, 8, 0);
    let (sent, read) = futures_lite::future::zip(send, read).await;
    match (sent.0, read) {
        (Ok(1), Ok(8)) => Ok(()),
        (sent, read) => Err(format!(
            "the wake-up check's socket or timer failed (send {sent:?}, read {read:?})"
        )),
    }
}

/// The same round trip woken through glommio's ring: a plain `write`, then
/// the timer's read submitted there.
async fn executor_round_trip(
    reader: &BufferedFile,
    ours: &std::os::unix::net::UnixStream,
) -> Result<(), String> {
    std::io::Write::write_all(&mut &*ours, b"w")
        .map_err(|e| format!("the wake-up check's socket failed: {e}"))?;
    match reader.read_at(0, 8).await {
        Ok(read) if read.len() == 8 => Ok(()),
        Ok(_) => Err("the wake-up check's timer read short".to_string()),
        Err(e) => Err(format!("the wake-up check's timer read failed: {e}")),
    }
}
