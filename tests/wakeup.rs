//! An idle core answers at once: a request that reaches a sleeping core
//! wakes it, on every socket-ring set-up the kernel accepts.
//!
//! Every answer of a core that wakes only for some timer is right, just
//! late (16 ms a request where that was seen), so these tests time round
//! trips. The bound is 2 ms for a median where a working wake-up takes tens
//! of microseconds: a 10x margin over the bug's cost and far more over the
//! normal one, so it is a liveness check, not a speed test.

mod support;

use std::time::{Duration, Instant};

use io_uring::IoUring;
use support::Client;
use uring_serve::apps::BenchApp;
use uring_serve::{Cores, RingSetup, Server, ServerHandle, StartError};

/// The slowest median round trip an idle server may take.
const LIVENESS_BOUND: Duration = Duration::from_millis(2);
/// Idle time before each request: the core is asleep when it comes.
const IDLE_GAP: Duration = Duration::from_millis(20);
const REQUESTS: usize = 15;

fn start(setup: RingSetup) -> Result<ServerHandle, StartError> {
    Server::builder()
        .cores(Cores::Count(1))
        .bind("127.0.0.1:0")
        .ring_setup(setup)
        .serve(BenchApp::new)
}

/// The median round trip of sequential requests on one keep-alive
/// connection, each sent after an idle gap.
fn median_round_trip_after_idle_gaps(server: &ServerHandle) -> Duration {
    let mut client = Client::connect(server.local_addr());
    assert_eq!(client.get("/plaintext").status, 200);
    let mut round_trips = Vec::with_capacity(REQUESTS);
    for _ in 0..REQUESTS {
        std::thread::sleep(IDLE_GAP);
        let sent = Instant::now();
        let response = client.get("/plaintext");
        round_trips.push(sent.elapsed());
        assert_eq!(response.status, 200);
        assert_eq!(response.text(), "Hello, World!");
    }
    round_trips.sort_unstable();
    round_trips[REQUESTS / 2]
}

/// Whether this kernel accepts the set-up's flags, asked of the kernel
/// directly (not of the server, whose fallback this checks).
fn kernel_accepts(setup: RingSetup) -> bool {
    let mut builder = IoUring::<io_uring::squeue::Entry>::builder();
    match setup {
        RingSetup::SingleIssuer => {
            builder.setup_coop_taskrun().setup_taskrun_flag().setup_single_issuer();
        }
        RingSetup::Cooperative => {
            builder.setup_coop_taskrun().setup_taskrun_flag();
        }
        _ => {}
    }
    // A ring made on a short-lived thread: a single-issuer ring is tied to
    // the thread that made it.
    std::thread::spawn(move || builder.build(8).is_ok()).join().unwrap()
}

#[test]
fn an_idle_server_answers_each_request_without_waiting_for_a_timer() {
    let server = start(RingSetup::Auto).expect("server starts");
    let median = median_round_trip_after_idle_gaps(&server);
    assert!(median < LIVENESS_BOUND, "median round trip {median:?} after idle gaps");
}

/// Each set-up is forced in turn: the fallbacks are served and timed like
/// the first choice, so none rots untested; one the kernel refuses must be
/// refused with the set-up error, never started some other way.
#[test]
fn every_ring_setup_wakes_an_idle_core_or_is_refused_as_the_kernel_refuses_it() {
    for setup in RingSetup::LADDER {
        if kernel_accepts(setup) {
            let server = start(setup).unwrap_or_else(|e| panic!("{setup}: {e}"));
            let median = median_round_trip_after_idle_gaps(&server);
            assert!(median < LIVENESS_BOUND, "{setup}: median round trip {median:?}");
            continue;
        }
        match start(setup) {
            Err(StartError::Ring { reason, .. }) => {
                assert!(reason.contains(setup.name()), "{setup}: {reason}");
                assert!(reason.contains("the kernel refuses it"), "{setup}: {reason}");
            }
            Err(e) => panic!("{setup}: not the set-up error: {e}"),
            Ok(_) => panic!("{setup}: started although the kernel refuses the set-up"),
        }
    }
    assert!(kernel_accepts(RingSetup::Plain), "the kernel accepts no set-up at all");
}
