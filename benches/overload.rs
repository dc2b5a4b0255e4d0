//! Overload benchmark: an open-loop load well past what one core admits,
//! against the release binary, reporting what admission control makes of
//! it.
//!
//! ```text
//! cargo build --release
//! cargo bench --bench overload -- sleep      # /sleep?ms=50, --limit-concurrency 64
//! cargo bench --bench overload -- blocking   # /blocking?ms=5 against the blocking pool
//! ```
//!
//! The server runs on core 0 (`--cores 1`), the load on the other cores.
//! Each client connection sends on a fixed schedule (rate / connections
//! apart) with one request in flight; a request's latency is measured from
//! the time it was *scheduled*, so a stall is charged to every request it
//! delayed (no coordinated omission). A 503 closes the connection (the
//! server says `Connection: close`) and the client reconnects. Reported:
//! goodput (200/s), shed (503/s), latency of the admitted requests, and
//! every connection that ended without a response to its request (must be
//! zero: overload is answered, never a silent reset).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

struct Scenario {
    name: &'static str,
    path: &'static str,
    server_args: &'static [&'static str],
    /// What the server can admit per second, by construction.
    capacity: f64,
    connections: usize,
}

const SCENARIOS: [Scenario; 2] = [
    Scenario {
        name: "sleep",
        path: "/sleep?ms=50",
        server_args: &["--limit-concurrency", "64"],
        // 64 in flight, 50 ms each.
        capacity: 64.0 / 0.050,
        connections: 512,
    },
    Scenario {
        name: "blocking",
        path: "/blocking?ms=5",
        server_args: &[
            "--limit-concurrency",
            "1024",
            "--blocking-threads",
            "16",
            "--blocking-queue",
            "256",
        ],
        // 16 pool threads, 5 ms each.
        capacity: 16.0 / 0.005,
        connections: 1024,
    },
];

const OVERLOAD_FACTOR: f64 = 3.0;
const DURATION: Duration = Duration::from_secs(10);

/// What one client connection saw.
#[derive(Default)]
struct Tally {
    ok_latency_us: Vec<u32>,
    shed: u64,
    other: u64,
    reset_without_response: u64,
    connects: u64,
    lag_us_max: u64,
}

fn main() {
    let which: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let binary = std::env::var("URING_SERVE_BIN").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/target/release/uring-serve").to_string()
    });
    for scenario in
        SCENARIOS.iter().filter(|s| which.is_empty() || which.iter().any(|w| w == s.name))
    {
        run(scenario, &binary);
    }
}

fn run(scenario: &Scenario, binary: &str) {
    let (mut server, addr) = start_server(binary, scenario.server_args);
    let rate = scenario.capacity * OVERLOAD_FACTOR;
    let interval = Duration::from_secs_f64(scenario.connections as f64 / rate);
    let request: Arc<[u8]> =
        format!("GET {} HTTP/1.1\r\nHost: bench\r\n\r\n", scenario.path).into_bytes().into();
    let start = Instant::now() + Duration::from_millis(200);
    let workers: Vec<_> = (0..scenario.connections)
        .map(|i| {
            let request = request.clone();
            // Spread the first sends over one interval.
            let first = start + interval.mul_f64(i as f64 / scenario.connections as f64);
            thread::Builder::new()
                .stack_size(128 << 10)
                .spawn(move || client(addr, &request, first, interval, start + DURATION))
                .expect("client thread")
        })
        .collect();
    let mut total = Tally::default();
    for w in workers {
        let t = w.join().expect("client");
        total.ok_latency_us.extend(t.ok_latency_us);
        total.shed += t.shed;
        total.other += t.other;
        total.reset_without_response += t.reset_without_response;
        total.connects += t.connects;
        total.lag_us_max = total.lag_us_max.max(t.lag_us_max);
    }
    let _ = server.kill();
    let _ = server.wait();

    let secs = DURATION.as_secs_f64();
    let lat = &mut total.ok_latency_us;
    lat.sort_unstable();
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return f64::NAN;
        }
        let i = ((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1;
        f64::from(lat[i]) / 1000.0
    };
    let sent = lat.len() as u64 + total.shed + total.other + total.reset_without_response;
    println!(
        "{{\"scenario\":\"{}\",\"path\":\"{}\",\"server_args\":\"{}\",\"offered_rps\":{:.0},\"capacity_rps\":{:.0},\
\"sent_rps\":{:.0},\"goodput_rps\":{:.0},\"shed_rps\":{:.0},\"other_status\":{},\"reset_without_response\":{},\
\"admitted_p50_ms\":{:.2},\"admitted_p99_ms\":{:.2},\"admitted_p999_ms\":{:.2},\"connects\":{},\"client_lag_max_ms\":{:.1}}}",
        scenario.name,
        scenario.path,
        scenario.server_args.join(" "),
        rate,
        scenario.capacity,
        sent as f64 / secs,
        lat.len() as f64 / secs,
        total.shed as f64 / secs,
        total.other,
        total.reset_without_response,
        pct(0.50),
        pct(0.99),
        pct(0.999),
        total.connects,
        total.lag_us_max as f64 / 1000.0,
    );
}

/// One connection's fixed schedule of requests until `end`.
fn client(
    addr: SocketAddr,
    request: &[u8],
    first: Instant,
    interval: Duration,
    end: Instant,
) -> Tally {
    let mut tally = Tally::default();
    let mut stream: Option<TcpStream> = None;
    let mut buf = Vec::with_capacity(1024);
    let mut scheduled = first;
    while scheduled < end {
        let now = Instant::now();
        if now < scheduled {
            thread::sleep(scheduled - now);
        } else {
            tally.lag_us_max = tally.lag_us_max.max((now - scheduled).as_micros() as u64);
        }
        let s = match stream.as_mut() {
            Some(s) => s,
            None => match TcpStream::connect(addr) {
                Ok(s) => {
                    tally.connects += 1;
                    let _ = s.set_nodelay(true);
                    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                    stream.insert(s)
                }
                Err(_) => {
                    tally.reset_without_response += 1;
                    scheduled += interval;
                    continue;
                }
            },
        };
        let outcome = s.write_all(request).ok().and_then(|()| read_response(s, &mut buf));
        match outcome {
            Some((status, close)) => {
                match status {
                    200 => tally.ok_latency_us.push(scheduled.elapsed().as_micros() as u32),
                    503 => tally.shed += 1,
                    _ => tally.other += 1,
                }
                if close {
                    stream = None;
                }
            }
            None => {
                tally.reset_without_response += 1;
                stream = None;
            }
        }
        scheduled += interval;
    }
    tally
}

/// Reads one response; its status and whether the server closes after it.
fn read_response(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<(u16, bool)> {
    buf.clear();
    let mut chunk = [0u8; 2048];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut chunk).ok().filter(|&n| n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = std::str::from_utf8(&buf[..head_end]).ok()?.to_ascii_lowercase();
    let status: u16 = head.get(9..12)?.parse().ok()?;
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = s.read(&mut chunk).ok().filter(|&n| n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
    }
    Some((status, head.contains("connection: close")))
}

/// Starts the server on core 0, one core, port 0; returns it and its address.
fn start_server(binary: &str, extra: &[&str]) -> (Child, SocketAddr) {
    let mut child = Command::new("taskset")
        .args(["-c", "0", binary, "--cores", "1", "--port", "0", "--log-level", "warn"])
        .args(extra)
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .expect("start uring-serve (build it with `cargo build --release`)");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let line = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|l| l.contains("listening on http://"))
        .expect("ready line");
    thread::spawn(move || for _ in lines {});
    let addr = line
        .split("listening on http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|a| a.parse().ok())
        .expect("address in ready line");
    (child, addr)
}
