//! WebSocket over real sockets: the bench app's `/ws` echo, driven by raw
//! frames (handshake refusals, masking, limits, pings, shutdown) and by
//! Python's `websockets` client. Without that package the client test
//! skips, unless `URING_SERVE_REQUIRE_TOOLS=1` (set by `.ci/run`).

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use support::ws::{self, frame, read_frame, KEY};
use support::Client;
use uring_serve::apps::BenchApp;
use uring_serve::{Cores, Server, ServerHandle, WsSettings};

fn start(ws: WsSettings) -> ServerHandle {
    Server::builder()
        .cores(Cores::Count(1))
        .bind("127.0.0.1:0")
        .ws_settings(ws)
        .timeout_graceful_shutdown(Duration::from_secs(3))
        .serve(BenchApp::new)
        .expect("server starts")
}

fn open(server: &ServerHandle) -> Client {
    ws::open(server, "/ws")
}

fn handshake(extra: &str) -> String {
    ws::handshake("/ws", extra)
}

/// The status code of a Close frame's payload.
fn close_code(payload: &[u8]) -> u16 {
    u16::from_be_bytes([payload[0], payload[1]])
}

#[test]
fn a_handshake_gets_101_with_the_accept_key() {
    let server = start(WsSettings::default());
    open(&server);
}

#[test]
fn a_handshake_without_a_key_is_400() {
    let server = start(WsSettings::default());
    let mut c = Client::connect(server.local_addr());
    let r = c.roundtrip(&handshake("Sec-WebSocket-Version: 13\r\n"));
    assert_eq!(r.status, 400);
}

#[test]
fn another_protocol_version_is_426_naming_13() {
    let server = start(WsSettings::default());
    let mut c = Client::connect(server.local_addr());
    let r = c.roundtrip(&handshake(&format!(
        "Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: {KEY}\r\n"
    )));
    assert_eq!((r.status, r.header("sec-websocket-version")), (426, Some("13")));
}

#[test]
fn text_and_binary_messages_are_echoed() {
    let server = start(WsSettings::default());
    let mut c = open(&server);
    c.send(&frame(0x1, "héllo".as_bytes()));
    assert_eq!(read_frame(&mut c), (0x1, "héllo".as_bytes().to_vec()));
    let binary: Vec<u8> = (0..70_000u32).map(|i| i as u8).collect();
    c.send(&frame(0x2, &binary));
    assert_eq!(read_frame(&mut c), (0x2, binary));
}

#[test]
fn a_fragmented_message_comes_back_whole() {
    let server = start(WsSettings::default());
    let mut c = open(&server);
    let mut first = frame(0x1, b"frag");
    first[0] &= 0x7f; // not final
    let mut last = frame(0x0, b"mented");
    last[0] |= 0x80;
    c.send(&[first, last].concat());
    assert_eq!(read_frame(&mut c), (0x1, b"fragmented".to_vec()));
}

#[test]
fn invalid_utf8_in_text_closes_with_1007() {
    let server = start(WsSettings::default());
    let mut c = open(&server);
    c.send(&frame(0x1, &[0xff, 0xfe]));
    let (opcode, payload) = read_frame(&mut c);
    assert_eq!((opcode, close_code(&payload)), (0x8, 1007));
}

#[test]
fn a_message_over_the_size_limit_closes_with_1009() {
    let server = start(WsSettings { max_size: 1024, ..WsSettings::default() });
    let mut c = open(&server);
    c.send(&frame(0x2, &[7u8; 4096]));
    let (opcode, payload) = read_frame(&mut c);
    assert_eq!((opcode, close_code(&payload)), (0x8, 1009));
}

#[test]
fn the_close_handshake_is_answered() {
    let server = start(WsSettings::default());
    let mut c = open(&server);
    c.send(&frame(0x8, &1000u16.to_be_bytes()));
    let (opcode, payload) = read_frame(&mut c);
    assert_eq!((opcode, close_code(&payload)), (0x8, 1000));
    assert!(c.is_closed_by_server());
}

#[test]
fn a_silent_peer_is_pinged_and_one_that_never_answers_is_closed_with_1011() {
    let ping = Duration::from_millis(200);
    let server =
        start(WsSettings { ping_interval: ping, ping_timeout: ping, ..WsSettings::default() });
    let mut c = open(&server);
    let started = Instant::now();
    let (opcode, _) = read_frame(&mut c);
    assert_eq!(opcode, 0x9, "a ping after the interval");
    let (opcode, payload) = read_frame(&mut c);
    assert_eq!((opcode, close_code(&payload)), (0x8, 1011));
    assert!(started.elapsed() >= ping * 2, "closed after {:?}", started.elapsed());
}

#[test]
fn a_peer_that_answers_pings_stays_open() {
    let ping = Duration::from_millis(150);
    let server =
        start(WsSettings { ping_interval: ping, ping_timeout: ping, ..WsSettings::default() });
    let mut c = open(&server);
    for _ in 0..4 {
        let (opcode, payload) = read_frame(&mut c);
        assert_eq!(opcode, 0x9);
        c.send(&frame(0xA, &payload));
    }
    c.send(&frame(0x1, b"still here"));
    loop {
        let (opcode, payload) = read_frame(&mut c);
        if opcode == 0x9 {
            c.send(&frame(0xA, &payload));
            continue;
        }
        assert_eq!((opcode, payload), (0x1, b"still here".to_vec()));
        break;
    }
}

#[test]
fn a_graceful_shutdown_closes_open_websockets_with_1001() {
    let server = start(WsSettings::default());
    let mut c = open(&server);
    server.shutdown();
    let (opcode, payload) = read_frame(&mut c);
    assert_eq!((opcode, close_code(&payload)), (0x8, 1001));
    c.send(&frame(0x8, &1001u16.to_be_bytes()));
    server.join().expect("the server stops");
}

/// A Python interpreter with the `websockets` package, if there is one.
fn python_with_websockets() -> Option<&'static str> {
    support::find_tool(&["python3", "/usr/bin/python3"], &["-c", "import websockets"])
}

const PYTHON_CLIENT: &str = r#"
import asyncio, sys, websockets
async def main(url):
    async with websockets.connect(url, max_size=None) as ws:
        await ws.send("hello, ring")
        assert await ws.recv() == "hello, ring"
        await ws.send(bytes(range(256)) * 300)
        assert await ws.recv() == bytes(range(256)) * 300
        await ws.send(["frag", "mented"])
        assert await ws.recv() == "fragmented"
        await ws.ping()
    print("ok")
asyncio.run(main(sys.argv[1]))
"#;

#[test]
fn pythons_websockets_client_exchanges_messages() {
    let Some(python) = python_with_websockets() else {
        support::skip_without("python3 with websockets", "apt-get install python3-websockets");
        return;
    };
    let server = start(WsSettings::default());
    let url = format!("ws://{}/ws", server.local_addr());
    let out = Command::new(python).args(["-c", PYTHON_CLIENT, &url]).output().expect("python runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
}

#[test]
fn the_websocket_page_is_served() {
    let server = start(WsSettings::default());
    let mut stream = TcpStream::connect(server.local_addr()).unwrap();
    stream.write_all(b"GET /ws.html HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").unwrap();
    let mut page = String::new();
    stream.read_to_string(&mut page).unwrap();
    assert!(page.starts_with("HTTP/1.1 200") && page.contains("new WebSocket("), "{page}");
}

/// A browser, if there is one.
fn chromium() -> Option<&'static str> {
    support::find_tool(&["chromium", "chromium-browser", "google-chrome"], &["--version"])
}

/// A real browser opens `/ws.html`, which echoes a text and a binary
/// message through `/ws` and writes the result into its title.
#[test]
fn a_browser_exchanges_text_and_binary_messages() {
    let Some(browser) = chromium() else {
        support::skip_without("chromium", "apt-get install chromium");
        return;
    };
    let server = start(WsSettings::default());
    let url = format!("http://{}/ws.html", server.local_addr());
    // `--dump-dom` takes the page after its virtual time budget, which the
    // WebSocket's real network time does not hold back: on a loaded
    // machine the dump can come before the echoes. The page writes
    // "failed" on any error, so only "pending" is tried again.
    let mut last = String::new();
    for attempt in 0..3 {
        let profile = std::env::temp_dir()
            .join(format!("uring-serve-chromium-{}-{attempt}", std::process::id()));
        let out = Command::new(browser)
            .args(["--headless", "--disable-gpu", "--no-sandbox", "--no-first-run"])
            .arg("--disable-background-networking")
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(["--virtual-time-budget=10000", "--dump-dom", &url])
            .output()
            .expect("chromium runs");
        let _ = std::fs::remove_dir_all(&profile);
        last = String::from_utf8_lossy(&out.stdout).into_owned();
        if !last.contains("<title>pending</title>") {
            break;
        }
    }
    assert!(
        last.contains("<title>ok: héllo, ring | 0,1,2,254,255</title>"),
        "the page did not echo both messages:\n{last}"
    );
}

/// Many messages on one WebSocket: every wait for the next message is
/// cheap and leaves nothing behind (a waker registered per wait once
/// overflowed the executor's task refcount after 32 767 of them).
#[test]
fn fifty_thousand_messages_on_one_websocket_are_all_echoed() {
    const MESSAGES: usize = 50_000;
    let server = start(WsSettings::default());
    let mut c = open(&server);
    let mut writer = c.stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        let frames: Vec<u8> =
            (0..MESSAGES).flat_map(|i| frame(0x2, &(i as u32).to_be_bytes())).collect();
        writer.write_all(&frames).unwrap();
    });
    for i in 0..MESSAGES {
        assert_eq!(read_frame(&mut c), (0x2, (i as u32).to_be_bytes().to_vec()));
    }
    sender.join().unwrap();
    assert_eq!(server.metrics()[0].core_restarts, 0, "the core did not crash");
}
