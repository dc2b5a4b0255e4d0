//! Response heads: status line, the server's own headers, the application's
//! headers and the framing headers, serialised into a caller's buffer.
//!
//! The server's own headers (`Server`, `Date`) change once a second at
//! most, so [`ServerHeaders`] keeps them with the start of a `200` head
//! already rendered: the common response starts with one copy.

use super::date::HttpDate;

/// The interim response sent before reading a body the client is holding
/// back with `Expect: 100-continue`.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// How a response body is delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseFraming {
    /// `Content-Length: n` (also for a HEAD response, whose body is not sent).
    Length(u64),
    /// `Transfer-Encoding: chunked` (a streamed body, HTTP/1.1 clients).
    Chunked,
    /// No length: the body ends when the connection closes (a streamed body
    /// for an HTTP/1.0 client).
    CloseDelimited,
    /// Neither header: 1xx, 204 and 304 responses (RFC 9110 §8.6), and a
    /// HEAD response whose body is streamed or was not produced.
    None,
}

/// The headers the server adds to every response it writes (`Server`, if
/// configured, and `Date`), and `HTTP/1.1 200 OK` followed by both, rendered
/// when the date changes rather than per response.
#[derive(Debug, Clone)]
pub struct ServerHeaders {
    date: HttpDate,
    server: Option<String>,
    ok_head: Vec<u8>,
}

impl ServerHeaders {
    /// The headers for `date`, with `Server: server` if there is one.
    pub fn new(date: HttpDate, server: Option<&str>) -> ServerHeaders {
        let mut headers =
            ServerHeaders { date, server: server.map(str::to_owned), ok_head: Vec::new() };
        headers.render();
        headers
    }

    /// Replaces the `Date` value (the caller's clock ticks once a second).
    pub fn set_date(&mut self, date: HttpDate) {
        if date != self.date {
            self.date = date;
            self.render();
        }
    }

    /// The current `Date` value.
    pub fn date(&self) -> &HttpDate {
        &self.date
    }

    /// The first part of a response head: the status line, these headers
    /// and the application's `headers`, minus those the server owns
    /// (`Content-Length`, `Transfer-Encoding`, `Connection`); an
    /// application's `Date` or `Server` replaces the server's. It depends
    /// neither on the body's framing nor on the connection, so a caller may
    /// keep it for responses with the same status and headers while the
    /// date stands. Headers must have been checked with
    /// [`is_valid_header_name`] and [`is_valid_header_value`].
    pub fn encode_start<'h>(
        &self,
        status: u16,
        headers: impl Iterator<Item = (&'h str, &'h str)> + Clone,
        out: &mut Vec<u8>,
    ) {
        let (mut has_server, mut has_date) = (false, false);
        for (name, _) in headers.clone() {
            has_server |= name.eq_ignore_ascii_case("server");
            has_date |= name.eq_ignore_ascii_case("date");
        }
        if status == 200 && !has_server && !has_date {
            out.extend_from_slice(&self.ok_head);
        } else {
            let mut code = itoa::Buffer::new();
            out.extend_from_slice(b"HTTP/1.1 ");
            out.extend_from_slice(code.format(status).as_bytes());
            out.push(b' ');
            out.extend_from_slice(reason_phrase(status).as_bytes());
            out.extend_from_slice(b"\r\n");
            if let Some(server) = self.server.as_deref().filter(|_| !has_server) {
                put(out, "Server", server.as_bytes());
            }
            if !has_date {
                put(out, "Date", self.date.as_bytes());
            }
        }
        for (name, value) in headers {
            if !is_framing_header(name) {
                put(out, name, value.as_bytes());
            }
        }
    }

    fn render(&mut self) {
        let out = &mut self.ok_head;
        out.clear();
        out.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
        if let Some(server) = &self.server {
            put(out, "Server", server.as_bytes());
        }
        put(out, "Date", self.date.as_bytes());
    }
}

/// Everything needed to serialise one response head.
#[derive(Debug, Clone, Copy)]
pub struct ResponseHead<'a> {
    /// Status code (the server sends 200..=599 from applications, and its
    /// own 4xx/5xx).
    pub status: u16,
    /// Body framing.
    pub framing: ResponseFraming,
    /// `false` adds `Connection: close`.
    pub keep_alive: bool,
    /// The client spoke HTTP/1.0: keep-alive must be announced explicitly.
    pub http10: bool,
    /// The server's `Server` and `Date` values.
    pub server_headers: &'a ServerHeaders,
}

impl ResponseHead<'_> {
    /// Appends the head to `out`, followed by `headers` (the application's),
    /// skipping those the server owns (`Content-Length`, `Transfer-Encoding`,
    /// `Connection`) and letting the application's `Date` or `Server`
    /// replace the defaults. Headers must have been checked with
    /// [`is_valid_header_name`] and [`is_valid_header_value`].
    pub fn encode<'h>(
        &self,
        headers: impl Iterator<Item = (&'h str, &'h str)> + Clone,
        out: &mut Vec<u8>,
    ) {
        self.server_headers.encode_start(self.status, headers, out);
        encode_end(self.framing, self.keep_alive, self.http10, out);
    }
}

/// The end of a response head: the framing headers, `Connection` when the
/// connection closes (or, for HTTP/1.0, stays open), and the blank line.
pub fn encode_end(framing: ResponseFraming, keep_alive: bool, http10: bool, out: &mut Vec<u8>) {
    match framing {
        ResponseFraming::Length(n) => {
            let mut len = itoa::Buffer::new();
            put(out, "Content-Length", len.format(n).as_bytes());
        }
        ResponseFraming::Chunked => put(out, "Transfer-Encoding", b"chunked"),
        ResponseFraming::CloseDelimited | ResponseFraming::None => {}
    }
    if !keep_alive {
        put(out, "Connection", b"close");
    } else if http10 {
        put(out, "Connection", b"keep-alive");
    }
    out.extend_from_slice(b"\r\n");
}

/// The end of a `101 Switching Protocols` head (RFC 9110 §7.8): the
/// connection switches to the protocol the `Upgrade` header names.
pub fn encode_upgrade_end(out: &mut Vec<u8>) {
    put(out, "Connection", b"upgrade");
    out.extend_from_slice(b"\r\n");
}

#[inline]
fn put(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.reserve(name.len() + value.len() + 4);
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

fn is_framing_header(name: &str) -> bool {
    name.eq_ignore_ascii_case("content-length")
        || name.eq_ignore_ascii_case("transfer-encoding")
        || name.eq_ignore_ascii_case("connection")
}

/// A field name is a non-empty token (RFC 9110 §5.1).
pub fn is_valid_header_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| TOKEN_BYTES[usize::from(b)])
}

/// The bytes of a token (RFC 9110 §5.6.2).
static TOKEN_BYTES: [bool; 256] = byte_table!(|b| b.is_ascii_alphanumeric()
    || matches!(
        b,
        b'!' | b'#'..=b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~'
    ));

/// A field value may not contain CR, LF, NUL or other controls but HTAB
/// (RFC 9110 §5.5): the check that keeps an application's header from
/// splitting the response.
pub fn is_valid_header_value(value: &str) -> bool {
    // No early exit: the whole value is looked at in a few vector steps.
    value.bytes().fold(true, |ok, b| ok & ((b >= 0x20) & (b != 0x7f) | (b == b'\t')))
}

/// Whether a `Connection` value contains the `close` option.
pub fn connection_has_close(value: &[u8]) -> bool {
    super::request::has_token(value, "close")
}

/// The reason phrase for `status` (empty for codes without one).
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn encode(head: ResponseHead<'_>, headers: &[(&str, &str)]) -> String {
        let mut out = Vec::new();
        head.encode(headers.iter().copied(), &mut out);
        String::from_utf8(out).unwrap()
    }

    fn epoch_headers() -> ServerHeaders {
        ServerHeaders::new(HttpDate::from_system_time(UNIX_EPOCH), Some("uring-serve"))
    }

    fn head(server_headers: &ServerHeaders) -> ResponseHead<'_> {
        ResponseHead {
            status: 200,
            framing: ResponseFraming::Length(5),
            keep_alive: true,
            http10: false,
            server_headers,
        }
    }

    #[test]
    fn encodes_status_defaults_and_length() {
        let own = epoch_headers();
        let text = encode(head(&own), &[("content-type", "text/plain")]);
        assert_eq!(
            text,
            "HTTP/1.1 200 OK\r\nServer: uring-serve\r\nDate: Thu, 01 Jan 1970 00:00:00 GMT\r\n\
             content-type: text/plain\r\nContent-Length: 5\r\n\r\n"
        );
    }

    #[test]
    fn content_length_is_written_in_decimal_at_any_size() {
        for n in [0, 7, 10, 99, 100, 12_345, u64::MAX] {
            let mut out = Vec::new();
            encode_end(ResponseFraming::Length(n), true, false, &mut out);
            assert_eq!(out, format!("Content-Length: {n}\r\n\r\n").into_bytes());
        }
    }

    #[test]
    fn other_statuses_carry_the_same_server_headers() {
        let own = epoch_headers();
        let text = encode(ResponseHead { status: 404, ..head(&own) }, &[]);
        assert!(text.starts_with(
            "HTTP/1.1 404 Not Found\r\nServer: uring-serve\r\n\
             Date: Thu, 01 Jan 1970 00:00:00 GMT\r\n"
        ));
    }

    #[test]
    fn a_new_date_is_in_the_next_head() {
        let mut own = epoch_headers();
        own.set_date(HttpDate::from_system_time(UNIX_EPOCH + std::time::Duration::from_secs(61)));
        let text = encode(head(&own), &[]);
        assert!(text.contains("Date: Thu, 01 Jan 1970 00:01:01 GMT\r\n"), "{text}");
        assert!(!text.contains("00:00:00"));
    }

    #[test]
    fn without_a_server_value_no_server_header_is_sent() {
        let own = ServerHeaders::new(HttpDate::from_system_time(UNIX_EPOCH), None);
        let text = encode(head(&own), &[]);
        assert!(text.starts_with("HTTP/1.1 200 OK\r\nDate: "), "{text}");
    }

    #[test]
    fn framing_headers_of_the_application_are_replaced() {
        let own = epoch_headers();
        let h = ResponseHead { keep_alive: false, ..head(&own) };
        let text =
            encode(h, &[("Content-Length", "99"), ("Transfer-Encoding", "gzip"), ("Server", "x")]);
        assert!(!text.contains("99") && !text.contains("gzip"));
        assert!(text.contains("Server: x\r\n") && !text.contains("uring-serve"));
        assert!(text.ends_with("Content-Length: 5\r\nConnection: close\r\n\r\n"));
    }

    #[test]
    fn header_checks_refuse_response_splitting() {
        assert!(is_valid_header_value("a\tb c"));
        assert!(!is_valid_header_value("a\r\nSet-Cookie: x"));
        assert!(!is_valid_header_name("bad name"));
        assert!(!is_valid_header_name(""));
    }
}
