//! Errors of the operator process itself: connecting, serving and shutting down.

use std::net::SocketAddr;

/// Everything that can stop `keysmith run` before or while it serves.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No kubeconfig or in-cluster configuration could be loaded or turned into a client.
    #[error("cannot build a Kubernetes client (is KUBECONFIG set, or is this running in a cluster?)")]
    Connect(#[source] kube::Error),

    /// The API server did not answer `/version`.
    #[error("cannot read the Kubernetes server version")]
    ServerVersion(#[source] kube::Error),

    /// The keysmith resources cannot be listed: the CRDs are missing, or RBAC refuses.
    #[error(
        "cannot list keysmith resources: are the CRDs installed (`keysmith crds | kubectl apply --server-side -f -`) and may this identity list them?"
    )]
    CrdsMissing(#[source] kube::Error),

    /// Leader election failed.
    #[error("leader election failed")]
    LeaderElection(#[from] crate::leader::Error),

    /// Another replica took the Lease, or it could not be renewed in time.
    #[error("lost leadership; exiting so that a fresh process stands by")]
    LostLeadership,

    /// The health endpoint could not listen on the requested address.
    #[error("cannot listen on {addr} for health checks")]
    BindHealth {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },

    /// The health server stopped with an I/O error.
    #[error("health server failed")]
    Serve(#[source] std::io::Error),

    /// The process could not install its signal handlers.
    #[error("cannot install signal handlers")]
    Signal(#[source] std::io::Error),

    /// Logging could not be set up (for example, an invalid log filter).
    #[error("invalid log filter {filter:?}")]
    LogFilter {
        filter: String,
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },
}

/// Result with keysmith's process-level error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
