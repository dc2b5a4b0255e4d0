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
    /// Plaintext bytes appended to the output.
    pub(crate) plaintext: usize,
    /// The peer sent `close_notify`: nothing more will arrive.
    pub(crate) peer_closed: bool,
}

/// A server-side TLS connection, before and after its handshake, with the
/// ciphertext it holds.
///
/// rustls may keep the first records of a handshake message in the input
/// until the message is whole, and expects every later call to see them
/// again: so the session owns that input (`incoming[..filled]`), and every
/// call to rustls, for reading or for writing, is given it.
pub(crate) struct TlsSession {
    conn: UnbufferedServerConnection,
    incoming: Vec<u8>,
    filled: usize,
}

impl TlsSession {
    pub(crate) fn new(conn: UnbufferedServerConnection) -> TlsSession {
        TlsSession { conn, incoming: Vec::new(), filled: 0 }
    }

    /// How many bytes of ciphertext the session holds (the start of a
    /// record or of a handshake message not yet whole).
    pub(crate) fn held(&self) -> usize {
        self.filled
    }

    /// Takes in `data`, received after what the session holds.
    pub(crate) fn take_in(&mut self, data: &[u8]) {
        put_at(&mut self.incoming, self.filled, data);
        self.filled += data.len();
    }

    /// Takes in the first `len` bytes of `landing`, received after what the
    /// session holds: when it holds nothing, `landing` becomes its input
    /// (no copy) and `landing` gets the old input's memory back.
    pub(crate) fn take_in_buffer(&mut self, landing: &mut Vec<u8>, len: usize) {
        if self.filled == 0 {
            std::mem::swap(&mut self.incoming, landing);
            self.filled = len;
        } else {
            self.take_in(&landing[..len]);
        }
    }

    /// Lets go of the input's memory when it holds nothing.
    pub(crate) fn release_input(&mut self) {
        if self.filled == 0 {
            self.incoming = Vec::new();
        }
    }

    /// Removes `n` consumed bytes from the front of the input.
    fn discard(&mut self, n: usize) {
        if n > 0 {
            self.incoming.copy_within(n..self.filled, 0);
            self.filled -= n;
        }
    }

    /// What the connection negotiated (once its handshake is over).
    pub(crate) fn info(&self) -> TlsInfo {
        TlsInfo::of(&self.conn)
    }

    /// Whether the handshake is still under way.
    pub(crate) fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// Processes the whole records the session holds: their plaintext is
    /// appended to `plaintext` from `at` (growing it as needed), and the
    /// TLS bytes to send in answer to `send`. On an error `send` holds the
    /// alert that tells the peer why, to send before the connection closes.
    pub(crate) fn receive(
        &mut self,
        plaintext: &mut Vec<u8>,
        at: usize,
        send: &mut Vec<u8>,
    ) -> Result<Received, SessionError> {
        let mut got = Received::default();
        let mut consumed = 0;
        let result = loop {
            let filled = self.filled;
            let status = self.conn.process_tls_records(&mut self.incoming[consumed..filled]);
            // Discarded once this state is dealt with: counted now.
            consumed += status.discard;
            let state = match status.state {
                Ok(state) => state,
                Err(e) => break Err(SessionError::Protocol(e)),
            };
            let more = match state {
                ConnectionState::ReadTraffic(mut records) => {
                    let mut failed = None;
                    while let Some(record) = records.next_record() {
                        match record {
                            Ok(record) => {
                                put_at(plaintext, at + got.plaintext, record.payload);
                                got.plaintext += record.payload.len();
                            }
                            Err(e) => {
                                failed = Some(e);
                                break;
                            }
                        }
                    }
                    if let Some(e) = failed {
                        break Err(SessionError::Protocol(e));
                    }
                    true
                }
                ConnectionState::EncodeTlsData(mut data) => {
                    if let Err(e) =
                        append(send, RECORD_PLAINTEXT, |out| data.encode(out).map_err(encode_short))
                    {
                        break Err(e);
                    }
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
            if !more {
                break Ok(got);
            }
        };
        self.discard(consumed);
        if result.is_err() {
            self.take_alert(send);
        }
        result
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
        let mut write = Some(write);
        let mut peer_closed_seen = false;
        loop {
            // The held input, which rustls must see again (it holds no
            // whole record: `receive` took those).
            let filled = self.filled;
            let status = self.conn.process_tls_records(&mut self.incoming[..filled]);
            let discard = status.discard;
            let step = match status.state.map_err(SessionError::Protocol)? {
                ConnectionState::EncodeTlsData(mut data) => {
                    write_at(out, at, RECORD_PLAINTEXT, |out| {
                        data.encode(out).map_err(encode_short)
                    })
                    .map(Some)
                }
                ConnectionState::TransmitTlsData(data) => {
                    data.done();
                    Ok(Some(at))
                }
                ConnectionState::WriteTraffic(mut traffic) => match write.take() {
                    Some(write) => write(&mut traffic, out, at).map(|end| {
                        at = end;
                        None
                    }),
                    None => Ok(None),
                },
                // Reported once; writing may go on after it.
                ConnectionState::PeerClosed if !peer_closed_seen => {
                    peer_closed_seen = true;
                    Ok(Some(at))
                }
                _ => Err(SessionError::NotWritable),
            };
            self.discard(discard);
            match step? {
                Some(next) => at = next,
                None => return Ok(at),
            }
        }
    }

    /// Appends the alert rustls queued with an error to `send`. rustls
    /// queues it as one chunk, which the next call hands out before it
    /// looks at the input; a further call would read the input again and
    /// fail a second time, so there is none.
    fn take_alert(&mut self, send: &mut Vec<u8>) {
        let filled = self.filled;
        let status = self.conn.process_tls_records(&mut self.incoming[..filled]);
        let discard = status.discard;
        if let Ok(ConnectionState::EncodeTlsData(mut data)) = status.state {
            let _ = append(send, RECORD_OVERHEAD, |out| data.encode(out).map_err(encode_short));
        }
        self.discard(discard);
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rustls::pki_types::PrivateKeyDer;
    use rustls::ServerConfig;

    use super::*;

    fn session() -> TlsSession {
        let key = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let der = PrivateKeyDer::try_from(key.signing_key.serialize_der()).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![key.cert.der().clone()], der)
            .unwrap();
        TlsSession::new(UnbufferedServerConnection::new(Arc::new(config)).unwrap())
    }

    /// A whole record holding the first bytes of a 256-byte ClientHello.
    const CLIENT_HELLO_START: [u8; 15] =
        [0x16, 0x03, 0x01, 0x00, 0x0a, 0x01, 0x00, 0x01, 0x00, 0x03, 0x03, 1, 2, 3, 4];

    #[test]
    fn a_handshake_message_split_across_records_waits_for_the_rest() {
        let mut session = session();
        session.take_in(&CLIENT_HELLO_START);
        let (mut plain, mut send) = (Vec::new(), Vec::new());
        let got = session.receive(&mut plain, 0, &mut send).unwrap();
        assert_eq!((got, plain.len(), send.len()), (Received::default(), 0, 0));
        assert!(session.is_handshaking());
    }

    #[test]
    fn closing_mid_handshake_with_part_of_a_message_held_fails_without_panicking() {
        let mut session = session();
        session.take_in(&CLIENT_HELLO_START);
        let (mut plain, mut send) = (Vec::new(), Vec::new());
        session.receive(&mut plain, 0, &mut send).unwrap();
        let mut out = Vec::new();
        assert!(matches!(session.close_notify(&mut out), Err(SessionError::NotWritable)));
        assert!(out.is_empty());
    }

    #[test]
    fn garbage_fails_with_one_alert_to_send() {
        let mut session = session();
        session.take_in(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        let (mut plain, mut send) = (Vec::new(), Vec::new());
        let failed = session.receive(&mut plain, 0, &mut send);
        assert!(matches!(failed, Err(SessionError::Protocol(_))));
        // One alert record: type 21, then the version, a length of 2.
        assert_eq!(&send[..1], &[0x15]);
        assert_eq!(send.len(), 7);
    }
}
