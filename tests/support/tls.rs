//! TLS for the tests: a CA, a server certificate for `localhost` and
//! 127.0.0.1 signed by it (made by rcgen when the test runs: no private key
//! is committed), written as PEM files; and a rustls client over a plain
//! `TcpStream` that trusts that CA.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

/// A test CA and a server certificate it signed, as PEM files in a
/// directory of their own.
pub struct TestPki {
    pub dir: PathBuf,
    pub ca: CertificateDer<'static>,
    pub cafile: PathBuf,
    pub certfile: PathBuf,
    pub keyfile: PathBuf,
    issuer: Issuer<'static, KeyPair>,
}

impl TestPki {
    /// Makes the CA and the server certificate under a directory named
    /// after `name` (unique per test process).
    pub fn new(name: &str) -> TestPki {
        let dir =
            std::env::temp_dir().join(format!("uring-serve-tls-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
        ca.distinguished_name.push(DnType::CommonName, format!("uring-serve test CA {name}"));
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);
        let key = KeyPair::generate().unwrap();
        let mut leaf =
            CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
        leaf.distinguished_name.push(DnType::CommonName, "localhost");
        let cert = leaf.signed_by(&key, &issuer).unwrap();
        let certfile = dir.join("cert.pem");
        let keyfile = dir.join("key.pem");
        std::fs::write(&certfile, cert.pem()).unwrap();
        std::fs::write(&keyfile, key.serialize_pem()).unwrap();
        let cafile = dir.join("ca.pem");
        std::fs::write(&cafile, ca_cert.pem()).unwrap();
        TestPki { dir, ca: ca_cert.der().clone(), cafile, certfile, keyfile, issuer }
    }

    /// A client certificate for `name` (its common name, also a DNS
    /// alternative name, with an email one) signed by the test CA, with
    /// its key.
    pub fn client_identity(
        &self,
        name: &str,
    ) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec![name.to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.subject_alt_names.push(SanType::Rfc822Name("ops@example.com".try_into().unwrap()));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let key = PrivateKeyDer::try_from(key.serialize_der()).unwrap();
        (vec![cert.der().clone()], key)
    }

    /// A client configuration that trusts the test CA and presents the
    /// certificate of `name`.
    pub fn client_config_as(&self, name: &str) -> Arc<ClientConfig> {
        self.client_config_presenting(self.client_identity(name))
    }

    /// A client configuration that trusts the test CA and presents
    /// `identity` (a chain and its key, from any CA).
    pub fn client_config_presenting(
        &self,
        (chain, key): (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>),
    ) -> Arc<ClientConfig> {
        let config = self
            .client_builder(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .with_client_auth_cert(chain, key)
            .unwrap();
        with_alpn(config)
    }

    /// A client configuration that trusts the test CA, offering `http/1.1`.
    pub fn client_config(&self) -> Arc<ClientConfig> {
        self.client_config_with(&[&rustls::version::TLS13, &rustls::version::TLS12])
    }

    /// As [`TestPki::client_config`], offering only `versions`.
    pub fn client_config_with(
        &self,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> Arc<ClientConfig> {
        with_alpn(self.client_builder(versions).with_no_client_auth())
    }

    fn client_builder(
        &self,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> rustls::ConfigBuilder<ClientConfig, rustls::client::WantsClientCert> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.clone()).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots)
    }
}

impl Drop for TestPki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn with_alpn(mut config: ClientConfig) -> Arc<ClientConfig> {
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// A TLS client connection to the test server.
pub type TlsStream = StreamOwned<ClientConnection, TcpStream>;

/// Connects to `addr` over TLS (as `localhost`) and completes the
/// handshake.
pub fn connect(addr: SocketAddr, config: Arc<ClientConfig>) -> std::io::Result<TlsStream> {
    let tcp = TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let name = ServerName::try_from("localhost").unwrap();
    let conn = ClientConnection::new(config, name).map_err(std::io::Error::other)?;
    let mut stream = StreamOwned::new(conn, tcp);
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock)?;
    }
    Ok(stream)
}

/// Sends `request` and reads one response whose body has a
/// `Content-Length`: its status line and headers, and its body.
pub fn roundtrip(stream: &mut TlsStream, request: &[u8]) -> (String, Vec<u8>) {
    stream.write_all(request).unwrap();
    read_response(stream)
}

/// Reads one response with a `Content-Length` body.
pub fn read_response(stream: &mut TlsStream) -> (String, Vec<u8>) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length").then(|| value.trim().parse().unwrap())
        })
        .unwrap_or(0);
    let mut body = vec![0; len];
    stream.read_exact(&mut body).unwrap();
    (head, body)
}
