//! Errors of starting and running the gateway process (request-time failures are answers, not errors).

/// Why the gateway could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The TLS configuration for upstream calls could not be built.
    #[error("TLS setup failed")]
    Tls(#[source] rustls::Error),
    /// The upstream HTTP client could not be built.
    #[error("HTTP client setup failed")]
    HttpClient(#[source] reqwest::Error),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A server stopped with an I/O error.
    #[error("server failed")]
    Serve(#[source] std::io::Error),
    /// No Kubernetes configuration (KUBECONFIG or in-cluster) was usable.
    #[error("cannot create a Kubernetes client")]
    Kube(#[source] kube::Error),
    /// The log filter does not parse.
    #[error("invalid log filter {filter:?}")]
    LogFilter {
        /// The filter given.
        filter: String,
        /// The cause.
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },
    /// The routes file could not be read.
    #[error("cannot read routes file {path}")]
    RoutesFile {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Signal handlers could not be installed.
    #[error("cannot install signal handlers")]
    Signal(#[source] std::io::Error),
}
