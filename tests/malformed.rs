//! Malformed requests: a 4xx/5xx answer, then the connection is closed and
//! nothing after the error is taken as a request.

mod support;

use support::Client;

fn refused(raw: &[u8]) -> u16 {
    let server = support::start();
    let mut c = Client::connect(server.local_addr());
    c.send(raw);
    let r = c.read_response();
    assert_eq!(r.header("connection"), Some("close"), "refusals close the connection");
    assert!(c.is_closed_by_server(), "connection still open after {}", r.status);
    r.status
}

#[test]
fn garbage_is_400() {
    assert_eq!(refused(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n"), 400);
    assert_eq!(refused(b"GET\r\n\r\n"), 400);
}

/// RFC 9112 §3.2: HTTP/1.1 without Host is a 400.
#[test]
fn http11_without_host_is_400() {
    assert_eq!(refused(b"GET /plaintext HTTP/1.1\r\n\r\n"), 400);
}

/// RFC 9112 §6.1/§11.2: Content-Length with Transfer-Encoding is refused;
/// the smuggled request behind it is never answered.
#[test]
fn content_length_and_transfer_encoding_is_400_and_nothing_is_smuggled() {
    let raw = b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n\
                0\r\n\r\nGET /json HTTP/1.1\r\nHost: t\r\n\r\n";
    assert_eq!(refused(raw), 400);
}

#[test]
fn invalid_chunk_size_is_400() {
    assert_eq!(
        refused(b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
        400
    );
}

/// RFC 9112 §5.1: no whitespace is allowed between a field name and colon.
#[test]
fn space_before_colon_is_400() {
    assert_eq!(refused(b"GET / HTTP/1.1\r\nHost : t\r\n\r\n"), 400);
}

#[test]
fn unsupported_version_is_505() {
    assert_eq!(refused(b"GET / HTTP/2.0\r\nHost: t\r\n\r\n"), 505);
}

#[test]
fn unknown_transfer_coding_is_501() {
    assert_eq!(
        refused(b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
        501
    );
}

#[test]
fn a_malformed_request_after_good_ones_answers_them_first() {
    let server = support::start();
    let mut c = Client::connect(server.local_addr());
    c.send(b"GET /plaintext HTTP/1.1\r\nHost: t\r\n\r\nBAD REQUEST\r\n\r\n");
    assert_eq!(c.read_response().status, 200);
    assert_eq!(c.read_response().status, 400);
    assert!(c.is_closed_by_server());
}

/// RFC 9110 §9.3.2: a response to HEAD carries no content, refusals too.
#[test]
fn a_refused_head_request_gets_no_body() {
    let server = support::start();
    let mut c = Client::connect(server.local_addr());
    c.send(b"HEAD /plaintext HTTP/1.1\r\n\r\n");
    let r = c.read_response_to(true);
    assert_eq!(r.status, 400);
    assert!(c.is_closed_by_server(), "bytes after the head of a HEAD response");
}
