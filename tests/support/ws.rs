//! A raw WebSocket client over [`Client`]: the opening handshake, masked
//! client frames, and server frames read byte by byte.

use super::{Client, ServerHandle};

/// RFC 6455 §1.3's example key and its accept value.
pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
pub const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// An opening handshake for `path`, with `extra` header lines.
pub fn handshake(path: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n{extra}\r\n"
    )
}

/// A WebSocket opened on `path`: the handshake answered with 101 and the
/// accept key.
pub fn open(server: &ServerHandle, path: &str) -> Client {
    let mut c = Client::connect(server.local_addr());
    let extra = format!("Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {KEY}\r\n");
    c.send(handshake(path, &extra).as_bytes());
    let r = c.read_response();
    assert_eq!(r.status, 101);
    assert_eq!(r.header("sec-websocket-accept"), Some(ACCEPT));
    c
}

/// A client frame: masked, as RFC 6455 §5.3 requires.
pub fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0x80 | opcode];
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n < 1 << 16 => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    let mask = [0x12, 0x34, 0x56, 0x78];
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

/// Reads one server frame: its opcode and payload (servers do not mask).
pub fn read_frame(c: &mut Client) -> (u8, Vec<u8>) {
    let head = c.read_bytes(2);
    assert_eq!(head[1] & 0x80, 0, "a server frame is not masked");
    let len = match head[1] & 0x7f {
        126 => u16::from_be_bytes(c.read_bytes(2).try_into().unwrap()) as usize,
        127 => u64::from_be_bytes(c.read_bytes(8).try_into().unwrap()) as usize,
        n => n as usize,
    };
    (head[0] & 0x0f, c.read_bytes(len))
}
