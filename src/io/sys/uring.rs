//! Whether this process may use io_uring at all, and with enough locked
//! memory: checked before any executor starts, so a missing facility is one
//! clear error line instead of a panic deep inside the executor.
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
}
