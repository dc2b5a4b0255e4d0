//! Properties of the pure `http` module, fed the way the connection loop
//! feeds it: any stream of valid pipelined requests, split at arbitrary
//! points, parses to the same requests; any response body, cut into any
//! chunks by the encoder, decodes back to itself; and the response framing
//! rules hold for every status, method, version and body.

use proptest::prelude::*;
use uring_serve::http::{
    encode_chunk, frame, parse_head, BodyFraming, BodySize, ChunkedDecoder, DecodeStatus, Limits,
    ResponseFraming, LAST_CHUNK,
};

const LIMITS: Limits =
    Limits { max_header_bytes: 16 << 10, max_headers: 100, max_body_bytes: 1 << 20 };

/// A request as generated, and as it must come out of the parser.
#[derive(Debug, Clone, PartialEq)]
struct Expected {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

#[derive(Debug, Clone)]
struct Generated {
    expected: Expected,
    /// Chunk sizes when sent chunked (their sum is the body length).
    chunks: Option<Vec<usize>>,
}

fn request() -> impl Strategy<Value = Generated> {
    let method = prop::sample::select(vec!["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]);
    let target = "/[a-z0-9._~-]{0,12}(/[a-z0-9]{1,6}){0,3}(\\?[a-z]{1,4}=[a-z0-9%]{0,6}){0,1}";
    let header = ("[A-Za-z][A-Za-z0-9-]{0,12}", "[ -~]{0,24}")
        .prop_map(|(n, v)| (format!("X-{n}"), v.trim().to_string()));
    let body = prop::collection::vec(any::<u8>(), 0..300);
    let chunked = any::<bool>();
    let cut_points = prop::collection::vec(1usize..50, 0..8);
    (method, target, prop::collection::vec(header, 0..6), body, chunked, cut_points).prop_map(
        |(method, target, headers, body, chunked, cuts)| {
            let chunks = chunked.then(|| {
                let mut sizes = Vec::new();
                let mut left = body.len();
                for c in cuts {
                    if left == 0 {
                        break;
                    }
                    let take = c.min(left);
                    sizes.push(take);
                    left -= take;
                }
                if left > 0 {
                    sizes.push(left);
                }
                sizes
            });
            Generated {
                expected: Expected { method: method.to_string(), target, headers, body },
                chunks,
            }
        },
    )
}

fn serialise(requests: &[Generated]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in requests {
        let e = &r.expected;
        out.extend(format!("{} {} HTTP/1.1\r\nHost: example.com\r\n", e.method, e.target).bytes());
        for (n, v) in &e.headers {
            out.extend(format!("{n}: {v}\r\n").bytes());
        }
        match &r.chunks {
            Some(sizes) => {
                out.extend(b"Transfer-Encoding: chunked\r\n\r\n");
                let mut at = 0;
                for (i, size) in sizes.iter().enumerate() {
                    out.extend(format!("{size:x};n={i}\r\n").bytes());
                    out.extend(&e.body[at..at + size]);
                    out.extend(b"\r\n");
                    at += size;
                }
                out.extend(b"0\r\nX-Trailer: t\r\n\r\n");
            }
            None => {
                out.extend(format!("Content-Length: {}\r\n\r\n", e.body.len()).bytes());
                out.extend(&e.body);
            }
        }
    }
    out
}

/// Parses `stream` delivered in pieces ending at `cuts`.
fn parse_split(stream: &[u8], cuts: &[usize]) -> Vec<Expected> {
    let mut pieces = cuts.iter().copied().chain(std::iter::once(stream.len()));
    let mut received = 0;
    let mut buf = Vec::new();
    let mut more = |buf: &mut Vec<u8>| match pieces.next() {
        Some(end) => {
            let end = end.clamp(received, stream.len());
            buf.extend_from_slice(&stream[received..end]);
            received = end;
            true
        }
        None => false,
    };
    let mut parsed = Vec::new();
    loop {
        let (head, used) = match parse_head(&buf, &LIMITS).expect("valid stream") {
            Some(parsed) => parsed,
            None if more(&mut buf) => continue,
            None => {
                assert!(buf.is_empty(), "bytes left over");
                return parsed;
            }
        };
        buf.drain(..used);
        let body = match head.framing() {
            BodyFraming::Empty => Vec::new(),
            BodyFraming::Length(n) => {
                let n = n as usize;
                while buf.len() < n {
                    assert!(more(&mut buf), "stream ended inside a body");
                }
                buf.drain(..n).collect()
            }
            BodyFraming::Chunked => {
                let mut decoder = ChunkedDecoder::new(LIMITS.max_body_bytes, 1024);
                let mut body = Vec::new();
                loop {
                    let (used, status) = decoder.decode(&buf, &mut body).expect("valid chunks");
                    buf.drain(..used);
                    if status == DecodeStatus::Done {
                        break body;
                    }
                    assert!(more(&mut buf), "stream ended inside a chunked body");
                }
            }
        };
        let headers = head
            .headers()
            .filter(|(n, _)| n.starts_with("X-"))
            .map(|(n, v)| (n.to_string(), String::from_utf8(v.to_vec()).unwrap()))
            .collect();
        parsed.push(Expected {
            method: head.method_str().to_string(),
            target: head.target().to_string(),
            headers,
            body,
        });
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn pipelined_requests_parse_the_same_whatever_the_split(
        requests in prop::collection::vec(request(), 1..8),
        mut cuts in prop::collection::vec(0usize..4000, 0..40),
    ) {
        let stream = serialise(&requests);
        cuts.sort_unstable();
        let expected: Vec<Expected> = requests.iter().map(|r| r.expected.clone()).collect();
        prop_assert_eq!(&parse_split(&stream, &[]), &expected);
        prop_assert_eq!(&parse_split(&stream, &cuts), &expected);
    }

    #[test]
    fn byte_by_byte_delivery_parses_the_same(requests in prop::collection::vec(request(), 1..4)) {
        let stream = serialise(&requests);
        let cuts: Vec<usize> = (1..stream.len()).collect();
        let expected: Vec<Expected> = requests.iter().map(|r| r.expected.clone()).collect();
        prop_assert_eq!(&parse_split(&stream, &cuts), &expected);
    }

    #[test]
    fn a_body_encoded_in_any_chunks_decodes_to_itself(
        body in prop::collection::vec(any::<u8>(), 0..5000),
        mut cuts in prop::collection::vec(0usize..5000, 0..20),
    ) {
        cuts.sort_unstable();
        let mut wire = Vec::new();
        let mut from = 0;
        for cut in cuts.into_iter().chain(std::iter::once(body.len())) {
            let to = cut.clamp(from, body.len());
            encode_chunk(&body[from..to], &mut wire);
            from = to;
        }
        wire.extend_from_slice(LAST_CHUNK);
        let mut decoded = Vec::new();
        let mut decoder = ChunkedDecoder::new(1 << 20, 16 << 10);
        let (used, status) = decoder.decode(&wire, &mut decoded).expect("encoded chunks decode");
        prop_assert_eq!((used, status), (wire.len(), DecodeStatus::Done));
        prop_assert_eq!(decoded, body);
    }

    #[test]
    fn response_framing_follows_the_rules_for_any_response(
        status in 100u16..700,
        is_head in any::<bool>(),
        http10 in any::<bool>(),
        keep_alive in any::<bool>(),
        body in prop_oneof![
            Just(BodySize::Empty),
            Just(BodySize::Unknown),
            (0u64..1 << 40).prop_map(BodySize::Known),
        ],
    ) {
        let framed = frame(status, is_head, http10, body, keep_alive);
        if is_head || matches!(status, 204 | 205 | 304) {
            prop_assert!(!framed.sends_body);
        }
        if framed.framing == ResponseFraming::Chunked {
            prop_assert!(!http10 && body == BodySize::Unknown && framed.sends_body);
        }
        if framed.framing == ResponseFraming::CloseDelimited {
            prop_assert!(!framed.keep_alive && http10);
        }
        if let (ResponseFraming::Length(len), BodySize::Known(known)) = (framed.framing, body) {
            prop_assert!(len == known || status == 205);
        }
        prop_assert!(!framed.keep_alive || keep_alive, "framing never reopens a closing connection");
    }
}
