//! System calls on sockets that are not ring operations: accepting,
//! shutting a side, a send with `MSG_MORE` and the non-blocking switch.

/// Accepts a pending connection on the (non-blocking) listening socket:
/// `WouldBlock` when none is waiting. The new socket is close-on-exec.
pub(crate) fn accept(listener: &std::os::fd::OwnedFd) -> std::io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::{AsRawFd, FromRawFd};
    // SAFETY: accept4(2) with null address pointers writes no memory.
    let fd = unsafe {
        libc::accept4(
            listener.as_raw_fd(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            libc::SOCK_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a successful accept4 returns a new descriptor nothing else owns.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// Ends the reading side of an open socket: a read waiting on it returns
/// end-of-stream once the bytes already received are taken. Errors are
/// ignored (the peer may be gone already).
pub(crate) fn shutdown_read(fd: std::os::fd::RawFd) {
    // SAFETY: shutdown(2) only acts on the descriptor; the caller guarantees
    // it is an open socket it owns.
    unsafe { libc::shutdown(fd, libc::SHUT_RD) };
}

/// Ends both sides of an open socket: the peer sees the connection end
/// even if the socket itself is not closed yet.
pub(crate) fn shutdown_both(fd: std::os::fd::RawFd) {
    // SAFETY: as in `shutdown_read`.
    unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
}

/// `send(2)` with `MSG_MORE` (more follows: the kernel may hold these
/// bytes to go out with it) and `MSG_NOSIGNAL`.
pub(crate) fn send_more(socket: std::os::fd::RawFd, bytes: &[u8]) -> std::io::Result<usize> {
    // SAFETY: send(2) reads at most `bytes.len()` bytes from `bytes`.
    let n = unsafe {
        libc::send(socket, bytes.as_ptr().cast(), bytes.len(), libc::MSG_MORE | libc::MSG_NOSIGNAL)
    };
    usize::try_from(n).map_err(|_| std::io::Error::last_os_error())
}

/// `send(2)` that never waits (`MSG_DONTWAIT`): what the socket's buffer
/// takes now. For a few last bytes (TLS's `close_notify`) before a
/// shutdown.
pub(crate) fn send_now(socket: std::os::fd::RawFd, bytes: &[u8]) -> std::io::Result<usize> {
    // SAFETY: send(2) reads at most `bytes.len()` bytes from `bytes`.
    let n = unsafe {
        libc::send(
            socket,
            bytes.as_ptr().cast(),
            bytes.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    usize::try_from(n).map_err(|_| std::io::Error::last_os_error())
}

/// Sets or clears `O_NONBLOCK` on `fd` in one call (`FIONBIO`), keeping
/// its other status flags: for the server's sockets and for files an
/// application handed over.
pub(crate) fn set_nonblocking(fd: std::os::fd::RawFd, on: bool) -> std::io::Result<()> {
    let mut on = libc::c_int::from(on);
    // SAFETY: ioctl(FIONBIO) reads one int from the valid pointer given.
    if unsafe { libc::ioctl(fd, libc::FIONBIO, &mut on) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
