//! Graceful shutdown: stop accepting, close idle connections, let in-flight
//! requests finish with `Connection: close`, cut what outlives the timeout.

mod support;

use std::thread;
use std::time::{Duration, Instant};

use support::Client;
use uring_serve::apps::BenchApp;
use uring_serve::{Cores, Server, ServerHandle};

fn server(graceful: Duration) -> ServerHandle {
    Server::builder()
        .cores(Cores::Count(1))
        .bind("127.0.0.1:0")
        .timeout_graceful_shutdown(graceful)
        .serve(BenchApp::new)
        .expect("server starts")
}

#[test]
fn in_flight_requests_finish_with_connection_close() {
    let server = server(Duration::from_secs(10));
    let addr = server.local_addr();
    let mut busy = Client::connect(addr);
    busy.send(b"GET /sleep?ms=500 HTTP/1.1\r\nHost: t\r\n\r\n");
    thread::sleep(Duration::from_millis(100));
    let started = Instant::now();
    server.shutdown();
    let r = busy.read_response();
    assert_eq!((r.status, r.text()), (200, "slept 500 ms\n".to_string()));
    assert_eq!(r.header("connection"), Some("close"));
    assert!(busy.is_closed_by_server());
    server.join().expect("clean stop");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
}

#[test]
fn idle_keep_alive_connections_are_closed_at_once() {
    let server = server(Duration::from_secs(10));
    let mut idle = Client::connect(server.local_addr());
    assert_eq!(idle.get("/plaintext").status, 200);
    let started = Instant::now();
    server.shutdown();
    assert!(idle.is_closed_by_server());
    server.join().expect("clean stop");
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
}

#[test]
fn requests_outliving_the_graceful_timeout_are_cut() {
    let server = server(Duration::from_millis(300));
    let mut slow = Client::connect(server.local_addr());
    slow.send(b"GET /sleep?ms=5000 HTTP/1.1\r\nHost: t\r\n\r\n");
    thread::sleep(Duration::from_millis(100));
    let started = Instant::now();
    server.shutdown();
    server.join().expect("stop after the timeout");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(250) && waited < Duration::from_secs(3), "{waited:?}");
    assert!(slow.is_closed_by_server(), "a cut connection is closed, not left open");
}

/// Records what happened on its core, in order.
struct Recorder(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl uring_serve::App for Recorder {
    async fn call(
        &self,
        _req: uring_serve::Request,
        _cx: &uring_serve::Context,
    ) -> uring_serve::Response {
        uring_serve::sleep(Duration::from_millis(300)).await;
        self.0.lock().unwrap().push("request done".to_string());
        uring_serve::Response::text("done")
    }

    async fn on_start(&self, _cx: &uring_serve::Context) -> Result<(), uring_serve::BoxError> {
        self.0.lock().unwrap().push("start".to_string());
        Ok(())
    }

    async fn on_stop(&self, _cx: &uring_serve::Context) {
        self.0.lock().unwrap().push("stop".to_string());
    }
}

/// Lifespan: `on_start` before the core accepts, `on_stop` after it drained.
#[test]
fn on_stop_runs_after_in_flight_requests_finish() {
    let events = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let recorded = events.clone();
    let server = Server::builder()
        .cores(Cores::Count(1))
        .bind("127.0.0.1:0")
        .serve(move |_| Recorder(recorded.clone()))
        .expect("server starts");
    let mut c = Client::connect(server.local_addr());
    c.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    thread::sleep(Duration::from_millis(100));
    server.shutdown();
    assert_eq!(c.read_response().text(), "done");
    server.join().expect("clean stop");
    assert_eq!(*events.lock().unwrap(), ["start", "request done", "stop"]);
}

/// A connection accepted before the stop whose request is still on its way
/// is not idle: its request is answered (with close), not dropped.
#[test]
fn a_new_connection_whose_request_arrives_during_the_drain_is_answered() {
    let server = server(Duration::from_secs(10));
    let mut c = Client::connect(server.local_addr());
    thread::sleep(Duration::from_millis(100)); // accepted, nothing sent yet
    server.shutdown();
    thread::sleep(Duration::from_millis(100));
    let r = c.roundtrip("GET /plaintext HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!((r.status, r.header("connection")), (200, Some("close")));
    server.join().expect("clean stop");
}
