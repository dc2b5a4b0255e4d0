//! Fuzzes the request path of the pure `http` module the way the connection
//! loop drives it: parse a head, decode its body (Content-Length or
//! chunked), repeat on what follows, with the input split into pieces at
//! points taken from the input itself. Checks that nothing panics, that the
//! parser never claims more bytes than it was given, and that splitting the
//! input never changes the outcome.

#![no_main]

use libfuzzer_sys::fuzz_target;
use uring_serve::http::{parse_head, BodyFraming, ChunkedDecoder, DecodeStatus, Limits};

const LIMITS: Limits = Limits { max_header_bytes: 4096, max_headers: 32, max_body_bytes: 1 << 16 };

/// What a stream of bytes parses to: per request, the target and body, and
/// how the stream ended.
#[derive(Debug, PartialEq)]
struct Outcome {
    requests: Vec<(String, Vec<u8>)>,
    end: String,
}

/// Feeds `data` in pieces ending at `cuts`, as reads would deliver it.
fn run(data: &[u8], cuts: &[usize]) -> Outcome {
    let mut pieces = cuts.iter().copied().chain(std::iter::once(data.len()));
    let mut received = 0;
    let mut buf: Vec<u8> = Vec::new();
    let mut requests = Vec::new();
    let mut more = |buf: &mut Vec<u8>| -> bool {
        match pieces.next() {
            Some(end) => {
                let end = end.clamp(received, data.len());
                buf.extend_from_slice(&data[received..end]);
                received = end;
                true
            }
            None => false,
        }
    };
    loop {
        let (head, used) = match parse_head(&buf, &LIMITS) {
            Ok(Some(parsed)) => parsed,
            Ok(None) => {
                if !more(&mut buf) {
                    return Outcome { requests, end: "eof".into() };
                }
                continue;
            }
            Err(e) => return Outcome { requests, end: format!("{}", e.status()) },
        };
        assert!(used <= buf.len() && used > 0);
        buf.drain(..used);
        let body = match head.framing() {
            BodyFraming::Empty => Vec::new(),
            BodyFraming::Length(n) => {
                let n = usize::try_from(n).unwrap();
                assert!(n as u64 <= LIMITS.max_body_bytes);
                while buf.len() < n {
                    if !more(&mut buf) {
                        return Outcome { requests, end: "eof in body".into() };
                    }
                }
                buf.drain(..n).collect()
            }
            BodyFraming::Chunked => {
                let mut decoder = ChunkedDecoder::new(LIMITS.max_body_bytes, 1024);
                let mut body = Vec::new();
                loop {
                    match decoder.decode(&buf, &mut body) {
                        Ok((used, status)) => {
                            assert!(used <= buf.len());
                            buf.drain(..used);
                            if status == DecodeStatus::Done {
                                break;
                            }
                        }
                        Err(e) => return Outcome { requests, end: format!("{}", e.status()) },
                    }
                    assert!(body.len() as u64 <= LIMITS.max_body_bytes);
                    if !more(&mut buf) {
                        return Outcome { requests, end: "eof in body".into() };
                    }
                }
                body
            }
        };
        let _ = (head.method(), head.path(), head.query(), head.host(), head.keep_alive());
        requests.push((head.target().to_string(), body));
    }
}

fuzz_target!(|data: &[u8]| {
    // The first two bytes choose a split pattern; the rest is the stream.
    let (pattern, stream) = match data {
        [a, b, rest @ ..] => ((*a as usize) << 8 | *b as usize, rest),
        _ => return,
    };
    let whole = run(stream, &[]);
    let step = pattern % 17 + 1;
    let cuts: Vec<usize> = (step..stream.len()).step_by(step).collect();
    let split = run(stream, &cuts);
    assert_eq!(whole, split, "split every {step} bytes changed the outcome");
});
