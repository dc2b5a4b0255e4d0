//! The request loop against an in-memory [`Transport`]: what arrives is
//! scripted, what is written is collected, every read completes at once.
//! Edge cases of framing, pipelining, refusals and closes are checked here
//! without a socket; `tests/` checks the same server over real sockets.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::{ready, Future, Ready};
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use super::{Conn, Outcome, Parked, Shared, Watch};
use crate::app::Context as AppContext;
use crate::apps::bench::BenchApp;
use crate::blocking::BlockingPool;
use crate::config::Config;
use crate::cores::CoreId;
use crate::io::file::{FileBody, Pipe};
use crate::io::ring::OpBuf;
use crate::io::transport::{NonBlockingSend, Peer, PendingRead, Transport};
use crate::metrics::CoreMetrics;
use crate::shutdown::ShutdownSignal;

/// A connection whose peer's bytes are scripted: each read takes what the
/// next arrival holds (what does not fit stays for the next read); with no
/// arrival left, the peer has closed its side.
#[derive(Default)]
struct Memory {
    arrivals: RefCell<VecDeque<Vec<u8>>>,
    written: RefCell<Vec<u8>>,
    /// Most bytes one write takes (0: all).
    write_limit: usize,
    /// How many writes reached the transport.
    writes: Cell<usize>,
}

impl Memory {
    fn with(arrivals: &[&[u8]]) -> Memory {
        let arrivals = arrivals.iter().map(|a| a.to_vec()).collect();
        Memory { arrivals: RefCell::new(arrivals), ..Memory::default() }
    }

    /// Takes the next arrival into `buf[at..]`, growing `buf` as needed.
    fn take(&self, buf: &mut Vec<u8>, at: usize) -> io::Result<usize> {
        let Some(mut arrival) = self.arrivals.borrow_mut().pop_front() else { return Ok(0) };
        let room = buf.len().saturating_sub(at).max(if at == 0 { arrival.len() } else { 0 });
        let n = arrival.len().min(room);
        if buf.len() < at + n {
            buf.resize(at + n, 0);
        }
        buf[at..at + n].copy_from_slice(&arrival[..n]);
        if n < arrival.len() {
            self.arrivals.borrow_mut().push_front(arrival.split_off(n));
        }
        Ok(n)
    }
}

/// A read on [`Memory`]: it completes when first polled.
struct MemoryRead<'a> {
    io: &'a Memory,
    buf: &'a mut Vec<u8>,
    at: usize,
}

impl Future for MemoryRead<'_> {
    type Output = io::Result<usize>;

    fn poll(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        Poll::Ready(this.io.take(this.buf, this.at))
    }
}

impl PendingRead for MemoryRead<'_> {
    type Parked = ();

    fn detach(self) {}

    fn picked_only(self) -> Self {
        self
    }

    fn cancel(self) -> impl Future<Output = io::Result<usize>> {
        ready(Ok(0))
    }
}

/// [`Memory`] in non-blocking mode: no `sendfile` or splice (`EINVAL`, as
/// a file system that cannot), so file bodies are copied.
struct MemoryNonBlocking<'a>(&'a Memory);

impl NonBlockingSend for MemoryNonBlocking<'_> {
    type Op<'b>
        = Ready<(io::Result<usize>, OpBuf)>
    where
        Self: 'b;

    fn send_more(&self, bytes: &[u8]) -> io::Result<usize> {
        self.0.written.borrow_mut().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn sendfile(&self, _: &FileBody, _: &mut u64, _: usize) -> io::Result<usize> {
        Err(io::Error::from_raw_os_error(libc::EINVAL))
    }

    fn splice_from(&self, _: &Rc<Pipe>, _: u32) -> Self::Op<'_> {
        ready((Err(io::Error::from_raw_os_error(libc::EINVAL)), OpBuf::None))
    }

    fn writable(&self) -> Self::Op<'_> {
        ready((Ok(0), OpBuf::None))
    }

    fn restore(self) -> io::Result<()> {
        Ok(())
    }
}

impl Transport for Memory {
    type Parked = ();
    type Read<'a> = MemoryRead<'a>;
    type Write<'a> = Ready<(io::Result<usize>, OpBuf)>;
    type NonBlocking<'a> = MemoryNonBlocking<'a>;

    fn read<'a>(&'a self, buf: &'a mut Vec<u8>, at: usize) -> MemoryRead<'a> {
        MemoryRead { io: self, buf, at }
    }

    fn read_fresh<'a>(&'a self, buf: &'a mut Vec<u8>, _later: bool) -> MemoryRead<'a> {
        MemoryRead { io: self, buf, at: 0 }
    }

    fn resume_read<'a>(&'a self, _: (), buf: &'a mut Vec<u8>) -> MemoryRead<'a> {
        MemoryRead { io: self, buf, at: 0 }
    }

    fn write(&self, data: OpBuf, at: usize) -> Self::Write<'_> {
        self.writes.set(self.writes.get() + 1);
        let rest = &data_of(&data)[at..];
        let n = if self.write_limit == 0 { rest.len() } else { rest.len().min(self.write_limit) };
        self.written.borrow_mut().extend_from_slice(&rest[..n]);
        ready((Ok(n), data))
    }

    fn shutdown_write(&self) -> io::Result<()> {
        Ok(())
    }

    fn non_blocking(&self) -> io::Result<MemoryNonBlocking<'_>> {
        Ok(MemoryNonBlocking(self))
    }

    fn read_file<'a>(
        &'a self,
        file: &'a FileBody,
        buf: &'a mut Vec<u8>,
        want: usize,
        offset: u64,
    ) -> impl Future<Output = io::Result<usize>> + 'a {
        ready(file.read_cached(buf, want, offset))
    }

    fn splice_file(&self, _: &FileBody, _: &Pipe, _: u64, _: u32) -> io::Result<Self::Write<'_>> {
        Err(io::Error::from_raw_os_error(libc::EINVAL))
    }
}

fn data_of(buf: &OpBuf) -> &[u8] {
    match buf {
        OpBuf::Vec(v) => v,
        OpBuf::Bytes(b) => b,
        _ => &[],
    }
}

/// What serving `io` until it is idle (or ends) gave: the outcome and the
/// bytes written.
struct Served {
    outcome: &'static str,
    written: String,
    writes: usize,
}

/// Serves a new connection on `io` with the bench app, once: from its
/// first arrival until it is idle or ends.
fn serve(io: Memory) -> Served {
    glommio::LocalExecutorBuilder::default()
        .spawn(move || async move {
            let config = Config::default();
            let metrics = Arc::new(CoreMetrics::default());
            let cx =
                AppContext::new(CoreId(0), BlockingPool::new(1, 1), metrics.clone(), config.ws);
            let shutdown =
                ShutdownSignal::new(Vec::new(), false, Default::default()).expect("an eventfd");
            let shared = Rc::new(Shared::new(BenchApp, cx, &config, metrics, shutdown, None));
            let parked =
                Parked { io: Rc::new(io), read: (), idle_since: Instant::now(), served_any: false };
            let peer = Peer(None);
            let (mut conn, read) = Conn::unpark(&shared, parked, peer, Rc::new(Watch::default()));
            let outcome = match conn.serve(read).await {
                Ok(Outcome::Idle(())) => "idle",
                Ok(Outcome::Gone) => "gone",
                Ok(Outcome::Close) => "close",
                Err(_) => "error",
            };
            let io = &conn.io;
            let written = String::from_utf8_lossy(&io.written.borrow()).into_owned();
            Served { outcome, written, writes: io.writes.get() }
        })
        .expect("an executor")
        .join()
        .expect("the executor ends")
}

const PLAINTEXT: &[u8] = b"GET /plaintext HTTP/1.1\r\nHost: t\r\n\r\n";

fn statuses(written: &str) -> Vec<&str> {
    written.match_indices("HTTP/1.1 ").map(|(at, _)| &written[at + 9..at + 12]).collect()
}

#[test]
fn pipelined_requests_are_answered_in_order_in_one_write() {
    let two = [PLAINTEXT, b"GET /nope HTTP/1.1\r\nHost: t\r\n\r\n"].concat();
    let served = serve(Memory::with(&[&two]));
    assert_eq!(statuses(&served.written), ["200", "404"]);
    assert_eq!((served.outcome, served.writes), ("idle", 1));
}

#[test]
fn a_head_split_across_reads_is_answered_once() {
    let (a, rest) = PLAINTEXT.split_at(5);
    let (b, c) = rest.split_at(12);
    let served = serve(Memory::with(&[a, b, c]));
    assert_eq!(statuses(&served.written), ["200"]);
    assert!(served.written.ends_with("Hello, World!"), "{}", served.written);
}

#[test]
fn a_malformed_request_is_refused_with_400_and_nothing_after_it_is_read() {
    let bad = [&b"GET / HTTP/1.1\r\nBad Header\r\n\r\n"[..], PLAINTEXT].concat();
    let served = serve(Memory::with(&[&bad]));
    assert_eq!(statuses(&served.written), ["400"]);
    assert_eq!(served.outcome, "close");
    assert!(served.written.contains("Connection: close\r\n"));
}

#[test]
fn a_head_request_gets_the_length_and_no_body() {
    let served = serve(Memory::with(&[b"HEAD /plaintext HTTP/1.1\r\nHost: t\r\n\r\n"]));
    assert!(served.written.contains("Content-Length: 13\r\n"), "{}", served.written);
    assert!(served.written.ends_with("\r\n\r\n"), "a body followed: {}", served.written);
}

#[test]
fn connection_close_is_answered_and_closes() {
    let served =
        serve(Memory::with(&[b"GET /plaintext HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"]));
    assert_eq!(statuses(&served.written), ["200"]);
    assert!(served.written.contains("Connection: close\r\n"));
    assert_eq!(served.outcome, "close");
}

#[test]
fn an_http10_request_without_keep_alive_closes_after_its_response() {
    let served = serve(Memory::with(&[b"GET /plaintext HTTP/1.0\r\n\r\n"]));
    assert_eq!(served.outcome, "close");
    assert!(served.written.starts_with("HTTP/1.1 200"));
}

#[test]
fn a_peer_that_closes_mid_body_cuts_a_streamed_answer_short() {
    let served =
        serve(Memory::with(&[b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc"]));
    // The echo answers as the body arrives: 3 of its 10 declared bytes,
    // then the connection ends, so the client can tell it is short.
    assert!(served.written.contains("Content-Length: 10\r\n"), "{}", served.written);
    assert!(served.written.ends_with("\r\n\r\nabc"), "{}", served.written);
    assert_eq!(served.outcome, "error");
}

#[test]
fn a_body_that_arrives_whole_is_answered_whole_in_one_write() {
    let served =
        serve(Memory::with(&[b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello"]));
    assert!(served.written.contains("Content-Length: 5\r\n"));
    assert!(served.written.ends_with("\r\n\r\nhello"));
    assert_eq!((served.outcome, served.writes), ("idle", 1));
}

#[test]
fn a_body_held_back_with_expect_continue_gets_100_first() {
    let head =
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n";
    let served = serve(Memory::with(&[head, b"hello"]));
    assert!(
        served.written.starts_with("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200"),
        "{}",
        served.written
    );
    assert!(served.written.ends_with("hello"));
}

#[test]
fn a_chunked_request_body_is_read_whole() {
    let request = b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
    let (a, b) = request.split_at(70);
    let served = serve(Memory::with(&[a, b]));
    // Still arriving when its head was read: echoed as it comes, chunked.
    let (head, body) = served.written.split_once("\r\n\r\n").expect("a head");
    assert!(head.contains("Transfer-Encoding: chunked"), "{head}");
    let mut decoded = Vec::new();
    let mut decoder = crate::http::ChunkedDecoder::new(1 << 20, 1 << 10);
    let (_, status) = decoder.decode(body.as_bytes(), &mut decoded).expect("chunked");
    assert_eq!((status, decoded.as_slice()), (crate::http::DecodeStatus::Done, &b"abcde"[..]));
    assert_eq!(served.outcome, "idle");
}

#[test]
fn short_writes_are_completed() {
    let two = [PLAINTEXT, PLAINTEXT].concat();
    let mut io = Memory::with(&[&two]);
    io.write_limit = 7;
    let served = serve(io);
    assert_eq!(statuses(&served.written), ["200", "200"]);
    assert_eq!(served.written.matches("Hello, World!").count(), 2);
}

#[test]
fn a_peer_that_closes_before_any_request_is_gone_without_a_word() {
    let served = serve(Memory::with(&[]));
    assert_eq!((served.outcome, served.written.as_str()), ("gone", ""));
}
