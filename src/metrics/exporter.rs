//! The metrics listener (`--metrics ADDR`): a thread of its own that answers
//! `GET /metrics` with every core's counters in the Prometheus text format.
//!
//! It never runs on a core: a scrape cannot queue behind user traffic, and
//! user traffic never waits for a scrape. One scrape is answered at a time,
//! each connection closed after its answer; a connection gets
//! [`IO_TIMEOUT`] in all to send its request and take the answer, so a slow
//! or stuck scraper cannot hold the listener for longer.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use tracing::{debug, warn};

use super::text::{self, CONTENT_TYPE};
use super::CoreMetrics;
use crate::cores::CoreId;
use crate::http::{self, Limits, Method};

/// How long one scrape connection may take, request and answer together.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest scrape request head.
const MAX_HEAD_BYTES: usize = 8 << 10;

/// A running metrics listener; stopped when dropped.
#[derive(Debug)]
pub(crate) struct Exporter {
    addr: SocketAddr,
    listener: TcpListener,
    stopping: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Exporter {
    /// Binds `addr` and starts answering scrapes of `cores`' counters.
    pub(crate) fn start(
        addr: SocketAddr,
        cores: Vec<(CoreId, Arc<CoreMetrics>)>,
    ) -> io::Result<Exporter> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let accepting = listener.try_clone()?;
        let stopping = Arc::new(AtomicBool::new(false));
        let stop = stopping.clone();
        let thread = thread::Builder::new()
            .name("uring-serve-metrics".into())
            .spawn(move || serve(&accepting, &cores, &stop))?;
        Ok(Exporter { addr, listener, stopping, thread: Some(thread) })
    }

    /// The address scrapes go to, with the port it resolved to.
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting scrapes and waits for the thread.
    pub(crate) fn stop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        // A listening socket shut down makes the blocked accept fail.
        crate::io::sys::shutdown_both(self.listener.as_raw_fd());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(listener: &TcpListener, cores: &[(CoreId, Arc<CoreMetrics>)], stopping: &AtomicBool) {
    let mut body = String::new();
    loop {
        let accepted = listener.accept();
        if stopping.load(Ordering::SeqCst) {
            return;
        }
        match accepted {
            Ok((stream, peer)) => {
                if let Err(e) = answer(stream, cores, &mut body) {
                    debug!(%peer, "metrics scrape failed: {e}");
                }
            }
            Err(e) => {
                warn!("metrics listener: accept failed: {e}");
                thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Answers one scrape connection: one request, one response, then close.
fn answer(
    mut stream: TcpStream,
    cores: &[(CoreId, Arc<CoreMetrics>)],
    body: &mut String,
) -> io::Result<()> {
    let deadline = Instant::now() + IO_TIMEOUT;
    let left = || {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            Err(io::Error::new(io::ErrorKind::TimedOut, "the scrape took too long"))
        } else {
            Ok(Some(left))
        }
    };
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let limits = Limits { max_header_bytes: MAX_HEAD_BYTES, max_headers: 100, max_body_bytes: 0 };
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let head = loop {
        match http::parse_head(&buf, &limits) {
            Ok(Some((head, _))) => break head,
            Ok(None) if buf.len() < MAX_HEAD_BYTES => {}
            Ok(None) | Err(_) => return respond(&mut stream, 400, false, "bad request\n"),
        }
        stream.set_read_timeout(left()?)?;
        match stream.read(&mut chunk)? {
            0 => return Ok(()),
            n => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let is_head = head.method() == Method::Head;
    if !matches!(head.method(), Method::Get | Method::Head) {
        return respond(&mut stream, 405, is_head, "only GET and HEAD\n");
    }
    if head.path() != "/metrics" {
        return respond(&mut stream, 404, is_head, "metrics are at /metrics\n");
    }
    body.clear();
    text::render(cores, body);
    stream.set_write_timeout(left()?)?;
    respond(&mut stream, 200, is_head, body)
}

fn respond(stream: &mut TcpStream, status: u16, is_head: bool, body: &str) -> io::Result<()> {
    let reason = http::reason_phrase(status);
    let content_type = if status == 200 { CONTENT_TYPE } else { "text/plain; charset=utf-8" };
    let allow = if status == 405 { "Allow: GET, HEAD\r\n" } else { "" };
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         {allow}Connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !is_head {
        out.extend_from_slice(body.as_bytes());
    }
    stream.write_all(&out)?;
    stream.flush()
}
