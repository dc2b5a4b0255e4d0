//! Fault isolation: clients that vanish mid-request leak nothing.

mod support;

use std::io::Write;
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use socket2::SockRef;
use support::Client;

#[test]
fn a_thousand_connections_reset_mid_request_leak_nothing() {
    let server = support::start();
    let addr = server.local_addr();
    for i in 0..1000 {
        let mut s = TcpStream::connect(addr).unwrap();
        let partial: &[u8] = match i % 3 {
            0 => b"GET /plaintext HTTP/1.1\r\nHo",
            1 => b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nabc",
            _ => b"GET /sleep?ms=200 HTTP/1.1\r\nHost: t\r\n\r\n",
        };
        s.write_all(partial).unwrap();
        // SO_LINGER 0: close sends RST instead of FIN.
        SockRef::from(&s).set_linger(Some(Duration::ZERO)).unwrap();
        drop(s);
    }
    assert_eq!(Client::connect(addr).get("/plaintext").status, 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut m = server.metrics()[0];
    while (m.connections_open, m.requests_in_flight) != (0, 0) && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
        m = server.metrics()[0];
    }
    assert_eq!((m.connections_open, m.requests_in_flight), (0, 0), "{m:?}");
    assert!(m.connections_accepted >= 1001);
}
