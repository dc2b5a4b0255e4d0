//! Fuzzes the response side of the pure `http` module: how a response is
//! framed ([`frame`]) for any status, method, version and body, and the
//! chunk encoder against the decoder. Checks the framing rules hold for
//! every input (no body for HEAD, 204, 205, 304; chunked only for an
//! HTTP/1.1 stream of unknown length; a close-delimited body never keeps
//! the connection) and that any body, cut into any chunks, decodes back to
//! itself.

#![no_main]

use libfuzzer_sys::fuzz_target;
use uring_serve::http::{
    encode_chunk, frame, BodySize, ChunkedDecoder, DecodeStatus, ResponseFraming, LAST_CHUNK,
};

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let status = u16::from_le_bytes([data[0], data[1]]) % 700;
    let flags = data[2];
    let (is_head, http10, keep_alive) = (flags & 1 != 0, flags & 2 != 0, flags & 4 != 0);
    let body = match flags >> 3 & 3 {
        0 => BodySize::Empty,
        1 => BodySize::Unknown,
        _ => BodySize::Known(u64::from(data[3])),
    };
    let framed = frame(status, is_head, http10, body, keep_alive);
    if is_head || matches!(status, 204 | 205 | 304) {
        assert!(!framed.sends_body);
    }
    if framed.framing == ResponseFraming::Chunked {
        assert!(!http10 && body == BodySize::Unknown);
    }
    if framed.framing == ResponseFraming::CloseDelimited {
        assert!(!framed.keep_alive && http10);
    }
    assert!(!framed.keep_alive || keep_alive);

    let payload = &data[4..];
    let mut wire = Vec::new();
    let mut rest = payload;
    for &cut in data.iter().take(8) {
        let (piece, tail) = rest.split_at(usize::from(cut).min(rest.len()));
        encode_chunk(piece, &mut wire);
        rest = tail;
    }
    encode_chunk(rest, &mut wire);
    wire.extend_from_slice(LAST_CHUNK);
    let mut decoded = Vec::new();
    let mut decoder = ChunkedDecoder::new(1 << 20, 4096);
    let (used, status) = decoder.decode(&wire, &mut decoded).expect("encoded chunks decode");
    assert_eq!((used, status), (wire.len(), DecodeStatus::Done));
    assert_eq!(decoded, payload);
});
