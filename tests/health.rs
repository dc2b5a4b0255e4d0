//! The health path (`--health-path`) and the drain delay: what a load
//! balancer or a readiness probe sees while the server runs and stops.

mod support;

use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use support::Client;
use uring_serve::apps::BenchApp;
use uring_serve::{Cores, Server, ServerHandle};

fn with_health(drain_delay: Duration) -> ServerHandle {
    Server::builder()
        .cores(Cores::Count(1))
        .bind("127.0.0.1:0")
        .health_path(Some("/healthz"))
        .drain_delay(drain_delay)
        .serve(BenchApp::new)
        .expect("server starts")
}

#[test]
fn the_health_path_is_answered_without_the_application() {
    let server = with_health(Duration::ZERO);
    let mut c = Client::connect(server.local_addr());
    let r = c.get("/healthz");
    assert_eq!((r.status, r.text()), (200, "ok\n".to_string()));
    // The bench application would have answered 404.
    assert_eq!(server.metrics()[0].requests, 0);
    c.send(b"HEAD /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
    let head = c.read_response_to(true);
    assert_eq!((head.status, head.body.len()), (200, 0));
    let post = c.roundtrip("POST /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
    assert_eq!((post.status, post.header("allow")), (405, Some("GET, HEAD")));
    assert_eq!(c.get("/healthz?probe=1").status, 200, "the query is not part of the path");
    assert_eq!(c.get("/healthz/more").status, 404, "only the exact path");
}

#[test]
fn the_health_path_is_answered_past_the_concurrency_limit() {
    let server = Server::builder()
        .cores(Cores::Count(1))
        .bind("127.0.0.1:0")
        .health_path(Some("/healthz"))
        .limit_concurrency(Some(1))
        .serve(BenchApp::new)
        .expect("server starts");
    let addr = server.local_addr();
    let busy = thread::spawn(move || Client::connect(addr).get("/sleep?ms=500"));
    thread::sleep(Duration::from_millis(150));
    assert_eq!(Client::connect(addr).get("/plaintext").status, 503);
    assert_eq!(Client::connect(addr).get("/healthz").status, 200);
    assert_eq!(busy.join().unwrap().status, 200);
}

#[test]
fn during_the_drain_delay_the_health_path_says_503_and_requests_are_still_served() {
    let delay = Duration::from_millis(800);
    let server = with_health(delay);
    let addr = server.local_addr();
    let mut kept = Client::connect(addr);
    assert_eq!(kept.get("/healthz").status, 200);
    let asked = Instant::now();
    server.shutdown();
    let r = kept.get("/healthz");
    assert_eq!((r.status, r.text()), (503, "stopping\n".to_string()));
    assert_eq!(kept.get("/plaintext").status, 200, "kept-alive connections are served");
    assert_eq!(Client::connect(addr).get("/plaintext").status, 200, "new ones too");
    server.join().unwrap();
    assert!(asked.elapsed() >= delay, "stopped before the drain delay: {:?}", asked.elapsed());
    assert!(TcpStream::connect(addr).is_err(), "still accepting after the stop");
}

#[test]
fn a_health_request_with_a_body_closes_the_connection() {
    let server = with_health(Duration::ZERO);
    let mut c = Client::connect(server.local_addr());
    // The body is not read: it must not be taken for a second request.
    let body = "GET /plaintext HTTP/1.1\r\nHost: t\r\n\r\n";
    let r = c.roundtrip(&format!(
        "POST /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ));
    assert_eq!((r.status, r.header("connection")), (405, Some("close")));
    assert!(c.is_closed_by_server());
    assert_eq!(server.metrics()[0].requests, 0, "the body was never served as a request");
}
