//! The ring's driver task: submits and reaps in turns while connections
//! have work, sleeps through glommio when none has (see the parent
//! module's "Waking up").

use std::future::{poll_fn, Future};
use std::rc::Rc;
use std::sync::atomic::{fence, Ordering};
use std::task::Poll;
use std::time::Duration;

use glommio::io::BufferedFile;
use std::os::fd::FromRawFd;
use tracing::{debug, warn};

use super::Ring;

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
