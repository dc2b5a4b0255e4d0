//! The built-in `bench` app's contract, over real sockets.

mod support;

use support::Client;

#[test]
fn plaintext_says_hello_world() {
    let server = support::start();
    let r = Client::connect(server.local_addr()).get("/plaintext");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"Hello, World!");
    assert_eq!(r.header("content-type"), Some("text/plain"));
    assert_eq!(r.header("content-length"), Some("13"));
    assert_eq!(r.header("server"), Some("uring-serve"));
    assert_eq!(r.header("date").map(str::len), Some(29));
}

#[test]
fn the_date_header_follows_the_clock_on_a_kept_alive_connection() {
    let server = support::start();
    let mut c = Client::connect(server.local_addr());
    let first = c.get("/plaintext").header("date").map(str::to_owned);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let second = c.get("/plaintext").header("date").map(str::to_owned);
    assert!(first.is_some());
    assert_ne!(first, second);
}

#[test]
fn json_serves_the_message() {
    let server = support::start();
    let r = Client::connect(server.local_addr()).get("/json");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, br#"{"message":"Hello, World!"}"#);
    assert_eq!(r.header("content-type"), Some("application/json"));
}

#[test]
fn echo_returns_the_body_byte_for_byte() {
    let server = support::start();
    let body: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
    let mut c = Client::connect(server.local_addr());
    c.send(
        format!("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n", body.len())
            .as_bytes(),
    );
    c.send(&body);
    let r = c.read_response();
    assert_eq!(r.status, 200);
    assert_eq!(r.body, body);
}

#[test]
fn sleep_answers_after_the_timer() {
    let server = support::start();
    let started = std::time::Instant::now();
    let r = Client::connect(server.local_addr()).get("/sleep?ms=50");
    assert_eq!(r.status, 200);
    assert!(started.elapsed() >= std::time::Duration::from_millis(50));
}

#[test]
fn sleep_does_not_block_the_core() {
    let server = support::start();
    let mut sleeper = Client::connect(server.local_addr());
    sleeper.send(b"GET /sleep?ms=2000 HTTP/1.1\r\nHost: t\r\n\r\n");
    // While that request sleeps, the same (single) core answers others.
    for _ in 0..10 {
        let started = std::time::Instant::now();
        assert_eq!(Client::connect(server.local_addr()).get("/plaintext").status, 200);
        assert!(started.elapsed() < std::time::Duration::from_millis(1000));
    }
    assert_eq!(sleeper.read_response().status, 200);
}

#[test]
fn sleep_without_a_valid_ms_is_400() {
    let server = support::start();
    let mut c = Client::connect(server.local_addr());
    assert_eq!(c.get("/sleep").status, 400);
    assert_eq!(c.get("/sleep?ms=abc").status, 400);
    assert_eq!(c.get("/sleep?ms=99999999").status, 400);
}

#[test]
fn unknown_path_is_404() {
    let server = support::start();
    assert_eq!(Client::connect(server.local_addr()).get("/nope").status, 404);
}

/// RFC 9110 §15.5.6: a 405 response MUST carry an Allow header.
#[test]
fn wrong_method_is_405_with_allow() {
    let server = support::start();
    let mut c = Client::connect(server.local_addr());
    let r = c.roundtrip("POST /plaintext HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
    let r = c.get("/echo");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("POST"));
}

/// RFC 9110 §9.3.2: HEAD is GET without the content; the Content-Length is
/// the one GET would have sent.
#[test]
fn head_sends_headers_with_length_and_no_body() {
    let server = support::start();
    let mut c = Client::connect(server.local_addr());
    c.send(b"HEAD /plaintext HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = c.read_response_to(true);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("13"));
    // The next response starts right after the head: no body bytes between.
    assert_eq!(c.get("/json").status, 200);
}
