//! [`ShutdownSignal`]: stops a server from any thread. The cores read it
//! (is a stop asked for? must they stop accepting?) and wait on its
//! eventfd; it owns the listening sockets, so stopping can shut them.

use std::io;
use std::net::Shutdown;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use socket2::Socket;

use crate::io::sys;

/// Stops a server from any thread. Cloning it is cheap.
#[derive(Debug, Clone)]
pub struct ShutdownSignal {
    inner: Arc<ShutdownInner>,
}

#[derive(Debug)]
struct ShutdownInner {
    /// A stop was asked for: the health path answers 503.
    asked: AtomicBool,
    /// How long to keep serving after a stop was asked for.
    drain_delay: Duration,
    /// The cores were told to stop accepting and drain.
    triggered: AtomicBool,
    /// Readable once the cores must stop accepting: what wakes an accept
    /// that waits on a socket this server does not own.
    wake: OwnedFd,
    /// Whether the listening sockets are this server's (not inherited).
    owned: bool,
    /// The cores' listening sockets (each core accepts on a duplicate).
    listeners: Vec<Socket>,
}

impl ShutdownSignal {
    pub(crate) fn new(
        listeners: Vec<Socket>,
        owned: bool,
        drain_delay: Duration,
    ) -> io::Result<Self> {
        Ok(ShutdownSignal {
            inner: Arc::new(ShutdownInner {
                asked: AtomicBool::new(false),
                drain_delay,
                triggered: AtomicBool::new(false),
                wake: sys::eventfd()?,
                owned,
                listeners,
            }),
        })
    }

    /// Stops accepting at once, drain delay or not (a start that failed).
    pub(crate) fn stop_now(&self) {
        self.inner.asked.store(true, Ordering::SeqCst);
        self.stop_accepting();
    }

    /// The eventfd that becomes readable when the cores must stop
    /// accepting.
    pub(crate) fn wake_fd(&self) -> RawFd {
        self.inner.wake.as_raw_fd()
    }

    pub(crate) fn listener(&self, index: usize) -> &Socket {
        &self.inner.listeners[index]
    }

    /// Asks every core to stop: at once, or after the drain delay
    /// (`--drain-delay`), during which the cores serve as before but the
    /// health path answers 503. Returns at once.
    pub fn trigger(&self) {
        if self.inner.asked.swap(true, Ordering::SeqCst) {
            return;
        }
        if self.inner.drain_delay.is_zero() {
            return self.stop_accepting();
        }
        let delayed = self.clone();
        let spawned =
            thread::Builder::new().name("uring-serve-drain-delay".into()).spawn(move || {
                thread::sleep(delayed.inner.drain_delay);
                delayed.stop_accepting();
            });
        if spawned.is_err() {
            self.stop_accepting();
        }
    }

    /// Whether a stop was asked for, the drain delay included: what the
    /// health path reports.
    pub(crate) fn is_asked(&self) -> bool {
        self.inner.asked.load(Ordering::Relaxed)
    }

    /// Tells every core to stop accepting and drain: the wake eventfd
    /// ends the accept each core waits in. A socket of this server's own is
    /// also shut down, which hands connections still queued in it to the
    /// other listeners of its `SO_REUSEPORT` group (`tcp_migrate_req`); an
    /// inherited one is left as it is, for its manager to hand over again.
    fn stop_accepting(&self) {
        if !self.inner.triggered.swap(true, Ordering::SeqCst) {
            if self.inner.owned {
                for socket in &self.inner.listeners {
                    let _ = socket.shutdown(Shutdown::Read);
                }
            }
            sys::signal_eventfd(&self.inner.wake);
        }
    }

    /// Whether a stop was asked for.
    pub fn is_triggered(&self) -> bool {
        self.inner.triggered.load(Ordering::SeqCst)
    }
}
