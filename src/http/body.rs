//! Decoding of the chunked transfer coding (RFC 9112 §7.1).
//!
//! The decoder is a byte-level state machine: it takes whatever bytes have
//! arrived, however they were split, appends chunk data to the body and
//! remembers where it stopped. Chunk extensions and trailer fields are
//! accepted and ignored. Line endings must be CRLF: a bare LF inside chunked
//! framing is refused, the stricter reading that leaves no room for two
//! parsers to disagree about where a body ends.

use super::request::{ParseError, MAX_LINE_BYTES};

/// Whether a chunked body has been read to its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeStatus {
    /// More bytes are needed.
    NeedMore,
    /// The last chunk and the trailer section have been read.
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading hex digits of the chunk size.
    Size,
    /// Whitespace after the size, before `;` or CR.
    SizeSpace,
    /// Inside chunk extensions, up to CR.
    Extension,
    /// Expecting LF after the size line's CR.
    SizeLf,
    /// Copying chunk data.
    Data,
    /// Expecting CR after chunk data.
    DataCr,
    /// Expecting LF after chunk data.
    DataLf,
    /// At the start of a trailer line (or of the final CRLF).
    TrailerStart,
    /// Inside a trailer field line.
    Trailer,
    /// Expecting LF at the end of a trailer line.
    TrailerLf,
    /// Expecting the LF of the final CRLF.
    EndLf,
    /// The body is complete.
    Done,
}

/// Incremental decoder of one chunked request body.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
    size: u64,
    digits: u32,
    remaining: u64,
    total: u64,
    max_body: u64,
    line_len: usize,
    trailer_len: usize,
    max_trailer: usize,
}

impl ChunkedDecoder {
    /// A decoder for a body of at most `max_body` bytes of data, with at
    /// most `max_trailer` bytes of trailer fields.
    pub fn new(max_body: u64, max_trailer: usize) -> ChunkedDecoder {
        ChunkedDecoder {
            state: State::Size,
            size: 0,
            digits: 0,
            remaining: 0,
            total: 0,
            max_body,
            line_len: 0,
            trailer_len: 0,
            max_trailer,
        }
    }

    /// Decodes from `input`, appending chunk data to `body`. Returns how many
    /// bytes of `input` were consumed and whether the body is complete; when
    /// it is, the bytes after the consumed ones belong to the next request.
    pub fn decode(
        &mut self,
        input: &[u8],
        body: &mut Vec<u8>,
    ) -> Result<(usize, DecodeStatus), ParseError> {
        let mut i = 0;
        while i < input.len() {
            if self.state == State::Data {
                let take =
                    (input.len() - i).min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
                body.extend_from_slice(&input[i..i + take]);
                i += take;
                self.remaining -= take as u64;
                if self.remaining == 0 {
                    self.state = State::DataCr;
                }
                continue;
            }
            self.step(input[i])?;
            i += 1;
            if self.state == State::Done {
                return Ok((i, DecodeStatus::Done));
            }
        }
        let status =
            if self.state == State::Done { DecodeStatus::Done } else { DecodeStatus::NeedMore };
        Ok((i, status))
    }

    fn step(&mut self, b: u8) -> Result<(), ParseError> {
        self.state = match self.state {
            State::Size => match hex_value(b) {
                Some(_) if self.digits as usize >= MAX_LINE_BYTES => {
                    return Err(ParseError::Malformed("chunk size line too long"));
                }
                Some(d) => {
                    self.digits += 1;
                    self.size = self
                        .size
                        .checked_mul(16)
                        .and_then(|s| s.checked_add(u64::from(d)))
                        .ok_or(ParseError::Malformed("chunk size overflows"))?;
                    State::Size
                }
                None if self.digits == 0 => {
                    return Err(ParseError::Malformed("invalid chunk size"))
                }
                None => match b {
                    b' ' | b'\t' => {
                        self.line_len += 1;
                        State::SizeSpace
                    }
                    b';' => State::Extension,
                    b'\r' => State::SizeLf,
                    _ => return Err(ParseError::Malformed("invalid chunk size")),
                },
            },
            // RFC 9112 §7.1.1: whitespace after the size only before `;`.
            State::SizeSpace => match b {
                b' ' | b'\t' if self.line_len >= MAX_LINE_BYTES => {
                    return Err(ParseError::Malformed("chunk size line too long"));
                }
                b' ' | b'\t' => {
                    self.line_len += 1;
                    State::SizeSpace
                }
                b';' => State::Extension,
                _ => return Err(ParseError::Malformed("invalid chunk size line")),
            },
            State::Extension => {
                self.line_len += 1;
                if self.line_len > MAX_LINE_BYTES {
                    return Err(ParseError::Malformed("chunk extension too long"));
                }
                match b {
                    b'\r' => State::SizeLf,
                    b if is_forbidden_in_line(b) => {
                        return Err(ParseError::Malformed("invalid byte in chunk extension"))
                    }
                    _ => State::Extension,
                }
            }
            State::SizeLf => {
                if b != b'\n' {
                    return Err(ParseError::Malformed("chunk size line not ended by CRLF"));
                }
                self.start_chunk()?
            }
            State::DataCr => expect(b, b'\r', State::DataLf, "chunk data not followed by CRLF")?,
            State::DataLf => {
                expect(b, b'\n', State::Size, "chunk data not followed by CRLF")?;
                self.size = 0;
                self.digits = 0;
                self.line_len = 0;
                State::Size
            }
            State::TrailerStart => match b {
                b'\r' => State::EndLf,
                b => self.trailer_byte(b)?,
            },
            State::Trailer => match b {
                b'\r' => State::TrailerLf,
                b => self.trailer_byte(b)?,
            },
            State::TrailerLf => {
                expect(b, b'\n', State::TrailerStart, "trailer line not ended by CRLF")?
            }
            State::EndLf => expect(b, b'\n', State::Done, "chunked body not ended by CRLF")?,
            State::Data | State::Done => self.state,
        };
        Ok(())
    }

    fn start_chunk(&mut self) -> Result<State, ParseError> {
        if self.size == 0 {
            return Ok(State::TrailerStart);
        }
        self.total = self
            .total
            .checked_add(self.size)
            .filter(|&t| t <= self.max_body)
            .ok_or(ParseError::BodyTooLarge)?;
        self.remaining = self.size;
        Ok(State::Data)
    }

    fn trailer_byte(&mut self, b: u8) -> Result<State, ParseError> {
        if is_forbidden_in_line(b) {
            return Err(ParseError::Malformed("invalid byte in trailer field"));
        }
        self.trailer_len += 1;
        if self.trailer_len > self.max_trailer {
            return Err(ParseError::HeadTooLarge);
        }
        Ok(State::Trailer)
    }
}

fn expect(b: u8, want: u8, next: State, why: &'static str) -> Result<State, ParseError> {
    if b == want {
        Ok(next)
    } else {
        Err(ParseError::Malformed(why))
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Control bytes other than HTAB (a bare LF or NUL included) may not appear
/// inside a chunk-size line or a trailer line.
fn is_forbidden_in_line(b: u8) -> bool {
    (b < 0x20 && b != b'\t') || b == 0x7f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8]) -> Result<(Vec<u8>, usize), ParseError> {
        let mut d = ChunkedDecoder::new(1 << 20, 1024);
        let mut body = Vec::new();
        match d.decode(input, &mut body)? {
            (used, DecodeStatus::Done) => Ok((body, used)),
            (_, DecodeStatus::NeedMore) => panic!("incomplete"),
        }
    }

    #[test]
    fn decodes_chunks_with_extensions_and_trailers() {
        let raw = b"4;name=value\r\nWiki\r\n5 ; x\r\npedia\r\n0\r\nTrailer: t\r\n\r\nNEXT";
        let (body, used) = decode_all(raw).unwrap();
        assert_eq!(body, b"Wikipedia");
        assert_eq!(&raw[used..], b"NEXT");
    }

    #[test]
    fn decodes_the_same_whatever_the_split() {
        let raw = b"A\r\n0123456789\r\n3;e=\"q\"\r\nabc\r\n0\r\nT: 1\r\n\r\n";
        for cut in 0..raw.len() {
            let mut d = ChunkedDecoder::new(1 << 20, 1024);
            let mut body = Vec::new();
            let (a, s1) = d.decode(&raw[..cut], &mut body).unwrap();
            assert_eq!(a, cut);
            assert_eq!(s1, DecodeStatus::NeedMore);
            let (b, s2) = d.decode(&raw[cut..], &mut body).unwrap();
            assert_eq!((a + b, s2), (raw.len(), DecodeStatus::Done));
            assert_eq!(body, b"0123456789abc");
        }
    }

    /// RFC 9112 §7.1: chunk-size is 1*HEXDIG followed by CRLF after data.
    #[test]
    fn bad_framing_is_rejected() {
        for raw in [
            &b"x\r\n"[..],
            b"\r\n",
            b"3\r\nabcX\r\n",
            b"3\nabc\r\n0\r\n\r\n",
            b"3\r\nabc\n0\r\n\r\n",
            b"11111111111111111\r\n",
            b"1;a\x00b\r\n",
            b"0\r\nT: a\nb\r\n\r\n",
            b"3 \r\nabc\r\n0\r\n\r\n",
        ] {
            let mut d = ChunkedDecoder::new(u64::MAX, 1024);
            let r = d.decode(raw, &mut Vec::new());
            assert!(r.is_err(), "accepted {:?}", String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn endless_size_lines_are_refused() {
        let zeros = vec![b'0'; MAX_LINE_BYTES + 1];
        assert!(ChunkedDecoder::new(1 << 20, 1024).decode(&zeros, &mut Vec::new()).is_err());
        let mut spaces = b"1".to_vec();
        spaces.extend(vec![b' '; MAX_LINE_BYTES + 1]);
        assert!(ChunkedDecoder::new(1 << 20, 1024).decode(&spaces, &mut Vec::new()).is_err());
    }

    #[test]
    fn body_over_the_limit_is_413() {
        let mut d = ChunkedDecoder::new(5, 1024);
        let r = d.decode(b"3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n", &mut Vec::new());
        assert_eq!(r, Err(ParseError::BodyTooLarge));
    }
}
