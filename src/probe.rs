//! Marks the request path, so allocations made on it can be told from the
//! executor's own.
//!
//! The request path of a core is its connection workers (read, parse, call
//! the application, serialise, queue the write) and the turns of its socket
//! ring (submit, reap, wake). glommio allocates when the whole core goes to
//! sleep and when timers are armed; those allocations happen per idle
//! period or per tick, not per request, and outside the marked stretches.
//! A counting allocator (see `tests/zero_alloc.rs`) asks
//! `in_request_path`. The cost is one thread-local increment and
//! decrement per poll, paid only with the `test-support` feature (on for
//! the project's own tests, through its self dev-dependency): without it
//! the marks are empty and this module is not public.

#[cfg(feature = "test-support")]
use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

#[cfg(feature = "test-support")]
thread_local! {
    static DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// Whether the calling thread is on a core's request path right now.
#[cfg(feature = "test-support")]
pub fn in_request_path() -> bool {
    DEPTH.with(|d| d.get() > 0)
}

/// The calling thread is on the request path while this lives.
pub(crate) struct Scope(());

impl Scope {
    pub(crate) fn enter() -> Scope {
        #[cfg(feature = "test-support")]
        DEPTH.with(|d| d.set(d.get() + 1));
        Scope(())
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        #[cfg(feature = "test-support")]
        DEPTH.with(|d| d.set(d.get() - 1));
    }
}

/// A future whose every poll is on the request path.
pub(crate) struct OnRequestPath<F>(pub(crate) F);

impl<F: Future> Future for OnRequestPath<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let _scope = Scope::enter();
        // SAFETY: structural pinning: the inner future is never moved out
        // of `self`, which is pinned.
        let inner = unsafe { self.map_unchecked_mut(|s| &mut s.0) };
        inner.poll(cx)
    }
}
