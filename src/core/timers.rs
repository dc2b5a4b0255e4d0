//! The core's periodic tasks: the `Date` tick (it also empties the cache
//! of response heads) and the deadline sweeper (see [`Watch`]), which also
//! ends workers the core no longer needs.

use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::workers::IDLE_WORKERS;
use super::CoreState;
use crate::app::App;
use crate::http::HttpDate;
use crate::io::sys;
use crate::io::transport::AcceptedTransport;

/// Re-renders the core's `Date` value at every turn of the second.
pub(crate) async fn tick_date<A: App, T: AcceptedTransport>(core: Rc<CoreState<A, T>>) {
    loop {
        let now = SystemTime::now();
        let date = HttpDate::from_system_time(now);
        core.shared.heads.set_date(date);
        if let Some(log) = &core.shared.access_log {
            log.set_date(&date);
        }
        let into_second = now.duration_since(UNIX_EPOCH).unwrap_or_default().subsec_nanos();
        let to_next = Duration::from_nanos(u64::from(1_000_000_000 - into_second));
        glommio::timer::sleep(to_next).await;
    }
}

/// Ends the reads and writes that are past their deadline, a few times a
/// second (see [`Watch`]); the granularity is a quarter of the shortest
/// timeout, between 5 ms and 250 ms.
pub(crate) async fn sweep_deadlines<A: App, T: AcceptedTransport>(core: Rc<CoreState<A, T>>) {
    let t = core.shared.timeouts;
    let shortest = t.request_header.min(t.keep_alive).min(t.body).min(t.write);
    let tick = (shortest / 4).clamp(Duration::from_millis(5), Duration::from_millis(250));
    loop {
        glommio::timer::sleep(tick).await;
        let now = Instant::now();
        core.workers.retire_waiting(IDLE_WORKERS);
        for (_, entry) in core.connections.borrow().iter() {
            let watch = &entry.watch;
            if !watch.deadline.get().is_some_and(|d| now >= d) {
                continue;
            }
            // The entry leaves the registry when its socket closes. A write
            // is cut even after a read was: the request that raced the read
            // deadline is answered, but within the write timeout.
            if watch.writing.get() && !watch.write_cut.get() {
                watch.timed_out.set(true);
                watch.write_cut.set(true);
                sys::shutdown_both(entry.fd);
            } else if !watch.writing.get() && !watch.timed_out.get() {
                watch.timed_out.set(true);
                sys::shutdown_read(entry.fd);
            }
        }
    }
}
