//! The metrics listener (`--metrics`): Prometheus text built from every
//! core's counters, on a listener of its own.

mod support;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::Duration;

use support::Client;
use uring_serve::apps::BenchApp;
use uring_serve::{Cores, Server, ServerHandle};

fn with_metrics(limit_concurrency: Option<usize>) -> ServerHandle {
    Server::builder()
        .cores(Cores::Count(1))
        .bind("127.0.0.1:0")
        .metrics("127.0.0.1:0".parse().unwrap())
        .limit_concurrency(limit_concurrency)
        .serve(BenchApp::new)
        .expect("server starts")
}

/// One raw request to the metrics listener: (status line, headers, body).
fn get(addr: SocketAddr, request: &str) -> (String, String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("a response head");
    let (status, headers) = head.split_once("\r\n").unwrap_or((head, ""));
    (status.to_string(), headers.to_string(), body.to_string())
}

/// Every sample of a scrape, by its name and labels as written.
fn scrape(server: &ServerHandle) -> HashMap<String, f64> {
    let addr = server.metrics_addr().expect("metrics listener");
    let (status, headers, body) = get(addr, "GET /metrics HTTP/1.1\r\nHost: m\r\n\r\n");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(headers.contains("Content-Type: text/plain; version=0.0.4"), "{headers}");
    body.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("name and value");
            (series.to_string(), value.parse().expect("a number"))
        })
        .collect()
}

fn sample(samples: &HashMap<String, f64>, series: &str) -> f64 {
    *samples.get(series).unwrap_or_else(|| panic!("no sample {series}"))
}

#[test]
fn a_scrape_after_known_load_counts_each_response_by_class() {
    let server = with_metrics(None);
    let core = server.cores()[0];
    let mut c = Client::connect(server.local_addr());
    for _ in 0..5 {
        assert_eq!(c.get("/plaintext").status, 200);
    }
    for _ in 0..2 {
        assert_eq!(c.get("/missing").status, 404);
    }
    let mut bad = Client::connect(server.local_addr());
    assert_eq!(bad.roundtrip("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n").status, 400);

    let m = scrape(&server);
    let series =
        |name: &str, labels: &str| format!("uring_serve_{name}{{core=\"{core}\"{labels}}}");
    assert_eq!(sample(&m, &series("requests_total", ",code=\"2xx\"")), 5.0);
    assert_eq!(sample(&m, &series("requests_total", ",code=\"4xx\"")), 3.0);
    assert_eq!(sample(&m, &series("requests_total", ",code=\"5xx\"")), 0.0);
    assert_eq!(sample(&m, &series("parse_errors_total", ",code=\"400\"")), 1.0);
    assert_eq!(sample(&m, &series("parse_errors_total", ",code=\"431\"")), 0.0);
    assert_eq!(sample(&m, &series("connections_accepted_total", "")), 2.0);
    // The seven requests with a parsed head were timed; the refused one not.
    assert_eq!(sample(&m, &series("request_duration_seconds_count", "")), 7.0);
    assert_eq!(sample(&m, &series("request_duration_seconds_bucket", ",le=\"+Inf\"")), 7.0);
    assert!(sample(&m, &series("request_duration_seconds_sum", "")) > 0.0);
    assert_eq!(sample(&m, &series("requests_in_flight", "")), 0.0);
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(sample(&m, &format!("uring_serve_build_info{{version=\"{version}\"}}")), 1.0);
}

#[test]
fn requests_shed_for_concurrency_are_counted_by_reason() {
    let server = with_metrics(Some(1));
    let core = server.cores()[0];
    let addr = server.local_addr();
    let admitted = thread::spawn(move || Client::connect(addr).get("/sleep?ms=600"));
    thread::sleep(Duration::from_millis(200));
    assert_eq!(Client::connect(addr).get("/plaintext").status, 503);
    assert_eq!(admitted.join().unwrap().status, 200);
    let m = scrape(&server);
    let shed =
        |reason: &str| format!("uring_serve_shed_total{{core=\"{core}\",reason=\"{reason}\"}}");
    assert_eq!(sample(&m, &shed("concurrency")), 1.0);
    assert_eq!(sample(&m, &shed("connections")), 0.0);
    assert_eq!(sample(&m, &shed("blocking_queue")), 0.0);
    let code_5xx = format!("uring_serve_requests_total{{core=\"{core}\",code=\"5xx\"}}");
    assert_eq!(sample(&m, &code_5xx), 1.0);
}

#[test]
fn the_metrics_listener_answers_only_get_metrics() {
    let server = with_metrics(None);
    let addr = server.metrics_addr().unwrap();
    assert_ne!(addr, server.local_addr());
    let (status, _, _) = get(addr, "GET / HTTP/1.1\r\nHost: m\r\n\r\n");
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    let (status, headers, _) = get(addr, "POST /metrics HTTP/1.1\r\nHost: m\r\n\r\n");
    assert_eq!(status, "HTTP/1.1 405 Method Not Allowed");
    assert!(headers.contains("Allow: GET, HEAD"), "{headers}");
    let (status, headers, body) = get(addr, "HEAD /metrics HTTP/1.1\r\nHost: m\r\n\r\n");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(headers.contains("Content-Length: "), "{headers}");
    assert!(body.is_empty());
    // Scrapes are not user requests: nothing was counted on the core.
    assert_eq!(server.metrics()[0].responses, [0; 5]);
}

#[test]
fn a_server_stops_with_its_metrics_listener() {
    let server = with_metrics(None);
    let addr = server.metrics_addr().unwrap();
    server.shutdown();
    server.join().unwrap();
    assert!(TcpStream::connect(addr).is_err(), "the metrics port still accepts");
}

#[test]
fn timeouts_are_counted_by_kind() {
    let short = Duration::from_millis(200);
    let server = Server::builder()
        .cores(Cores::Count(1))
        .bind("127.0.0.1:0")
        .metrics("127.0.0.1:0".parse().unwrap())
        .timeout_request_header(short)
        .timeout_keep_alive(short)
        .serve(BenchApp::new)
        .expect("server starts");
    let core = server.cores()[0];
    // Served once, then idle past the keep-alive timeout.
    let mut idle = Client::connect(server.local_addr());
    assert_eq!(idle.get("/plaintext").status, 200);
    // Half a head, never finished.
    let mut slow = Client::connect(server.local_addr());
    slow.send(b"GET /plaintext HTTP/1.1\r\n");
    assert_eq!(slow.read_response().status, 408);
    assert!(idle.is_closed_by_server());
    let m = scrape(&server);
    let kind =
        |kind: &str| format!("uring_serve_timeouts_total{{core=\"{core}\",kind=\"{kind}\"}}");
    assert_eq!(sample(&m, &kind("keep_alive")), 1.0);
    assert_eq!(sample(&m, &kind("request_header")), 1.0);
    assert_eq!(sample(&m, &kind("body")), 0.0);
    assert_eq!(sample(&m, &kind("write")), 0.0);
}
