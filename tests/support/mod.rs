//! Test support: a server with the `bench` app on port 0, and a raw HTTP/1.1
//! client over a plain TCP socket that checks framing byte by byte.

#![allow(dead_code)]

pub mod tls;
pub mod ws;

/// Whether a test that needs a tool this machine lacks must fail rather
/// than skip (`URING_SERVE_REQUIRE_TOOLS=1`, set by `.ci/run`, which
/// installs every tool).
pub fn require_tools() -> bool {
    std::env::var("URING_SERVE_REQUIRE_TOOLS").is_ok_and(|v| v == "1")
}

/// Ends a test that cannot run without `tool`: a failure under
/// [`require_tools`], else a skip with `install` as the remedy.
pub fn skip_without(tool: &str, install: &str) {
    assert!(!require_tools(), "URING_SERVE_REQUIRE_TOOLS=1 but no {tool}");
    eprintln!("skipped: no {tool} ({install})");
}

/// The first of `candidates` that runs with `args` and succeeds.
pub fn find_tool(candidates: &[&'static str], args: &[&str]) -> Option<&'static str> {
    candidates.iter().copied().find(|tool| {
        std::process::Command::new(tool).args(args).output().is_ok_and(|out| out.status.success())
    })
}

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

use uring_serve::apps::BenchApp;
use uring_serve::{Cores, Server, ServerHandle};

/// Largest body the test server accepts (the 4 MiB echo fits).
pub const TEST_MAX_BODY: u64 = 8 << 20;

/// A one-core `bench` server on 127.0.0.1, port 0.
pub fn start() -> ServerHandle {
    start_on(Cores::Count(1))
}

/// A `bench` server on the given cores.
pub fn start_on(cores: Cores) -> ServerHandle {
    Server::builder()
        .cores(cores)
        .bind("127.0.0.1:0")
        .max_body_bytes(TEST_MAX_BODY)
        .serve(BenchApp::new)
        .expect("server starts")
}

/// A parsed response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A client connection that keeps whatever it read past a response.
pub struct Client {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        stream.set_nodelay(true).unwrap();
        Client { stream, buf: Vec::new() }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    /// `GET path` with a Host header, keep-alive.
    pub fn get(&mut self, path: &str) -> Response {
        self.send(format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes());
        self.read_response()
    }

    /// Sends `raw` and reads one response.
    pub fn roundtrip(&mut self, raw: &str) -> Response {
        self.send(raw.as_bytes());
        self.read_response()
    }

    fn fill(&mut self) -> io::Result<usize> {
        let mut chunk = [0u8; 64 << 10];
        let n = self.stream.read(&mut chunk)?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    /// Reads exactly `n` bytes that follow what was read so far (after an
    /// upgrade, say).
    pub fn read_bytes(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n {
            assert!(self.fill().expect("read") > 0, "closed after {} of {n} bytes", self.buf.len());
        }
        self.buf.drain(..n).collect()
    }

    /// Reads one response to a request that was not HEAD.
    pub fn read_response(&mut self) -> Response {
        self.read_response_to(false)
    }

    /// Reads one response; `head_request` means it has no body.
    pub fn read_response_to(&mut self, head_request: bool) -> Response {
        let (status, headers, head_len) = loop {
            let mut slots = [httparse::EMPTY_HEADER; 64];
            let mut parsed = httparse::Response::new(&mut slots);
            match parsed.parse(&self.buf).expect("valid response head") {
                httparse::Status::Complete(len) => {
                    let headers = parsed
                        .headers
                        .iter()
                        .map(|h| {
                            (h.name.to_string(), String::from_utf8_lossy(h.value).into_owned())
                        })
                        .collect::<Vec<_>>();
                    break (parsed.code.expect("status"), headers, len);
                }
                httparse::Status::Partial => {
                    assert!(
                        self.fill().expect("read response head") > 0,
                        "closed before a response"
                    );
                }
            }
        };
        self.buf.drain(..head_len);
        let mut response = Response { status, headers, body: Vec::new() };
        let no_body =
            head_request || status == 204 || status == 304 || (100..200).contains(&status);
        if no_body {
            return response;
        }
        if let Some(len) = response.header("content-length") {
            let len: usize = len.parse().expect("numeric Content-Length");
            while self.buf.len() < len {
                assert!(self.fill().expect("read body") > 0, "closed inside a body");
            }
            response.body = self.buf.drain(..len).collect();
        } else if response
            .header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
        {
            response.body = self.read_chunked();
        } else {
            // Close-delimited.
            while self.fill().expect("read body") > 0 {}
            response.body = std::mem::take(&mut self.buf);
        }
        response
    }

    fn read_line(&mut self) -> Vec<u8> {
        loop {
            if let Some(pos) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = self.buf[..pos].to_vec();
                self.buf.drain(..pos + 2);
                return line;
            }
            assert!(self.fill().expect("read chunk line") > 0, "closed inside a chunked body");
        }
    }

    fn read_chunked(&mut self) -> Vec<u8> {
        let mut body = Vec::new();
        loop {
            let line = String::from_utf8(self.read_line()).expect("ascii chunk size");
            let size = usize::from_str_radix(line.split(';').next().unwrap().trim(), 16)
                .expect("hex size");
            if size == 0 {
                while !self.read_line().is_empty() {}
                return body;
            }
            while self.buf.len() < size + 2 {
                assert!(self.fill().expect("read chunk") > 0, "closed inside a chunk");
            }
            body.extend(self.buf.drain(..size));
            assert_eq!(self.buf.drain(..2).collect::<Vec<_>>(), b"\r\n");
        }
    }

    /// Whether the server closed the connection (reads end of stream, or a
    /// reset, with nothing else before it).
    pub fn is_closed_by_server(&mut self) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        let mut byte = [0u8; 1];
        match self.stream.read(&mut byte) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => e.kind() == io::ErrorKind::ConnectionReset,
        }
    }

    pub fn close_write(&self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }
}
