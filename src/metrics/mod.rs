//! Per-core counters, and their export in the Prometheus text format.
//!
//! Each core owns one [`CoreMetrics`] and is its only writer: counters are
//! atomics so that other threads (the server handle, the metrics listener)
//! can read them, but the owning core updates them with a relaxed load and
//! store, never a locked read-modify-write, so the hot path pays no more
//! than for a plain integer. No counter is shared between cores: each
//! core's block is its own allocation, aligned so that two cores never
//! write the same cache line.
//!
//! What this module does not do: decide what to count (the connection code
//! does) or serve HTTP on the core's listener (`exporter` answers scrapes
//! on a listener and thread of its own).

pub(crate) mod exporter;
mod text;

use std::sync::Arc;
use std::time::Duration;

use crate::cores::CoreId;
pub(crate) use crate::counter::Counter;
use crate::tls::counters::{HandshakeFailure, TlsCounters};

/// Counters of one core. Written only by that core.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct CoreMetrics {
    pub(crate) connections_open: Counter,
    pub(crate) connections_accepted: Counter,
    pub(crate) connections_shed: Counter,
    /// Accepts that failed (out of descriptors or memory).
    pub(crate) accept_errors: Counter,
    /// Requests handed to the application.
    pub(crate) requests: Counter,
    pub(crate) requests_in_flight: Counter,
    /// Responses sent, by status class (`1xx` at index 0).
    pub(crate) responses: [Counter; 5],
    /// Time from a request's head to its response, for requests with a
    /// parsed head (recorded only when the server is asked to time them).
    pub(crate) duration: Histogram,
    pub(crate) shed_concurrency: Counter,
    pub(crate) shed_blocking_queue: Counter,
    /// Requests the parser refused, by [`RefusedKind`].
    pub(crate) refused: [Counter; RefusedKind::COUNT],
    /// Reads and writes ended by a deadline, by [`TimeoutKind`].
    pub(crate) timeouts: [Counter; TimeoutKind::COUNT],
    pub(crate) app_panics: Counter,
    pub(crate) blocking_in_pool: Counter,
    pub(crate) blocking_queued: Counter,
    pub(crate) blocking_panics: Counter,
    pub(crate) core_restarts: Counter,
    /// Access-log lines dropped because the log's writer fell behind.
    pub(crate) access_log_dropped: Counter,
    /// TLS handshakes and their failures (written by the core's TLS
    /// connections).
    pub(crate) tls: Arc<TlsCounters>,
}

/// Upper bounds of the duration histogram's buckets, in microseconds
/// (100 µs to 10 s, Prometheus' usual 1-2.5-5 steps).
pub(crate) const DURATION_BOUNDS_US: [u64; 16] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000,
];

/// A latency histogram with fixed buckets, written by one core.
#[derive(Debug, Default)]
pub(crate) struct Histogram {
    /// Observations per bucket (not cumulative); the last is above every
    /// bound.
    buckets: [Counter; DURATION_BOUNDS_US.len() + 1],
    sum_us: Counter,
}

impl Histogram {
    /// Records one observation (owning core only).
    #[inline]
    pub(crate) fn observe(&self, elapsed: Duration) {
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let bucket = DURATION_BOUNDS_US.iter().position(|&bound| us <= bound);
        self.buckets[bucket.unwrap_or(DURATION_BOUNDS_US.len())].inc();
        self.sum_us.add(us);
    }

    /// Cumulative counts per bound (the last is `+Inf`, the total count)
    /// and the sum in microseconds.
    pub(crate) fn read(&self) -> ([u64; DURATION_BOUNDS_US.len() + 1], u64) {
        let mut cumulative = [0; DURATION_BOUNDS_US.len() + 1];
        let mut total = 0u64;
        for (slot, bucket) in cumulative.iter_mut().zip(&self.buckets) {
            total = total.wrapping_add(bucket.get());
            *slot = total;
        }
        (cumulative, self.sum_us.get())
    }
}

/// Why the parser refused a request: the status it was answered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RefusedKind {
    BadRequest,
    PayloadTooLarge,
    UriTooLong,
    ExpectationFailed,
    HeaderFieldsTooLarge,
    NotImplemented,
    VersionNotSupported,
}

impl RefusedKind {
    pub(crate) const COUNT: usize = 7;
    pub(crate) const ALL: [RefusedKind; RefusedKind::COUNT] = [
        RefusedKind::BadRequest,
        RefusedKind::PayloadTooLarge,
        RefusedKind::UriTooLong,
        RefusedKind::ExpectationFailed,
        RefusedKind::HeaderFieldsTooLarge,
        RefusedKind::NotImplemented,
        RefusedKind::VersionNotSupported,
    ];

    /// The kind of a refusal answered with `status`.
    pub(crate) fn of_status(status: u16) -> RefusedKind {
        match status {
            413 => RefusedKind::PayloadTooLarge,
            414 => RefusedKind::UriTooLong,
            417 => RefusedKind::ExpectationFailed,
            431 => RefusedKind::HeaderFieldsTooLarge,
            501 => RefusedKind::NotImplemented,
            505 => RefusedKind::VersionNotSupported,
            _ => RefusedKind::BadRequest,
        }
    }

    pub(crate) fn status(self) -> u16 {
        match self {
            RefusedKind::BadRequest => 400,
            RefusedKind::PayloadTooLarge => 413,
            RefusedKind::UriTooLong => 414,
            RefusedKind::ExpectationFailed => 417,
            RefusedKind::HeaderFieldsTooLarge => 431,
            RefusedKind::NotImplemented => 501,
            RefusedKind::VersionNotSupported => 505,
        }
    }
}

/// Which deadline ended a read or a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimeoutKind {
    /// A request head did not arrive in time (`--timeout-request-header`).
    RequestHeader,
    /// A request body stalled (`--timeout-body`).
    Body,
    /// An idle keep-alive connection was closed (`--timeout-keep-alive`).
    KeepAlive,
    /// A client stopped reading its response (`--timeout-write`).
    Write,
}

impl TimeoutKind {
    pub(crate) const COUNT: usize = 4;
    pub(crate) const ALL: [TimeoutKind; TimeoutKind::COUNT] =
        [TimeoutKind::RequestHeader, TimeoutKind::Body, TimeoutKind::KeepAlive, TimeoutKind::Write];

    pub(crate) fn name(self) -> &'static str {
        match self {
            TimeoutKind::RequestHeader => "request_header",
            TimeoutKind::Body => "body",
            TimeoutKind::KeepAlive => "keep_alive",
            TimeoutKind::Write => "write",
        }
    }
}

impl CoreMetrics {
    /// Counts a response with `status`.
    #[inline]
    pub(crate) fn count_response(&self, status: u16) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.responses[class].inc();
    }

    pub(crate) fn count_refused(&self, status: u16) {
        self.refused[RefusedKind::of_status(status) as usize].inc();
    }

    pub(crate) fn count_timeout(&self, kind: TimeoutKind) {
        self.timeouts[kind as usize].inc();
    }

    pub(crate) fn snapshot(&self, core: CoreId) -> Metrics {
        let timeouts = |kind: TimeoutKind| self.timeouts[kind as usize].get();
        Metrics {
            core,
            connections_open: self.connections_open.get(),
            connections_accepted: self.connections_accepted.get(),
            connections_shed: self.connections_shed.get(),
            accept_errors: self.accept_errors.get(),
            requests: self.requests.get(),
            requests_in_flight: self.requests_in_flight.get(),
            requests_shed: self.shed_concurrency.get() + self.shed_blocking_queue.get(),
            requests_refused: self.refused.iter().map(Counter::get).sum(),
            requests_timed_out: timeouts(TimeoutKind::RequestHeader) + timeouts(TimeoutKind::Body),
            responses: self.responses.each_ref().map(Counter::get),
            app_panics: self.app_panics.get(),
            blocking_in_pool: self.blocking_in_pool.get(),
            blocking_queued: self.blocking_queued.get(),
            blocking_panics: self.blocking_panics.get(),
            core_restarts: self.core_restarts.get(),
            tls_handshakes: self.tls.handshakes(),
            tls_resumed: self.tls.resumed(),
            tls_handshake_failures: HandshakeFailure::ALL
                .iter()
                .map(|&why| self.tls.failures(why))
                .sum(),
        }
    }
}

/// A reading of one core's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Metrics {
    /// The core.
    pub core: CoreId,
    /// Connections open now.
    pub connections_open: u64,
    /// Connections accepted since start (shed ones included).
    pub connections_accepted: u64,
    /// Connections answered 503 and closed at once (`--max-connections`).
    pub connections_shed: u64,
    /// Accepts that failed for want of descriptors or memory (the
    /// connection waits in the kernel's queue meanwhile).
    pub accept_errors: u64,
    /// Requests handed to the application.
    pub requests: u64,
    /// Requests admitted and not yet answered.
    pub requests_in_flight: u64,
    /// Requests answered 503 by admission control, and blocking jobs a
    /// full pool refused (`BlockingError::Overloaded`, which the
    /// application usually answers with 503).
    pub requests_shed: u64,
    /// Requests refused by the parser (4xx/5xx before the application).
    pub requests_refused: u64,
    /// Requests whose head or body did not arrive in time: answered 408
    /// when part of them had arrived, closed silently when nothing had.
    pub requests_timed_out: u64,
    /// Responses sent, by status class: `responses[0]` counts 1xx, up to
    /// `responses[4]` for 5xx.
    pub responses: [u64; 5],
    /// Panics caught in the application (500).
    pub app_panics: u64,
    /// Blocking jobs queued or running (at the last change).
    pub blocking_in_pool: u64,
    /// Blocking jobs waiting for a thread (at the last change).
    pub blocking_queued: u64,
    /// Blocking jobs that panicked.
    pub blocking_panics: u64,
    /// Times this core's executor died and was started again.
    pub core_restarts: u64,
    /// TLS handshakes completed, resumed ones included.
    pub tls_handshakes: u64,
    /// TLS handshakes that resumed a session (from a ticket).
    pub tls_resumed: u64,
    /// TLS handshakes that failed, for any reason (by reason in the
    /// exported metrics).
    pub tls_handshake_failures: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_histogram_counts_each_observation_in_its_bucket_and_above() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(50));
        h.observe(Duration::from_micros(100));
        h.observe(Duration::from_micros(101));
        h.observe(Duration::from_secs(60));
        let (cumulative, sum) = h.read();
        assert_eq!(cumulative[0], 2, "<= 100 µs");
        assert_eq!(cumulative[1], 3, "<= 250 µs");
        assert_eq!(cumulative[DURATION_BOUNDS_US.len() - 1], 3, "<= 10 s");
        assert_eq!(cumulative[DURATION_BOUNDS_US.len()], 4, "+Inf");
        assert_eq!(sum, 50 + 100 + 101 + 60_000_000);
    }

    #[test]
    fn statuses_fall_into_their_class() {
        let m = CoreMetrics::default();
        for status in [100, 200, 204, 301, 404, 431, 503] {
            m.count_response(status);
        }
        assert_eq!(m.snapshot(CoreId(0)).responses, [1, 2, 1, 2, 1]);
    }

    #[test]
    fn refusals_are_kept_by_status() {
        for kind in RefusedKind::ALL {
            assert_eq!(RefusedKind::of_status(kind.status()), kind);
        }
    }
}
