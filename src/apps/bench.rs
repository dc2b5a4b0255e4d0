//! The built-in `bench` application: a stable contract that the tests and
//! the benchmarks rely on.
//!
//! | request | answer |
//! |---|---|
//! | `GET /plaintext` | 200 `Hello, World!`, `text/plain` |
//! | `GET /json` | 200 `{"message":"Hello, World!"}`, `application/json` |
//! | `POST /echo` | 200, the request body back byte for byte, streamed as it arrives (`Content-Length` as the request declared it, else chunked) |
//! | `POST /upload` | 200 `N bytes` once the body is read, piece by piece, keeping none of it (413, 408, 400 when the body fails) |
//! | `GET /ws` | a WebSocket that echoes every text and binary message |
//! | `GET /ws.html` | a page that opens `/ws`, echoes a text and a binary message, and shows the result |
//! | `GET /sleep?ms=N` | 200 after an async timer of N ms (never blocks the core) |
//! | `GET /blocking?ms=N` | 200 after N ms of `thread::sleep` on the core's blocking pool (503 when the pool is full) |
//! | `GET /panic` | the handler panics: 500 for this request, the server keeps serving |
//! | a known path with the wrong method | 405 with `Allow` |
//! | anything else | 404 |
//!
//! `HEAD` is answered wherever `GET` is (the server leaves the body out).

use std::time::Duration;

use crate::app::{sleep, App, Context, Request, Response};
use crate::cores::CoreId;
use crate::http::Method;
use crate::ws;

/// Longest `/sleep` or `/blocking` accepted, in milliseconds.
pub const MAX_SLEEP_MS: u64 = 60_000;

const HELLO: &str = "Hello, World!";
const JSON_HELLO: &str = r#"{"message":"Hello, World!"}"#;

/// `/ws.html`: opens `/ws`, sends a text and a binary message, and puts
/// what came back in the page's title (`ok: …` or `failed: …`), for a
/// browser test to read.
const WS_PAGE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>pending</title></head>
<body><pre id="log"></pre><script>
const log = (line) => { document.getElementById("log").textContent += line + "\n"; };
const ws = new WebSocket(`ws://${location.host}/ws`);
ws.binaryType = "arraybuffer";
const got = [];
ws.onopen = () => { ws.send("héllo, ring"); ws.send(new Uint8Array([0, 1, 2, 254, 255]).buffer); };
ws.onmessage = (event) => {
  got.push(typeof event.data === "string" ? event.data : Array.from(new Uint8Array(event.data)).join(","));
  log("echo: " + got[got.length - 1]);
  if (got.length === 2) {
    const ok = got[0] === "héllo, ring" && got[1] === "0,1,2,254,255";
    document.title = (ok ? "ok: " : "failed: ") + got.join(" | ");
    ws.close(1000, "done");
  }
};
ws.onerror = () => { document.title = "failed: socket error"; };
</script></body></html>
"#;

/// The `bench` application. It keeps no state.
#[derive(Debug, Clone, Copy, Default)]
pub struct BenchApp;

impl BenchApp {
    /// The methods it serves, for the server's answer to `OPTIONS *`.
    pub const ALLOW: &'static str = "GET, HEAD, POST";

    /// The instance for `core`.
    pub fn new(_core: CoreId) -> BenchApp {
        BenchApp
    }
}

impl App for BenchApp {
    async fn call(&self, mut req: Request, cx: &Context) -> Response {
        let is_get = matches!(req.method(), Method::Get | Method::Head);
        match req.path() {
            "/plaintext" if is_get => {
                Response::new(200).header("content-type", "text/plain").body(HELLO)
            }
            "/json" if is_get => {
                Response::new(200).header("content-type", "application/json").body(JSON_HELLO)
            }
            "/echo" if req.method() == Method::Post => {
                let content_type = req
                    .header("content-type")
                    .and_then(|v| std::str::from_utf8(v).ok())
                    .filter(|v| crate::http::is_valid_header_value(v))
                    .unwrap_or("application/octet-stream")
                    .to_string();
                let response = Response::new(200).header("content-type", content_type);
                let mut body = req.take_body();
                // A body that is all here goes back in one piece; one still
                // arriving is streamed back as it comes, with its length
                // when the client declared one.
                match (body.whole_if_here(), body.declared_len()) {
                    (Some(whole), _) => response.body(whole),
                    (None, Some(len)) => response.stream_sized(len, body.into_stream()),
                    (None, None) => response.stream(body.into_stream()),
                }
            }
            "/ws" if req.method() == Method::Get => ws::accept(&req, cx, |mut socket| async move {
                while let Some(Ok(message)) = socket.recv().await {
                    let echo = match message {
                        ws::Message::Close(_) => break,
                        message => message,
                    };
                    if socket.send(echo).await.is_err() {
                        break;
                    }
                }
            }),
            "/ws.html" if is_get => {
                Response::new(200).header("content-type", "text/html; charset=utf-8").body(WS_PAGE)
            }
            "/upload" if req.method() == Method::Post => {
                let mut read = 0u64;
                while let Some(piece) = req.body().piece().await {
                    match piece {
                        Ok(piece) => read += piece.len() as u64,
                        // The server answers a failed body (413, 408, 400).
                        Err(e) => return Response::plain(400, format!("{e}\n")),
                    }
                }
                Response::new(200)
                    .header("content-type", "text/plain")
                    .body(format!("{read} bytes\n"))
            }
            "/blocking" if is_get => match parse_ms(&req) {
                Some(ms) => {
                    let slept = cx.blocking(move || std::thread::sleep(Duration::from_millis(ms)));
                    match slept.await {
                        Ok(()) => Response::new(200)
                            .header("content-type", "text/plain")
                            .body(format!("blocked {ms} ms\n")),
                        Err(e) => e.into(),
                    }
                }
                None => Response::plain(
                    400,
                    format!("/blocking needs ?ms=N with N from 0 to {MAX_SLEEP_MS}\n"),
                ),
            },
            "/panic" if is_get => panic!("/panic was requested"),
            "/sleep" if is_get => match parse_ms(&req) {
                Some(ms) => {
                    sleep(Duration::from_millis(ms)).await;
                    Response::new(200)
                        .header("content-type", "text/plain")
                        .body(format!("slept {ms} ms\n"))
                }
                None => Response::plain(
                    400,
                    format!("/sleep needs ?ms=N with N from 0 to {MAX_SLEEP_MS}\n"),
                ),
            },
            "/plaintext" | "/json" | "/sleep" | "/blocking" | "/panic" | "/ws.html" => {
                not_allowed("GET, HEAD")
            }
            "/ws" => not_allowed("GET"),
            "/echo" | "/upload" => not_allowed("POST"),
            _ => Response::plain(404, "not found\n"),
        }
    }
}

fn parse_ms(req: &Request) -> Option<u64> {
    let ms: u64 = req.query_param("ms")?.parse().ok()?;
    (ms <= MAX_SLEEP_MS).then_some(ms)
}

fn not_allowed(allow: &'static str) -> Response {
    Response::plain(405, "method not allowed\n").header("allow", allow)
}
