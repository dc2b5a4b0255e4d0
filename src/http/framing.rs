//! How a response's body goes on the wire: the one decision ([`frame`])
//! from the status, the request's method and version, and what the body
//! is; the chunk encoding of a streamed body; and what makes a response
//! head sendable at all.
//!
//! The connection asks; it never decides. Each rule names its RFC.

use super::response::{is_valid_header_name, is_valid_header_value, ResponseFraming};

/// What a response body is, as far as its framing cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodySize {
    /// No body.
    Empty,
    /// A body of exactly this many bytes (in memory, a file, or a stream
    /// whose length is declared).
    Known(u64),
    /// A stream whose length is not known before it ends.
    Unknown,
}

/// How one response is framed, and what follows from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Framing {
    /// The framing headers of the head.
    pub framing: ResponseFraming,
    /// Whether the body's bytes follow the head (not for HEAD, 204, 205,
    /// 304).
    pub sends_body: bool,
    /// Whether the connection may stay open after this response: as asked,
    /// unless the body ends only by closing it.
    pub keep_alive: bool,
}

/// Frames the response to a request: `status` from the application,
/// `is_head` and `http10` from the request, `body` from the response, and
/// `keep_alive` as the request and the server want it.
pub fn frame(
    status: u16,
    is_head: bool,
    http10: bool,
    body: BodySize,
    keep_alive: bool,
) -> Framing {
    let (framing, sends_body, keep_alive) = match (status, body) {
        // RFC 9110 §15.2: an interim or switching response has no content.
        (100..=199, _) => (ResponseFraming::None, false, keep_alive),
        // RFC 9110 §15.3.6: 205 has no content, and says so.
        (205, _) => (ResponseFraming::Length(0), false, keep_alive),
        // RFC 9110 §15.3.5, §15.4.5: 204 and 304 have neither content nor
        // length.
        (204 | 304, _) => (ResponseFraming::None, false, keep_alive),
        // RFC 9110 §9.3.2: a HEAD response may say the length the GET would
        // send; one with no body, or a streamed one, says nothing.
        (_, BodySize::Known(len)) if is_head => (ResponseFraming::Length(len), false, keep_alive),
        (_, BodySize::Empty | BodySize::Unknown) if is_head => {
            (ResponseFraming::None, false, keep_alive)
        }
        (_, BodySize::Empty) => (ResponseFraming::Length(0), true, keep_alive),
        (_, BodySize::Known(len)) => (ResponseFraming::Length(len), true, keep_alive),
        // RFC 9112 §6.3: an HTTP/1.0 client knows no chunked coding; the
        // body ends when the connection closes.
        (_, BodySize::Unknown) if http10 => (ResponseFraming::CloseDelimited, true, false),
        // RFC 9112 §7.1.
        (_, BodySize::Unknown) => (ResponseFraming::Chunked, true, keep_alive),
    };
    Framing { framing, sends_body, keep_alive }
}

/// The end of a chunked body (RFC 9112 §7.1: the last chunk, no trailers).
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// Appends `data` as one chunk (RFC 9112 §7.1). An empty `data` appends
/// nothing: an empty chunk would end the body.
pub fn encode_chunk(data: &[u8], out: &mut Vec<u8>) {
    if data.is_empty() {
        return;
    }
    let mut size = [0u8; 16];
    let digits = hex_digits(data.len(), &mut size);
    out.reserve(digits.len() + data.len() + 4);
    out.extend_from_slice(digits);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// `n` in lowercase hexadecimal, written at the end of `buf`.
fn hex_digits(mut n: usize, buf: &mut [u8; 16]) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b"0123456789abcdef"[n & 0xf];
        n >>= 4;
        if n == 0 {
            return &buf[at..];
        }
    }
}

/// Whether a server may put this head on the wire: a status an
/// application may send (200-599) and headers that cannot split the
/// response (RFC 9110 §5.1, §5.5).
pub fn is_sendable_head<'h>(
    status: u16,
    mut headers: impl Iterator<Item = (&'h str, &'h str)>,
) -> bool {
    (200..=599).contains(&status)
        && headers.all(|(n, v)| is_valid_header_name(n) && is_valid_header_value(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(
        status: u16,
        is_head: bool,
        http10: bool,
        body: BodySize,
    ) -> (ResponseFraming, bool, bool) {
        let f = frame(status, is_head, http10, body, true);
        (f.framing, f.sends_body, f.keep_alive)
    }

    #[test]
    fn a_known_body_is_sent_with_its_length() {
        assert_eq!(
            framed(200, false, false, BodySize::Known(5)),
            (ResponseFraming::Length(5), true, true)
        );
        assert_eq!(
            framed(200, false, false, BodySize::Empty),
            (ResponseFraming::Length(0), true, true)
        );
    }

    #[test]
    fn a_stream_of_unknown_length_is_chunked_for_http11_and_closes_for_http10() {
        assert_eq!(
            framed(200, false, false, BodySize::Unknown),
            (ResponseFraming::Chunked, true, true)
        );
        assert_eq!(
            framed(200, false, true, BodySize::Unknown),
            (ResponseFraming::CloseDelimited, true, false)
        );
    }

    #[test]
    fn no_content_and_not_modified_have_neither_body_nor_length() {
        for status in [204, 304] {
            for body in [BodySize::Empty, BodySize::Known(3), BodySize::Unknown] {
                assert_eq!(
                    framed(status, false, false, body),
                    (ResponseFraming::None, false, true)
                );
            }
        }
    }

    #[test]
    fn reset_content_says_its_length_is_zero_and_sends_nothing() {
        assert_eq!(
            framed(205, false, false, BodySize::Known(3)),
            (ResponseFraming::Length(0), false, true)
        );
    }

    #[test]
    fn a_head_response_says_a_known_length_and_sends_no_body() {
        assert_eq!(
            framed(200, true, false, BodySize::Known(9)),
            (ResponseFraming::Length(9), false, true)
        );
        assert_eq!(framed(200, true, false, BodySize::Empty), (ResponseFraming::None, false, true));
        assert_eq!(
            framed(200, true, true, BodySize::Unknown),
            (ResponseFraming::None, false, true)
        );
    }

    #[test]
    fn a_connection_asked_to_close_stays_closing() {
        let f = frame(200, false, false, BodySize::Known(1), false);
        assert!(!f.keep_alive);
    }

    #[test]
    fn chunks_carry_their_size_in_hex_and_an_empty_one_is_not_written() {
        let mut out = Vec::new();
        encode_chunk(b"hello", &mut out);
        encode_chunk(&[b'x'; 26], &mut out);
        encode_chunk(b"", &mut out);
        out.extend_from_slice(LAST_CHUNK);
        let mut expected = b"5\r\nhello\r\n1a\r\n".to_vec();
        expected.extend_from_slice(&[b'x'; 26]);
        expected.extend_from_slice(b"\r\n0\r\n\r\n");
        assert_eq!(out, expected);
    }

    #[test]
    fn encoded_chunks_decode_to_the_same_body() {
        use crate::http::{ChunkedDecoder, DecodeStatus};
        let mut wire = Vec::new();
        for piece in [&b"a"[..], &[7u8; 300][..], b"end"] {
            encode_chunk(piece, &mut wire);
        }
        wire.extend_from_slice(LAST_CHUNK);
        let mut body = Vec::new();
        let mut decoder = ChunkedDecoder::new(1 << 20, 8 << 10);
        let (used, status) = decoder.decode(&wire, &mut body).unwrap();
        assert_eq!((used, status), (wire.len(), DecodeStatus::Done));
        assert_eq!(body.len(), 1 + 300 + 3);
    }

    #[test]
    fn a_head_with_a_bad_status_or_a_header_that_splits_is_not_sendable() {
        assert!(is_sendable_head(200, [("x-a", "b")].into_iter()));
        assert!(!is_sendable_head(99, std::iter::empty()));
        assert!(!is_sendable_head(600, std::iter::empty()));
        assert!(!is_sendable_head(200, [("x-a", "b\r\nset-cookie: 1")].into_iter()));
        assert!(!is_sendable_head(200, [("bad name", "v")].into_iter()));
    }
}
