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
