//! HTTP/1.1 message syntax and framing, as pure functions over bytes.
//!
//! This module owns everything RFC 9112 says about the bytes on the wire:
//! parsing a request head ([`parse_head`], on httparse), deciding how the
//! request body is framed ([`BodyFraming`]), decoding a chunked body
//! ([`ChunkedDecoder`]), how a response body is framed ([`frame`]: every
//! rule about 204/205/304, HEAD and HTTP/1.0 streams), encoding chunks
//! ([`encode_chunk`]), which response heads may be sent
//! ([`is_sendable_head`]), serialising a response head ([`ResponseHead`])
//! and the `Date` value ([`HttpDate`]).
//!
//! It does no I/O, reads no clock and allocates only what a parsed request
//! must own (two vectors, recycled per thread). The connection loop in
//! `conn` feeds it bytes, asks it how to frame, and writes what it
//! produces; that split (as in hyper's `proto::h1`) keeps every rule here
//! testable, fuzzable and benchmarkable in isolation.

/// A 256-entry table of the bytes for which `$accept` holds, built at
/// compile time: these checks run on every byte of every target, host and
/// response header name.
macro_rules! byte_table {
    (|$b:ident| $accept:expr) => {{
        let mut table = [false; 256];
        let mut i = 0;
        while i < 256 {
            let $b = i as u8;
            table[i] = $accept;
            i += 1;
        }
        table
    }};
}

mod body;
mod date;
mod framing;
mod request;
mod response;

pub use body::{ChunkedDecoder, DecodeStatus};
pub use date::HttpDate;
pub use framing::{encode_chunk, frame, is_sendable_head, BodySize, Framing, LAST_CHUNK};
pub(crate) use request::starts_like_head;
pub use request::{
    has_token, parse_head, BodyFraming, Limits, Method, ParseError, RequestHead, Version,
    MAX_HEADERS_CAP,
};
pub use response::{
    connection_has_close, encode_end, encode_upgrade_end, is_valid_header_name,
    is_valid_header_value, reason_phrase, ResponseFraming, ResponseHead, ServerHeaders, CONTINUE,
};
