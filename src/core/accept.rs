//! The accept loop: registers each new connection and parks it until its
//! first request arrives; past `--max-connections` a connection gets a 503
//! and is closed. Failed accepts back off and are logged at most once per
//! interval.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

use tracing::warn;

use super::CoreState;
use crate::app::{App, Body, Response};
use crate::conn::{linger, with_deadline, write_all};
use crate::http::{self, ResponseFraming};
use crate::io::ring::OpBuf;
use crate::io::socket::RingSocket;
use crate::io::sys;
use crate::io::transport::AcceptedTransport;

/// How long a connection shed at accept may take to get its 503 out.
const SHED_LINGER: Duration = Duration::from_millis(500);

/// How long a core waits before it accepts again after a failed accept.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

/// At most one line per this interval per core about failed accepts: a
/// client must not flood the log by opening connections past the
/// descriptor limit.
const ACCEPT_ERROR_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// A warning repeated at most once per interval, saying how many were left
/// out since the last line.
struct AcceptErrorLog {
    interval: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl AcceptErrorLog {
    fn new(interval: Duration) -> AcceptErrorLog {
        AcceptErrorLog { interval, last: None, suppressed: 0 }
    }

    fn note(&mut self, error: &io::Error) {
        let now = Instant::now();
        if self.last.is_some_and(|last| now < last + self.interval) {
            self.suppressed += 1;
            return;
        }
        if self.suppressed > 0 {
            warn!(
                "accept failed: {error} ({} more since the last line, not logged; \
                 connections wait in the accept queue meanwhile)",
                self.suppressed
            );
        } else {
            warn!("accept failed: {error} (connections wait in the accept queue meanwhile)");
        }
        self.last = Some(now);
        self.suppressed = 0;
    }
}

/// Accepts connections until shutdown; each is registered and parked until
/// its first request arrives (see [`CoreState::open`]).
pub(crate) async fn accept_loop<A: App, T: AcceptedTransport>(
    listener: OwnedFd,
    core: Rc<CoreState<A, T>>,
) {
    let shutdown = &core.shared.shutdown;
    let mut accept_errors = AcceptErrorLog::new(ACCEPT_ERROR_LOG_INTERVAL);
    loop {
        if shutdown.is_triggered() {
            return;
        }
        let socket = match sys::accept(&listener) {
            Ok(socket) => RingSocket::new(socket, core.ring.clone()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                // Until a connection waits, or the stop (see
                // `ShutdownSignal::stop_accepting`).
                let arrival = async { drop(core.ring.readable(listener.as_raw_fd()).await) };
                let stop = async { drop(core.ring.readable(shutdown.wake_fd()).await) };
                futures_lite::future::or(arrival, stop).await;
                continue;
            }
            Err(_) if shutdown.is_triggered() => return,
            Err(e) => {
                // Out of descriptors or memory: back off instead of spinning;
                // connections wait in the kernel's accept queue meanwhile.
                core.shared.metrics.accept_errors.inc();
                accept_errors.note(&e);
                glommio::timer::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        // A connection accepted as the stop began is served like any
        // other (the loop ends at the next accept, which fails).
        if core.shared.cx.take_injected_fault() {
            panic!("injected executor fault (Context::inject_executor_fault)");
        }
        let metrics = &core.shared.metrics;
        metrics.connections_accepted.inc();
        let peer = match socket.peer() {
            Ok(peer) => peer,
            Err(_) => continue, // already gone
        };
        let core = core.clone();
        if metrics.connections_open.get() >= core.max_connections {
            metrics.connections_shed.inc();
            if T::PLAIN {
                glommio::spawn_local(shed_connection(socket, core)).detach();
            }
            // Over TLS the connection closes: a 503 would need a handshake,
            // the work an overloaded core should not take on.
            continue;
        }
        match T::accepted(socket, &core.setup) {
            Ok(io) => core.open(io, peer),
            Err(e) => warn!(%peer, "connection closed at accept: {e}"),
        }
    }
}

/// Answers a connection over `--max-connections` with 503 and closes it:
/// the client learns why, instead of a reset or an unbounded wait.
async fn shed_connection<A: App, T: AcceptedTransport>(io: RingSocket, core: Rc<CoreState<A, T>>) {
    core.shared.metrics.count_response(503);
    let mut out = Vec::with_capacity(256);
    let mut response = Response::service_unavailable();
    let body_len = match response.body_ref() {
        Body::Full(bytes) => bytes.len() as u64,
        _ => 0,
    };
    core.shared.heads.start(&mut response, &mut out);
    http::encode_end(ResponseFraming::Length(body_len), false, false, &mut out);
    if let Body::Full(body) = response.take_body() {
        out.extend_from_slice(&body);
    }
    let deadline = Instant::now() + SHED_LINGER;
    let written = with_deadline(write_all(&io, OpBuf::Vec(out), None), deadline).await;
    if let Some((Ok(()), OpBuf::Vec(mut out))) = written {
        linger(&io, &mut out, deadline).await;
    }
}
