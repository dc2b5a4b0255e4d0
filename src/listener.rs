//! Listening sockets: one per core, all bound to the same address with
//! `SO_REUSEPORT`, so the kernel spreads new connections over the cores and
//! each core accepts on its own ring.
//!
//! Sockets are built here with socket2 (glommio's own `bind` fixes the
//! backlog at 1024 and panics on resolution errors) on the thread that
//! starts the server, so a port in use is reported before any core starts.
//! Each core then adopts a duplicate of its socket's descriptor inside its
//! executor; the originals stay with the server handle, which shuts them
//! down to stop the cores' accept loops.

use std::fs;
use std::io;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;

use socket2::{Domain, Protocol, Socket, Type};
use tracing::warn;

/// Binds `count` listening sockets to `addr`. Port 0 is resolved once, by
/// the first socket; the others bind the port it got. Returns the sockets
/// and the address they listen on.
pub(crate) fn bind_all(
    addr: SocketAddr,
    count: usize,
    backlog: u32,
    join_existing: bool,
) -> io::Result<(Vec<Socket>, SocketAddr)> {
    warn_if_backlog_clamped(backlog);
    // With SO_REUSEPORT, a second server of the same user could silently
    // join an existing group on this port; a plain bind first makes "port in
    // use" an error instead, unless joining is what the operator asked for
    // (a zero-downtime restart).
    if !join_existing {
        ensure_free(addr)?;
    }
    let first = bind_one(addr, backlog)?;
    let local =
        first.local_addr()?.as_socket().ok_or_else(|| io::Error::other("not an IP socket"))?;
    let mut sockets = vec![first];
    for _ in 1..count {
        sockets.push(bind_one(local, backlog)?);
    }
    Ok((sockets, local))
}

fn ensure_free(addr: SocketAddr) -> io::Result<()> {
    if addr.port() == 0 {
        return Ok(());
    }
    let probe = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    probe.set_reuse_address(true)?;
    probe.bind(&addr.into())
}

fn bind_one(addr: SocketAddr, backlog: u32) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_cloexec(true)?;
    socket.bind(&addr.into())?;
    // `validate` keeps the backlog within i32.
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    Ok(socket)
}

/// Whether the kernel hands the connections waiting in a closing listener's
/// accept queue to another listener of its SO_REUSEPORT group (Linux 5.14+);
/// without it they are reset when a server stops during a restart.
pub(crate) fn note_migrate_req() {
    let value = fs::read_to_string("/proc/sys/net/ipv4/tcp_migrate_req").ok();
    if value.as_deref().map(str::trim) == Some("0") {
        tracing::info!(
            "net.ipv4.tcp_migrate_req = 0: connections still queued when this server stops are \
             reset; set it to 1 for zero-downtime restarts"
        );
    }
}

/// The kernel silently clamps a backlog to `net.core.somaxconn`; say so.
fn warn_if_backlog_clamped(backlog: u32) {
    let max = fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok());
    if let Some(max) = max.filter(|&max| backlog > max) {
        warn!("--backlog {backlog} is clamped by the kernel to net.core.somaxconn = {max}");
    }
}

/// A core's own descriptor of the listening `socket` (a duplicate): its
/// accepts are operations on the core's socket ring.
pub(crate) fn adopt(socket: &Socket) -> io::Result<OwnedFd> {
    let own = socket.try_clone()?;
    // Accepts are tried at once and waited for on the ring when none is
    // pending (the flag is shared by every duplicate).
    own.set_nonblocking(true)?;
    Ok(OwnedFd::from(own))
}
