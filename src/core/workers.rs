//! The tasks that serve a core's connections: a connection has a task only
//! while it is busy. When a parked connection's receive completes, the
//! ring hands its key to [`Workers`] (the ring's [`Unpark`]), which wakes
//! one waiting worker to take it, or, when none waits, the starter task,
//! which starts one. A core keeps as many workers as it had connections
//! busy at once; those not needed for a whole sweep end, beyond
//! [`IDLE_WORKERS`].

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::panic::AssertUnwindSafe;
use std::rc::Rc;
use std::task::{Poll, Waker};

use futures_lite::FutureExt;
use tracing::{debug, error};

use super::registry::Registration;
use super::CoreState;
use crate::app::App;
use crate::conn::{Conn, ConnError, Outcome};
use crate::io::ring::{Unpark, TABLES_START};
use crate::io::transport::AcceptedTransport;
use crate::metrics::TimeoutKind;
use crate::probe::OnRequestPath;
use crate::recycle::Recycled;

/// Idle workers a core keeps beyond a sweep (see [`serve_ready`]).
pub(super) const IDLE_WORKERS: usize = 64;

/// The workers of a core: the keys of connections that became ready, and
/// the tasks waiting to take them.
pub(crate) struct Workers {
    parking: RefCell<Parking>,
}

/// The ready queue of parked operations (see `Ring::park`).
struct Parking {
    /// Keys of parked operations that completed, oldest first.
    ready: VecDeque<u32>,
    /// Tasks waiting in [`Workers::next_ready`].
    waiting: Vec<Waker>,
    /// The fewest tasks that waited at once since the last
    /// [`Workers::retire_waiting`]: those were not needed.
    fewest_waiting: usize,
    /// How many woken waiting tasks are to end (see [`Workers::retire_waiting`]).
    retiring: usize,
    /// The task waiting in [`Workers::unattended`].
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

impl Workers {
    pub(super) fn new() -> Workers {
        Workers { parking: RefCell::new(Parking::new()) }
    }

    /// The key of the next parked operation that completed; `None` tells
    /// the calling task to end (see [`Workers::retire_waiting`]).
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
    /// [`Workers::next_ready`].
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
    /// [`Workers::next_ready`] to take it.
    pub(crate) fn take_unattended(&self) -> Option<u32> {
        let mut parking = self.parking.borrow_mut();
        if parking.waiting.is_empty() {
            parking.ready.pop_front()
        } else {
            None
        }
    }

    /// Tells tasks waiting in [`Workers::next_ready`] to end: those that were
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

impl Unpark for Workers {
    fn unpark(&self, key: u32) {
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
}

/// Serves the connections of a core whose parked receive completed, one
/// at a time, from `first`; ends when the core has enough idle workers.
///
/// A core's workers are as many as it had connections busy at once (an
/// idle connection has none, see `conn::Parked`); the sweeper ends those idle
/// beyond [`IDLE_WORKERS`].
async fn serve_ready<A: App, T: AcceptedTransport>(core: Rc<CoreState<A, T>>, first: u32) {
    let mut key = Some(first);
    while let Some(k) = key {
        serve_parked(&core, k).await;
        key = core.workers.next_ready().await;
    }
}

/// Starts a worker for every parked connection that became ready while
/// none waited, and was still not taken once the tasks woken with it ran:
/// workers finishing a write in the same turn of the ring take the new
/// arrivals, and the core keeps as many workers as it has connections busy
/// at once, not one per arrival.
pub(crate) async fn start_workers<A: App, T: AcceptedTransport>(core: Rc<CoreState<A, T>>) {
    loop {
        core.workers.unattended().await;
        futures_lite::future::yield_now().await;
        while let Some(key) = core.workers.take_unattended() {
            glommio::spawn_local(OnRequestPath(serve_ready(core.clone(), key))).detach();
        }
    }
}

/// Serves the connection parked under `key` until it is idle again (and
/// parked) or ends. A panic ends only this connection.
async fn serve_parked<A: App, T: AcceptedTransport>(core: &Rc<CoreState<A, T>>, key: u32) {
    let Some((parked, peer, watch)) = core.unpark(key) else { return };
    let (mut conn, read) = Conn::unpark(&core.shared, parked, peer, watch);
    let registration = Registration { core, key, parked: false };
    let served = async move {
        match conn.serve(read).await {
            Ok(Outcome::Idle(read)) => {
                core.park(key, conn.into_parked(read));
                return true;
            }
            Ok(Outcome::Close) => Recycled::with(|| conn.linger_close()).await,
            Ok(Outcome::Gone) => conn.close_gone(),
            Err(e) => {
                if matches!(e, ConnError::WriteStalled) || conn.write_was_cut() {
                    core.shared.metrics.count_timeout(TimeoutKind::Write);
                }
                if e.is_application_fault() {
                    error!(%peer, "{e}");
                } else {
                    debug!(%peer, "connection ended: {e}");
                }
            }
        }
        false
    };
    match AssertUnwindSafe(served).catch_unwind().await {
        Ok(parked) => registration.finish(parked),
        Err(_) => error!(%peer, "connection task panicked; connection closed"),
    }
}
