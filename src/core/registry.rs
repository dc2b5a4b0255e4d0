//! The core's registry of open connections: each entry keeps enough to
//! close the connection at a drain and to end an operation past its
//! deadline, and, while the connection is idle, the connection itself
//! (parked: its socket and its receive in flight, no task).

use std::os::fd::RawFd;
use std::rc::Rc;
use std::time::Instant;

use super::CoreState;
use crate::app::App;
use crate::conn::{Parked, Watch};
use crate::io::transport::{AcceptedTransport, Peer, PendingRead};

/// What the core keeps of one open connection: enough to close it when
/// idle at a drain and to end a read or write that outlived its deadline;
/// and while it is idle, the connection itself.
pub(super) struct ConnEntry<T: AcceptedTransport> {
    pub(super) fd: RawFd,
    pub(super) peer: Peer,
    pub(super) watch: Rc<Watch>,
    /// The idle connection, while no task serves it.
    pub(super) parked: Option<Parked<T>>,
}

/// A connection's entry in the core's registry while a task serves it:
/// when the task lets go of the connection other than by parking it (the
/// connection ended, panicked, or the task was dropped), the entry goes
/// and the connection is no longer counted open.
pub(super) struct Registration<'a, A: App, T: AcceptedTransport> {
    pub(super) core: &'a CoreState<A, T>,
    pub(super) key: u32,
    pub(super) parked: bool,
}

impl<A: App, T: AcceptedTransport> Registration<'_, A, T> {
    /// The task lets go of the connection: its entry stays only if it
    /// was parked.
    pub(super) fn finish(mut self, parked: bool) {
        self.parked = parked;
    }
}

impl<A: App, T: AcceptedTransport> Drop for Registration<'_, A, T> {
    fn drop(&mut self) {
        if !self.parked {
            let mut connections = self.core.connections.borrow_mut();
            connections.try_remove(self.key as usize);
            self.core.shared.metrics.connections_open.set(connections.len() as u64);
        }
    }
}

impl<A: App, T: AcceptedTransport> CoreState<A, T> {
    /// Registers a new connection and parks it until its first request
    /// arrives (within the header timeout of now, served even while the
    /// core drains).
    pub(super) fn open(&self, io: T, peer: Peer) {
        let read = io.read_fresh(&mut Vec::new(), false).detach();
        let parked =
            Parked { io: Rc::new(io), read, idle_since: Instant::now(), served_any: false };
        let fd = parked.io.socket().fd();
        let entry = ConnEntry { fd, peer, watch: Rc::default(), parked: None };
        let key = {
            let mut connections = self.connections.borrow_mut();
            let key = connections.insert(entry) as u32;
            self.shared.metrics.connections_open.set(connections.len() as u64);
            key
        };
        self.park(key, parked);
    }

    /// Parks connection `key` until its receive completes. It waits with no
    /// task: between requests within the keep-alive timeout, before its
    /// first within the header timeout of its start.
    pub(super) fn park(&self, key: u32, parked: Parked<T>) {
        let mut connections = self.connections.borrow_mut();
        let Some(entry) = connections.get_mut(key as usize) else { return };
        let timeout = if parked.served_any {
            self.shared.timeouts.keep_alive
        } else {
            self.shared.timeouts.request_header
        };
        entry.watch.idle.set(parked.served_any);
        entry.watch.deadline.set(Some(parked.idle_since + timeout));
        self.ring.park(&parked.read, key);
        entry.parked = Some(parked);
    }

    /// Takes connection `key`, parked, out of the registry (its entry
    /// stays, see [`Registration`]), with who it is and its deadline watch.
    pub(super) fn unpark(&self, key: u32) -> Option<(Parked<T>, Peer, Rc<Watch>)> {
        let mut connections = self.connections.borrow_mut();
        let entry = connections.get_mut(key as usize)?;
        let parked = entry.parked.take()?;
        Some((parked, entry.peer, entry.watch.clone()))
    }
}
