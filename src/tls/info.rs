//! What a TLS connection negotiated, as the application sees it
//! ([`TlsInfo`], `Request::tls`): the protocol version, the cipher suite,
//! whether the session was resumed, and the client's verified certificate
//! with its subject and alternative names (read with x509-parser, which
//! rustls does not expose).

use rustls::pki_types::CertificateDer;
use rustls::server::UnbufferedServerConnection;
use rustls::{HandshakeKind, ProtocolVersion};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// What a TLS connection negotiated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsInfo {
    /// `"TLSv1.3"` or `"TLSv1.2"`.
    pub version: &'static str,
    /// The cipher suite (`"TLS13_AES_128_GCM_SHA256"`, ...).
    pub cipher_suite: &'static str,
    /// Whether the session was resumed (from a ticket) rather than made in
    /// a full handshake.
    pub resumed: bool,
    /// The client's certificate, verified against `--ssl-ca-certs`, when it
    /// sent one (`--ssl-cert-reqs 1` or `2`).
    pub client_certificate: Option<ClientCertificate>,
}

/// A client's verified certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertificate {
    /// The chain as the client sent it, DER, the client's own first.
    pub chain: Vec<Vec<u8>>,
    /// The subject's distinguished name (`"CN=client1, O=Example"`).
    pub subject: String,
    /// The subject alternative names, each with its kind as OpenSSL
    /// writes it: `DNS:host.example`, `email:a@example.com`,
    /// `URI:spiffe://...`, `IP:192.0.2.1`.
    pub subject_alt_names: Vec<String>,
}

impl TlsInfo {
    /// What `conn`, its handshake over, negotiated.
    pub(crate) fn of(conn: &UnbufferedServerConnection) -> TlsInfo {
        let version = match conn.protocol_version() {
            Some(ProtocolVersion::TLSv1_3) => "TLSv1.3",
            Some(ProtocolVersion::TLSv1_2) => "TLSv1.2",
            _ => "unknown",
        };
        let cipher_suite = conn
            .negotiated_cipher_suite()
            .and_then(|suite| suite.suite().as_str())
            .unwrap_or("unknown");
        TlsInfo {
            version,
            cipher_suite,
            resumed: conn.handshake_kind() == Some(HandshakeKind::Resumed),
            client_certificate: conn.peer_certificates().and_then(ClientCertificate::of),
        }
    }
}

impl ClientCertificate {
    /// The certificate at the head of `chain`; `None` for an empty chain
    /// or one whose first certificate does not parse (it was verified, so
    /// this does not happen).
    fn of(chain: &[CertificateDer<'static>]) -> Option<ClientCertificate> {
        let (_, parsed) = X509Certificate::from_der(chain.first()?.as_ref()).ok()?;
        let mut subject_alt_names = Vec::new();
        if let Ok(Some(names)) = parsed.subject_alternative_name() {
            for name in &names.value.general_names {
                subject_alt_names.push(match name {
                    GeneralName::DNSName(name) => format!("DNS:{name}"),
                    GeneralName::RFC822Name(name) => format!("email:{name}"),
                    GeneralName::URI(uri) => format!("URI:{uri}"),
                    GeneralName::IPAddress(ip) => format!("IP:{}", ip_text(ip)),
                    other => format!("{other}"),
                });
            }
        }
        Some(ClientCertificate {
            chain: chain.iter().map(|c| c.as_ref().to_vec()).collect(),
            subject: parsed.subject().to_string(),
            subject_alt_names,
        })
    }
}

/// An IP address SAN's 4 or 16 bytes as text.
fn ip_text(bytes: &[u8]) -> String {
    match bytes.len() {
        4 => std::net::Ipv4Addr::from(<[u8; 4]>::try_from(bytes).unwrap_or_default()).to_string(),
        16 => std::net::Ipv6Addr::from(<[u8; 16]>::try_from(bytes).unwrap_or_default()).to_string(),
        _ => format!("{bytes:02x?}"),
    }
}
