//! Structured logging setup.

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

use crate::Error;
use crate::Result;
use crate::cli::LogFormat;

/// Installs the global tracing subscriber. `RUST_LOG` takes precedence over `level` so a developer
/// can raise verbosity without touching the flags a Deployment sets.
pub fn init(level: &str, format: LogFormat) -> Result<()> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(env) if !env.is_empty() => parse_filter(&env)?,
        _ => parse_filter(level)?,
    };
    let registry = tracing_subscriber::registry().with(filter);
    // try_init: a second call (tests that start the operator twice in one process) is not an error.
    let _ = match format {
        LogFormat::Text => registry.with(fmt::layer().with_target(true)).try_init(),
        LogFormat::Json => registry.with(fmt::layer().json().flatten_event(true)).try_init(),
    };
    Ok(())
}

fn parse_filter(filter: &str) -> Result<EnvFilter> {
    EnvFilter::try_new(filter).map_err(|source| Error::LogFilter {
        filter: filter.to_owned(),
        source,
    })
}
