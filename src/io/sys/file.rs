//! System calls on files: opening beneath a root, listing a directory,
//! reading from the page cache only, asking what is cached, `sendfile`,
//! pipes for splicing, `fstat`.

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

#[cfg(test)]
mod tests {
    use super::*;

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
