//! The drain at shutdown: idle connections close now, busy ones finish
//! their request (answered with `Connection: close`), what outlives the
//! graceful timeout is cut.

use std::rc::Rc;
use std::time::{Duration, Instant};

use tracing::warn;

use super::CoreState;
use crate::app::App;
use crate::io::sys;
use crate::io::transport::AcceptedTransport;

/// How often a draining core looks for connections that went idle.
const DRAIN_POLL: Duration = Duration::from_millis(20);

/// Drains the core after it stopped accepting: idle connections are closed
/// now, busy ones finish their request (answered with `Connection: close`),
/// and whatever still runs after `timeout` is logged and left to be cut
/// when the executor ends.
pub(crate) async fn drain<A: App, T: AcceptedTransport>(
    core: &Rc<CoreState<A, T>>,
    timeout: Duration,
) {
    core.shared.drain.start();
    let deadline = Instant::now() + timeout;
    loop {
        // Ending the read side makes an idle connection's pending read
        // return end-of-stream; bytes already received are still read.
        // A connection's entry leaves the registry in the same step as its
        // socket is closed, so every `fd` here is open.
        for (_, entry) in core.connections.borrow().iter().filter(|(_, e)| e.watch.idle.get()) {
            sys::shutdown_read(entry.fd);
        }
        if core.connections.borrow().is_empty() || Instant::now() >= deadline {
            break;
        }
        glommio::timer::sleep(DRAIN_POLL).await;
    }
    let cut = core.connections.borrow();
    for (_, entry) in cut.iter() {
        warn!(peer = %entry.peer, "graceful shutdown timed out: connection cut");
        sys::shutdown_both(entry.fd);
    }
    if !cut.is_empty() {
        warn!(count = cut.len(), "graceful shutdown timed out: {} connection(s) cut", cut.len());
    }
}
