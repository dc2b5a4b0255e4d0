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

#[test]
fn a_request_line_too_long_is_414() {
    let target = "a".repeat(20 << 10);
    assert_eq!(refused(format!("GET /{target} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes()), 414);
}

#[test]
fn a_head_too_large_is_431() {
    let value = "v".repeat(20 << 10);
    assert_eq!(
        refused(format!("GET / HTTP/1.1\r\nHost: t\r\nX-Big: {value}\r\n\r\n").as_bytes()),
        431
    );
}

#[test]
fn too_many_headers_is_431() {
    let headers: String = (0..101).map(|i| format!("X-{i}: v\r\n")).collect();
    assert_eq!(refused(format!("GET / HTTP/1.1\r\nHost: t\r\n{headers}\r\n").as_bytes()), 431);
}

#[test]
fn a_chunked_body_growing_past_the_limit_is_413() {
    let mut raw =
        b"POST /upload HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    let chunk = vec![b'x'; 1 << 20];
    for _ in 0..9 {
        raw.extend_from_slice(b"100000\r\n");
        raw.extend_from_slice(&chunk);
        raw.extend_from_slice(b"\r\n");
    }
    let server = support::start();
    let mut c = Client::connect(server.local_addr());
    let mut writer = c.stream.try_clone().unwrap();
    std::thread::spawn(move || {
        let _ = std::io::Write::write_all(&mut writer, &raw);
    });
    assert_eq!(c.read_response().status, 413);
}

/// RFC 9112 §6.3: invalid or conflicting Content-Length is unrecoverable.
#[test]
fn bad_content_lengths_are_400() {
    for cl in [
        "Content-Length: 3\r\nContent-Length: 4",
        "Content-Length: -3",
        "Content-Length: 3a",
        "Content-Length: 99999999999999999999999",
    ] {
        assert_eq!(
            refused(format!("POST /echo HTTP/1.1\r\nHost: t\r\n{cl}\r\n\r\nabc").as_bytes()),
            400,
            "{cl}"
        );
    }
}

/// RFC 9112 §5.2 (obs-fold), §5.5 (bare CR, NUL and other controls).
#[test]
fn obs_fold_bare_cr_and_control_bytes_are_400() {
    for header in ["X: a\r\n folded", "X: a\rb", "X: a\0b", "X: a\x01b"] {
        assert_eq!(
            refused(format!("GET / HTTP/1.1\r\nHost: t\r\n{header}\r\n\r\n").as_bytes()),
            400,
            "{header:?}"
        );
    }
}

#[test]
fn chunk_framing_errors_are_400() {
    for body in ["fffffffffffffffff\r\n", "3\r\nabcXX", "3\r\nabc0\r\n\r\n"] {
        let raw =
            format!("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n{body}");
        assert_eq!(refused(raw.as_bytes()), 400, "{body:?}");
    }
}

#[test]
fn http_1_2_is_505() {
    assert_eq!(refused(b"GET / HTTP/1.2\r\nHost: t\r\n\r\n"), 505);
}
