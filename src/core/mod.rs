//! What a core owns: its open connections (the registry, where an idle
//! connection waits parked with no task), the workers that serve the
//! connections that become ready, the accept loop with `--max-connections`
//! shedding, the periodic tasks (the `Date` tick, the deadline sweeper),
//! and the drain at shutdown. One connection's work is `conn`'s.
//!
//! Files: `accept` (the accept loop, shedding), `registry` (open
//! connections, parking), `workers` (the tasks that take ready
//! connections), `timers` (the `Date` tick and the deadline sweeper),
//! `drain` (graceful shutdown).

use std::cell::RefCell;
use std::rc::Rc;

use slab::Slab;

use crate::app::App;
use crate::config::Config;
use crate::conn::Shared;
use crate::io::ring::Ring;
use crate::io::transport::AcceptedTransport;

mod accept;
mod drain;
mod registry;
mod timers;
mod workers;

pub(crate) use accept::accept_loop;
pub(crate) use drain::drain;
use registry::ConnEntry;
pub(crate) use timers::{sweep_deadlines, tick_date};
pub(crate) use workers::start_workers;
use workers::Workers;

/// One core's state: what its connections share, and what it keeps of
/// them.
pub(crate) struct CoreState<A, T: AcceptedTransport> {
    /// What every connection of the core shares.
    pub(crate) shared: Rc<Shared<A>>,
    /// The socket ring every connection of the core does its I/O on.
    ring: Rc<Ring>,
    /// Every open connection of the core: for the sweeper, for a drain, and
    /// where an idle connection waits (parked) with no task of its own.
    connections: RefCell<Slab<ConnEntry<T>>>,
    /// What every connection is made with (see [`AcceptedTransport`]).
    setup: T::Setup,
    max_connections: u64,
    /// The tasks that serve connections whose parked receive completed.
    workers: Rc<Workers>,
}

impl<A: App, T: AcceptedTransport> CoreState<A, T> {
    /// The core's state around what its connections share; its workers
    /// take the ring's parked operations from now on.
    pub(crate) fn new(shared: Shared<A>, ring: Rc<Ring>, config: &Config, setup: T::Setup) -> Self {
        let workers = Rc::new(Workers::new());
        ring.set_unpark(workers.clone());
        CoreState {
            shared: Rc::new(shared),
            ring,
            connections: RefCell::new(Slab::new()),
            setup,
            max_connections: config.max_connections as u64,
            workers,
        }
    }
}
