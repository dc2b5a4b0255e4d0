//! Streamed bodies of known length (`Response::stream_sized`): sent with
//! `Content-Length`; a stream that ends short or runs long closes the
//! connection rather than send a wrong body.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use futures_lite::stream;
use support::Client;
use uring_serve::{App, BoxError, Context, Cores, Request, Response, Server, ServerHandle};

/// Streams `chunks` for a body that claims `len` bytes.
struct Sized;

impl App for Sized {
    async fn call(&self, req: Request, _cx: &Context) -> Response {
        let (len, chunks): (u64, Vec<&'static [u8]>) = match req.path() {
            "/exact" => (10, vec![b"0123", b"456789"]),
            "/short" => (10, vec![b"01234"]),
            "/long" => (3, vec![b"01234"]),
            _ => return Response::new(404),
        };
        let items = chunks.into_iter().map(|c| Ok::<_, BoxError>(c.to_vec()));
        Response::new(200).stream_sized(len, stream::iter(items))
    }
}

fn server() -> ServerHandle {
    Server::builder()
        .cores(Cores::Count(1))
        .bind("127.0.0.1:0")
        .serve(|_| Sized)
        .expect("server starts")
}

/// Everything the server sends for one request, until it closes.
fn until_close(server: &ServerHandle, target: &str) -> String {
    let mut s = TcpStream::connect(server.local_addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {target} HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8(out).unwrap()
}

#[test]
fn a_sized_stream_is_sent_with_its_length_and_the_connection_stays_open() {
    let server = server();
    let mut c = Client::connect(server.local_addr());
    let r = c.get("/exact");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("10"));
    assert_eq!(r.header("transfer-encoding"), None);
    assert_eq!(r.text(), "0123456789");
    assert_eq!(c.get("/exact").text(), "0123456789", "the connection is reused");
    c.send(b"HEAD /exact HTTP/1.1\r\nHost: t\r\n\r\n");
    let head = c.read_response_to(true);
    assert_eq!((head.header("content-length"), head.body.len()), (Some("10"), 0));
}

#[test]
fn a_sized_stream_that_ends_short_closes_the_connection() {
    let server = server();
    let raw = until_close(&server, "/short");
    let (head, body) = raw.split_once("\r\n\r\n").expect("a head");
    assert!(head.contains("Content-Length: 10"), "{head}");
    assert_eq!(body, "01234", "what was produced, then the close");
}

#[test]
fn a_sized_stream_that_runs_long_closes_before_the_excess() {
    let server = server();
    let raw = until_close(&server, "/long");
    let (head, body) = raw.split_once("\r\n\r\n").expect("a head");
    assert!(head.contains("Content-Length: 3"), "{head}");
    assert!(body.is_empty(), "no byte past the length is sent: {body:?}");
}
