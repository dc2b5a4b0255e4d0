//! HTTPS over real sockets: the bench app behind `Builder::tls`, driven by
//! a rustls client (and by what a client that does not speak TLS sends).

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use std::sync::Arc;
use support::tls::{connect, read_response, roundtrip, TestPki};
use support::TEST_MAX_BODY;
use uring_serve::apps::{BenchApp, StaticDir, StaticFiles};

use uring_serve::tls::{ClientCerts, TlsSettings, TlsVersion};
use uring_serve::{App, Context, Cores, Request, Response, Server, ServerHandle, StartError};

const GET: &[u8] = b"GET /plaintext HTTP/1.1\r\nHost: localhost\r\n\r\n";

/// Answers every request with what its connection's TLS negotiated:
/// `version resumed scheme`, then the client certificate's subject and
/// names, one per line (`-` without one).
struct TlsReport;

impl App for TlsReport {
    async fn call(&self, req: Request, _cx: &Context) -> Response {
        let Some(tls) = req.tls() else { return Response::text("plain\n") };
        let mut text = format!("{} resumed={} {}\n", tls.version, tls.resumed, req.scheme());
        match &tls.client_certificate {
            Some(cert) => {
                text.push_str(&format!("{}\n", cert.subject));
                for name in &cert.subject_alt_names {
                    text.push_str(&format!("{name}\n"));
                }
            }
            None => text.push_str("-\n"),
        }
        Response::text(text)
    }
}

fn start_report(settings: TlsSettings) -> ServerHandle {
    Server::builder()
        .cores(Cores::Count(1))
        .bind("127.0.0.1:0")
        .tls(settings)
        .serve(|_| TlsReport)
        .expect("server starts")
}

/// The report of one request on a new connection made with `config`.
fn report(server: &ServerHandle, config: Arc<rustls::ClientConfig>) -> String {
    let mut tls = connect(server.local_addr(), config).unwrap();
    let (_, body) = roundtrip(&mut tls, GET);
    String::from_utf8(body).unwrap()
}

/// Whether a client with `config` gets no answer: its handshake fails, or
/// (TLS 1.3, where the client's certificate is checked after the client
/// thinks the handshake is over) its first read does.
fn is_refused(server: &ServerHandle, config: Arc<rustls::ClientConfig>) -> bool {
    let served = connect(server.local_addr(), config).and_then(|mut tls| {
        tls.write_all(GET)?;
        let mut byte = [0u8; 1];
        tls.read_exact(&mut byte)
    });
    served.is_err()
}

fn with_client_certs(pki: &TestPki, reqs: ClientCerts) -> TlsSettings {
    let mut settings = TlsSettings::new(&pki.certfile, &pki.keyfile);
    settings.ca_certs = Some(pki.cafile.clone());
    settings.client_certs = reqs;
    settings
}

fn start_with(settings: TlsSettings) -> Result<ServerHandle, StartError> {
    Server::builder()
        .cores(Cores::Count(1))
        .bind("127.0.0.1:0")
        .max_body_bytes(TEST_MAX_BODY)
        .timeout_request_header(Duration::from_millis(500))
        .tls(settings)
        .serve(BenchApp::new)
}

/// Why a server with `settings` does not start.
fn start_error(settings: TlsSettings) -> StartError {
    match start_with(settings) {
        Ok(_) => panic!("the server started"),
        Err(e) => e,
    }
}

fn start(pki: &TestPki) -> ServerHandle {
    start_with(TlsSettings::new(&pki.certfile, &pki.keyfile)).expect("server starts")
}

#[test]
fn a_request_over_tls_is_answered() {
    let pki = TestPki::new("answered");
    let server = start(&pki);
    let mut tls = connect(server.local_addr(), pki.client_config()).unwrap();
    let (head, body) = roundtrip(&mut tls, GET);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(body, b"Hello, World!");
}

#[test]
fn the_negotiated_protocol_is_http_1_1() {
    let pki = TestPki::new("alpn");
    let server = start(&pki);
    let tls = connect(server.local_addr(), pki.client_config()).unwrap();
    assert_eq!(tls.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
}

#[test]
fn keep_alive_requests_share_one_tls_connection() {
    let pki = TestPki::new("keepalive");
    let server = start(&pki);
    let mut tls = connect(server.local_addr(), pki.client_config()).unwrap();
    for _ in 0..5 {
        let (head, body) = roundtrip(&mut tls, GET);
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert_eq!(body, b"Hello, World!");
    }
}

#[test]
fn pipelined_requests_over_tls_are_answered_in_order() {
    let pki = TestPki::new("pipelined");
    let server = start(&pki);
    let mut tls = connect(server.local_addr(), pki.client_config()).unwrap();
    let mut batch = Vec::new();
    for path in ["/plaintext", "/json", "/plaintext"] {
        batch.extend_from_slice(
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes(),
        );
    }
    tls.write_all(&batch).unwrap();
    assert_eq!(read_response(&mut tls).1, b"Hello, World!");
    assert_eq!(read_response(&mut tls).1, br#"{"message":"Hello, World!"}"#);
    assert_eq!(read_response(&mut tls).1, b"Hello, World!");
}

#[test]
fn a_4_mib_body_is_echoed_over_tls() {
    let pki = TestPki::new("echo");
    let server = start(&pki);
    let mut tls = connect(server.local_addr(), pki.client_config()).unwrap();
    let body: Vec<u8> = (0..4 << 20).map(|i| (i % 251) as u8).collect();
    let head =
        format!("POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n", body.len());
    tls.write_all(head.as_bytes()).unwrap();
    tls.write_all(&body).unwrap();
    let (head, echoed) = read_response(&mut tls);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(echoed == body, "the echo differs");
}

/// Whether the server closes `stream` within `limit` (reads until the end
/// or a reset, ignoring what it sends first).
fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    stream.set_read_timeout(Some(limit)).unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) if started.elapsed() < limit => return true,
            Ok(_) => continue,
            _ => return false,
        }
    }
}

#[test]
fn plain_http_on_the_tls_port_is_closed_and_tls_goes_on() {
    let pki = TestPki::new("plain");
    let server = start(&pki);
    let mut plain = TcpStream::connect(server.local_addr()).unwrap();
    plain.write_all(GET).unwrap();
    assert!(closed_within(&mut plain, Duration::from_secs(3)));
    let mut tls = connect(server.local_addr(), pki.client_config()).unwrap();
    assert_eq!(roundtrip(&mut tls, GET).1, b"Hello, World!");
}

#[test]
fn garbage_on_the_tls_port_is_closed() {
    let pki = TestPki::new("garbage");
    let server = start(&pki);
    let mut plain = TcpStream::connect(server.local_addr()).unwrap();
    plain.write_all(&[0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5, 6, 7, 8]).unwrap();
    assert!(closed_within(&mut plain, Duration::from_secs(3)));
}

#[test]
fn a_handshake_that_stalls_is_cut_at_the_header_timeout() {
    let pki = TestPki::new("stall");
    let server = start(&pki);
    let mut plain = TcpStream::connect(server.local_addr()).unwrap();
    // The start of a ClientHello record, never finished.
    plain.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]).unwrap();
    let started = Instant::now();
    assert!(closed_within(&mut plain, Duration::from_secs(5)));
    assert!(started.elapsed() >= Duration::from_millis(400), "cut before the timeout");
}

#[test]
fn a_client_offering_only_tls_1_2_is_refused_when_the_minimum_is_1_3() {
    let pki = TestPki::new("min13");
    let mut settings = TlsSettings::new(&pki.certfile, &pki.keyfile);
    settings.min_version = TlsVersion::Tls13;
    let server = start_with(settings).expect("server starts");
    let tls12 = pki.client_config_with(&[&rustls::version::TLS12]);
    assert!(connect(server.local_addr(), tls12).is_err());
    let tls13 = pki.client_config_with(&[&rustls::version::TLS13]);
    let tls = connect(server.local_addr(), tls13).unwrap();
    assert_eq!(tls.conn.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_3));
}

#[test]
fn tls_1_2_is_accepted_by_default() {
    let pki = TestPki::new("tls12");
    let server = start(&pki);
    let mut tls =
        connect(server.local_addr(), pki.client_config_with(&[&rustls::version::TLS12])).unwrap();
    assert_eq!(tls.conn.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_2));
    assert_eq!(roundtrip(&mut tls, GET).1, b"Hello, World!");
}

#[test]
fn a_missing_certificate_file_fails_the_start_naming_it() {
    let pki = TestPki::new("missing");
    let missing = pki.dir.join("nowhere.pem");
    let err = start_error(TlsSettings::new(&missing, &pki.keyfile));
    let message = err.to_string();
    assert!(message.contains("--ssl-certfile") && message.contains("nowhere.pem"), "{message}");
    assert_eq!(err.exit_code(), 2);
}

#[test]
fn a_key_that_is_not_the_certificates_fails_the_start() {
    let pki = TestPki::new("mismatch");
    let other = TestPki::new("mismatch-other");
    let err = start_error(TlsSettings::new(&pki.certfile, &other.keyfile));
    let message = err.to_string();
    assert!(
        message.contains("--ssl-keyfile") && message.contains("not the certificate"),
        "{message}"
    );
}

#[test]
fn a_certificate_file_without_a_certificate_fails_the_start() {
    let pki = TestPki::new("nocert");
    let err = start_error(TlsSettings::new(&pki.keyfile, &pki.keyfile));
    assert!(err.to_string().contains("no certificate"), "{err}");
}

#[test]
fn the_application_sees_the_tls_version_and_the_https_scheme() {
    let pki = TestPki::new("report");
    let server = start_report(TlsSettings::new(&pki.certfile, &pki.keyfile));
    assert_eq!(report(&server, pki.client_config()), "TLSv1.3 resumed=false https\n-\n");
}

#[test]
fn a_second_connection_resumes_the_session() {
    let pki = TestPki::new("resume");
    let server = start_report(TlsSettings::new(&pki.certfile, &pki.keyfile));
    let config = pki.client_config();
    assert!(report(&server, config.clone()).contains("resumed=false"));
    let mut tls = connect(server.local_addr(), config).unwrap();
    assert_eq!(tls.conn.handshake_kind(), Some(rustls::HandshakeKind::Resumed));
    let (_, body) = roundtrip(&mut tls, GET);
    assert!(String::from_utf8(body).unwrap().contains("resumed=true"));
}

#[test]
fn a_required_client_certificate_is_verified_and_its_names_reach_the_application() {
    let pki = TestPki::new("mtls-required");
    let server = start_report(with_client_certs(&pki, ClientCerts::Required));
    let text = report(&server, pki.client_config_as("client1.example"));
    assert_eq!(
        text,
        "TLSv1.3 resumed=false https\nCN=client1.example\nDNS:client1.example\nemail:ops@example.com\n"
    );
}

#[test]
fn a_client_without_a_required_certificate_is_refused() {
    let pki = TestPki::new("mtls-refused");
    let server = start_report(with_client_certs(&pki, ClientCerts::Required));
    assert!(is_refused(&server, pki.client_config()), "a client without a certificate was served");
}

#[test]
fn a_certificate_from_another_ca_is_refused() {
    let pki = TestPki::new("mtls-other-ca");
    let other = TestPki::new("mtls-other-ca-2");
    let server = start_report(with_client_certs(&pki, ClientCerts::Required));
    let config = pki.client_config_presenting(other.client_identity("intruder"));
    assert!(is_refused(&server, config), "a certificate of another CA was accepted");
}

#[test]
fn an_optional_client_certificate_may_be_absent() {
    let pki = TestPki::new("mtls-optional");
    let server = start_report(with_client_certs(&pki, ClientCerts::Optional));
    assert_eq!(report(&server, pki.client_config()), "TLSv1.3 resumed=false https\n-\n");
    assert!(report(&server, pki.client_config_as("client2")).contains("CN=client2\n"));
}

#[test]
fn client_certificates_without_their_cas_fail_the_start() {
    let pki = TestPki::new("mtls-no-ca");
    let mut settings = TlsSettings::new(&pki.certfile, &pki.keyfile);
    settings.client_certs = ClientCerts::Required;
    let err = start_error(settings);
    assert!(err.to_string().contains("--ssl-ca-certs"), "{err}");
}

#[test]
fn a_graceful_shutdown_ends_an_idle_tls_connection_with_close_notify() {
    let pki = TestPki::new("close-notify");
    let server = start(&pki);
    let mut tls = connect(server.local_addr(), pki.client_config()).unwrap();
    assert_eq!(roundtrip(&mut tls, GET).1, b"Hello, World!");
    server.shutdown();
    let mut rest = Vec::new();
    // rustls reports an end without close_notify as an error.
    assert_eq!(tls.read_to_end(&mut rest).unwrap(), 0);
}

#[test]
fn a_connection_close_request_ends_with_close_notify() {
    let pki = TestPki::new("close-request");
    let server = start(&pki);
    let mut tls = connect(server.local_addr(), pki.client_config()).unwrap();
    let request = b"GET /plaintext HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    assert_eq!(roundtrip(&mut tls, request).1, b"Hello, World!");
    let mut rest = Vec::new();
    assert_eq!(tls.read_to_end(&mut rest).unwrap(), 0);
}

#[test]
fn handshakes_resumptions_and_failures_are_counted() {
    let pki = TestPki::new("metrics");
    let server = start(&pki);
    let config = pki.client_config();
    for _ in 0..2 {
        let mut tls = connect(server.local_addr(), config.clone()).unwrap();
        assert_eq!(roundtrip(&mut tls, GET).1, b"Hello, World!");
    }
    let mut plain = TcpStream::connect(server.local_addr()).unwrap();
    plain.write_all(GET).unwrap();
    assert!(closed_within(&mut plain, Duration::from_secs(3)));
    let metrics = server.metrics()[0];
    assert_eq!(
        (metrics.tls_handshakes, metrics.tls_resumed, metrics.tls_handshake_failures),
        (2, 1, 1)
    );
}

#[test]
fn a_reload_serves_the_new_certificate_and_a_bad_file_keeps_the_old_one() {
    let pki = TestPki::new("reload");
    let next = TestPki::new("reload-next");
    let server = start(&pki);
    let mut before = connect(server.local_addr(), pki.client_config()).unwrap();
    std::fs::write(&pki.certfile, "not a certificate").unwrap();
    let tls = server.tls().expect("a TLS server");
    assert!(tls.reload().is_err());
    assert_eq!(roundtrip(&mut before, GET).1, b"Hello, World!");
    assert!(connect(server.local_addr(), pki.client_config()).is_ok(), "the old one stays");
    std::fs::copy(&next.certfile, &pki.certfile).unwrap();
    std::fs::copy(&next.keyfile, &pki.keyfile).unwrap();
    tls.reload().expect("the new files load");
    assert!(connect(server.local_addr(), next.client_config()).is_ok());
    assert!(connect(server.local_addr(), pki.client_config()).is_err());
    assert_eq!(roundtrip(&mut before, GET).1, b"Hello, World!");
}

/// A server of the static files in `www` under `pki`'s directory (not the
/// directory itself, which holds the key), over TLS.
fn start_static(pki: &TestPki) -> ServerHandle {
    let dir = StaticDir::open(&pki.dir.join("www")).expect("the directory can be served");
    Server::builder()
        .cores(Cores::Count(1))
        .bind("127.0.0.1:0")
        .tls(TlsSettings::new(&pki.certfile, &pki.keyfile))
        .serve(move |_| StaticFiles::new(&dir))
        .expect("server starts")
}

/// A file of `len` bytes that no two offsets of 251 apart share.
fn write_file(pki: &TestPki, name: &str, len: usize) -> Vec<u8> {
    let bytes: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    std::fs::create_dir_all(pki.dir.join("www")).unwrap();
    std::fs::write(pki.dir.join("www").join(name), &bytes).unwrap();
    bytes
}

#[test]
fn a_large_static_file_is_sent_whole_over_tls() {
    let pki = TestPki::new("static-whole");
    let bytes = write_file(&pki, "big.bin", 3 << 20);
    let server = start_static(&pki);
    let mut tls = connect(server.local_addr(), pki.client_config()).unwrap();
    let (head, body) = roundtrip(&mut tls, b"GET /big.bin HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(body == bytes, "the file differs");
    // The connection goes on after the file.
    let (head, _) = roundtrip(
        &mut tls,
        b"GET /big.bin HTTP/1.1\r\nHost: localhost\r\nRange: bytes=0-0\r\n\r\n",
    );
    assert!(head.starts_with("HTTP/1.1 206"), "{head}");
}

#[test]
fn a_range_of_a_static_file_is_sent_over_tls() {
    let pki = TestPki::new("static-range");
    let bytes = write_file(&pki, "big.bin", 1 << 20);
    let server = start_static(&pki);
    let mut tls = connect(server.local_addr(), pki.client_config()).unwrap();
    let request = b"GET /big.bin HTTP/1.1\r\nHost: localhost\r\nRange: bytes=100000-299999\r\n\r\n";
    let (head, body) = roundtrip(&mut tls, request);
    assert!(head.starts_with("HTTP/1.1 206"), "{head}");
    assert!(body == bytes[100_000..300_000], "the range differs");
}

#[test]
fn a_websocket_over_tls_echoes_messages() {
    let pki = TestPki::new("websocket");
    let server = start(&pki);
    let mut tls = connect(server.local_addr(), pki.client_config()).unwrap();
    let extra = format!("Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {}\r\n", support::ws::KEY);
    let (head, _) = roundtrip(&mut tls, support::ws::handshake("/ws", &extra).as_bytes());
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let message = vec![7u8; 100_000];
    tls.write_all(&support::ws::frame(0x2, &message)).unwrap();
    let mut header = [0u8; 10];
    tls.read_exact(&mut header).unwrap();
    assert_eq!((header[0], header[1]), (0x82, 127), "a final binary frame, 64-bit length");
    assert_eq!(u64::from_be_bytes(header[2..].try_into().unwrap()), 100_000);
    let mut echoed = vec![0u8; 100_000];
    tls.read_exact(&mut echoed).unwrap();
    assert!(echoed == message, "the echo differs");
}

#[test]
fn the_cipher_suites_named_are_the_ones_negotiated() {
    let pki = TestPki::new("ciphers");
    let mut settings = TlsSettings::new(&pki.certfile, &pki.keyfile);
    settings.ciphers = vec!["TLS_AES_128_GCM_SHA256".into()];
    settings.min_version = TlsVersion::Tls13;
    let server = start_with(settings).expect("server starts");
    let tls = connect(server.local_addr(), pki.client_config()).unwrap();
    let suite = tls.conn.negotiated_cipher_suite().unwrap().suite();
    assert_eq!(suite, rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
}

#[test]
fn an_unknown_cipher_suite_fails_the_start_listing_the_known_ones() {
    let pki = TestPki::new("bad-cipher");
    let mut settings = TlsSettings::new(&pki.certfile, &pki.keyfile);
    settings.ciphers = vec!["RC4-MD5".into()];
    let message = start_error(settings).to_string();
    assert!(
        message.contains("RC4-MD5") && message.contains("TLS13_AES_128_GCM_SHA256"),
        "{message}"
    );
}

#[test]
fn ciphers_that_leave_tls_1_2_without_a_suite_fail_the_start() {
    let pki = TestPki::new("cipher-version");
    let mut settings = TlsSettings::new(&pki.certfile, &pki.keyfile);
    settings.ciphers = vec!["TLS13_AES_128_GCM_SHA256".into()];
    let message = start_error(settings).to_string();
    assert!(message.contains("no cipher suite of TLS 1.2"), "{message}");
}
