//! The slowest a request body may arrive (`--min-body-rate`).
//!
//! `--timeout-body` bounds one pause, so a client that sends a byte just
//! before each pause would end holds its connection and its admission
//! permit for as long as it likes. [`BodyRate`] closes that: the time spent
//! waiting for the body's bytes is cut into windows of [`WINDOW`], and each
//! window must bring at least `rate × WINDOW` bytes (Apache's
//! `mod_reqtimeout` `MinRate` does the same with a deadline extended per
//! byte received). Only time spent waiting for the client counts: the
//! connection reports each wait, and time the server spends elsewhere
//! (handling, writing, a handler that has not asked for more) is never
//! reported.
//!
//! Pure bookkeeping over durations and byte counts; the connection asks
//! [`BodyRate::wait_limit`] before it waits and reports with
//! [`BodyRate::record`] after.

use std::time::Duration;

/// The stretch of waiting over which the rate is averaged: long enough
/// that a short stall of a real client (a lost packet, a slow start) does
/// not count, short enough that a trickle is cut within seconds.
pub(crate) const WINDOW: Duration = Duration::from_secs(10);

/// How far a body is behind its minimum rate (see the module doc).
#[derive(Debug, Clone)]
pub(crate) struct BodyRate {
    /// Bytes each window must bring (0: no minimum).
    per_window: u64,
    /// Waiting time left in the current window.
    left: Duration,
    /// Bytes the current window still needs.
    need: u64,
}

impl BodyRate {
    /// A body that must arrive at `bytes_per_second` or faster (0: no
    /// minimum).
    pub(crate) fn new(bytes_per_second: u64) -> BodyRate {
        let per_window = bytes_per_second.saturating_mul(WINDOW.as_secs());
        BodyRate { per_window, left: WINDOW, need: per_window }
    }

    /// The longest the next wait may last before the rate is missed; `None`
    /// when nothing limits it.
    pub(crate) fn wait_limit(&self) -> Option<Duration> {
        match (self.per_window, self.need) {
            (0, _) => None,
            // This window has its bytes: the wait may run to the end of the
            // next one, which has none yet.
            (_, 0) => Some(self.left + WINDOW),
            _ => Some(self.left),
        }
    }

    /// Records a wait of `waited` that ended with `bytes` arriving (bytes
    /// count at the end of the wait). `false` when a window ended short of
    /// its bytes: the body is too slow.
    pub(crate) fn record(&mut self, waited: Duration, bytes: u64) -> bool {
        if self.per_window == 0 {
            return true;
        }
        if waited <= self.left {
            self.left -= waited;
            self.need = self.need.saturating_sub(bytes);
            if !self.left.is_zero() {
                return true;
            }
            // The window ends with these bytes: judged now.
            if self.need > 0 {
                return false;
            }
            self.left = WINDOW;
            self.need = self.per_window;
            return true;
        }
        // The window ended during the wait, before the bytes came.
        if self.need > 0 {
            return false;
        }
        let into_next = waited - self.left;
        if into_next >= WINDOW {
            return false;
        }
        self.left = WINDOW - into_next;
        self.need = self.per_window.saturating_sub(bytes);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn a_body_at_the_rate_goes_on_for_ever() {
        let mut rate = BodyRate::new(100);
        for _ in 0..1000 {
            assert!(rate.record(SECOND, 100));
        }
    }

    #[test]
    fn a_trickle_fails_when_its_first_window_ends() {
        let mut rate = BodyRate::new(500);
        for second in 1..10 {
            assert!(rate.record(SECOND, 1), "cut after {second} s");
        }
        assert_eq!(rate.wait_limit(), Some(SECOND));
        assert!(!rate.record(SECOND, 1));
    }

    #[test]
    fn a_fast_start_does_not_pay_for_a_later_trickle() {
        let mut rate = BodyRate::new(500);
        assert!(rate.record(SECOND, 1 << 20));
        // The next window starts empty: nine more seconds of this one, ten
        // of the next.
        assert_eq!(rate.wait_limit(), Some(WINDOW + 9 * SECOND));
        for _ in 0..9 {
            assert!(rate.record(SECOND, 1));
        }
        for _ in 0..9 {
            assert!(rate.record(SECOND, 1));
        }
        assert!(!rate.record(SECOND, 1));
    }

    #[test]
    fn a_pause_within_the_window_is_fine_if_the_bytes_come() {
        let mut rate = BodyRate::new(500);
        assert!(rate.record(8 * SECOND, 5000));
        assert!(rate.record(SECOND, 0));
    }

    #[test]
    fn a_wait_across_a_whole_window_without_bytes_fails() {
        let mut rate = BodyRate::new(500);
        assert!(rate.record(SECOND, 5000));
        assert!(!rate.record(9 * SECOND + WINDOW, 5000));
    }

    #[test]
    fn no_minimum_never_fails_and_never_limits_a_wait() {
        let mut rate = BodyRate::new(0);
        assert_eq!(rate.wait_limit(), None);
        assert!(rate.record(1000 * SECOND, 0));
    }
}
