//! The per-core blocking pool: off the event loop, bounded, panic-safe.

mod support;

use std::thread;
use std::time::{Duration, Instant};

use support::Client;
use uring_serve::apps::BenchApp;
use uring_serve::{App, Context, Cores, Request, Response, Server, ServerHandle};

fn bench_with_pool(threads: usize, queue: usize) -> ServerHandle {
    Server::builder()
        .cores(Cores::Count(1))
        .bind("127.0.0.1:0")
        .blocking_threads(threads)
        .blocking_queue(queue)
        .serve(BenchApp::new)
        .expect("server starts")
}

#[test]
fn blocking_work_does_not_block_the_core() {
    let server = bench_with_pool(2, 8);
    let addr = server.local_addr();
    let slow = thread::spawn(move || Client::connect(addr).get("/blocking?ms=1000"));
    thread::sleep(Duration::from_millis(100));
    for _ in 0..20 {
        let started = Instant::now();
        assert_eq!(Client::connect(addr).get("/plaintext").status, 200);
        assert!(started.elapsed() < Duration::from_millis(500), "the core waited for the pool");
    }
    let r = slow.join().unwrap();
    assert_eq!((r.status, r.text()), (200, "blocked 1000 ms\n".to_string()));
}

#[test]
fn a_full_blocking_pool_answers_503_with_retry_after() {
    let server = bench_with_pool(1, 1);
    let addr = server.local_addr();
    // One job runs, one waits: the pool is full.
    let busy: Vec<_> = (0..2)
        .map(|_| thread::spawn(move || Client::connect(addr).get("/blocking?ms=800").status))
        .collect();
    thread::sleep(Duration::from_millis(200));
    let mut c = Client::connect(addr);
    let r = c.get("/blocking?ms=1");
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(r.header("connection"), Some("close"));
    assert!(c.is_closed_by_server());
    for b in busy {
        assert_eq!(b.join().unwrap(), 200, "admitted jobs are unaffected");
    }
    assert!(server.metrics()[0].requests_shed >= 1);
    // Once the pool drains, jobs are accepted again.
    assert_eq!(Client::connect(addr).get("/blocking?ms=1").status, 200);
}

/// Panics in one blocking job, then runs another on the same single thread.
struct PanicsOnce;

impl App for PanicsOnce {
    async fn call(&self, req: Request, cx: &Context) -> Response {
        let result = match req.path() {
            "/boom" => cx.blocking(|| -> u32 { panic!("blocking job panic (expected)") }).await,
            _ => cx.blocking(|| 42u32).await,
        };
        match result {
            Ok(n) => Response::text(n.to_string()),
            Err(e) => e.into(),
        }
    }
}

#[test]
fn a_panicking_blocking_job_is_500_and_the_pool_survives() {
    let server = Server::builder()
        .cores(Cores::Count(1))
        .bind("127.0.0.1:0")
        .blocking_threads(1)
        .serve(|_| PanicsOnce)
        .unwrap();
    let mut c = Client::connect(server.local_addr());
    assert_eq!(c.get("/boom").status, 500);
    for _ in 0..3 {
        let r = Client::connect(server.local_addr()).get("/ok");
        assert_eq!((r.status, r.text()), (200, "42".to_string()));
    }
}

#[test]
fn bench_panic_endpoint_is_500_and_the_server_keeps_serving() {
    let server = support::start();
    let mut c = Client::connect(server.local_addr());
    let r = c.get("/panic");
    assert_eq!(r.status, 500);
    assert!(c.is_closed_by_server());
    assert_eq!(Client::connect(server.local_addr()).get("/plaintext").status, 200);
    assert_eq!(server.metrics()[0].app_panics, 1);
}
