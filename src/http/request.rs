//! Request heads: parsing with httparse, then the framing and connection
//! rules of RFC 9112 applied to what was parsed.

use std::cell::RefCell;
use std::fmt;
use std::mem::{ManuallyDrop, MaybeUninit};
use std::ops::Range;

use crate::recycle;

/// The most header lines [`Limits::max_headers`] may allow; the parser keeps
/// this many (uninitialised) header slots on the stack.
pub const MAX_HEADERS_CAP: usize = 512;

/// The longest chunk-extension or trailer line accepted in a chunked body.
pub(crate) const MAX_LINE_BYTES: usize = 4096;

/// What a client may send, checked while parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest request head (request line + header lines), in bytes.
    pub max_header_bytes: usize,
    /// Most header lines in one request head (at most [`MAX_HEADERS_CAP`]).
    pub max_headers: usize,
    /// Largest request body, in bytes (Content-Length or chunked).
    pub max_body_bytes: u64,
}

/// Why a request was refused. Each maps to the status it is answered with;
/// after any of them the connection is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// The message is not valid HTTP/1.1 (400). The text says what was wrong.
    Malformed(&'static str),
    /// The request line is longer than the head limit allows (414).
    UriTooLong,
    /// The head is larger than [`Limits::max_header_bytes`] (431).
    HeadTooLarge,
    /// The head has more header lines than [`Limits::max_headers`] (431).
    TooManyHeaders,
    /// The body is larger than [`Limits::max_body_bytes`] (413).
    BodyTooLarge,
    /// An `Expect` other than `100-continue` (417).
    UnsupportedExpectation,
    /// Something this server does not implement, such as a transfer coding
    /// other than chunked (501).
    NotImplemented(&'static str),
    /// An HTTP version other than 1.0 and 1.1 (505).
    UnsupportedVersion,
}

impl ParseError {
    /// The status code this error is answered with.
    pub fn status(&self) -> u16 {
        match self {
            ParseError::Malformed(_) => 400,
            ParseError::BodyTooLarge => 413,
            ParseError::UriTooLong => 414,
            ParseError::UnsupportedExpectation => 417,
            ParseError::HeadTooLarge | ParseError::TooManyHeaders => 431,
            ParseError::NotImplemented(_) => 501,
            ParseError::UnsupportedVersion => 505,
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Malformed(why) => write!(f, "malformed request: {why}"),
            ParseError::UriTooLong => f.write_str("request line too long"),
            ParseError::HeadTooLarge => f.write_str("request head too large"),
            ParseError::TooManyHeaders => f.write_str("too many header lines"),
            ParseError::BodyTooLarge => f.write_str("request body too large"),
            ParseError::UnsupportedExpectation => f.write_str("unsupported Expect value"),
            ParseError::NotImplemented(what) => write!(f, "not implemented: {what}"),
            ParseError::UnsupportedVersion => f.write_str("unsupported HTTP version"),
        }
    }
}

impl std::error::Error for ParseError {}

/// The request method. Methods without a variant are [`Method::Other`]; their
/// name is in [`RequestHead::method_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Options,
    Trace,
    Patch,
    Other,
}

impl Method {
    fn from_token(token: &str) -> Method {
        match token {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "OPTIONS" => Method::Options,
            "TRACE" => Method::Trace,
            "PATCH" => Method::Patch,
            _ => Method::Other,
        }
    }
}

/// The HTTP version of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// HTTP/1.0: keep-alive only when asked for.
    Http10,
    /// HTTP/1.1: keep-alive unless `Connection: close`.
    Http11,
}

/// How the body of a request is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body.
    Empty,
    /// Exactly this many bytes follow the head.
    Length(u64),
    /// A chunked body follows the head.
    Chunked,
}

/// A parsed request head. It owns a copy of the head's bytes and refers to
/// its parts by offset. It is one pointer: its parts are in a box that is
/// recycled per thread with its two vectors (see `recycle`), so a request
/// moves cheaply and a steady stream of requests allocates nothing.
pub struct RequestHead {
    parts: ManuallyDrop<Box<HeadParts>>,
}

/// What a [`RequestHead`] holds.
#[derive(Clone)]
struct HeadParts {
    bytes: Vec<u8>,
    method: Method,
    method_len: usize,
    target: Range<usize>,
    path: Range<usize>,
    query: Option<Range<usize>>,
    authority: Option<Range<usize>>,
    version: Version,
    headers: Vec<(Range<usize>, Range<usize>)>,
    framing: BodyFraming,
    keep_alive: bool,
    expect_continue: bool,
}

thread_local! {
    /// Spare head parts, their vectors empty but with their capacity.
    static SPARE_PARTS: recycle::BoxShelf<HeadParts> = const { RefCell::new(Vec::new()) };
}

impl HeadParts {
    fn new() -> HeadParts {
        HeadParts {
            bytes: Vec::new(),
            method: Method::Get,
            method_len: 0,
            target: 0..0,
            path: 0..0,
            query: None,
            authority: None,
            version: Version::Http11,
            headers: Vec::new(),
            framing: BodyFraming::Empty,
            keep_alive: true,
            expect_continue: false,
        }
    }
}

impl Clone for RequestHead {
    fn clone(&self) -> RequestHead {
        RequestHead { parts: ManuallyDrop::new(Box::new(HeadParts::clone(&self.parts))) }
    }
}

impl Drop for RequestHead {
    fn drop(&mut self) {
        // SAFETY: `parts` is taken here, once, and `self` is not used again.
        let mut parts = unsafe { ManuallyDrop::take(&mut self.parts) };
        if recycle::is_worth_keeping(&parts.bytes) && recycle::is_worth_keeping(&parts.headers) {
            parts.bytes.clear();
            parts.headers.clear();
            recycle::give_box(&SPARE_PARTS, parts);
        }
    }
}

impl RequestHead {
    /// The method.
    pub fn method(&self) -> Method {
        self.parts.method
    }

    /// The method as sent (`"GET"`, `"PROPFIND"`, ...).
    pub fn method_str(&self) -> &str {
        self.str_at(0..self.parts.method_len)
    }

    /// The request target as sent: `/path?query`, or an absolute URI.
    pub fn target(&self) -> &str {
        self.str_at(self.parts.target.clone())
    }

    /// The path of the target (`/` when an absolute URI has none), without
    /// the query. Percent-encoding is left as sent.
    pub fn path(&self) -> &str {
        if self.parts.path.is_empty() {
            "/"
        } else {
            self.str_at(self.parts.path.clone())
        }
    }

    /// The query of the target (after `?`), if it has one.
    pub fn query(&self) -> Option<&str> {
        self.parts.query.clone().map(|q| self.str_at(q))
    }

    /// The host the request is for: the authority of an absolute-form
    /// target, which RFC 9112 §3.2.2 says replaces the Host header, or else
    /// the Host header (`None` for an HTTP/1.0 request without one).
    pub fn host(&self) -> Option<&str> {
        match &self.parts.authority {
            Some(authority) => Some(self.str_at(authority.clone())),
            None => self.header("host").and_then(|h| std::str::from_utf8(h).ok()),
        }
    }

    /// The HTTP version.
    pub fn version(&self) -> Version {
        self.parts.version
    }

    /// The header lines in the order sent, names as sent.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> + '_ {
        self.parts
            .headers
            .iter()
            .map(|(n, v)| (self.str_at(n.clone()), &self.parts.bytes[v.clone()]))
    }

    /// The head's bytes as received. With [`RequestHead::target_range`]
    /// and [`RequestHead::header_ranges`], for a caller that copies the
    /// head once and shares slices of it rather than copy each part.
    #[cfg(feature = "tower")]
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.parts.bytes
    }

    /// Where the target lies in [`RequestHead::bytes`].
    #[cfg(feature = "tower")]
    pub(crate) fn target_range(&self) -> Range<usize> {
        self.parts.target.clone()
    }

    /// Where each header line's name and value lie in
    /// [`RequestHead::bytes`], in the order sent.
    #[cfg(feature = "tower")]
    pub(crate) fn header_ranges(&self) -> &[(Range<usize>, Range<usize>)] {
        &self.parts.headers
    }

    /// The value of the first header named `name` (any case).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.parts
            .headers
            .iter()
            .find(|(n, _)| self.parts.bytes[n.clone()].eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| &self.parts.bytes[v.clone()])
    }

    /// How the body is delimited.
    pub fn framing(&self) -> BodyFraming {
        self.parts.framing
    }

    /// Whether the client allows the connection to stay open after the
    /// response (HTTP/1.1 unless `Connection: close`; HTTP/1.0 only with
    /// `Connection: keep-alive`).
    pub fn keep_alive(&self) -> bool {
        self.parts.keep_alive
    }

    /// Whether the client waits for `100 Continue` before sending the body.
    pub fn expect_continue(&self) -> bool {
        self.parts.expect_continue
    }

    /// The text at `range`, which is the method, the target or a part of
    /// it, or a header name.
    fn str_at(&self, range: Range<usize>) -> &str {
        let bytes = &self.parts.bytes[range];
        debug_assert!(bytes.is_ascii());
        // SAFETY: every range this is called with was taken from the copy of
        // the head of a method, target or header name that httparse checked
        // to be tokens, and a target that `split_target` checked to be
        // visible ASCII; parts of the target are split at ASCII bytes. ASCII
        // is UTF-8, so checking again on every call would only cost time.
        unsafe { std::str::from_utf8_unchecked(bytes) }
    }
}

impl fmt::Debug for RequestHead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestHead")
            .field("method", &self.method_str())
            .field("target", &self.target())
            .field("version", &self.parts.version)
            .field("headers", &self.parts.headers.len())
            .field("framing", &self.parts.framing)
            .field("keep_alive", &self.parts.keep_alive)
            .finish()
    }
}

/// Parses a request head from the start of `buf`.
///
/// Returns `Ok(None)` while the head is incomplete (call again with more
/// bytes), or the head and the number of bytes it took (empty lines before
/// the request line included). Only the first
/// [`Limits::max_header_bytes`] bytes are looked at.
pub fn parse_head(buf: &[u8], limits: &Limits) -> Result<Option<(RequestHead, usize)>, ParseError> {
    let window = &buf[..buf.len().min(limits.max_header_bytes)];
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS_CAP];
    let slots = &mut slots[..limits.max_headers.clamp(1, MAX_HEADERS_CAP)];
    let mut req = httparse::Request::new(&mut []);
    let parsed = httparse::ParserConfig::default()
        .parse_request_with_uninit_headers(&mut req, window, slots);
    match parsed {
        Ok(httparse::Status::Complete(len)) => build_head(window, len, &req, limits).map(Some),
        Ok(httparse::Status::Partial) if window.len() < limits.max_header_bytes => Ok(None),
        Ok(httparse::Status::Partial) => {
            if request_line_complete(window) {
                Err(ParseError::HeadTooLarge)
            } else {
                Err(ParseError::UriTooLong)
            }
        }
        Err(httparse::Error::TooManyHeaders) => Err(ParseError::TooManyHeaders),
        Err(httparse::Error::Version) => match classify_version(window) {
            Some(error) => Err(error),
            None if window.len() < limits.max_header_bytes => Ok(None),
            None => Err(ParseError::UriTooLong),
        },
        Err(e) => Err(ParseError::Malformed(httparse_reason(e))),
    }
}

fn httparse_reason(e: httparse::Error) -> &'static str {
    match e {
        httparse::Error::HeaderName => "invalid header name",
        httparse::Error::HeaderValue => "invalid header value",
        httparse::Error::NewLine => "invalid line ending",
        httparse::Error::Status => "invalid status",
        httparse::Error::Token => "invalid token in request line",
        httparse::Error::TooManyHeaders => "too many headers",
        httparse::Error::Version => "invalid HTTP version",
    }
}

/// Whether bytes the parser refused at least start like a HEAD request, so
/// the refusal is sent without a body (RFC 9110 §9.3.2).
pub(crate) fn starts_like_head(buf: &[u8]) -> bool {
    skip_empty_lines(buf).starts_with(b"HEAD ")
}

/// `buf` without the empty lines a request may start with (RFC 9112 §2.2).
fn skip_empty_lines(buf: &[u8]) -> &[u8] {
    let start = buf.iter().position(|&b| b != b'\r' && b != b'\n').unwrap_or(buf.len());
    &buf[start..]
}

fn has_bare_lf(head: &[u8]) -> bool {
    // Every byte is looked at, without an early exit, so the loop compiles
    // to vector compares: a head has a handful of line ends, and finding
    // each with its own `memchr` call cost more than this whole pass.
    let first = head.first() == Some(&b'\n');
    let bare = head.iter().zip(&head[1.min(head.len())..]);
    first | bare.fold(false, |found, (&prev, &b)| found | ((b == b'\n') & (prev != b'\r')))
}

fn request_line_complete(buf: &[u8]) -> bool {
    memchr::memchr(b'\n', skip_empty_lines(buf)).is_some()
}

/// `HTTP/2.0` or `HTTP/1.2` is a version we do not speak (505); anything
/// that is not `HTTP/<digit>.<digit>` is a malformed request (400). `None`
/// while the request line is unfinished and could still become either, so
/// the answer never depends on how the bytes were split. (RFC 9110 §2.5 lets
/// a server treat 1.2 as 1.1; answering 505 is the stricter choice.)
fn classify_version(buf: &[u8]) -> Option<ParseError> {
    const PATTERN: &[u8] = b"HTTP/#.#";
    let line = skip_empty_lines(buf);
    let end = memchr::memchr2(b'\r', b'\n', line);
    let line = &line[..end.unwrap_or(line.len())];
    // request-line = method SP request-target SP HTTP-version
    let version = line.splitn(3, |&b| b == b' ').nth(2).unwrap_or_default();
    let fits = |(&b, &p): (&u8, &u8)| if p == b'#' { b.is_ascii_digit() } else { b == p };
    let matches_so_far = version.len() <= PATTERN.len() && version.iter().zip(PATTERN).all(fits);
    match (end.is_some(), matches_so_far) {
        (_, false) => Some(ParseError::Malformed("invalid HTTP version")),
        (true, true) if version.len() == PATTERN.len() => Some(ParseError::UnsupportedVersion),
        (true, true) => Some(ParseError::Malformed("invalid HTTP version")),
        (false, true) => None,
    }
}

/// Offset of `part` inside `whole`; `part` must be a sub-slice of `whole`.
fn offset_in(whole: &[u8], part: &[u8]) -> usize {
    part.as_ptr() as usize - whole.as_ptr() as usize
}

fn range_in(whole: &[u8], part: &[u8]) -> Range<usize> {
    let start = offset_in(whole, part);
    start..start + part.len()
}

/// What the header lines say about framing and the connection.
#[derive(Default)]
struct HeaderFacts {
    content_length: Option<u64>,
    transfer_encoding: bool,
    chunked_count: u32,
    chunked_last: bool,
    unknown_coding: bool,
    close: bool,
    keep_alive: bool,
    host_count: u32,
    expect_continue: bool,
    expect_other: bool,
}

fn build_head(
    buf: &[u8],
    len: usize,
    req: &httparse::Request<'_, '_>,
    limits: &Limits,
) -> Result<(RequestHead, usize), ParseError> {
    // httparse fills every field of a Complete request.
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(ParseError::Malformed("incomplete request line"));
    };
    let version = if minor == 0 { Version::Http10 } else { Version::Http11 };
    let method_kind = Method::from_token(method);
    if method == "CONNECT" {
        return Err(ParseError::NotImplemented("CONNECT"));
    }

    // Taken first so that its vectors are filled in place; on an error it
    // goes back to the shelf.
    let mut head = RequestHead {
        parts: ManuallyDrop::new(
            recycle::take_box(&SPARE_PARTS).unwrap_or_else(|| Box::new(HeadParts::new())),
        ),
    };
    let parts = &mut **head.parts;
    let mut facts = HeaderFacts::default();
    parts.headers.reserve(req.headers.len());
    for h in req.headers.iter() {
        parts.headers.push((range_in(buf, h.name.as_bytes()), range_in(buf, h.value)));
        note_header(&mut facts, h.name, h.value)?;
    }

    // RFC 9112 §2.2 lets a recipient accept a bare LF as a line ending; the
    // safer choice is to refuse it, so no other parser on the path can read
    // this head's lines differently.
    if has_bare_lf(&buf[..len]) {
        return Err(ParseError::Malformed("line ending without CR"));
    }
    let target_range = range_in(buf, target.as_bytes());
    let target_parts = split_target(target, target_range.start, method_kind)?;

    // RFC 9112 §3.2: 400 for any request with more than one Host, and for an
    // HTTP/1.1 request without one.
    if facts.host_count > 1 {
        return Err(ParseError::Malformed("more than one Host header"));
    }
    if version == Version::Http11 && facts.host_count == 0 {
        return Err(ParseError::Malformed("missing Host header"));
    }

    let framing = if facts.transfer_encoding {
        if version == Version::Http10 {
            return Err(ParseError::Malformed("Transfer-Encoding in an HTTP/1.0 request"));
        }
        if facts.content_length.is_some() {
            return Err(ParseError::Malformed("both Content-Length and Transfer-Encoding"));
        }
        if !facts.chunked_last {
            return Err(ParseError::Malformed("chunked is not the final transfer coding"));
        }
        if facts.chunked_count > 1 {
            return Err(ParseError::Malformed("chunked applied more than once"));
        }
        if facts.unknown_coding {
            return Err(ParseError::NotImplemented("transfer coding other than chunked"));
        }
        BodyFraming::Chunked
    } else {
        match facts.content_length {
            Some(n) if n > limits.max_body_bytes => return Err(ParseError::BodyTooLarge),
            Some(0) | None => BodyFraming::Empty,
            Some(n) => BodyFraming::Length(n),
        }
    };

    // RFC 9110 §10.1.1: an HTTP/1.0 request's expectation is ignored.
    let expect_continue = version == Version::Http11 && facts.expect_continue;
    if version == Version::Http11 && facts.expect_other {
        return Err(ParseError::UnsupportedExpectation);
    }
    let keep_alive = match version {
        Version::Http11 => !facts.close,
        Version::Http10 => facts.keep_alive && !facts.close,
    };

    parts.bytes.extend_from_slice(&buf[..len]);
    parts.method = method_kind;
    parts.method_len = method.len();
    parts.target = target_range;
    parts.path = target_parts.path;
    parts.query = target_parts.query;
    parts.authority = target_parts.authority;
    parts.version = version;
    parts.framing = framing;
    parts.keep_alive = keep_alive;
    parts.expect_continue = expect_continue && framing != BodyFraming::Empty;
    Ok((head, len))
}

fn note_header(facts: &mut HeaderFacts, name: &str, value: &[u8]) -> Result<(), ParseError> {
    let name = name.as_bytes();
    if token_is(name, b"content-length") {
        let n = parse_content_length(value)?;
        if facts.content_length.is_some_and(|prev| prev != n) {
            return Err(ParseError::Malformed("conflicting Content-Length values"));
        }
        facts.content_length = Some(n);
    } else if token_is(name, b"transfer-encoding") {
        facts.transfer_encoding = true;
        let mut any = false;
        for coding in list_elements(value) {
            any = true;
            if coding.eq_ignore_ascii_case(b"chunked") {
                facts.chunked_count += 1;
                facts.chunked_last = true;
            } else {
                facts.unknown_coding = true;
                facts.chunked_last = false;
            }
        }
        if !any {
            return Err(ParseError::Malformed("empty Transfer-Encoding"));
        }
    } else if token_is(name, b"connection") {
        for option in list_elements(value) {
            if option.eq_ignore_ascii_case(b"close") {
                facts.close = true;
            } else if option.eq_ignore_ascii_case(b"keep-alive") {
                facts.keep_alive = true;
            }
        }
    } else if token_is(name, b"host") {
        facts.host_count += 1;
        if !is_valid_host(value) {
            return Err(ParseError::Malformed("invalid Host header"));
        }
    } else if token_is(name, b"expect") {
        for expectation in list_elements(value) {
            if expectation.eq_ignore_ascii_case(b"100-continue") {
                facts.expect_continue = true;
            } else {
                facts.expect_other = true;
            }
        }
    }
    Ok(())
}

/// Whether the header name `name` (a token, as httparse checked) is
/// `lower` in any case. `lower` holds lowercase letters and `-` only: for
/// those, a token byte with bit 0x20 set equals them exactly when it is the
/// same letter in either case, or `-`. No early exit, so it compiles to a few
/// vector operations; names of other lengths are told apart at once.
fn token_is(name: &[u8], lower: &[u8]) -> bool {
    debug_assert!(lower.iter().all(|&b| b.is_ascii_lowercase() || b == b'-'));
    name.len() == lower.len()
        && name.iter().zip(lower).fold(0, |diff, (&b, &l)| diff | ((b | 0x20) ^ l)) == 0
}

/// Content-Length is `1*DIGIT`; a list of identical values is accepted as one
/// (RFC 9112 §6.3, item 5), anything else is an error.
fn parse_content_length(value: &[u8]) -> Result<u64, ParseError> {
    let mut result: Option<u64> = None;
    for element in value.split(|&b| b == b',').map(trim_ows) {
        if element.is_empty() || !element.iter().all(u8::is_ascii_digit) {
            return Err(ParseError::Malformed("invalid Content-Length"));
        }
        let n = element
            .iter()
            .try_fold(0u64, |acc, &d| acc.checked_mul(10)?.checked_add(u64::from(d - b'0')));
        let Some(n) = n else {
            return Err(ParseError::Malformed("Content-Length overflows"));
        };
        if result.is_some_and(|prev| prev != n) {
            return Err(ParseError::Malformed("conflicting Content-Length values"));
        }
        result = Some(n);
    }
    result.ok_or(ParseError::Malformed("invalid Content-Length"))
}

/// Elements of a comma-separated list, trimmed, empty elements skipped
/// (RFC 9110 §5.6.1).
pub(crate) fn list_elements(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b',').map(trim_ows).filter(|e| !e.is_empty())
}

/// Whether a comma-separated header value (`Connection`, `Upgrade`) holds
/// `token`, in any case (RFC 9110 §5.6.1, §7.6.1).
pub fn has_token(value: &[u8], token: &str) -> bool {
    list_elements(value).any(|element| element.eq_ignore_ascii_case(token.as_bytes()))
}

fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// `uri-host [ ":" port ]` (RFC 9110 §7.2, RFC 3986 §3.2.2): an
/// IP-literal in brackets or a reg-name/IPv4 address, then an optional
/// numeric port. Empty is allowed (a target without authority).
fn is_valid_host(value: &[u8]) -> bool {
    let (host, port) = if value.first() == Some(&b'[') {
        let Some(close) = memchr::memchr(b']', value) else {
            return false;
        };
        let literal = &value[1..close];
        if literal.is_empty()
            || !literal.iter().all(|&b| b.is_ascii_hexdigit() || b":.vV%-_~".contains(&b))
        {
            return false;
        }
        match &value[close + 1..] {
            [] => return true,
            [b':', port @ ..] => (&value[..0], port),
            _ => return false,
        }
    } else {
        // One pass up to the colon: a Host value is a few bytes, too short
        // for a vectorised search to pay for its set-up.
        match value.iter().position(|&b| !REG_NAME_BYTES[usize::from(b)]) {
            None => return true,
            Some(colon) if value[colon] == b':' => (&value[..0], &value[colon + 1..]),
            Some(_) => return false,
        }
    };
    host.iter().all(|&b| REG_NAME_BYTES[usize::from(b)]) && port.iter().all(u8::is_ascii_digit)
}

/// Where the parts of a request target are (offsets into the head).
struct TargetParts {
    path: Range<usize>,
    query: Option<Range<usize>>,
    authority: Option<Range<usize>>,
}

/// Splits the request target into its parts, by the request-target forms of
/// RFC 9112 §3.2.
fn split_target(target: &str, base: usize, method: Method) -> Result<TargetParts, ParseError> {
    let bytes = target.as_bytes();
    if !bytes.iter().all(|&b| is_target_byte(b)) {
        return Err(ParseError::Malformed("invalid character in request target"));
    }
    let mut authority = None;
    let path_start = if bytes.first() == Some(&b'/') {
        0
    } else if target == "*" {
        if method != Method::Options {
            return Err(ParseError::Malformed("asterisk-form is only for OPTIONS"));
        }
        0
    } else if let Some(after_scheme) = absolute_form_authority(bytes) {
        // absolute-form: the path starts at the first '/' or '?' after the
        // authority; it may be empty. RFC 9110 §4.2.1: an http(s) URI with
        // an empty host is invalid; §4.2.4: userinfo is refused.
        let path_start = bytes[after_scheme..]
            .iter()
            .position(|&b| b == b'/' || b == b'?')
            .map_or(bytes.len(), |p| after_scheme + p);
        let host = &bytes[after_scheme..path_start];
        if host.is_empty() || host.contains(&b'@') || !is_valid_host(host) {
            return Err(ParseError::Malformed("invalid authority in request target"));
        }
        authority = Some(base + after_scheme..base + path_start);
        path_start
    } else {
        return Err(ParseError::Malformed("invalid request target"));
    };
    let rest = &bytes[path_start..];
    let (path_len, query) = match rest.iter().position(|&b| b == b'?') {
        Some(q) => (q, Some(base + path_start + q + 1..base + bytes.len())),
        None => (rest.len(), None),
    };
    Ok(TargetParts { path: base + path_start..base + path_start + path_len, query, authority })
}

/// Bytes a request target may hold (RFC 3986 §2: unreserved, reserved
/// but `#`, and `%`): printable ASCII but `"<>\^`{|}#`.
fn is_target_byte(b: u8) -> bool {
    TARGET_BYTES[usize::from(b)]
}

/// [`is_target_byte`] as a table.
static TARGET_BYTES: [bool; 256] = byte_table!(|b| b.is_ascii_graphic()
    && !matches!(b, b'"' | b'<' | b'>' | b'\\' | b'^' | b'`' | b'{' | b'|' | b'}' | b'#'));

/// Bytes of a reg-name or IPv4 address (RFC 3986 §3.2.2).
static REG_NAME_BYTES: [bool; 256] = byte_table!(|b| b.is_ascii_alphanumeric()
    || matches!(
        b,
        b'-' | b'.'
            | b'_'
            | b'~'
            | b'!'
            | b'$'
            | b'&'
            | b'\''
            | b'('
            | b')'
            | b'*'
            | b'+'
            | b','
            | b';'
            | b'='
            | b'%'
    ));

/// For `http://authority...` or `https://...` (any case), the offset just
/// past `://`.
fn absolute_form_authority(target: &[u8]) -> Option<usize> {
    let scheme_end = memchr::memchr(b':', target)?;
    let scheme = &target[..scheme_end];
    let is_http = scheme.eq_ignore_ascii_case(b"http") || scheme.eq_ignore_ascii_case(b"https");
    (is_http && target[scheme_end..].starts_with(b"://")).then_some(scheme_end + 3)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits =
        Limits { max_header_bytes: 8192, max_headers: 64, max_body_bytes: 1 << 20 };

    fn parse(raw: &str) -> Result<Option<(RequestHead, usize)>, ParseError> {
        parse_head(raw.as_bytes(), &LIMITS)
    }

    fn head(raw: &str) -> RequestHead {
        match parse(raw) {
            Ok(Some((head, _))) => head,
            other => panic!("expected a complete head, got {other:?}"),
        }
    }

    fn error(raw: &str) -> ParseError {
        match parse(raw) {
            Err(e) => e,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn parses_origin_form_with_query() {
        let h = head("GET /a/b?x=1&y HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(h.method(), Method::Get);
        assert_eq!(h.path(), "/a/b");
        assert_eq!(h.query(), Some("x=1&y"));
        assert_eq!(h.target(), "/a/b?x=1&y");
        assert_eq!(h.header("HOST"), Some(&b"h"[..]));
        assert!(h.keep_alive());
    }

    #[test]
    fn incomplete_head_asks_for_more() {
        assert!(matches!(parse("GET / HTTP/1.1\r\nHost: h\r\n"), Ok(None)));
        assert!(matches!(parse("GE"), Ok(None)));
    }

    /// RFC 9112 §2.2: a server SHOULD ignore at least one empty line received
    /// before the request-line.
    #[test]
    fn empty_lines_before_request_line_are_ignored() {
        let raw = "\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n";
        let (h, len) = parse(raw).unwrap().unwrap();
        assert_eq!(h.path(), "/");
        assert_eq!(len, raw.len());
    }

    /// RFC 9112 §3.2.2: a server MUST accept the absolute-form.
    #[test]
    fn absolute_form_target_yields_its_path() {
        let h = head("GET http://example.com/x?q HTTP/1.1\r\nHost: example.com\r\n\r\n");
        assert_eq!(h.path(), "/x");
        assert_eq!(h.query(), Some("q"));
        let h = head("GET HTTP://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n");
        assert_eq!(h.path(), "/");
    }

    /// RFC 9112 §3.2: a server MUST respond 400 to an HTTP/1.1 request that
    /// lacks a Host header or has more than one.
    #[test]
    fn host_is_required_once_in_http11() {
        assert_eq!(error("GET / HTTP/1.1\r\n\r\n").status(), 400);
        assert_eq!(error("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n").status(), 400);
        assert_eq!(error("GET / HTTP/1.1\r\nHost: a b\r\n\r\n").status(), 400);
        head("GET / HTTP/1.0\r\n\r\n");
    }

    /// RFC 9112 §6.1 and §6.3: both Content-Length and Transfer-Encoding is
    /// a smuggling attempt; we refuse it.
    #[test]
    fn content_length_with_transfer_encoding_is_rejected() {
        let raw =
            "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(error(raw).status(), 400);
    }

    /// RFC 9112 §6.3 item 5: an invalid Content-Length is unrecoverable.
    #[test]
    fn invalid_content_lengths_are_rejected() {
        for cl in ["-1", "+1", "1x", "", "99999999999999999999999", "1, 2"] {
            let raw = format!("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: {cl}\r\n\r\n");
            assert_eq!(error(&raw).status(), 400, "Content-Length: {cl}");
        }
        let raw = "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n";
        assert_eq!(error(raw).status(), 400);
        let same = head("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2, 2\r\n\r\n");
        assert_eq!(same.framing(), BodyFraming::Length(2));
    }

    #[test]
    fn content_length_over_the_limit_is_413() {
        let raw = "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1048577\r\n\r\n";
        assert_eq!(error(raw), ParseError::BodyTooLarge);
    }

    /// RFC 9112 §6.1: chunked must be final (else 400); an unknown coding is
    /// 501; HTTP/1.0 with Transfer-Encoding is faulty framing.
    #[test]
    fn transfer_codings_follow_rfc_9112() {
        let te = |v: &str| format!("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: {v}\r\n\r\n");
        assert_eq!(head(&te("chunked")).framing(), BodyFraming::Chunked);
        assert_eq!(head(&te("Chunked")).framing(), BodyFraming::Chunked);
        assert_eq!(error(&te("gzip")).status(), 400);
        assert_eq!(error(&te("chunked, gzip")).status(), 400);
        assert_eq!(error(&te("chunked, chunked")).status(), 400);
        assert_eq!(error(&te("gzip, chunked")).status(), 501);
        let old = "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(error(old).status(), 400);
    }

    #[test]
    fn keep_alive_follows_version_and_connection() {
        assert!(!head("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n").keep_alive());
        assert!(!head("GET / HTTP/1.0\r\n\r\n").keep_alive());
        assert!(head("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive());
        assert!(!head("GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, close\r\n\r\n")
            .keep_alive());
    }

    #[test]
    fn versions_other_than_1x_are_505() {
        assert_eq!(error("GET / HTTP/2.0\r\nHost: h\r\n\r\n"), ParseError::UnsupportedVersion);
        assert_eq!(error("GET / HTTP/1.2\r\nHost: h\r\n\r\n"), ParseError::UnsupportedVersion);
        assert_eq!(error("GET / HTXP/1.1\r\nHost: h\r\n\r\n").status(), 400);
        assert_eq!(error("GET / HTTP/11\r\nHost: h\r\n\r\n").status(), 400);
    }

    #[test]
    fn version_errors_do_not_depend_on_the_split() {
        let raw = "GET / HTTP/2.0\r\nHost: h\r\n\r\n";
        for cut in 1..raw.len() {
            match parse(&raw[..cut]) {
                Ok(None) => {}
                Err(e) => assert_eq!(e, ParseError::UnsupportedVersion, "cut at {cut}"),
                Ok(Some(_)) => panic!("parsed"),
            }
        }
        assert_eq!(error("GET / HTTP/2.01\r\nHost: h\r\n\r\n").status(), 400);
    }

    /// Found by fuzzing: a later `HTTP/1.1` on the same line must not be
    /// taken for the version.
    #[test]
    fn the_version_is_the_third_element_of_the_request_line() {
        let raw = "POST /echo HTTP/1.\0\x03POST /echo HTTP/1.1\r\nHost: a\r\n\r\n";
        assert_eq!(error(raw).status(), 400);
        assert_eq!(parse(&raw[..19]).unwrap_err().status(), 400);
    }

    #[test]
    fn oversized_heads_are_414_or_431() {
        let long_line = format!("GET /{} HTTP/1.1\r\n", "a".repeat(9000));
        assert_eq!(error(&long_line), ParseError::UriTooLong);
        let big = format!("GET / HTTP/1.1\r\nHost: h\r\nX: {}\r\n\r\n", "a".repeat(9000));
        assert_eq!(error(&big), ParseError::HeadTooLarge);
        let mut many = String::from("GET / HTTP/1.1\r\nHost: h\r\n");
        for i in 0..70 {
            many.push_str(&format!("X-{i}: v\r\n"));
        }
        many.push_str("\r\n");
        assert_eq!(error(&many), ParseError::TooManyHeaders);
    }

    /// RFC 9112 §5.1: no whitespace between field name and colon; §5.2:
    /// obs-fold is rejected by a server that does not unfold it.
    #[test]
    fn header_syntax_errors_are_400() {
        assert_eq!(error("GET / HTTP/1.1\r\nHost : h\r\n\r\n").status(), 400);
        assert_eq!(error("GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n").status(), 400);
        assert_eq!(error("GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n").status(), 400);
        assert_eq!(error("GET / HTTP/1.1\r\nHost: h\r\nX: a\0b\r\n\r\n").status(), 400);
    }

    #[test]
    fn expectations() {
        let h =
            head("POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n");
        assert!(h.expect_continue());
        let raw = "POST / HTTP/1.1\r\nHost: h\r\nExpect: teapot\r\nContent-Length: 3\r\n\r\n";
        assert_eq!(error(raw), ParseError::UnsupportedExpectation);
        let old = head("POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n");
        assert!(!old.expect_continue());
    }

    #[test]
    fn asterisk_form_only_for_options() {
        assert_eq!(head("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n").path(), "*");
        assert_eq!(error("GET * HTTP/1.1\r\nHost: h\r\n\r\n").status(), 400);
    }

    /// RFC 9112 §3.2.2: with an absolute-form target, the target's
    /// authority replaces the Host header.
    #[test]
    fn absolute_form_authority_is_the_host() {
        let h = head("GET http://a.example:8080/x HTTP/1.1\r\nHost: b.example\r\n\r\n");
        assert_eq!(h.host(), Some("a.example:8080"));
        let h = head("GET /x HTTP/1.1\r\nHost: b.example\r\n\r\n");
        assert_eq!(h.host(), Some("b.example"));
    }

    /// RFC 9110 §4.2.1 and §4.2.4: an http URI needs a host and no userinfo.
    #[test]
    fn absolute_form_without_host_or_with_userinfo_is_400() {
        assert_eq!(error("GET http:///x HTTP/1.1\r\nHost: h\r\n\r\n").status(), 400);
        assert_eq!(error("GET http://u@h/x HTTP/1.1\r\nHost: h\r\n\r\n").status(), 400);
    }

    /// RFC 9112 §3.2: 400 for a Host with an invalid value, and for more
    /// than one Host line in any request.
    #[test]
    fn host_values_must_be_host_and_port() {
        for bad in ["a:b:c", "h:8x", "[::1", "a/b", "a@b"] {
            let raw = format!("GET / HTTP/1.1\r\nHost: {bad}\r\n\r\n");
            assert_eq!(error(&raw).status(), 400, "Host: {bad}");
        }
        for good in ["example.com", "example.com:80", "[::1]:8080", "10.0.0.1", ""] {
            head(&format!("GET / HTTP/1.1\r\nHost: {good}\r\n\r\n"));
        }
        assert_eq!(error("GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n").status(), 400);
    }

    #[test]
    fn request_targets_with_unsafe_characters_are_400() {
        for target in ["/a<b", "/a\"b", "/a{b}", "/a#frag", "/caf\u{e9}"] {
            let raw = format!("GET {target} HTTP/1.1\r\nHost: h\r\n\r\n");
            assert_eq!(error(&raw).status(), 400, "target {target}");
        }
    }

    /// RFC 9112 §2.2 allows accepting a bare LF; we take the safer choice.
    #[test]
    fn bare_lf_line_endings_are_400() {
        assert_eq!(error("GET / HTTP/1.1\nHost: h\r\n\r\n").status(), 400);
        assert_eq!(error("GET / HTTP/1.1\r\nHost: h\n\n").status(), 400);
        assert_eq!(error("GET / HTTP/1.1\r\nHost: h\r\n\n").status(), 400);
        assert_eq!(error("\nGET / HTTP/1.1\r\nHost: h\r\n\r\n").status(), 400);
    }

    /// RFC 9110 §5.6.1: empty list elements are ignored.
    #[test]
    fn expect_is_a_list() {
        let raw =
            "POST / HTTP/1.1\r\nHost: h\r\nExpect: , 100-continue,\r\nContent-Length: 1\r\n\r\n";
        assert!(head(raw).expect_continue());
    }

    #[test]
    fn connect_is_not_implemented() {
        assert_eq!(error("CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n").status(), 501);
    }
}
