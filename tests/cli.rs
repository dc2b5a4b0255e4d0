//! The `uring-serve` binary as a newcomer runs it.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn binary() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_uring-serve"));
    cmd.env_remove("RUST_LOG");
    for (key, _) in std::env::vars() {
        if key.starts_with("URING_SERVE_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// A started server process; killed if a test fails before stopping it.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the binary and reads its ready line; returns the address in it.
fn start(cmd: &mut Command) -> (Running, SocketAddr, String) {
    let (child, addr, line, _) = start_logged(cmd);
    (child, addr, line)
}

/// [`start`], also returning the whole log up to the ready line.
fn start_logged(cmd: &mut Command) -> (Running, SocketAddr, String, String) {
    let mut child = Running(cmd.stderr(Stdio::piped()).spawn().expect("spawn"));
    let child_stderr = child.0.stderr.take().unwrap();
    let mut lines = BufReader::new(child_stderr).lines();
    let mut log = String::new();
    let line = lines
        .by_ref()
        .map(|l| l.expect("stderr line"))
        .find(|l| {
            log.push_str(l);
            log.push('\n');
            l.contains("listening on http://") || l.contains("listening on https://")
        })
        .expect("ready line");
    // Keep draining stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    let url = line.split("://").nth(1).unwrap();
    let addr = url.split_whitespace().next().unwrap().parse().expect("address in ready line");
    (child, addr, line, log)
}

fn stop(mut child: Running) {
    // SIGTERM, as a process manager would.
    terminate(child.0.id());
    let status = child.0.wait().expect("wait");
    assert!(status.success(), "exit after SIGTERM: {status}");
}

fn terminate(pid: u32) {
    let pid = libc::pid_t::try_from(pid).expect("pid fits");
    // SAFETY: kill(2) has no memory-safety requirements; `pid` is our child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0, "kill -TERM {pid}");
}

fn get(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn binary_logs_ready_line_and_answers_like_curl() {
    let (child, addr, line) = start(binary().args(["--cores", "1", "--port", "0"]));
    assert!(line.contains("(cores "), "{line}");
    let response = get(addr, "/plaintext");
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(response.ends_with("\r\n\r\nHello, World!"), "{response}");
    stop(child);
}

#[test]
fn flags_come_from_the_environment_too() {
    let (child, addr, _) =
        start(binary().env("URING_SERVE_PORT", "0").env("URING_SERVE_CORES", "1"));
    assert_ne!(addr.port(), 8000);
    assert!(get(addr, "/json").contains("Hello, World!"));
    stop(child);
}

fn run_to_exit(args: &[&str]) -> (i32, String) {
    let out = binary().args(args).output().expect("run");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn bad_cores_is_one_line_and_exit_code_2() {
    for bad in ["abc", "0", "100000", "999-1000"] {
        let (code, stderr) = run_to_exit(&["--cores", bad, "--port", "0"]);
        assert_eq!(code, 2, "--cores {bad}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "--cores {bad}: {stderr}");
        assert!(stderr.starts_with("error: --cores"), "{stderr}");
    }
}

#[test]
fn port_in_use_is_one_line_and_exit_code_2() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let (code, stderr) = run_to_exit(&["--cores", "1", "--port", &port]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("already in use"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

#[test]
fn a_bad_flag_value_is_one_line_and_exit_code_2() {
    let (code, stderr) = run_to_exit(&["--port", "http"]);
    assert_eq!(code, 2);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

#[test]
fn a_static_option_without_static_is_one_line_and_exit_code_2() {
    for flag in ["--static-listing", "--static-hidden"] {
        let (code, stderr) = run_to_exit(&[flag, "--port", "0"]);
        assert_eq!(code, 2, "{flag}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{flag}: {stderr}");
        assert!(stderr.contains("needs --static DIR"), "{flag}: names what is missing: {stderr}");
    }
}

#[test]
fn a_static_option_set_false_in_the_environment_needs_no_static() {
    let (child, addr, _) = start(
        binary().args(["--cores", "1", "--port", "0"]).env("URING_SERVE_STATIC_LISTING", "false"),
    );
    assert!(get(addr, "/plaintext").ends_with("Hello, World!"));
    stop(child);
}

#[test]
fn help_groups_and_explains_the_flags() {
    let out = binary().arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "Cores and sockets:",
        "Limits:",
        "Overload:",
        "Timeouts:",
        "Logging:",
        "--cores",
        "URING_SERVE_PORT",
        "--max-body-bytes",
        "--limit-concurrency",
        "--timeout-keep-alive",
    ] {
        assert!(help.contains(needle), "--help lacks {needle}:\n{help}");
    }
}

/// `taskset -c K uring-serve --cores all` runs on core K only: `all` is the
/// affinity mask, not the machine's core count.
#[test]
fn cores_all_follows_the_affinity_mask() {
    let allowed = uring_serve::cores::allowed();
    let last = *allowed.last().expect("a core");
    let mut cmd = binary();
    cmd.args(["--cores", "all", "--port", "0"]);
    // SAFETY: the closure runs in the child between fork and exec and only
    // calls sched_setaffinity on a zeroed, stack-local cpu_set_t.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(last, &mut set);
            if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let (child, addr, line) = start(&mut cmd);
    assert!(line.ends_with(&format!("(cores {last})")), "{line}");
    assert!(get(addr, "/plaintext").ends_with("Hello, World!"));
    stop(child);
}

#[test]
fn a_bad_timeout_is_one_line_and_exit_code_2() {
    let (code, stderr) = run_to_exit(&["--timeout-keep-alive", "0", "--port", "0"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.starts_with("error: --timeout-keep-alive"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

#[test]
fn a_core_that_polls_before_sleeping_serves_and_stops() {
    let (child, addr, _) =
        start(binary().args(["--cores", "1", "--port", "0", "--idle-poll", "200us"]));
    for _ in 0..3 {
        assert!(get(addr, "/plaintext").ends_with("Hello, World!"));
        std::thread::sleep(Duration::from_millis(5));
    }
    stop(child);
}

#[test]
fn an_idle_poll_longer_than_10ms_is_one_line_and_exit_code_2() {
    let (code, stderr) = run_to_exit(&["--idle-poll", "1s", "--port", "0"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.starts_with("error: --idle-poll"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

#[test]
fn metrics_are_served_on_their_own_port() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let metrics = format!("127.0.0.1:{port}");
    let (child, addr, _) =
        start(binary().args(["--cores", "1", "--port", "0", "--metrics", &metrics]));
    assert!(get(addr, "/plaintext").ends_with("Hello, World!"));
    let scrape = get(metrics.parse().unwrap(), "/metrics");
    assert!(scrape.starts_with("HTTP/1.1 200 OK\r\n"), "{scrape}");
    assert!(scrape.contains(",code=\"2xx\"} 1\n"), "{scrape}");
    stop(child);
}

#[test]
fn a_bad_metrics_address_is_one_line_and_exit_code_2() {
    let (code, stderr) = run_to_exit(&["--metrics", "nowhere", "--port", "0"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.starts_with("error: --metrics"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

#[test]
fn a_bad_trust_list_is_one_line_and_exit_code_2() {
    let (code, stderr) = run_to_exit(&["--proxy-headers", "--forwarded-allow-ips", "10.0.0.0/40"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.starts_with("error: --forwarded-allow-ips"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

#[test]
fn json_logs_are_one_object_per_line() {
    let (child, addr, line) =
        start(binary().args(["--cores", "1", "--port", "0", "--log-format", "json"]));
    assert!(line.starts_with('{') && line.ends_with('}'), "{line}");
    assert!(line.contains("\"level\":\"INFO\""), "{line}");
    assert!(get(addr, "/plaintext").ends_with("Hello, World!"));
    stop(child);
}

#[test]
fn access_log_without_a_path_goes_to_standard_output() {
    let mut cmd = binary();
    cmd.args(["--cores", "1", "--port", "0", "--access-log"]).stdout(Stdio::piped());
    let (mut child, addr, _) = start(&mut cmd);
    assert!(get(addr, "/plaintext").ends_with("Hello, World!"));
    let mut stdout = child.0.stdout.take().expect("piped stdout");
    stop(child);
    let mut out = String::new();
    stdout.read_to_string(&mut out).unwrap();
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.contains("\"GET /plaintext HTTP/1.1\" 200 13 "), "{out}");
}

/// `cmd` with `listener` as its descriptor 3, as a service manager starts
/// a server.
fn with_fd3(cmd: &mut Command, listener: &TcpListener) {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let fd = listener.as_raw_fd();
    // SAFETY: dup2(2) and fcntl(2) are async-signal-safe, as the child
    // between fork and exec requires; they touch only descriptors.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(fd, 3) < 0 || libc::fcntl(3, libc::F_SETFD, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[test]
fn an_inherited_listening_socket_is_served_with_fd() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut cmd = binary();
    cmd.args(["--cores", "1", "--fd", "3"]);
    with_fd3(&mut cmd, &listener);
    let (child, addr, _) = start(&mut cmd);
    assert_eq!(addr, listener.local_addr().unwrap());
    assert!(get(addr, "/plaintext").ends_with("Hello, World!"));
    stop(child);
    // The socket is its manager's: still listening after the server stops.
    let _queued = TcpStream::connect(addr).expect("the inherited socket still listens");
    listener.set_nonblocking(true).unwrap();
    assert!(listener.accept().is_ok(), "the connection waits in the inherited socket");
}

#[test]
fn systemd_socket_activation_needs_no_flag() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    // systemd names the server's own pid in LISTEN_PID: the shell exports
    // its pid, then becomes the server.
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "export LISTEN_PID=$$ LISTEN_FDS=1; exec \"$0\" \"$@\""])
        .arg(env!("CARGO_BIN_EXE_uring-serve"))
        .args(["--cores", "1"])
        .env_remove("RUST_LOG");
    with_fd3(&mut cmd, &listener);
    let (child, addr, _) = start(&mut cmd);
    assert_eq!(addr, listener.local_addr().unwrap());
    assert!(get(addr, "/json").contains("Hello, World!"));
    stop(child);
}

#[test]
fn a_descriptor_that_is_no_listening_socket_is_one_line_and_exit_code_2() {
    let out = binary().args(["--cores", "1", "--fd", "0"]).stdin(Stdio::null()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.trim(), "error: --fd 0: cannot listen: not a listening socket");
}

/// SIGTERM during a mixed load: every request sent before the signal gets a
/// complete response, and the process exits 0 within the timeout.
#[test]
fn sigterm_lets_requests_sent_before_it_complete() {
    use std::sync::{Arc, Mutex};

    let (child, addr, _) = start(binary().args(["--cores", "all", "--port", "0"]));
    let signalled: Arc<Mutex<Option<std::time::Instant>>> = Arc::new(Mutex::new(None));
    let clients: Vec<_> = (0..16)
        .map(|i| {
            let signalled = signalled.clone();
            std::thread::spawn(move || {
                let path = if i % 2 == 0 { "/plaintext" } else { "/sleep?ms=500" };
                let mut s = TcpStream::connect(addr).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let mut completed = 0;
                loop {
                    let sent_at = std::time::Instant::now();
                    if s.write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
                        .is_err()
                    {
                        break;
                    }
                    let sent_before_signal = signalled.lock().unwrap().is_none_or(|t| sent_at < t);
                    match read_one_response(&mut s) {
                        Some(close) => {
                            completed += 1;
                            if close {
                                break;
                            }
                        }
                        None => {
                            assert!(
                                !sent_before_signal,
                                "client {i}: a request sent before SIGTERM was cut"
                            );
                            break;
                        }
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                completed
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(700));
    *signalled.lock().unwrap() = Some(std::time::Instant::now());
    let started = std::time::Instant::now();
    stop(child);
    assert!(started.elapsed() < Duration::from_secs(5));
    let completed: usize = clients.into_iter().map(|c| c.join().expect("client")).sum();
    assert!(completed > 16, "the load ran: {completed} responses");
}

/// Reads one response (Content-Length framed); `Some(closes)` when whole.
fn read_one_response(s: &mut TcpStream) -> Option<bool> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => buf.push(byte[0]),
            _ => return None,
        }
    }
    let head = String::from_utf8_lossy(&buf).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())?;
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).ok()?;
    Some(head.contains("connection: close"))
}

/// Runs the binary with RLIMIT_MEMLOCK set to `soft`/`hard` bytes.
fn run_with_memlock(soft: u64, hard: u64, args: &[&str]) -> std::process::Output {
    let mut cmd = binary();
    cmd.args(args);
    // SAFETY: the closure runs in the child between fork and exec and only
    // calls setrlimit with a stack-local struct.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
            let limit = libc::rlimit { rlim_cur: soft, rlim_max: hard };
            if libc::setrlimit(libc::RLIMIT_MEMLOCK, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.output().expect("run")
}

#[test]
fn too_little_locked_memory_is_one_line_and_exit_code_2() {
    let out = run_with_memlock(64 << 10, 64 << 10, &["--cores", "1", "--port", "0"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("locked-memory limit is 64 KiB"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

#[test]
fn a_low_soft_memlock_limit_is_raised_to_the_hard_one() {
    let mut ours = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes one rlimit into the valid pointer given.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut ours) }, 0);
    assert!(ours.rlim_max >= 512 << 10, "this machine's hard memlock limit is too low to test");
    let hard = ours.rlim_max;
    let mut cmd = binary();
    cmd.args(["--cores", "1", "--port", "0"]);
    // SAFETY: as in `run_with_memlock`.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
            let limit = libc::rlimit { rlim_cur: 64 << 10, rlim_max: hard };
            if libc::setrlimit(libc::RLIMIT_MEMLOCK, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let (child, addr, _) = start(&mut cmd);
    assert!(get(addr, "/plaintext").ends_with("Hello, World!"));
    stop(child);
}

#[test]
fn an_address_not_on_this_machine_is_one_line_and_exit_code_2() {
    // 192.0.2.0/24 is TEST-NET-1: never a local address.
    let (code, stderr) = run_to_exit(&["--cores", "1", "--host", "192.0.2.1", "--port", "0"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.starts_with("error: cannot listen on 192.0.2.1"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

/// Zero-downtime restart: a second server joins the port with
/// `--join-reuseport`, the first gets SIGTERM, and a steady load of new
/// connections sees no error across the swap. The kernel resets what waits
/// in a closing listener's accept queue unless `net.ipv4.tcp_migrate_req`
/// is 1 (Linux 5.14+, set by `.ci/run`); with it 0, the swap loses a
/// handful of the thousands of connections, and the test allows 1 %.
#[test]
fn a_second_server_takes_over_the_port_without_errors() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;

    let (old, addr, _) = start(binary().args(["--cores", "all", "--port", "0"]));
    let port = addr.port().to_string();
    let running = Arc::new(AtomicBool::new(true));
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let load: Vec<_> = (0..16)
        .map(|_| {
            let (running, ok, failed) = (running.clone(), ok.clone(), failed.clone());
            std::thread::spawn(move || {
                while running.load(Ordering::Relaxed) {
                    let answered = TcpStream::connect(addr).ok().and_then(|mut s| {
                        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
                        s.write_all(
                            b"GET /plaintext HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
                        )
                        .ok()?;
                        let mut out = String::new();
                        s.read_to_string(&mut out).ok()?;
                        out.ends_with("Hello, World!").then_some(())
                    });
                    match answered {
                        Some(()) => ok.fetch_add(1, Ordering::Relaxed),
                        None => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let (new, _, _) = start(binary().args(["--cores", "all", "--port", &port, "--join-reuseport"]));
    std::thread::sleep(Duration::from_millis(300));
    stop(old);
    std::thread::sleep(Duration::from_millis(500));
    running.store(false, Ordering::Relaxed);
    for l in load {
        l.join().unwrap();
    }
    // The new server alone serves the port now.
    assert!(get(addr, "/plaintext").ends_with("Hello, World!"));
    stop(new);
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert!(ok > 500, "the load ran: {ok} answered");
    let migrate = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_migrate_req").unwrap_or_default();
    if migrate.trim() == "1" {
        assert_eq!(failed, 0, "{failed} of {} connections failed across the swap", ok + failed);
    } else {
        assert!(failed * 100 <= ok + failed, "{failed} of {} failed", ok + failed);
    }
}

#[test]
fn without_join_reuseport_a_port_held_by_another_server_is_in_use() {
    let (first, addr, _) = start(binary().args(["--cores", "1", "--port", "0"]));
    let (code, stderr) = run_to_exit(&["--cores", "1", "--port", &addr.port().to_string()]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("already in use"), "{stderr}");
    stop(first);
}

/// A second SIGINT does not wait for the drain: the process exits at once.
#[test]
fn a_second_sigint_exits_at_once() {
    let (mut child, addr, _) = start(binary().args(["--cores", "1", "--port", "0"]));
    let mut busy = TcpStream::connect(addr).unwrap();
    busy.write_all(b"GET /sleep?ms=20000 HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let pid = libc::pid_t::try_from(child.0.id()).unwrap();
    let started = std::time::Instant::now();
    for _ in 0..2 {
        // SAFETY: kill(2) has no memory-safety requirements; `pid` is our child.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = child.0.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{status}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// Binding a port below 1024 without the privilege for it is one line and
/// exit code 2. The child drops to an unprivileged user to provoke it.
#[test]
fn a_privileged_port_without_privilege_is_one_line_and_exit_code_2() {
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } != 0 {
        return; // needs root to drop to another user
    }
    let unprivileged_start =
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
            .ok()
            .and_then(|v| v.trim().parse::<u16>().ok())
            .unwrap_or(1024);
    if unprivileged_start <= 80 {
        return; // every user may bind port 80 on this machine
    }
    let mut cmd = binary();
    cmd.args(["--cores", "1", "--port", "80"]);
    // SAFETY: the closure runs in the child between fork and exec and only
    // calls setgid/setuid.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            if libc::setgid(65534) != 0 || libc::setuid(65534) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().expect("run as nobody");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.starts_with("error: cannot listen on 127.0.0.1:80: Permission denied"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

#[test]
fn an_unknown_ring_setup_is_one_line_and_exit_code_2() {
    let (code, stderr) = run_to_exit(&["--ring-setup", "deferred", "--port", "0"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--ring-setup"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

#[test]
fn the_configuration_line_names_the_ring_setup() {
    let (child, addr, _, log) =
        start_logged(binary().args(["--cores", "1", "--port", "0", "--ring-setup", "plain"]));
    assert!(get(addr, "/plaintext").ends_with("Hello, World!"));
    assert!(log.contains("ring_setup=\"plain\""), "{log}");
    stop(child);
}

#[test]
fn the_cli_answers_options_asterisk_with_the_bench_apps_methods() {
    let (child, addr, _) = start(binary().args(["--cores", "1", "--port", "0"]));
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "OPTIONS * HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
    assert!(out.contains("\r\nallow: GET, HEAD, POST\r\n"), "{out}");
    stop(child);
}

/// CPU time (user + system) the process has used.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name, which ends with ')'.
    let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    Duration::from_millis(ticks * 1000 / per_second)
}

/// At its descriptor limit a core cannot accept: it says so once per
/// interval (not once per try), counts it in the metrics, does not spin,
/// and serves again as soon as descriptors free up.
#[test]
fn a_server_out_of_descriptors_logs_once_does_not_spin_and_recovers() {
    use std::os::unix::process::CommandExt;
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let metrics = format!("127.0.0.1:{port}");
    let mut cmd = binary();
    cmd.args(["--cores", "1", "--port", "0", "--metrics", &metrics]);
    // SAFETY: setrlimit is async-signal-safe; nothing else runs in the
    // child between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit { rlim_cur: 200, rlim_max: 200 };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = Running(cmd.stderr(Stdio::piped()).spawn().expect("spawn"));
    let pid = child.0.id();
    let mut lines = BufReader::new(child.0.stderr.take().unwrap()).lines();
    let ready = lines.by_ref().map(|l| l.unwrap()).find(|l| l.contains("listening on http://"));
    let url = ready.expect("ready line").split("listening on http://").nth(1).unwrap().to_string();
    let addr: SocketAddr = url.split_whitespace().next().unwrap().parse().unwrap();
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = log.clone();
    std::thread::spawn(move || {
        lines.map_while(Result::ok).for_each(|l| sink.lock().unwrap().push(l))
    });

    // Far more connections than descriptors: the kernel queues the rest.
    let clients: Vec<TcpStream> = (0..400).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let cpu_before = cpu_time(pid);
    std::thread::sleep(Duration::from_secs(2));
    let cpu_used = cpu_time(pid) - cpu_before;
    let failures = log
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("accept failed"))
        .cloned()
        .collect::<Vec<_>>();
    assert!(!failures.is_empty(), "no line says the accepts fail");
    assert!(failures.len() <= 1, "one line per core per interval, got {failures:#?}");
    assert!(failures[0].contains("Too many open files"), "{}", failures[0]);
    // Retrying every 10 ms costs next to nothing; a spinning core costs 2 s.
    assert!(cpu_used < Duration::from_millis(500), "{cpu_used:?} of CPU in 2 s");
    drop(clients);
    assert!(get(addr, "/plaintext").ends_with("Hello, World!"));
    // Scraped once descriptors are free again (the exporter needs one too).
    let scrape = get(metrics.parse().unwrap(), "/metrics");
    let errors = scrape
        .lines()
        .find(|l| l.starts_with("uring_serve_accept_errors_total{"))
        .unwrap_or_else(|| panic!("no accept_errors_total in {scrape}"));
    assert!(!errors.ends_with(" 0"), "{errors}");
    stop(child);
}

#[test]
fn a_missing_certificate_file_is_one_line_and_exit_code_2() {
    let pki = support::tls::TestPki::new("cli-missing");
    let missing = pki.dir.join("missing.pem");
    let keyfile = pki.keyfile.to_str().unwrap();
    let args =
        ["--port", "0", "--ssl-certfile", missing.to_str().unwrap(), "--ssl-keyfile", keyfile];
    let (code, stderr) = run_to_exit(&args);
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: --ssl-certfile") && stderr.contains("missing.pem"),
        "{stderr}"
    );
}

#[test]
fn a_certificate_without_its_key_is_one_line_and_exit_code_2() {
    let pki = support::tls::TestPki::new("cli-nokey");
    let (code, stderr) =
        run_to_exit(&["--port", "0", "--ssl-certfile", pki.certfile.to_str().unwrap()]);
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("needs --ssl-keyfile"), "{stderr}");
}

#[test]
fn sighup_serves_a_new_certificate_to_new_connections_and_keeps_the_old_ones() {
    use support::tls::{connect, roundtrip, TestPki};
    let old = TestPki::new("cli-reload-old");
    let new = TestPki::new("cli-reload-new");
    let (child, addr, line) = start(binary().args([
        "--cores",
        "1",
        "--port",
        "0",
        "--ssl-certfile",
        old.certfile.to_str().unwrap(),
        "--ssl-keyfile",
        old.keyfile.to_str().unwrap(),
    ]));
    assert!(line.contains("listening on https://"), "{line}");
    let request = b"GET /plaintext HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let mut before = connect(addr, old.client_config()).unwrap();
    assert_eq!(roundtrip(&mut before, request).1, b"Hello, World!");
    std::fs::copy(&new.certfile, &old.certfile).unwrap();
    std::fs::copy(&new.keyfile, &old.keyfile).unwrap();
    let pid = libc::pid_t::try_from(child.0.id()).unwrap();
    // SAFETY: kill(2) has no memory-safety requirements; `pid` is our child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while connect(addr, new.client_config()).is_err() {
        assert!(std::time::Instant::now() < deadline, "the new certificate is not served");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(connect(addr, old.client_config()).is_err(), "the old certificate is still served");
    assert_eq!(roundtrip(&mut before, request).1, b"Hello, World!");
    stop(child);
}
