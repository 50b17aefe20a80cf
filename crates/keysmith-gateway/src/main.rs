use std::process::ExitCode;

use clap::Parser;
use keysmith_gateway::{cli::Cli, run};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(err) = run::init_logging(&cli.log_level, cli.log_format) {
        eprintln!("keysmith-gateway: {}", error_chain(&err));
        return ExitCode::FAILURE;
    }
    let result = match run::shutdown_signal() {
        Ok(shutdown) => run::run(cli, shutdown).await,
        Err(err) => Err(err),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %error_chain(&err), "keysmith-gateway stopped");
            ExitCode::FAILURE
        }
    }
}

/// Renders an error with its sources, `outer: inner: root`.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}
