//! Checks of the kernel facilities the runtime needs, made before any
//! executor starts, so a missing one is one clear error line instead of a
//! panic deep inside the executor.
//!
//! glommio reports an unusable io_uring with a panic, or even exits the
//! process, from inside the executor thread; a blocked `io_uring_setup`
//! (a container's seccomp profile, `kernel.io_uring_disabled`) is caught
//! here first.

use std::fs;

/// Locked memory each executor needs at least (glommio refuses to start
/// with an `RLIMIT_MEMLOCK` below 512 KiB).
pub(crate) const MIN_MEMLOCK_BYTES: u64 = 512 << 10;

/// Checks that this process may create an io_uring; the error is a message
/// naming the cause and the fix.
///
/// The probe ring is made on a short-lived thread: the kernel keeps io_uring
/// state on the thread that used a ring, and its deferred clean-up would
/// otherwise interrupt the caller's next blocking syscall with `EINTR`.
pub(crate) fn check_io_uring() -> Result<(), String> {
    check_io_uring_with(probe_io_uring_setup, io_uring_disabled_sysctl)
}

/// [`check_io_uring`] with its two kernel reads passed in: the ring probe
/// (an errno on failure) and `kernel.io_uring_disabled`.
fn check_io_uring_with(
    probe: fn() -> Result<(), i32>,
    disabled_sysctl: fn() -> u32,
) -> Result<(), String> {
    match std::thread::spawn(probe).join() {
        Ok(Ok(())) => Ok(()),
        Ok(Err(errno)) => Err(explain_io_uring_error(errno, disabled_sysctl())),
        Err(_) => Err("io_uring could not be probed".to_string()),
    }
}

/// `kernel.io_uring_disabled` (Linux 6.6+; 0 where it does not exist).
fn io_uring_disabled_sysctl() -> u32 {
    fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// Creates and closes a small ring; the error is the errno.
fn probe_io_uring_setup() -> Result<(), i32> {
    // struct io_uring_params is 120 bytes; zeroed means default flags.
    let mut params = [0u64; 15];
    // SAFETY: io_uring_setup reads and writes exactly one io_uring_params
    // (120 bytes), which `params` provides; the returned descriptor is
    // closed right below.
    let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 4u32, params.as_mut_ptr()) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0));
    }
    // SAFETY: `fd` was just returned by io_uring_setup and is owned here.
    unsafe { libc::close(fd as libc::c_int) };
    Ok(())
}

fn explain_io_uring_error(errno: i32, disabled: u32) -> String {
    match errno {
        libc::ENOSYS => "io_uring is not available: the kernel lacks it (Linux 5.8 or newer \
                         is needed) or a seccomp profile hides it"
            .to_string(),
        libc::EPERM if disabled > 0 => format!(
            "io_uring is disabled by the kernel (sysctl kernel.io_uring_disabled = {disabled}); \
             set it to 0, or to 1 and add this user to kernel.io_uring_group"
        ),
        libc::EPERM => "io_uring is blocked: most likely by a container's seccomp profile \
                        (run with --security-opt seccomp=unconfined or a profile that allows \
                        io_uring_setup, io_uring_enter and io_uring_register)"
            .to_string(),
        libc::ENOMEM => "io_uring could not be set up: the locked-memory limit is too low \
                         (raise `ulimit -l` / LimitMEMLOCK)"
            .to_string(),
        other => {
            format!("io_uring could not be set up: {}", std::io::Error::from_raw_os_error(other))
        }
    }
}

/// Raises the soft `RLIMIT_MEMLOCK` to the hard limit and checks that it
/// allows `needed` bytes.
pub(crate) fn ensure_memlock(needed: u64) -> Result<(), String> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes one rlimit into the valid pointer given.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit) } != 0 {
        return Ok(()); // cannot tell; let the executor report it
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
        // SAFETY: setrlimit reads one rlimit from the valid pointer given.
        if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &raised) } == 0 {
            limit = raised;
        }
    }
    if limit.rlim_cur != libc::RLIM_INFINITY && limit.rlim_cur < needed {
        return Err(format!(
            "the locked-memory limit is {} KiB, {} KiB are needed for each core's rings \
             (raise `ulimit -l`, or LimitMEMLOCK= in a systemd unit)",
            limit.rlim_cur / 1024,
            needed / 1024
        ));
    }
    Ok(())
}

/// Ends the reading side of an open socket: a read waiting on it returns
/// end-of-stream once the bytes already received are taken. Errors are
/// ignored (the peer may be gone already).
pub(crate) fn shutdown_read(fd: std::os::fd::RawFd) {
    // SAFETY: shutdown(2) only acts on the descriptor; the caller guarantees
    // it is an open socket it owns.
    unsafe { libc::shutdown(fd, libc::SHUT_RD) };
}

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

/// A new non-blocking, close-on-exec eventfd.
pub(crate) fn eventfd() -> std::io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: plain syscall; the result is checked before use.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor nothing else owns.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// A monotonic timer descriptor, readable once it expires.
pub(crate) fn timerfd() -> std::io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: plain syscall; the result is checked before use.
    let fd = unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor nothing else owns.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// Arms `timer` (from [`timerfd`]) to expire once, `after` from now.
pub(crate) fn arm_timerfd(
    timer: &std::os::fd::OwnedFd,
    after: std::time::Duration,
) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let spec = libc::itimerspec {
        it_interval: libc::timespec { tv_sec: 0, tv_nsec: 0 },
        it_value: libc::timespec {
            tv_sec: after.as_secs() as libc::time_t,
            tv_nsec: libc::c_long::from(after.subsec_nanos()),
        },
    };
    // SAFETY: `spec` is a valid itimerspec; the old value is not asked for.
    if unsafe { libc::timerfd_settime(timer.as_raw_fd(), 0, &spec, std::ptr::null_mut()) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Adds one to an eventfd's counter: it becomes (and stays) readable.
pub(crate) fn signal_eventfd(fd: &std::os::fd::OwnedFd) {
    use std::os::fd::AsRawFd;
    let one = 1u64.to_ne_bytes();
    // SAFETY: write(2) reads 8 bytes from a valid buffer of 8 bytes.
    unsafe { libc::write(fd.as_raw_fd(), one.as_ptr().cast(), one.len()) };
}

/// Opens `path` below the directory `dir` for reading, refusing (with
/// `EXDEV`) any path, `..` or symbolic link that resolves outside `dir`,
/// and magic links (`/proc/self/fd/...`). Non-blocking, so a FIFO does not
/// stall the core. Linux 5.6+ (`openat2`).
pub(crate) fn open_beneath(
    dir: std::os::fd::BorrowedFd<'_>,
    path: &std::ffi::CStr,
) -> std::io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::{AsRawFd, FromRawFd};
    // SAFETY: open_how is plain data; all-zero is its "no options" value.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOCTTY) as u64;
    how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS;
    // SAFETY: openat2(2) reads a NUL-terminated path and one open_how of
    // the size given, both valid for the call; it writes no memory.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir.as_raw_fd(),
            path.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a successful openat2 returns a new descriptor nothing else
    // owns (it fits in an int: the kernel hands out ints).
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) })
}

/// Reads the open directory `dir` (closing it), calling `keep` with each
/// entry's name (neither `.` nor `..`) and `d_type` (`DT_REG`, `DT_DIR`,
/// `DT_LNK`, ..., or `DT_UNKNOWN` on file systems that do not say). Returns
/// the first `limit` values `keep` made of them, and whether it made more
/// (reading stops at the first past the limit).
pub(crate) fn directory_entries<T>(
    dir: std::os::fd::OwnedFd,
    limit: usize,
    mut keep: impl FnMut(&[u8], u8) -> Option<T>,
) -> std::io::Result<(Vec<T>, bool)> {
    use std::os::fd::IntoRawFd;
    let fd = dir.into_raw_fd();
    // SAFETY: fdopendir(3) takes a directory descriptor we own; on success
    // the stream owns it (closedir closes it).
    let stream = unsafe { libc::fdopendir(fd) };
    if stream.is_null() {
        let e = std::io::Error::last_os_error();
        // SAFETY: on failure the descriptor is still ours to close.
        unsafe { libc::close(fd) };
        return Err(e);
    }
    let mut kept = Vec::new();
    let result = loop {
        // SAFETY: readdir(3) reports its errors only through errno, which
        // is this thread's; clear it to tell an error from the end.
        unsafe { *libc::__errno_location() = 0 };
        // SAFETY: `stream` is an open directory stream used by this thread
        // only; the entry it returns stays valid until the next call.
        let entry = unsafe { libc::readdir(stream) };
        if entry.is_null() {
            let e = std::io::Error::last_os_error();
            break if e.raw_os_error() == Some(0) { Ok(false) } else { Err(e) };
        }
        // SAFETY: a returned entry is valid until the next readdir. Its
        // record may be shorter than `dirent` (glibc packs them by
        // `d_reclen`), so no reference to the whole `d_name` array is made:
        // only a pointer to its NUL-terminated name, and a read of the
        // `d_type` byte before it.
        let (name, kind) = unsafe {
            let name = std::ptr::addr_of!((*entry).d_name).cast::<libc::c_char>();
            (std::ffi::CStr::from_ptr(name).to_bytes(), std::ptr::addr_of!((*entry).d_type).read())
        };
        if name == b"." || name == b".." {
            continue;
        }
        if let Some(value) = keep(name, kind) {
            if kept.len() == limit {
                break Ok(true);
            }
            kept.push(value);
        }
    };
    // SAFETY: the stream is open and not used after this.
    unsafe { libc::closedir(stream) };
    result.map(|more| (kept, more))
}

/// Reads up to `want` bytes of `file` at `offset` onto the end of `buf`,
/// from the page cache only (`preadv2` with `RWF_NOWAIT`): `WouldBlock`
/// when a byte would have to come from the disk, before any is read.
pub(crate) fn read_cached(
    file: std::os::fd::RawFd,
    buf: &mut Vec<u8>,
    want: usize,
    offset: u64,
) -> std::io::Result<usize> {
    buf.reserve(want);
    let spare = buf.spare_capacity_mut();
    let iov = libc::iovec { iov_base: spare.as_mut_ptr().cast(), iov_len: want.min(spare.len()) };
    let offset = libc::off_t::try_from(offset).map_err(|_| std::io::ErrorKind::InvalidInput)?;
    // SAFETY: preadv2(2) writes at most `iov_len` bytes into the spare
    // capacity the iovec points at, which `buf` owns and nothing aliases.
    let n = unsafe { libc::preadv2(file, &iov, 1, offset, libc::RWF_NOWAIT) };
    let n = usize::try_from(n).map_err(|_| std::io::Error::last_os_error())?;
    // SAFETY: the kernel initialised the `n` bytes after the length.
    unsafe { buf.set_len(buf.len() + n) };
    Ok(n)
}

/// `cachestat(2)`'s system call number: the same on every architecture
/// but alpha (the libc crate does not name it for all of them yet).
const SYS_CACHESTAT: libc::c_long = 451;

/// Whether every page of `len` bytes of `file` from `offset` is in the
/// page cache (`cachestat(2)`, Linux 6.5): reading them cannot wait for a
/// disk. `false` when the kernel cannot say.
pub(crate) fn is_cached(file: std::os::fd::RawFd, offset: u64, len: u64) -> bool {
    #[repr(C)]
    struct Range {
        off: u64,
        len: u64,
    }
    #[repr(C)]
    #[derive(Default)]
    struct Stat {
        nr_cache: u64,
        nr_dirty: u64,
        nr_writeback: u64,
        nr_evicted: u64,
        nr_recently_evicted: u64,
    }
    if len == 0 {
        return true;
    }
    // SAFETY: sysconf reads no memory.
    let page = u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096).max(1);
    let pages = (offset + len - 1) / page - offset / page + 1;
    let range = Range { off: offset, len };
    let mut stat = Stat::default();
    // SAFETY: cachestat(2) reads one range and writes one stat, both valid
    // for the call and laid out as the kernel's structs.
    let r = unsafe {
        libc::syscall(SYS_CACHESTAT, file, &range as *const Range, &mut stat as *mut Stat, 0)
    };
    r == 0 && stat.nr_cache >= pages
}

/// `sendfile(2)`: copies up to `count` bytes of `file` from `*offset` into
/// `socket` in the kernel, advancing `*offset`. On a non-blocking socket,
/// `WouldBlock` when its send buffer is full. It takes no `MSG_NOSIGNAL`:
/// a peer that reset the connection gives `EPIPE` only because Rust
/// programs ignore `SIGPIPE` (the signal would end a process that
/// restored it).
pub(crate) fn sendfile(
    socket: std::os::fd::RawFd,
    file: std::os::fd::RawFd,
    offset: &mut u64,
    count: usize,
) -> std::io::Result<usize> {
    let mut at = libc::off_t::try_from(*offset).map_err(|_| std::io::ErrorKind::InvalidInput)?;
    // SAFETY: sendfile(2) reads and updates the one offset given.
    let n = unsafe { libc::sendfile(socket, file, &mut at, count) };
    let n = usize::try_from(n).map_err(|_| std::io::Error::last_os_error())?;
    *offset += n as u64;
    Ok(n)
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

/// A new pipe: its read end and its write end (close-on-exec).
pub(crate) fn pipe() -> std::io::Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    use std::os::fd::FromRawFd;
    let mut fds = [0; 2];
    // SAFETY: pipe2(2) writes two descriptors into the array given.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a successful pipe2 returns two new descriptors nothing else
    // owns.
    Ok(unsafe {
        (std::os::fd::OwnedFd::from_raw_fd(fds[0]), std::os::fd::OwnedFd::from_raw_fd(fds[1]))
    })
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

/// Asks for a pipe of `bytes` (F_SETPIPE_SZ); the kernel may refuse.
pub(crate) fn set_pipe_size(pipe: &std::os::fd::OwnedFd, bytes: usize) {
    use std::os::fd::AsRawFd;
    let bytes = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    // SAFETY: fcntl(F_SETPIPE_SZ) takes an int and writes no memory.
    unsafe { libc::fcntl(pipe.as_raw_fd(), libc::F_SETPIPE_SZ, bytes) };
}

/// The `stat` of an open descriptor.
pub(crate) fn fstat(fd: std::os::fd::BorrowedFd<'_>) -> std::io::Result<libc::stat> {
    use std::os::fd::AsRawFd;
    // SAFETY: stat is plain data, fully written by a successful fstat.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat(2) writes one stat into the valid pointer given.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut stat) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(stat)
}

/// Ends both sides of an open socket: the peer sees the connection end
/// even if the socket itself is not closed yet.
pub(crate) fn shutdown_both(fd: std::os::fd::RawFd) {
    // SAFETY: as in `shutdown_read`.
    unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kernel_without_io_uring_is_named() {
        let e = check_io_uring_with(|| Err(libc::ENOSYS), || 0).unwrap_err();
        assert!(e.contains("Linux 5.8"), "{e}");
    }

    #[test]
    fn io_uring_disabled_by_sysctl_is_named_with_the_fix() {
        let e = check_io_uring_with(|| Err(libc::EPERM), || 2).unwrap_err();
        assert!(e.contains("kernel.io_uring_disabled = 2"), "{e}");
    }

    #[test]
    fn io_uring_blocked_by_seccomp_is_named_with_the_fix() {
        let e = check_io_uring_with(|| Err(libc::EPERM), || 0).unwrap_err();
        assert!(e.contains("seccomp") && e.contains("--security-opt"), "{e}");
        assert_eq!(e.lines().count(), 1);
    }

    #[test]
    fn a_low_memlock_limit_for_rings_is_named() {
        let e = check_io_uring_with(|| Err(libc::ENOMEM), || 0).unwrap_err();
        assert!(e.contains("ulimit -l"), "{e}");
    }

    #[test]
    fn io_uring_is_usable_here() {
        assert_eq!(check_io_uring(), Ok(()));
    }

    /// A directory with `visible` names and `hidden` dot names, listed with
    /// a bound of 2 that only visible names count toward.
    fn listed(name: &str, visible: usize, hidden: usize) -> (Vec<Vec<u8>>, bool) {
        let dir =
            std::env::temp_dir().join(format!("uring-serve-sys-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        for i in 0..visible {
            std::fs::write(dir.join(format!("v{i}")), "").unwrap();
        }
        for i in 0..hidden {
            std::fs::write(dir.join(format!(".h{i}")), "").unwrap();
        }
        let fd = std::os::fd::OwnedFd::from(std::fs::File::open(&dir).unwrap());
        let keep = |name: &[u8], _| (name[0] != b'.').then(|| name.to_vec());
        let (mut names, more) = directory_entries(fd, 2, keep).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        names.sort();
        (names, more)
    }

    #[test]
    fn a_directory_is_read_up_to_the_bound_of_kept_entries() {
        assert_eq!(listed("under", 2, 5), (vec![b"v0".to_vec(), b"v1".to_vec()], false));
        let (names, more) = listed("over", 3, 5);
        assert_eq!((names.len(), more), (2, true));
        assert_eq!(listed("empty", 0, 0), (vec![], false));
    }
}
