//! Micro-benchmarks of the pure HTTP functions on the request path:
//! head parsing, chunked decoding and response-head serialisation.
//!
//! `cargo bench --bench http`

use std::hint::black_box;
use std::time::SystemTime;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use uring_serve::http::{
    parse_head, ChunkedDecoder, HttpDate, Limits, ResponseFraming, ResponseHead, ServerHeaders,
};

const LIMITS: Limits =
    Limits { max_header_bytes: 16 << 10, max_headers: 100, max_body_bytes: 1 << 20 };

/// The request wrk sends in the TechEmpower plaintext test.
const TFB_REQUEST: &[u8] = b"GET /plaintext HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n\
Accept: text/plain,text/html;q=0.9,application/xhtml+xml;q=0.9,application/xml;q=0.8,*/*;q=0.7\r\n\
Connection: keep-alive\r\n\r\n";

/// A small GET, as `curl` sends it.
const SMALL_GET: &[u8] =
    b"GET /json HTTP/1.1\r\nHost: localhost:8000\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n";

/// A browser-like request with 15 headers.
const BROWSER_REQUEST: &[u8] = b"GET /api/v1/items?page=2&sort=name HTTP/1.1\r\n\
Host: example.com\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n\
Accept: application/json\r\nAccept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate, br\r\n\
Referer: https://example.com/items\r\nCookie: session=0123456789abcdef0123456789abcdef; theme=dark\r\n\
Sec-Fetch-Dest: empty\r\nSec-Fetch-Mode: cors\r\nSec-Fetch-Site: same-origin\r\n\
Connection: keep-alive\r\nPragma: no-cache\r\nCache-Control: no-cache\r\n\
DNT: 1\r\nUpgrade-Insecure-Requests: 1\r\n\r\n";

fn bench_parse_head(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse_head");
    for (name, raw) in [
        ("small_get", SMALL_GET),
        ("tfb_plaintext", TFB_REQUEST),
        ("browser_15_headers", BROWSER_REQUEST),
    ] {
        group.throughput(Throughput::Bytes(raw.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                parse_head(black_box(raw), &LIMITS).ok().flatten().map(|(h, n)| (h.keep_alive(), n))
            })
        });
    }
    // httparse alone on the same request: what `parse_head` adds on top of
    // it is its checks (framing, Host, target, bare LF) and the owned head.
    group.throughput(Throughput::Bytes(TFB_REQUEST.len() as u64));
    group.bench_function("httparse_only_tfb_plaintext", |b| {
        b.iter(|| {
            let mut headers = [httparse::EMPTY_HEADER; 16];
            let mut req = httparse::Request::new(&mut headers);
            req.parse(black_box(TFB_REQUEST)).ok().map(|s| s.is_complete())
        })
    });
    let pipelined: Vec<u8> = TFB_REQUEST.repeat(16);
    group.throughput(Throughput::Bytes(pipelined.len() as u64));
    group.bench_function("tfb_pipelined_16", |b| {
        b.iter(|| {
            let mut at = 0;
            while let Ok(Some((_, used))) = parse_head(black_box(&pipelined[at..]), &LIMITS) {
                at += used;
            }
            at
        })
    });
    group.finish();
}

fn bench_chunked(c: &mut Criterion) {
    let mut raw = Vec::new();
    for _ in 0..64 {
        raw.extend_from_slice(b"400;ext=1\r\n");
        raw.extend_from_slice(&[b'x'; 0x400]);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\nTrailer: t\r\n\r\n");
    let mut group = c.benchmark_group("chunked_decode");
    group.throughput(Throughput::Bytes(raw.len() as u64));
    group.bench_function("64_chunks_of_1KiB", |b| {
        let mut body = Vec::with_capacity(64 << 10);
        b.iter(|| {
            body.clear();
            let mut decoder = ChunkedDecoder::new(1 << 20, 1024);
            decoder.decode(black_box(&raw), &mut body).ok()
        })
    });
    group.finish();
}

fn bench_encode(c: &mut Criterion) {
    // The per-core `Server` and `Date` values, as the server keeps them.
    let own =
        ServerHeaders::new(HttpDate::from_system_time(SystemTime::now()), Some("uring-serve"));
    let headers = [("content-type", "text/plain")];
    let mut out = Vec::with_capacity(256);
    c.bench_function("response_head_encode/plaintext", |b| {
        b.iter(|| {
            out.clear();
            let head = ResponseHead {
                status: 200,
                framing: ResponseFraming::Length(13),
                keep_alive: true,
                http10: false,
                server_headers: &own,
            };
            head.encode(black_box(headers.iter().copied()), &mut out);
            out.len()
        })
    });
}

criterion_group!(benches, bench_parse_head, bench_chunked, bench_encode);
criterion_main!(benches);
