//! The `axum` example's router served by uring-serve, over real sockets
//! (`cargo test --features tower`).
#![cfg(feature = "tower")]

mod support;

#[path = "../examples/axum/router.rs"]
mod router;
#[path = "../examples/axum/site.rs"]
mod site;

use site::Site;
use support::ws::{frame, open, read_frame};
use support::Client;
use uring_serve::tower::TowerApp;
use uring_serve::{Cores, Server, ServerHandle};

fn start() -> ServerHandle {
    Server::builder()
        .cores(Cores::Count(1))
        .bind("127.0.0.1:0")
        .serve(|core| Site::new(router::router(core)))
        .expect("server starts")
}

#[test]
fn a_route_answers_plain_text() {
    let server = start();
    let r = Client::connect(server.local_addr()).get("/plaintext");
    assert_eq!((r.status, r.text()), (200, "Hello, World!".to_string()));
}

#[test]
fn a_path_parameter_reaches_the_handler() {
    let server = start();
    let r = Client::connect(server.local_addr()).get("/users/42");
    assert_eq!((r.status, r.text()), (200, "user 42\n".to_string()));
}

#[test]
fn json_goes_in_and_comes_out() {
    let server = start();
    let body = r#"{"name":"ring"}"#;
    let r = Client::connect(server.local_addr()).roundtrip(&format!(
        "POST /greet HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ));
    assert_eq!(r.status, 200);
    let reply: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
    assert_eq!(reply["message"], "hello, ring");
}

#[test]
fn an_upload_streams_into_the_router() {
    let server = start();
    let mut c = Client::connect(server.local_addr());
    c.send(b"POST /upload HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
    for _ in 0..8 {
        c.send(b"10000\r\n");
        c.send(&[b'u'; 0x10000]);
        c.send(b"\r\n");
    }
    c.send(b"0\r\n\r\n");
    let r = c.read_response();
    assert_eq!((r.status, r.text()), (200, format!("{} bytes\n", 8 * 0x10000)));
}

#[test]
fn per_core_state_counts_across_requests() {
    let server = start();
    let mut c = Client::connect(server.local_addr());
    assert_eq!(c.get("/hits").text(), format!("core {}: 1 hits\n", server.cores()[0]));
    assert_eq!(c.get("/hits").text(), format!("core {}: 2 hits\n", server.cores()[0]));
}

#[test]
fn the_middleware_compresses_when_asked() {
    let server = start();
    let r = Client::connect(server.local_addr())
        .roundtrip("GET /lorem HTTP/1.1\r\nHost: t\r\nAccept-Encoding: gzip\r\n\r\n");
    assert_eq!((r.status, r.header("content-encoding")), (200, Some("gzip")));
    assert!(r.body.len() < 27 * 200 / 4, "compressed to {} bytes", r.body.len());
}

/// A handler that needs tokio's reactor finds none on a core: its request
/// gets a 500, and the core goes on serving.
#[test]
fn a_handler_that_needs_tokio_gets_500_and_the_core_goes_on() {
    let server = Server::builder()
        .cores(Cores::Count(1))
        .bind("127.0.0.1:0")
        .serve(|core| {
            let tokio_sleep = axum::routing::get(|| async {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                "slept"
            });
            TowerApp::new(router::router(core).route("/tokio", tokio_sleep))
        })
        .expect("server starts");
    let r = Client::connect(server.local_addr()).get("/tokio");
    assert_eq!(r.status, 500);
    let r = Client::connect(server.local_addr()).get("/plaintext");
    assert_eq!(r.status, 200);
    let metrics = &server.metrics()[0];
    assert_eq!((metrics.app_panics, metrics.core_restarts), (1, 0));
}

/// The router the benchmarks use (`--bare`): the two routes, JSON as JSON.
#[test]
fn the_bare_router_answers_the_benchmark_routes() {
    let server = Server::builder()
        .cores(Cores::Count(1))
        .bind("127.0.0.1:0")
        .serve(|_| TowerApp::new(router::bare()))
        .expect("server starts");
    let mut c = Client::connect(server.local_addr());
    assert_eq!(c.get("/plaintext").text(), "Hello, World!");
    let r = c.get("/json");
    assert_eq!((r.status, r.header("content-type")), (200, Some("application/json")));
    assert_eq!(r.text(), r#"{"message":"Hello, World!"}"#);
}

#[test]
fn the_peer_address_reaches_the_router_as_an_extension() {
    let server = start();
    let r = Client::connect(server.local_addr()).get("/peer");
    assert_eq!((r.status, r.text()), (200, "127.0.0.1\n".to_string()));
}

#[test]
fn the_websocket_path_is_answered_natively_beside_the_router() {
    let server = start();
    let mut socket = open(&server, "/ws");
    socket.send(&frame(0x1, b"through the ring"));
    assert_eq!(read_frame(&mut socket), (0x1, b"through the ring".to_vec()));
    let r = Client::connect(server.local_addr()).get("/plaintext");
    assert_eq!((r.status, r.text()), (200, "Hello, World!".to_string()));
}

/// A server whose router also answers `/streamed` with a body streamed in
/// two pieces, with the `Content-Length` header `length` if given.
fn start_with_stream(length: Option<&'static str>) -> ServerHandle {
    Server::builder()
        .cores(Cores::Count(1))
        .bind("127.0.0.1:0")
        .serve(move |core| {
            let streamed = axum::routing::get(move || async move {
                let pieces = ["stream", "ed\n"].map(|p| Ok::<_, std::io::Error>(p.as_bytes()));
                let body = axum::body::Body::from_stream(futures_lite::stream::iter(pieces));
                let mut response = axum::response::Response::new(body);
                if let Some(length) = length {
                    response.headers_mut().insert("content-length", length.parse().unwrap());
                }
                response
            });
            TowerApp::new(router::router(core).route("/streamed", streamed))
        })
        .expect("server starts")
}

#[test]
fn a_streamed_body_with_a_content_length_header_is_sent_with_that_length() {
    let server = start_with_stream(Some("9"));
    let r = Client::connect(server.local_addr()).get("/streamed");
    assert_eq!((r.header("content-length"), r.header("transfer-encoding")), (Some("9"), None));
    assert_eq!(r.text(), "streamed\n");
}

#[test]
fn a_streamed_body_of_unknown_length_is_chunked() {
    let server = start_with_stream(None);
    let r = Client::connect(server.local_addr()).get("/streamed");
    assert_eq!(
        (r.header("content-length"), r.header("transfer-encoding")),
        (None, Some("chunked"))
    );
    assert_eq!(r.text(), "streamed\n");
}
