//! One TLS connection's protocol over bytes: [`TlsSession`] takes the
//! ciphertext that arrived and gives back the plaintext in it and the TLS
//! bytes to send (the handshake's, alerts); it encrypts what the server
//! writes, and ends the stream with `close_notify`. No I/O here: the
//! transport (`io::tls`) moves the bytes over the core's ring.
//!
//! rustls's unbuffered API: every buffer is the caller's, so a completion
//! transport owns each one while the kernel has it.

use std::fmt;

use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError};

use super::counters::HandshakeFailure;
use super::TlsInfo;

/// Most bytes of TLS records a record can add to what it carries (header,
/// content type, AEAD tag), with room to spare; a record carries at most
/// 16 KiB.
const RECORD_OVERHEAD: usize = 64;
const RECORD_PLAINTEXT: usize = 16 << 10;

/// Why a TLS connection cannot go on.
#[derive(Debug)]
pub(crate) enum SessionError {
    /// The peer broke the protocol, or the handshake failed (no shared
    /// version or cipher, a bad client certificate, ...).
    Protocol(rustls::Error),
    /// The keys reached their use limit (TLS 1.2 has no key update).
    Exhausted,
    /// Writing after `close_notify`, or before the handshake ended.
    NotWritable,
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionError::Protocol(e) => write!(f, "TLS: {e}"),
            SessionError::Exhausted => f.write_str("TLS: the keys reached their use limit"),
            SessionError::NotWritable => f.write_str("TLS: the connection cannot send data now"),
        }
    }
}

impl SessionError {
    /// Why a handshake that failed with this failed.
    pub(crate) fn handshake_failure(&self) -> HandshakeFailure {
        match self {
            SessionError::Protocol(e) => HandshakeFailure::of(e),
            _ => HandshakeFailure::Other,
        }
    }
}

impl std::error::Error for SessionError {}

impl From<SessionError> for std::io::Error {
    fn from(e: SessionError) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::InvalidData, e)
    }
}

/// What [`TlsSession::receive`] made of the bytes.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Received {
    /// Bytes consumed from the front of the input (whole records; a
    /// partial record stays for the next call).
    pub(crate) consumed: usize,
    /// Plaintext bytes appended to the output.
    pub(crate) plaintext: usize,
    /// The peer sent `close_notify`: nothing more will arrive.
    pub(crate) peer_closed: bool,
}

/// A server-side TLS connection, before and after its handshake.
pub(crate) struct TlsSession {
    conn: UnbufferedServerConnection,
}

impl TlsSession {
    pub(crate) fn new(conn: UnbufferedServerConnection) -> TlsSession {
        TlsSession { conn }
    }

    /// What the connection negotiated (once its handshake is over).
    pub(crate) fn info(&self) -> TlsInfo {
        TlsInfo::of(&self.conn)
    }

    /// Whether the handshake is still under way.
    pub(crate) fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// Processes the whole records at the front of `incoming`: their
    /// plaintext is appended to `plaintext` from `at` (growing it as
    /// needed), and the TLS bytes to send in answer to `send`. On an error
    /// `send` holds the alert that tells the peer why, to send before the
    /// connection closes.
    pub(crate) fn receive(
        &mut self,
        incoming: &mut [u8],
        plaintext: &mut Vec<u8>,
        at: usize,
        send: &mut Vec<u8>,
    ) -> Result<Received, SessionError> {
        let mut got = Received::default();
        loop {
            let status = self.conn.process_tls_records(&mut incoming[got.consumed..]);
            let discard = status.discard;
            let state = match status.state {
                Ok(state) => state,
                Err(e) => {
                    self.take_alert(send);
                    return Err(SessionError::Protocol(e));
                }
            };
            let more = match state {
                ConnectionState::ReadTraffic(mut records) => {
                    while let Some(record) = records.next_record() {
                        let payload = match record {
                            Ok(record) => record.payload,
                            Err(e) => return Err(SessionError::Protocol(e)),
                        };
                        put_at(plaintext, at + got.plaintext, payload);
                        got.plaintext += payload.len();
                    }
                    true
                }
                ConnectionState::EncodeTlsData(mut data) => {
                    append(send, RECORD_PLAINTEXT, |out| data.encode(out).map_err(encode_short))?;
                    true
                }
                ConnectionState::TransmitTlsData(data) => {
                    // Sent by the caller with the rest of `send`.
                    data.done();
                    true
                }
                ConnectionState::PeerClosed | ConnectionState::Closed => {
                    got.peer_closed = true;
                    false
                }
                // Early data is off (`max_early_data_size` 0): never here.
                ConnectionState::ReadEarlyData(_) => false,
                // Waiting for more input.
                ConnectionState::BlockedHandshake | ConnectionState::WriteTraffic(_) => false,
                _ => false,
            };
            got.consumed += discard;
            if !more {
                return Ok(got);
            }
        }
    }

    /// Writes `data`, encrypted, into `out` from `at`, after any TLS bytes
    /// the session has queued (a key update, say); returns where the
    /// records end. `out` grows as needed and is not shortened: what lies
    /// past the end is left over from before (a buffer reused across
    /// writes is zero-filled only where it grows).
    pub(crate) fn encrypt(
        &mut self,
        data: &[u8],
        out: &mut Vec<u8>,
        at: usize,
    ) -> Result<usize, SessionError> {
        let room = data.len() + (data.len() / RECORD_PLAINTEXT + 1) * RECORD_OVERHEAD;
        self.with_write_traffic(out, at, |traffic, out, at| {
            write_at(out, at, room, |out| traffic.encrypt(data, out).map_err(encrypt_short))
        })
    }

    /// Appends `close_notify` to `send`: the peer learns the stream ended
    /// here, not cut.
    pub(crate) fn close_notify(&mut self, send: &mut Vec<u8>) -> Result<(), SessionError> {
        let end = self.with_write_traffic(send, send.len(), |traffic, out, at| {
            write_at(out, at, RECORD_OVERHEAD, |out| {
                traffic.queue_close_notify(out).map_err(encrypt_short)
            })
        })?;
        send.truncate(end);
        Ok(())
    }

    /// Runs `write` at `at` in `out` once the session can send application
    /// data, after writing there what it has queued; returns the end.
    fn with_write_traffic(
        &mut self,
        out: &mut Vec<u8>,
        mut at: usize,
        write: impl FnOnce(
            &mut rustls::unbuffered::WriteTraffic<'_, rustls::server::ServerConnectionData>,
            &mut Vec<u8>,
            usize,
        ) -> Result<usize, SessionError>,
    ) -> Result<usize, SessionError> {
        let mut peer_closed_seen = false;
        loop {
            let status = self.conn.process_tls_records(&mut []);
            match status.state.map_err(SessionError::Protocol)? {
                ConnectionState::EncodeTlsData(mut data) => {
                    at = write_at(out, at, RECORD_PLAINTEXT, |out| {
                        data.encode(out).map_err(encode_short)
                    })?;
                }
                ConnectionState::TransmitTlsData(data) => data.done(),
                ConnectionState::WriteTraffic(mut traffic) => return write(&mut traffic, out, at),
                // Reported once; writing may go on after it.
                ConnectionState::PeerClosed if !peer_closed_seen => peer_closed_seen = true,
                _ => return Err(SessionError::NotWritable),
            }
        }
    }

    /// Appends the alert rustls queued with an error to `send`.
    fn take_alert(&mut self, send: &mut Vec<u8>) {
        for _ in 0..4 {
            let status = self.conn.process_tls_records(&mut []);
            match status.state {
                Ok(ConnectionState::EncodeTlsData(mut data)) => {
                    if append(send, RECORD_OVERHEAD, |out| data.encode(out).map_err(encode_short))
                        .is_err()
                    {
                        return;
                    }
                }
                Ok(ConnectionState::TransmitTlsData(data)) => data.done(),
                _ => return,
            }
        }
    }
}

/// Why a write into a slice fell short.
enum Short {
    /// The slice must have this many bytes.
    Needs(usize),
    Exhausted,
}

fn encode_short(e: EncodeError) -> Short {
    match e {
        EncodeError::InsufficientSize(size) => Short::Needs(size.required_size),
        // Each chunk is encoded once: never here.
        EncodeError::AlreadyEncoded => Short::Exhausted,
    }
}

fn encrypt_short(e: EncryptError) -> Short {
    match e {
        EncryptError::InsufficientSize(size) => Short::Needs(size.required_size),
        _ => Short::Exhausted,
    }
}

/// Writes into `out` from `at` what `write` puts in a slice of `room`
/// bytes (or of as many as it says it needs), growing `out` as needed;
/// returns where it ends.
fn write_at(
    out: &mut Vec<u8>,
    at: usize,
    mut room: usize,
    mut write: impl FnMut(&mut [u8]) -> Result<usize, Short>,
) -> Result<usize, SessionError> {
    loop {
        if out.len() < at + room {
            out.resize(at + room, 0);
        }
        match write(&mut out[at..at + room]) {
            Ok(n) => return Ok(at + n),
            Err(Short::Needs(needed)) if needed > room => room = needed,
            Err(_) => return Err(SessionError::Exhausted),
        }
    }
}

/// Appends to `out` what `write` puts in a slice of `room` bytes (or more,
/// as [`write_at`]).
fn append(
    out: &mut Vec<u8>,
    room: usize,
    write: impl FnMut(&mut [u8]) -> Result<usize, Short>,
) -> Result<(), SessionError> {
    let start = out.len();
    let end = write_at(out, start, room, write);
    out.truncate(*end.as_ref().unwrap_or(&start));
    end.map(|_| ())
}

/// Copies `data` into `dst` at `at`, growing `dst` as needed.
fn put_at(dst: &mut Vec<u8>, at: usize, data: &[u8]) {
    let end = at + data.len();
    if dst.len() < end {
        dst.truncate(at.min(dst.len()));
        dst.resize(at, 0);
        dst.extend_from_slice(data);
    } else {
        dst[at..end].copy_from_slice(data);
    }
}
