//! Writing what a connection owes: the pending responses (beside a queued
//! read, so both reach the kernel in one submission), a large body, and
//! the lingering close; each write under the write-stall limit.

use std::future::Future;
use std::io;
use std::time::{Duration, Instant};

use super::error::ConnError;
use super::read_buf::MIN_READ_BYTES;
use super::watch::Stall;
use crate::io::ring::OpBuf;
use crate::io::transport::{PendingRead, Transport, READ_BUF_BYTES};

/// How long a lingering close waits for the client to close its side.
pub(super) const LINGER: Duration = Duration::from_secs(1);

/// Pending responses beyond this are written before more are produced.
pub(super) const WRITE_HIGH_WATER: usize = 64 << 10;

/// Writes the pending responses while `read`, already queued, waits: both
/// reach the kernel in one submission. A failed write cancels the read.
pub(super) async fn write_pending_beside<'a, T: Transport>(
    read: T::Read<'a>,
    io: &T,
    wbuf: &mut Vec<u8>,
    stall: Stall<'_>,
) -> Result<T::Read<'a>, ConnError> {
    match write_pending(io, wbuf, stall).await {
        Ok(()) => Ok(read),
        Err(e) => {
            let _ = read.cancel().await;
            Err(e)
        }
    }
}

/// Writes and empties `wbuf` (keeping its memory unless a large response
/// made it grow).
pub(super) async fn write_pending<T: Transport>(
    io: &T,
    wbuf: &mut Vec<u8>,
    stall: Stall<'_>,
) -> Result<(), ConnError> {
    if wbuf.is_empty() {
        return Ok(());
    }
    let (result, back) = write_all(io, OpBuf::Vec(std::mem::take(wbuf)), Some(stall)).await;
    if let OpBuf::Vec(mut back) = back {
        back.clear();
        if back.capacity() <= WRITE_HIGH_WATER * 2 {
            *wbuf = back;
        }
    }
    result
}

/// Writes all of `data`, and gives it back. With a `stall` limit the write
/// fails with [`ConnError::WriteStalled`] when the client takes nothing for
/// that long (a slow but reading client is never cut off); without one,
/// the caller bounds the whole write.
pub(crate) async fn write_all<T: Transport>(
    io: &T,
    mut data: OpBuf,
    stall: Option<Stall<'_>>,
) -> (Result<(), ConnError>, OpBuf) {
    let len = data.len();
    let mut at = 0;
    while at < len {
        if let Some(stall) = stall {
            stall.arm();
        }
        let (result, back) = io.write(data, at).await;
        if let Some(Err(stalled)) = stall.map(|stall| stall.disarm()) {
            return (Err(stalled), back);
        }
        data = back;
        match result {
            Ok(0) => return (Err(io::Error::from(io::ErrorKind::WriteZero).into()), data),
            Ok(n) => at += n,
            Err(e) => return (Err(e.into()), data),
        }
    }
    (Ok(()), data)
}

/// Runs `future` until `deadline`; `None` if the deadline came first. The
/// timer is only armed if the future does not complete on its first poll.
pub(crate) async fn with_deadline<T>(
    future: impl Future<Output = T>,
    deadline: Instant,
) -> Option<T> {
    let timer = async {
        glommio::timer::sleep(deadline.saturating_duration_since(Instant::now())).await;
        None
    };
    futures_lite::future::or(async { Some(future.await) }, timer).await
}

/// Shuts the sending half, then reads and drops what the client still
/// sends until `deadline`, so the kernel does not reset the connection
/// (and destroy the response in flight) when it is closed. Bounded by time
/// only: a client still uploading a refused body may send more than any
/// byte budget.
pub(crate) async fn linger<T: Transport>(io: &T, scratch: &mut Vec<u8>, deadline: Instant) {
    if io.shutdown_write().is_err() {
        return;
    }
    if scratch.len() < MIN_READ_BYTES {
        scratch.resize(READ_BUF_BYTES, 0);
    }
    let drain = async {
        while let Ok(1..) = io.read(scratch, 0).await {
            glommio::yield_if_needed().await;
        }
    };
    with_deadline(drain, deadline).await;
}
