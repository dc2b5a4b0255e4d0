//! A server on every allowed core under many concurrent connections.

mod support;

use std::thread;

use support::Client;
use uring_serve::Cores;

#[test]
fn all_cores_serve_200_connections_times_50_requests() {
    let server = support::start_on(Cores::All);
    let addr = server.local_addr();
    let workers: Vec<_> = (0..200)
        .map(|i| {
            thread::spawn(move || {
                let mut c = Client::connect(addr);
                for j in 0..50 {
                    if (i + j) % 2 == 0 {
                        let r = c.get("/plaintext");
                        assert_eq!((r.status, r.body.as_slice()), (200, &b"Hello, World!"[..]));
                    } else {
                        let body = format!("connection {i} request {j}");
                        let r = c.roundtrip(&format!(
                            "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{body}",
                            body.len()
                        ));
                        assert_eq!((r.status, r.text()), (200, body));
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("every response checked");
    }
}

#[test]
fn every_core_is_started_and_reported() {
    let server = support::start_on(Cores::All);
    let allowed = uring_serve::cores::allowed();
    let ids: Vec<usize> = server.cores().iter().map(|c| c.get()).collect();
    assert_eq!(ids, allowed);
}
