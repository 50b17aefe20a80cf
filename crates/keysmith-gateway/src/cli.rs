//! Command-line flags. Each can also be set through the environment variable named in its help, as
//! the operator's are.

use std::{net::SocketAddr, time::Duration};

use clap::{Parser, ValueEnum};

use crate::tokens::TokenizerMode;

/// keysmith-gateway: enforces ApiKey limits on every request to the providers.
#[derive(Debug, Parser)]
#[command(name = "keysmith-gateway", version, about, long_about = None)]
pub struct Cli {
    /// Address the proxy listens on.
    #[arg(long, env = "KEYSMITH_GATEWAY_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// Namespace of the route Secrets (default: the pod's namespace, or `keysmith-system` outside a
    /// cluster).
    #[arg(long, env = "KEYSMITH_GATEWAY_NAMESPACE")]
    pub namespace: Option<String>,
    /// Address of `/metrics`, `/usage`, `/healthz` and `/readyz`.
    #[arg(long, env = "KEYSMITH_GATEWAY_METRICS_ADDR", default_value = "0.0.0.0:9090")]
    pub metrics_addr: SocketAddr,
    /// Log verbosity, as a tracing filter. `RUST_LOG` wins when set.
    #[arg(long, env = "KEYSMITH_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
    /// Log line format.
    #[arg(long, env = "KEYSMITH_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Largest request body accepted, in bytes.
    #[arg(long, env = "KEYSMITH_GATEWAY_MAX_BODY_BYTES", default_value_t = 16 << 20)]
    pub max_body_bytes: usize,
    /// Seconds allowed to connect to a provider.
    #[arg(long, env = "KEYSMITH_GATEWAY_CONNECT_TIMEOUT", default_value_t = 5)]
    pub connect_timeout_seconds: u64,
    /// Seconds allowed until a provider's response headers.
    #[arg(long, env = "KEYSMITH_GATEWAY_RESPONSE_TIMEOUT", default_value_t = 300)]
    pub response_timeout_seconds: u64,
    /// Seconds a provider may stay silent inside a response (between stream chunks).
    #[arg(long, env = "KEYSMITH_GATEWAY_IDLE_TIMEOUT", default_value_t = 300)]
    pub idle_timeout_seconds: u64,
    /// Input token counting: `bound` (bytes, no vocabulary in memory) or `exact` (OpenAI vocabularies,
    /// about 24 MiB more resident memory once an OpenAI model is counted).
    #[arg(long, env = "KEYSMITH_GATEWAY_TOKENIZER", value_enum, default_value_t = Tokenizer::Bound)]
    pub tokenizer: Tokenizer,
    /// Serve the routes in this JSON file instead of watching Secrets (local runs and benchmarks):
    /// a list of `{"secret": NAME, "route": <route.json>, "upstreamKey": KEY}`.
    #[arg(long, env = "KEYSMITH_GATEWAY_ROUTES_FILE")]
    pub routes_file: Option<std::path::PathBuf>,
}

/// Log line format.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Token counting, as a flag value.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Tokenizer {
    /// Upper bound from bytes.
    Bound,
    /// Exact for OpenAI models.
    Exact,
}

impl Cli {
    /// The proxy settings the flags ask for.
    pub fn gateway_config(&self) -> crate::GatewayConfig {
        crate::GatewayConfig {
            max_body_bytes: self.max_body_bytes,
            connect_timeout: Duration::from_secs(self.connect_timeout_seconds),
            response_timeout: Duration::from_secs(self.response_timeout_seconds),
            idle_timeout: Duration::from_secs(self.idle_timeout_seconds),
            tokenizer: match self.tokenizer {
                Tokenizer::Bound => TokenizerMode::Bound,
                Tokenizer::Exact => TokenizerMode::Exact,
            },
        }
    }

    /// The namespace of the route Secrets.
    pub fn namespace(&self) -> String {
        self.namespace.clone().unwrap_or_else(|| {
            std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
                .map(|ns| ns.trim().to_owned())
                .unwrap_or_else(|_| "keysmith-system".to_owned())
        })
    }
}
