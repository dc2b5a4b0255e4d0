//! The `/plaintext` path allocates nothing per request once a connection
//! is warm: a counting global allocator counts every allocation the server
//! makes on its request path (connection workers and socket-ring turns, see
//! `uring_serve::probe`) over a few thousand keep-alive requests.

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use support::Client;

struct Counting;

static REQUEST_PATH_ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

fn count() {
    if uring_serve::probe::in_request_path() {
        REQUEST_PATH_ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        System.alloc_zeroed(layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        System.realloc(ptr, layout, new_size)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const WARM_UP: usize = 200;
const REQUESTS: usize = 4000;
const PLAINTEXT: &str = "GET /plaintext HTTP/1.1\r\nHost: bench\r\nAccept: text/plain\r\n\r\n";

/// The counter is process-wide: tests that read it run one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Allocations on the request path while `run` makes its requests.
fn allocations_during(run: impl FnOnce()) -> u64 {
    let before = REQUEST_PATH_ALLOCATIONS.load(Ordering::SeqCst);
    run();
    REQUEST_PATH_ALLOCATIONS.load(Ordering::SeqCst) - before
}

#[test]
fn keep_alive_plaintext_requests_allocate_nothing() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let server = support::start();
    let mut c = Client::connect(server.local_addr());
    for _ in 0..WARM_UP {
        assert_eq!(c.roundtrip(PLAINTEXT).status, 200);
    }
    let allocations = allocations_during(|| {
        for _ in 0..REQUESTS {
            let r = c.roundtrip(PLAINTEXT);
            assert_eq!((r.status, r.body.as_slice()), (200, &b"Hello, World!"[..]));
        }
    });
    assert_eq!(allocations, 0, "allocations over {REQUESTS} keep-alive requests");
}

#[test]
fn pipelined_plaintext_requests_allocate_nothing() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let server = support::start();
    let mut c = Client::connect(server.local_addr());
    let batch = PLAINTEXT.repeat(16);
    let mut run_batches = |batches: usize| {
        for _ in 0..batches {
            c.send(batch.as_bytes());
            for _ in 0..16 {
                assert_eq!(c.read_response().status, 200);
            }
        }
    };
    run_batches(WARM_UP / 16);
    let allocations = allocations_during(|| run_batches(REQUESTS / 16));
    assert_eq!(allocations, 0, "allocations over {REQUESTS} pipelined requests");
}

/// The counter sees the request path: a request body is a fresh vector
/// handed to the application, so an echo allocates.
#[test]
fn request_path_allocations_are_counted() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let server = support::start();
    let mut c = Client::connect(server.local_addr());
    let echo = "POST /echo HTTP/1.1\r\nHost: bench\r\nContent-Length: 5\r\n\r\nhello";
    let allocations = allocations_during(|| {
        for _ in 0..10 {
            assert_eq!(c.roundtrip(echo).body, b"hello");
        }
    });
    assert!(allocations >= 10, "an echo allocates its body: counted {allocations}");
}
