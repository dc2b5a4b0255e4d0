//! The access log (`--access-log`): one line per response, written without
//! ever blocking a core.
//!
//! Each core formats its lines into a buffer of its own (no lock, nothing
//! shared with other cores) and hands the buffer to one writer thread when
//! it holds [`FLUSH_BYTES`] or every [`FLUSH_EVERY`], whichever comes first;
//! the writer thread does the blocking writes and hands the buffer back for
//! reuse. When the writer falls behind (a slow disk, a full pipe) and
//! [`QUEUED_BATCHES`] buffers wait, a core drops its buffer rather than
//! wait, and counts the lines it dropped
//! (`uring_serve_access_log_dropped_lines_total`). One writer serialises
//! every core's batches, so lines from different cores never interleave.
//!
//! Formats: `text` is Apache's combined format followed by the duration in
//! microseconds and the core; `json` is one object per line. The request
//! part of a line is captured when the request head is parsed (the
//! application takes the request), the rest when its response is ready.
//!
//! What this module does not do: decide which responses are logged (the
//! connection code does) or rotate files (reopen on rotation is left to the
//! operator's tooling: write to stdout and let the service manager keep
//! the log, or use `copytruncate`).

use std::cell::{Cell, RefCell};
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use tracing::warn;

use crate::config::{AccessLogTarget, LogFormat};
use crate::cores::CoreId;
use crate::http::{HttpDate, RequestHead, Version};
use crate::metrics::CoreMetrics;
use crate::recycle;

/// A core hands its lines to the writer once it holds this many bytes.
const FLUSH_BYTES: usize = 32 << 10;
/// ... or this long after its last hand-over, whichever comes first.
pub(crate) const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// Buffers waiting for the writer, from all cores, before cores drop lines.
const QUEUED_BATCHES: usize = 64;
/// How long a stopping server waits for the writer to write what is queued
/// (a stuck standard output must not keep the process from exiting).
const FINISH_WITHIN: Duration = Duration::from_secs(5);
/// How long a stopping core waits for room for its last lines.
const LAST_FLUSH_WITHIN: Duration = Duration::from_secs(1);

/// What goes to the writer thread.
pub(crate) enum Batch {
    /// A core's buffer of lines, how many, and where the emptied buffer
    /// goes back (with the count of lines a failed write lost).
    Lines(Vec<u8>, u64, Sender<Spare>),
    /// Every core has stopped: write what came before, then end.
    End,
}

/// An emptied buffer on its way back to its core, and the lines lost when
/// writing it failed.
type Spare = (Vec<u8>, u64);

/// The writer thread every core hands its lines to.
#[derive(Debug)]
pub(crate) struct AccessLogWriter {
    queue: Option<SyncSender<Batch>>,
    thread: Option<JoinHandle<()>>,
    /// Disconnected when the writer thread ends.
    ended: Receiver<()>,
}

impl AccessLogWriter {
    /// Opens `target` and starts the writer thread.
    pub(crate) fn start(target: &AccessLogTarget) -> io::Result<AccessLogWriter> {
        let mut sink: Box<dyn Write + Send> = match target {
            AccessLogTarget::Stdout => Box::new(io::stdout()),
            AccessLogTarget::File(path) => {
                Box::new(OpenOptions::new().create(true).append(true).open(path)?)
            }
        };
        let (queue, batches) = mpsc::sync_channel::<Batch>(QUEUED_BATCHES);
        let (end, ended) = mpsc::channel::<()>();
        let thread = thread::Builder::new()
            .name("uring-serve-access-log".into())
            .spawn(move || write_batches(&batches, &mut *sink, end))?;
        Ok(AccessLogWriter { queue: Some(queue), thread: Some(thread), ended })
    }

    /// A core's way to the writer.
    pub(crate) fn queue(&self) -> Option<SyncSender<Batch>> {
        self.queue.clone()
    }

    /// Waits until every batch handed over is written, for
    /// [`FINISH_WITHIN`] at most; call once every core has stopped (each
    /// hands over its last lines as it ends).
    pub(crate) fn finish(&mut self) {
        let deadline = Instant::now() + FINISH_WITHIN;
        if let Some(queue) = self.queue.take() {
            let _ = send_until(&queue, Batch::End, deadline);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if let Err(RecvTimeoutError::Timeout) = self.ended.recv_timeout(left) {
            warn!("access log: its output takes no more lines; the last ones are lost");
        } else if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The writer thread: writes each batch, gives the buffer back with the
/// count of lines lost if the write failed, and ends at [`Batch::End`].
fn write_batches(batches: &Receiver<Batch>, sink: &mut dyn Write, _end: Sender<()>) {
    let mut failing = false;
    for batch in batches {
        let Batch::Lines(mut bytes, lines, back) = batch else { break };
        let lost = match sink.write_all(&bytes).and_then(|()| sink.flush()) {
            Ok(()) => {
                failing = false;
                0
            }
            Err(e) => {
                if !std::mem::replace(&mut failing, true) {
                    warn!("access log: write failed ({e}); lines are lost until it works");
                }
                lines
            }
        };
        bytes.clear();
        let _ = back.send((bytes, lost));
    }
}

/// Sends `batch`, waiting for room until `deadline`; gives it back if none
/// came (or the writer is gone).
fn send_until(queue: &SyncSender<Batch>, mut batch: Batch, deadline: Instant) -> Result<(), Batch> {
    loop {
        match queue.try_send(batch) {
            Ok(()) => return Ok(()),
            Err(TrySendError::Full(back)) if Instant::now() < deadline => {
                batch = back;
                thread::sleep(Duration::from_millis(1));
            }
            Err(TrySendError::Full(back) | TrySendError::Disconnected(back)) => return Err(back),
        }
    }
}

/// The request's part of an access-log line, captured before the
/// application takes the request.
#[derive(Debug, Default)]
pub(crate) struct LogLine {
    bytes: Vec<u8>,
    /// Text format: where the status goes (the referer and user agent
    /// follow it).
    split: usize,
}

impl Drop for LogLine {
    fn drop(&mut self) {
        recycle::give(&recycle::LOG_LINES, std::mem::take(&mut self.bytes));
    }
}

/// One core's access log: its lines, its clock, its way to the writer.
pub(crate) struct CoreLog {
    format: LogFormat,
    core: CoreId,
    lines: RefCell<Vec<u8>>,
    count: Cell<u64>,
    queue: SyncSender<Batch>,
    back: Sender<Spare>,
    spares: Receiver<Spare>,
    metrics: Arc<CoreMetrics>,
    /// The current second, as each format writes it.
    clock: RefCell<Clock>,
}

#[derive(Debug, Default)]
struct Clock {
    /// `06/Nov/1994:08:49:37 +0000`
    text: Vec<u8>,
    /// `1994-11-06T08:49:37Z`
    json: Vec<u8>,
}

impl CoreLog {
    pub(crate) fn new(
        format: LogFormat,
        core: CoreId,
        queue: SyncSender<Batch>,
        metrics: Arc<CoreMetrics>,
        date: &HttpDate,
    ) -> CoreLog {
        let (back, spares) = mpsc::channel();
        let log = CoreLog {
            format,
            core,
            lines: RefCell::new(Vec::with_capacity(FLUSH_BYTES * 2)),
            count: Cell::new(0),
            queue,
            back,
            spares,
            metrics,
            clock: RefCell::default(),
        };
        log.set_date(date);
        log
    }

    /// Follows the core's clock (called when `Date` changes).
    pub(crate) fn set_date(&self, date: &HttpDate) {
        let mut clock = self.clock.borrow_mut();
        let Clock { text, json } = &mut *clock;
        text.clear();
        json.clear();
        write_clock(date.as_bytes(), text, json);
    }

    /// Captures the request's part of its line into `line`.
    /// `scheme` is in the JSON format only (the Apache text format has no
    /// field for it).
    pub(crate) fn start(
        &self,
        line: &mut LogLine,
        client: Option<SocketAddr>,
        scheme: &'static str,
        head: &RequestHead,
    ) {
        let request = Some((head.method_str(), head.target(), head.version()));
        let referer = head.header("referer");
        let user_agent = head.header("user-agent");
        self.start_with(line, (client, scheme), request, referer, user_agent);
    }

    /// Captures a line for a request that was refused unparsed (or whose
    /// head never arrived): no request line, no headers.
    pub(crate) fn start_unparsed(
        &self,
        line: &mut LogLine,
        client: Option<SocketAddr>,
        scheme: &'static str,
    ) {
        self.start_with(line, (client, scheme), None, None, None);
    }

    fn start_with(
        &self,
        line: &mut LogLine,
        (client, scheme): (Option<SocketAddr>, &'static str),
        request: Option<(&str, &str, Version)>,
        referer: Option<&[u8]>,
        user_agent: Option<&[u8]>,
    ) {
        if line.bytes.capacity() == 0 {
            line.bytes = recycle::take(&recycle::LOG_LINES);
        }
        let out = &mut line.bytes;
        out.clear();
        let clock = self.clock.borrow();
        match self.format {
            LogFormat::Text => {
                match client {
                    Some(client) => write!(out, "{} - - [", client.ip()),
                    None => write!(out, "unix: - - ["),
                }
                .unwrap_or_default();
                out.extend_from_slice(&clock.text);
                out.extend_from_slice(b"] \"");
                match request {
                    Some((method, target, version)) => {
                        escape_text(method.as_bytes(), out);
                        out.push(b' ');
                        escape_text(target.as_bytes(), out);
                        out.push(b' ');
                        out.extend_from_slice(version_str(version).as_bytes());
                    }
                    None => out.push(b'-'),
                }
                out.extend_from_slice(b"\" ");
                line.split = out.len();
                for value in [referer, user_agent] {
                    out.extend_from_slice(b" \"");
                    match value {
                        Some(value) => escape_text(value, out),
                        None => out.push(b'-'),
                    }
                    out.push(b'"');
                }
            }
            LogFormat::Json => {
                out.extend_from_slice(b"{\"time\":\"");
                out.extend_from_slice(&clock.json);
                match client {
                    Some(client) => write!(out, "\",\"client\":\"{}\"", client.ip()),
                    None => write!(out, "\",\"client\":null"),
                }
                .unwrap_or_default();
                json_field(out, "scheme", Some(scheme.as_bytes()));
                let (method, target, version) = match request {
                    Some((method, target, version)) => (
                        Some(method.as_bytes()),
                        Some(target.as_bytes()),
                        Some(version_str(version).as_bytes()),
                    ),
                    None => (None, None, None),
                };
                json_field(out, "method", method);
                json_field(out, "target", target);
                json_field(out, "version", version);
                json_field(out, "referer", referer);
                json_field(out, "user_agent", user_agent);
                line.split = out.len();
            }
        }
    }

    /// Completes `line` with the response and queues it.
    pub(crate) fn finish(&self, line: &LogLine, status: u16, bytes: u64, elapsed: Duration) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let mut lines = self.lines.borrow_mut();
        let out = &mut *lines;
        let (head, tail) = line.bytes.split_at(line.split.min(line.bytes.len()));
        out.extend_from_slice(head);
        match self.format {
            LogFormat::Text => {
                push_number(out, status);
                out.push(b' ');
                if bytes == 0 {
                    out.push(b'-');
                } else {
                    push_number(out, bytes);
                }
                out.extend_from_slice(tail);
                out.push(b' ');
                push_number(out, micros);
                out.push(b' ');
                push_number(out, self.core.0);
                out.push(b'\n');
            }
            LogFormat::Json => {
                out.extend_from_slice(b",\"status\":");
                push_number(out, status);
                out.extend_from_slice(b",\"bytes\":");
                push_number(out, bytes);
                out.extend_from_slice(b",\"duration_us\":");
                push_number(out, micros);
                out.extend_from_slice(b",\"core\":");
                push_number(out, self.core.0);
                out.extend_from_slice(b"}\n");
            }
        }
        self.count.set(self.count.get() + 1);
        let full = out.len() >= FLUSH_BYTES;
        drop(lines);
        if full {
            self.flush();
        }
    }

    /// Hands the lines written so far to the writer; drops and counts them
    /// if the writer is too far behind.
    pub(crate) fn flush(&self) {
        if let Some(batch) = self.take_batch() {
            if let Err(TrySendError::Full(batch) | TrySendError::Disconnected(batch)) =
                self.queue.try_send(batch)
            {
                self.drop_batch(batch);
            }
        }
    }

    /// Hands over the core's last lines as it stops, waiting a little for
    /// room rather than dropping them.
    pub(crate) fn flush_last(&self) {
        if let Some(batch) = self.take_batch() {
            let deadline = Instant::now() + LAST_FLUSH_WITHIN;
            if let Err(batch) = send_until(&self.queue, batch, deadline) {
                self.drop_batch(batch);
            }
        }
    }

    /// The lines written so far, replaced by a spare buffer; `None` when
    /// there are none. Counts the lines that failed writes lost meanwhile.
    fn take_batch(&self) -> Option<Batch> {
        let mut spare = None;
        while let Ok((buffer, lost)) = self.spares.try_recv() {
            self.metrics.access_log_dropped.add(lost);
            spare.get_or_insert(buffer);
        }
        let count = self.count.replace(0);
        if count == 0 {
            if let Some(buffer) = spare {
                let _ = self.back.send((buffer, 0));
            }
            return None;
        }
        let spare = spare.unwrap_or_else(|| Vec::with_capacity(FLUSH_BYTES * 2));
        let bytes = std::mem::replace(&mut *self.lines.borrow_mut(), spare);
        Some(Batch::Lines(bytes, count, self.back.clone()))
    }

    /// Drops a batch the writer has no room for, and counts its lines.
    fn drop_batch(&self, batch: Batch) {
        if let Batch::Lines(mut bytes, count, _) = batch {
            self.metrics.access_log_dropped.add(count);
            bytes.clear();
            let _ = self.back.send((bytes, 0));
        }
    }
}

/// Hands a core's lines to the writer every [`FLUSH_EVERY`].
pub(crate) async fn flush_every_tick(log: std::rc::Rc<CoreLog>) {
    loop {
        glommio::timer::sleep(FLUSH_EVERY).await;
        log.flush();
    }
}

fn version_str(version: Version) -> &'static str {
    match version {
        Version::Http10 => "HTTP/1.0",
        _ => "HTTP/1.1",
    }
}

/// Both clock forms from an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
fn write_clock(date: &[u8], text: &mut Vec<u8>, json: &mut Vec<u8>) {
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let (day, month, year, time) = (&date[5..7], &date[8..11], &date[12..16], &date[17..25]);
    text.extend_from_slice(day);
    text.push(b'/');
    text.extend_from_slice(month);
    text.push(b'/');
    text.extend_from_slice(year);
    text.push(b':');
    text.extend_from_slice(time);
    text.extend_from_slice(b" +0000");
    let number = MONTHS.iter().position(|m| &m[..] == month).map_or(0, |i| i + 1);
    json.extend_from_slice(year);
    let _ = write!(json, "-{number:02}-");
    json.extend_from_slice(day);
    json.push(b'T');
    json.extend_from_slice(time);
    json.push(b'Z');
}

/// Writes `value` for a quoted text field: printable ASCII as is, `"`, `\`
/// and every other byte as `\xHH` (as nginx does).
fn escape_text(value: &[u8], out: &mut Vec<u8>) {
    for &b in value {
        if (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\' {
            out.push(b);
        } else {
            let _ = write!(out, "\\x{b:02X}");
        }
    }
}

/// Writes `,"name":"value"` (a JSON string) or `,"name":null`.
/// Appends `n` in decimal.
fn push_number(out: &mut Vec<u8>, n: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

fn json_field(out: &mut Vec<u8>, name: &str, value: Option<&[u8]>) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
    let Some(value) = value else {
        out.extend_from_slice(b"null");
        return;
    };
    out.push(b'"');
    for &b in value {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x20..0x7f => out.push(b),
            // Control bytes and bytes past ASCII (header values are bytes,
            // not UTF-8): each as the code point of the same number.
            _ => {
                let _ = write!(out, "\\u{b:04x}");
            }
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{parse_head, Limits};
    use std::time::UNIX_EPOCH;

    fn log(format: LogFormat) -> (CoreLog, mpsc::Receiver<Batch>) {
        let (queue, batches) = mpsc::sync_channel(4);
        let date = HttpDate::from_system_time(UNIX_EPOCH + Duration::from_secs(784_111_777));
        let log = CoreLog::new(format, CoreId(2), queue, Arc::default(), &date);
        (log, batches)
    }

    fn head(raw: &[u8]) -> RequestHead {
        let limits = Limits { max_header_bytes: 4096, max_headers: 32, max_body_bytes: 0 };
        parse_head(raw, &limits).unwrap().unwrap().0
    }

    fn one_line(format: LogFormat, raw: &[u8], status: u16, bytes: u64) -> String {
        let (log, batches) = log(format);
        let mut line = LogLine::default();
        log.start(&mut line, Some("198.51.100.7:4242".parse().unwrap()), "http", &head(raw));
        log.finish(&line, status, bytes, Duration::from_micros(1234));
        log.flush();
        match batches.try_recv() {
            Ok(Batch::Lines(bytes, _, _)) => String::from_utf8(bytes).unwrap(),
            _ => panic!("no lines"),
        }
    }

    #[test]
    fn text_lines_are_combined_format_with_duration_and_core() {
        let raw =
            b"GET /a?b=1 HTTP/1.1\r\nHost: h\r\nReferer: http://r/\r\nUser-Agent: curl/8\r\n\r\n";
        assert_eq!(
            one_line(LogFormat::Text, raw, 200, 13),
            "198.51.100.7 - - [06/Nov/1994:08:49:37 +0000] \"GET /a?b=1 HTTP/1.1\" 200 13 \
             \"http://r/\" \"curl/8\" 1234 2\n"
        );
        let bare = b"HEAD / HTTP/1.0\r\n\r\n";
        assert_eq!(
            one_line(LogFormat::Text, bare, 304, 0),
            "198.51.100.7 - - [06/Nov/1994:08:49:37 +0000] \"HEAD / HTTP/1.0\" 304 - \"-\" \"-\" 1234 2\n"
        );
    }

    #[test]
    fn json_lines_are_one_object_each() {
        let raw = b"GET / HTTP/1.1\r\nHost: h\r\nUser-Agent: a \"quoted\" \\ \xe9\r\n\r\n";
        assert_eq!(
            one_line(LogFormat::Json, raw, 404, 9),
            "{\"time\":\"1994-11-06T08:49:37Z\",\"client\":\"198.51.100.7\",\"scheme\":\"http\",\"method\":\"GET\",\
             \"target\":\"/\",\"version\":\"HTTP/1.1\",\"referer\":null,\
             \"user_agent\":\"a \\\"quoted\\\" \\\\ \\u00e9\",\"status\":404,\"bytes\":9,\
             \"duration_us\":1234,\"core\":2}\n"
        );
    }

    #[test]
    fn quotes_and_control_bytes_cannot_break_a_text_line() {
        let mut out = Vec::new();
        escape_text(b"a\"b\\c\x1b[31m\n\xff", &mut out);
        assert_eq!(out, b"a\\x22b\\x5Cc\\x1B[31m\\x0A\\xFF");
    }

    #[test]
    fn a_writer_that_falls_behind_costs_lines_not_waiting() {
        let (log, batches) = log(LogFormat::Text);
        let mut line = LogLine::default();
        log.start_unparsed(&mut line, None, "http");
        // The queue holds 4 batches; nobody reads it.
        for _ in 0..6 {
            log.finish(&line, 400, 0, Duration::ZERO);
            log.finish(&line, 400, 0, Duration::ZERO);
            log.flush();
        }
        assert_eq!(log.metrics.access_log_dropped.get(), 4, "two batches of two lines");
        assert_eq!(batches.try_iter().count(), 4);
    }

    /// An output that refuses every write (a closed pipe).
    struct Closed;

    impl Write for Closed {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::ErrorKind::BrokenPipe.into())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_a_failed_write_lost_are_counted_at_the_next_hand_over() {
        let (log, batches) = log(LogFormat::Text);
        let mut line = LogLine::default();
        log.start_unparsed(&mut line, None, "http");
        for _ in 0..3 {
            log.finish(&line, 400, 0, Duration::ZERO);
        }
        log.flush();
        let (to_writer, writer_gets) = mpsc::sync_channel(4);
        to_writer.send(batches.try_recv().unwrap()).unwrap();
        to_writer.send(Batch::End).unwrap();
        write_batches(&writer_gets, &mut Closed, mpsc::channel().0);
        assert_eq!(log.metrics.access_log_dropped.get(), 0, "not known to the core yet");
        log.finish(&line, 400, 0, Duration::ZERO);
        log.flush();
        assert_eq!(log.metrics.access_log_dropped.get(), 3);
    }
}
