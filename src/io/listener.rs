//! Listening sockets: one per core, all bound to the same address with
//! `SO_REUSEPORT`, so the kernel spreads new connections over the cores and
//! each core accepts on its own ring.
//!
//! Or one socket that every core accepts from: a Unix socket (`--uds`) or
//! a socket inherited from a service manager (`--fd`, systemd's
//! `LISTEN_FDS`). One socket is one accept queue: the cores compete for its
//! connections (whichever core is free first takes the next one) instead
//! of the kernel spreading them evenly.
//!
//! Sockets are built here with socket2 (glommio's own `bind` fixes the
//! backlog at 1024 and panics on resolution errors) on the thread that
//! starts the server, so a port in use is reported before any core starts.
//! Each core then adopts a duplicate of its socket's descriptor inside its
//! executor; the originals stay with the server handle, which shuts them
//! down to stop the cores' accept loops.

use std::fmt;
use std::fs;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use socket2::{Domain, Protocol, SockRef, Socket, Type};
use tracing::warn;

/// Where clients reach the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A TCP address (with the port it resolved to).
    Tcp(SocketAddr),
    /// A Unix socket's path.
    Unix(PathBuf),
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Tcp(addr) => write!(f, "http://{addr}"),
            Endpoint::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// One Unix socket at `path`, shared by `count` cores (each gets its own
/// descriptor of it), and the identity of the file it made (see
/// [`remove_unix`]). A socket file nobody listens on any more (connecting
/// is refused) is replaced; any other file, or a socket whose owner cannot
/// be told (connecting fails otherwise), is an error. The socket is made
/// readable and writable by every user (as uvicorn does): restrict access
/// with the directory's permissions.
pub(crate) fn bind_unix(
    path: &Path,
    count: usize,
    backlog: u32,
) -> io::Result<(Vec<Socket>, (u64, u64))> {
    if let Ok(meta) = fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "a file that is not a socket is in the way",
            ));
        }
        match UnixStream::connect(path) {
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => fs::remove_file(path)?,
            Err(e) => {
                return Err(io::Error::new(e.kind(), format!("cannot tell if it is in use: {e}")))
            }
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    "another server listens on it",
                ))
            }
        }
    }
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    socket.set_cloexec(true)?;
    // The file gets its mode from the umask when it is made: a chmod after
    // would follow whatever replaced the path meanwhile.
    let bound = with_umask(0o111, || socket.bind(&socket2::SockAddr::unix(path)?));
    bound?;
    let meta = fs::symlink_metadata(path)?;
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    Ok((shared(socket, count)?, (meta.dev(), meta.ino())))
}

/// Removes the socket file `bind_unix` made, unless something else has
/// taken the path since (another server's socket, in a restart).
pub(crate) fn remove_unix(path: &Path, made: (u64, u64)) {
    let ours = fs::symlink_metadata(path).is_ok_and(|m| (m.dev(), m.ino()) == made);
    if ours {
        let _ = fs::remove_file(path);
    }
}

/// Runs `f` with the process's umask set to `mask`, then restores it.
fn with_umask<T>(mask: libc::mode_t, f: impl FnOnce() -> T) -> T {
    // SAFETY: umask(2) only swaps the process's file-creation mask; it is
    // restored below. It is set while the server starts, before its cores
    // and threads create files.
    let previous = unsafe { libc::umask(mask) };
    let result = f();
    // SAFETY: as above.
    unsafe { libc::umask(previous) };
    result
}

/// The listening socket a service manager handed over as descriptor `fd`,
/// shared by `count` cores; and where it listens.
pub(crate) fn inherit(fd: RawFd, count: usize) -> io::Result<(Vec<Socket>, Endpoint)> {
    // SAFETY: fcntl(F_GETFD) only reads the descriptor's flags; it fails
    // with EBADF, writing nothing, when `fd` is not open.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return Err(io::Error::new(io::ErrorKind::NotFound, "not an open descriptor"));
    }
    // SAFETY: the descriptor is open (checked above) and outlives this
    // borrow, which only reads its socket options.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    let probe = SockRef::from(&borrowed);
    let is_stream = probe.r#type().is_ok_and(|t| t == Type::STREAM);
    if !is_stream || !probe.is_listener().unwrap_or(false) {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a listening socket"));
    }
    // SAFETY: the descriptor is an open listening socket (checked above),
    // handed to this process to listen on; nothing else in it owns it.
    let socket = Socket::from(unsafe { OwnedFd::from_raw_fd(fd) });
    socket.set_cloexec(true)?;
    let local = socket.local_addr()?;
    let endpoint = match (local.as_socket(), local.as_pathname()) {
        (Some(addr), _) => Endpoint::Tcp(addr),
        (None, Some(path)) => Endpoint::Unix(path.to_path_buf()),
        (None, None) => Endpoint::Unix(PathBuf::from("(unnamed)")),
    };
    Ok((shared(socket, count)?, endpoint))
}

/// The descriptor systemd passed for socket activation (`LISTEN_FDS`, with
/// `LISTEN_PID` naming this process): the first, fd 3. A warning says so
/// when there are more.
pub(crate) fn systemd_fd() -> Option<RawFd> {
    const FIRST: RawFd = 3;
    let pid: u32 = std::env::var("LISTEN_PID").ok()?.trim().parse().ok()?;
    let count: u32 = std::env::var("LISTEN_FDS").ok()?.trim().parse().ok()?;
    if pid != std::process::id() || count == 0 {
        return None;
    }
    if count > 1 {
        warn!("systemd passed {count} sockets; serving the first (fd 3) only");
    }
    Some(FIRST)
}

/// `socket` and `count - 1` more descriptors of it.
fn shared(socket: Socket, count: usize) -> io::Result<Vec<Socket>> {
    let mut sockets = Vec::with_capacity(count);
    for _ in 1..count {
        sockets.push(socket.try_clone()?);
    }
    sockets.push(socket);
    Ok(sockets)
}

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
