//! Request bodies: Content-Length, chunked, 100-continue, limits.

mod support;

use support::Client;

/// RFC 9112 §7.1: chunk extensions and trailer fields are accepted (and
/// ignored here).
#[test]
fn chunked_echo_with_extensions_and_trailers() {
    let server = support::start();
    let mut c = Client::connect(server.local_addr());
    let r = c.roundtrip(
        "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n\
         5;ext=1\r\nHello\r\n7 ; name=\"quoted\"\r\n, World\r\n1\r\n!\r\n0\r\nX-Trailer: yes\r\nOther: 1\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"Hello, World!");
    // The connection stays usable: the trailer was consumed exactly.
    assert_eq!(c.get("/plaintext").status, 200);
}

#[test]
fn chunked_body_split_byte_by_byte_is_decoded() {
    let server = support::start();
    let mut c = Client::connect(server.local_addr());
    let raw = b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x\r\nde\r\n0\r\n\r\n";
    for b in raw {
        c.send(&[*b]);
    }
    assert_eq!(c.read_response().body, b"abcde");
}

#[test]
fn four_mib_echo_comes_back_intact() {
    let server = support::start();
    let body: Vec<u8> =
        (0..4 << 20).map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    let mut c = Client::connect(server.local_addr());
    c.send(
        format!("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n", body.len())
            .as_bytes(),
    );
    let writer = {
        let mut stream = c.stream.try_clone().unwrap();
        let body = body.clone();
        std::thread::spawn(move || std::io::Write::write_all(&mut stream, &body).unwrap())
    };
    let r = c.read_response();
    writer.join().unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), body.len());
    assert!(r.body == body, "echoed body differs");
}

/// RFC 9110 §10.1.1: a server that receives 100-continue sends 100
/// (Continue) before reading the body, then the final response.
#[test]
fn expect_100_continue_gets_continue_before_the_body() {
    let server = support::start();
    let mut c = Client::connect(server.local_addr());
    c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
    let interim = c.read_response();
    assert_eq!(interim.status, 100);
    c.send(b"hello");
    let r = c.read_response();
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"hello");
}

/// RFC 9110 §15.5.14: a body over the limit is refused with 413, and the
/// server need not wait for it.
#[test]
fn content_length_over_the_limit_is_413_before_the_body() {
    let server = support::start();
    let mut c = Client::connect(server.local_addr());
    let len = support::TEST_MAX_BODY + 1;
    c.send(format!("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {len}\r\nExpect: 100-continue\r\n\r\n").as_bytes());
    let r = c.read_response();
    assert_eq!(r.status, 413);
    assert_eq!(r.header("connection"), Some("close"));
    assert!(c.is_closed_by_server());
}

#[test]
fn get_with_a_body_has_it_consumed() {
    let server = support::start();
    let mut c = Client::connect(server.local_addr());
    let r = c.roundtrip("GET /plaintext HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nGET ");
    assert_eq!(r.status, 200);
    assert_eq!(c.get("/json").status, 200);
}

/// The echo answers as the body arrives: the first part comes back before
/// the client has sent the rest (the body is never held whole).
#[test]
fn a_body_is_echoed_as_it_arrives() {
    let server = support::start();
    let mut c = Client::connect(server.local_addr());
    c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n");
    c.send(b"first");
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    c.stream.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
    while !got.ends_with(b"first") {
        let n = std::io::Read::read(&mut c.stream, &mut buf).expect("the echo of the first part");
        assert!(n > 0, "closed before echoing the first part");
        got.extend_from_slice(&buf[..n]);
    }
    assert!(String::from_utf8_lossy(&got).contains("Content-Length: 10\r\n"));
    c.send(b"later");
    let mut rest = [0u8; 5];
    std::io::Read::read_exact(&mut c.stream, &mut rest).expect("the echo of the rest");
    assert_eq!(&rest, b"later");
    // The body was read to its end: the connection goes on.
    assert_eq!(c.get("/plaintext").status, 200);
}

/// A body can be much larger than anything the server buffers: counted
/// piece by piece as it arrives.
#[test]
fn a_large_chunked_upload_is_read_piece_by_piece() {
    let server = support::start();
    let mut c = Client::connect(server.local_addr());
    c.send(b"POST /upload HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
    let writer = {
        let mut stream = c.stream.try_clone().unwrap();
        std::thread::spawn(move || {
            let chunk = vec![b'u'; 256 << 10];
            for _ in 0..24 {
                std::io::Write::write_all(&mut stream, b"40000\r\n").unwrap();
                std::io::Write::write_all(&mut stream, &chunk).unwrap();
                std::io::Write::write_all(&mut stream, b"\r\n").unwrap();
            }
            std::io::Write::write_all(&mut stream, b"0\r\n\r\n").unwrap();
        })
    };
    let r = c.read_response();
    writer.join().unwrap();
    assert_eq!((r.status, r.text()), (200, format!("{} bytes\n", 24 * (256 << 10))));
}

/// RFC 9110 §10.1.1: a server may answer without reading the body; then it
/// sends no 100 (Continue), and the connection closes after the answer.
#[test]
fn a_body_the_handler_does_not_read_gets_no_continue_and_closes() {
    let server = support::start();
    let mut c = Client::connect(server.local_addr());
    c.send(
        b"POST /plaintext HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
    );
    let r = c.read_response();
    assert_eq!(r.status, 405, "answered without the body, no 100 first");
    assert_eq!(r.header("connection"), Some("close"));
    assert!(c.is_closed_by_server());
}

/// A handler that reads the body whole sends its 100 (Continue) at the
/// first read.
#[test]
fn an_upload_held_back_with_expect_continue_gets_100_at_the_first_read() {
    let server = support::start();
    let mut c = Client::connect(server.local_addr());
    c.send(
        b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
    );
    assert_eq!(c.read_response().status, 100);
    c.send(b"hello");
    let r = c.read_response();
    assert_eq!((r.status, r.text()), (200, "5 bytes\n".to_string()));
}
