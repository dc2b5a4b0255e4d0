//! Persistence rules of RFC 9112 §9.3, over real sockets.

mod support;

use support::Client;

/// RFC 9112 §9.3: HTTP/1.1 defaults to persistent connections.
#[test]
fn http11_connection_serves_many_requests() {
    let server = support::start();
    let mut c = Client::connect(server.local_addr());
    for _ in 0..100 {
        let r = c.get("/plaintext");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("connection"), None);
    }
}

/// RFC 9112 §9.6: a server that receives "close" MUST close after the
/// response, and SHOULD send "close" in it.
#[test]
fn connection_close_from_client_closes_after_response() {
    let server = support::start();
    let mut c = Client::connect(server.local_addr());
    let r = c.roundtrip("GET /plaintext HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("connection"), Some("close"));
    assert!(c.is_closed_by_server());
}

/// RFC 9112 §9.3: an HTTP/1.0 request without keep-alive is not persistent.
#[test]
fn http10_closes_by_default() {
    let server = support::start();
    let mut c = Client::connect(server.local_addr());
    let r = c.roundtrip("GET /plaintext HTTP/1.0\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"Hello, World!");
    assert!(c.is_closed_by_server());
}

/// RFC 9112 §C.2.2: an HTTP/1.0 client asking for keep-alive gets it,
/// announced in the response.
#[test]
fn http10_keep_alive_is_honoured() {
    let server = support::start();
    let mut c = Client::connect(server.local_addr());
    for _ in 0..3 {
        let r = c.roundtrip("GET /json HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("connection"), Some("keep-alive"));
    }
}

/// Requests pipelined after a "Connection: close" request are not answered
/// (RFC 9112 §9.6: the server MUST NOT process further requests).
#[test]
fn nothing_after_connection_close_is_answered() {
    let server = support::start();
    let mut c = Client::connect(server.local_addr());
    c.send(b"GET /plaintext HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\nGET /json HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(c.read_response().body, b"Hello, World!");
    assert!(c.is_closed_by_server());
}

#[test]
fn client_half_close_still_gets_its_response() {
    let server = support::start();
    let mut c = Client::connect(server.local_addr());
    c.send(b"GET /plaintext HTTP/1.1\r\nHost: t\r\n\r\n");
    c.close_write();
    assert_eq!(c.read_response().status, 200);
    assert!(c.is_closed_by_server());
}

/// More requests arriving at once than a core has kernel-picked receive
/// buffers (128): every one is answered, and each connection stays usable.
/// The burst runs several times, so that a rare loss shows.
#[test]
fn a_burst_larger_than_the_receive_buffers_is_answered_in_full() {
    const BURST: usize = 400;
    const ROUNDS: usize = 5;
    let server = support::start();
    for _ in 0..ROUNDS {
        let mut clients: Vec<Client> =
            (0..BURST).map(|_| Client::connect(server.local_addr())).collect();
        for c in &mut clients {
            c.send(b"GET /plaintext HTTP/1.1\r\nHost: t\r\n\r\n");
        }
        for c in &mut clients {
            let r = c.read_response();
            assert_eq!((r.status, r.body.as_slice()), (200, &b"Hello, World!"[..]));
        }
        for c in &mut clients {
            assert_eq!(c.get("/plaintext").status, 200);
        }
    }
}
