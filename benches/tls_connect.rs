//! New TLS connections per second against a server: each of `--conns`
//! threads connects, completes a handshake, sends one `Connection: close`
//! request, reads the response to the end, and starts again. With
//! `--resume` the threads share one session cache, so every connection but
//! the first of each resumes (TLS 1.3 tickets); without it every handshake
//! is full. The server's certificate is not verified (a load generator's
//! verification would only slow the client; the server's work is what is
//! measured).
//!
//!     tls_connect --addr 127.0.0.1:8443 --conns 16 --secs 5 [--resume]
//!
//! Prints one JSON object: connections per second, and how many resumed.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::Resumption;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme, StreamOwned};

/// Accepts any certificate: the load generator trusts the server under test.
#[derive(Debug)]
struct TrustAnything(Vec<SignatureScheme>);

impl ServerCertVerifier for TrustAnything {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.clone()
    }
}

fn main() {
    let mut addr: Option<SocketAddr> = None;
    let (mut conns, mut secs, mut resume) = (16usize, 5u64, false);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--resume" => resume = true,
            "--addr" => addr = args.next().and_then(|a| a.parse().ok()),
            "--conns" => conns = args.next().and_then(|a| a.parse().ok()).unwrap_or(conns),
            "--secs" => secs = args.next().and_then(|a| a.parse().ok()).unwrap_or(secs),
            _ => {}
        }
    }
    let Some(addr) = addr else {
        eprintln!("usage: tls_connect --addr HOST:PORT [--conns N] [--secs S] [--resume]");
        std::process::exit(2);
    };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let schemes = provider.signature_verification_algorithms.supported_schemes();
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(TrustAnything(schemes)))
        .with_no_client_auth();
    config.resumption =
        if resume { Resumption::in_memory_sessions(1024) } else { Resumption::disabled() };
    let config = Arc::new(config);
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let resumed = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let threads: Vec<_> = (0..conns)
        .map(|_| {
            let (config, stop) = (config.clone(), stop.clone());
            let (done, resumed, failed) = (done.clone(), resumed.clone(), failed.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match one_connection(addr, config.clone()) {
                        Ok(was_resumed) => {
                            done.fetch_add(1, Ordering::Relaxed);
                            if was_resumed {
                                resumed.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        Err(_) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(secs));
    stop.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    for thread in threads {
        let _ = thread.join();
    }
    let done = done.load(Ordering::Relaxed);
    println!(
        "{{\"conns_per_s\":{:.0},\"connections\":{done},\"resumed\":{},\"failed\":{}}}",
        done as f64 / elapsed,
        resumed.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed)
    );
}

/// One connection: handshake, one request, the response to the end.
/// Whether the session was resumed.
fn one_connection(addr: SocketAddr, config: Arc<ClientConfig>) -> std::io::Result<bool> {
    let tcp = TcpStream::connect(addr)?;
    tcp.set_nodelay(true)?;
    tcp.set_read_timeout(Some(Duration::from_secs(5)))?;
    let name = ServerName::try_from("localhost").expect("a name");
    let conn = ClientConnection::new(config, name).map_err(std::io::Error::other)?;
    let mut tls = StreamOwned::new(conn, tcp);
    tls.write_all(b"GET /plaintext HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
    let mut response = Vec::new();
    match tls.read_to_end(&mut response) {
        Ok(_) => {}
        // A server that closes without close_notify after a
        // `Connection: close` response: the response is whole.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !response.is_empty() => {}
        Err(e) => return Err(e),
    }
    if !response.starts_with(b"HTTP/1.1 200") {
        return Err(std::io::Error::other("not a 200"));
    }
    Ok(tls.conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed))
}
