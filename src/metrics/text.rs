//! The Prometheus text exposition format (version 0.0.4) of every core's
//! counters: a pure function from readings to text.

use std::fmt::Write;
use std::sync::Arc;

use super::{CoreMetrics, RefusedKind, TimeoutKind, DURATION_BOUNDS_US};
use crate::cores::CoreId;
use crate::tls::counters::HandshakeFailure;

/// The `Content-Type` of [`render`]'s output.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Writes every metric of `cores` to `out`.
pub(crate) fn render(cores: &[(CoreId, Arc<CoreMetrics>)], out: &mut String) {
    let mut family = Family { out };
    family.head("build_info", "gauge", "The running build: its version.");
    let _ = writeln!(
        family.out,
        "uring_serve_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );

    family.head("requests_total", "counter", "Responses sent, by status class.");
    for (core, m) in cores {
        for (class, counter) in m.responses.iter().enumerate() {
            family.sample(
                "requests_total",
                *core,
                &[("code", &format!("{}xx", class + 1))],
                counter.get(),
            );
        }
    }

    family.head(
        "request_duration_seconds",
        "histogram",
        "Time from a request's parsed head until its response is ready to send.",
    );
    for (core, m) in cores {
        let (cumulative, sum_us) = m.duration.read();
        for (bound, count) in DURATION_BOUNDS_US.iter().zip(&cumulative) {
            let le = seconds(*bound);
            family.sample("request_duration_seconds_bucket", *core, &[("le", &le)], *count);
        }
        let total = cumulative[DURATION_BOUNDS_US.len()];
        family.sample("request_duration_seconds_bucket", *core, &[("le", "+Inf")], total);
        let _ = writeln!(
            family.out,
            "uring_serve_request_duration_seconds_sum{{core=\"{core}\"}} {}",
            seconds(sum_us)
        );
        family.sample("request_duration_seconds_count", *core, &[], total);
    }

    family.per_core(
        "gauge",
        cores,
        "requests_in_flight",
        "Requests admitted and not yet answered.",
        |m| m.requests_in_flight.get(),
    );
    family.per_core("gauge", cores, "connections_open", "Connections open now.", |m| {
        m.connections_open.get()
    });
    family.per_core("counter", cores, "connections_accepted_total", "Connections accepted.", |m| {
        m.connections_accepted.get()
    });
    family.per_core(
        "counter",
        cores,
        "accept_errors_total",
        "Accepts that failed for want of descriptors or memory.",
        |m| m.accept_errors.get(),
    );

    family.head(
        "shed_total",
        "counter",
        "Requests and connections answered 503 for overload, by reason.",
    );
    for (core, m) in cores {
        for (reason, value) in [
            ("concurrency", m.shed_concurrency.get()),
            ("connections", m.connections_shed.get()),
            ("blocking_queue", m.shed_blocking_queue.get()),
        ] {
            family.sample("shed_total", *core, &[("reason", reason)], value);
        }
    }

    family.per_core(
        "gauge",
        cores,
        "blocking_queued",
        "Blocking jobs waiting for a thread.",
        |m| m.blocking_queued.get(),
    );
    family.per_core(
        "gauge",
        cores,
        "blocking_busy_threads",
        "Blocking-pool threads running a job.",
        |m| m.blocking_in_pool.get().saturating_sub(m.blocking_queued.get()),
    );
    family.per_core(
        "counter",
        cores,
        "blocking_panics_total",
        "Blocking jobs that panicked.",
        |m| m.blocking_panics.get(),
    );

    let codes = RefusedKind::ALL.map(|kind| kind.status().to_string());
    family.counter_by(
        cores,
        "parse_errors_total",
        "Requests refused before the application, by the status they were answered with.",
        "code",
        &codes.each_ref().map(String::as_str),
        |m, i| m.refused[RefusedKind::ALL[i] as usize].get(),
    );
    family.counter_by(
        cores,
        "timeouts_total",
        "Reads and writes ended by a deadline, by kind.",
        "kind",
        &TimeoutKind::ALL.map(TimeoutKind::name),
        |m, i| m.timeouts[TimeoutKind::ALL[i] as usize].get(),
    );

    family.per_core(
        "counter",
        cores,
        "app_panics_total",
        "Panics caught in the application (answered 500).",
        |m| m.app_panics.get(),
    );
    family.per_core(
        "counter",
        cores,
        "core_restarts_total",
        "Times a core's executor died and was started again.",
        |m| m.core_restarts.get(),
    );
    family.counter_by(
        cores,
        "tls_handshakes_total",
        "TLS handshakes completed, by kind.",
        "kind",
        &["full", "resumed"],
        |m, i| match i {
            0 => m.tls.handshakes().saturating_sub(m.tls.resumed()),
            _ => m.tls.resumed(),
        },
    );
    family.counter_by(
        cores,
        "tls_handshake_failures_total",
        "TLS handshakes that failed, by reason.",
        "reason",
        &HandshakeFailure::ALL.map(HandshakeFailure::name),
        |m, i| m.tls.failures(HandshakeFailure::ALL[i]),
    );

    family.per_core(
        "counter",
        cores,
        "access_log_dropped_lines_total",
        "Access-log lines dropped because the log's writer fell behind.",
        |m| m.access_log_dropped.get(),
    );
}

/// A metric family being written: `# HELP` and `# TYPE`, then its samples.
struct Family<'a> {
    out: &'a mut String,
}

impl Family<'_> {
    fn head(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP uring_serve_{name} {help}");
        let _ = writeln!(self.out, "# TYPE uring_serve_{name} {kind}");
    }

    fn sample(&mut self, name: &str, core: CoreId, labels: &[(&str, &str)], value: u64) {
        let _ = write!(self.out, "uring_serve_{name}{{core=\"{core}\"");
        for (label, label_value) in labels {
            // Every label value here is a number or a fixed word: nothing
            // to escape.
            let _ = write!(self.out, ",{label}=\"{label_value}\"");
        }
        let _ = writeln!(self.out, "}} {value}");
    }

    /// A counter family with one sample per core and value of `label`:
    /// `value(metrics, i)` for `values[i]`.
    fn counter_by(
        &mut self,
        cores: &[(CoreId, Arc<CoreMetrics>)],
        name: &str,
        help: &str,
        label: &str,
        values: &[&str],
        value: impl Fn(&CoreMetrics, usize) -> u64,
    ) {
        self.head(name, "counter", help);
        for (core, m) in cores {
            for (i, label_value) in values.iter().enumerate() {
                self.sample(name, *core, &[(label, label_value)], value(m, i));
            }
        }
    }

    /// A family with one unlabelled sample per core.
    fn per_core(
        &mut self,
        kind: &str,
        cores: &[(CoreId, Arc<CoreMetrics>)],
        name: &str,
        help: &str,
        value: impl Fn(&CoreMetrics) -> u64,
    ) {
        self.head(name, kind, help);
        for (core, m) in cores {
            self.sample(name, *core, &[], value(m));
        }
    }
}

/// Microseconds as seconds, exactly (`2500` is `0.0025`).
fn seconds(us: u64) -> String {
    let (whole, frac) = (us / 1_000_000, us % 1_000_000);
    if frac == 0 {
        return whole.to_string();
    }
    let frac = format!("{frac:06}");
    format!("{whole}.{}", frac.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn microseconds_print_as_exact_seconds() {
        assert_eq!(seconds(100), "0.0001");
        assert_eq!(seconds(2_500), "0.0025");
        assert_eq!(seconds(1_000_000), "1");
        assert_eq!(seconds(12_500_000), "12.5");
        assert_eq!(seconds(0), "0");
    }

    #[test]
    fn every_family_has_help_and_type_and_samples_carry_the_core() {
        let m = Arc::new(CoreMetrics::default());
        m.count_response(200);
        m.duration.observe(Duration::from_micros(300));
        let mut out = String::new();
        render(&[(CoreId(3), m)], &mut out);
        assert!(out.contains("uring_serve_requests_total{core=\"3\",code=\"2xx\"} 1\n"), "{out}");
        assert!(out.contains(
            "uring_serve_request_duration_seconds_bucket{core=\"3\",le=\"0.00025\"} 0\n"
        ));
        assert!(out
            .contains("uring_serve_request_duration_seconds_bucket{core=\"3\",le=\"0.0005\"} 1\n"));
        assert!(
            out.contains("uring_serve_request_duration_seconds_bucket{core=\"3\",le=\"+Inf\"} 1\n")
        );
        assert!(out.contains("uring_serve_request_duration_seconds_sum{core=\"3\"} 0.0003\n"));
        assert!(out.contains("uring_serve_request_duration_seconds_count{core=\"3\"} 1\n"));
        for line in out.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap_or_default();
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .unwrap_or(name);
            assert!(out.contains(&format!("# TYPE {family} ")), "no TYPE for {name}");
            assert!(out.contains(&format!("# HELP {family} ")), "no HELP for {name}");
        }
    }
}
