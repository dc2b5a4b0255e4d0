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

/// Threads named `uring-serve-core-<id>`, one per core, each pinned to it.
#[test]
fn each_core_runs_on_its_own_named_pinned_thread() {
    let server = support::start_on(Cores::All);
    let mut pinned = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let dir = task.unwrap().path();
        let name = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        let status = std::fs::read_to_string(dir.join("status")).unwrap_or_default();
        let allowed = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .map(|v| v.trim().to_string())
            .unwrap_or_default();
        // The kernel cuts thread names to 15 bytes: "uring-serve-cor".
        if name.trim() == "uring-serve-cor" {
            pinned.push(allowed);
        }
    }
    let expected: Vec<String> = server.cores().iter().map(|c| c.to_string()).collect();
    // Every core has a thread pinned to it alone (the blocking-pool threads
    // a core starts inherit its name but float over all allowed cores).
    for core in &expected {
        assert!(pinned.contains(core), "no thread pinned to core {core}: {pinned:?}");
    }
}

/// `--host ::1`: IPv6 works like IPv4.
#[test]
fn ipv6_addresses_are_served() {
    let server = uring_serve::Server::builder()
        .cores(Cores::Count(1))
        .bind("[::1]:0")
        .serve(uring_serve::apps::BenchApp::new)
        .expect("IPv6 loopback");
    assert!(server.local_addr().is_ipv6());
    assert_eq!(Client::connect(server.local_addr()).get("/plaintext").status, 200);
}
