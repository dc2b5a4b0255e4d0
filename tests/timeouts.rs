//! Timeouts: slow heads (408), idle keep-alive, stalled bodies (408),
//! stalled readers; none of them delays another connection.

mod support;

use std::io::Write;
use std::thread;
use std::time::{Duration, Instant};

use support::Client;
use uring_serve::apps::BenchApp;
use uring_serve::{Cores, Server, ServerHandle};

const SHORT: Duration = Duration::from_millis(300);

fn short_timeouts() -> ServerHandle {
    Server::builder()
        .cores(Cores::Count(1))
        .bind("127.0.0.1:0")
        .max_body_bytes(64 << 20)
        .timeout_request_header(SHORT)
        .timeout_keep_alive(SHORT)
        .timeout_body(SHORT)
        .timeout_write(SHORT)
        .serve(BenchApp::new)
        .expect("server starts")
}

/// RFC 9110 §15.5.9: 408 when the server times out waiting for a request.
#[test]
fn a_head_sent_too_slowly_gets_408_and_close() {
    let server = short_timeouts();
    let mut c = Client::connect(server.local_addr());
    let started = Instant::now();
    for piece in [&b"GET /plain"[..], b"text HTTP/1.1\r\n", b"Host: t\r\n"] {
        c.send(piece);
        thread::sleep(Duration::from_millis(120));
    }
    let r = c.read_response();
    assert_eq!(r.status, 408);
    assert_eq!(r.header("connection"), Some("close"));
    assert!(c.is_closed_by_server());
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(server.metrics()[0].requests_timed_out, 1);
}

#[test]
fn an_idle_keep_alive_connection_is_closed() {
    let server = short_timeouts();
    let mut c = Client::connect(server.local_addr());
    assert_eq!(c.get("/plaintext").status, 200);
    let started = Instant::now();
    assert!(c.is_closed_by_server());
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(250) && waited < Duration::from_secs(3), "{waited:?}");
}

#[test]
fn keep_alive_activity_keeps_a_connection_open() {
    let server = short_timeouts();
    let mut c = Client::connect(server.local_addr());
    for _ in 0..6 {
        assert_eq!(c.get("/plaintext").status, 200);
        thread::sleep(Duration::from_millis(150));
    }
}

#[test]
fn a_stalled_body_gets_408() {
    let server = short_timeouts();
    let mut c = Client::connect(server.local_addr());
    c.send(b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc");
    let r = c.read_response();
    assert_eq!(r.status, 408);
    assert!(c.is_closed_by_server());
}

/// A handler that answers as the body arrives (the echo) has sent its
/// head when the body stalls: the response is cut short and the
/// connection closed, so the client can tell.
#[test]
fn a_stalled_body_cuts_a_streamed_answer_short() {
    let server = short_timeouts();
    let mut c = Client::connect(server.local_addr());
    c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc");
    let started = Instant::now();
    let mut got = Vec::new();
    c.stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = std::io::Read::read_to_end(&mut c.stream, &mut got);
    let got = String::from_utf8_lossy(&got);
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    assert!(got.contains("Content-Length: 10\r\n") && got.ends_with("\r\n\r\nabc"), "{got}");
    assert!(started.elapsed() >= SHORT / 2, "cut before the body timeout");
}

#[test]
fn a_client_that_does_not_read_is_cut_off_without_delaying_others() {
    let server = Server::builder()
        .cores(Cores::Count(1))
        .bind("127.0.0.1:0")
        .max_body_bytes(64 << 20)
        .timeout_write(Duration::from_secs(2))
        .serve(BenchApp::new)
        .expect("server starts");
    let addr = server.local_addr();
    // Ask for a 32 MiB echo and never read it: the write stalls.
    let mut stalled = Client::connect(addr);
    let body = vec![b'x'; 32 << 20];
    stalled.send(
        format!("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n", body.len())
            .as_bytes(),
    );
    let mut writer = stalled.stream.try_clone().unwrap();
    thread::spawn(move || {
        let _ = writer.write_all(&body);
    });
    thread::sleep(Duration::from_millis(300));
    // While that write stalls (up to the 2 s write timeout), others are
    // answered at once.
    for _ in 0..20 {
        let started = Instant::now();
        assert_eq!(Client::connect(addr).get("/plaintext").status, 200);
        assert!(started.elapsed() < Duration::from_secs(1), "others waited on the stalled client");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.metrics()[0].connections_open > 0 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(server.metrics()[0].connections_open, 0, "the stalled connection was never closed");
}

/// An application that blocks its core for a while on `/stall` (what a
/// badly written handler does): the core can fall behind its deadlines.
struct Stalling;

impl uring_serve::App for Stalling {
    async fn call(
        &self,
        req: uring_serve::Request,
        _cx: &uring_serve::Context,
    ) -> uring_serve::Response {
        if req.path() == "/stall" {
            thread::sleep(Duration::from_millis(400));
            // Back to the executor's timers before any socket operation.
            uring_serve::sleep(Duration::from_millis(1)).await;
        }
        uring_serve::Response::text("ok")
    }
}

/// A request that arrived before its connection's keep-alive deadline is
/// answered, even when the core gets to it only after the deadline (here
/// because the application blocked the core): the request is never read
/// and then dropped. It may be the connection's last.
#[test]
fn a_request_that_arrived_before_the_keep_alive_deadline_is_answered_late() {
    let server = Server::builder()
        .cores(Cores::Count(1))
        .bind("127.0.0.1:0")
        .timeout_keep_alive(Duration::from_millis(200))
        .serve(|_| Stalling)
        .expect("server starts");
    for _ in 0..3 {
        let mut idle = Client::connect(server.local_addr());
        assert_eq!(idle.get("/").status, 200);
        let mut staller = Client::connect(server.local_addr());
        staller.send(b"GET /stall HTTP/1.1\r\nHost: t\r\n\r\n");
        // The core is blocked from now for 400 ms; the idle connection's
        // deadline passes 200 ms after its response, its request comes
        // well before that.
        thread::sleep(Duration::from_millis(100));
        let r = idle.roundtrip("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!((r.status, r.body.as_slice()), (200, &b"ok"[..]));
        assert_eq!(staller.read_response().status, 200);
    }
}

fn min_body_rate(bytes_per_second: u64) -> ServerHandle {
    Server::builder()
        .cores(Cores::Count(1))
        .bind("127.0.0.1:0")
        .timeout_body(SHORT)
        .min_body_rate(bytes_per_second)
        .serve(BenchApp::new)
        .expect("server starts")
}

/// `--timeout-body` bounds each pause; a body trickled a byte at a time,
/// each within that bound, is still cut once 10 s of waiting for it
/// brought less than the minimum rate: 408 and close.
#[test]
fn a_body_trickled_below_the_minimum_rate_gets_408() {
    let server = min_body_rate(500);
    let mut c = Client::connect(server.local_addr());
    c.send(b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n");
    let started = Instant::now();
    // A byte every 150 ms (each pause within --timeout-body) until the
    // answer comes.
    c.stream.set_read_timeout(Some(Duration::from_millis(1))).unwrap();
    let answered = loop {
        thread::sleep(SHORT / 2);
        let _ = c.stream.write_all(b"x");
        if c.stream.peek(&mut [0; 1]).is_ok_and(|n| n > 0) {
            break started.elapsed();
        }
        assert!(started.elapsed() < Duration::from_secs(20), "never cut");
    };
    c.stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    assert!(answered >= Duration::from_secs(9), "cut after {answered:?}, before a window ended");
    let r = c.read_response();
    assert_eq!(r.status, 408);
    assert!(c.is_closed_by_server());
    assert_eq!(server.metrics()[0].requests_timed_out, 1);
}

/// A slow body that keeps the minimum rate is read whole, however long it
/// takes.
#[test]
fn a_slow_body_above_the_minimum_rate_is_read_whole() {
    let server = min_body_rate(500);
    let mut c = Client::connect(server.local_addr());
    const PIECES: usize = 120;
    let len = PIECES * 100;
    c.send(format!("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {len}\r\n\r\n").as_bytes());
    // 1000 B/s for 12 s: past the first window.
    for _ in 0..PIECES {
        c.send(&[b'y'; 100]);
        thread::sleep(Duration::from_millis(100));
    }
    let r = c.read_response();
    assert_eq!((r.status, r.body.len()), (200, len));
}
