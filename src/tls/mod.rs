//! TLS: the settings (`--ssl-*`, [`TlsSettings`]), loading the certificate
//! chain and key (an error names the file and what is wrong with it),
//! and the rustls configuration the cores share ([`TlsConfig`]): one
//! ticketer for all of them, so a session ticket from one core resumes on
//! any other, and one session cache per core (rustls's is one mutex). The
//! certificate can be swapped while the server runs
//! ([`TlsConfig::reload`]); handshakes that already began keep the old one.
//!
//! One connection's protocol is `session`; its I/O is `io::tls`.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{
    ClientHello, ResolvesServerCert, ServerSessionMemoryCache, WebPkiClientVerifier,
};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};

pub(crate) mod counters;
mod info;
pub(crate) mod session;

pub use info::{ClientCertificate, TlsInfo};

/// A certificate that expires within this is a warning at start.
pub const EXPIRY_WARNING: Duration = Duration::from_secs(14 * 24 * 3600);

/// Session caches hold this many sessions per core (TLS 1.2 session IDs;
/// tickets need none).
const SESSION_CACHE_ENTRIES: usize = 1024;

/// The oldest protocol version a client may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsVersion {
    /// TLS 1.2 and 1.3 (the default, as nginx and uvicorn).
    #[default]
    Tls12,
    /// TLS 1.3 only.
    Tls13,
}

impl std::str::FromStr for TlsVersion {
    type Err = String;

    fn from_str(s: &str) -> Result<TlsVersion, String> {
        match s {
            "1.2" | "TLSv1.2" => Ok(TlsVersion::Tls12),
            "1.3" | "TLSv1.3" => Ok(TlsVersion::Tls13),
            _ => Err(format!("{s:?} is not a TLS version this server offers (1.2 or 1.3)")),
        }
    }
}

/// Whether clients present a certificate (uvicorn's `--ssl-cert-reqs`:
/// 0, 1, 2, or by name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientCerts {
    /// None asked for (`0`, `none`; the default).
    #[default]
    None,
    /// Asked for and verified when sent; a client without one is served
    /// (`1`, `optional`).
    Optional,
    /// A client without a valid one is refused in the handshake (`2`,
    /// `required`).
    Required,
}

impl std::str::FromStr for ClientCerts {
    type Err = String;

    fn from_str(s: &str) -> Result<ClientCerts, String> {
        match s {
            "0" | "none" => Ok(ClientCerts::None),
            "1" | "optional" => Ok(ClientCerts::Optional),
            "2" | "required" => Ok(ClientCerts::Required),
            _ => Err(format!("{s:?}: use 0/none, 1/optional or 2/required")),
        }
    }
}

/// Where the server's TLS identity comes from, and what it asks of
/// clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// `--ssl-certfile`: the certificate chain, PEM, the server's first.
    pub certfile: PathBuf,
    /// `--ssl-keyfile`: its private key, PEM (PKCS#8, RSA or EC).
    pub keyfile: PathBuf,
    /// `--ssl-ca-certs`: the CAs client certificates are verified against,
    /// PEM.
    pub ca_certs: Option<PathBuf>,
    /// `--ssl-cert-reqs`: whether clients present a certificate.
    pub client_certs: ClientCerts,
    /// `--ssl-min-version`: the oldest protocol version accepted.
    pub min_version: TlsVersion,
    /// `--ssl-ciphers`: the cipher suites offered, most preferred first, by
    /// their IANA names (`TLS13_AES_128_GCM_SHA256`, OpenSSL's
    /// `TLS_AES_128_GCM_SHA256` too); empty: rustls's defaults.
    pub ciphers: Vec<String>,
}

impl TlsSettings {
    /// Serves with the chain in `certfile` and the key in `keyfile`; no
    /// client certificates; TLS 1.2 and 1.3.
    pub fn new(certfile: impl Into<PathBuf>, keyfile: impl Into<PathBuf>) -> TlsSettings {
        TlsSettings {
            certfile: certfile.into(),
            keyfile: keyfile.into(),
            ca_certs: None,
            client_certs: ClientCerts::None,
            min_version: TlsVersion::Tls12,
            ciphers: Vec::new(),
        }
    }
}

/// Why the TLS configuration cannot be used: each names the file or the
/// setting at fault.
#[derive(Debug)]
pub enum TlsError {
    /// A file cannot be read.
    Read {
        /// The setting that names it (`--ssl-certfile`, ...).
        setting: &'static str,
        /// The file.
        path: PathBuf,
        /// What the system said.
        error: io::Error,
    },
    /// A file is not the PEM it should be.
    Pem {
        /// The setting that names it.
        setting: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        what: String,
    },
    /// The certificate file holds no certificate.
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The key does not belong to the certificate, or is of a kind the
    /// server cannot sign with.
    Key {
        /// The key's file.
        keyfile: PathBuf,
        /// The certificate's file.
        certfile: PathBuf,
        /// Why.
        why: String,
    },
    /// Client certificates asked for without the CAs to verify them, or
    /// the CAs unusable.
    ClientCa {
        /// Why.
        why: String,
    },
    /// A cipher suite named in `--ssl-ciphers` is not one the server has.
    Cipher {
        /// The name given.
        name: String,
        /// The names the server knows.
        known: String,
    },
    /// `--ssl-ciphers` leaves a protocol version the server offers
    /// without a cipher suite.
    NoCipherFor {
        /// The version, and why it is offered.
        version: &'static str,
    },
    /// rustls refused the configuration.
    Config(rustls::Error),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Read { setting, path, error } => {
                write!(f, "{setting} {}: cannot read it: {error}", path.display())
            }
            TlsError::Pem { setting, path, what } => {
                write!(f, "{setting} {}: not valid PEM: {what}", path.display())
            }
            TlsError::NoCertificate { path } => write!(
                f,
                "--ssl-certfile {}: no certificate in it (expected PEM \"BEGIN CERTIFICATE\" blocks)",
                path.display()
            ),
            TlsError::Key { keyfile, certfile, why } => write!(
                f,
                "--ssl-keyfile {}: cannot be used with --ssl-certfile {}: {why}",
                keyfile.display(),
                certfile.display()
            ),
            TlsError::ClientCa { why } => write!(f, "--ssl-ca-certs: {why}"),
            TlsError::NoCipherFor { version } => {
                write!(f, "--ssl-ciphers names no cipher suite of {version}")
            }
            TlsError::Cipher { name, known } => {
                write!(f, "--ssl-ciphers: {name:?} is not a cipher suite this server has ({known})")
            }
            TlsError::Config(e) => write!(f, "TLS configuration: {e}"),
        }
    }
}

impl std::error::Error for TlsError {}

/// The rustls configuration the cores share, and the certificate they
/// serve, which can be swapped while they run.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    base: Arc<ServerConfig>,
    certificate: Arc<CurrentCertificate>,
    settings: TlsSettings,
}

impl TlsConfig {
    /// Loads the certificate and key and builds the configuration.
    pub fn load(settings: &TlsSettings) -> Result<TlsConfig, TlsError> {
        let mut provider = rustls::crypto::aws_lc_rs::default_provider();
        if !settings.ciphers.is_empty() {
            provider.cipher_suites = choose_ciphers(&settings.ciphers)?;
            let has = |tls13: bool| {
                provider
                    .cipher_suites
                    .iter()
                    .any(|suite| matches!(suite, rustls::SupportedCipherSuite::Tls13(_)) == tls13)
            };
            let missing = if !has(true) {
                Some("TLS 1.3 (always offered)")
            } else if settings.min_version == TlsVersion::Tls12 && !has(false) {
                Some("TLS 1.2 (offered while --ssl-min-version is 1.2)")
            } else {
                None
            };
            if let Some(version) = missing {
                return Err(TlsError::NoCipherFor { version });
            }
        }
        let provider = Arc::new(provider);
        let key = load_identity(settings, &provider)?;
        let certificate = Arc::new(CurrentCertificate(RwLock::new(Arc::new(key))));
        let versions: &[&rustls::SupportedProtocolVersion] = match settings.min_version {
            TlsVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
            TlsVersion::Tls13 => &[&rustls::version::TLS13],
        };
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions)
            .map_err(TlsError::Config)?;
        let builder = match (settings.client_certs, &settings.ca_certs) {
            (ClientCerts::None, _) => builder.with_no_client_auth(),
            (_, None) => {
                return Err(TlsError::ClientCa {
                    why: "--ssl-cert-reqs asks for client certificates: name the CAs that \
                          issue them"
                        .into(),
                })
            }
            (reqs, Some(path)) => {
                let roots = load_roots(path)?;
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
                let verifier = match reqs {
                    ClientCerts::Optional => verifier.allow_unauthenticated(),
                    _ => verifier,
                };
                let verifier =
                    verifier.build().map_err(|e| TlsError::ClientCa { why: e.to_string() })?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder.with_cert_resolver(certificate.clone());
        // With --ssl-ciphers the order given is the server's preference.
        config.ignore_client_order = !settings.ciphers.is_empty();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        config.ticketer = rustls::crypto::aws_lc_rs::Ticketer::new().map_err(TlsError::Config)?;
        config.send_tls13_tickets = 1;
        Ok(TlsConfig { base: Arc::new(config), certificate, settings: settings.clone() })
    }

    /// The configuration for one core: the shared one with the core's own
    /// session cache.
    pub(crate) fn for_core(&self) -> Arc<ServerConfig> {
        let mut config = (*self.base).clone();
        config.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE_ENTRIES);
        Arc::new(config)
    }

    /// Reads the certificate and key files again and serves them from the
    /// next handshake on; on an error the one in use stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let provider = self.base.crypto_provider().clone();
        let key = load_identity(&self.settings, &provider)?;
        self.certificate.replace(Arc::new(key));
        Ok(())
    }

    /// When the served certificate expires.
    pub fn expires(&self) -> Option<SystemTime> {
        let current = self.certificate.current();
        not_after(current.end_entity_cert().ok()?)
    }
}

/// The certificate every handshake gets, swapped by a reload.
#[derive(Debug)]
struct CurrentCertificate(RwLock<Arc<CertifiedKey>>);

impl CurrentCertificate {
    fn current(&self) -> Arc<CertifiedKey> {
        match self.0.read() {
            Ok(key) => key.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn replace(&self, key: Arc<CertifiedKey>) {
        match self.0.write() {
            Ok(mut current) => *current = key,
            Err(poisoned) => *poisoned.into_inner() = key,
        }
    }
}

impl ResolvesServerCert for CurrentCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// The cipher suites named, in order.
fn choose_ciphers(names: &[String]) -> Result<Vec<rustls::SupportedCipherSuite>, TlsError> {
    let all = rustls::crypto::aws_lc_rs::ALL_CIPHER_SUITES;
    let name_of = |suite: &rustls::SupportedCipherSuite| suite.suite().as_str().unwrap_or("");
    names
        .iter()
        .map(|name| {
            // OpenSSL names the TLS 1.3 suites without the "13".
            let iana = match name.strip_prefix("TLS_") {
                Some(rest) if !rest.contains("_WITH_") => format!("TLS13_{rest}"),
                _ => name.clone(),
            };
            all.iter().find(|suite| name_of(suite) == iana).copied().ok_or_else(|| {
                TlsError::Cipher {
                    name: name.clone(),
                    known: all.iter().map(name_of).collect::<Vec<_>>().join(", "),
                }
            })
        })
        .collect()
}

/// The chain and key of `settings`, checked to belong together.
fn load_identity(
    settings: &TlsSettings,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let chain = load_certificates("--ssl-certfile", &settings.certfile)?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate { path: settings.certfile.clone() });
    }
    let key = PrivateKeyDer::from_pem_file(&settings.keyfile)
        .map_err(|e| pem_error("--ssl-keyfile", &settings.keyfile, e))?;
    CertifiedKey::from_der(chain, key, provider).map_err(|e| TlsError::Key {
        keyfile: settings.keyfile.clone(),
        certfile: settings.certfile.clone(),
        why: match e {
            rustls::Error::InconsistentKeys(_) => "the key is not the certificate's".into(),
            e => e.to_string(),
        },
    })
}

/// Every certificate in the PEM file at `path`.
fn load_certificates(
    setting: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_error(setting, path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(setting, path, e))
}

/// The CAs in the PEM file at `path`.
fn load_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    let certificates = load_certificates("--ssl-ca-certs", path)?;
    if certificates.is_empty() {
        return Err(TlsError::ClientCa {
            why: format!("{}: no certificate in it", path.display()),
        });
    }
    for certificate in certificates {
        roots
            .add(certificate)
            .map_err(|e| TlsError::ClientCa { why: format!("{}: {e}", path.display()) })?;
    }
    Ok(roots)
}

fn pem_error(setting: &'static str, path: &Path, error: pem::Error) -> TlsError {
    match error {
        pem::Error::Io(error) => TlsError::Read { setting, path: path.to_owned(), error },
        pem::Error::NoItemsFound => TlsError::Pem {
            setting,
            path: path.to_owned(),
            what: "no key in it (expected a PEM \"PRIVATE KEY\" block)".into(),
        },
        e => TlsError::Pem { setting, path: path.to_owned(), what: e.to_string() },
    }
}

/// When `certificate` stops being valid.
fn not_after(certificate: &CertificateDer<'_>) -> Option<SystemTime> {
    let (_, parsed) = x509_parser::parse_x509_certificate(certificate.as_ref()).ok()?;
    let seconds = parsed.validity().not_after.timestamp();
    let seconds = u64::try_from(seconds).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(seconds))
}
