//! What one core's TLS connections did: handshakes, resumptions, and
//! handshake failures by reason, as [`Counter`]s (written by that core,
//! read by the metrics).

use crate::counter::Counter;

/// Why a handshake failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HandshakeFailure {
    /// The peer did not speak TLS (plain HTTP on the TLS port, garbage).
    NotTls,
    /// No protocol version, cipher suite or ALPN protocol in common.
    Incompatible,
    /// A client certificate missing, or not verified.
    ClientCertificate,
    /// The peer sent an alert (it refused the server's certificate, say).
    Alert,
    /// The connection ended mid-handshake (or before it began), or its
    /// deadline cut it.
    Closed,
    /// Anything else.
    Other,
}

impl HandshakeFailure {
    pub(crate) const COUNT: usize = 6;
    pub(crate) const ALL: [HandshakeFailure; HandshakeFailure::COUNT] = [
        HandshakeFailure::NotTls,
        HandshakeFailure::Incompatible,
        HandshakeFailure::ClientCertificate,
        HandshakeFailure::Alert,
        HandshakeFailure::Closed,
        HandshakeFailure::Other,
    ];

    /// The label the metrics give it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            HandshakeFailure::NotTls => "not_tls",
            HandshakeFailure::Incompatible => "incompatible",
            HandshakeFailure::ClientCertificate => "client_certificate",
            HandshakeFailure::Alert => "alert",
            HandshakeFailure::Closed => "closed",
            HandshakeFailure::Other => "other",
        }
    }

    /// The reason for a handshake that rustls failed with `error`.
    pub(crate) fn of(error: &rustls::Error) -> HandshakeFailure {
        use rustls::Error;
        match error {
            Error::InvalidMessage(_) | Error::InappropriateMessage { .. } => {
                HandshakeFailure::NotTls
            }
            Error::PeerIncompatible(_) | Error::NoApplicationProtocol => {
                HandshakeFailure::Incompatible
            }
            Error::NoCertificatesPresented | Error::InvalidCertificate(_) => {
                HandshakeFailure::ClientCertificate
            }
            Error::AlertReceived(_) => HandshakeFailure::Alert,
            _ => HandshakeFailure::Other,
        }
    }
}

/// One core's TLS counts.
#[derive(Debug, Default)]
pub(crate) struct TlsCounters {
    handshakes: Counter,
    resumed: Counter,
    failures: [Counter; HandshakeFailure::COUNT],
}

impl TlsCounters {
    /// A handshake completed; `resumed`: from a ticket.
    pub(crate) fn handshake(&self, resumed: bool) {
        self.handshakes.inc();
        if resumed {
            self.resumed.inc();
        }
    }

    pub(crate) fn failure(&self, why: HandshakeFailure) {
        self.failures[why as usize].inc();
    }

    /// Completed handshakes, resumed ones included.
    pub(crate) fn handshakes(&self) -> u64 {
        self.handshakes.get()
    }

    pub(crate) fn resumed(&self) -> u64 {
        self.resumed.get()
    }

    pub(crate) fn failures(&self, why: HandshakeFailure) -> u64 {
        self.failures[why as usize].get()
    }
}
