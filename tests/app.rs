//! The application interface: per-core instances, fault isolation, streamed
//! bodies, lifecycle hooks.

mod support;

use std::cell::Cell;
use std::collections::HashSet;

use futures_lite::stream;
use support::Client;
use uring_serve::{App, BoxError, Context, CoreId, Cores, Request, Response, Server, StartError};

/// Counts requests per core; panics on /panic; streams on /stream.
struct Probe {
    core: CoreId,
    served: Cell<u64>,
}

impl App for Probe {
    async fn call(&self, req: Request, cx: &Context) -> Response {
        assert_eq!(cx.core(), self.core);
        self.served.set(self.served.get() + 1);
        match req.path() {
            "/panic" => panic!("handler panic (expected by the test)"),
            "/stream" => {
                let parts = vec![Ok(b"one ".to_vec()), Ok(b"two ".to_vec()), Ok(b"three".to_vec())];
                Response::new(200).stream(stream::iter(parts))
            }
            "/bad-header" => Response::text("x").header("x-evil", "a\r\nSet-Cookie: owned"),
            "/close" => Response::text("bye").header("connection", "close"),
            "/no-content" => Response::new(204).body("ignored"),
            "/reset-content" => Response::new(205).body("ignored"),
            "/empty" => Response::new(200),
            _ => Response::text(format!("{}:{}", self.core, self.served.get())),
        }
    }
}

fn start_probe(cores: Cores) -> uring_serve::ServerHandle {
    Server::builder()
        .cores(cores)
        .bind("127.0.0.1:0")
        .serve(|core| Probe { core, served: Cell::new(0) })
        .expect("server starts")
}

#[test]
fn each_core_has_its_own_app_instance() {
    let server = start_probe(Cores::All);
    let mut seen = HashSet::new();
    for _ in 0..200 {
        let body = Client::connect(server.local_addr()).get("/").text();
        seen.insert(body.split(':').next().unwrap().to_string());
    }
    let cores: HashSet<String> = server.cores().iter().map(|c| c.to_string()).collect();
    assert!(seen.is_subset(&cores));
    // State is per instance: one connection sees its core's counter rise.
    let mut c = Client::connect(server.local_addr());
    let first: u64 = c.get("/").text().split(':').nth(1).unwrap().parse().unwrap();
    let second: u64 = c.get("/").text().split(':').nth(1).unwrap().parse().unwrap();
    assert_eq!(second, first + 1);
}

#[test]
fn a_panicking_handler_gets_500_and_the_core_keeps_serving() {
    let server = start_probe(Cores::Count(1));
    let mut bystander = Client::connect(server.local_addr());
    assert_eq!(bystander.get("/").status, 200);
    let mut victim = Client::connect(server.local_addr());
    let r = victim.get("/panic");
    assert_eq!(r.status, 500);
    assert_eq!(r.header("connection"), Some("close"));
    assert!(victim.is_closed_by_server());
    assert_eq!(bystander.get("/").status, 200);
    assert_eq!(Client::connect(server.local_addr()).get("/").status, 200);
}

#[test]
fn a_streamed_body_is_sent_chunked_to_http11() {
    let server = start_probe(Cores::Count(1));
    let mut c = Client::connect(server.local_addr());
    let r = c.get("/stream");
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert_eq!(r.header("content-length"), None);
    assert_eq!(r.body, b"one two three");
    assert_eq!(c.get("/").status, 200);
}

/// RFC 9112 §6.1: chunked is not sent to an HTTP/1.0 client; the body is
/// delimited by closing the connection.
#[test]
fn a_streamed_body_is_close_delimited_for_http10() {
    let server = start_probe(Cores::Count(1));
    let mut c = Client::connect(server.local_addr());
    let r = c.roundtrip("GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_eq!(r.header("transfer-encoding"), None);
    assert_eq!(r.header("connection"), Some("close"));
    assert_eq!(r.body, b"one two three");
}

#[test]
fn a_header_that_would_split_the_response_becomes_500() {
    let server = start_probe(Cores::Count(1));
    let r = Client::connect(server.local_addr()).get("/bad-header");
    assert_eq!(r.status, 500);
    assert!(r.header("set-cookie").is_none());
}

#[test]
fn connection_close_from_the_app_closes_after_the_response() {
    let server = start_probe(Cores::Count(1));
    let mut c = Client::connect(server.local_addr());
    assert_eq!(c.get("/close").body, b"bye");
    assert!(c.is_closed_by_server());
}

#[test]
fn connection_close_from_the_app_closes_every_connection_it_answers() {
    // The second answer reuses the first's head start: it must close too.
    let server = start_probe(Cores::Count(1));
    for _ in 0..2 {
        let mut c = Client::connect(server.local_addr());
        assert_eq!(c.get("/close").body, b"bye");
        assert!(c.is_closed_by_server());
    }
}

/// RFC 9110 §15.3.5: a 204 response has no content and no Content-Length.
#[test]
fn no_content_has_no_body_and_no_length() {
    let server = start_probe(Cores::Count(1));
    let mut c = Client::connect(server.local_addr());
    let r = c.get("/no-content");
    assert_eq!(r.status, 204);
    assert_eq!(r.header("content-length"), None);
    assert_eq!(c.get("/").status, 200);
}

/// RFC 9110 §15.3.6: a server MUST NOT generate content in a 205 response.
#[test]
fn reset_content_has_no_body() {
    let server = start_probe(Cores::Count(1));
    let mut c = Client::connect(server.local_addr());
    let r = c.get("/reset-content");
    assert_eq!((r.status, r.header("content-length")), (205, Some("0")));
    assert_eq!(c.get("/").status, 200);
}

/// RFC 9110 §8.6: a HEAD response may only carry the Content-Length a GET
/// would have; an app answering HEAD without a body states none.
#[test]
fn head_answered_without_a_body_sends_no_length() {
    let server = start_probe(Cores::Count(1));
    let mut c = Client::connect(server.local_addr());
    c.send(b"HEAD /empty HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = c.read_response_to(true);
    assert_eq!((r.status, r.header("content-length")), (200, None));
    assert_eq!(c.get("/").status, 200);
}

struct FailsToStart;

impl App for FailsToStart {
    async fn call(&self, _req: Request, _cx: &Context) -> Response {
        Response::new(200)
    }

    async fn on_start(&self, _cx: &Context) -> Result<(), BoxError> {
        Err("database unreachable".into())
    }
}

#[test]
fn an_on_start_error_stops_the_server_with_that_error() {
    let err = Server::builder().bind("127.0.0.1:0").serve(|_| FailsToStart).unwrap_err();
    assert!(matches!(err, StartError::AppStart { .. }));
    assert!(err.to_string().contains("database unreachable"), "{err}");
}

#[test]
fn shutdown_stops_accepting_and_join_returns() {
    let server = start_probe(Cores::All);
    let addr = server.local_addr();
    assert_eq!(Client::connect(addr).get("/").status, 200);
    server.shutdown();
    server.join().expect("clean stop");
    assert!(std::net::TcpStream::connect(addr).is_err(), "still accepting after shutdown");
}

/// `/crash` makes the core's executor panic outside any request at its
/// next accept (test-only fault injection), as a runtime bug would.
struct Crashable;

impl App for Crashable {
    async fn call(&self, req: Request, cx: &Context) -> Response {
        if req.path() == "/crash" {
            cx.inject_executor_fault();
        }
        Response::text(format!("{}", cx.metrics().core_restarts))
    }
}

/// Triggers the injected fault and waits for the restart: the next
/// connection the faulty core accepts crashes it (and is lost with it).
fn crash(server: &uring_serve::ServerHandle) {
    let addr = server.local_addr();
    let _ = Client::connect(addr).get("/crash");
    let restarts = || server.metrics().iter().map(|m| m.core_restarts).sum::<u64>();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while restarts() == 0 && std::time::Instant::now() < deadline {
        let _ = std::net::TcpStream::connect(addr);
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(restarts(), 1, "the injected fault did not crash a core");
}

#[test]
fn a_crashed_core_is_started_again_and_serves() {
    let built = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = built.clone();
    let server = Server::builder()
        .cores(Cores::Count(1))
        .bind("127.0.0.1:0")
        .serve(move |_| {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Crashable
        })
        .expect("server starts");
    let addr = server.local_addr();
    crash(&server);
    // Served again by a new executor and a new app instance.
    let r = Client::connect(addr).get("/");
    assert_eq!((r.status, r.text()), (200, "1".to_string()));
    assert_eq!(server.metrics()[0].core_restarts, 1);
    assert_eq!(built.load(std::sync::atomic::Ordering::SeqCst), 2);
    server.shutdown();
    server.join().expect("clean stop after a restart");
}

#[test]
fn a_crash_on_one_core_leaves_the_others_serving() {
    if uring_serve::cores::allowed().len() < 2 {
        return; // needs two cores
    }
    let server = Server::builder()
        .cores(Cores::Count(2))
        .bind("127.0.0.1:0")
        .serve(|_| Crashable)
        .expect("server starts");
    let addr = server.local_addr();
    crash(&server);
    // Whatever core took the crash, requests keep being answered, by the
    // other core at once and by the crashed one after its restart.
    for _ in 0..50 {
        assert_eq!(Client::connect(addr).get("/").status, 200);
    }
    let restarts: u64 = server.metrics().iter().map(|m| m.core_restarts).sum();
    assert_eq!(restarts, 1);
}
