//! Per-core counters.
//!
//! Each core owns one [`CoreMetrics`] and is its only writer: counters are
//! atomics so that other threads (the server handle, a metrics exporter)
//! can read them, but the owning core updates them with a relaxed load and
//! store, never a locked read-modify-write, so the hot path pays no more
//! than for a plain integer.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::cores::CoreId;

/// Counters of one core. Written only by that core.
#[derive(Debug, Default)]
pub(crate) struct CoreMetrics {
    pub(crate) connections_open: Counter,
    pub(crate) connections_accepted: Counter,
    pub(crate) connections_shed: Counter,
    pub(crate) requests: Counter,
    pub(crate) requests_in_flight: Counter,
    pub(crate) requests_shed: Counter,
    pub(crate) requests_refused: Counter,
    pub(crate) requests_timed_out: Counter,
    pub(crate) app_panics: Counter,
    pub(crate) blocking_in_pool: Counter,
    pub(crate) blocking_queued: Counter,
    pub(crate) core_restarts: Counter,
}

/// A single-writer counter.
#[derive(Debug, Default)]
pub(crate) struct Counter(AtomicU64);

impl Counter {
    /// Adds one (owning core only).
    pub(crate) fn inc(&self) {
        self.0.store(self.0.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }

    /// Subtracts one (owning core only).
    pub(crate) fn dec(&self) {
        self.0.store(self.0.load(Ordering::Relaxed).saturating_sub(1), Ordering::Relaxed);
    }

    /// Sets the value (owning core only).
    pub(crate) fn set(&self, value: u64) {
        self.0.store(value, Ordering::Relaxed);
    }

    /// Reads the value (any thread).
    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl CoreMetrics {
    pub(crate) fn snapshot(&self, core: CoreId) -> Metrics {
        Metrics {
            core,
            connections_open: self.connections_open.get(),
            connections_accepted: self.connections_accepted.get(),
            connections_shed: self.connections_shed.get(),
            requests: self.requests.get(),
            requests_in_flight: self.requests_in_flight.get(),
            requests_shed: self.requests_shed.get(),
            requests_refused: self.requests_refused.get(),
            requests_timed_out: self.requests_timed_out.get(),
            app_panics: self.app_panics.get(),
            blocking_in_pool: self.blocking_in_pool.get(),
            blocking_queued: self.blocking_queued.get(),
            core_restarts: self.core_restarts.get(),
        }
    }
}

/// A reading of one core's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metrics {
    /// The core.
    pub core: CoreId,
    /// Connections open now.
    pub connections_open: u64,
    /// Connections accepted since start (shed ones included).
    pub connections_accepted: u64,
    /// Connections answered 503 and closed at once (`--max-connections`).
    pub connections_shed: u64,
    /// Requests handed to the application.
    pub requests: u64,
    /// Requests admitted and not yet answered.
    pub requests_in_flight: u64,
    /// Requests answered 503 by admission control or a full blocking pool.
    pub requests_shed: u64,
    /// Requests refused by the parser (4xx/5xx before the application).
    pub requests_refused: u64,
    /// Requests answered 408: the head or body did not arrive in time.
    pub requests_timed_out: u64,
    /// Panics caught in the application (500).
    pub app_panics: u64,
    /// Blocking jobs queued or running (at the last change).
    pub blocking_in_pool: u64,
    /// Blocking jobs waiting for a thread (at the last change).
    pub blocking_queued: u64,
    /// Times this core's executor died and was started again.
    pub core_restarts: u64,
}
