//! [`ServerHandle`]: a running server: where it listens, its metrics,
//! stopping it and waiting for its end.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use super::JoinError;
use crate::access_log::AccessLogWriter;
use crate::cores::CoreId;
use crate::io::listener::{self, Endpoint};
use crate::metrics::exporter::Exporter;
use crate::metrics::{CoreMetrics, Metrics};
use crate::shutdown::ShutdownSignal;
use crate::tls::TlsConfig;

/// A running server.
///
/// Dropping the handle stops the server and waits for its cores, as
/// [`ServerHandle::shutdown`] followed by [`ServerHandle::join`] does.
#[derive(Debug)]
pub struct ServerHandle {
    pub(super) endpoint: Endpoint,
    /// The identity (device, inode) of the Unix socket file this server
    /// made at `endpoint`: removed at the stop if it is still that file.
    pub(super) remove_on_stop: Option<(u64, u64)>,
    pub(super) cores: Vec<CoreId>,
    pub(super) threads: Vec<(CoreId, JoinHandle<()>)>,
    pub(super) shutdown: ShutdownSignal,
    pub(super) metrics: Vec<Arc<CoreMetrics>>,
    pub(super) exporter: Option<Exporter>,
    pub(super) access_log: Option<AccessLogWriter>,
    pub(super) tls: Option<TlsConfig>,
}

impl ServerHandle {
    /// The TLS configuration the cores serve with, when the server speaks
    /// HTTPS: [`TlsConfig::reload`] swaps the certificate for new
    /// handshakes (what the CLI does on `SIGHUP`).
    pub fn tls(&self) -> Option<&TlsConfig> {
        self.tls.as_ref()
    }

    /// Where the metrics listener answers (`--metrics`), with the port it
    /// resolved to.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.exporter.as_ref().map(Exporter::local_addr)
    }

    /// A reading of every core's counters, in the order of [`Self::cores`].
    pub fn metrics(&self) -> Vec<Metrics> {
        self.cores.iter().zip(&self.metrics).map(|(&core, m)| m.snapshot(core)).collect()
    }

    /// The address the server listens on, with the port it resolved to.
    /// On a Unix socket it is the unspecified address `0.0.0.0:0`: see
    /// [`ServerHandle::endpoint`].
    pub fn local_addr(&self) -> SocketAddr {
        match &self.endpoint {
            Endpoint::Tcp(addr) => *addr,
            Endpoint::Unix(_) => SocketAddr::from(([0, 0, 0, 0], 0)),
        }
    }

    /// Where clients reach the server: a TCP address or a Unix socket.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The cores the server runs on.
    pub fn cores(&self) -> &[CoreId] {
        &self.cores
    }

    /// Stops the server gracefully: every core stops accepting at once,
    /// closes its idle connections, lets in-flight requests finish (their
    /// responses carry `Connection: close`) for up to the graceful-shutdown
    /// timeout, cuts what is left, runs its application's `on_stop` and
    /// ends. Returns at once; [`ServerHandle::join`] waits for the end.
    pub fn shutdown(&self) {
        self.shutdown.trigger();
    }

    /// A handle that can stop the server from another thread (a signal
    /// handler, say) while this one waits in [`ServerHandle::join`].
    pub fn shutdown_signal(&self) -> ShutdownSignal {
        self.shutdown.clone()
    }

    /// Waits until every core has stopped.
    pub fn join(mut self) -> Result<(), JoinError> {
        self.join_threads()
    }

    fn join_threads(&mut self) -> Result<(), JoinError> {
        let panicked: Vec<CoreId> = self
            .threads
            .drain(..)
            .filter_map(|(core, thread)| thread.join().is_err().then_some(core))
            .collect();
        if let Some(mut exporter) = self.exporter.take() {
            exporter.stop();
        }
        if let Some(mut access_log) = self.access_log.take() {
            access_log.finish();
        }
        if let (Some(made), Endpoint::Unix(path)) = (self.remove_on_stop.take(), &self.endpoint) {
            listener::remove_unix(path, made);
        }
        if panicked.is_empty() {
            Ok(())
        } else {
            Err(JoinError { cores: panicked })
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        // Whatever a join has not ended yet.
        let owns_more = self.exporter.is_some() || self.access_log.is_some();
        if !self.threads.is_empty() || owns_more || self.remove_on_stop.is_some() {
            self.shutdown.trigger();
            let _ = self.join_threads();
        }
    }
}
