//! WebSocket echo load: `--conns` client connections, each sending a
//! message of `--size` bytes and waiting for its echo, for `--secs`
//! seconds. Prints one JSON line: messages per second, p50 and p99 of the
//! round trip. A plain client (tungstenite, one thread per connection), so
//! any echo server can be measured with it the same way.
//!
//!     cargo bench --bench ws_echo -- --url ws://127.0.0.1:PORT/ws [--conns 16] [--secs 5] [--size 32]

use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_tungstenite::tungstenite::{client, Message};

struct Args {
    url: String,
    conns: usize,
    secs: u64,
    size: usize,
}

fn args() -> Args {
    let mut args = Args { url: String::new(), conns: 16, secs: 5, size: 32 };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_default();
        match flag.as_str() {
            "--url" => args.url = value(),
            "--conns" => args.conns = value().parse().unwrap_or(16),
            "--secs" => args.secs = value().parse().unwrap_or(5),
            "--size" => args.size = value().parse().unwrap_or(32),
            _ => {}
        }
    }
    args
}

fn main() {
    let args = args();
    if args.url.is_empty() {
        eprintln!("ws_echo: --url ws://HOST:PORT/PATH is needed");
        std::process::exit(2);
    }
    let host =
        args.url.trim_start_matches("ws://").split('/').next().unwrap_or_default().to_string();
    let running = Arc::new(AtomicBool::new(true));
    let threads: Vec<_> = (0..args.conns)
        .map(|_| {
            let (url, host, running, size) =
                (args.url.clone(), host.clone(), running.clone(), args.size);
            std::thread::spawn(move || {
                let stream = TcpStream::connect(&host).expect("connect");
                stream.set_nodelay(true).expect("nodelay");
                let (mut ws, _) = client(url.as_str(), stream).expect("handshake");
                let payload = vec![b'x'; size];
                let mut rtts = Vec::new();
                while running.load(Ordering::Relaxed) {
                    let sent = Instant::now();
                    ws.send(Message::binary(payload.clone())).expect("send");
                    loop {
                        match ws.read().expect("read") {
                            Message::Binary(echo) => {
                                assert_eq!(echo.len(), size);
                                break;
                            }
                            _ => continue,
                        }
                    }
                    rtts.push(sent.elapsed());
                }
                let _ = ws.close(None);
                rtts
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(args.secs));
    running.store(false, Ordering::Relaxed);
    let mut rtts: Vec<Duration> =
        threads.into_iter().flat_map(|t| t.join().expect("client")).collect();
    rtts.sort_unstable();
    let pick =
        |q: f64| rtts.get(((rtts.len() as f64 - 1.0) * q) as usize).copied().unwrap_or_default();
    println!(
        "{{\"url\":\"{}\",\"conns\":{},\"size\":{},\"messages_per_second\":{:.0},\"p50_us\":{},\"p99_us\":{}}}",
        args.url,
        args.conns,
        args.size,
        rtts.len() as f64 / args.secs as f64,
        pick(0.5).as_micros(),
        pick(0.99).as_micros()
    );
}
