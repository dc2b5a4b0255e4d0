//! Serving on a Unix socket (`--uds`): one socket every core accepts from.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use uring_serve::apps::BenchApp;
use uring_serve::{Cores, Endpoint, Server, ServerHandle};

fn socket_path(name: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("uring-serve-{name}-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

fn serve_on(path: &Path, cores: Cores) -> ServerHandle {
    Server::builder().cores(cores).unix_socket(path).serve(BenchApp::new).expect("server starts")
}

/// One request on a new connection to the socket; the whole response.
fn get(path: &Path, target: &str) -> String {
    let mut s = UnixStream::connect(path).expect("connect to the socket");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn requests_on_a_unix_socket_are_served_by_every_core() {
    let path = socket_path("all");
    let server = serve_on(&path, Cores::All);
    assert_eq!(server.endpoint(), &Endpoint::Unix(path.clone()));
    for _ in 0..20 {
        let response = get(&path, "/plaintext");
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
        assert!(response.ends_with("\r\n\r\nHello, World!"), "{response}");
    }
    let served: u64 = server.metrics().iter().map(|m| m.requests).sum();
    assert_eq!(served, 20);
    server.shutdown();
    server.join().unwrap();
    assert!(!path.exists(), "the socket file is removed at the stop");
}

#[test]
fn a_socket_file_left_by_a_dead_server_is_replaced() {
    let path = socket_path("stale");
    drop(UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let server = serve_on(&path, Cores::Count(1));
    assert!(get(&path, "/json").contains("Hello, World!"));
    drop(server);
}

#[test]
fn a_socket_another_server_listens_on_is_refused() {
    let path = socket_path("live");
    let _other = UnixListener::bind(&path).unwrap();
    let error = Server::builder()
        .cores(Cores::Count(1))
        .unix_socket(path.clone())
        .serve(BenchApp::new)
        .expect_err("the socket is in use");
    let line = error.to_string();
    assert!(line.starts_with("--uds ") && line.ends_with("another server listens on it"), "{line}");
    assert!(path.exists(), "the other server's socket is left alone");
}

#[test]
fn a_stopping_server_leaves_a_socket_that_took_its_path() {
    let path = socket_path("taken");
    let server = serve_on(&path, Cores::Count(1));
    // A new server took the path over (as in a restart).
    std::fs::remove_file(&path).unwrap();
    let _successor = UnixListener::bind(&path).unwrap();
    server.shutdown();
    server.join().unwrap();
    assert!(path.exists(), "the successor's socket file was removed");
    let _ = std::fs::remove_file(&path);
}
