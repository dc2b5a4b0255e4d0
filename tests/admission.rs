//! Admission control: --limit-concurrency (requests) and --max-connections.

mod support;

use std::thread;
use std::time::Duration;

use support::Client;
use uring_serve::apps::BenchApp;
use uring_serve::{Cores, Server, ServerHandle};

fn limited(limit_concurrency: Option<usize>, max_connections: usize) -> ServerHandle {
    Server::builder()
        .cores(Cores::Count(1))
        .bind("127.0.0.1:0")
        .limit_concurrency(limit_concurrency)
        .max_connections(max_connections)
        .serve(BenchApp::new)
        .expect("server starts")
}

#[test]
fn requests_past_the_limit_get_503_and_admitted_ones_complete() {
    let server = limited(Some(2), 1000);
    let addr = server.local_addr();
    let admitted: Vec<_> =
        (0..2).map(|_| thread::spawn(move || Client::connect(addr).get("/sleep?ms=800"))).collect();
    thread::sleep(Duration::from_millis(200));
    let mut c = Client::connect(addr);
    let r = c.get("/plaintext");
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(r.header("connection"), Some("close"));
    assert!(c.is_closed_by_server());
    for a in admitted {
        let r = a.join().unwrap();
        assert_eq!((r.status, r.text()), (200, "slept 800 ms\n".to_string()));
    }
    let m = server.metrics()[0];
    assert_eq!((m.requests_shed, m.requests_in_flight), (1, 0));
    assert_eq!(Client::connect(addr).get("/plaintext").status, 200);
}

/// Unlike uvicorn's limit, idle keep-alive connections hold no request and
/// do not count.
#[test]
fn idle_keep_alive_connections_do_not_count_against_the_limit() {
    let server = limited(Some(2), 1000);
    let mut idle: Vec<Client> = (0..5).map(|_| Client::connect(server.local_addr())).collect();
    for c in &mut idle {
        assert_eq!(c.get("/plaintext").status, 200);
    }
    assert_eq!(Client::connect(server.local_addr()).get("/json").status, 200);
}

#[test]
fn a_shed_request_body_is_not_taken_as_a_request() {
    let server = limited(Some(1), 1000);
    let addr = server.local_addr();
    let admitted = thread::spawn(move || Client::connect(addr).get("/sleep?ms=600").status);
    thread::sleep(Duration::from_millis(150));
    let mut c = Client::connect(addr);
    c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 37\r\n\r\nGET /json HTTP/1.1\r\nHost: t\r\n\r\n.....");
    assert_eq!(c.read_response().status, 503);
    assert!(c.is_closed_by_server(), "the body was read as a request");
    assert_eq!(admitted.join().unwrap(), 200);
}

#[test]
fn connections_past_max_connections_get_503_and_are_closed() {
    let server = limited(None, 2);
    let mut open: Vec<Client> = (0..2).map(|_| Client::connect(server.local_addr())).collect();
    for c in &mut open {
        assert_eq!(c.get("/plaintext").status, 200);
    }
    let mut extra = Client::connect(server.local_addr());
    extra.send(b"GET /plaintext HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = extra.read_response();
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert!(extra.is_closed_by_server());
    assert_eq!(server.metrics()[0].connections_shed, 1);
    // Existing connections are served as before; a freed slot is reused.
    assert_eq!(open[0].get("/json").status, 200);
    drop(open.pop());
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while server.metrics()[0].connections_open > 1 && std::time::Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(Client::connect(server.local_addr()).get("/plaintext").status, 200);
}
