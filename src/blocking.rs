//! The per-core pool for blocking (sync) work, bounded, panic-safe.
//!
//! Decision: each core's pool is glommio's own blocking thread pool of that
//! core's executor (`spawn_blocking`), with two things added here:
//!
//! * **a bound.** glommio queues jobs on a channel of 4096 entries; when it
//!   is full the submitting task waits, so jobs would pile up as waiting
//!   requests with no answer. [`BlockingPool`] counts the jobs this core has in the
//!   pool (queued + running, counted up on submission and down by the pool
//!   thread when the job ends, even if the request stopped waiting for it)
//!   and refuses a job past `threads + queue` with
//!   [`BlockingError::Overloaded`], which the request answers with 503.
//! * **panic isolation.** glommio runs the closure with no `catch_unwind`:
//!   a panic would kill the pool thread, poison the result's mutex and leave
//!   the request waiting forever. Every job is wrapped in `catch_unwind`, so
//!   the thread survives and the request gets [`BlockingError::Panicked`]
//!   (a 500).
//!
//! Why not a pool of our own: the result must wake the core's executor from
//! another thread. glommio's pool already does that through the reactor's
//! own notifier (the eventfd its ring sleeps on), which a hand-written pool
//! would have to reproduce from outside glommio. The pool threads are
//! unbound (glommio's default would pin one thread to the executor's own
//! core), so blocking work runs wherever the process may run, not on the
//! reactor's CPU alone. Pools of different cores share nothing.
//!
//! Known limit: if the request waiting for a job is dropped, the job still
//! runs to its end and its value is dropped with glommio's result slot.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Why a job did not produce a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockingError {
    /// The core's pool is full (`--blocking-threads` running and
    /// `--blocking-queue` waiting): answer 503.
    Overloaded,
    /// The job panicked: answer 500.
    Panicked,
}

impl fmt::Display for BlockingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlockingError::Overloaded => f.write_str("the blocking pool of this core is full"),
            BlockingError::Panicked => f.write_str("the blocking job panicked"),
        }
    }
}

impl std::error::Error for BlockingError {}

/// One core's bound on the jobs it has in its blocking pool.
#[derive(Debug)]
pub(crate) struct BlockingPool {
    threads: usize,
    capacity: usize,
    in_pool: Arc<AtomicUsize>,
}

impl BlockingPool {
    /// A bound for `threads` threads and `queue` waiting jobs.
    pub(crate) fn new(threads: usize, queue: usize) -> BlockingPool {
        BlockingPool { threads, capacity: threads + queue, in_pool: Arc::new(AtomicUsize::new(0)) }
    }

    /// Takes a place in the pool for `job` and returns the future that
    /// queues it and yields its value, or [`BlockingError::Overloaded`] when
    /// the pool is full. Must be called on the core's executor.
    pub(crate) fn submit<F, T>(
        &self,
        job: F,
    ) -> Result<impl Future<Output = Result<T, BlockingError>>, BlockingError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        // Only this core adds to the count, so check-then-add cannot race.
        if self.in_pool.load(Ordering::Acquire) >= self.capacity {
            return Err(BlockingError::Overloaded);
        }
        self.in_pool.fetch_add(1, Ordering::AcqRel);
        let slot = Slot(self.in_pool.clone());
        let guarded = move || {
            let result = catch_unwind(AssertUnwindSafe(job)).map_err(drop_panic);
            drop(slot);
            result
        };
        // Boxed: glommio's future is over a kilobyte, and would otherwise
        // be part of every application future that can call `blocking`,
        // copied with it on every request, blocking or not.
        let pending = Box::pin(glommio::executor().spawn_blocking(guarded));
        Ok(async move { pending.await.map_err(|()| BlockingError::Panicked) })
    }

    /// Jobs queued or running.
    pub(crate) fn in_pool(&self) -> usize {
        self.in_pool.load(Ordering::Relaxed)
    }

    /// Jobs waiting for a thread.
    pub(crate) fn queued(&self) -> usize {
        self.in_pool().saturating_sub(self.threads)
    }
}

/// A job's place in the pool, given back on the pool thread when the job
/// ends (or if the job is dropped unrun).
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Drops a panic payload on the pool thread; the panic message was already
/// printed by the panic hook.
fn drop_panic(_payload: Box<dyn Any + Send>) {}
