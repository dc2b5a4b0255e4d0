//! Why a server could not start ([`StartError`], with the process exit
//! code for each) or did not end well ([`JoinError`]).

use std::fmt;
use std::io;
use std::net::SocketAddr;

use crate::app::BoxError;
use crate::config::{AccessLogTarget, ConfigError};
use crate::cores::{self, CoreId, CoresError};
use crate::tls::TlsError;

/// Why a server could not start. Every variant is a problem of the
/// configuration or the machine, with a message saying what to change.
#[derive(Debug)]
#[non_exhaustive]
pub enum StartError {
    /// A setting has a value the server cannot run with.
    Config(ConfigError),
    /// The cores asked for cannot be used.
    Cores(CoresError),
    /// Another process listens on the address.
    AddrInUse(SocketAddr),
    /// The address cannot be bound (not local, privileged port, ...).
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What the kernel said.
        source: io::Error,
    },
    /// io_uring cannot be used by this process.
    IoUring(String),
    /// The locked-memory limit is too low.
    Memlock(String),
    /// A core's executor could not start.
    Executor {
        /// The core.
        core: CoreId,
        /// Why.
        reason: String,
    },
    /// The application's `on_start` failed on a core.
    AppStart {
        /// The core.
        core: CoreId,
        /// The application's error.
        error: BoxError,
    },
    /// The Unix socket or the inherited socket cannot be listened on.
    Listen {
        /// Which (`--uds PATH`, `--fd N`).
        on: String,
        /// What the system said.
        source: io::Error,
    },
    /// The access log cannot be opened.
    AccessLog {
        /// Where it was to be written.
        target: AccessLogTarget,
        /// What the system said.
        source: io::Error,
    },
    /// No socket-ring set-up works on a core: the kernel refuses each one
    /// tried, or a completion does not wake the core.
    Ring {
        /// The core.
        core: CoreId,
        /// What was tried, and why each failed.
        reason: String,
    },
    /// The TLS certificate, key or client-certificate settings cannot be
    /// used.
    Tls(TlsError),
    /// A core panicked while starting (in the application factory, say).
    CorePanicked {
        /// The core.
        core: CoreId,
    },
}

impl StartError {
    /// The process exit code for a server that could not start: 3 when the
    /// application failed to start on a core (uvicorn's start-up failure
    /// code), 2 for a configuration or machine problem.
    pub fn exit_code(&self) -> u8 {
        match self {
            StartError::AppStart { .. } | StartError::CorePanicked { .. } => 3,
            _ => 2,
        }
    }
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Config(e) => write!(f, "{e}"),
            StartError::Cores(e) => write!(f, "--cores: {e}"),
            StartError::AddrInUse(addr) => write!(
                f,
                "address {addr} is already in use (another server listens on port {})",
                addr.port()
            ),
            StartError::Bind { addr, source } => write!(f, "cannot listen on {addr}: {source}"),
            StartError::Listen { on, source } => write!(f, "{on}: cannot listen: {source}"),
            StartError::IoUring(why) | StartError::Memlock(why) => f.write_str(why),
            StartError::AccessLog { target: AccessLogTarget::File(path), source } => {
                write!(f, "--access-log: cannot open {}: {source}", path.display())
            }
            StartError::AccessLog { target: AccessLogTarget::Stdout, source } => {
                write!(f, "--access-log: cannot write to standard output: {source}")
            }
            StartError::Executor { core, reason } => {
                write!(f, "core {core}: the executor could not start: {reason}")
            }
            StartError::AppStart { core, error } => {
                write!(f, "core {core}: the application failed to start: {error}")
            }
            StartError::Ring { core, reason } => write!(f, "core {core}: {reason}"),
            StartError::Tls(e) => write!(f, "{e}"),
            StartError::CorePanicked { core } => write!(f, "core {core} panicked while starting"),
        }
    }
}

impl std::error::Error for StartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StartError::Config(e) => Some(e),
            StartError::Cores(e) => Some(e),
            StartError::Bind { source, .. }
            | StartError::Listen { source, .. }
            | StartError::AccessLog { source, .. } => Some(source),
            StartError::AppStart { error, .. } => Some(error.as_ref()),
            StartError::Tls(e) => Some(e),
            _ => None,
        }
    }
}

/// Cores that stopped with a panic instead of a shutdown.
#[derive(Debug)]
pub struct JoinError {
    pub(super) cores: Vec<CoreId>,
}

impl JoinError {
    /// The cores that panicked.
    pub fn cores(&self) -> &[CoreId] {
        &self.cores
    }
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<usize> = self.cores.iter().map(|c| c.get()).collect();
        write!(f, "core(s) {} stopped after a panic", cores::format_list(&ids))
    }
}

impl std::error::Error for JoinError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_app_that_fails_to_start_exits_3_with_one_line() {
        let error = StartError::AppStart { core: CoreId(1), error: "no database".into() };
        assert_eq!(error.exit_code(), 3);
        let line = error.to_string();
        assert_eq!(line, "core 1: the application failed to start: no database");
        let config = StartError::AddrInUse(([127, 0, 0, 1], 80).into());
        assert_eq!(config.exit_code(), 2);
    }
}
