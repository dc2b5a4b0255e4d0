//! [`Counter`]: a count one core writes and any thread reads. The owning
//! core updates it with a relaxed load and store, never a locked
//! read-modify-write, so the hot path pays no more than for a plain
//! integer. The metrics are made of these; so are the TLS counts, which
//! sit below the metrics.

use std::sync::atomic::{AtomicU64, Ordering};

/// A single-writer counter.
#[derive(Debug, Default)]
pub(crate) struct Counter(AtomicU64);

impl Counter {
    /// Adds one (owning core only).
    #[inline]
    pub(crate) fn inc(&self) {
        self.add(1);
    }

    /// Adds `n` (owning core only).
    #[inline]
    pub(crate) fn add(&self, n: u64) {
        self.0.store(self.0.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
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
