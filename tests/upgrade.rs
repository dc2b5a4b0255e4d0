//! Connection upgrades (`Response::upgrade`, RFC 9110 §7.8): after the
//! `101 Switching Protocols` the handler owns the connection's bytes; it is
//! still one of the server's connections (limits, drain), and the request's
//! concurrency permit is let go.

mod support;

use std::time::{Duration, Instant};

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use support::Client;
use uring_serve::{App, Context, Cores, Request, Response, Server, ServerHandle};

/// Upgrades `GET /echo` asking for the `echo` protocol: every byte comes
/// back until the client closes. Everything else: `GET /slow` sleeps.
struct EchoProtocol;

impl App for EchoProtocol {
    async fn call(&self, req: Request, _cx: &Context) -> Response {
        if req.path() == "/slow" {
            uring_serve::sleep(Duration::from_millis(300)).await;
            return Response::text("slow\n");
        }
        if req.header("upgrade") != Some(b"echo") {
            return Response::plain(426, "upgrade: echo\n").header("upgrade", "echo");
        }
        Response::upgrade("echo", |mut io| async move {
            let mut buf = [0u8; 1024];
            while let Ok(n @ 1..) = io.read(&mut buf).await {
                if io.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        })
    }
}

fn start(configure: impl FnOnce(uring_serve::Builder) -> uring_serve::Builder) -> ServerHandle {
    let builder = Server::builder().cores(Cores::Count(1)).bind("127.0.0.1:0");
    configure(builder).serve(|_| EchoProtocol).expect("server starts")
}

const UPGRADE: &[u8] =
    b"GET /echo HTTP/1.1\r\nHost: t\r\nUpgrade: echo\r\nConnection: upgrade\r\n\r\n";

fn upgraded(server: &ServerHandle, early: &[u8]) -> Client {
    let mut c = Client::connect(server.local_addr());
    c.send(&[UPGRADE, early].concat());
    let r = c.read_response();
    assert_eq!(r.status, 101);
    assert_eq!(r.header("upgrade"), Some("echo"));
    assert_eq!(r.header("connection"), Some("upgrade"));
    c
}

#[test]
fn an_upgraded_connection_carries_bytes_both_ways() {
    let server = start(|b| b);
    let mut c = upgraded(&server, b"");
    for message in [&b"ping"[..], b"and more", &[0u8, 255, 10, 13]] {
        c.send(message);
        assert_eq!(c.read_bytes(message.len()), message);
    }
}

#[test]
fn bytes_sent_with_the_upgrade_request_are_handed_over() {
    let server = start(|b| b);
    let mut c = upgraded(&server, b"early");
    assert_eq!(c.read_bytes(5), b"early");
}

#[test]
fn a_request_without_the_protocol_is_not_upgraded() {
    let server = start(|b| b);
    let mut c = Client::connect(server.local_addr());
    let r = c.get("/echo");
    assert_eq!((r.status, r.header("upgrade")), (426, Some("echo")));
}

#[test]
fn an_upgraded_connection_lets_go_of_its_concurrency_permit() {
    let server = start(|b| b.limit_concurrency(Some(1)));
    let mut open = upgraded(&server, b"");
    let mut other = Client::connect(server.local_addr());
    assert_eq!(other.get("/slow").status, 200, "the upgraded connection holds no permit");
    open.send(b"still");
    assert_eq!(open.read_bytes(5), b"still");
}

#[test]
fn the_keep_alive_timeout_does_not_apply_after_an_upgrade() {
    let server = start(|b| b.timeout_keep_alive(Duration::from_millis(100)));
    let mut c = upgraded(&server, b"");
    std::thread::sleep(Duration::from_millis(500));
    c.send(b"awake");
    assert_eq!(c.read_bytes(5), b"awake");
}

#[test]
fn a_graceful_shutdown_cuts_an_upgraded_connection_at_its_deadline() {
    let server = start(|b| b.timeout_graceful_shutdown(Duration::from_millis(300)));
    let mut c = upgraded(&server, b"");
    let started = Instant::now();
    server.shutdown();
    assert!(c.is_closed_by_server(), "the upgraded connection was not cut");
    assert!(started.elapsed() < Duration::from_secs(5), "cut after {:?}", started.elapsed());
    server.join().expect("the server stops");
}

/// `--timeout-write` still applies: a peer that stops reading what the
/// handler writes is cut.
#[test]
fn an_upgraded_peer_that_stops_reading_is_cut_by_the_write_timeout() {
    let server = start(|b| b.timeout_write(Duration::from_millis(300)));
    let c = upgraded(&server, b"");
    let mut stream = c.stream.try_clone().unwrap();
    let started = Instant::now();
    // Write and never read: the echo's writes back stall, then the server
    // cuts the connection and this write fails.
    let writer = std::thread::spawn(move || {
        let chunk = vec![b'w'; 1 << 20];
        for _ in 0..256 {
            if std::io::Write::write_all(&mut stream, &chunk).is_err() {
                return true;
            }
        }
        false
    });
    assert!(writer.join().unwrap(), "never cut");
    assert!(started.elapsed() < Duration::from_secs(10), "cut after {:?}", started.elapsed());
}
