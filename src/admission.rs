//! Admission control: may this request run on this core now?
//!
//! One counter per core of the requests in flight (from the parsed head to
//! the last byte of the response). Past `--limit-concurrency`, a request is
//! answered at once with 503 + `Retry-After` + `Connection: close`, without
//! reading its body or calling the application; requests already admitted
//! are not affected. Unlike uvicorn's limit, idle keep-alive connections do
//! not count: they hold no request. Permits are `!Send`; the counter is the
//! core's `requests_in_flight` metric, written by this core only.

use std::rc::Rc;
use std::sync::Arc;

use crate::metrics::CoreMetrics;

/// One core's in-flight request limit.
#[derive(Debug)]
pub(crate) struct Admission {
    limit: Option<u64>,
    metrics: Arc<CoreMetrics>,
}

impl Admission {
    /// Admits at most `limit` requests at once (`None`: no limit), counting
    /// them in `metrics`.
    pub(crate) fn new(limit: Option<usize>, metrics: Arc<CoreMetrics>) -> Rc<Admission> {
        Rc::new(Admission { limit: limit.map(|l| l as u64), metrics })
    }

    /// A permit for one request, or `None` when the core is at its limit.
    pub(crate) fn try_admit(self: &Rc<Self>) -> Option<Permit> {
        let in_flight = &self.metrics.requests_in_flight;
        if self.limit.is_some_and(|limit| in_flight.get() >= limit) {
            return None;
        }
        in_flight.inc();
        Some(Permit(self.clone()))
    }
}

/// The right of one request to run; dropping it frees its place.
#[derive(Debug)]
pub(crate) struct Permit(Rc<Admission>);

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.metrics.requests_in_flight.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_up_to_the_limit_and_frees_on_drop() {
        let admission = Admission::new(Some(2), Arc::default());
        let a = admission.try_admit().expect("first");
        let _b = admission.try_admit().expect("second");
        assert!(admission.try_admit().is_none());
        drop(a);
        assert!(admission.try_admit().is_some());
    }

    #[test]
    fn no_limit_admits_everything() {
        let metrics = Arc::new(CoreMetrics::default());
        let admission = Admission::new(None, metrics.clone());
        let permits: Vec<_> = (0..10_000).map(|_| admission.try_admit()).collect();
        assert!(permits.iter().all(Option::is_some));
        assert_eq!(metrics.requests_in_flight.get(), 10_000);
    }
}
