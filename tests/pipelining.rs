//! Pipelined requests (RFC 9112 §9.3.2): answered in order, whatever the
//! way the bytes arrive.

mod support;

use support::Client;

const PATHS: [&str; 3] = ["/plaintext", "/json", "/nope"];

fn pipeline(n: usize) -> Vec<u8> {
    (0..n)
        .flat_map(|i| format!("GET {} HTTP/1.1\r\nHost: t\r\n\r\n", PATHS[i % 3]).into_bytes())
        .collect()
}

fn assert_in_order(c: &mut Client, n: usize) {
    for i in 0..n {
        let r = c.read_response();
        match PATHS[i % 3] {
            "/plaintext" => assert_eq!(r.body, b"Hello, World!", "response {i}"),
            "/json" => assert_eq!(r.body, br#"{"message":"Hello, World!"}"#, "response {i}"),
            _ => assert_eq!(r.status, 404, "response {i}"),
        }
    }
}

#[test]
fn sixteen_pipelined_requests_in_one_write_are_answered_in_order() {
    let server = support::start();
    let mut c = Client::connect(server.local_addr());
    c.send(&pipeline(16));
    assert_in_order(&mut c, 16);
}

#[test]
fn hundred_pipelined_requests_in_one_write_are_answered_in_order() {
    let server = support::start();
    let mut c = Client::connect(server.local_addr());
    c.send(&pipeline(100));
    assert_in_order(&mut c, 100);
}

#[test]
fn pipelined_requests_written_byte_by_byte_are_answered_in_order() {
    let server = support::start();
    let mut c = Client::connect(server.local_addr());
    for byte in pipeline(16) {
        c.send(&[byte]);
    }
    assert_in_order(&mut c, 16);
}

#[test]
fn pipelined_posts_with_bodies_are_answered_in_order() {
    let server = support::start();
    let mut c = Client::connect(server.local_addr());
    let mut raw = Vec::new();
    for i in 0..20 {
        let body = format!("body number {i}");
        raw.extend(
            format!(
                "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .bytes(),
        );
    }
    c.send(&raw);
    for i in 0..20 {
        assert_eq!(c.read_response().text(), format!("body number {i}"));
    }
}
