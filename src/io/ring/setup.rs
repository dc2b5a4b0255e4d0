//! Setting the ring up: the set-up flags tried newest first, and the
//! start-up check that the chosen set-up wakes a sleeping core (see the
//! parent module's "Waking up").

use std::borrow::Cow;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::rc::Rc;
use std::time::Duration;

use glommio::io::BufferedFile;
use io_uring::IoUring;
use tracing::{debug, warn};

use super::{drive, OpBuf, Ring, RING_ENTRIES};
use crate::config::RingSetup;

/// Creates the io_uring for `setup` (never [`RingSetup::Auto`]); the
/// kernel refuses a flag it does not know with `EINVAL`.
pub(super) fn build_uring(setup: RingSetup) -> io::Result<IoUring> {
    let mut builder = IoUring::builder();
    builder.setup_cqsize(RING_ENTRIES * 2);
    match setup {
        RingSetup::SingleIssuer => {
            builder.setup_coop_taskrun().setup_taskrun_flag().setup_single_issuer();
        }
        RingSetup::Cooperative => {
            builder.setup_coop_taskrun().setup_taskrun_flag();
        }
        RingSetup::Plain | RingSetup::Auto => {}
    }
    builder.build(RING_ENTRIES)
}

/// Why a core could not set its socket ring up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RingError {
    /// What was asked for.
    pub(crate) asked: RingSetup,
    /// Why each set-up tried failed, in the order tried.
    pub(crate) tried: Vec<(RingSetup, String)>,
}

impl std::fmt::Display for RingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tried: Vec<String> =
            self.tried.iter().map(|(setup, why)| format!("{setup}: {why}")).collect();
        write!(f, "no socket-ring set-up works ({})", tried.join("; "))?;
        if self.asked != RingSetup::Auto {
            write!(f, "; --ring-setup auto tries every set-up")?;
        }
        Ok(())
    }
}

/// The start-up wake-up check's round trips (see [`check_wake`]).
const WAKE_CHECK_ROUNDS: usize = 7;

/// How long after the check's `send` its timer expires: long enough for
/// the core to be asleep when it does.
const WAKE_CHECK_TIMER: Duration = Duration::from_micros(500);

/// The slowest median round trip the check accepts. A working wake-up adds
/// tens of microseconds to the timer's; a broken one waits for some
/// timer of the executor (16 ms where this was seen).
const WAKE_CHECK_LIMIT: Duration = Duration::from_millis(5);

/// How long one round trip may take before the check gives up on it.
const WAKE_CHECK_DEADLINE: Duration = Duration::from_secs(1);

/// Sets up the core's socket ring for `asked` and starts its driver: the
/// first candidate set-up that the kernel accepts and whose wake-up passes
/// [`check_wake`]. The driver runs until the returned task is dropped
/// (detach it to keep it).
pub(crate) async fn start(asked: RingSetup) -> Result<(Rc<Ring>, glommio::Task<()>), RingError> {
    let mut tried = Vec::new();
    for &setup in asked.candidates() {
        let ring = match Ring::new(setup) {
            Ok(ring) => ring,
            Err(e) => {
                debug!(setup = setup.name(), "socket ring: the kernel refuses this set-up: {e}");
                tried.push((setup, format!("the kernel refuses it ({e})")));
                continue;
            }
        };
        let driver = glommio::spawn_local(drive(ring.clone()));
        match check_wake(&ring).await {
            Ok(()) => return Ok((ring, driver)),
            Err(why) => {
                warn!(setup = setup.name(), "socket ring: {why}");
                tried.push((setup, why));
                drop(driver);
                // An operation of the failed check may still be in flight,
                // its completion never reaped: the ring and the memory it
                // lent the kernel stay (once per failed set-up, at start).
                std::mem::forget(ring);
            }
        }
    }
    Err(RingError { asked, tried })
}

/// Checks that a completion on the ring wakes this core while it sleeps,
/// as serving needs: a few request-like round trips (a `send`, then a
/// read that completes only when a timer expires, a little later)
/// must each take about as long as the same round trip woken through
/// glommio's own ring (the reference, measured first under the same
/// conditions: a slow or instrumented machine slows both), not the period
/// of some executor timer that happens to wake the core. The median is
/// judged against the larger of [`WAKE_CHECK_LIMIT`] and four times the
/// reference, and a failed check is run once more, so that a machine busy
/// at start does not fail a working set-up.
async fn check_wake(ring: &Ring) -> Result<(), String> {
    let reference = wake_round_trips(ring, WokenBy::Executor).await?;
    let limit = WAKE_CHECK_LIMIT.max(reference * 4);
    let mut median = Duration::ZERO;
    for _ in 0..2 {
        median = wake_round_trips(ring, WokenBy::SocketRing).await?;
        if median <= limit {
            return Ok(());
        }
    }
    Err(format!(
        "completions do not wake the core: a round trip took {median:?}, \
         {reference:?} when woken through the executor's own ring"
    ))
}

/// What completes the check's receive.
#[derive(Clone, Copy)]
enum WokenBy {
    /// The socket ring (its eventfd wakes the sleeping executor).
    SocketRing,
    /// glommio's own ring: the reference.
    Executor,
}

/// The median of [`WAKE_CHECK_ROUNDS`] round trips, the receive completed
/// as `woken_by` says. Each is a `send` on a socket pair, then a read of a
/// timer descriptor armed to expire [`WAKE_CHECK_TIMER`] later: an
/// event the kernel delivers while the core sleeps, as a client's next
/// request is (no thread of this process plays the client, so the check
/// also works where threads are serialised, under valgrind say).
async fn wake_round_trips(ring: &Ring, woken_by: WokenBy) -> Result<Duration, String> {
    let fail = |what: &str, e: io::Error| format!("the wake-up check cannot {what}: {e}");
    let (ours, _theirs) =
        std::os::unix::net::UnixStream::pair().map_err(|e| fail("make a socket pair", e))?;
    let timer = crate::io::sys::timerfd().map_err(|e| fail("make a timer", e))?;
    let reader = match woken_by {
        WokenBy::SocketRing => None,
        WokenBy::Executor => {
            let dup = timer.try_clone().map_err(|e| fail("duplicate the timer", e))?;
            // SAFETY: `dup` is a timer descriptor the file takes sole
            // ownership of.
            Some(unsafe { BufferedFile::from_raw_fd(std::os::fd::IntoRawFd::into_raw_fd(dup)) })
        }
    };
    let mut rounds = Vec::with_capacity(WAKE_CHECK_ROUNDS);
    for _ in 0..WAKE_CHECK_ROUNDS {
        let started = std::time::Instant::now();
        crate::io::sys::arm_timerfd(&timer, WAKE_CHECK_TIMER)
            .map_err(|e| fail("arm a timer", e))?;
        let round_trip = async {
            match &reader {
                None => ring_round_trip(ring, ours.as_raw_fd(), timer.as_raw_fd()).await,
                Some(reader) => executor_round_trip(reader, &ours).await,
            }
        };
        let answered = futures_lite::future::or(async { Some(round_trip.await) }, async {
            glommio::timer::sleep(WAKE_CHECK_DEADLINE).await;
            None
        })
        .await;
        match answered {
            Some(Ok(())) => rounds.push(started.elapsed()),
            Some(Err(why)) => return Err(why),
            None => {
                return Err(format!(
                    "completions do not wake the core: no answer within {WAKE_CHECK_DEADLINE:?}"
                ));
            }
        }
    }
    rounds.sort_unstable();
    Ok(rounds[rounds.len() / 2])
}

/// One round trip on the socket ring: a `send`, then the timer's read.
async fn ring_round_trip(ring: &Ring, socket: RawFd, timer: RawFd) -> Result<(), String> {
    let send = ring.send(socket, OpBuf::Bytes(Cow::Borrowed(b"w")), 0);
    let mut expirations = Vec::new();
    let read = ring.read_file(timer, &mut expirations, 8, 0);
    let (sent, read) = futures_lite::future::zip(send, read).await;
    match (sent.0, read) {
        (Ok(1), Ok(8)) => Ok(()),
        (sent, read) => Err(format!(
            "the wake-up check's socket or timer failed (send {sent:?}, read {read:?})"
        )),
    }
}

/// The same round trip woken through glommio's ring: a plain `write`, then
/// the timer's read submitted there.
async fn executor_round_trip(
    reader: &BufferedFile,
    ours: &std::os::unix::net::UnixStream,
) -> Result<(), String> {
    std::io::Write::write_all(&mut &*ours, b"w")
        .map_err(|e| format!("the wake-up check's socket failed: {e}"))?;
    match reader.read_at(0, 8).await {
        Ok(read) if read.len() == 8 => Ok(()),
        Ok(_) => Err("the wake-up check's timer read short".to_string()),
        Err(e) => Err(format!("the wake-up check's timer read failed: {e}")),
    }
}
